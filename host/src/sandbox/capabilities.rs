//! The wfhost capability surface (wit/wfhost.wit), host side: the only functions a guest can
//! call besides the WASI allow-list. State + one `add_to_linker`.
//!
//! Core ABI: strings go in as `(ptr, len)` of guest memory; strings come back as an `i64`
//! packing `(ptr << 32) | len` of a buffer allocated in the guest through its `cabi_realloc`
//! export (how the canonical ABI returns a `string`).

use super::RunState;
use crate::backend::{AgentRequest, Usage};
use crate::events::{Event, Events, LogLevel};
use crate::journal::{self, Cached, Journal, Record};
use crate::limits::{LimitHit, Limits};
use crate::scheduler::{AgentJob, AgentOutcome, Completion, Scheduler};
use crate::schema::Schema;
use crate::workflows::Resolver;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::mpsc;
use wasmtime::{Caller, Extern, Linker};

/// The import module name of the capability surface.
pub const MODULE: &str = "wfhost";

/// Every function of the surface: (name, core signature). The audit prints this list and a
/// test checks it against wit/wfhost.wit.
pub const FUNCTIONS: &[(&str, &str)] = &[
    ("context", "() -> i64"),
    ("spawn", "(i32, i32) -> i64"),
    ("wait-next", "() -> i64"),
    ("cancel", "(i32) -> ()"),
    ("load-workflow", "(i32, i32) -> i64"),
    ("log", "(i32, i32, i32) -> ()"),
    ("phase", "(i32, i32) -> ()"),
    ("finish", "(i32, i32) -> ()"),
];

/// The largest string a guest may pass to the host in one call. Why 64 MiB: a prompt or a
/// result larger than that is a bug, and reading it must not take the host's memory with it.
const MAX_GUEST_STRING: u32 = 64 << 20;

/// Why 1 hour: longer timers in a workflow are a mistake (or an attempt to hang CI).
const MAX_TIMER_MS: u64 = 60 * 60 * 1000;

/// What a run of a script may do, and what it did.
pub struct Capabilities {
    /// `{args?, budgetTotal, agentCap, capMessage}` — handed to the guest by `context`.
    context: String,
    budget_total: Option<u64>,
    limits: Limits,
    scheduler: Option<Scheduler>,
    completions: mpsc::UnboundedReceiver<Completion>,
    completions_tx: mpsc::UnboundedSender<Completion>,
    next_handle: u32,
    agents: HashMap<u32, AgentInfo>,
    timers: HashMap<u32, tokio::task::JoinHandle<()>>,
    workflows: Option<Resolver>,
    events: Events,
    journal: Option<Arc<Journal>>,
    /// Results a resume may serve instead of running the agent again.
    cache: HashMap<(String, u32), Cached>,
    /// How many times each key was asked for in this run (the occurrence of the next call).
    occurrences: HashMap<String, u32>,
    backend_identity: String,
    max_cost: Option<f64>,
    pub report: CapabilityReport,
}

struct AgentInfo {
    label: String,
    workflow: Option<String>,
    phase: Option<String>,
}

/// What the run did, for the report.
#[derive(Debug, Default)]
pub struct CapabilityReport {
    pub logs: Vec<String>,
    log_bytes: u64,
    pub agents_started: u32,
    pub agents_done: u32,
    pub agents_failed: u32,
    pub agents_cached: u32,
    pub transient_failures: u32,
    /// USD spent by agents that ran in this run, in total and by phase.
    pub cost_usd: f64,
    pub cost_by_phase: std::collections::BTreeMap<String, f64>,
    /// USD of the results served from the journal (spent by an earlier attempt).
    pub cached_cost_usd: f64,
    /// Tokens spent by agents that ran in this run.
    pub usage: Usage,
    /// Tokens of the results served from the journal (spent by an earlier attempt).
    pub cached_usage: Usage,
    /// Set by `finish`: `{ok, value}` or `{ok: false, error, stack?}`.
    pub outcome: Option<Value>,
    pub limit_hit: Option<LimitHit>,
    /// Time to instantiate the guest for this run.
    pub instantiate: std::time::Duration,
}

/// The per-run inputs of the capability surface.
pub struct RunSetup {
    pub args: Option<Value>,
    pub budget_total: Option<u64>,
    pub limits: Limits,
    pub scheduler: Scheduler,
    pub completions: (
        mpsc::UnboundedSender<Completion>,
        mpsc::UnboundedReceiver<Completion>,
    ),
    pub workflows: Resolver,
    pub events: Events,
    pub journal: Option<Arc<Journal>>,
    pub cache: HashMap<(String, u32), Cached>,
    pub backend_identity: String,
    /// `--max-cost`: no new agents once the run's cost reaches it (USD).
    pub max_cost: Option<f64>,
}

pub fn cap_message(cap: u32) -> String {
    format!(
        "Workflow agent() call cap reached ({cap}). This usually means a loop using budget.remaining() never terminates because no token budget was set — remaining() returns Infinity when budget.total is null. Add a hard iteration cap to the loop, or pass a token budget."
    )
}

impl Capabilities {
    pub fn new(setup: RunSetup) -> Capabilities {
        let mut context = json!({
            "budgetTotal": setup.budget_total,
            "agentCap": setup.limits.max_agents,
            "capMessage": cap_message(setup.limits.max_agents),
        });
        if let Some(a) = setup.args {
            context["args"] = a;
        }
        Capabilities {
            context: context.to_string(),
            budget_total: setup.budget_total,
            limits: setup.limits,
            scheduler: Some(setup.scheduler),
            completions_tx: setup.completions.0,
            completions: setup.completions.1,
            next_handle: 0,
            agents: HashMap::new(),
            timers: HashMap::new(),
            workflows: Some(setup.workflows),
            events: setup.events,
            journal: setup.journal,
            cache: setup.cache,
            occurrences: HashMap::new(),
            backend_identity: setup.backend_identity,
            max_cost: setup.max_cost,
            report: CapabilityReport::default(),
        }
    }

    /// A surface for instances that only compile (`compile-src`): every capability refuses.
    pub fn none(limits: Limits) -> Capabilities {
        let (tx, rx) = mpsc::unbounded_channel();
        Capabilities {
            context: "{}".into(),
            budget_total: None,
            limits,
            scheduler: None,
            completions: rx,
            completions_tx: tx,
            next_handle: 0,
            agents: HashMap::new(),
            timers: HashMap::new(),
            workflows: None,
            events: Events::none(),
            journal: None,
            cache: HashMap::new(),
            occurrences: HashMap::new(),
            backend_identity: String::new(),
            max_cost: None,
            report: CapabilityReport::default(),
        }
    }

    fn handle(&mut self) -> u32 {
        self.next_handle += 1;
        self.next_handle
    }

    fn outstanding(&self) -> usize {
        self.timers.len() + self.agents.len()
    }

    /// Output tokens this run has spent, as `budget.spent()` reports them. Results served from
    /// the journal count too: a resumed script must see the numbers the first attempt saw, or
    /// its control flow (and so its later calls) could differ.
    fn spent(&self) -> u64 {
        self.report.usage.output_tokens + self.report.cached_usage.output_tokens
    }

    /// The run's cost as `--max-cost` counts it (served results included, as for spent()).
    fn cost(&self) -> f64 {
        self.report.cost_usd + self.report.cached_cost_usd
    }

    fn journal(&self, record: Record) {
        if let Some(j) = &self.journal
            && let Err(e) = j.append(&record)
        {
            eprintln!("warning: {e:#}");
        }
    }

    fn spawn(&mut self, request: &str) -> Value {
        let request: Value = match serde_json::from_str(request) {
            Ok(v) => v,
            Err(e) => return error("TypeError", &format!("malformed spawn request: {e}")),
        };
        match request["kind"].as_str() {
            Some("agent") => self.spawn_agent(request),
            Some("timer") => self.spawn_timer(request["ms"].as_f64().unwrap_or(0.0)),
            _ => error("TypeError", "spawn: unknown job kind"),
        }
    }

    fn spawn_agent(&mut self, r: Value) -> Value {
        let Some(scheduler) = self.scheduler.clone() else {
            return error("Error", "agents cannot be started while compiling");
        };
        let text = |k: &str| r[k].as_str().map(str::to_owned);
        let Some(prompt) = text("prompt") else {
            return error("TypeError", "agent() expects a prompt string");
        };
        let schema = match &r["schema"] {
            Value::Null => None,
            s => match Schema::new(s.clone()) {
                Ok(s) => Some(s),
                Err(e) => return error("TypeError", &e),
            },
        };
        let cap = self.limits.max_agents;
        if self.report.agents_started >= cap {
            return error("WorkflowAgentCapError", &cap_message(cap));
        }
        if let Some(max) = self.max_cost
            && self.cost() >= max
        {
            return error(
                "WorkflowBudgetError",
                &format!(
                    "the cost ceiling is reached (${:.4} of ${max:.4}); no new agents can start. Raise --max-cost if this is expected",
                    self.cost()
                ),
            );
        }
        if let Some(total) = self.budget_total
            && self.spent() >= total
        {
            return error(
                "WorkflowBudgetError",
                &format!(
                    "the token budget is spent ({} of {total} output tokens); no new agents can start. Check budget.remaining() before starting agents, or raise --budget-tokens",
                    self.spent()
                ),
            );
        }
        let label = text("label")
            .filter(|l| !l.is_empty())
            .unwrap_or_else(|| default_label(&prompt));
        let request = AgentRequest {
            prompt,
            schema: schema.as_ref().map(|s| s.value.clone()),
            model: text("model"),
            effort: text("effort"),
            agent_type: text("agentType"),
            isolation: text("isolation"),
            label: label.clone(),
            phase: text("phase"),
            call: None,
        };
        let group = Some(r["group"].clone()).filter(|g| g.is_object());
        let key = journal::agent_key(&request, &self.backend_identity);
        let occurrence = {
            let n = self.occurrences.entry(key.clone()).or_insert(0);
            *n += 1;
            *n - 1
        };
        let handle = self.handle();
        self.report.agents_started += 1;
        let workflow = text("workflow");
        let phase = request.phase.clone();
        self.agents.insert(
            handle,
            AgentInfo {
                label: label.clone(),
                workflow,
                phase,
            },
        );
        let reply = json!({ "handle": handle, "agentsLeft": cap - self.report.agents_started });
        if let Some(hit) = self.cache.get(&(key.clone(), occurrence)) {
            let outcome = AgentOutcome {
                result: Ok(hit.value.clone()),
                usage: hit.usage,
                cost_usd: hit.cost_usd,
                transient: false,
                duration: std::time::Duration::ZERO,
                cached: true,
                note: None,
            };
            self.journal(Record::Cached {
                key,
                occurrence,
                label: label.clone(),
                phase: request.phase.clone(),
                group: group.clone(),
            });
            self.events.emit(Event::AgentCached {
                handle,
                label,
                phase: request.phase.clone(),
            });
            let _ = self
                .completions_tx
                .send(Completion::Agent { handle, outcome });
            return reply;
        }
        let phase = request.phase.clone();
        self.journal(Record::AgentStarted {
            key: key.clone(),
            occurrence,
            label: label.clone(),
            phase: phase.clone(),
            group,
        });
        self.events.emit(Event::AgentQueued {
            handle,
            label,
            phase,
        });
        let mut request = request;
        request.call = Some((key.clone(), occurrence));
        scheduler.submit(AgentJob {
            handle,
            request,
            schema,
            key,
            occurrence,
        });
        reply
    }

    fn spawn_timer(&mut self, ms: f64) -> Value {
        let ms = ms.max(0.0) as u64;
        if ms > MAX_TIMER_MS {
            return error(
                "RangeError",
                &format!(
                    "setTimeout() delay {ms} ms is longer than the 1 hour a workflow timer may wait"
                ),
            );
        }
        let handle = self.handle();
        let tx = self.completions_tx.clone();
        let task = tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            let _ = tx.send(Completion::Timer { handle });
        });
        self.timers.insert(handle, task);
        json!({ "handle": handle })
    }

    fn cancel(&mut self, handle: u32) {
        if let Some(t) = self.timers.remove(&handle) {
            t.abort();
        }
    }

    /// Records a finished job; returns the message for the guest.
    fn complete(&mut self, completion: Completion) -> Result<Value, LimitHit> {
        let (handle, value) = match completion {
            Completion::Timer { handle } => {
                self.timers.remove(&handle);
                (handle, Value::Null)
            }
            // Served from the journal: no events of its own beyond agent_cached, no logs.
            Completion::Agent { handle, outcome } if outcome.cached => {
                self.agents.remove(&handle);
                self.report.agents_cached += 1;
                self.report.cached_usage += outcome.usage;
                self.report.cached_cost_usd += outcome.cost_usd;
                (handle, outcome.result.unwrap_or(Value::Null))
            }
            Completion::Agent { handle, outcome } => {
                let info = self.agents.remove(&handle).unwrap_or(AgentInfo {
                    label: String::new(),
                    workflow: None,
                    phase: None,
                });
                self.report.usage += outcome.usage;
                self.report.cost_usd += outcome.cost_usd;
                let phase = info.phase.clone().unwrap_or_default();
                *self.report.cost_by_phase.entry(phase).or_default() += outcome.cost_usd;
                let prefix = info
                    .workflow
                    .as_ref()
                    .map(|w| format!("[{w}] "))
                    .unwrap_or_default();
                if let Some(note) = &outcome.note {
                    self.log(LogLevel::Info, format!("{prefix}[{}] {note}", info.label))?;
                }
                let duration_ms = outcome.duration.as_millis() as u64;
                let cost_usd = outcome.cost_usd;
                let result = match outcome.result {
                    Ok(v) => {
                        self.report.agents_done += 1;
                        let usage = outcome.usage;
                        self.events.emit(Event::AgentFinished {
                            handle,
                            label: info.label,
                            usage,
                            cost_usd,
                            duration_ms,
                        });
                        (handle, v)
                    }
                    Err(e) => {
                        self.report.agents_failed += 1;
                        if outcome.transient {
                            self.report.transient_failures += 1;
                        }
                        self.log(
                            LogLevel::Warn,
                            format!("{prefix}[{}] failed: {e}", info.label),
                        )?;
                        self.events.emit(Event::AgentFailed {
                            handle,
                            label: info.label,
                            error: e,
                            duration_ms,
                        });
                        (handle, Value::Null)
                    }
                };
                if self.budget_total.is_some() || self.max_cost.is_some() {
                    self.events.emit(Event::Budget {
                        spent_tokens: self.spent(),
                        total_tokens: self.budget_total,
                        cost_usd: self.cost(),
                        max_cost_usd: self.max_cost,
                    });
                }
                result
            }
        };
        Ok(json!({ "handle": handle, "value": value, "spent": self.spent() }))
    }

    fn log(&mut self, level: LogLevel, text: String) -> Result<(), LimitHit> {
        let r = &mut self.report;
        r.log_bytes += text.len() as u64 + 1;
        if r.logs.len() as u64 >= self.limits.max_log_lines {
            return Err(LimitHit::LogLines);
        }
        if r.log_bytes > self.limits.max_log_bytes {
            return Err(LimitHit::LogBytes);
        }
        self.events.emit(Event::Log {
            level,
            text: text.clone(),
        });
        r.logs.push(text);
        Ok(())
    }

    fn load_workflow(&mut self, request: &str) -> Value {
        let Some(resolver) = &self.workflows else {
            return error("Error", "workflow() is not available here");
        };
        let request: Value = serde_json::from_str(request).unwrap_or_default();
        match resolver.load_child(&request) {
            Ok(script) => json!({ "name": script.meta.name, "source": script.module }),
            Err(message) => error("Error", &message),
        }
    }

    /// Stops timers and forgets queued agents (the scheduler's workers end with the run).
    pub fn shutdown(&mut self) {
        for (_, t) in self.timers.drain() {
            t.abort();
        }
        self.scheduler = None;
    }
}

fn error(name: &str, message: &str) -> Value {
    json!({ "error": { "name": name, "message": message } })
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

// ------------------------------------------------------------------ linking

fn memory(caller: &mut Caller<'_, RunState>) -> wasmtime::Result<wasmtime::Memory> {
    match caller.get_export("memory") {
        Some(Extern::Memory(m)) => Ok(m),
        _ => wasmtime::bail!("the calling module exports no `memory`"),
    }
}

fn read_string(caller: &mut Caller<'_, RunState>, ptr: u32, len: u32) -> wasmtime::Result<String> {
    if len > MAX_GUEST_STRING {
        wasmtime::bail!(
            "a string of {len} bytes passed to the host is larger than the 64 MiB allowed"
        );
    }
    let mem = memory(caller)?;
    let mut buf = vec![0u8; len as usize];
    mem.read(&*caller, ptr as usize, &mut buf)?;
    Ok(String::from_utf8(buf)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

/// Allocates `s` in the guest (through `cabi_realloc`) and returns `(ptr << 32) | len`.
async fn return_string(caller: &mut Caller<'_, RunState>, s: &str) -> wasmtime::Result<i64> {
    let realloc = match caller.get_export("cabi_realloc") {
        Some(Extern::Func(f)) => f.typed::<(i32, i32, i32, i32), i32>(&*caller)?,
        _ => wasmtime::bail!("the calling module exports no `cabi_realloc`"),
    };
    let len = i32::try_from(s.len())
        .map_err(|_| wasmtime::format_err!("reply too large for the guest"))?;
    if len == 0 {
        return Ok(0);
    }
    let ptr = realloc.call_async(&mut *caller, (0, 0, 1, len)).await?;
    memory(caller)?.write(&mut *caller, ptr as u32 as usize, s.as_bytes())?;
    Ok((((ptr as u32 as u64) << 32) | len as u64) as i64)
}

fn hit(caller: &mut Caller<'_, RunState>, limit: LimitHit) -> wasmtime::Error {
    caller.data_mut().caps.report.limit_hit = Some(limit);
    wasmtime::format_err!("limit reached: {limit:?}")
}

/// An import that takes a JSON request and returns a JSON reply.
fn request_reply(
    linker: &mut Linker<RunState>,
    name: &str,
    handle: fn(&mut Capabilities, &str) -> Value,
) -> wasmtime::Result<()> {
    linker.func_wrap_async(
        MODULE,
        name,
        move |mut caller: Caller<'_, RunState>, (ptr, len): (u32, u32)| {
            Box::new(async move {
                let request = read_string(&mut caller, ptr, len)?;
                let reply = handle(&mut caller.data_mut().caps, &request).to_string();
                return_string(&mut caller, &reply).await
            })
        },
    )?;
    Ok(())
}

pub fn add_to_linker(linker: &mut Linker<RunState>) -> wasmtime::Result<()> {
    linker.func_wrap_async(
        MODULE,
        "context",
        |mut caller: Caller<'_, RunState>, (): ()| {
            Box::new(async move {
                let ctx = caller.data().caps.context.clone();
                return_string(&mut caller, &ctx).await
            })
        },
    )?;
    request_reply(linker, "spawn", Capabilities::spawn)?;
    linker.func_wrap_async(
        MODULE,
        "wait-next",
        |mut caller: Caller<'_, RunState>, (): ()| {
            Box::new(async move {
                if caller.data().caps.outstanding() == 0 {
                    wasmtime::bail!("wait-next called with no agent or timer outstanding");
                }
                let completion = caller
                    .data_mut()
                    .caps
                    .completions
                    .recv()
                    .await
                    .ok_or_else(|| wasmtime::format_err!("the scheduler stopped"))?;
                let message = match caller.data_mut().caps.complete(completion) {
                    Ok(m) => m.to_string(),
                    Err(limit) => return Err(hit(&mut caller, limit)),
                };
                // The guest waited on the host: its synchronous-execution allowance starts afresh.
                caller.data_mut().last_yield = std::time::Instant::now();
                return_string(&mut caller, &message).await
            })
        },
    )?;
    linker.func_wrap(
        MODULE,
        "cancel",
        |mut caller: Caller<'_, RunState>, handle: u32| {
            caller.data_mut().caps.cancel(handle);
        },
    )?;
    request_reply(linker, "load-workflow", Capabilities::load_workflow)?;
    linker.func_wrap(
        MODULE,
        "log",
        |mut caller: Caller<'_, RunState>, level: u32, ptr: u32, len: u32| {
            let text = read_string(&mut caller, ptr, len)?;
            match caller
                .data_mut()
                .caps
                .log(LogLevel::from_guest(level), text)
            {
                Ok(()) => Ok(()),
                Err(limit) => Err(hit(&mut caller, limit)),
            }
        },
    )?;
    linker.func_wrap(
        MODULE,
        "phase",
        |mut caller: Caller<'_, RunState>, ptr: u32, len: u32| {
            let title = read_string(&mut caller, ptr, len)?;
            let caps = &mut caller.data_mut().caps;
            caps.journal(Record::Phase {
                title: title.clone(),
            });
            caps.events.emit(Event::Phase { title });
            Ok(())
        },
    )?;
    linker.func_wrap(MODULE, "finish", |mut caller: Caller<'_, RunState>, ptr: u32, len: u32| {
        let outcome = read_string(&mut caller, ptr, len)?;
        let outcome = serde_json::from_str(&outcome)
            .unwrap_or_else(|e| json!({ "ok": false, "error": format!("the guest sent a malformed outcome: {e}") }));
        caller.data_mut().caps.report.outcome = Some(outcome);
        Ok(())
    })?;
    Ok(())
}
