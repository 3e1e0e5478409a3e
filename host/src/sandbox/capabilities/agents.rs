//! `agent()` on the host: the checks at the boundary (cap, ceilings, schema), the journal key,
//! serving a resume from the journal, queueing on the scheduler, and accounting for what
//! comes back.

use super::policy::{Refusal, Spent};
use super::{Capabilities, error};
use crate::agent::AgentRequest;
use crate::events::{Event, LogLevel};
use crate::journal::{self, Cached, Record, SERVED_BATCH, ServedCall};
use crate::limits::LimitHit;
use crate::scheduler::{AgentJob, AgentOutcome, Scheduler};
use crate::schema::Schema;
use serde_json::Value;
use std::collections::HashMap;

/// Agents started in one guest turn reach a batching pool (scheduler::stagger) in chunks of at
/// most this many. Why 64: a fan-out sharing a head is planned whole up to 64 agents (one cache
/// write each 64 beyond), and the pool waits for at most 64 `agent()` calls (~1 ms) to start.
const DISPATCH_CHUNK: usize = 64;

/// The agents of a run: the pool they run on, those in flight, and what a resume may serve.
pub(crate) struct Agents {
    scheduler: Option<Scheduler>,
    in_flight: HashMap<u32, AgentInfo>,
    /// Results a resume may serve instead of running the agent again.
    cache: HashMap<(String, u32), Cached>,
    /// Turns of tool-using agents a resume continues from (tools::transcript).
    turns: crate::tools::transcript::Turns,
    /// How many times each key was asked for in this run (the occurrence of the next call).
    occurrences: HashMap<String, u32>,
    /// Bytes of prompts the host holds for agents queued or running (`--max-queued-bytes`).
    queued_bytes: u64,
    /// Agents served from the journal so far (the agent cap does not count them).
    served_started: u32,
    /// Agents started in this guest turn, queued together when the guest next waits (so the
    /// scheduler sees a fan-out whole: scheduler::stagger).
    pending: Vec<AgentJob>,
}

struct AgentInfo {
    /// The bytes of its prompt the host holds until it finishes.
    prompt_bytes: u64,
    label: String,
    phase: Option<String>,
}

impl Agents {
    pub(crate) fn new(
        scheduler: Scheduler,
        cache: HashMap<(String, u32), Cached>,
        turns: crate::tools::transcript::Turns,
    ) -> Agents {
        Agents {
            scheduler: Some(scheduler),
            in_flight: HashMap::new(),
            cache,
            turns,
            occurrences: HashMap::new(),
            queued_bytes: 0,
            served_started: 0,
            pending: Vec::new(),
        }
    }

    /// Queues the agents started since the guest last waited.
    pub(crate) fn dispatch(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let jobs = std::mem::take(&mut self.pending);
        if let Some(s) = &self.scheduler {
            s.submit_batch(jobs);
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.in_flight.len()
    }

    /// Forgets queued agents: the scheduler's workers end with the run.
    pub(crate) fn shutdown(&mut self) {
        self.scheduler = None;
    }
}

/// One `agent()` call as the guest makes it: through `spawn-agent` (typed: the prompt and the
/// common fields as they are, the rarer options as JSON) or through `spawn` (all JSON).
#[derive(Debug, Default)]
pub(super) struct AgentCall {
    pub(super) prompt: String,
    pub(super) label: Option<String>,
    pub(super) phase: Option<String>,
    /// The parallel()/pipeline() slot: `{kind, id, index}` or `{kind, id, item, stage}`.
    pub(super) group: Option<Value>,
    pub(super) schema: Value,
    pub(super) model: Option<String>,
    pub(super) effort: Option<String>,
    pub(super) agent_type: Option<String>,
    pub(super) isolation: Option<String>,
    /// `stallMs`: this call's stall timeout (not part of the request: it does not change the
    /// answer, so it does not change the journal key).
    pub(super) stall_ms: Option<u64>,
    /// `sharedHeadLength`: how much of the prompt its fan-out shares (a cache hint, not part
    /// of the request either).
    pub(super) shared_head: Option<usize>,
}

impl AgentCall {
    /// From a `spawn` request: `{kind: "agent", prompt, label?, phase?, …}`.
    pub(super) fn from_json(r: &Value) -> Result<AgentCall, Value> {
        let text = |k: &str| r[k].as_str().map(str::to_owned);
        let Some(prompt) = text("prompt") else {
            return Err(error("TypeError", "agent() expects a prompt string"));
        };
        let mut call = AgentCall {
            prompt,
            label: text("label"),
            phase: text("phase"),
            group: Some(r["group"].clone()).filter(Value::is_object),
            ..AgentCall::default()
        };
        call.options(r);
        Ok(call)
    }

    /// The rarer options, from an object: `{schema?, model?, effort?, agentType?, isolation?}`.
    pub(super) fn options(&mut self, o: &Value) {
        let text = |k: &str| o[k].as_str().map(str::to_owned);
        self.schema = o["schema"].clone();
        self.model = text("model");
        self.effort = text("effort");
        self.agent_type = text("agentType");
        self.isolation = text("isolation");
        self.stall_ms = o["stallMs"].as_f64().filter(|ms| *ms >= 1.0).map(|ms| {
            // Whole milliseconds, capped at a day: a script cannot make a call unwatchable.
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                reason = "clamped to 1..=86_400_000"
            )]
            let ms = ms.min(86_400_000.0) as u64;
            ms
        });
        self.shared_head = o["sharedHeadLength"]
            .as_f64()
            .filter(|n| *n >= 1.0)
            .map(|n| {
                #[allow(
                    clippy::cast_possible_truncation,
                    clippy::cast_sign_loss,
                    reason = "positive; a length past the prompt is clamped to it"
                )]
                let n = n.min(1e12) as usize;
                n
            });
    }
}

/// An `agent()` call that passed the checks at the boundary: its request and how to run it.
struct Admitted {
    request: AgentRequest,
    schema: Option<Schema>,
    agent_def: Option<std::sync::Arc<crate::workflows::AgentDef>>,
    group: Option<Value>,
    stall_ms: Option<u64>,
    shared_head: Option<usize>,
    prompt_bytes: u64,
}

impl Capabilities {
    /// Starts an agent after the host's checks: its handle, or the refusal the script sees as an
    /// error (`{"name", "message"}`). `Err` stops the run (a limit, a journal that failed).
    ///
    /// In steps: admit (the typed checks at the boundary) → the request and its journal key →
    /// the agent cap (which a result the journal can serve does not count against) → served
    /// from the journal, or queued on the scheduler.
    pub(super) fn spawn_agent(&mut self, call: AgentCall) -> Result<Result<u32, Value>, LimitHit> {
        if self.agents.scheduler.is_none() {
            return Ok(Err(error("Error", "agents cannot be started now")));
        }
        let admitted = match self.admit(call)? {
            Ok(a) => a,
            Err(refusal) => {
                if refusal.counts_as_started() {
                    self.ledger.agents_started += 1;
                }
                return Ok(Err(refusal.to_js()));
            }
        };
        let key = journal::agent_key(&admitted.request, &self.policy.backend_identity);
        let occurrence = self.agents.occurrences.get(&key).copied().unwrap_or(0);
        // The agent cap counts agents that run: one a resume serves from the journal starts
        // nothing and costs nothing (`[mcp] max_agents` on a resume of a run that already
        // had that many agents refused every one of them).
        let served = self.agents.cache.contains_key(&(key.clone(), occurrence));
        let cap = self.policy.limits.max_agents;
        if !served && self.ledger.agents_started - self.agents.served_started >= cap {
            return Ok(Err(Refusal::AgentCap(cap).to_js()));
        }
        self.agents.occurrences.insert(key.clone(), occurrence + 1);
        let handle = self.next_handle();
        self.ledger.agents_started += 1;
        self.agents.queued_bytes += admitted.prompt_bytes;
        self.agents.in_flight.insert(
            handle,
            AgentInfo {
                prompt_bytes: admitted.prompt_bytes,
                label: admitted.request.label.clone(),
                phase: admitted.request.phase.clone(),
            },
        );
        if served {
            self.serve_cached(handle, key, occurrence, admitted)?;
        } else {
            self.enqueue(handle, key, occurrence, admitted)?;
        }
        Ok(Ok(handle))
    }

    /// The checks at the boundary, in the reference's order: the schema and the agent type
    /// (refusals that count as started agents), then the policy's ceilings; then the request
    /// as the backend will see it. `Err` stops the run (the label passed the output limit).
    fn admit(&mut self, call: AgentCall) -> Result<Result<Admitted, Refusal>, LimitHit> {
        let AgentCall {
            prompt,
            label,
            phase,
            group,
            schema,
            model,
            effort,
            agent_type,
            isolation,
            stall_ms,
            shared_head,
        } = call;
        let schema = match &schema {
            Value::Null => None,
            s => match Schema::new(s.clone()) {
                Ok(s) => Some(s),
                Err(e) => return Ok(Err(Refusal::BadSchema(e))),
            },
        };
        // Resolved once here, at the boundary; the backend applies it (prompt, model, tools).
        let agent_def = match &agent_type {
            Some(t) => match self.policy.workflows.agent_def(t) {
                Ok(def) => Some(std::sync::Arc::new(def.clone())),
                Err(e) => return Ok(Err(Refusal::UnknownAgentType(e))),
            },
            None => None,
        };
        if isolation.as_deref() == Some("worktree")
            && let Err(why) = self.policy.worktrees.check()
        {
            return Ok(Err(Refusal::NoWorktree(why)));
        }
        let prompt_bytes = prompt.len() as u64;
        let spent = Spent {
            cost_usd: self.ledger.cost(),
            tokens: self.ledger.usage.input_tokens + self.ledger.usage.output_tokens,
            budget: self.ledger.spent(),
            queued_bytes: self.agents.queued_bytes,
        };
        if let Err(refusal) = self.policy.admit(prompt_bytes, spent) {
            return Ok(Err(refusal));
        }
        let label = label
            .filter(|l| !l.is_empty())
            .unwrap_or_else(|| default_label(&prompt));
        // The label is journaled and shown: it is output the script made the host keep.
        self.ledger.charge(label.len())?;
        // `meta.phases[].model` (a wfhost extension): the phase's model, unless the call names one.
        let model = model.or_else(|| {
            phase
                .as_ref()
                .and_then(|p| self.policy.phase_models.get(p))
                .cloned()
        });
        let request = AgentRequest {
            prompt,
            schema: schema.as_ref().map(|s| s.value.clone()),
            model,
            effort,
            agent_type,
            isolation,
            label,
            phase,
            call: None,
            group: group.clone(),
            workspace: None,
        };
        Ok(Ok(Admitted {
            request,
            schema,
            agent_def,
            group,
            stall_ms,
            shared_head,
            prompt_bytes,
        }))
    }

    /// A result the journal already has (a resume): served without asking the backend.
    fn serve_cached(
        &mut self,
        handle: u32,
        key: String,
        occurrence: u32,
        admitted: Admitted,
    ) -> Result<(), LimitHit> {
        let Some(hit) = self.agents.cache.get(&(key.clone(), occurrence)) else {
            return Ok(());
        };
        self.agents.served_started += 1;
        let outcome = AgentOutcome {
            unpriced: None,
            result: Ok(hit.value.clone()),
            usage: hit.usage,
            cost_usd: hit.cost_usd,
            transient: false,
            duration: std::time::Duration::ZERO,
            cached: true,
            note: None,
            usage_limit: false,
            limit_resets_in: None,
            stops_run: false,
            rejects: false,
        };
        let AgentRequest { label, phase, .. } = admitted.request;
        self.served.push(ServedCall {
            key,
            occurrence,
            label: label.clone(),
            phase: phase.clone(),
            group: admitted.group,
            handle,
        });
        if self.served.len() >= SERVED_BATCH {
            self.flush_served()?;
        }
        self.events.emit(Event::AgentCached {
            handle,
            label,
            phase,
        });
        let _ = self
            .completions_tx
            .send(crate::scheduler::Completion::Agent { handle, outcome });
        Ok(())
    }

    /// A new agent: journaled as started, then handed to the scheduler (with the others of
    /// this guest turn when the pool batches).
    fn enqueue(
        &mut self,
        handle: u32,
        key: String,
        occurrence: u32,
        admitted: Admitted,
    ) -> Result<(), LimitHit> {
        let Admitted {
            mut request,
            schema,
            agent_def,
            group,
            stall_ms,
            shared_head,
            ..
        } = admitted;
        self.journal(&Record::AgentStarted {
            key: key.clone(),
            occurrence,
            label: request.label.clone(),
            phase: request.phase.clone(),
            group,
            handle: Some(handle),
        })?;
        self.events.emit(Event::AgentQueued {
            handle,
            label: request.label.clone(),
            phase: request.phase.clone(),
        });
        request.call = Some((key.clone(), occurrence));
        let turns = self
            .agents
            .turns
            .remove(&(key.clone(), occurrence))
            .unwrap_or_default();
        let job = AgentJob {
            turns,
            handle,
            request,
            schema,
            key,
            occurrence,
            stall: stall_ms.map(std::time::Duration::from_millis),
            agent_def,
            shared_head,
            cache: None,
        };
        match &self.agents.scheduler {
            Some(s) if s.batches() => {
                self.agents.pending.push(job);
                // A large fan-out goes in chunks: the pool starts on the first while the script
                // is still starting the rest, and a chunk is still a fan-out to the stagger.
                if self.agents.pending.len() >= DISPATCH_CHUNK {
                    self.agents.dispatch();
                }
            }
            Some(s) => s.submit(job),
            None => {}
        }
        Ok(())
    }

    /// Accounts for a finished agent; returns the value the script receives, or (`Err`) the
    /// message its call rejects with.
    pub(super) fn complete_agent(
        &mut self,
        handle: u32,
        outcome: AgentOutcome,
    ) -> Result<Result<Value, String>, LimitHit> {
        let info = self.agents.in_flight.remove(&handle);
        if let Some(i) = &info {
            self.agents.queued_bytes = self.agents.queued_bytes.saturating_sub(i.prompt_bytes);
        }
        // Served from the journal: no events of its own beyond agent_cached, no logs.
        if outcome.cached {
            self.ledger.agents_cached += 1;
            self.ledger.cached_usage += outcome.usage;
            self.ledger.cached_cost_usd += outcome.cost_usd;
            return Ok(Ok(outcome.result.unwrap_or(Value::Null)));
        }
        let info = info.unwrap_or(AgentInfo {
            prompt_bytes: 0,
            label: String::new(),
            phase: None,
        });
        self.ledger.usage += outcome.usage;
        self.ledger.cost_usd += outcome.cost_usd;
        // A model that answered without a price: said once per run (never a guessed price).
        if let Some(model) = &outcome.unpriced
            && self.ledger.unpriced.insert(model.clone())
        {
            self.events.emit(Event::Log {
                level: LogLevel::Warn,
                text: format!(
                    "no price for model `{model}`: its agents' cost is unknown and counts as $0 (in the report and against --max-cost); set [prices.\"{model}\"] input/output in wfhost.toml (USD per million tokens)"
                ),
            });
        }
        let phase = info.phase.clone().unwrap_or_default();
        *self.ledger.cost_by_phase.entry(phase).or_default() += outcome.cost_usd;
        // The runtime's own lines carry no child workflow's `[name] ` (as on the reference,
        // which prefixes only a child's `log()` and `console` lines).
        if let Some(note) = &outcome.note {
            self.log(LogLevel::Info, format!("[{}] {note}", info.label))?;
        }
        let duration_ms = crate::report::millis(outcome.duration);
        let cost_usd = outcome.cost_usd;
        let failed_on_limit = outcome.usage_limit && outcome.result.is_err();
        let unreachable = outcome.stops_run && outcome.result.is_err();
        let transient = outcome.transient;
        let rejection = match (&outcome.result, outcome.rejects) {
            (Err(e), true) => Some(e.lines().next().unwrap_or_default().to_string()),
            _ => None,
        };
        let value = match outcome.result {
            Ok(v) => {
                self.ledger.agents_done += 1;
                self.events.emit(Event::AgentFinished {
                    handle,
                    label: info.label,
                    usage: outcome.usage,
                    cost_usd,
                    duration_ms,
                });
                v
            }
            Err(e) => {
                self.ledger.agents_failed += 1;
                if outcome.transient {
                    self.ledger.transient_failures += 1;
                }
                self.ledger.failures.push((info.label.clone(), e.clone()));
                // A rejection is the script's to catch (parallel() logs it); a failure that
                // resolves to null is logged here.
                // An unreachable backend ends the run with this error once (run.rs), rather
                // than a line per agent.
                if !outcome.rejects && !unreachable {
                    self.log(LogLevel::Warn, format!("[{}] failed: {e}", info.label))?;
                }
                self.events.emit(Event::AgentFailed {
                    handle,
                    label: info.label,
                    error: e,
                    duration_ms,
                });
                Value::Null
            }
        };
        if failed_on_limit {
            return Err(LimitHit::UsageLimit);
        }
        if unreachable {
            return Err(if transient {
                LimitHit::Unreachable
            } else {
                LimitHit::Misconfigured
            });
        }
        // `--max-failed-agents`: past it the run stops, rather than spend on a plan that is
        // already failing.
        if let Some(max) = self.policy.limits.max_failed_agents
            && self.ledger.agents_failed > max
        {
            return Err(LimitHit::FailedAgents);
        }
        if self.policy.budget_total.is_some() || self.policy.max_cost.is_some() {
            self.events.emit(Event::Budget {
                spent_tokens: self.ledger.spent(),
                total_tokens: self.policy.budget_total,
                cost_usd: self.ledger.cost(),
                max_cost_usd: self.policy.max_cost,
            });
        }
        Ok(rejection.map_or(Ok(value), Err))
    }
}

/// An agent without a label is named by the start of its prompt.
fn default_label(prompt: &str) -> String {
    let first = prompt
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    if first.chars().count() > 60 {
        format!("{}…", first.chars().take(59).collect::<String>())
    } else {
        first.to_string()
    }
}
