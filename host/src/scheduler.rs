//! The bounded agent pool: a FIFO queue served by exactly `concurrency` workers, so the number
//! of agents running at once can never exceed it.
//!
//! Each job asks the backend, checks a structured reply against its schema (re-asking a
//! bounded number of times with the validation errors as feedback) and sends the outcome to
//! the run's completion channel, which the guest drains through `wait-next`.

use crate::backend::{AgentRequest, Backend, Usage};
use crate::events::{Event, Events};
use crate::journal::{Journal, Record};
use crate::schema::{Schema, reply_object};
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, mpsc};

/// Why 3: a model that misses the schema twice with the errors in front of it rarely gets it
/// right on a fourth try, and each attempt costs a full call.
pub const SCHEMA_ATTEMPTS: u32 = 3;

/// One agent to run.
pub struct AgentJob {
    pub handle: u32,
    pub request: AgentRequest,
    pub schema: Option<Schema>,
    /// The journal key and occurrence (see journal::agent_key).
    pub key: String,
    pub occurrence: u32,
}

/// The end of a job (agent or timer), in the order the guest receives them.
#[derive(Debug)]
pub enum Completion {
    Agent { handle: u32, outcome: AgentOutcome },
    Timer { handle: u32 },
}

#[derive(Debug)]
pub struct AgentOutcome {
    /// The agent's text, or its object when a schema was given; the error message otherwise.
    pub result: Result<Value, String>,
    pub usage: Usage,
    /// The failure may go away on its own (rate limit, overload, network).
    pub transient: bool,
    pub duration: Duration,
    /// Served from the run's journal, not the backend.
    pub cached: bool,
}

#[derive(Clone)]
pub struct Scheduler {
    queue: mpsc::UnboundedSender<AgentJob>,
}

impl Scheduler {
    /// Starts `concurrency` workers that run jobs in submission order, record each outcome in
    /// the journal (before anyone sees it: a crash after that point loses nothing), and send it
    /// to `done`. The workers stop when the scheduler (every clone) is dropped.
    pub fn start(
        backend: Arc<dyn Backend>,
        concurrency: usize,
        done: mpsc::UnboundedSender<Completion>,
        events: Events,
        journal: Option<Arc<Journal>>,
    ) -> Scheduler {
        let (queue, rx) = mpsc::unbounded_channel::<AgentJob>();
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..concurrency.max(1) {
            let (rx, backend, done, events) =
                (rx.clone(), backend.clone(), done.clone(), events.clone());
            let journal = journal.clone();
            tokio::spawn(async move {
                loop {
                    // tokio's Mutex is fair, so idle workers take jobs in FIFO order.
                    let Some(job) = rx.lock().await.recv().await else {
                        break;
                    };
                    let handle = job.handle;
                    events.emit(Event::AgentStarted {
                        handle,
                        label: job.request.label.clone(),
                        model: job.request.model.clone(),
                    });
                    let outcome = run(backend.as_ref(), &job).await;
                    if let Some(j) = &journal {
                        record(j, backend.as_ref(), &job, &outcome);
                    }
                    if done.send(Completion::Agent { handle, outcome }).is_err() {
                        break; // the run is over; nobody is waiting for results any more
                    }
                }
            });
        }
        Scheduler { queue }
    }

    pub fn submit(&self, job: AgentJob) {
        // A send error means the workers are gone, i.e. the run is being torn down.
        let _ = self.queue.send(job);
    }
}

/// Journals an outcome: the result (or failure) record, then the transcript.
fn record(journal: &Journal, backend: &dyn Backend, job: &AgentJob, outcome: &AgentOutcome) {
    let (key, occurrence) = (job.key.clone(), job.occurrence);
    let record = match &outcome.result {
        Ok(value) => Record::Result {
            key,
            occurrence,
            value: value.clone(),
            usage: outcome.usage,
            backend: backend.identity(),
        },
        Err(error) => Record::Failed {
            key,
            occurrence,
            error: error.clone(),
        },
    };
    if let Err(e) = journal.append(&record) {
        eprintln!("warning: {e:#}: this result will run again on resume");
    }
    let response = match &outcome.result {
        Ok(v) => serde_json::json!({ "value": v }),
        Err(e) => serde_json::json!({ "error": e }),
    };
    journal.write_transcript(
        &job.key,
        job.occurrence,
        &serde_json::json!({
            "request": job.request,
            "response": response,
            "usage": outcome.usage,
            "duration_ms": outcome.duration.as_millis() as u64,
            "backend": backend.identity(),
        }),
    );
}

/// Asks the backend, enforcing the schema.
async fn run(backend: &dyn Backend, job: &AgentJob) -> AgentOutcome {
    let start = Instant::now();
    let mut usage = Usage::default();
    let mut feedback: Option<String> = None;
    let done = |result, usage, transient| AgentOutcome {
        result,
        usage,
        transient,
        duration: start.elapsed(),
        cached: false,
    };
    for attempt in 1..=SCHEMA_ATTEMPTS {
        let reply = match backend.run(&job.request, feedback.as_deref()).await {
            Ok(r) => r,
            Err(e) => return done(Err(e.message), usage, e.transient),
        };
        usage += reply.usage;
        let Some(schema) = &job.schema else {
            return done(Ok(Value::String(reply.text)), usage, false);
        };
        let problem = match reply_object(reply.structured.as_ref(), &reply.text) {
            Some(v) => match schema.validate(&v) {
                Ok(()) => return done(Ok(v), usage, false),
                Err(why) => why,
            },
            None => "the reply is not a JSON object".to_string(),
        };
        if attempt == SCHEMA_ATTEMPTS {
            return done(
                Err(format!(
                    "the reply did not match the schema after {SCHEMA_ATTEMPTS} attempts: {problem}"
                )),
                usage,
                false,
            );
        }
        feedback = Some(problem);
    }
    unreachable!("the loop returns on its last attempt")
}
