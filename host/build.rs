//! Embeds the pre-initialised guest (guest-sdk/dist/wfhost-guest.wasm) after checking it
//! against its recorded sha256, so a binary can only ever carry the reviewed guest.
use sha2::{Digest, Sha256};
use std::path::PathBuf;

fn main() {
    let dist =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("../guest-sdk/dist");
    let wasm = dist.join("wfhost-guest.wasm");
    let recorded = dist.join("wfhost-guest.wasm.sha256");
    println!("cargo:rerun-if-changed={}", wasm.display());
    println!("cargo:rerun-if-changed={}", recorded.display());
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let (path, sha) = match std::fs::read(&wasm) {
        Ok(bytes) => {
            let sha: String = Sha256::digest(&bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            let want = std::fs::read_to_string(&recorded).unwrap_or_default();
            let want = want.split_whitespace().next().unwrap_or("");
            if want != sha {
                panic!(
                    "error: `guest-sdk/dist/wfhost-guest.wasm` has sha256 {sha}, but `wfhost-guest.wasm.sha256` records `{want}`\n\
                     hint: rebuild the guest from source with `just guest` (it writes both files)"
                );
            }
            (wasm.canonicalize().unwrap(), sha)
        }
        // Only while bootstrapping the guest itself: the binary then refuses to run scripts.
        Err(_) => {
            let empty = out.join("no-guest.wasm");
            std::fs::write(&empty, []).unwrap();
            (empty, "missing".to_string())
        }
    };
    // The wasmtime version goes into the guest cache key (compile.rs), read from the lockfile.
    let lock = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("../Cargo.lock");
    println!("cargo:rerun-if-changed={}", lock.display());
    let lock = std::fs::read_to_string(&lock).unwrap_or_default();
    let wasmtime = lock
        .split("[[package]]")
        .find(|p| p.contains("\nname = \"wasmtime\"\n"))
        .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = \"")))
        .map(|v| v.trim_end_matches('"').to_string())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=WFHOST_WASMTIME_VERSION={wasmtime}");
    println!("cargo:rustc-env=WFHOST_GUEST_PATH={}", path.display());
    println!("cargo:rustc-env=WFHOST_GUEST_SHA256={sha}");
}
