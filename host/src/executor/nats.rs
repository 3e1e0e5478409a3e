//! The `nats` executor, run-host side: a `Backend` whose calls are jobs on the work queue.
//!
//! The run's pool still bounds how many calls are out at once, supervises each (kill, restart,
//! stop, the stall timeout) and journals what comes back; this only replaces "call the backend"
//! with "publish the job, wait for its result in the results bucket". Dropping a call (a kill,
//! a stop, a stall) publishes its cancel, which the worker making it obeys.

use super::{CANCEL, JOBS, Job, JobResult, PROGRESS, Plumbing};
use crate::backend::{AgentError, AgentReply, AgentRequest, Backend};
use async_nats::jetstream::message::PublishMessage;
use futures_util::StreamExt as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Goes at a call while the NATS server is away. Why 12: with the backoff (0.5 s doubling to
/// 8 s) that is about 75 s, which outlasts a server restart; longer, and a CI run would hang.
const NATS_ATTEMPTS: u32 = 12;

pub struct Nats {
    client: async_nats::Client,
    plumbing: Plumbing,
    run_id: String,
    /// The backend workers use (`messages`, `claude`, …), as the user named it.
    spec: String,
    model: String,
    published: AtomicU64,
    served_from_kv: AtomicU64,
}

impl Nats {
    pub async fn connect(
        url: &str,
        auth: &super::NatsArgs,
        run_id: &str,
        spec: &str,
        model: &str,
    ) -> anyhow::Result<Nats> {
        let client = super::connect(url, auth, &format!("wfhost run {run_id}")).await?;
        let plumbing = super::plumbing(&client, None).await?;
        Ok(Nats {
            client,
            plumbing,
            run_id: run_id.to_string(),
            spec: spec.to_string(),
            model: model.to_string(),
            published: AtomicU64::new(0),
            served_from_kv: AtomicU64::new(0),
        })
    }

    /// One go at a call: `Ok` with the worker's outcome, or `Err` with why NATS failed us.
    async fn call(
        &self,
        request: &AgentRequest,
        feedback: Option<&str>,
    ) -> Result<Result<AgentReply, AgentError>, String> {
        let call = request.call.clone();
        let id = super::job_id(&self.run_id, call.as_ref(), feedback);
        let fail = |what: &str, e: &dyn std::fmt::Display| format!("{what}: {e}");
        // Watch first, then look: a result already there — a resume, a call a dead run host
        // published — is taken without publishing anything, and one stored in between is seen.
        let mut watch = self
            .plumbing
            .results
            .watch(&id)
            .await
            .map_err(|e| fail("watching the results bucket", &e))?;
        let mut progress = self
            .client
            .subscribe(format!("{PROGRESS}.{id}"))
            .await
            .map_err(|e| fail("subscribing to the job's progress", &e))?;
        if let Ok(Some(bytes)) = self.plumbing.results.get(&id).await {
            self.served_from_kv.fetch_add(1, Ordering::Relaxed);
            return Ok(decode(&bytes));
        }
        let job = Job {
            id: id.clone(),
            run_id: self.run_id.clone(),
            backend: self.spec.clone(),
            request: request.clone(),
            call,
            feedback: feedback.map(str::to_owned),
            definition: crate::backend::agent_definition().map(|d| (*d).clone()),
        };
        let payload = match serde_json::to_vec(&job) {
            Ok(p) => p,
            Err(e) => return Ok(Err(AgentError::permanent(format!("encoding the job: {e}")))),
        };
        let subject = format!("{JOBS}.{}", self.run_id);
        let mut msg_id = id.clone();
        for generation in 1.. {
            let ack = self
                .plumbing
                .js
                .send_publish(
                    subject.clone(),
                    PublishMessage::build()
                        .payload(payload.clone().into())
                        .message_id(&msg_id),
                )
                .await
                .map_err(|e| fail("publishing the job", &e))?
                .await
                .map_err(|e| fail("publishing the job", &e))?;
            // A duplicate whose original is gone (its call was cancelled and the job taken off
            // the queue) would never run: publish it again under a new message id. A duplicate
            // whose original is still queued is harmless: the result bucket and the lease make
            // the second delivery a no-op.
            if !ack.duplicate || generation > 1 {
                break;
            }
            msg_id = format!("{id}.{generation}");
        }
        self.published.fetch_add(1, Ordering::Relaxed);
        // Dropped before the result came (a kill, a stop, a stall): the worker is told to stop.
        let mut guard = CancelOnDrop {
            client: self.client.clone(),
            subject: Some(format!("{CANCEL}.{id}")),
        };
        loop {
            tokio::select! {
                entry = watch.next() => match entry {
                    Some(Ok(e)) if e.operation == async_nats::jetstream::kv::Operation::Put => {
                        guard.subject = None;
                        return Ok(decode(&e.value));
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(fail("watching the results bucket", &e)),
                    None => return Err("the results watch ended (the NATS server went away?)".into()),
                },
                Some(_) = progress.next() => crate::backend::progress(),
            }
        }
    }

    fn error(message: String) -> AgentError {
        AgentError {
            message,
            transient: true,
            usage_limit: false,
            resets_in: None,
        }
    }
}

/// Publishes a call's cancel when the call is dropped before its result came.
struct CancelOnDrop {
    client: async_nats::Client,
    subject: Option<String>,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(subject) = self.subject.take() {
            let client = self.client.clone();
            tokio::spawn(async move {
                let _ = client.publish(subject, "cancel".into()).await;
                let _ = client.flush().await;
            });
        }
    }
}

fn decode(bytes: &[u8]) -> Result<AgentReply, AgentError> {
    let r: JobResult = serde_json::from_slice(bytes)
        .map_err(|e| Nats::error(format!("a worker stored an unreadable result ({e})")))?;
    match r.outcome {
        Ok(w) => Ok(AgentReply {
            text: w.text,
            structured: w.structured,
            usage: w.usage,
            cost_usd: w.cost_usd,
            note: w.note,
        }),
        Err(e) => Err(AgentError {
            message: e.message,
            transient: e.transient,
            usage_limit: e.usage_limit,
            resets_in: e.resets_in_ms.map(std::time::Duration::from_millis),
        }),
    }
}

#[async_trait::async_trait]
impl Backend for Nats {
    fn name(&self) -> &str {
        &self.spec
    }
    fn spec(&self) -> String {
        self.spec.clone()
    }
    fn identity(&self) -> String {
        format!("nats:{}:{}", self.spec, self.model)
    }
    fn default_model(&self) -> Option<String> {
        Some(self.model.clone())
    }

    async fn run(
        &self,
        request: &AgentRequest,
        feedback: Option<&str>,
    ) -> Result<AgentReply, AgentError> {
        // The NATS server may go away (a restart, a network blip): the client reconnects on its
        // own, and the call is taken up again — its result may already be in the bucket.
        let mut last = String::new();
        for attempt in 1..=NATS_ATTEMPTS {
            match self.call(request, feedback).await {
                Ok(outcome) => return outcome,
                Err(trouble) => last = trouble,
            }
            tokio::time::sleep(crate::backend::messages::backoff(attempt)).await;
        }
        Err(Nats::error(format!(
            "the NATS server did not serve this call after {NATS_ATTEMPTS} attempts ({last}); once it is back, `wfhost resume` takes up the run"
        )))
    }

    fn stats(&self) -> Option<serde_json::Value> {
        Some(serde_json::json!({
            "executor": "nats",
            "published": self.published.load(Ordering::Relaxed),
            "served_from_results_bucket": self.served_from_kv.load(Ordering::Relaxed),
        }))
    }
}
