//! `wfhost audit`: everything a security reviewer needs to know about what a script can reach.

use super::{LimitArgs, read_file};
use crate::compile::{self, Cache};
use crate::sandbox::{self, ImportCheck, Sandbox, capabilities, wasi};
use crate::script::Script;
use anyhow::{Result, anyhow};
use clap::Args;
use serde_json::json;
use std::path::PathBuf;

pub(super) const AFTER_HELP: &str = "\
Examples:
  wfhost audit                    the guest every script runs in
  wfhost audit review.js          the same, plus the script's metadata
  wfhost audit review.wasm        a compiled module's imports, checked against the allow-list
  wfhost audit --json             for machines";

/// The contract, embedded so the audit shows exactly what this binary was built against.
pub(super) const WIT: &str = include_str!("../../../wit/wfhost.wit");

#[derive(Args)]
pub(super) struct AuditArgs {
    /// A script (`.js`) or a module from `wfhost compile` (`.wasm`).
    target: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    tools: super::tools::ToolArgs,
}

/// What the audit found: the guest's (and a given module's) imports, the target's meta, the
/// limits and the agents' tools in force, and whether anything is refused.
struct Audit {
    target: Option<PathBuf>,
    meta: Option<crate::script::Meta>,
    guest_imports: Vec<ImportCheck>,
    module_imports: Option<Vec<ImportCheck>>,
    limits: crate::limits::Limits,
    tools: serde_json::Value,
    refused: bool,
}

const VERIFY: &str = "`just guest-verify` rebuilds the guest from guest-sdk/ with the pinned Debian toolchain and fails unless the bytes are identical";

const WASI_FACTS: [&str; 5] = [
    "no preopened directories (no filesystem)",
    "no environment variables, no arguments",
    "no sockets, no name lookup",
    "stdin empty; stdout and stderr captured in memory, never inherited",
    "clocks fixed at the Unix epoch; random is a fixed stream",
];

pub(super) fn audit(a: AuditArgs) -> Result<u8> {
    let audit = inspect(a.target, &a.limits, &a.tools)?;
    if a.json {
        print_json(&audit)?;
    } else {
        print_human(&audit);
    }
    Ok(if audit.refused {
        crate::exit::REFUSED
    } else {
        crate::exit::OK
    })
}

/// Loads the guest (and the target: a module's imports, a script's meta) and the configuration
/// in force.
fn inspect(
    target: Option<PathBuf>,
    limit_args: &LimitArgs,
    tool_args: &super::tools::ToolArgs,
) -> Result<Audit> {
    let limits = limit_args.limits();
    let cwd = std::env::current_dir()?;
    let mut config = crate::config::load(&cwd)?.config;
    tool_args.apply(&mut config.tools, &cwd);
    let tools = crate::tools::describe(&config.tools)?;
    let sandbox = Sandbox::new(limits.clone(), &Cache::new(limit_args.no_cache))?;
    let guest = wasmtime::Module::new(sandbox.engine(), compile::GUEST)?;
    let guest_imports = sandbox::audit_imports(&guest, None);
    let mut meta = None;
    let mut module_imports: Option<Vec<ImportCheck>> = None;
    if let Some(path) = &target {
        let bytes = read_file(path)?;
        if path.extension().is_some_and(|e| e == "wasm") {
            let module = wasmtime::Module::new(sandbox.engine(), &bytes).map_err(|e| {
                crate::ExitError::usage(format!(
                    "`{}` is not a valid WebAssembly module: {e}",
                    path.display()
                ))
            })?;
            module_imports = Some(sandbox::audit_imports(
                &module,
                Some(compile::PLUGIN_NAMESPACE),
            ));
            meta = compile::module_info(&bytes)?.meta;
        } else {
            let source = String::from_utf8_lossy(&bytes);
            meta = Some(
                Script::parse(&path.display().to_string(), &source)
                    .map_err(|r| anyhow!(r.render()))?
                    .meta,
            );
        }
    }
    let refused = module_imports
        .iter()
        .flatten()
        .chain(&guest_imports)
        .any(|i| !i.allowed);
    Ok(Audit {
        target,
        meta,
        guest_imports,
        module_imports,
        limits,
        tools,
        refused,
    })
}

fn print_json(a: &Audit) -> Result<()> {
    let report = json!({
        "target": a.target,
        "meta": a.meta,
        "wasmtime": compile::WASMTIME_VERSION,
        "guest": { "sha256": compile::GUEST_SHA256, "size": compile::GUEST.len(), "verify": VERIFY, "imports": a.guest_imports },
        "module_imports": a.module_imports,
        "wit": WIT,
        "capabilities": capabilities::FUNCTIONS.iter().map(|(n, sig)| json!({"name": n, "core_signature": sig})).collect::<Vec<_>>(),
        "wasi_allow": wasi::WASI_ALLOW,
        "wasi": WASI_FACTS,
        "limits": a.limits,
        "agent_tools": a.tools,
        "verdict": if a.refused { "refused" } else { "allowed" },
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

fn print_human(a: &Audit) {
    println!("wfhost capability audit\n");
    if let (Some(path), Some(m)) = (&a.target, &a.meta) {
        println!(
            "target: {} — {}: {}",
            path.display(),
            crate::sanitize::line(&m.name),
            crate::sanitize::line(&m.description)
        );
    }
    println!(
        "guest:  sha256 {} ({} bytes)",
        compile::GUEST_SHA256,
        compile::GUEST.len()
    );
    println!("        verify: {VERIFY}");
    println!(
        "engine: wasmtime {} (Cranelift), epoch interruption for CPU time, a memory limiter\n",
        compile::WASMTIME_VERSION
    );
    if let Some(imports) = &a.module_imports {
        println!(
            "module imports (only `{}::{{{}}}` may be imported):",
            compile::PLUGIN_NAMESPACE,
            compile::PLUGIN_IMPORTS.join(", ")
        );
        print_imports(imports);
        println!();
    }
    println!("guest imports:");
    print_imports(&a.guest_imports);
    println!("\nWASI preview 1 context:");
    for f in WASI_FACTS {
        println!("  - {f}");
    }
    print_limits(&a.limits);
    print_tools(&a.tools);
    println!("\nthe contract (wit/wfhost.wit):\n");
    for line in WIT.lines() {
        println!("  {line}");
    }
    println!(
        "\nverdict: {}",
        if a.refused {
            "REFUSED (see the imports marked refused)"
        } else {
            "allowed"
        }
    );
}

/// The limits in force, each with the flag that sets it.
fn print_limits(limits: &crate::limits::Limits) {
    println!("\nlimits in force:");
    println!(
        "  memory      {:>10}  --max-memory",
        bytesize::ByteSize(limits.max_memory)
            .display()
            .iec()
            .to_string()
    );
    println!(
        "  cpu         {:>10}  --cpu-timeout (synchronous run without waiting)",
        humantime::format_duration(limits.cpu_timeout).to_string()
    );
    println!(
        "  output      {:>10}  --max-output-bytes (logs, phase titles, labels, result, captured stdio)",
        bytesize::ByteSize(limits.max_output_bytes)
            .display()
            .iec()
            .to_string()
    );
    println!(
        "  log lines   {:>10}  --max-log-lines (log lines and phase titles)",
        limits.max_log_lines
    );
    println!("  agents      {:>10}  --max-agents", limits.max_agents);
    println!(
        "  timeout     {:>10}  --timeout (wall clock, agents included)",
        humantime::format_duration(limits.timeout).to_string()
    );
    let size = |b: u64| bytesize::ByteSize(b).display().iec().to_string();
    println!(
        "  prompt      {:>10}  --max-prompt-bytes (one agent's prompt)",
        size(limits.max_prompt_bytes)
    );
    println!(
        "  queued      {:>10}  --max-queued-bytes (prompts the host holds at once)",
        size(limits.max_queued_bytes)
    );
    println!("  concurrency {:>10}  --concurrency", limits.concurrency);
}

/// What a script can do through its API agents' tools (`messages`; `claude` agents have
/// Claude Code's own, bounded by its permission mode: docs/security.md).
fn print_tools(t: &serde_json::Value) {
    println!("\nAPI agents' tools (messages backend; docs/tools.md):");
    let allowed = crate::tools::allowed_in(t);
    if allowed.is_empty() {
        println!("  none: each agent is one model call (--tools, [tools] allow)");
        return;
    }
    println!(
        "  tools       {}  --tools, [tools] allow",
        allowed.join(", ")
    );
    println!(
        "  workspace   {}  (the only directory they reach; [tools] workspace)",
        t["workspace"].as_str().unwrap_or("")
    );
    for h in t["hidden"].as_array().into_iter().flatten() {
        println!(
            "  hidden      {}  (wfhost's run data)",
            h.as_str().unwrap_or("")
        );
    }
    println!("  read-only   .git  (for the file tools; hooks and config also for Bash)");
    println!(
        "  rails       {} turns (--max-turns), {} tool calls (--max-tool-calls), 3 identical calls in a row, {} bytes per result",
        t["max_turns"], t["max_tool_calls"], t["max_result_bytes"]
    );
    match &t["bash"] {
        serde_json::Value::Null => {}
        b if b["confined"] == true => println!(
            "  Bash        confined: {}; timeout {} (--bash-timeout)",
            b["by"].as_str().unwrap_or(""),
            t["bash_timeout"].as_str().unwrap_or("")
        ),
        b => println!(
            "  Bash        NOT CONFINED here ({}): {}",
            b["why"].as_str().unwrap_or(""),
            b["note"].as_str().unwrap_or("")
        ),
    }
}

fn print_imports(imports: &[ImportCheck]) {
    for i in imports {
        println!(
            "  {}  {}::{}{}",
            if i.allowed { "allowed" } else { "REFUSED" },
            i.module,
            i.name,
            i.reason
                .as_deref()
                .map(|r| format!(" — {r}"))
                .unwrap_or_default()
        );
    }
}
