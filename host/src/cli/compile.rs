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

Example:
  wfhost compile review.js -o review.wasm && wfhost audit review.wasm";

#[derive(Args)]
pub(super) struct CompileArgs {
    /// The workflow script.
    script: PathBuf,
    /// Where to write the module.
    #[arg(short, long, value_name = "OUT.wasm")]
    output: PathBuf,
    #[command(flatten)]
    limits: LimitArgs,
}

pub(super) async fn compile(a: CompileArgs) -> Result<u8> {
    let source = String::from_utf8(read_file(&a.script)?)
        .map_err(|_| anyhow!("`{}` is not UTF-8 text", a.script.display()))?;
    let script = match Script::parse(&a.script.display().to_string(), &source) {
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
    std::fs::write(&a.output, &module)
        .map_err(|e| anyhow!("cannot write `{}`: {e}", a.output.display()))?;
    eprintln!(
        "wrote {} ({} bytes, {} of bytecode)",
        a.output.display(),
        module.len(),
        bytecode.len()
    );
    Ok(crate::exit::OK)
}
