//! Pre-initialises the raw guest plugin: runs its `initialize-runtime` under Wizer in a
//! deterministic WASI context (so the snapshot is byte-for-byte reproducible), optimises it
//! with `wasm-opt -O3` (Debian's binaryen), and writes the result with its sha256.
//!
//! usage: wfhost-guest-init RAW.wasm OUT.wasm
use anyhow::{Context, Result, anyhow, bail};
use sha2::{Digest, Sha256};
use std::path::Path;
use wasmtime::{Engine, Linker, Store};
use wasmtime_wasi::WasiCtxBuilder;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, raw, out] = args.as_slice() else {
        bail!("usage: wfhost-guest-init RAW.wasm OUT.wasm")
    };
    let raw = std::fs::read(raw).with_context(|| format!("reading {raw}"))?;
    let initialised = wizer(&raw).await?;
    let optimised = wasm_opt(&initialised)?;
    std::fs::write(out, &optimised)?;
    let sha: String = Sha256::digest(&optimised)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let name = Path::new(out).file_name().unwrap().to_string_lossy();
    std::fs::write(format!("{out}.sha256"), format!("{sha}  {name}\n"))?;
    eprintln!(
        "raw {} bytes → initialised {} → optimised {} bytes\nsha256 {sha}",
        raw.len(),
        initialised.len(),
        optimised.len()
    );
    Ok(())
}

async fn wizer(raw: &[u8]) -> Result<Vec<u8>> {
    let engine = Engine::default();
    let mut b = WasiCtxBuilder::new();
    wfhost::testing::deterministic(&mut b);
    let mut store = Store::new(&engine, b.build_p1());
    wasmtime_wizer::Wizer::new()
        .init_func("initialize-runtime")
        // Kept: it is part of the Javy plugin ABI (javy's own tools check for it).
        .keep_init_func(true)
        .run(&mut store, raw, async |store, module| {
            let mut linker = Linker::new(store.engine());
            wasmtime_wasi::p1::add_to_linker_async(&mut linker, |cx| cx)?;
            // The capability surface must not be used while initialising.
            linker.define_unknown_imports_as_traps(module)?;
            linker.instantiate_async(store, module).await
        })
        .await
        .map_err(|e| anyhow!("wizer: {e:?}"))
}

fn wasm_opt(input: &[u8]) -> Result<Vec<u8>> {
    let dir = tempfile::tempdir()?;
    let (i, o) = (dir.path().join("in.wasm"), dir.path().join("out.wasm"));
    std::fs::write(&i, input)?;
    let status = std::process::Command::new("wasm-opt")
        .args([
            "-O3",
            "--enable-bulk-memory",
            "--enable-sign-ext",
            "--enable-mutable-globals",
            "--enable-nontrapping-float-to-int",
        ])
        .arg(&i)
        .arg("-o")
        .arg(&o)
        .status()
        .context("running `wasm-opt` (apt-get install binaryen)")?;
    if !status.success() {
        bail!("wasm-opt failed: {status}");
    }
    Ok(std::fs::read(o)?)
}
