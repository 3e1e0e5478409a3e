//! wfhost: a sandboxed host for model-written workflow scripts.
//!
//! The data path, one module per stage:
//! `script` (parse, meta) → `compile` (guest, bytecode) → `sandbox` (Wasmtime, capabilities)
//! → `scheduler` (bounded pool) → `backend` (who answers agents) → `events` / `report`.

pub mod backend;
pub mod cli;
pub mod compile;
pub mod config;
pub mod events;
pub mod journal;
pub mod limits;
pub mod printer;
pub mod report;
pub mod run;
pub mod sandbox;
pub mod scheduler;
pub mod schema;
pub mod script;
pub mod trace;
pub mod workflows;

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

/// A mistake in how wfhost was called (exit code 2): a missing file, a bad flag value.
#[derive(Debug)]
pub struct Usage(pub String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// An error that may go away if retried later (exit code 75), e.g. a run still locked.
#[derive(Debug)]
pub struct Temporary(pub String);

impl std::fmt::Display for Temporary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Temporary {}

/// An error that means "refused by policy" (exit code 77).
#[derive(Debug)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}
