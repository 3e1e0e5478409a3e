//! The `nats` executor, run-host side: a `Backend` whose calls are jobs on the work queue.
//!
//! The run's pool still bounds how many calls are out at once, supervises each (kill, restart,
//! stop, the stall timeout) and journals what comes back; this only replaces "call the backend"
//! with "publish the job, wait for its result in the results bucket". Dropping a call (a kill,
//! a stop, a stall) publishes its cancel, which the worker making it obeys.

use super::{CANCEL, Job, JobResult, PROGRESS, Plumbing};
use crate::backend::{AgentError, AgentReply, AgentRequest, Backend};
use async_nats::jetstream::message::PublishMessage;
use futures_util::StreamExt as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Goes at a call while the NATS server is away. Why 12: with the backoff (0.5 s doubling to
/// 8 s) that is about 75 s, which outlasts a server restart; longer, and a CI run would hang.
const NATS_ATTEMPTS: u32 = 12;

pub(crate) struct Nats {
    client: async_nats::Client,
    plumbing: Plumbing,
    run_id: String,
    /// The backend workers use (`messages`, `claude`, …), as the user named it.
    spec: String,
    model: String,
    published: AtomicU64,
    served_from_kv: AtomicU64,
    url: String,
    /// Results must be signed with this (`--results-key-file`).
    results_key: Option<[u8; 32]>,
    /// When the run was last told that no worker takes its jobs (said at most once a minute).
    warned: std::sync::Mutex<Option<std::time::Instant>>,
    /// Each job's cancel secret is derived from this (random, never published).
    cancel_key: [u8; 32],
}

/// A job no worker has taken for this long makes the run host ask who serves its backend. Why
/// 10 s: a worker with a free slot takes a job in milliseconds; one whose slots are all busy
/// still answers the question, so only a fleet with no worker for the backend is warned about.
const TAKEN_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

impl Nats {
    pub(crate) async fn connect(
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
            url: url.to_string(),
            results_key: super::results_key(auth)?,
            warned: std::sync::Mutex::new(None),
            cancel_key: crate::random_key()
                .map_err(|e| anyhow::anyhow!("cannot read /dev/urandom: {e}"))?,
        })
    }

    /// A job of ours waited `TAKEN_WITHIN` untaken: if no worker answers for its backend, the
    /// run says so (a log line and its event), rather than wait silently for the stall timeout.
    async fn nobody_took_it(&self) {
        {
            let mut warned = self
                .warned
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if warned.is_some_and(|at| at.elapsed() < std::time::Duration::from_secs(60)) {
                return;
            }
            *warned = Some(std::time::Instant::now());
        }
        let workers = super::ask_workers(
            &self.client,
            Some(&self.spec),
            std::time::Duration::from_millis(500),
        )
        .await
        .unwrap_or_default();
        if !workers.is_empty() {
            return;
        }
        let backend = super::backend_token(&self.spec);
        let text = format!(
            "no worker has taken a `{backend}` job for {} s, and no worker serving `{backend}` answers at {}: start one with `wfhost worker --nats {} --backend {}` (docs/distributed.md); the run waits for one",
            TAKEN_WITHIN.as_secs(),
            self.url,
            self.url,
            self.spec
        );
        let events = crate::backend::CALL
            .try_with(|c| c.events.clone())
            .ok()
            .flatten();
        match events {
            Some(events) => events.emit(crate::events::Event::Log {
                level: crate::events::LogLevel::Warn,
                text,
            }),
            None => eprintln!("warning: {text}"),
        }
    }

    /// Puts the job on the work queue (de-duplicated by its id).
    async fn publish(&self, id: &str, payload: Vec<u8>) -> Result<(), String> {
        let fail = |what: &str, e: &dyn std::fmt::Display| format!("{what}: {e}");
        let subject = super::jobs_subject(&self.spec, &self.run_id);
        let mut msg_id = id.to_string();
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
        Ok(())
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
        if let Ok(Some(bytes)) = self.plumbing.results.get(&id).await
            && super::is_answer(&bytes, &id, self.results_key.as_ref())
        {
            self.served_from_kv.fetch_add(1, Ordering::Relaxed);
            return Ok(decode(&bytes, &id, self.results_key.as_ref()));
        }
        // A tool-using agent's turns and a `claude` agent's session, as the worker making the
        // call stores them: journaled here as they come (and those stored before, by a worker
        // that went on after this host died), so a resume continues from the last one.
        let transcript = crate::backend::call_context().transcript;
        let turns_id = super::turns_id(&self.run_id, call.as_ref());
        let mut turns_watch = match &transcript {
            Some(_) => Some(
                self.plumbing
                    .turns
                    .watch(&turns_id)
                    .await
                    .map_err(|e| fail("watching the turns bucket", &e))?,
            ),
            None => None,
        };
        if let Some(t) = &transcript
            && let Ok(Some(bytes)) = self.plumbing.turns.get(&turns_id).await
            && let Ok(stored) = super::JobTurns::read(&bytes, &turns_id, self.results_key.as_ref())
        {
            t.merge(stored.turns);
            t.set_session(stored.session);
        }
        let cancel_secret = blake3::keyed_hash(&self.cancel_key, id.as_bytes())
            .to_hex()
            .to_string();
        let job = Job {
            id: id.clone(),
            run_id: self.run_id.clone(),
            backend: self.spec.clone(),
            request: request.clone(),
            call,
            feedback: feedback.map(str::to_owned),
            definition: crate::backend::agent_definition().map(|d| (*d).clone()),
            cancel: Some(blake3::hash(cancel_secret.as_bytes()).to_hex().to_string()),
            turns: transcript.as_ref().map(|t| t.turns()).unwrap_or_default(),
            session: transcript.as_ref().and_then(|t| t.session()),
        };
        let payload = match serde_json::to_vec(&job) {
            Ok(p) => p,
            Err(e) => return Ok(Err(AgentError::permanent(format!("encoding the job: {e}")))),
        };
        // A job the server cannot take fails once, now, naming the limit: publishing it again
        // cannot help, and neither can a resume.
        let max = self.client.server_info().max_payload;
        if max > 0 && payload.len() > max {
            return Ok(Err(AgentError::permanent(super::over_max_payload(
                "this agent's job",
                payload.len(),
                max,
            ))));
        }
        self.publish(&id, payload).await?;
        self.published.fetch_add(1, Ordering::Relaxed);
        // Dropped before the result came (a kill, a stop, a stall): the worker is told to stop.
        let mut guard = CancelOnDrop {
            client: self.client.clone(),
            subject: Some(format!("{CANCEL}.{id}")),
            secret: cancel_secret,
        };
        // Until a worker says it took the job (its first sign of life).
        let untaken = tokio::time::sleep(TAKEN_WITHIN);
        tokio::pin!(untaken);
        let mut taken = false;
        loop {
            tokio::select! {
                () = &mut untaken, if !taken => {
                    taken = true;
                    self.nobody_took_it().await;
                }
                entry = watch.next() => match entry {
                    Some(Ok(e)) if e.operation == async_nats::jetstream::kv::Operation::Put => {
                        guard.subject = None;
                        return Ok(decode(&e.value, &id, self.results_key.as_ref()));
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(fail("watching the results bucket", &e)),
                    None => return Err("the results watch ended (the NATS server went away?)".into()),
                },
                Some(_) = progress.next() => {
                    taken = true;
                    crate::backend::progress();
                }
                Some(entry) = next_turns(&mut turns_watch) => {
                    if let (Ok(e), Some(t)) = (entry, &transcript)
                        && e.operation == async_nats::jetstream::kv::Operation::Put
                        && let Ok(stored) = super::JobTurns::read(&e.value, &turns_id, self.results_key.as_ref())
                    {
                        t.merge(stored.turns);
                        t.set_session(stored.session);
                        crate::backend::progress();
                    }
                }
            }
        }
    }

    fn error(message: String) -> AgentError {
        AgentError {
            message,
            transient: true,
            usage_limit: false,
            stops_run: false,
            resets_in: None,
        }
    }
}

/// The next change to a call's stored turns (never, for an agent without tools).
async fn next_turns(
    watch: &mut Option<async_nats::jetstream::kv::Watch>,
) -> Option<Result<async_nats::jetstream::kv::Entry, async_nats::jetstream::kv::WatcherError>> {
    match watch {
        Some(w) => w.next().await,
        None => std::future::pending().await,
    }
}

/// Publishes a call's cancel when the call is dropped before its result came.
struct CancelOnDrop {
    client: async_nats::Client,
    subject: Option<String>,
    /// What the worker checks against the job's `cancel` hash.
    secret: String,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(subject) = self.subject.take() {
            let client = self.client.clone();
            let secret = std::mem::take(&mut self.secret);
            tokio::spawn(async move {
                let _ = client.publish(subject, secret.into()).await;
                let _ = client.flush().await;
            });
        }
    }
}

fn decode(bytes: &[u8], job: &str, key: Option<&[u8; 32]>) -> Result<AgentReply, AgentError> {
    let r: JobResult = serde_json::from_slice(bytes)
        .map_err(|e| Nats::error(format!("a worker stored an unreadable result ({e})")))?;
    // Refused loudly, and not served: a forged or broken result must not become an answer.
    if let Err(why) = super::check_result(&r, job, key) {
        return Err(AgentError::permanent(format!(
            "the result stored for this agent (by `{}`) was refused: {why}",
            crate::sanitize::line(&r.worker)
        )));
    }
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
            stops_run: e.stops_run,
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
    /// The worker that takes the job makes an isolated agent's worktree, in its own directory.
    fn place(&self) -> crate::backend::worktree::Place {
        crate::backend::worktree::Place::Elsewhere
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
            tokio::time::sleep(crate::backend::transport::backoff(attempt)).await;
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
