//! One fold over a run's journal records. `runs`, `runs show`, `trace` and the resume cache all
//! read a run through this, so they can never disagree about what happened.

use super::{Loaded, Record};
use crate::agent::{AgentState, Usage};
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;

/// Where a run is in its life: how it ended, as its journal tells it (`Running` and `Paused`
/// come from the lock and the last control command, not from an end record).
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Lifecycle {
    /// A live process holds the run's lock.
    Running,
    Completed,
    Failed,
    Rejected,
    /// Stopped by Ctrl-C or SIGTERM (resumable).
    Interrupted,
    /// Stopped by an operator (`wfhost stop`, the control socket; resumable).
    Stopped,
    /// Running, with dispatching paused by an operator.
    Paused,
    /// Started and never finished, and nobody holds its lock: the process died.
    Crashed,
}

impl Lifecycle {
    fn from_outcome(outcome: crate::report::Outcome) -> Lifecycle {
        use crate::report::Outcome;
        match outcome {
            Outcome::Completed => Lifecycle::Completed,
            Outcome::Rejected => Lifecycle::Rejected,
            Outcome::Failed => Lifecycle::Failed,
            Outcome::Stopped => Lifecycle::Stopped,
        }
    }
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Lifecycle::Running => "running",
            Lifecycle::Completed => "completed",
            Lifecycle::Failed => "failed",
            Lifecycle::Rejected => "rejected",
            Lifecycle::Interrupted => "interrupted",
            Lifecycle::Stopped => "stopped",
            Lifecycle::Paused => "paused",
            Lifecycle::Crashed => "crashed",
        }
    }
}

impl std::fmt::Display for Lifecycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One agent call of the run (a journal key and its occurrence), across every attempt.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Call {
    pub label: String,
    pub phase: Option<String>,
    pub key: String,
    pub occurrence: u32,
    /// Where it stands after the last record that names it.
    #[serde(rename = "status")]
    pub state: AgentState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub usage: Usage,
    #[serde(skip)]
    pub cost_usd: f64,
    /// A result is stored for it (in any attempt).
    #[serde(skip)]
    pub answered: bool,
}

/// An agent the last attempt started (or served from the journal), in order.
#[derive(Debug, Clone)]
pub(crate) struct Start {
    /// The order the script started it in: its handle, or (journals written before handles
    /// were recorded) its position.
    order: u64,
    /// Index into `History::calls`.
    pub call: usize,
    /// The parallel()/pipeline() slot that started it.
    pub group: Option<Value>,
    pub cached: bool,
}

/// An agent an attempt started or served, as a record tells it.
#[derive(Clone, Copy)]
struct Started<'a> {
    key: &'a str,
    occurrence: u32,
    label: &'a str,
    phase: &'a Option<String>,
    group: &'a Option<Value>,
    handle: Option<u32>,
}

/// Everything the journal says about a run.
#[derive(Debug, Clone)]
pub(crate) struct History {
    pub name: String,
    pub script: String,
    /// The backend of the latest attempt (its spec).
    pub backend: String,
    /// The ceilings of the latest attempt that recorded them.
    pub ceilings: Option<crate::limits::Ceilings>,
    pub started_at: String,
    /// 1 + the number of resumes.
    pub attempts: u32,
    pub status: Lifecycle,
    /// The sum of the attempts' durations.
    pub duration_ms: u64,
    /// Tokens spent by every stored result.
    pub usage: Usage,
    /// `phase()` titles, in order.
    pub phases: Vec<String>,
    /// Every call, in the order it was first seen.
    pub calls: Vec<Call>,
    /// Results served from the journal, over all attempts.
    pub served: u32,
    /// The agents of the last attempt, in the order they started.
    pub last_attempt: Vec<Start>,
    /// The last finished attempt's result or error.
    pub result: Option<Value>,
    pub error: Option<String>,
    pub torn_tail: bool,
    /// Commands operators sent on the control socket, in order.
    pub controls: Vec<ControlEntry>,
    /// Every decision on an agent's permission request, in order.
    pub permissions: Vec<PermissionEntry>,
    /// Ceilings raised by operators on resumes, in order.
    pub raises: Vec<crate::limits::Raised>,
    /// Batches sent through the Message Batches API (`--batch`): id, requests.
    pub batches: Vec<(String, usize)>,
    /// The last pause was not followed by a continue (in the latest attempt).
    pub paused: bool,
    index: HashMap<(String, u32), usize>,
}

/// A journaled control command.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ControlEntry {
    pub action: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<u32>,
    pub by: String,
    pub at: String,
}

/// A journaled decision on a permission request.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PermissionEntry {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<u32>,
    pub tool: String,
    pub input: String,
    pub allowed: bool,
    pub decision: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    pub by: String,
    pub at: String,
}

/// A count of agents (at most the 100,000 `--max-agents` allows, far below `u32::MAX`).
fn count<I: Iterator>(it: I) -> u32 {
    u32::try_from(it.count()).unwrap_or(u32::MAX)
}

impl History {
    /// Folds the records in one pass.
    pub(crate) fn fold(loaded: &Loaded) -> History {
        let mut h = History {
            name: String::new(),
            script: String::new(),
            backend: String::new(),
            ceilings: None,
            started_at: String::new(),
            attempts: 0,
            status: Lifecycle::Crashed,
            duration_ms: 0,
            usage: Usage::default(),
            phases: Vec::new(),
            calls: Vec::new(),
            served: 0,
            last_attempt: Vec::new(),
            result: None,
            error: None,
            torn_tail: loaded.torn_tail,
            controls: Vec::new(),
            permissions: Vec::new(),
            raises: Vec::new(),
            batches: Vec::new(),
            paused: false,
            index: HashMap::new(),
        };
        for r in &loaded.records {
            h.apply(r);
        }
        // Served calls are written in batches: put the attempt back in the order it started.
        h.last_attempt.sort_by_key(|s| s.order);
        h
    }

    fn call(&mut self, key: &str, occurrence: u32, label: &str, phase: &Option<String>) -> usize {
        if let Some(&i) = self.index.get(&(key.to_string(), occurrence)) {
            return i;
        }
        self.calls.push(Call {
            label: label.to_string(),
            phase: phase.clone(),
            key: key.to_string(),
            occurrence,
            state: AgentState::Running,
            value: None,
            error: None,
            usage: Usage::default(),
            cost_usd: 0.0,
            answered: false,
        });
        let i = self.calls.len() - 1;
        self.index.insert((key.to_string(), occurrence), i);
        i
    }

    /// An agent of the current attempt started (or was served from the journal).
    fn start(&mut self, s: &Started<'_>, cached: bool) {
        let Started {
            key,
            occurrence,
            label,
            phase,
            group,
            handle,
        } = *s;
        let i = self.call(key, occurrence, label, phase);
        if cached {
            self.calls[i].state = AgentState::Cached;
            self.served += 1;
        } else {
            self.calls[i].state = AgentState::Running;
        }
        let order = handle.map_or(self.last_attempt.len() as u64, u64::from);
        self.last_attempt.push(Start {
            order,
            call: i,
            group: group.clone(),
            cached,
        });
    }

    #[expect(
        clippy::too_many_lines,
        reason = "a fold over the record kinds: one short arm per kind"
    )]
    fn apply(&mut self, r: &Record) {
        match r {
            Record::RunStarted {
                name,
                script,
                backend,
                started_at,
                ceilings,
                ..
            } => {
                if ceilings.is_some() {
                    self.ceilings.clone_from(ceilings);
                }
                if self.attempts == 0 {
                    self.name.clone_from(name);
                    self.script.clone_from(script);
                    self.started_at.clone_from(started_at);
                }
                self.backend.clone_from(backend);
                self.attempts += 1;
                self.status = Lifecycle::Crashed;
                self.paused = false;
                self.last_attempt.clear();
            }
            Record::Phase { title } => self.phases.push(title.clone()),
            Record::AgentStarted {
                key,
                occurrence,
                label,
                phase,
                group,
                handle,
            } => self.start(
                &Started {
                    key,
                    occurrence: *occurrence,
                    label,
                    phase,
                    group,
                    handle: *handle,
                },
                false,
            ),
            Record::Cached {
                key,
                occurrence,
                label,
                phase,
                group,
            } => self.start(
                &Started {
                    key,
                    occurrence: *occurrence,
                    label,
                    phase,
                    group,
                    handle: None,
                },
                true,
            ),
            Record::Served { calls } => {
                for c in calls {
                    let s = Started {
                        key: &c.key,
                        occurrence: c.occurrence,
                        label: &c.label,
                        phase: &c.phase,
                        group: &c.group,
                        handle: Some(c.handle),
                    };
                    self.start(&s, true);
                }
            }
            Record::Result {
                key,
                occurrence,
                value,
                usage,
                cost_usd,
                ..
            } => {
                let i = self.call(key, *occurrence, "", &None);
                let c = &mut self.calls[i];
                c.state = AgentState::Done;
                c.value = Some(value.clone());
                c.usage = *usage;
                c.cost_usd = *cost_usd;
                c.error = None;
                c.answered = true;
                self.usage += *usage;
            }
            Record::Failed {
                key,
                occurrence,
                error,
                usage,
                cost_usd,
            } => {
                let i = self.call(key, *occurrence, "", &None);
                let c = &mut self.calls[i];
                c.state = AgentState::Failed;
                c.error = Some(error.clone());
                // Spent although it failed: the run's totals count it.
                if let Some(usage) = usage {
                    c.usage += *usage;
                    self.usage += *usage;
                }
                if let Some(cost) = cost_usd {
                    c.cost_usd += cost;
                }
            }
            Record::RunFinished {
                outcome,
                result,
                error,
                duration_ms,
                ..
            } => {
                self.status = Lifecycle::from_outcome(*outcome);
                self.duration_ms += duration_ms;
                self.result.clone_from(result);
                self.error.clone_from(error);
            }
            Record::Interrupted { duration_ms, .. } => {
                self.duration_ms += duration_ms.unwrap_or(0);
                let stopped = self.controls.last().is_some_and(|c| c.action == "stop");
                self.status = if stopped {
                    Lifecycle::Stopped
                } else {
                    Lifecycle::Interrupted
                };
            }
            // A tool-using agent's turns: its transcript, for resume (tools::transcript).
            Record::Turn { .. } => {}
            Record::Permission {
                agent,
                tool,
                input,
                allowed,
                decision,
                rule,
                by,
                at,
                ..
            } => self.permissions.push(PermissionEntry {
                agent: *agent,
                tool: tool.clone(),
                input: input.clone(),
                allowed: *allowed,
                decision: decision.clone(),
                rule: rule.clone(),
                by: by.clone(),
                at: at.clone(),
            }),
            Record::CeilingsRaised(raised) => self.raises.push(raised.clone()),
            Record::Batch { id, custom_ids } => self.batches.push((id.clone(), custom_ids.len())),
            // Where a `claude` agent's conversation is kept: for its resume, not its history.
            Record::Session { .. } => {}
            Record::Control {
                action,
                agent,
                by,
                at,
            } => {
                match action.as_str() {
                    "pause" => self.paused = true,
                    "continue" => self.paused = false,
                    _ => {}
                }
                self.controls.push(ControlEntry {
                    action: action.clone(),
                    agent: *agent,
                    by: by.clone(),
                    at: at.clone(),
                });
            }
        }
    }

    /// The run's status now: `running` (or `paused`) while a process holds its lock
    /// (`RunDir::is_running`), else how its journal says it ended.
    pub(crate) fn status_now(&self, running: bool) -> Lifecycle {
        match (running, self.paused) {
            (true, true) => Lifecycle::Paused,
            (true, false) => Lifecycle::Running,
            (false, _) => self.status,
        }
    }

    /// Calls that have a stored result.
    pub(crate) fn done(&self) -> u32 {
        count(self.calls.iter().filter(|c| c.answered))
    }

    /// Calls that failed and were never answered since.
    pub(crate) fn failed(&self) -> u32 {
        count(
            self.calls
                .iter()
                .filter(|c| !c.answered && c.error.is_some()),
        )
    }
}
