//! wfhost: a sandboxed host for model-written workflow scripts.
//!
//! The data path, one module per stage:
//! `script` (parse, meta) → `compile` (guest, bytecode) → `sandbox` (Wasmtime, capabilities)
//! → `scheduler` (bounded pool) → `backend` (who answers agents) → `events` / `report`.

// Every stage is private to the crate: the binary needs `main` and the `Bash` tool's
// confinement; the tests and `bin/guest_init.rs` reach a few items through `testing`. So
// `unreachable_pub` and rustc's dead-code analysis see the whole crate.
mod agent;
mod backend;
mod ci;
mod cli;
mod compile;
mod config;
mod control;
mod dashboard;
mod events;
mod executor;
mod journal;
mod limits;
mod live;
mod mcp;
mod paths;
mod plan;
mod printer;
mod report;
mod run;
mod run_dir;
mod sandbox;
mod sanitize;
mod scheduler;
mod schema;
mod script;
mod tools;
mod trace;
mod workflows;

pub use cli::main;

/// The kernel's confinement of an agent's `Bash` call: `wfhost __confine …` is intercepted by
/// `main.rs` before the async runtime starts (it must be single-threaded to unshare).
pub mod confine {
    pub use crate::tools::confine::{ARG, main};
}

/// What the integration tests and `bin/guest_init.rs` use from inside the crate. Not an API.
#[doc(hidden)]
pub mod testing {
    pub use crate::backend::PROVENANCE;
    pub use crate::backend::mock::fill;
    pub use crate::config::ToolsConfig;
    pub use crate::plan::FRAMING_TOKENS;
    pub use crate::sandbox::wasi::deterministic;
    pub use crate::tools::{ToolName, Toolbox};
}

/// Documented exit codes (also in `wfhost --help`).
pub mod exit {
    /// The workflow completed.
    pub const OK: u8 = 0;
    /// The script failed, or was rejected before it ran (bad meta, syntax, import).
    pub const SCRIPT: u8 = 65;
    /// Something went wrong inside wfhost.
    pub const INTERNAL: u8 = 70;
    /// A temporary provider failure (rate limit, overload, network): try again later.
    pub const TEMPORARY: u8 = 75;
    /// Refused by policy (an import outside the capability surface, no approval in CI).
    pub const REFUSED: u8 = 77;
    /// Stopped by Ctrl-C or SIGTERM; the run can be resumed.
    pub const INTERRUPTED: u8 = 130;
    /// Bad command-line usage (clap's convention).
    pub const USAGE: u8 = 2;
}

/// An error that ends wfhost with a specific exit code (see `exit`) — a usage mistake (2), a
/// script-caused failure (65), a failure worth retrying later (75), a refusal by policy (77) —
/// and an optional `hint` saying how to fix it. `cli::print_error` renders both; errors of any
/// other type exit 70 (internal). It converts into `anyhow::Error` with `?` or `.into()` and
/// stays downcastable, so context added on the way up keeps its code.
#[derive(Debug)]
pub struct ExitError {
    pub code: u8,
    pub message: String,
    pub hint: Option<String>,
}

/// 32 bytes from the kernel's random source: journal keys, job cancel secrets, MCP tokens.
pub fn random_key() -> std::io::Result<[u8; 32]> {
    use std::io::Read as _;
    let mut key = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut key)?;
    Ok(key)
}

/// An error as every command prints it: `error: …` with its causes, then the `hint: …` of the
/// `ExitError` inside it, if it has one.
pub fn render_error(e: &anyhow::Error) -> String {
    let mut out = String::new();
    let text = format!("{e:#}");
    let mut lines = text.lines();
    if let Some(first) = lines.next() {
        out.push_str(&format!("error: {first}\n"));
    }
    for l in lines {
        out.push_str(&format!("{l}\n"));
    }
    if let Some(hint) = ExitError::find(e).and_then(|x| x.hint.as_deref()) {
        out.push_str(&format!("hint: {hint}\n"));
    }
    out
}

impl ExitError {
    /// The `ExitError` somewhere in `e`'s chain (context added on the way up keeps it).
    pub fn find(e: &anyhow::Error) -> Option<&ExitError> {
        e.chain().find_map(|c| c.downcast_ref::<ExitError>())
    }

    pub fn new(code: u8, message: impl Into<String>) -> ExitError {
        ExitError {
            code,
            message: message.into(),
            hint: None,
        }
    }
    /// A mistake in how wfhost was called: a missing file, an unknown workflow name.
    pub fn usage(message: impl Into<String>) -> ExitError {
        ExitError::new(exit::USAGE, message)
    }
    /// Caused by the script: it did something the host refuses to carry on with.
    pub fn script(message: impl Into<String>) -> ExitError {
        ExitError::new(exit::SCRIPT, message)
    }
    /// May go away if retried later, e.g. a run still locked by another process.
    pub fn temporary(message: impl Into<String>) -> ExitError {
        ExitError::new(exit::TEMPORARY, message)
    }
    /// Refused by policy: an import outside the capability surface, no approval.
    pub fn refused(message: impl Into<String>) -> ExitError {
        ExitError::new(exit::REFUSED, message)
    }
    /// How to fix it, printed on its own `hint:` line.
    pub fn hint(mut self, hint: impl Into<String>) -> ExitError {
        self.hint = Some(hint.into());
        self
    }
}

impl std::fmt::Display for ExitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ExitError {}
