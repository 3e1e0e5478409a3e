//! The bounded agent pool: a FIFO queue served by exactly `concurrency` workers, so the number
//! of agents running at once can never exceed it.
//!
//! Each job asks the backend, checks a structured reply against its schema (re-asking a
//! bounded number of times with the validation errors as feedback) and sends the outcome to
//! the run's completion channel, which the guest drains through `wait-next`.

use crate::backend::{AgentRequest, Backend, Usage};
use crate::events::{Event, Events};
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
}

#[derive(Clone)]
pub struct Scheduler {
    queue: mpsc::UnboundedSender<AgentJob>,
}

impl Scheduler {
    /// Starts `concurrency` workers that run jobs in submission order and send their outcomes
    /// to `done`. The workers stop when the scheduler (every clone) is dropped.
    pub fn start(
        backend: Arc<dyn Backend>,
        concurrency: usize,
        done: mpsc::UnboundedSender<Completion>,
        events: Events,
    ) -> Scheduler {
        let (queue, rx) = mpsc::unbounded_channel::<AgentJob>();
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..concurrency.max(1) {
            let (rx, backend, done, events) =
                (rx.clone(), backend.clone(), done.clone(), events.clone());
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
