//! Every limit a run is held to, with why its default is what it is. Each is configurable
//! on the command line; a script that hits one fails with an error naming the limit and the
//! flag that raises it, and the host stays healthy.

use serde::Serialize;
use std::time::Duration;

#[derive(Debug, Clone, Serialize)]
pub struct Limits {
    /// Linear memory of the guest, in bytes.
    /// Why 256 MiB: QuickJS plus the prelude needs ~2 MiB; a workflow holds prompts and agent
    /// results, rarely more than tens of MiB. 256 MiB leaves room for large fan-outs while a
    /// runaway allocation loop is stopped long before it can hurt the machine (or CI runner).
    pub max_memory: u64,
    /// Synchronous execution without yielding to the host (waiting for an agent or timer).
    /// Why 30 s: the reference runtime stops synchronous code after 30 s too; honest workflow
    /// code spends microseconds between awaits, so 30 s only ever catches an infinite loop.
    #[serde(with = "humantime_serde_compat")]
    pub cpu_timeout: Duration,
    /// Every byte one run may make the host write or keep — log and console lines, phase
    /// titles, agent labels, the result, the guest's captured stdout/stderr — all charged to
    /// one ledger (sandbox/capabilities/ledger.rs).
    /// Why 16 MiB: a report is read by people and CI logs, and the journal must not be a way to
    /// fill a disk; more is a loop printing, not a workflow's output.
    pub max_output_bytes: u64,
    /// Narrator lines (log, console, phase titles) one run may write.
    /// Why 100 000: ~100 lines per agent at the 1000-agent cap.
    pub max_log_lines: u64,
    /// Agents one run may start (the reference's cap). Why 1000: a loop that never terminates
    /// (typically `while (budget.remaining() > 0)` with no budget set) must not spend without
    /// bound; 1000 is far above any real fan-out.
    pub max_agents: u32,
    /// Agents running at once. Why `min(16, max(2, cores − 2))`: the reference's formula —
    /// enough parallelism for I/O-bound model calls while leaving cores for the host and tools.
    pub concurrency: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_memory: 256 << 20,
            cpu_timeout: Duration::from_secs(30),
            max_output_bytes: 16 << 20,
            max_log_lines: 100_000,
            max_agents: 1000,
            concurrency: default_concurrency(),
        }
    }
}

pub fn default_concurrency() -> usize {
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
    16.min(2.max(cores.saturating_sub(2)))
}

/// A limit a run hit: which one, and the flag that raises it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitHit {
    Memory,
    Cpu,
    /// The output ledger's bytes.
    OutputBytes,
    /// The output ledger's lines.
    OutputLines,
}

impl LimitHit {
    pub fn describe(self, limits: &Limits) -> String {
        let (what, flag) = match self {
            LimitHit::Memory => (
                format!(
                    "the script exceeded the memory limit ({})",
                    bytesize::ByteSize(limits.max_memory).display().iec()
                ),
                "--max-memory",
            ),
            LimitHit::Cpu => (
                format!(
                    "the script ran for {} without waiting on an agent or timer (an infinite loop?) and was stopped",
                    humantime::format_duration(limits.cpu_timeout)
                ),
                "--cpu-timeout",
            ),
            LimitHit::OutputBytes => (
                format!(
                    "the script made the host write more than {} of output (logs, phase titles, agent labels, its result)",
                    bytesize::ByteSize(limits.max_output_bytes).display().iec()
                ),
                "--max-output-bytes",
            ),
            LimitHit::OutputLines => (
                format!(
                    "the script wrote more than {} log lines and phase titles",
                    limits.max_log_lines
                ),
                "--max-log-lines",
            ),
        };
        format!("{what}\nhint: raise the limit with `{flag}` if this is expected")
    }
}

mod humantime_serde_compat {
    use serde::Serializer;
    use std::time::Duration;
    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }
}
