//! The run report: what `--json` prints when a run ends, and what the exit code is made from.

use crate::agent::Usage;
use crate::exit;
use serde::Serialize;
use serde_json::Value;

/// How a run ended: one type for the report, the journal's `run_finished`, the
/// `run_finished` event, the live view and the dashboard (as JSON: the lowercase name).
#[derive(
    Debug, Clone, Copy, Serialize, serde::Deserialize, PartialEq, Eq, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Outcome {
    /// The script returned.
    Completed,
    /// The script threw, or was stopped by a limit.
    Failed,
    /// The script was refused before it ran (meta, syntax, import).
    Rejected,
    /// An operator or a signal stopped it (resumable).
    Stopped,
}

impl Outcome {
    /// The word the JSON, the journal and the views use.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::Failed => "failed",
            Outcome::Rejected => "rejected",
            Outcome::Stopped => "stopped",
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub(crate) struct RunReport {
    pub run_id: String,
    pub outcome: Outcome,
    /// The script's return value (`null` when it returned nothing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The script's stack trace, when it failed with an Error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stack: Option<String>,
    /// Narrator lines: log(), console.*, and runtime notes such as `parallel[2] failed: …`.
    pub logs: Vec<String>,
    /// The agents that failed, grouped by error (most frequent first): a run never reads as a
    /// plain success while some of its agents returned `null`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<FailureGroup>,
    /// Agents started.
    pub agents: u32,
    pub usage: ReportUsage,
    pub backend: String,
    /// The backend's default model (agents may name their own).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub cost: Cost,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend_stats: Option<Value>,
    pub duration_ms: u64,
    /// The run's journal directory (for `wfhost resume`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_dir: Option<String>,
    pub timings: Timings,
    /// The ceilings the run held to (`None` for a script rejected before it ran).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ceilings: Option<crate::limits::Ceilings>,
    /// On a resume: that the run's stored ceilings were kept, and which a flag tightened.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ceilings_note: Option<String>,
    pub exit_code: u8,
}

/// Where the time of a run went, in milliseconds (fractional).
#[derive(Debug, Clone, Default, Serialize, schemars::JsonSchema)]
pub(crate) struct Timings {
    /// Loading the guest: deserialising the cached artifact, or compiling it with Cranelift.
    pub guest_load_ms: f64,
    /// `cache`, `compiled` or `compiled (no cache)`.
    pub guest_source: String,
    /// Compiling the script to QuickJS bytecode (0 when it came from the cache).
    pub compile_ms: f64,
    pub bytecode_cached: bool,
    /// Instantiating a fresh guest for the run.
    pub instantiate_ms: f64,
    /// From the start of the script to its outcome (agents included).
    pub run_ms: f64,
}

/// Agents that failed with the same error.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub(crate) struct FailureGroup {
    /// The error's first line (at most 200 characters).
    pub error: String,
    pub count: u32,
    /// The first few agents' labels.
    pub agents: Vec<String>,
}

/// Groups (label, error) pairs by the error's first line, most frequent first.
/// The JSON Schema of the `--json` report (`wfhost schema report`, docs/schemas/): generated
/// from the type the report is written from, so it cannot drift from it.
pub(crate) fn schema() -> Value {
    schema_of::<RunReport>("wfhost --json report")
}

/// The JSON Schema of `T` as wfhost writes it: serialize mode (a field skipped when empty is
/// not required), not what would be read.
pub(crate) fn schema_of<T: schemars::JsonSchema>(title: &str) -> Value {
    let mut schema = schemars::generate::SchemaSettings::default()
        .for_serialize()
        .into_generator()
        .into_root_schema_for::<T>()
        .to_value();
    schema["title"] = title.into();
    schema
}

pub(crate) fn group_failures(failures: &[(String, String)]) -> Vec<FailureGroup> {
    let mut groups: Vec<FailureGroup> = Vec::new();
    for (label, error) in failures {
        let first: String = error
            .lines()
            .next()
            .unwrap_or("")
            .chars()
            .take(200)
            .collect();
        match groups.iter_mut().find(|g| g.error == first) {
            Some(g) => {
                g.count += 1;
                if g.agents.len() < 5 {
                    g.agents.push(label.clone());
                }
            }
            None => groups.push(FailureGroup {
                error: first,
                count: 1,
                agents: vec![label.clone()],
            }),
        }
    }
    groups.sort_by_key(|g| std::cmp::Reverse(g.count));
    groups
}

/// What the run cost in USD: agents that ran now (`total_usd`, and by phase), and the answers
/// served from the journal (`cached_usd`, paid by an earlier attempt).
#[derive(Debug, Clone, Default, Serialize, schemars::JsonSchema)]
pub(crate) struct Cost {
    pub total_usd: f64,
    pub cached_usd: f64,
    pub by_phase: std::collections::BTreeMap<String, f64>,
    /// Models that answered without a price (`[prices."MODEL"]`): their cost is unknown and
    /// counted as 0 above, never guessed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unpriced_models: Vec<String>,
}

pub(crate) fn round_usd(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

/// Whole milliseconds (a duration of more than 584 million years reads as `u64::MAX`).
pub(crate) fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

pub(crate) fn ms(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

#[derive(Debug, Clone, Default, Serialize, schemars::JsonSchema)]
pub(crate) struct ReportUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cache_read_input_tokens: u64,
    pub agents_done: u32,
    pub agents_failed: u32,
    pub agents_cached: u32,
}

impl ReportUsage {
    pub(crate) fn new(u: Usage, done: u32, failed: u32, cached: u32) -> Self {
        ReportUsage {
            input_tokens: u.input_tokens,
            output_tokens: u.output_tokens,
            cache_creation_input_tokens: u.cache_creation_input_tokens,
            cache_read_input_tokens: u.cache_read_input_tokens,
            agents_done: done,
            agents_failed: failed,
            agents_cached: cached,
        }
    }
}

/// How a run's agents fared, for its exit code.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct AgentTally {
    pub done: u32,
    pub failed: u32,
    pub cached: u32,
    /// Failures that may go away on their own (rate limits, overload, network).
    pub transient: u32,
}

/// The exit code of a run that got as far as a report.
pub(crate) fn exit_code(outcome: Outcome, agents: AgentTally, internal: bool) -> u8 {
    let transient_failures = agents.transient;
    match outcome {
        // A script that returned although every agent it started failed (a 429 storm, a wrong
        // base_url) did no work: never a green success. 75 when the failures may pass.
        Outcome::Completed if agents.failed > 0 && agents.done == 0 && agents.cached == 0 => {
            if transient_failures > 0 {
                exit::TEMPORARY
            } else {
                exit::SCRIPT
            }
        }
        Outcome::Completed => exit::OK,
        Outcome::Stopped => exit::INTERRUPTED,
        _ if internal => exit::INTERNAL,
        // A script that failed after agents failed for temporary reasons will likely pass on
        // a retry: say so, so CI can retry instead of reporting a broken script.
        Outcome::Failed if transient_failures > 0 => exit::TEMPORARY,
        _ => exit::SCRIPT,
    }
}
