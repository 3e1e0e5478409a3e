//! [`RunStatus`]: a run's state in one shape, whoever asks and whenever. The control socket's
//! `status` builds it from the live fold; `workflow_status` (MCP) gets that from the socket
//! while the run lives and builds the same struct from the run directory once it has ended (its
//! event log replayed through the same fold, the journal saying how it ended). One struct, one
//! casing (snake_case, as the control protocol and the events are): a client reads a running
//! and a finished run alike.

use crate::agent::{AgentState, Usage};
use crate::journal::History;
use crate::live::{Counts, LiveRun, PermissionRow, PhaseRow};
use crate::run_dir::RunDir;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// How many failed agents a status lists. Why 20: enough to see a pattern, and a status stays
/// a screenful when hundreds fail (the rest are in the run's journal and `wfhost runs show`).
const LISTED_FAILURES: usize = 20;

/// How much of a failed agent's error a status shows: its first line, at most this many chars.
const ERROR_CHARS: usize = 200;

/// A run's state: the reply to `status` on the control socket and of MCP's `workflow_status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub(crate) struct RunStatus {
    pub run_id: String,
    pub name: String,
    /// `running`, `paused` or `stopping` while the run lives; then how it ended: `completed`,
    /// `failed`, `rejected`, `stopped`, `interrupted` or `crashed`.
    pub status: String,
    pub paused: bool,
    pub backend: String,
    pub agents: Counts,
    pub usage: Usage,
    pub cost_usd: f64,
    pub elapsed_ms: u64,
    /// The phase the script is in (its last `phase()`).
    pub phase: Option<String>,
    /// Every phase, declared or entered, with its counts, tokens and cost.
    pub phases: Vec<PhaseRow>,
    /// Agents waiting for a person to allow a tool (answer with `answer`).
    pub permissions: Vec<PermissionRow>,
    /// Which agents failed and why (the first line), the first 20.
    pub failed: Vec<FailedAgent>,
    /// Batches of agents at the Message Batches API (`--batch`): `in batch ID — n of N done`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub batches: Vec<crate::live::BatchRow>,
    /// Where the run's files are (given by readers that know it: MCP, not the socket).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_dir: Option<PathBuf>,
}

/// A failed agent in a status: its number (what `agent kill RUN N` takes), label and error.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub(crate) struct FailedAgent {
    pub agent: u32,
    pub label: String,
    pub error: Option<String>,
}

impl RunStatus {
    /// From a run's live fold; `stopping` when a stop was asked and the run has not ended.
    pub(crate) fn live(run_id: &str, live: &LiveRun, stopping: bool, elapsed_ms: u64) -> RunStatus {
        RunStatus {
            run_id: run_id.to_string(),
            name: live.name.clone(),
            status: if stopping && live.outcome.is_none() {
                "stopping".into()
            } else {
                live.status().to_string()
            },
            paused: live.paused,
            backend: live.backend.clone(),
            agents: live.counts,
            usage: live.usage,
            cost_usd: live.cost_usd,
            elapsed_ms,
            phase: live.current_phase.clone(),
            phases: live.phases.clone(),
            permissions: live.permissions.clone(),
            failed: live
                .agents
                .iter()
                .filter(|a| a.state == AgentState::Failed)
                .take(LISTED_FAILURES)
                .map(|a| FailedAgent {
                    agent: a.number,
                    label: a.label.clone(),
                    error: a
                        .error
                        .as_deref()
                        .and_then(|e| e.lines().next())
                        .map(|l| l.chars().take(ERROR_CHARS).collect()),
                })
                .collect(),
            batches: live.batches.clone(),
            run_dir: None,
        }
    }

    /// A run that is not live (ended, crashed, or between attempts): its event log replayed
    /// through the views' fold, with the journal's word on how it ended. A run without an event
    /// log (older runs) is told from its journal alone.
    pub(crate) fn from_run_dir(dir: &RunDir, h: &History) -> RunStatus {
        let mut live = LiveRun::default();
        let replayed = std::fs::read_to_string(dir.events()).is_ok_and(|text| {
            for (t_ms, e) in text.lines().filter_map(crate::events::from_line) {
                live.apply(t_ms, &e);
            }
            true
        });
        if !replayed {
            live.name.clone_from(&h.name);
            live.backend.clone_from(&h.backend);
            live.usage = h.usage;
            live.counts = Counts {
                done: h.done(),
                failed: h.failed(),
                cached: h.served,
                ..Counts::default()
            };
            live.phases = h.phases.iter().map(|t| PhaseRow::titled(t)).collect();
            live.current_phase = h.phases.last().cloned();
            live.t_ms = h.duration_ms;
        }
        let mut status = RunStatus::live(dir.id(), &live, false, live.t_ms.max(h.duration_ms));
        let lifecycle = h.status_now(dir.is_running());
        status.status = lifecycle.as_str().to_string();
        status.paused = h.paused && dir.is_running();
        if status.name.is_empty() {
            status.name.clone_from(&h.name);
        }
        if status.backend.is_empty() {
            status.backend.clone_from(&h.backend);
        }
        // Not live: nobody is asked any more.
        status.permissions.clear();
        status.run_dir = Some(dir.path().to_path_buf());
        status
    }

    /// As JSON (a struct of strings, numbers and lists: it always serializes).
    pub(crate) fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Event;

    #[test]
    fn a_status_reads_back_as_it_was_written() {
        let mut live = LiveRun::default();
        live.apply(
            0,
            &Event::AgentQueued {
                handle: 1,
                label: "a".into(),
                phase: Some("Review".into()),
            },
        );
        let s = RunStatus::live("r1", &live, true, 5);
        assert_eq!(s.status, "stopping");
        assert_eq!(s.agents.queued, 1);
        let back: RunStatus = serde_json::from_value(s.to_value()).unwrap();
        assert_eq!(back, s);
        assert!(s.to_value().get("run_dir").is_none(), "{}", s.to_value());
    }
}
