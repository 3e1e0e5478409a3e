//! The bounded agent pool: a FIFO queue served by exactly `concurrency` workers, so the number
//! of agents running at once can never exceed it.
//!
//! Every call runs under the run's [`Control`]: a paused run holds queued jobs, and an operator
//! can kill, restart or stop a running call. The host watches each call too: one whose backend
//! shows no progress for the stall timeout is cancelled and asked once more, and none may take
//! longer than the per-agent wall clock, so no run shows "running" forever.
//!
//! Each job asks the backend, checks a structured reply against its schema (re-asking a
//! bounded number of times with the validation errors as feedback), prices it, records it in
//! the journal (and the recording, with `--record`) and sends the outcome to the run's
//! completion channel, which the guest drains through `wait-next`.

pub(crate) mod stagger;
pub(crate) mod throttle;

use crate::agent::{AgentRequest, Usage};
use crate::backend::Backend;
use crate::backend::replay::Recorder;
use crate::backend::{PROGRESS, Progress};
use crate::config::Config;
use crate::control::{Cancel, Control, KILLED};
use crate::events::{Event, Events, LogLevel};
use crate::journal::{Journal, Record};
use crate::schema::{Schema, reply_object};
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, mpsc};

/// How many times an answer that misses its schema is asked again, with the validation errors,
/// before `agent()` rejects. Why 5: the reference's `MAX_STRUCTURED_OUTPUT_RETRIES`, as peers
/// report it; matching it keeps scripts' cost and control flow the same. Config:
/// `schema_retries`.
pub(crate) const SCHEMA_RETRIES: u32 = 5;

/// How often a running agent's new output is passed to the views (`agent_output`). Why
/// 250 ms: four updates a second reads as live in the dashboard, and a call that answers
/// sooner costs no event and no timer.
const OUTPUT_LOOK: Duration = Duration::from_millis(250);

/// What `agent({schema})` rejects with when no answer ever matched (the reference's words).
pub(crate) const SCHEMA_NEVER_MET: &str = "agent({schema}): subagent completed without calling StructuredOutput (after in-conversation nudge)";

/// How long `--wait-on-limit` waits when the provider gives no reset time. Why 5 min: usage
/// limits reset on the scale of minutes to hours; asking every 5 minutes costs one refused call.
pub(crate) const LIMIT_WAIT: Duration = Duration::from_secs(5 * 60);

/// One agent to run.
pub(crate) struct AgentJob {
    pub handle: u32,
    pub request: AgentRequest,
    pub schema: Option<Schema>,
    /// The journal key and occurrence (see journal::agent_key).
    pub key: String,
    pub occurrence: u32,
    /// `agent(prompt, {stallMs})`: this call's stall timeout.
    pub stall: Option<Duration>,
    /// `agent({agentType})`'s definition, resolved when the agent was started.
    pub agent_def: Option<Arc<crate::workflows::AgentDef>>,
    /// `agent(prompt, {sharedHeadLength})`: bytes of the prompt shared with its fan-out.
    pub shared_head: Option<usize>,
    /// Set when the job is queued: its prompt's shared head and its place in the stagger.
    pub cache: Option<Arc<stagger::CacheHint>>,
    /// A tool-using agent's journaled turns, when a resume continues it (tools::transcript).
    pub turns: Vec<crate::tools::Turn>,
}

/// The end of a job (agent or timer), in the order the guest receives them.
#[derive(Debug)]
pub(crate) enum Completion {
    Agent { handle: u32, outcome: AgentOutcome },
    Timer { handle: u32 },
}

#[derive(Debug)]
pub(crate) struct AgentOutcome {
    /// The agent's text, or its object when a schema was given; the error message otherwise.
    pub result: Result<Value, String>,
    pub usage: Usage,
    /// USD, from the backend or the price table (0 when the model has no price).
    pub cost_usd: f64,
    /// The failure may go away on its own (rate limit, overload, network).
    pub transient: bool,
    pub duration: Duration,
    /// Served from the run's journal, not the backend.
    pub cached: bool,
    /// Something to tell the user (logged with the agent's label).
    pub note: Option<String>,
    /// The provider refused for a usage or spend limit: the run must stop (or wait).
    pub usage_limit: bool,
    /// When the provider says that limit resets.
    pub limit_resets_in: Option<Duration>,
    /// The backend cannot be reached (`AgentError::stops_run`): the run must stop.
    pub stops_run: bool,
    /// The call rejects in the script (a schema never met) rather than resolving to `null`.
    pub rejects: bool,
    /// The model that answered without a price (its cost is unknown, counted as 0).
    pub unpriced: Option<String>,
}

/// What the workers need.
pub(crate) struct SchedulerSetup {
    /// Set when the provider reports a usage or spend limit: no further job starts.
    pub limited: std::sync::atomic::AtomicBool,
    pub backend: Arc<dyn Backend>,
    pub concurrency: usize,
    pub done: mpsc::UnboundedSender<Completion>,
    pub events: Events,
    pub journal: Option<Arc<Journal>>,
    pub recorder: Option<Arc<Recorder>>,
    pub config: Arc<Config>,
    pub control: Arc<Control>,
    /// No progress for this long: cancel, retry once (`--stall-timeout`).
    pub stall_timeout: Duration,
    /// One agent's wall clock (`--agent-timeout`).
    pub agent_timeout: Duration,
    /// A usage limit holds dispatching until it resets, instead of ending the run.
    pub wait_on_limit: bool,
    /// The run's batches (backend::batch): its journal, and the batches a resume found.
    pub batches: Option<Arc<crate::backend::batch::Ledger>>,
    /// Sessions of `claude` agents a resume continues (tools::transcript), by call.
    pub sessions: std::collections::HashMap<(String, u32), String>,
}

#[derive(Clone)]
pub(crate) struct Scheduler {
    queue: mpsc::UnboundedSender<AgentJob>,
    /// For a backend that places cache breakpoints (`Backend::caches_prompts`).
    stagger: Option<Arc<std::sync::Mutex<stagger::Stagger>>>,
}

impl Scheduler {
    /// Starts `concurrency` workers that run jobs in submission order, record each outcome in
    /// the journal (before anyone sees it: a crash after that point loses nothing), and send it
    /// to `done`. The workers stop when the scheduler (every clone) is dropped.
    pub(crate) fn start(setup: SchedulerSetup) -> Scheduler {
        let (queue, rx) = mpsc::unbounded_channel::<AgentJob>();
        let rx = Arc::new(Mutex::new(rx));
        let throttle = throttle::Throttle::new(
            setup.config.clone(),
            setup.concurrency,
            setup.events.clone(),
        );
        let stagger = setup.backend.caches_prompts().then(|| {
            let hold = setup.config.messages.cache_stagger.unwrap_or(true);
            Arc::new(std::sync::Mutex::new(stagger::Stagger::new(hold)))
        });
        let setup = Arc::new(setup);
        for _ in 0..setup.concurrency.max(1) {
            let (rx, setup, throttle) = (rx.clone(), setup.clone(), throttle.clone());
            tokio::spawn(async move {
                loop {
                    // tokio's Mutex is fair, so idle workers take jobs in FIFO order.
                    let Some(job) = rx.lock().await.recv().await else {
                        break;
                    };
                    // The journal failed, or the provider's usage limit is reached: the run is
                    // stopping, and nothing more may start.
                    if setup
                        .journal
                        .as_ref()
                        .is_some_and(|j| j.failure().is_some())
                        || setup.limited.load(std::sync::atomic::Ordering::Acquire)
                    {
                        continue;
                    }
                    let handle = job.handle;
                    let outcome = loop {
                        // Paused, or waiting for a usage limit to reset: hold the job (and the
                        // slot); stopping: drop it.
                        if !setup.control.dispatch_allowed().await {
                            break None;
                        }
                        // `None`: the run is stopping, and nothing is recorded for this call.
                        let outcome = supervise(&setup, &job, &throttle).await;
                        match outcome {
                            // `--wait-on-limit`: dispatching waits until the limit resets, then
                            // the same request is asked again.
                            Some(o) if o.usage_limit && setup.wait_on_limit => setup
                                .control
                                .hold(o.limit_resets_in.unwrap_or(LIMIT_WAIT), &job.request.label),
                            other => break other,
                        }
                    };
                    let Some(outcome) = outcome else {
                        continue;
                    };
                    if outcome.usage_limit || outcome.stops_run {
                        setup
                            .limited
                            .store(true, std::sync::atomic::Ordering::Release);
                    }
                    record(&setup, &job, &outcome);
                    let transcript = transcript(&setup, &job, &outcome);
                    if setup
                        .done
                        .send(Completion::Agent { handle, outcome })
                        .is_err()
                    {
                        break; // the run is over; nobody is waiting for results any more
                    }
                    // After the script has its answer: nothing waits on the transcript.
                    if let (Some(journal), Some(t)) = (&setup.journal, transcript) {
                        journal.write_transcript(&job.key, job.occurrence, t);
                    }
                }
            });
        }
        Scheduler { queue, stagger }
    }

    /// Whether agents started together should reach the pool together (`submit_batch`): only
    /// for a backend that places cache breakpoints. Any other gets each job at once, so the
    /// pool starts working while the script is still starting a fan-out.
    pub(crate) fn batches(&self) -> bool {
        self.stagger.is_some()
    }

    /// Queues agents started together (one guest turn's `agent()` calls, in order), after the
    /// stagger has found the heads they share.
    pub(crate) fn submit_batch(&self, mut jobs: Vec<AgentJob>) {
        if let Some(stagger) = &self.stagger {
            stagger
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .plan(&mut jobs);
        }
        for job in jobs {
            self.submit(job);
        }
    }

    pub(crate) fn submit(&self, job: AgentJob) {
        // A send error means the workers are gone, i.e. the run is being torn down.
        let _ = self.queue.send(job);
    }
}

/// The transcript of a journaled outcome (the answer itself is in the journal's record).
fn transcript(setup: &SchedulerSetup, job: &AgentJob, outcome: &AgentOutcome) -> Option<Value> {
    let journal = setup.journal.as_ref()?;
    if journal.failure().is_some() {
        return None;
    }
    let mut t = serde_json::json!({
        "request": job.request,
        "usage": outcome.usage,
        "cost_usd": outcome.cost_usd,
        "duration_ms": crate::report::millis(outcome.duration),
        "backend": setup.backend.identity(),
    });
    if let Err(e) = &outcome.result {
        t["error"] = e.clone().into();
    }
    Some(t)
}

/// Journals an outcome (a result or failure record) and records it.
fn record(setup: &SchedulerSetup, job: &AgentJob, outcome: &AgentOutcome) {
    let identity = setup.backend.identity();
    if let (Some(recorder), Ok(value)) = (&setup.recorder, &outcome.result) {
        recorder.store(
            &job.key,
            job.occurrence,
            &job.request,
            value,
            &outcome.usage,
        );
    }
    let Some(journal) = &setup.journal else {
        return;
    };
    let (key, occurrence) = (job.key.clone(), job.occurrence);
    let record = match &outcome.result {
        Ok(value) => Record::Result {
            key,
            occurrence,
            value: value.clone(),
            usage: outcome.usage,
            cost_usd: outcome.cost_usd,
            backend: identity.clone(),
        },
        Err(error) => Record::Failed {
            key,
            occurrence,
            error: error.clone(),
            usage: (outcome.usage != crate::agent::Usage::default()).then_some(outcome.usage),
            cost_usd: (outcome.cost_usd > 0.0).then_some(outcome.cost_usd),
        },
    };
    // A failure is remembered by the journal; the run stops at the next completion.
    let _ = journal.append(&record);
}

/// How a supervised call ended.
enum Ended {
    Answered(AgentOutcome),
    Cancelled(Cancel),
    Stalled,
    OutOfTime,
}

/// The next cancel an operator sends to this call.
async fn next_cancel(rx: &mut tokio::sync::watch::Receiver<Option<Cancel>>) -> Cancel {
    loop {
        if rx.changed().await.is_err() {
            return std::future::pending().await;
        }
        if let Some(c) = *rx.borrow_and_update() {
            return c;
        }
    }
}

/// Runs one call under the run's control and the host's watch: kill, restart and stop from an
/// operator; the stall timeout (cancel, retry once, then fail) and the per-agent wall clock.
/// `None`: the run is stopping, and the call was abandoned.
async fn supervise(
    setup: &SchedulerSetup,
    job: &AgentJob,
    throttle: &Arc<throttle::Throttle>,
) -> Option<AgentOutcome> {
    let outcome = supervised(setup, job, throttle).await;
    // Answered or not, this call no longer holds anyone back.
    if let Some(hint) = &job.cache {
        hint.release();
    }
    outcome
}

/// What the backend may know of the call it makes. One per call, across stall restarts and
/// schema re-asks: a tool-using agent's transcript continues from its last finished turn.
fn context(
    setup: &SchedulerSetup,
    job: &AgentJob,
    throttle: &Arc<throttle::Throttle>,
) -> crate::backend::CallContext {
    crate::backend::CallContext {
        control_socket: setup.control.socket(),
        // The agent's number as `wfhost watch` shows it (given when it was queued).
        agent: setup.control.number(job.handle),
        definition: job.agent_def.clone(),
        cache: job.cache.clone(),
        throttle: Some(throttle.clone()),
        events: Some(setup.events.clone()),
        handle: Some(job.handle),
        control: Some(setup.control.clone()),
        transcript: Some(crate::tools::Transcript::new(
            setup.journal.clone(),
            job.key.clone(),
            job.occurrence,
            job.turns.clone(),
            setup
                .sessions
                .get(&(job.key.clone(), job.occurrence))
                .cloned(),
        )),
        key: Some((job.key.clone(), job.occurrence)),
        batches: setup.batches.clone(),
    }
}

async fn supervised(
    setup: &SchedulerSetup,
    job: &AgentJob,
    throttle: &Arc<throttle::Throttle>,
) -> Option<AgentOutcome> {
    let start = Instant::now();
    let failed = |message: String| AgentOutcome {
        unpriced: None,
        result: Err(message),
        usage: Usage::default(),
        cost_usd: 0.0,
        transient: false,
        duration: start.elapsed(),
        cached: false,
        note: None,
        usage_limit: false,
        rejects: false,
        limit_resets_in: None,
        stops_run: false,
    };
    let mut cancel = match setup.control.begin(job.handle) {
        Ok(rx) => rx,
        Err(Cancel::Stop) => return None,
        Err(_) => return Some(failed(KILLED.to_string())),
    };
    let stall = job.stall.unwrap_or(setup.stall_timeout);
    let deadline = tokio::time::Instant::from_std(start + setup.agent_timeout);
    let mut stalls = 0;
    let context = context(setup, job, throttle);
    let outcome = loop {
        setup.events.emit(Event::AgentStarted {
            handle: job.handle,
            label: job.request.label.clone(),
            model: job
                .request
                .model
                .clone()
                .or_else(|| setup.backend.default_model()),
            prompt: Some(
                job.request
                    .prompt
                    .chars()
                    .take(crate::events::PROMPT_HEAD)
                    .collect(),
            ),
        });
        let progress = Progress::new();
        let call = PROGRESS.scope(
            progress.clone(),
            crate::backend::CALL.scope(context.clone(), run(setup, job)),
        );
        tokio::pin!(call);
        let ended = loop {
            let silent_until = tokio::time::Instant::from_std(progress.last() + stall);
            let look = tokio::time::Instant::now() + OUTPUT_LOOK;
            // The call first: one that answers at once (a mock, a replay, the journal) ends
            // here without arming the timer.
            // One timer for the stall, the wall clock and a look at the agent's output,
            // whichever comes first.
            tokio::select! {
                biased;
                outcome = &mut call => break Ended::Answered(outcome),
                c = next_cancel(&mut cancel) => break Ended::Cancelled(c),
                () = tokio::time::sleep_until(silent_until.min(deadline).min(look)) => {
                    let said = progress.take_output();
                    if !said.is_empty() {
                        setup.events.emit(Event::AgentOutput { handle: job.handle, text: said });
                    }
                    if tokio::time::Instant::now() >= deadline {
                        break Ended::OutOfTime;
                    }
                    if progress.last() + stall <= Instant::now() {
                        break Ended::Stalled;
                    }
                }
            }
        };
        match ended {
            Ended::Answered(outcome) => break outcome,
            Ended::Cancelled(Cancel::Kill) => break failed(KILLED.to_string()),
            Ended::Cancelled(Cancel::Stop) => {
                setup.control.end(job.handle);
                return None;
            }
            // The same request again, from the start; the script gets this answer.
            Ended::Cancelled(Cancel::Restart) => {}
            Ended::Stalled if stalls == 0 => {
                stalls += 1;
                let why = format!(
                    "no progress from the backend for {}; cancelled and asked once more",
                    humantime::format_duration(stall)
                );
                setup.events.emit(Event::Log {
                    level: LogLevel::Warn,
                    text: format!("[{}] stalled: {why}", job.request.label),
                });
                setup.events.emit(Event::Control {
                    action: "stall".into(),
                    agent: context.agent,
                    by: "wfhost".into(),
                    detail: Some(why),
                    wait_ms: None,
                });
            }
            Ended::Stalled => {
                break failed(format!(
                    "stalled twice: no progress from the backend for {} (the stall timeout: `--stall-timeout`, or `stallMs` on the agent)",
                    humantime::format_duration(stall)
                ));
            }
            Ended::OutOfTime => {
                break failed(format!(
                    "took longer than {} (the per-agent wall clock: `--agent-timeout`)",
                    humantime::format_duration(setup.agent_timeout)
                ));
            }
        }
    };
    setup.control.end(job.handle);
    Some(outcome)
}

/// One agent call: in a worktree of its own when it asked for isolation (made here when the
/// backend's agents work here, backend::worktree), then asked of the backend.
async fn run(setup: &SchedulerSetup, job: &AgentJob) -> AgentOutcome {
    let isolated = job.request.isolation.as_deref() == Some("worktree")
        && setup.backend.place() == crate::backend::worktree::Place::Here;
    if !isolated {
        return ask(setup, job, &job.request).await;
    }
    let start = Instant::now();
    let made = match std::env::current_dir() {
        Ok(cwd) => crate::backend::worktree::Worktree::make(&cwd).await,
        Err(e) => Err(crate::backend::AgentError::permanent(format!(
            "cannot create agent worktree: {e}"
        ))),
    };
    let worktree = match made {
        Ok(w) => w,
        Err(e) => {
            return AgentOutcome {
                unpriced: None,
                result: Err(e.message),
                usage: Usage::default(),
                cost_usd: 0.0,
                transient: false,
                duration: start.elapsed(),
                cached: false,
                note: None,
                usage_limit: false,
                limit_resets_in: None,
                stops_run: false,
                rejects: false,
            };
        }
    };
    let mut outcome = ask(setup, job, &worktree.request(&job.request)).await;
    if let Some(kept) = worktree.finish().await {
        outcome.note = Some(kept);
    }
    outcome
}

/// Asks the backend, enforcing the schema; prices what it spent.
async fn ask(
    setup: &SchedulerSetup,
    job: &AgentJob,
    request: &crate::agent::AgentRequest,
) -> AgentOutcome {
    let start = Instant::now();
    let backend = setup.backend.as_ref();
    let model = request.model.clone().or_else(|| backend.default_model());
    let price = model.as_deref().and_then(|m| setup.config.price(m));
    let mut usage = Usage::default();
    let mut cost: Option<f64> = None;
    let mut feedback: Option<String> = None;
    let mut note = None;
    let done = |result, usage: Usage, cost: Option<f64>, transient, note| AgentOutcome {
        result,
        cost_usd: cost.unwrap_or_else(|| price.map_or(0.0, |p| p.cost(&usage))),
        unpriced: model
            .clone()
            .filter(|_| cost.is_none() && price.is_none() && usage != Usage::default()),
        usage,
        transient,
        duration: start.elapsed(),
        cached: false,
        note,
        usage_limit: false,
        limit_resets_in: None,
        stops_run: false,
        rejects: false,
    };
    let attempts = 1 + setup.config.schema_retries.unwrap_or(SCHEMA_RETRIES);
    for attempt in 1..=attempts {
        crate::backend::take_spent();
        let reply = match backend.run(request, feedback.as_deref()).await {
            Ok(r) => r,
            Err(e) => {
                return AgentOutcome {
                    usage_limit: e.usage_limit,
                    limit_resets_in: e.resets_in,
                    stops_run: e.stops_run,
                    ..done(
                        Err(e.message),
                        {
                            let mut u = usage;
                            u += crate::backend::take_spent();
                            u
                        },
                        cost,
                        e.transient,
                        note,
                    )
                };
            }
        };
        usage += reply.usage;
        if let Some(c) = reply.cost_usd {
            *cost.get_or_insert(0.0) += c;
        }
        note = reply.note.or(note);
        let Some(schema) = &job.schema else {
            return done(Ok(Value::String(reply.text)), usage, cost, false, note);
        };
        let problem = match reply_object(reply.structured.as_ref(), &reply.text) {
            Some(v) => match schema.validate(&v) {
                Ok(()) => return done(Ok(v), usage, cost, false, note),
                Err(why) => why,
            },
            None => "the reply is not a JSON object".to_string(),
        };
        if attempt == attempts {
            // The script sees a rejection (the reference's message); the journal and the
            // report keep why.
            return AgentOutcome {
                rejects: true,
                ..done(
                    Err(format!(
                        "{SCHEMA_NEVER_MET}\nthe last of {attempts} replies did not match the schema: {problem}"
                    )),
                    usage,
                    cost,
                    false,
                    note,
                )
            };
        }
        feedback = Some(problem);
    }
    unreachable!("the loop returns on its last attempt")
}
