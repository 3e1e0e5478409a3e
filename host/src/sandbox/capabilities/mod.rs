//! The wfhost capability surface (wit/wfhost.wit), host side: the only functions a guest can
//! call besides the WASI allow-list.
//!
//! As wasmtime shapes its own capabilities: the state is [`Capabilities`], split into parts —
//! the [`Policy`] (immutable, shared), the [`Ledger`] (what the run spent and wrote), the
//! [`Agents`] and the [`Timers`] — and [`add_to_linker`] is the link table, taking a projection
//! from any store's `T` to the capabilities (so a test can use a `Store<Capabilities>`). The
//! core-ABI glue is in `sandbox/abi.rs`.

mod agents;
mod ledger;
mod policy;
mod timers;

use agents::AgentCall;
pub(crate) use agents::Agents;
pub(crate) use ledger::Ledger;
pub(crate) use policy::Policy;
pub(crate) use timers::Timers;

use super::abi::{Exports, GuestExports, read_string, return_bytes, return_string};
use crate::events::{Event, Events, LogLevel};
use crate::journal::{Cached, Journal, Record};
use crate::limits::{LimitHit, Limits};
use crate::scheduler::{Completion, Scheduler};
use crate::workflows::Resolver;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use wasmtime::{Caller, Linker};

/// The import module name of the capability surface.
pub(crate) const MODULE: &str = "wfhost";

/// Every function of the surface: (name, core signature). The audit prints this list and a
/// test checks it against wit/wfhost.wit.
pub(crate) const FUNCTIONS: &[(&str, &str)] = &[
    ("context", "() -> i64"),
    ("spawn", "(i32, i32) -> i64"),
    (
        "spawn-agent",
        "(i32, i32, i32, i32, i32, i32, i32, i32, i32, i32, i32, i32, i32, i32) -> i64",
    ),
    ("take-error", "() -> i64"),
    ("wait-next", "() -> i64"),
    ("cancel", "(i32) -> ()"),
    ("load-workflow", "(i32, i32) -> i64"),
    ("log", "(i32, i32, i32) -> ()"),
    ("phase", "(i32, i32) -> ()"),
    ("finish", "(i32, i32) -> ()"),
];

/// What a run of a script may do, and what it did.
pub(crate) struct Capabilities {
    pub policy: Arc<Policy>,
    pub ledger: Ledger,
    agents: Agents,
    timers: Timers,
    completions: mpsc::UnboundedReceiver<Completion>,
    completions_tx: mpsc::UnboundedSender<Completion>,
    next_handle: u32,
    events: Events,
    journal: Option<Arc<Journal>>,
    /// When the guest last waited on the host (or started): synchronous time counts from here.
    pub last_yield: Instant,
    /// When the run must end (`--timeout`).
    deadline: tokio::time::Instant,
    /// Why the last `spawn-agent` was refused (`{"name", "message"}`), for `take-error`.
    last_error: String,
    /// Calls served from the journal, not yet written (see `Record::Served`).
    served: Vec<crate::journal::ServedCall>,
    /// Set by `finish`: `{ok, value}` or `{ok: false, error, stack?}`.
    pub outcome: Option<Value>,
    /// The limit that stopped the guest, if one did.
    pub limit_hit: Option<LimitHit>,
    /// Time to instantiate the guest for this run.
    pub instantiate: Duration,
    /// The guest's memory and allocator, once found.
    exports: GuestExports,
}

/// The per-run inputs of the capability surface.
pub(crate) struct RunSetup {
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
    /// Journaled turns of tool-using agents a resume continues from.
    pub turns: crate::tools::transcript::Turns,
    pub backend_identity: String,
    /// `--max-cost`: no new agents once the run's cost reaches it (USD).
    pub max_cost: Option<f64>,
    /// `meta.phases[].model`: the default model of each phase's agents (a wfhost extension).
    pub phase_models: HashMap<String, String>,
    /// Whether isolated agents can be given worktrees (backend::worktree).
    pub worktrees: crate::backend::worktree::Check,
}

impl Capabilities {
    pub(crate) fn new(setup: RunSetup) -> Capabilities {
        let ledger = Ledger::new(&setup.limits);
        // A timeout too large to add (a typo like 1000000000h) means no deadline in practice.
        let deadline = tokio::time::Instant::now()
            .checked_add(setup.limits.timeout)
            .unwrap_or_else(|| {
                tokio::time::Instant::now() + Duration::from_secs(100 * 365 * 86_400)
            });
        // Results a resume may serve: the guest's own count of agents left allows them on top
        // of the cap, which counts only agents that run (the host refuses past it).
        let servable = u32::try_from(setup.cache.len()).unwrap_or(u32::MAX);
        Capabilities {
            policy: Arc::new(Policy::new(
                servable,
                setup.args,
                setup.budget_total,
                setup.max_cost,
                setup.limits,
                setup.backend_identity,
                setup.workflows,
                setup.phase_models,
                setup.worktrees,
            )),
            ledger,
            agents: Agents::new(setup.scheduler, setup.cache, setup.turns),
            timers: Timers::default(),
            completions_tx: setup.completions.0,
            completions: setup.completions.1,
            next_handle: 0,
            events: setup.events,
            journal: setup.journal,
            last_yield: Instant::now(),
            deadline,
            served: Vec::new(),
            last_error: String::new(),
            outcome: None,
            limit_hit: None,
            instantiate: Duration::ZERO,
            exports: GuestExports::default(),
        }
    }

    fn next_handle(&mut self) -> u32 {
        self.next_handle += 1;
        self.next_handle
    }

    fn outstanding(&self) -> usize {
        self.timers.len() + self.agents.len()
    }

    /// Journals a record. A journal that cannot be written stops the run: work it finished
    /// after that could not be kept.
    fn journal(&self, record: &Record) -> Result<(), LimitHit> {
        match &self.journal {
            Some(j) if j.append(record).is_err() => Err(LimitHit::Journal),
            _ => Ok(()),
        }
    }

    /// Fails once any append to the journal has failed (here or in the scheduler).
    fn journal_ok(&self) -> Result<(), LimitHit> {
        match &self.journal {
            Some(j) if j.failure().is_some() => Err(LimitHit::Journal),
            _ => Ok(()),
        }
    }

    fn spawn(&mut self, request: &str) -> Result<Value, LimitHit> {
        self.journal_ok()?;
        let request: Value = match serde_json::from_str(request) {
            Ok(v) => v,
            Err(e) => return Ok(error("TypeError", &format!("malformed spawn request: {e}"))),
        };
        match request["kind"].as_str() {
            Some("agent") => match AgentCall::from_json(&request) {
                Ok(call) => Ok(match self.spawn_agent(call)? {
                    Ok(handle) => json!({
                        "handle": handle,
                        "agentsLeft": self.policy.limits.max_agents.saturating_sub(self.ledger.agents_started),
                    }),
                    Err(refusal) => refusal,
                }),
                Err(refusal) => Ok(refusal),
            },
            Some("timer") => Ok(self.spawn_timer(request["ms"].as_f64().unwrap_or(0.0))),
            _ => Ok(error("TypeError", "spawn: unknown job kind")),
        }
    }

    fn spawn_timer(&mut self, ms: f64) -> Value {
        // Negative and NaN delays are 0 and fractions round down, as setTimeout's do; an
        // infinite one saturates and is refused as longer than MAX_TIMER_MS.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let ms = ms.max(0.0) as u64;
        let handle = self.next_handle();
        match self.timers.start(handle, ms, self.completions_tx.clone()) {
            Ok(()) => json!({ "handle": handle }),
            Err(message) => error("RangeError", &message),
        }
    }

    /// `spawn-agent`: starts an agent; its handle, or -1 with the refusal kept for
    /// `take-error`.
    fn spawn_typed(&mut self, call: AgentCall) -> Result<i64, LimitHit> {
        self.journal_ok()?;
        match self.spawn_agent(call)? {
            Ok(handle) => Ok(i64::from(handle)),
            Err(refusal) => {
                self.last_error = refusal["error"].to_string();
                Ok(-1)
            }
        }
    }

    /// Records a finished job; returns what `wait-next` hands the guest: `[handle u32]
    /// [kind u8][spent u64]` (little endian), then the value — kind 0: none (a timer, a failed
    /// agent), 1: text (the bytes themselves, no JSON), 2: JSON, 3: the call rejects with this
    /// message (a schema never met).
    fn complete(&mut self, completion: Completion) -> Result<Vec<u8>, LimitHit> {
        // A result the scheduler could not journal must not reach the script: a resume could
        // not serve it again, so the script's control flow would differ.
        self.journal_ok()?;
        let (handle, value) = match completion {
            Completion::Timer { handle } => {
                self.timers.fired(handle);
                (handle, Ok(Value::Null))
            }
            Completion::Agent { handle, outcome } => {
                (handle, self.complete_agent(handle, outcome)?)
            }
        };
        let (kind, payload) = match value {
            Ok(Value::Null) => (0u8, Vec::new()),
            Ok(Value::String(text)) => (1, text.into_bytes()),
            Ok(other) => (2, other.to_string().into_bytes()),
            Err(rejection) => (3, rejection.into_bytes()),
        };
        let mut out = Vec::with_capacity(13 + payload.len());
        out.extend_from_slice(&handle.to_le_bytes());
        out.push(kind);
        out.extend_from_slice(&self.ledger.spent().to_le_bytes());
        out.extend_from_slice(&payload);
        Ok(out)
    }

    /// A narrator line (`log`, `console.*`, the runtime's own notes): charged, then shown.
    fn log(&mut self, level: LogLevel, text: String) -> Result<(), LimitHit> {
        self.ledger.charge_line(&text)?;
        self.events.emit(Event::Log {
            level,
            text: text.clone(),
        });
        self.ledger.logs.push(text);
        Ok(())
    }

    /// A detail the runtime keeps out of what the script can read (which entry of a
    /// `parallel()` was not a function): charged, shown and in the run's events, not among the
    /// report's `logs` (the narrator lines the reference has).
    fn note(&mut self, text: String) -> Result<(), LimitHit> {
        self.ledger.charge_line(&text)?;
        self.events.emit(Event::Log {
            level: LogLevel::Warn,
            text,
        });
        Ok(())
    }

    /// `phase(title)`: charged as a line, then journaled and shown.
    fn phase(&mut self, title: String) -> Result<(), LimitHit> {
        self.ledger.charge_line(&title)?;
        self.journal(&Record::Phase {
            title: title.clone(),
        })?;
        self.events.emit(Event::Phase { title });
        Ok(())
    }

    /// `finish(outcome)`: the script's result (or error), charged like any other output.
    fn finish(&mut self, outcome: &str) -> Result<(), LimitHit> {
        self.ledger.charge(outcome.len())?;
        self.outcome = Some(serde_json::from_str(outcome).unwrap_or_else(|e| {
            let error = if e.to_string().contains("recursion limit exceeded") {
                format!(
                    "the script's result is nested deeper than {} levels; return a flatter value (or a JSON string)",
                    crate::limits::MAX_JSON_DEPTH
                )
            } else {
                format!("the guest sent a malformed outcome: {e}")
            };
            json!({ "ok": false, "error": error })
        }));
        Ok(())
    }

    fn load_workflow(&mut self, request: &str) -> Result<Value, LimitHit> {
        let request: Value = serde_json::from_str(request).unwrap_or_default();
        Ok(match self.policy.workflows.load_child(&request) {
            Ok(script) => json!({ "name": script.meta.name, "source": script.module }),
            Err(message) => error("Error", &message),
        })
    }

    /// Writes the calls served from the journal since the last batch, as one record.
    fn flush_served(&mut self) -> Result<(), LimitHit> {
        if self.served.is_empty() {
            return Ok(());
        }
        let calls = std::mem::take(&mut self.served);
        self.journal(&Record::Served { calls })
    }

    /// Stops timers and forgets queued agents (the scheduler's workers end with the run), and
    /// writes what was served from the journal.
    pub(crate) fn shutdown(&mut self) {
        self.timers.shutdown();
        self.agents.shutdown();
        // A failure is the journal's, reported with the run's ending; served calls are trace
        // detail, never results.
        let _ = self.flush_served();
    }

    /// Records which limit stopped the guest and turns it into the trap that stops it.
    fn hit(&mut self, limit: LimitHit) -> wasmtime::Error {
        self.limit_hit = Some(limit);
        wasmtime::format_err!("limit reached: {limit:?}")
    }
}

/// A `spawn-agent` slot: kind 0 none, 1 `parallel` (id, index), 2 `pipeline` (id, item,
/// stage), as the journal records it.
fn slot((kind, id, a, b): (u32, u32, u32, u32)) -> Option<Value> {
    match kind {
        1 => Some(json!({ "kind": "parallel", "id": id, "index": a })),
        2 => Some(json!({ "kind": "pipeline", "id": id, "item": a, "stage": b })),
        _ => None,
    }
}

fn error(name: &str, message: &str) -> Value {
    json!({ "error": { "name": name, "message": message } })
}

// ------------------------------------------------------------------ the link table

/// Where the guest's exports are kept, from the projection to the capabilities.
fn exports<T>(
    project: impl Fn(&mut T) -> &mut Capabilities + Send + Sync + Copy + 'static,
) -> impl Exports<T> {
    move |t: &mut T| -> &mut GuestExports { &mut project(t).exports }
}

/// An import that takes a JSON request and returns a JSON reply.
fn request_reply<T: Send + 'static>(
    linker: &mut Linker<T>,
    name: &str,
    project: impl Fn(&mut T) -> &mut Capabilities + Send + Sync + Copy + 'static,
    handle: fn(&mut Capabilities, &str) -> Result<Value, LimitHit>,
) -> wasmtime::Result<()> {
    linker.func_wrap_async(
        MODULE,
        name,
        move |mut caller: Caller<'_, T>, (ptr, len): (u32, u32)| {
            Box::new(async move {
                let request = read_string(&mut caller, exports(project), ptr, len)?;
                let caps = project(caller.data_mut());
                let reply = match handle(caps, &request) {
                    Ok(reply) => reply.to_string(),
                    Err(limit) => return Err(caps.hit(limit)),
                };
                return_string(&mut caller, exports(project), &reply).await
            })
        },
    )?;
    Ok(())
}

/// An import that takes one string and returns nothing.
fn text_sink<T: Send + 'static>(
    linker: &mut Linker<T>,
    name: &str,
    project: impl Fn(&mut T) -> &mut Capabilities + Send + Sync + Copy + 'static,
    handle: fn(&mut Capabilities, String) -> Result<(), LimitHit>,
) -> wasmtime::Result<()> {
    linker.func_wrap(
        MODULE,
        name,
        move |mut caller: Caller<'_, T>, ptr: u32, len: u32| {
            let text = read_string(&mut caller, exports(project), ptr, len)?;
            let caps = project(caller.data_mut());
            handle(caps, text).map_err(|limit| caps.hit(limit))
        },
    )?;
    Ok(())
}

/// Links the capability surface into `linker`. `project` finds the capabilities in the store's
/// data, as `wasmtime_wasi::p1::add_to_linker_async` finds its WASI context.
#[expect(
    clippy::too_many_lines,
    reason = "the link table: one short entry per WIT function"
)]
pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    project: impl Fn(&mut T) -> &mut Capabilities + Send + Sync + Copy + 'static,
) -> wasmtime::Result<()> {
    linker.func_wrap_async(
        MODULE,
        "context",
        move |mut caller: Caller<'_, T>, (): ()| {
            Box::new(async move {
                let context = project(caller.data_mut()).policy.clone();
                return_string(&mut caller, exports(project), &context.context).await
            })
        },
    )?;
    request_reply(linker, "spawn", project, Capabilities::spawn)?;
    linker.func_wrap(
        MODULE,
        "spawn-agent",
        #[allow(
            clippy::too_many_arguments,
            reason = "the import's core signature, flat"
        )]
        move |mut caller: Caller<'_, T>,
              prompt_ptr: u32,
              prompt_len: u32,
              label_ptr: u32,
              label_len: u32,
              phase_ptr: u32,
              phase_len: u32,
              workflow_ptr: u32,
              workflow_len: u32,
              group_kind: u32,
              group_id: u32,
              group_a: u32,
              group_b: u32,
              options_ptr: u32,
              options_len: u32|
              -> wasmtime::Result<i64> {
            let (prompt, label, phase, workflow, options) = (
                (prompt_ptr, prompt_len),
                (label_ptr, label_len),
                (phase_ptr, phase_len),
                (workflow_ptr, workflow_len),
                (options_ptr, options_len),
            );
            let group = (group_kind, group_id, group_a, group_b);
            let mut text =
                |(ptr, len): (u32, u32)| read_string(&mut caller, exports(project), ptr, len);
            let some = |s: String| Some(s).filter(|s| !s.is_empty());
            let mut call = AgentCall {
                prompt: text(prompt)?,
                label: some(text(label)?),
                phase: some(text(phase)?),
                group: slot(group),
                ..AgentCall::default()
            };
            // The calling child workflow's name: read (and so checked) as every string of the
            // call is, and not used: the runtime's lines carry no child prefix, as on the
            // reference.
            let _workflow = text(workflow)?;
            let options = text(options)?;
            if !options.is_empty() {
                let parsed: Value = serde_json::from_str(&options).map_err(|e| {
                    wasmtime::Error::new(super::abi::ScriptFault(format!(
                        "malformed agent options: {e}"
                    )))
                })?;
                call.options(&parsed);
            }
            let caps = project(caller.data_mut());
            caps.spawn_typed(call).map_err(|limit| caps.hit(limit))
        },
    )?;
    linker.func_wrap_async(
        MODULE,
        "take-error",
        move |mut caller: Caller<'_, T>, (): ()| {
            Box::new(async move {
                let error = std::mem::take(&mut project(caller.data_mut()).last_error);
                return_string(&mut caller, exports(project), &error).await
            })
        },
    )?;
    linker.func_wrap_async(
        MODULE,
        "wait-next",
        move |mut caller: Caller<'_, T>, (): ()| {
            Box::new(async move {
                let caps = project(caller.data_mut());
                // The guest's turn is over: the agents it started go to the pool together.
                caps.agents.dispatch();
                if caps.outstanding() == 0 {
                    return Err(wasmtime::Error::new(super::abi::ScriptFault(
                        "the runtime waited with no agent or timer outstanding".into(),
                    )));
                }
                let deadline = caps.deadline;
                // A completion already waiting is taken without arming the wall-clock timer:
                // with a fast backend that is most of them, and a timer armed and dropped per
                // agent costs the time driver's lock (shared with every pool worker).
                let ready = caps.completions.try_recv().ok();
                let completion = match ready {
                    Some(c) => c,
                    None => tokio::select! {
                        biased;
                        c = caps.completions.recv() => {
                            c.ok_or_else(|| wasmtime::format_err!("the scheduler stopped"))?
                        }
                        () = tokio::time::sleep_until(deadline) => {
                            return Err(caps.hit(LimitHit::WallClock));
                        }
                    },
                };
                let message = match caps.complete(completion) {
                    Ok(m) => m,
                    Err(limit) => return Err(caps.hit(limit)),
                };
                // The guest waited on the host: its synchronous-execution allowance starts afresh.
                caps.last_yield = Instant::now();
                return_bytes(&mut caller, exports(project), &message).await
            })
        },
    )?;
    linker.func_wrap(
        MODULE,
        "cancel",
        move |mut caller: Caller<'_, T>, handle: u32| {
            project(caller.data_mut()).timers.cancel(handle);
        },
    )?;
    request_reply(
        linker,
        "load-workflow",
        project,
        Capabilities::load_workflow,
    )?;
    linker.func_wrap(
        MODULE,
        "log",
        move |mut caller: Caller<'_, T>, level: u32, ptr: u32, len: u32| {
            let text = read_string(&mut caller, exports(project), ptr, len)?;
            let caps = project(caller.data_mut());
            let logged = if level == NOTE_LEVEL {
                caps.note(text)
            } else {
                caps.log(LogLevel::from_guest(level), text)
            };
            logged.map_err(|limit| caps.hit(limit))
        },
    )?;
    text_sink(linker, "phase", project, Capabilities::phase)?;
    text_sink(linker, "finish", project, |caps, outcome| {
        caps.finish(&outcome)
    })?;
    Ok(())
}

/// The guest's log level of a runtime note (`Capabilities::note`); 0–2 are narrator lines.
const NOTE_LEVEL: u32 = 3;

#[cfg(test)]
mod tests;
