//! Every limit a run is held to, with why its default is what it is. Each is configurable
//! on the command line; a script that hits one fails with an error naming the limit and the
//! flag that raises it, and the host stays healthy.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The largest script (or child workflow) wfhost will compile.
/// Why 4 MiB: published workflow scripts are tens of KiB; QuickJS compiles inside the guest's
/// 256 MiB, and a 100 MB script used to end in "wasm trap: unreachable". Large inputs belong in
/// `args` or in files agents read.
pub(crate) const MAX_SCRIPT_BYTES: usize = 4 << 20;

/// How deeply `--args` JSON (and a script's JSON to the host) may nest. Why 128: serde_json's
/// own recursion limit; deeper JSON is refused by name rather than arriving as a string.
pub(crate) const MAX_JSON_DEPTH: usize = 128;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub(crate) struct Limits {
    /// Linear memory of the guest, in bytes.
    /// Why 256 MiB: QuickJS plus the prelude needs ~2 MiB; a workflow holds prompts and agent
    /// results, rarely more than tens of MiB. 256 MiB leaves room for large fan-outs while a
    /// runaway allocation loop is stopped long before it can hurt the machine (or CI runner).
    pub max_memory: u64,
    /// Synchronous execution without yielding to the host (waiting for an agent or timer).
    /// Why 30 s: the reference runtime stops synchronous code after 30 s too; honest workflow
    /// code spends microseconds between awaits, so 30 s only ever catches an infinite loop.
    #[serde(with = "humantime_serde_compat")]
    #[schemars(with = "String")]
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
    /// The largest prompt one agent may be sent.
    /// Why 8 MiB: the largest context windows (1M tokens) hold about 4 MB of text; a prompt
    /// twice that size cannot be a real request, and the host copies every prompt it queues.
    #[serde(default = "default_max_prompt_bytes")]
    pub max_prompt_bytes: u64,
    /// Bytes of prompts the host may hold for agents queued or running at once.
    /// Why 256 MiB: the host copies each prompt out of the guest; 40 agents of 10 MB used to
    /// hold 550 MB of host memory while the guest stayed under its own 256 MiB. This keeps the
    /// host's share no larger than the guest's.
    #[serde(default = "default_max_queued_bytes")]
    pub max_queued_bytes: u64,
    /// Agents that may fail before the run stops as failed (`None`: no limit; failures are
    /// still reported, grouped by error). Why no default: the reference lets a script decide
    /// what a failed agent means; CI pipelines that want a bound say so.
    #[serde(default)]
    pub max_failed_agents: Option<u32>,
    /// Tokens, input and output, all agents together, after which no new agent starts
    /// (`--max-tokens`; beside `--budget-tokens`, the reference's output-only budget, and
    /// `--max-cost`). Why no default: what a run may read is the user's call; agents that read
    /// whole repositories spend most of their tokens on input, which `--budget-tokens` does not
    /// see.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    /// Wall-clock time one run may take, agents and timers included.
    /// Why 12 h: a script can keep itself alive forever with self-re-arming timers or agents,
    /// and CI must never hang; 12 h is longer than any workflow seen, even hundreds of coding
    /// agents. A run stopped by it keeps its journal and can be resumed.
    #[serde(with = "humantime_serde_compat", default = "default_timeout")]
    #[schemars(with = "String")]
    pub timeout: Duration,
    /// How long one agent's backend may show no progress (no stream event from the Messages
    /// API, no output from `claude` or a command) before the call is cancelled and retried,
    /// once; a second stall fails the agent. `agent(prompt, {stallMs})` sets it per agent.
    /// Why 10 min: a coding agent's longest silent stretch is one tool call (a test suite, a
    /// build); the reference's most-reported failure is an agent stuck for hours while the run
    /// shows "running".
    #[serde(with = "humantime_serde_compat", default = "default_stall_timeout")]
    #[schemars(with = "String")]
    pub stall_timeout: Duration,
    /// Wall-clock time one agent may take, retries and schema re-asks included, however much
    /// progress it shows; then it fails with an error naming this limit.
    /// Why 1 h: twice the `claude` backend's own 30 min call timeout, so a working agent is
    /// never cut short, while no agent can keep a run alive for the 12 h of `--timeout`.
    #[serde(with = "humantime_serde_compat", default = "default_agent_timeout")]
    #[schemars(with = "String")]
    pub agent_timeout: Duration,
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
            timeout: default_timeout(),
            max_failed_agents: None,
            max_tokens: None,
            max_prompt_bytes: default_max_prompt_bytes(),
            max_queued_bytes: default_max_queued_bytes(),
            concurrency: default_concurrency(),
            stall_timeout: default_stall_timeout(),
            agent_timeout: default_agent_timeout(),
        }
    }
}

fn default_stall_timeout() -> Duration {
    Duration::from_secs(10 * 60)
}

fn default_agent_timeout() -> Duration {
    Duration::from_secs(60 * 60)
}

fn default_max_prompt_bytes() -> u64 {
    8 << 20
}

fn default_max_queued_bytes() -> u64 {
    256 << 20
}

fn default_timeout() -> Duration {
    Duration::from_secs(12 * 60 * 60)
}

pub(crate) fn default_concurrency() -> usize {
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
    16.min(2.max(cores.saturating_sub(2)))
}

/// A limit a run hit: which one, and the flag that raises it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LimitHit {
    Memory,
    Cpu,
    /// The output ledger's bytes.
    OutputBytes,
    /// The output ledger's lines.
    OutputLines,
    /// The run's wall-clock time (`--timeout`).
    WallClock,
    /// More agents failed than `--max-failed-agents` allows.
    FailedAgents,
    /// Not a limit of the script's: the provider's usage or spend limit is reached.
    UsageLimit,
    /// Not a limit of the script's: the run journal could not be written (a full disk), so the
    /// run stops before it finishes work it could not keep (`Journal::failure` says why).
    Journal,
    /// Not a limit of the script's: the backend's endpoint cannot be reached (refused, no such
    /// host) after its retries — no other agent would get through either.
    Unreachable,
    /// Not a limit of the script's: the backend's endpoint refuses its configuration (a TLS
    /// certificate that is not trusted): nothing gets through until the configuration changes.
    Misconfigured,
}

impl LimitHit {
    pub(crate) fn describe(self, limits: &Limits) -> String {
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
            LimitHit::WallClock => (
                format!(
                    "the run took longer than {} (a script that keeps itself alive with timers or agents?) and was stopped; its journal is kept",
                    humantime::format_duration(limits.timeout)
                ),
                "--timeout",
            ),
            LimitHit::UsageLimit => (
                "the provider says a usage or spend limit is reached, so the run stopped starting agents: every agent that finished is kept".to_string(),
                "",
            ),
            LimitHit::FailedAgents => (
                format!(
                    "more than {} agents failed, so the run stopped (see the failures below)",
                    limits.max_failed_agents.unwrap_or(0)
                ),
                "--max-failed-agents",
            ),
            LimitHit::Journal => (
                "the run journal could not be written (is the disk full?), so the run stopped: nothing it finished is lost".to_string(),
                "",
            ),
            LimitHit::Unreachable => (
                "the backend cannot be reached, so the run stopped starting agents: every agent that finished is kept".to_string(),
                "",
            ),
            LimitHit::Misconfigured => (
                "the backend's endpoint refuses this configuration, so the run stopped starting agents: every agent that finished is kept".to_string(),
                "",
            ),
            LimitHit::OutputLines => (
                format!(
                    "the script wrote more than {} log lines and phase titles",
                    limits.max_log_lines
                ),
                "--max-log-lines",
            ),
        };
        if flag.is_empty() {
            return what;
        }
        format!("{what}\nhint: raise the limit with `{flag}` if this is expected")
    }
}

mod humantime_serde_compat {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }
    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

/// What the command line asked for: each ceiling, or `None` where no flag was given.
#[derive(Debug, Clone, Default)]
pub(crate) struct Requested {
    pub budget_tokens: Option<u64>,
    pub max_cost: Option<f64>,
    pub max_memory: Option<u64>,
    pub cpu_timeout: Option<Duration>,
    pub max_output_bytes: Option<u64>,
    pub max_log_lines: Option<u64>,
    pub max_agents: Option<u32>,
    pub timeout: Option<Duration>,
    pub max_failed_agents: Option<u32>,
    pub max_tokens: Option<u64>,
    pub max_prompt_bytes: Option<u64>,
    pub max_queued_bytes: Option<u64>,
    pub concurrency: Option<usize>,
    pub stall_timeout: Option<Duration>,
    pub agent_timeout: Option<Duration>,
}

/// The ceilings a run holds to: its spending ceilings and its limits. Stored with the run (in
/// its journal's `run_started` record) so `resume` keeps them: a run interrupted under
/// `--budget-tokens 20` must not resume without a budget.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub(crate) struct Ceilings {
    pub budget_tokens: Option<u64>,
    pub max_cost: Option<f64>,
    pub limits: Limits,
}

/// A ceiling a resume's flag raises above what the run was started with: allowed only as an
/// operator's decision (`--raise`, or a yes on a terminal), and journaled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Raise {
    /// The ceiling's name as in the report (`max_cost`).
    pub ceiling: String,
    pub old: String,
    pub new: String,
}

impl Raise {
    /// The flag that asked for it: `--max-cost`.
    pub(crate) fn flag(&self) -> String {
        format!("--{}", self.ceiling.replace('_', "-"))
    }
}

/// The raises an operator allowed on a resume: journaled (a `ceilings_raised` record) and
/// shown by `runs show` and `trace`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Raised {
    pub raises: Vec<Raise>,
    /// Who decided, and how (`--raise` or `terminal`).
    pub by: String,
    pub at: String,
}

impl Raised {
    /// `max_cost 0.005 → 0.05, max_agents 3 → 10`.
    pub(crate) fn describe(&self) -> String {
        self.raises
            .iter()
            .map(|r| format!("{} {} → {}", r.ceiling, r.old, r.new))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// What a resume's flags do to the stored ceilings.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    pub tightened: Vec<&'static str>,
    pub raised: Vec<Raise>,
}

/// Keeps the stored value unless a flag asks for another; a flag that asks for more is noted
/// as a raise (the caller decides whether it may stand).
fn pick<T: PartialOrd + Copy + std::fmt::Debug>(
    name: &'static str,
    stored: Option<T>,
    flag: Option<T>,
    changes: &mut Changes,
) -> Option<T> {
    match (stored, flag) {
        (s, None) => s,
        (Some(s), Some(f)) if f > s => {
            changes.raised.push(Raise {
                ceiling: name.to_string(),
                old: format!("{s:?}"),
                new: format!("{f:?}"),
            });
            Some(f)
        }
        (s, Some(f)) => {
            if s != Some(f) {
                changes.tightened.push(name);
            }
            Some(f)
        }
    }
}

/// The same for a limit that always has a value.
fn pick_set<T: PartialOrd + Copy + std::fmt::Debug>(
    name: &'static str,
    stored: T,
    flag: Option<T>,
    changes: &mut Changes,
) -> T {
    pick(name, Some(stored), flag, changes).unwrap_or(stored)
}

impl Ceilings {
    /// A new run's ceilings: the flags given, else `base` (defaults and configuration).
    pub(crate) fn new(requested: &Requested, base: &Limits) -> Ceilings {
        Ceilings {
            budget_tokens: requested.budget_tokens,
            max_cost: requested.max_cost,
            limits: Limits {
                max_memory: requested.max_memory.unwrap_or(base.max_memory),
                cpu_timeout: requested.cpu_timeout.unwrap_or(base.cpu_timeout),
                max_output_bytes: requested.max_output_bytes.unwrap_or(base.max_output_bytes),
                max_log_lines: requested.max_log_lines.unwrap_or(base.max_log_lines),
                max_agents: requested.max_agents.unwrap_or(base.max_agents),
                timeout: requested.timeout.unwrap_or(base.timeout),
                max_failed_agents: requested.max_failed_agents.or(base.max_failed_agents),
                max_tokens: requested.max_tokens.or(base.max_tokens),
                max_prompt_bytes: requested.max_prompt_bytes.unwrap_or(base.max_prompt_bytes),
                max_queued_bytes: requested.max_queued_bytes.unwrap_or(base.max_queued_bytes),
                concurrency: requested.concurrency.unwrap_or(base.concurrency),
                stall_timeout: requested.stall_timeout.unwrap_or(base.stall_timeout),
                agent_timeout: requested.agent_timeout.unwrap_or(base.agent_timeout),
            },
        }
    }

    /// A resume's ceilings: the stored ones, each changed by a flag that asks for another
    /// value; what the flags tightened and what they raised. A raise stands only as an
    /// operator's decision (`cli::run` asks for it): a flag slipped into a resume by accident,
    /// or a script's caller, cannot lift a ceiling the run was started under.
    /// `--concurrency` is a pace, not a ceiling: it may go either way.
    pub(crate) fn resumed(&self, r: &Requested) -> (Ceilings, Changes) {
        let mut t = Changes::default();
        let l = &self.limits;
        let cpu_timeout = pick_set("cpu_timeout", l.cpu_timeout, r.cpu_timeout, &mut t);
        let timeout = pick_set("timeout", l.timeout, r.timeout, &mut t);
        let c = Ceilings {
            budget_tokens: pick("budget_tokens", self.budget_tokens, r.budget_tokens, &mut t),
            max_cost: pick("max_cost", self.max_cost, r.max_cost, &mut t),
            limits: Limits {
                max_memory: pick_set("max_memory", l.max_memory, r.max_memory, &mut t),
                cpu_timeout,
                max_output_bytes: pick_set(
                    "max_output_bytes",
                    l.max_output_bytes,
                    r.max_output_bytes,
                    &mut t,
                ),
                max_log_lines: pick_set("max_log_lines", l.max_log_lines, r.max_log_lines, &mut t),
                max_agents: pick_set("max_agents", l.max_agents, r.max_agents, &mut t),
                timeout,
                max_failed_agents: pick(
                    "max_failed_agents",
                    l.max_failed_agents,
                    r.max_failed_agents,
                    &mut t,
                ),
                max_tokens: pick("max_tokens", l.max_tokens, r.max_tokens, &mut t),
                max_prompt_bytes: pick_set(
                    "max_prompt_bytes",
                    l.max_prompt_bytes,
                    r.max_prompt_bytes,
                    &mut t,
                ),
                max_queued_bytes: pick_set(
                    "max_queued_bytes",
                    l.max_queued_bytes,
                    r.max_queued_bytes,
                    &mut t,
                ),
                concurrency: r.concurrency.unwrap_or(l.concurrency),
                stall_timeout: pick_set("stall_timeout", l.stall_timeout, r.stall_timeout, &mut t),
                agent_timeout: pick_set("agent_timeout", l.agent_timeout, r.agent_timeout, &mut t),
            },
        };
        (c, t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resume_keeps_tightens_and_notes_raises() {
        let stored = Ceilings::new(
            &Requested {
                budget_tokens: Some(20),
                ..Requested::default()
            },
            &Limits::default(),
        );
        let (kept, changes) = stored.resumed(&Requested::default());
        assert_eq!(
            (kept, changes.tightened.len(), changes.raised.len()),
            (stored.clone(), 0, 0)
        );
        let (c, changes) = stored.resumed(&Requested {
            budget_tokens: Some(10),
            max_cost: Some(1.0),
            cpu_timeout: Some(Duration::from_secs(5)),
            concurrency: Some(1),
            ..Requested::default()
        });
        assert_eq!(
            (
                c.budget_tokens,
                c.max_cost,
                c.limits.concurrency,
                c.limits.cpu_timeout
            ),
            (Some(10), Some(1.0), 1, Duration::from_secs(5))
        );
        assert_eq!(
            changes.tightened,
            vec!["cpu_timeout", "budget_tokens", "max_cost"]
        );
        assert!(changes.raised.is_empty());
        let (c, changes) = stored.resumed(&Requested {
            budget_tokens: Some(30),
            max_agents: Some(5),
            ..Requested::default()
        });
        assert_eq!(c.budget_tokens, Some(30));
        assert_eq!(changes.tightened, vec!["max_agents"]);
        assert_eq!(
            changes.raised,
            vec![Raise {
                ceiling: "budget_tokens".into(),
                old: "20".into(),
                new: "30".into()
            }]
        );
        assert_eq!(changes.raised[0].flag(), "--budget-tokens");
        let json = serde_json::to_string(&stored).unwrap();
        assert_eq!(serde_json::from_str::<Ceilings>(&json).unwrap(), stored);
    }
}
