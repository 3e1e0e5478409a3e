//! Where agent calls run.
//!
//! - `local` (the default): the run's own pool calls its backend in this process.
//! - `nats`: each call becomes a job on a NATS JetStream work queue, served by `wfhost worker`
//!   processes on any number of machines (executor/worker.rs); the run host keeps the script in
//!   its sandbox, its pool (the concurrency cap), its journal, events, ceilings and controls —
//!   the executor only changes who makes the call (executor/nats.rs).
//!
//! Exactly-once results on at-least-once delivery: a job's id is the run id, the agent's journal
//! key and its occurrence (and the schema feedback of a re-ask), hashed. It is the message's
//! `Nats-Msg-Id` (JetStream drops a duplicate publish) and the key of its result in the
//! `wfhost-results` bucket, the source of truth: a worker looks there first, claims the job with
//! an atomic `create` in `wfhost-leases` (a lease its heartbeat renews), stores the result before
//! it acks, and acks a redelivered job whose result exists without a call. docs/distributed.md.

pub(crate) mod nats;
pub(crate) mod worker;

/// Who makes the run's agent calls (chosen as `backend::select` chooses the backend): the
/// backend itself, here (`local`, the default), or the workers of a NATS JetStream work queue
/// (`--executor nats://…`, `[executor] url`), which make them on the backend the run names — so
/// the run host needs no API key.
pub(crate) async fn select(
    executor: Option<&str>,
    backend: Option<&str>,
    nats: &NatsArgs,
    config: &crate::config::Config,
    run_id: &str,
) -> anyhow::Result<std::sync::Arc<dyn crate::backend::Backend>> {
    use crate::ExitError;
    let url = executor
        .map(str::to_owned)
        .or_else(|| config.executor.url.clone())
        .filter(|u| u != "local");
    let Some(url) = url else {
        return crate::backend::select(backend, config);
    };
    if !(url.starts_with("nats://") || url.starts_with("tls://")) {
        anyhow::bail!(
            ExitError::usage(format!("unknown executor `{url}`"))
                .hint("use `local` or a NATS server, `nats://HOST:PORT` (docs/distributed.md)")
        );
    }
    let spec = backend
        .map(str::to_owned)
        .or_else(|| config.backend.clone())
        .ok_or_else(|| {
            ExitError::usage("with `--executor nats://…`, the run must name the backend its workers use")
                .hint("add `--backend claude` (or messages, command, …), or `backend = \"…\"` in wfhost.toml")
        })?;
    Ok(std::sync::Arc::new(
        nats::Nats::connect(&url, nats, run_id, &spec, config.model()).await?,
    ))
}

use crate::agent::{AgentRequest, Usage};
use crate::workflows::AgentDef;
use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// The work-queue stream and its subjects (`wfhost.jobs.<backend>.<run id>`).
pub(crate) const STREAM: &str = "WFHOST_JOBS";
pub(crate) const JOBS: &str = "wfhost.jobs";
/// The durable consumer the workers of one backend pull from (`wfhost-workers-<backend>`):
/// a job goes only to a worker that serves its backend, so a fleet can mix backends.
pub(crate) const CONSUMER: &str = "wfhost-workers";
/// Core-NATS request subject every worker answers with its `WorkerHealth`
/// (`wfhost.health.<backend>`: the workers of one backend).
pub(crate) const HEALTH: &str = "wfhost.health";
/// Results by job id: the source of truth. Why 7 days: long enough to resume a run after a
/// weekend; a result older than that is asked again.
pub(crate) const RESULTS: &str = "wfhost-results";
pub(crate) const RESULTS_TTL: Duration = Duration::from_secs(7 * 86_400);
/// Leases by job id: which worker is making the call.
pub(crate) const LEASES: &str = "wfhost-leases";
/// A tool-using agent's finished turns, stored by the worker making the call under the call's
/// id (`turns_id`: the job's, without a re-ask's feedback), so that whoever takes the call next
/// — another worker after this one died, a resumed run, a schema re-ask — continues from its
/// last finished turn, and the run host journals them as they come (tools::transcript).
pub(crate) const TURNS: &str = "wfhost-turns";
/// Core-NATS subjects: a call's cancel (`wfhost.cancel.<job>`) and its signs of life.
pub(crate) const CANCEL: &str = "wfhost.cancel";
pub(crate) const PROGRESS: &str = "wfhost.progress";

/// A backend's name as one subject token: `replay:DIR` is `replay`, and anything that
/// could split or widen a subject (`.`, `*`, `>`, white space) becomes `_`.
pub(crate) fn backend_token(spec: &str) -> String {
    let name = spec.split(':').next().unwrap_or_default();
    let token: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if token.is_empty() { "_".into() } else { token }
}

/// Where the jobs of a run on a backend are published.
pub(crate) fn jobs_subject(spec: &str, run_id: &str) -> String {
    format!("{JOBS}.{}.{run_id}", backend_token(spec))
}

/// The durable consumer of a backend's workers.
pub(crate) fn consumer_name(spec: &str) -> String {
    format!("{CONSUMER}-{}", backend_token(spec))
}

/// What a worker answers on `wfhost.health` (`wfhost workers` prints it; a run host asks it
/// when nobody takes its jobs).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct WorkerHealth {
    pub name: String,
    pub backend: String,
    pub version: String,
    pub concurrency: usize,
    pub in_flight: usize,
    pub served: u64,
    pub failed: u64,
    pub uptime_s: u64,
}

/// Asks the workers (of one backend, or all) how they are; every answer that comes within
/// `wait`.
pub(crate) async fn ask_workers(
    client: &async_nats::Client,
    backend: Option<&str>,
    wait: Duration,
) -> Result<Vec<WorkerHealth>> {
    use futures_util::StreamExt as _;
    let subject = match backend {
        Some(b) => format!("{HEALTH}.{}", backend_token(b)),
        None => HEALTH.to_string(),
    };
    let inbox = client.new_inbox();
    let mut answers = client.subscribe(inbox.clone()).await?;
    client
        .publish_with_reply(subject, inbox, bytes::Bytes::new())
        .await?;
    client.flush().await?;
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    while let Ok(Some(m)) = tokio::time::timeout_at(deadline, answers.next()).await {
        if let Ok(h) = serde_json::from_slice::<WorkerHealth>(&m.payload) {
            out.push(h);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// How to reach and authenticate to the NATS deployment (the run host and workers alike).
#[derive(clap::Args, Clone, Debug, Default)]
pub(crate) struct NatsArgs {
    /// NATS user name (with `--nats-password`, or $WFHOST_NATS_PASSWORD).
    #[arg(long, value_name = "USER")]
    pub nats_user: Option<String>,
    /// NATS password [env: WFHOST_NATS_PASSWORD].
    #[arg(long, value_name = "PASSWORD", hide = true)]
    pub nats_password: Option<String>,
    /// A NATS credentials file (JWT + nkey seed), as `nsc` writes them.
    #[arg(long, value_name = "FILE")]
    pub nats_creds: Option<PathBuf>,
    /// A file holding an nkey seed (`SU…`).
    #[arg(long, value_name = "FILE")]
    pub nats_nkey: Option<PathBuf>,
    /// Trust this CA for the server's TLS certificate (and require TLS).
    #[arg(long, value_name = "FILE")]
    pub nats_ca: Option<PathBuf>,
    /// Require TLS (`tls://` URLs require it too).
    #[arg(long)]
    pub nats_tls: bool,
    /// A secret shared by the run host and its workers (any text, read from FILE; also
    /// $WFHOST_RESULTS_KEY): workers sign every result with it, and the run host accepts only
    /// signed results. Without it, whoever can write the results bucket can answer for an agent.
    #[arg(long, value_name = "FILE")]
    pub results_key_file: Option<PathBuf>,
}

/// The key results are signed with (`--results-key-file`, $WFHOST_RESULTS_KEY), derived from
/// the shared secret; `None` when neither is given.
pub(crate) fn results_key(auth: &NatsArgs) -> Result<Option<[u8; 32]>> {
    let secret = match &auth.results_key_file {
        Some(path) => std::fs::read_to_string(path).map_err(|e| {
            crate::ExitError::usage(format!(
                "cannot read the results key `{}`: {e}",
                path.display()
            ))
        })?,
        None => match std::env::var("WFHOST_RESULTS_KEY") {
            Ok(k) if !k.trim().is_empty() => k,
            _ => return Ok(None),
        },
    };
    let secret = secret.trim();
    if secret.len() < 16 {
        return Err(crate::ExitError::usage(
            "the results key is shorter than 16 characters: too easy to guess",
        )
        .hint("make one with `head -c 32 /dev/urandom | base64 > results.key` and give every worker the same file")
        .into());
    }
    Ok(Some(blake3::derive_key(
        "wfhost 2026 results key",
        secret.as_bytes(),
    )))
}

/// The signature of a result: the job it answers, the worker, and the outcome, under the key.
pub(crate) fn sign(
    key: &[u8; 32],
    job: &str,
    worker: &str,
    outcome: &Result<WireReply, WireError>,
) -> String {
    let body = serde_json::to_vec(&(job, worker, outcome)).unwrap_or_default();
    blake3::keyed_hash(key, &body).to_hex().to_string()
}

/// Why a message cannot travel: `what` ("this agent's job", "the agent's answer") is `len`
/// bytes, and the server takes at most `max` (its `max_payload`).
pub(crate) fn over_max_payload(what: &str, len: usize, max: usize) -> String {
    format!(
        "{what} is {} and the NATS server takes messages of at most {} (its `max_payload`): raise `max_payload` in nats-server's configuration (up to 64MB), or run this script without `--executor`",
        bytesize::ByteSize(len as u64).display().iec(),
        bytesize::ByteSize(max as u64).display().iec()
    )
}

/// The most one agent's answer may say it cost. Why $1,000: far above any single model call
/// today; a larger (or negative, or not finite) number is a broken or forged result, and
/// taken as it is it would switch off `--max-cost`.
pub(crate) const MAX_AGENT_COST_USD: f64 = 1000.0;

/// Checks a stored result before the run host takes it: signed under the shared key (when one
/// is set), for this job, with a cost that can be one. `Err`: why it is refused.
pub(crate) fn check_result(r: &JobResult, job: &str, key: Option<&[u8; 32]>) -> Result<(), String> {
    if let Some(key) = key {
        let want = sign(key, job, &r.worker, &r.outcome);
        match &r.signature {
            Some(sig) if constant_time_eq(sig.as_bytes(), want.as_bytes()) => {}
            Some(_) => return Err("its signature does not match the results key".into()),
            None => return Err(
                "it is not signed, and this run accepts only signed results (--results-key-file)"
                    .into(),
            ),
        }
    }
    if r.job.as_deref().is_some_and(|j| j != job) {
        return Err(format!(
            "it answers another job (`{}`)",
            r.job.as_deref().unwrap_or_default()
        ));
    }
    if let Ok(reply) = &r.outcome
        && let Some(cost) = reply.cost_usd
        && !(cost.is_finite() && (0.0..=MAX_AGENT_COST_USD).contains(&cost))
    {
        return Err(format!(
            "it says the call cost ${cost}, which is not a cost (0 to ${MAX_AGENT_COST_USD})"
        ));
    }
    Ok(())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Connects with the given authentication; `name` identifies the client to the server.
pub(crate) async fn connect(url: &str, auth: &NatsArgs, name: &str) -> Result<async_nats::Client> {
    let mut o = async_nats::ConnectOptions::new()
        .name(name)
        // A restarted server is reconnected to forever; the run's own timeouts bound a call.
        // The first connection is not retried: a wrong URL or credential is said at once.
        .max_reconnects(None);
    if let Some(user) = &auth.nats_user {
        let password = auth
            .nats_password
            .clone()
            .or_else(|| std::env::var("WFHOST_NATS_PASSWORD").ok())
            .unwrap_or_default();
        o = o.user_and_password(user.clone(), password);
    }
    if let Some(creds) = &auth.nats_creds {
        o = o
            .credentials_file(creds)
            .await
            .with_context(|| format!("cannot read the NATS credentials `{}`", creds.display()))?;
    }
    if let Some(seed) = &auth.nats_nkey {
        let seed = std::fs::read_to_string(seed)
            .with_context(|| format!("cannot read the nkey seed `{}`", seed.display()))?;
        o = o.nkey(seed.trim().to_string());
    }
    if let Some(ca) = &auth.nats_ca {
        o = o.add_root_certificates(ca.clone()).require_tls(true);
    }
    if auth.nats_tls || url.starts_with("tls://") {
        o = o.require_tls(true);
    }
    let server = url.trim_start_matches("nats://").to_string();
    tracing::debug!(url, client = name, "connecting to NATS");
    let connect = o.connect(server.clone());
    // Why 10 s: a server that does not answer in that long is not there; a CI job must not hang.
    match tokio::time::timeout(Duration::from_secs(10), connect).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(crate::ExitError::usage(format!(
            "cannot connect to NATS at `{url}`: {e}"
        ))
        .hint("start one with `nats-server -js` (docs/distributed.md), or check the URL, the `--nats-*` credentials and, for TLS, the CA (`--nats-ca`)")
        .into()),
        Err(_) => Err(crate::ExitError::usage(format!(
            "no NATS server answered at `{url}` within 10 s"
        ))
        .hint("start one with `nats-server -js` (docs/distributed.md), or check the URL")
        .into()),
    }
}

/// The JetStream pieces both sides use, created if missing.
pub(crate) struct Plumbing {
    pub js: async_nats::jetstream::Context,
    pub stream: async_nats::jetstream::stream::Stream,
    pub results: async_nats::jetstream::kv::Store,
    /// The turns of tool-using agents' calls (`TURNS`).
    pub turns: async_nats::jetstream::kv::Store,
    /// Workers only: the run host never claims a job.
    pub leases: Option<async_nats::jetstream::kv::Store>,
}

/// Opens (creating when missing) the work-queue stream, the results bucket and, for a worker
/// (`lease`: the leases' time to live — a dead worker's jobs are claimable again that long after
/// its last heartbeat), the leases bucket.
pub(crate) async fn plumbing(
    client: &async_nats::Client,
    lease: Option<Duration>,
) -> Result<Plumbing> {
    use async_nats::jetstream::{self, stream};
    let js = jetstream::new(client.clone());
    let no_js = |e: &dyn std::fmt::Display| {
        anyhow::Error::from(
            crate::ExitError::usage(format!("NATS JetStream is not available: {e}"))
                .hint("start the server with JetStream enabled: `nats-server -js -sd DIR`"),
        )
    };
    let config = stream::Config {
        name: STREAM.into(),
        subjects: vec![format!("{JOBS}.>")],
        retention: stream::RetentionPolicy::WorkQueue,
        storage: stream::StorageType::File,
        // Publish de-duplication by Nats-Msg-Id (the server's default window).
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    };
    let stream = create_stream(&js, config).await.map_err(|e| no_js(&e))?;
    let results = bucket(&js, RESULTS, RESULTS_TTL)
        .await
        .map_err(|e| no_js(&e))?;
    let turns = bucket(&js, TURNS, RESULTS_TTL)
        .await
        .map_err(|e| no_js(&e))?;
    let leases = match lease {
        None => None,
        Some(lease) => Some(bucket(&js, LEASES, lease).await.map_err(|e| no_js(&e))?),
    };
    Ok(Plumbing {
        js,
        stream,
        results,
        turns,
        leases,
    })
}

/// Gets or creates a stream. A worker and the run host starting together both try to create
/// it, and the server (2.9) may refuse the second create ("subjects overlap") while the first
/// is in flight: looking again finds it.
async fn create_stream(
    js: &async_nats::jetstream::Context,
    config: async_nats::jetstream::stream::Config,
) -> Result<async_nats::jetstream::stream::Stream, async_nats::Error> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match js.get_or_create_stream(config.clone()).await {
            Ok(s) => return Ok(s),
            Err(_) if attempt < 5 => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Opens a key-value bucket, creating its stream first when missing. Created by hand, with the
/// KV conventions (`KV_<bucket>`, `$KV.<bucket>.>`, one value per key, roll-ups, direct gets):
/// the client's `create_key_value` asks for the account's info first, which it cannot parse
/// from a 2.9 server (Debian 12's).
async fn bucket(
    js: &async_nats::jetstream::Context,
    name: &str,
    max_age: Duration,
) -> Result<async_nats::jetstream::kv::Store, async_nats::Error> {
    use async_nats::jetstream::stream;
    if let Ok(kv) = js.get_key_value(name).await {
        return Ok(kv);
    }
    create_stream(
        js,
        stream::Config {
            name: format!("KV_{name}"),
            subjects: vec![format!("$KV.{name}.>")],
            max_messages_per_subject: 1,
            max_age,
            storage: stream::StorageType::File,
            discard: stream::DiscardPolicy::New,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            num_replicas: 1,
            ..Default::default()
        },
    )
    .await?;
    Ok(js.get_key_value(name).await?)
}

/// One agent call, as a job message. Carries no credentials: API keys live on the workers.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Job {
    pub id: String,
    pub run_id: String,
    /// The backend the run asked for (`messages`, `claude`, …): a worker with another refuses.
    pub backend: String,
    pub request: AgentRequest,
    /// The journal key and occurrence (`replay` looks answers up by them).
    pub call: Option<(String, u32)>,
    /// The validation errors of the previous answer, on a schema re-ask.
    pub feedback: Option<String>,
    /// `agentType`'s definition, resolved on the run host.
    pub definition: Option<AgentDef>,
    /// blake3 (hex) of the secret a cancel of this job must carry: only the run host that
    /// published the job knows it, so whoever else can publish `wfhost.cancel.<job>` cannot
    /// abandon a call the host waits for (it would wait a stall timeout, and pay twice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel: Option<String>,
    /// The call's turns the run host has journaled (a resume of a tool-using agent): the worker
    /// continues from these, or from the turns bucket when it holds more.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub turns: Vec<crate::tools::Turn>,
    /// The `claude` session of an interrupted call the run host has journaled (a resume): the
    /// worker continues it (`claude --resume`), or the turns bucket's when it holds one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
}

/// Whether a cancel message's `payload` is the secret a job's `cancel` hash names (a job from
/// a run host that sends none takes any cancel, as before).
pub(crate) fn cancel_is_genuine(expected: Option<&str>, payload: &[u8]) -> bool {
    match expected {
        None => true,
        // `blake3::Hash`'s `==` is constant-time.
        Some(hash) => blake3::Hash::from_hex(hash).is_ok_and(|h| h == blake3::hash(payload)),
    }
}

/// What a worker stores under the job id.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct JobResult {
    pub worker: String,
    pub outcome: Result<WireReply, WireError>,
    /// The job it answers (checked by the run host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// `sign` under the shared results key, when the worker has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WireReply {
    pub text: String,
    pub structured: Option<serde_json::Value>,
    pub usage: Usage,
    pub cost_usd: Option<f64>,
    pub note: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WireError {
    pub message: String,
    pub transient: bool,
    pub usage_limit: bool,
    pub resets_in_ms: Option<u64>,
    /// The worker's endpoint cannot be reached (`AgentError::stops_run`).
    #[serde(default)]
    pub stops_run: bool,
}

/// Whether a stored result is an answer. A failure is stored too — the run host waiting for
/// it must learn of it — but it is never served again: a resume, or a redelivered job, asks
/// once more (a passing failure would otherwise be "the answer" for the results' 7 days).
/// (A result that fails `check_result` is no answer either.)
pub(crate) fn is_answer(bytes: &[u8], job: &str, key: Option<&[u8; 32]>) -> bool {
    serde_json::from_slice::<JobResult>(bytes)
        .is_ok_and(|r| r.outcome.is_ok() && check_result(&r, job, key).is_ok())
}

/// What a worker stores under a call's `turns_id`: the call's turns so far.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct JobTurns {
    pub worker: String,
    /// The call they belong to (checked by whoever reads them).
    pub call: String,
    pub turns: Vec<crate::tools::Turn>,
    /// A `claude` call's session while it runs (`None` once the call has ended): whoever takes
    /// the call next continues it, and the run host journals it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// `sign_turns` under the shared results key, when the worker has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

impl JobTurns {
    pub(crate) fn new(
        key: Option<&[u8; 32]>,
        call: &str,
        worker: &str,
        turns: Vec<crate::tools::Turn>,
        session: Option<String>,
    ) -> JobTurns {
        let mut t = JobTurns {
            worker: worker.to_string(),
            call: call.to_string(),
            turns,
            session,
            signature: None,
        };
        t.signature = key.map(|k| t.signature_under(k));
        t
    }

    fn signature_under(&self, key: &[u8; 32]) -> String {
        // The session is signed with the turns (a forged one would continue another
        // conversation); without one the body is as before.
        let body = match &self.session {
            None => serde_json::to_vec(&("turns", &self.call, &self.worker, &self.turns)),
            Some(s) => serde_json::to_vec(&("turns", &self.call, &self.worker, &self.turns, s)),
        }
        .unwrap_or_default();
        blake3::keyed_hash(key, &body).to_hex().to_string()
    }

    /// Stored turns as the run host or a worker may use them: for this call, and signed under
    /// the shared key when there is one. Turns are tool results a model is shown and a record
    /// of what changed the workspace: forged ones would steer the agent or have a write skipped.
    pub(crate) fn read(
        bytes: &[u8],
        call: &str,
        key: Option<&[u8; 32]>,
    ) -> Result<JobTurns, String> {
        let t: JobTurns =
            serde_json::from_slice(bytes).map_err(|e| format!("unreadable turns ({e})"))?;
        if t.call != call {
            return Err(format!("they belong to another call (`{}`)", t.call));
        }
        if let Some(key) = key {
            let want = t.signature_under(key);
            match &t.signature {
                Some(sig) if constant_time_eq(sig.as_bytes(), want.as_bytes()) => {}
                Some(_) => return Err("their signature does not match the results key".into()),
                None => {
                    return Err(
                        "they are not signed, and the results key asks for signed ones".into(),
                    );
                }
            }
        }
        Ok(t)
    }
}

/// The id of a call's turns: its job id without a re-ask's feedback (a schema re-ask continues
/// the same conversation).
pub(crate) fn turns_id(run_id: &str, call: Option<&(String, u32)>) -> String {
    job_id(run_id, call, None)
}

/// The job id: run, journal key, occurrence and re-ask feedback, hashed (a valid KV key and
/// message id).
pub(crate) fn job_id(run_id: &str, call: Option<&(String, u32)>, feedback: Option<&str>) -> String {
    let mut h = blake3::Hasher::new();
    for field in [
        run_id,
        call.map_or("", |c| c.0.as_str()),
        &call.map_or(0, |c| c.1).to_string(),
        feedback.unwrap_or(""),
    ] {
        h.update(&(field.len() as u64).to_le_bytes());
        h.update(field.as_bytes());
    }
    h.finalize().to_hex()[..40].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(cost: f64, signature: Option<String>) -> JobResult {
        JobResult {
            worker: "w".into(),
            outcome: Ok(WireReply {
                text: "t".into(),
                structured: None,
                usage: Usage::default(),
                cost_usd: Some(cost),
                note: None,
            }),
            job: Some("job1".into()),
            signature,
        }
    }

    #[test]
    fn a_result_is_taken_only_signed_for_its_job_and_with_a_cost_that_is_one() {
        let key = [7u8; 32];
        let mut r = result(0.5, None);
        assert!(check_result(&r, "job1", None).is_ok());
        assert!(
            check_result(&r, "job1", Some(&key))
                .unwrap_err()
                .contains("not signed")
        );
        r.signature = Some("00".into());
        assert!(
            check_result(&r, "job1", Some(&key))
                .unwrap_err()
                .contains("does not match")
        );
        r.signature = Some(sign(&key, "job1", "w", &r.outcome));
        assert!(check_result(&r, "job1", Some(&key)).is_ok());
        assert!(
            check_result(&r, "job2", Some(&key)).is_err(),
            "signed for another job"
        );
        for bad in [-1.0, f64::NAN, f64::INFINITY, 1e9] {
            assert!(
                check_result(&result(bad, None), "job1", None).is_err(),
                "{bad}"
            );
        }
        assert!(!is_answer(
            &serde_json::to_vec(&result(-1.0, None)).unwrap(),
            "job1",
            None
        ));
    }
}
