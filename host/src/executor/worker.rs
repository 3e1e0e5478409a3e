//! `wfhost worker`: serves agent calls from the work queue on this machine's backend.
//!
//! A durable pull consumer with explicit acks. For each job: a result already in the results
//! bucket → ack, no call; else claim the job with an atomic `create` in the leases bucket (held
//! by someone else → hand it back for later); make the call while a heartbeat renews the lease
//! and tells JetStream the job is in progress; store the result, then ack. A worker that loses
//! its lease abandons its call; a cancel from the run host ends it. SIGTERM: stop taking jobs,
//! let the calls in flight finish for the grace period, hand back the rest.

use super::{CANCEL, CONSUMER, JOBS, Job, JobResult, PROGRESS, STREAM, WireError, WireReply};
use crate::backend::Backend;
use anyhow::Result;
use async_nats::jetstream::{AckKind, consumer::pull};
use futures_util::StreamExt as _;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

pub(crate) struct WorkerOptions {
    pub url: String,
    pub auth: super::NatsArgs,
    pub concurrency: usize,
    pub backend: Arc<dyn Backend>,
    /// How long a job may go without a heartbeat before JetStream hands it to another worker,
    /// and a lease lives without renewal.
    pub lease: Duration,
    /// SIGTERM: how long calls in flight may take to finish before they are handed back.
    pub grace: Duration,
    pub name: String,
    /// Take a job's agent type definition as the run host sent it, when this worker's own
    /// project does not define that type (`--trust-job-agents`). Off: a job names a type, and
    /// the worker's own definition (its tools, model and prompt) is what runs.
    pub trust_job_agents: bool,
}

/// Why a call ended without a result.
enum Abandoned {
    Cancelled,
    LeaseLost,
    ShuttingDown,
}

/// A call's cancel switch, and the hash of the secret a cancel of it must carry.
type CancelSwitch = (watch::Sender<bool>, Option<String>);

struct Shared {
    opts: WorkerOptions,
    plumbing: super::Plumbing,
    leases: async_nats::jetstream::kv::Store,
    client: async_nats::Client,
    /// Cancel switches of the calls in flight, and the hash their cancel secret has, by job id.
    cancels: Mutex<HashMap<String, CancelSwitch>>,
    shutdown: watch::Receiver<bool>,
    /// Signs every result (`--results-key-file`).
    results_key: Option<[u8; 32]>,
    /// This worker's own agent types (its project's `.claude/agents`, and the built-ins).
    agents: crate::workflows::Resolver,
    /// For the health answer.
    started: std::time::Instant,
    served: std::sync::atomic::AtomicU64,
    failed: std::sync::atomic::AtomicU64,
}

impl Shared {
    fn health(&self) -> super::WorkerHealth {
        use std::sync::atomic::Ordering::Relaxed;
        super::WorkerHealth {
            name: self.opts.name.clone(),
            backend: self.opts.backend.name().to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            concurrency: self.opts.concurrency,
            in_flight: self
                .cancels
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .len(),
            served: self.served.load(Relaxed),
            failed: self.failed.load(Relaxed),
            uptime_s: self.started.elapsed().as_secs(),
        }
    }
}

/// Serves until SIGTERM / SIGINT: connect, the consumer of this worker's backend, health and
/// cancel listeners, then jobs pulled while slots are free, then a drain with a grace period.
pub(crate) async fn serve(opts: WorkerOptions) -> Result<()> {
    let client = super::connect(
        &opts.url,
        &opts.auth,
        &format!("wfhost worker {}", opts.name),
    )
    .await?;
    let plumbing = super::plumbing(&client, Some(opts.lease)).await?;
    let leases = plumbing
        .leases
        .clone()
        .ok_or_else(|| anyhow::anyhow!("the leases bucket is missing"))?;
    let consumer = consumer(&plumbing, opts.backend.name(), opts.lease).await?;
    let results_key = super::results_key(&opts.auth)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let shared = Arc::new(Shared {
        opts,
        plumbing,
        leases,
        client: client.clone(),
        cancels: Mutex::new(HashMap::new()),
        shutdown: stop_rx,
        results_key,
        agents: crate::workflows::Resolver::discover(&std::env::current_dir()?),
        started: std::time::Instant::now(),
        served: std::sync::atomic::AtomicU64::new(0),
        failed: std::sync::atomic::AtomicU64::new(0),
    });
    answer_health(&shared).await?;
    relay_cancels(&shared).await?;
    let tasks = take_jobs(&shared, &consumer).await?;
    drain(&shared, tasks, &stop_tx).await;
    let _ = client.flush().await;
    Ok(())
}

/// The consumer of a backend's jobs: this worker sees only jobs for the backend it runs.
async fn consumer(
    plumbing: &super::Plumbing,
    spec: &str,
    lease: Duration,
) -> Result<async_nats::jetstream::consumer::Consumer<pull::Config>> {
    let consumer_name = super::consumer_name(spec);
    plumbing
        .stream
        .get_or_create_consumer(
            &consumer_name,
            pull::Config {
                durable_name: Some(consumer_name.clone()),
                filter_subject: format!("{JOBS}.{}.>", super::backend_token(spec)),
                ack_policy: async_nats::jetstream::consumer::AckPolicy::Explicit,
                ack_wait: lease,
                // Why 20: a job refused while another worker holds its lease comes back after a
                // lease's time, so 20 deliveries outlast any lease; a poison job ends there
                // (and the run host's stall timeout asks it again).
                max_deliver: 20,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| {
            crate::ExitError::usage(format!(
                "cannot create the workers' consumer `{consumer_name}`: {e}"
            ))
            .hint(format!(
                "a work queue made by an older wfhost has one consumer for every backend: remove it (`nats consumer rm {STREAM} {CONSUMER}`) once no old worker uses it"
            ))
            .into()
        })
}

/// Health: `wfhost workers` asks every worker, a run host whose jobs nobody takes asks the
/// workers of its backend.
async fn answer_health(shared: &Arc<Shared>) -> Result<()> {
    let token = super::backend_token(shared.opts.backend.name());
    let mut all = shared.client.subscribe(super::HEALTH.to_string()).await?;
    let mut mine = shared
        .client
        .subscribe(format!("{}.{token}", super::HEALTH))
        .await?;
    let shared = shared.clone();
    tokio::spawn(async move {
        loop {
            let m = tokio::select! {
                Some(m) = all.next() => m,
                Some(m) = mine.next() => m,
                else => break,
            };
            if let (Some(reply), Ok(body)) = (m.reply, serde_json::to_vec(&shared.health())) {
                let _ = shared.client.publish(reply, body.into()).await;
            }
        }
    });
    Ok(())
}

/// Cancels from run hosts: a job's cancel switch is thrown only by a message carrying that
/// job's secret (anyone else on the bus is ignored, and said so).
async fn relay_cancels(shared: &Arc<Shared>) -> Result<()> {
    let mut cancels = shared.client.subscribe(format!("{CANCEL}.*")).await?;
    let shared = shared.clone();
    tokio::spawn(async move {
        while let Some(m) = cancels.next().await {
            let id = m
                .subject
                .as_str()
                .rsplit('.')
                .next()
                .unwrap_or_default()
                .to_string();
            let cancels = shared
                .cancels
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let Some((tx, expected)) = cancels.get(&id) else {
                continue;
            };
            if super::cancel_is_genuine(expected.as_deref(), &m.payload) {
                let _ = tx.send(true);
            } else {
                eprintln!(
                    "wfhost worker {}: ignored a cancel of job {} without its secret (not from its run host)",
                    shared.opts.name,
                    short(&id)
                );
            }
        }
    });
    Ok(())
}

/// Pulls jobs while a slot is free, each handled in its own task, until SIGTERM / SIGINT; the
/// tasks still in flight then.
async fn take_jobs(
    shared: &Arc<Shared>,
    consumer: &async_nats::jetstream::consumer::Consumer<pull::Config>,
) -> Result<tokio::task::JoinSet<()>> {
    let slots = Arc::new(tokio::sync::Semaphore::new(shared.opts.concurrency.max(1)));
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(shared.opts.concurrency.max(1))
        .heartbeat(Duration::from_secs(5))
        .expires(Duration::from_secs(10))
        .messages()
        .await?;
    eprintln!(
        "wfhost worker {}: serving `{}` agents from {} ({} at a time)",
        shared.opts.name,
        shared.opts.backend.name(),
        shared.opts.url,
        shared.opts.concurrency
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p?,
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        };
        let msg = tokio::select! {
            m = messages.next() => m,
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        };
        let msg = match msg {
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                eprintln!("wfhost worker: pulling jobs: {e} (retrying)");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            None => break,
        };
        let shared = shared.clone();
        tasks.spawn(async move {
            handle(&shared, msg).await;
            drop(permit);
        });
    }
    // Shutting down: take nothing more.
    drop(messages);
    Ok(tasks)
}

/// Calls in flight get the grace period; then their agents are cancelled (and their jobs
/// handed back, for another worker to take).
async fn drain(
    shared: &Arc<Shared>,
    mut tasks: tokio::task::JoinSet<()>,
    stop_tx: &watch::Sender<bool>,
) {
    eprintln!(
        "wfhost worker {}: stopping; {} calls in flight get {} to finish",
        shared.opts.name,
        tasks.len(),
        humantime::format_duration(shared.opts.grace)
    );
    let grace = tokio::time::sleep(shared.opts.grace);
    tokio::pin!(grace);
    loop {
        tokio::select! {
            next = tasks.join_next() => if next.is_none() { break },
            () = &mut grace => {
                let _ = stop_tx.send(true);
                while tasks.join_next().await.is_some() {}
                break;
            }
        }
    }
}

/// One delivery of a job: taken (or acked, handed back), its agent defined, called under a
/// heartbeat, logged, and its result stored.
async fn handle(shared: &Arc<Shared>, msg: async_nats::jetstream::Message) {
    let Some((job, revision)) = take(shared, &msg).await else {
        return;
    };
    let began = std::time::Instant::now();
    let (cancel_tx, cancel_rx) = watch::channel(false);
    shared
        .cancels
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(job.id.clone(), (cancel_tx, job.cancel.clone()));
    let ended = match definition(shared, &job) {
        Ok(definition) => call(shared, &job, &msg, revision, definition, cancel_rx).await,
        Err(refusal) => {
            eprintln!(
                "wfhost worker {}: job {} refused: {refusal}",
                shared.opts.name,
                short(&job.id)
            );
            Ok(Err(crate::backend::AgentError::permanent(refusal)))
        }
    };
    shared
        .cancels
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .remove(&job.id);
    log_job(shared, &job, &ended, began);
    finish(shared, &job, &msg, ended).await;
}

/// Takes a delivery, or sees it off: a malformed job is dropped, one answered already is
/// acked without a call, one for another backend or leased by another worker is handed back.
/// The job and its lease's revision when this worker is to make it.
async fn take(shared: &Arc<Shared>, msg: &async_nats::jetstream::Message) -> Option<(Job, u64)> {
    let p = &shared.plumbing;
    let job: Job = match serde_json::from_slice(&msg.payload) {
        Ok(j) => j,
        Err(e) => {
            eprintln!("wfhost worker: dropping a malformed job ({e})");
            let _ = msg.ack_with(AckKind::Term).await;
            return None;
        }
    };
    // Answered already (a redelivery, a duplicate): ack without a call. A stored failure is
    // not an answer: the job is made again.
    if let Ok(Some(bytes)) = p.results.get(&job.id).await
        && super::is_answer(&bytes, &job.id, shared.results_key.as_ref())
    {
        let _ = msg.ack().await;
        return None;
    }
    // Jobs reach only the workers of their backend (its subject); one that names another all
    // the same (published by hand, or by an older wfhost) is handed back for the right worker,
    // never answered with an error: a refusal of ours is not the agent's result.
    if super::backend_token(&job.backend) != super::backend_token(shared.opts.backend.name()) {
        eprintln!(
            "wfhost worker {}: job {} asks for the `{}` backend, this worker serves `{}`: handed back",
            shared.opts.name,
            short(&job.id),
            job.backend,
            shared.opts.backend.name()
        );
        let _ = msg.ack_with(AckKind::Nak(Some(shared.opts.lease))).await;
        return None;
    }
    // Claim it. Held by another worker: hand it back; it returns after a while and is acked
    // then if that worker stored the result, or claimed if its lease ran out.
    let Ok(revision) = shared
        .leases
        .create(&job.id, shared.opts.name.clone().into())
        .await
    else {
        let _ = msg.ack_with(AckKind::Nak(Some(shared.opts.lease))).await;
        return None;
    };
    // Taken: the run host's first sign that a worker serves its backend.
    let _ = shared
        .client
        .publish(format!("{PROGRESS}.{}", job.id), "".into())
        .await;
    Some((job, revision))
}

/// What a call came to: the backend's answer or error, or why it was abandoned.
type Ended = Result<Result<crate::backend::AgentReply, crate::backend::AgentError>, Abandoned>;

/// Calls the backend while a heartbeat every third of a lease keeps the delivery and the lease
/// alive and passes the call's signs of life on to the run host's stall timeout.
async fn call(
    shared: &Arc<Shared>,
    job: &Job,
    msg: &async_nats::jetstream::Message,
    mut revision: u64,
    definition: Option<Arc<crate::workflows::AgentDef>>,
    mut cancel_rx: watch::Receiver<bool>,
) -> Ended {
    let progress = crate::backend::Progress::new();
    // A tool-using agent continues from the call's last finished turn, a `claude` agent its
    // session (another worker's, before it died; the run host's journal, on a resume), and
    // every turn it finishes, every session it begins, is stored for the next taker and for
    // the run host's journal.
    let turns_id = super::turns_id(&job.run_id, job.call.as_ref());
    let previous = previous_turns(shared, &turns_id, job).await;
    let (relay_tx, relay_rx) = tokio::sync::mpsc::unbounded_channel();
    let relay = tokio::spawn(store_turns(shared.clone(), turns_id, relay_rx));
    let context = crate::backend::CallContext {
        definition,
        transcript: Some(crate::tools::Transcript::relayed(previous, relay_tx)),
        ..Default::default()
    };
    let mut request = job.request.clone();
    request.call = job.call.clone();
    let backend = shared.opts.backend.clone();
    let feedback = job.feedback.clone();
    let call = crate::backend::PROGRESS.scope(
        progress.clone(),
        crate::backend::CALL.scope(context, async move {
            // An isolated agent works in a worktree of the worker's own directory.
            if request.isolation.as_deref() != Some("worktree")
                || backend.place() != crate::backend::worktree::Place::Here
            {
                return backend.run(&request, feedback.as_deref()).await;
            }
            let cwd = std::env::current_dir().map_err(|e| {
                crate::backend::AgentError::permanent(format!("cannot create agent worktree: {e}"))
            })?;
            let worktree = crate::backend::worktree::Worktree::make(&cwd).await?;
            let mut reply = backend
                .run(&worktree.request(&request), feedback.as_deref())
                .await;
            if let (Some(kept), Ok(r)) = (worktree.finish().await, &mut reply) {
                r.note = Some(kept);
            }
            reply
        }),
    );
    let mut call = Box::pin(call);
    let mut heartbeat = tokio::time::interval(shared.opts.lease / 3);
    heartbeat.tick().await;
    let mut seen = progress.last();
    let mut shutdown = shared.shutdown.clone();
    let ended = loop {
        tokio::select! {
            r = &mut call => break Ok(r),
            _ = cancel_rx.changed() => break Err(Abandoned::Cancelled),
            _ = shutdown.changed() => break Err(Abandoned::ShuttingDown),
            _ = heartbeat.tick() => {
                let _ = msg.ack_with(AckKind::Progress).await;
                match shared.leases.update(&job.id, shared.opts.name.clone().into(), revision).await {
                    Ok(r) => revision = r,
                    Err(_) => break Err(Abandoned::LeaseLost),
                }
                // Signs of life of the call itself reach the run host's stall timeout.
                let last = progress.last();
                if last != seen {
                    seen = last;
                    let _ = shared.client.publish(format!("{PROGRESS}.{}", job.id), "".into()).await;
                }
            }
        }
    };
    // Every turn stored before the result is: whoever reads the result finds them all. Why 5 s:
    // a put takes milliseconds; a NATS server that is away must not hold the worker's slot.
    drop(call);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), relay).await;
    ended
}

/// The turns and session to continue from: the bucket's (signed as this worker's results are,
/// for this call) when it holds at least the turns the job brought, else the job's.
async fn previous_turns(shared: &Shared, turns_id: &str, job: &Job) -> crate::tools::Relayed {
    let stored = match shared.plumbing.turns.get(turns_id).await {
        Ok(Some(bytes)) => {
            super::JobTurns::read(&bytes, turns_id, shared.results_key.as_ref()).ok()
        }
        _ => None,
    };
    match stored {
        Some(s) if s.turns.len() >= job.turns.len() => crate::tools::Relayed {
            turns: s.turns,
            session: s.session,
        },
        _ => crate::tools::Relayed {
            turns: job.turns.clone(),
            session: job.session.clone(),
        },
    }
}

/// Stores a call's transcript each time it changes (the latest only, when changes come faster
/// than the server takes them), until the call ends.
async fn store_turns(
    shared: Arc<Shared>,
    turns_id: String,
    mut changes: tokio::sync::mpsc::UnboundedReceiver<crate::tools::Relayed>,
) {
    while let Some(mut latest) = changes.recv().await {
        while let Ok(newer) = changes.try_recv() {
            latest = newer;
        }
        let stored = super::JobTurns::new(
            shared.results_key.as_ref(),
            &turns_id,
            &shared.opts.name,
            latest.turns,
            latest.session,
        );
        let Ok(bytes) = serde_json::to_vec(&stored) else {
            continue;
        };
        if let Err(e) = shared.plumbing.turns.put(&turns_id, bytes.into()).await {
            eprintln!(
                "wfhost worker {}: cannot store the turns of call {turns_id}: {e} (a resume asks the model for them again)",
                shared.opts.name
            );
        }
    }
}

/// One line per job (when it began, which run and agent, how long, how it ended), and the
/// worker's counts.
fn log_job(shared: &Shared, job: &Job, ended: &Ended, began: std::time::Instant) {
    let outcome = match ended {
        Ok(Ok(_)) => "ok".to_string(),
        Ok(Err(e)) => format!("failed: {}", e.message.lines().next().unwrap_or_default()),
        Err(Abandoned::Cancelled) => "cancelled by the run host".into(),
        Err(Abandoned::LeaseLost) => "abandoned: lease lost".into(),
        Err(Abandoned::ShuttingDown) => "handed back: shutting down".into(),
    };
    {
        use std::sync::atomic::Ordering::Relaxed;
        match ended {
            Ok(Ok(_)) => shared.served.fetch_add(1, Relaxed),
            _ => shared.failed.fetch_add(1, Relaxed),
        };
    }
    eprintln!(
        "wfhost worker {}: {} job {} run {} `{}` {} in {:.1}s",
        shared.opts.name,
        humantime::format_rfc3339_seconds(std::time::SystemTime::now() - began.elapsed()),
        short(&job.id),
        job.run_id,
        crate::sanitize::line(&job.request.label),
        outcome,
        began.elapsed().as_secs_f64()
    );
}

/// Stores the answer (or error) and acks; an abandoned call stores nothing: cancelled, it
/// leaves the queue; handed back, another worker takes it; its lease lost, someone else may be
/// making it now.
async fn finish(
    shared: &Arc<Shared>,
    job: &Job,
    msg: &async_nats::jetstream::Message,
    ended: Ended,
) {
    match ended {
        Ok(outcome) => {
            let result = JobResult {
                job: None,
                signature: None,
                worker: shared.opts.name.clone(),
                outcome: match outcome {
                    Ok(r) => Ok(WireReply {
                        text: r.text,
                        structured: r.structured,
                        usage: r.usage,
                        cost_usd: r.cost_usd,
                        note: r.note,
                    }),
                    Err(e) => Err(WireError {
                        message: e.message,
                        transient: e.transient,
                        usage_limit: e.usage_limit,
                        stops_run: e.stops_run,
                        resets_in_ms: e
                            .resets_in
                            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                    }),
                },
            };
            store_and_ack(shared, job, msg, result).await;
        }
        Err(Abandoned::Cancelled) => {
            let _ = msg.ack_with(AckKind::Term).await;
        }
        Err(Abandoned::LeaseLost) => {
            eprintln!(
                "wfhost worker: lost the lease of job {}; abandoned its call",
                job.id
            );
            return;
        }
        Err(Abandoned::ShuttingDown) => {
            let _ = msg.ack_with(AckKind::Nak(None)).await;
        }
    }
    let _ = shared.leases.delete(&job.id).await;
}

/// The definition a job's agent type has here: the worker's own (whoever may publish a job
/// must not choose the tools, model and prompt a worker's agent runs with), else — only with
/// `--trust-job-agents` — the one the run host sent.
fn definition(
    shared: &Shared,
    job: &Job,
) -> Result<Option<Arc<crate::workflows::AgentDef>>, String> {
    let Some(agent_type) = job.request.agent_type.as_deref() else {
        return Ok(None);
    };
    match shared.agents.agent_def(agent_type) {
        Ok(own) => Ok(Some(Arc::new(own.clone()))),
        Err(_) if shared.opts.trust_job_agents => Ok(job.definition.clone().map(Arc::new)),
        Err(_) => Err(format!(
            "worker `{}` does not define the agent type `{}` (its project's .claude/agents): define it there, or start the worker with `--trust-job-agents` to take the run host's definition",
            shared.opts.name,
            crate::sanitize::line(agent_type)
        )),
    }
}

/// A job id as the log shows it.
fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// The result first, then the ack: a crash between the two leaves a redelivery that finds the
/// result and acks without a call.
async fn store_and_ack(
    shared: &Arc<Shared>,
    job: &Job,
    msg: &async_nats::jetstream::Message,
    mut result: JobResult,
) {
    // Signed (when this worker has the shared results key) and tied to its job.
    result.signature = shared
        .results_key
        .as_ref()
        .map(|k| super::sign(k, &job.id, &result.worker, &result.outcome));
    result.job = Some(job.id.clone());
    let Ok(mut bytes) = serde_json::to_vec(&result) else {
        return;
    };
    // An answer the server cannot carry is stored as a failure that says so — once, now: made
    // again, it would be just as large (a 2 MiB answer was paid for about 20 times).
    let max = shared.client.server_info().max_payload;
    if max > 0 && bytes.len() > max {
        let outcome = Err(WireError {
            message: super::over_max_payload("the agent's answer", bytes.len(), max),
            transient: false,
            usage_limit: false,
            resets_in_ms: None,
            stops_run: false,
        });
        let too_large = JobResult {
            worker: shared.opts.name.clone(),
            signature: shared
                .results_key
                .as_ref()
                .map(|k| super::sign(k, &job.id, &shared.opts.name, &outcome)),
            job: Some(job.id.clone()),
            outcome,
        };
        eprintln!(
            "wfhost worker {}: job {}: the answer is larger than the server's max_payload; stored as a failure",
            shared.opts.name,
            short(&job.id)
        );
        let Ok(small) = serde_json::to_vec(&too_large) else {
            return;
        };
        bytes = small;
    }
    // The server may be restarting: keep the finished work rather than make the call again.
    let bytes = hyper::body::Bytes::from(bytes);
    let mut last = String::new();
    for attempt in 1..=12 {
        match shared.plumbing.results.put(&job.id, bytes.clone()).await {
            Ok(_) => {
                let _ = msg.double_ack().await;
                return;
            }
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(crate::backend::transport::backoff(attempt)).await;
    }
    // Not stored: hand it back so that it is made (or found) again.
    eprintln!(
        "wfhost worker: storing the result of job {}: {last}",
        job.id
    );
    let _ = msg
        .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
        .await;
}
