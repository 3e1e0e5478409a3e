//! A live run's state, folded from its event stream: the run, each phase and each agent as
//! they stand now. The control socket's `status`, `wfhost watch` and `wfhost logs` read a run
//! through this one fold (as `journal::History` is the one fold of a journal), so they never
//! disagree about what is running.

use crate::agent::{AgentState, Usage};
use crate::events::{Event, LogLevel};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};

/// How many log lines a live view keeps (older ones are in `events.jsonl`). Why 500: a screen
/// shows a few dozen, and 500 short lines are a few tens of KiB at any run size.
const KEPT_LOGS: usize = 500;

/// One agent as the views show it. `number` is what an operator types: `wfhost agent kill RUN 3`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct AgentRow {
    pub number: u32,
    #[serde(skip)]
    pub handle: u32,
    pub label: String,
    pub phase: Option<String>,
    pub state: AgentState,
    pub model: Option<String>,
    pub usage: Usage,
    pub cost_usd: f64,
    /// When it was queued, started and ended (ms since the run started).
    pub queued_ms: u64,
    pub started_ms: Option<u64>,
    pub ended_ms: Option<u64>,
    pub error: Option<String>,
    /// Restarted by an operator, or retried after a stall (how many times).
    pub restarts: u32,
    /// The start of its prompt (`agent_started`), for the agent pane.
    #[serde(skip)]
    pub prompt: Option<String>,
    /// The end of what it has said while running (`agent_output`), for the agent pane.
    #[serde(skip)]
    pub output: String,
}

/// How much of a running agent's output the views keep: a screenful and more.
const OUTPUT_TAIL: usize = 8 * 1024;

/// Agents of one state, for a phase or the whole run.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub(crate) struct Counts {
    pub queued: u32,
    pub running: u32,
    pub done: u32,
    pub failed: u32,
    pub cached: u32,
}

impl Counts {
    fn add(&mut self, state: AgentState, n: i64) {
        let slot = match state {
            AgentState::Queued => &mut self.queued,
            AgentState::Running => &mut self.running,
            AgentState::Done => &mut self.done,
            AgentState::Failed => &mut self.failed,
            AgentState::Cached => &mut self.cached,
        };
        *slot = u32::try_from((i64::from(*slot) + n).max(0)).unwrap_or(u32::MAX);
    }
    pub(crate) fn total(&self) -> u32 {
        self.queued + self.running + self.done + self.failed + self.cached
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub(crate) struct PhaseRow {
    pub title: String,
    pub counts: Counts,
    pub tokens: u64,
    pub cost_usd: f64,
    /// Declared in `meta.phases` (shown even before it has agents).
    pub declared: bool,
    pub first_ms: Option<u64>,
    pub last_ms: Option<u64>,
}

impl PhaseRow {
    /// A phase with nothing in it yet.
    pub(crate) fn titled(title: &str) -> PhaseRow {
        PhaseRow {
            title: title.to_string(),
            counts: Counts::default(),
            tokens: 0,
            cost_usd: 0.0,
            declared: false,
            first_ms: None,
            last_ms: None,
        }
    }
}

/// A permission request waiting for an operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub(crate) struct PermissionRow {
    pub id: u32,
    pub agent: Option<u32>,
    pub tool: String,
    pub input: String,
    /// What "always" would allow: `Bash(git status:*)`.
    pub always: String,
}

/// A batch of the run's agents at the Message Batches API (`--batch`), as its last poll saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub(crate) struct BatchRow {
    pub id: String,
    /// `in_progress`, `canceling` or `ended`.
    pub status: String,
    pub done: u64,
    pub total: u64,
}

impl std::fmt::Display for BatchRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status.as_str() {
            "in_progress" => write!(
                f,
                "in batch {} — {} of {} done",
                self.id, self.done, self.total
            ),
            status => write!(
                f,
                "batch {} {status} — {} of {} done",
                self.id, self.done, self.total
            ),
        }
    }
}

/// The state of a run, as its events have told it so far.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct LiveRun {
    pub run_id: String,
    pub name: String,
    pub script: String,
    pub backend: String,
    pub model: Option<String>,
    pub phases: Vec<PhaseRow>,
    pub agents: Vec<AgentRow>,
    pub counts: Counts,
    pub usage: Usage,
    pub cost_usd: f64,
    pub paused: bool,
    /// Nothing is sent before this (ms since the run started): a provider's rate or usage limit.
    pub held_until_ms: Option<u64>,
    /// `completed`, `failed`, … once the run has finished.
    pub outcome: Option<crate::report::Outcome>,
    /// The time of the last event (ms since the run started).
    pub t_ms: u64,
    pub current_phase: Option<String>,
    /// Permission requests waiting for an answer, oldest first.
    pub permissions: Vec<PermissionRow>,
    /// Batches of agents at the Message Batches API, in the order they were sent.
    pub batches: Vec<BatchRow>,
    #[serde(skip)]
    pub logs: VecDeque<(LogLevel, String)>,
    #[serde(skip)]
    by_handle: HashMap<u32, usize>,
}

impl LiveRun {
    /// The outcome as the views show it: a run that completed while agents failed never reads
    /// as a plain "completed".
    pub(crate) fn outcome_shown(&self) -> Option<String> {
        let outcome = self.outcome?;
        Some(match (outcome, self.counts.failed) {
            (_, 0) => outcome.to_string(),
            (crate::report::Outcome::Completed, n) => format!("completed ⚠ {n} agent(s) failed"),
            (other, n) => format!("{other} ({n} agent(s) failed)"),
        })
    }

    /// Applies one event (at `t_ms` since the run started).
    #[expect(
        clippy::too_many_lines,
        reason = "a fold over the event kinds: one short arm per kind"
    )]
    pub(crate) fn apply(&mut self, t_ms: u64, e: &Event) {
        self.t_ms = self.t_ms.max(t_ms);
        match e {
            Event::RunStarted {
                run_id,
                script,
                meta,
                backend,
                model,
            } => {
                self.run_id.clone_from(run_id);
                self.name.clone_from(&meta.name);
                self.script.clone_from(script);
                self.backend.clone_from(backend);
                self.model.clone_from(model);
                for p in &meta.phases {
                    self.phase_mut(&p.title).declared = true;
                }
            }
            Event::Phase { title } => {
                self.phase_mut(title);
                self.current_phase = Some(title.clone());
            }
            Event::AgentQueued {
                handle,
                label,
                phase,
            }
            | Event::AgentCached {
                handle,
                label,
                phase,
            } => {
                let state = if matches!(e, Event::AgentCached { .. }) {
                    AgentState::Cached
                } else {
                    AgentState::Queued
                };
                let number = u32::try_from(self.agents.len() + 1).unwrap_or(u32::MAX);
                self.by_handle.insert(*handle, self.agents.len());
                self.agents.push(AgentRow {
                    number,
                    handle: *handle,
                    label: label.clone(),
                    phase: phase.clone(),
                    state,
                    model: None,
                    usage: Usage::default(),
                    cost_usd: 0.0,
                    queued_ms: t_ms,
                    started_ms: None,
                    ended_ms: (state == AgentState::Cached).then_some(t_ms),
                    error: None,
                    restarts: 0,
                    prompt: None,
                    output: String::new(),
                });
                self.counts.add(state, 1);
                let p = self.phase_mut(phase.as_deref().unwrap_or(""));
                p.counts.add(state, 1);
                p.first_ms.get_or_insert(t_ms);
                p.last_ms = Some(t_ms);
            }
            Event::AgentStarted {
                handle,
                model,
                prompt,
                ..
            } => {
                self.set_state(*handle, AgentState::Running, t_ms);
                if let Some(a) = self.agent_mut(*handle) {
                    if a.started_ms.is_some() {
                        a.restarts += 1;
                    }
                    a.started_ms = Some(t_ms);
                    a.model.clone_from(model);
                    a.prompt.clone_from(prompt);
                    a.output.clear();
                }
            }
            // Shown in the agent's pane through its output (`⚙ Read src/lib.rs`, `→ 40 lines`).
            Event::ToolCall { .. } | Event::ToolResult { .. } | Event::AgentTurn { .. } => {}
            Event::AgentOutput { handle, text } => {
                if let Some(a) = self.agent_mut(*handle) {
                    a.output.push_str(text);
                    if a.output.len() > OUTPUT_TAIL {
                        let mut cut = a.output.len() - OUTPUT_TAIL;
                        while !a.output.is_char_boundary(cut) {
                            cut += 1;
                        }
                        a.output.drain(..cut);
                    }
                }
            }
            Event::AgentFinished {
                handle,
                usage,
                cost_usd,
                ..
            } => {
                self.set_state(*handle, AgentState::Done, t_ms);
                self.usage += *usage;
                self.cost_usd += cost_usd;
                if let Some(i) = self.by_handle.get(handle).copied() {
                    let a = &mut self.agents[i];
                    a.usage = *usage;
                    a.cost_usd = *cost_usd;
                    let phase = a.phase.clone().unwrap_or_default();
                    let p = self.phase_mut(&phase);
                    p.tokens += usage.input_tokens + usage.output_tokens;
                    p.cost_usd += cost_usd;
                }
            }
            Event::AgentFailed { handle, error, .. } => {
                self.set_state(*handle, AgentState::Failed, t_ms);
                if let Some(a) = self.agent_mut(*handle) {
                    a.error = Some(error.clone());
                }
            }
            Event::Log { level, text } => {
                if self.logs.len() == KEPT_LOGS {
                    self.logs.pop_front();
                }
                self.logs.push_back((*level, text.clone()));
            }
            Event::Control {
                action, wait_ms, ..
            } => match action.as_str() {
                "pause" => self.paused = true,
                "continue" => self.paused = false,
                "rate-limit" | "limit" => {
                    let until = t_ms.saturating_add(wait_ms.unwrap_or(0));
                    self.held_until_ms = Some(self.held_until_ms.map_or(until, |h| h.max(until)));
                }
                _ => {}
            },
            Event::RunFinished { outcome, .. } => {
                self.outcome = Some(*outcome);
                self.paused = false;
            }
            Event::Permission {
                id,
                agent,
                tool,
                input,
                always,
            } => self.permissions.push(PermissionRow {
                id: *id,
                agent: *agent,
                tool: tool.clone(),
                input: input.clone(),
                always: always.clone(),
            }),
            Event::PermissionAnswered { id, .. } => self.permissions.retain(|p| p.id != *id),
            Event::Budget { .. } => {}
            Event::Batch {
                id,
                status,
                done,
                total,
            } => {
                let row = BatchRow {
                    id: id.clone(),
                    status: status.clone(),
                    done: *done,
                    total: *total,
                };
                match self.batches.iter_mut().find(|b| b.id == *id) {
                    Some(b) => *b = row,
                    None => self.batches.push(row),
                }
            }
        }
    }

    fn phase_mut(&mut self, title: &str) -> &mut PhaseRow {
        // Most events are of the phase the last one was in (three per agent).
        let last = self.phases.len().checked_sub(1);
        let i = match last
            .filter(|&i| self.phases[i].title == title)
            .or_else(|| self.phases.iter().position(|p| p.title == title))
        {
            Some(i) => i,
            None => {
                self.phases.push(PhaseRow::titled(title));
                self.phases.len() - 1
            }
        };
        &mut self.phases[i]
    }

    fn agent_mut(&mut self, handle: u32) -> Option<&mut AgentRow> {
        let i = *self.by_handle.get(&handle)?;
        self.agents.get_mut(i)
    }

    fn set_state(&mut self, handle: u32, state: AgentState, t_ms: u64) {
        let Some(i) = self.by_handle.get(&handle).copied() else {
            return;
        };
        let (old, phase) = {
            let a = &mut self.agents[i];
            let old = a.state;
            a.state = state;
            if matches!(state, AgentState::Done | AgentState::Failed) {
                a.ended_ms = Some(t_ms);
            }
            (old, a.phase.clone().unwrap_or_default())
        };
        self.counts.add(old, -1);
        self.counts.add(state, 1);
        let p = self.phase_mut(&phase);
        p.counts.add(old, -1);
        p.counts.add(state, 1);
        p.last_ms = Some(t_ms);
    }

    /// The agent an operator means: its number (`3`, `#3`), or a label that names exactly one
    /// agent.
    pub(crate) fn find(&self, agent: &str) -> Result<&AgentRow, String> {
        let a = agent.trim().trim_start_matches('#');
        if let Ok(n) = a.parse::<u32>() {
            return self.agents.iter().find(|r| r.number == n).ok_or_else(|| {
                format!(
                    "there is no agent {n} in this run (it has {} so far)",
                    self.agents.len()
                )
            });
        }
        let matches: Vec<&AgentRow> = self.agents.iter().filter(|r| r.label == a).collect();
        match matches.as_slice() {
            [one] => Ok(one),
            [] => Err(format!("no agent is labelled `{a}` in this run")),
            many => Err(format!(
                "{} agents are labelled `{a}` (numbers {}): name one by its number",
                many.len(),
                many.iter()
                    .take(10)
                    .map(|r| r.number.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    /// The agent with this handle.
    pub(crate) fn by_handle(&self, handle: u32) -> Option<&AgentRow> {
        self.agents.get(*self.by_handle.get(&handle)?)
    }

    /// `running`, `paused`, or the outcome.
    pub(crate) fn status(&self) -> &str {
        match (&self.outcome, self.paused) {
            (Some(o), _) => o.as_str(),
            (None, true) => "paused",
            (None, false) => "running",
        }
    }

    /// The status as a view shows it at `now_ms`: a held pool says for how long.
    pub(crate) fn status_at(&self, now_ms: u64) -> String {
        match self.held_until_ms {
            Some(until) if self.outcome.is_none() && !self.paused && until > now_ms => format!(
                "rate limited, continuing in {} s",
                (until - now_ms).div_ceil(1000)
            ),
            _ => self.status().to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_pool_counts_down_in_the_status() {
        let mut run = LiveRun::default();
        run.apply(
            2_000,
            &Event::Control {
                action: "rate-limit".into(),
                agent: None,
                by: "wfhost".into(),
                detail: None,
                wait_ms: Some(3_000),
            },
        );
        assert_eq!(run.status_at(2_100), "rate limited, continuing in 3 s");
        assert_eq!(run.status_at(4_500), "rate limited, continuing in 1 s");
        assert_eq!(run.status_at(5_000), "running");
    }

    fn queued(handle: u32, label: &str, phase: &str) -> Event {
        Event::AgentQueued {
            handle,
            label: label.into(),
            phase: Some(phase.into()),
        }
    }

    #[test]
    fn counts_follow_each_agent_through_its_states() {
        let mut run = LiveRun::default();
        run.apply(0, &queued(1, "a", "Review"));
        run.apply(1, &queued(2, "b", "Review"));
        run.apply(
            2,
            &Event::AgentStarted {
                handle: 1,
                label: "a".into(),
                model: None,
                prompt: None,
            },
        );
        run.apply(
            3,
            &Event::AgentFailed {
                handle: 1,
                label: "a".into(),
                error: "x".into(),
                duration_ms: 1,
            },
        );
        let c = run.counts;
        assert_eq!((c.queued, c.running, c.failed), (1, 0, 1));
        assert_eq!(run.phases[0].counts.total(), 2);
        assert_eq!(run.find("2").unwrap().label, "b");
        assert_eq!(run.find("#1").unwrap().state, AgentState::Failed);
        assert!(run.find("9").unwrap_err().contains("no agent 9"));
        run.apply(4, &queued(3, "b", "Review"));
        assert!(run.find("b").unwrap_err().contains("numbers 2, 3"));
    }
}
