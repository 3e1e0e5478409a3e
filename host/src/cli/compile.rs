//! `wfhost compile`

use super::{LimitArgs, read_file};
use crate::compile::{self, Cache};
use crate::sandbox::Sandbox;
use crate::script::Script;
use anyhow::{Result, anyhow};
use clap::Args;
use std::path::PathBuf;

pub(super) const AFTER_HELP: &str = "\
The output is a Javy dynamic-linking module: a few hundred bytes plus the script's QuickJS
bytecode. It imports only `wfhost_plugin_v1::{cabi_realloc, invoke, memory}` (the guest) and
runs with `wfhost run OUT.wasm` on a wfhost carrying the same guest.

`wfhost compile --warm` compiles only the guest into the compile cache, so that the first run
after an install starts warm (`just build` runs it).

Examples:
  wfhost compile review.js -o review.wasm && wfhost audit review.wasm
  wfhost compile --warm";

#[derive(Args)]
pub(super) struct CompileArgs {
    /// The workflow script.
    #[arg(required_unless_present = "warm")]
    script: Option<PathBuf>,
    /// Where to write the module.
    #[arg(short, long, value_name = "OUT.wasm", required_unless_present = "warm")]
    output: Option<PathBuf>,
    /// Only compile the guest into the compile cache (Cranelift, ~1 s), so the next run
    /// starts warm.
    #[arg(long, conflicts_with_all = ["script", "output"])]
    warm: bool,
    #[command(flatten)]
    limits: LimitArgs,
}

pub(super) async fn compile(a: CompileArgs) -> Result<u8> {
    let (Some(script_path), Some(output)) = (&a.script, &a.output) else {
        let cache = Cache::new(false);
        let started = std::time::Instant::now();
        let sandbox = Sandbox::new(a.limits.limits(), &cache)?;
        match cache.dir() {
            Some(dir) => eprintln!(
                "guest ready in {} ({}, {:.0} ms): runs start warm",
                dir.display(),
                sandbox.artifact.source,
                started.elapsed().as_secs_f64() * 1000.0
            ),
            None => {
                eprintln!("warning: no cache directory (no HOME?); every run compiles the guest");
            }
        }
        return Ok(crate::exit::OK);
    };
    let source = String::from_utf8(read_file(script_path)?)
        .map_err(|_| anyhow!("`{}` is not UTF-8 text", script_path.display()))?;
    let script = match Script::parse(&script_path.display().to_string(), &source) {
        Ok(s) => s,
        Err(r) => {
            eprintln!("error: {}", r.render());
            return Ok(crate::exit::SCRIPT);
        }
    };
    let cache = Cache::new(a.limits.no_cache);
    let sandbox = Sandbox::new(a.limits.limits(), &cache)?;
    let bytecode = match sandbox.compile_src(&script.module).await? {
        Ok(b) => b,
        Err(message) => {
            eprintln!(
                "error: Workflow script has a syntax error and was not launched:\n  {message}"
            );
            return Ok(crate::exit::SCRIPT);
        }
    };
    let module = compile::encode_module(&bytecode, &script.meta);
    std::fs::write(output, &module)
        .map_err(|e| anyhow!("cannot write `{}`: {e}", output.display()))?;
    eprintln!(
        "wrote {} ({} bytes, {} of bytecode)",
        output.display(),
        module.len(),
        bytecode.len()
    );
    Ok(crate::exit::OK)
}
