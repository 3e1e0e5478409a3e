//! `--batch`: the `messages` backend's agents through the Message Batches API — half the price
//! (cache reads and writes included), answers within 24 hours and usually within minutes.
//!
//! Agents that become ready together (one guest turn's fan-out reaches the pool within
//! milliseconds) are gathered for `batch_window` and sent as one batch, split at the API's
//! limits. Each request's `custom_id` is derived from the agent's journal key and occurrence.
//! The batch id and its requests are journaled (and synced) before anything waits on it, so a
//! run killed while a batch is pending resumes onto that batch: no request is sent, or paid
//! for, twice. One poller per batch (backoff to once a minute, `retry-after` honoured); when
//! the batch ends its results file is read and each agent gets its answer, journaled by the
//! scheduler like any other — the script, resume, views and trace see no difference.
//!
//! What is sent again, in the next batch (up to `messages.max_attempts` batches per agent):
//! a request that errored with an error that may pass (`overloaded_error`, `api_error`,
//! `rate_limit_error`), one that expired (the API's 24 hours), one canceled by someone else.
//! Any other error fails the agent with the API's message. When the run ends with a batch
//! still pending (`wfhost stop`, a failure), the batch is cancelled; its finished requests are
//! still read by the resume.
//!
//! A tool-using agent's turns are batched one by one (each depends on the last, so each is a
//! request of a later batch): an agent of N turns waits on N batches. Its finished turns are
//! journaled as live ones are, so a resume continues from its last turn.

use super::transport::{Failure, Transport, backoff, classify, transient};
use super::{AgentError, CallContext};
use crate::events::{Event, Events};
use crate::journal::{Journal, Record};
use hyper::body::Bytes;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// What a batched request costs, as a share of the same request live (the API's price).
pub(crate) const DISCOUNT: f64 = 0.5;

/// The pool's size when agents are batched. Why 10,000: a batched agent waits on the API, not
/// on this machine (a parked task of a few hundred bytes), so the pool must hold a whole
/// fan-out for it to go out as one batch; the API takes 100,000 requests per batch, and
/// `--max-agents` bounds a run well below that.
pub(crate) const POOL: usize = 10_000;

/// The API's limits on one batch: requests, and bytes of the request (less a margin for the
/// envelope around the requests' parameters).
const MAX_REQUESTS: usize = 100_000;
const MAX_BYTES: usize = 256_000_000 - 1_000_000;

/// How long agents are gathered before their batch goes. Why 1 s: a guest turn's fan-out
/// reaches the pool within milliseconds, so a second gathers it with a wide margin, and is
/// nothing beside a batch's minutes. `--batch-window`, `messages.batch_window`.
pub(crate) const WINDOW: Duration = Duration::from_secs(1);

/// Polls begin a second after the batch is sent and back off to once a minute: a small batch
/// often ends within seconds, a large one takes minutes to hours.
const FIRST_POLL: Duration = Duration::from_secs(1);
const LONGEST_POLL: Duration = Duration::from_secs(60);

/// Polls that fail in a row (network, 5xx) before the batch's agents fail, transiently: a
/// resume polls the same batch again. Why 20: with the backoff, about twenty minutes without
/// an answer from the API.
const POLL_FAILURES: u32 = 20;

/// The stall timeout of a batched agent is at least this: a poll is its sign of life, and
/// polls come once a minute.
pub(crate) const STALL: Duration = Duration::from_secs(3 * 60);

/// The wall clock of a batched agent is at least this: the API gives a batch 24 hours before
/// its requests expire, and the gathering and the results take a little longer.
pub(crate) const WALL_CLOCK: Duration = Duration::from_secs(24 * 3600 + 30 * 60);

/// What a run's batches need of the run: its journal, and the batch each request was last sent
/// in, as a resume found them there.
pub(crate) struct Ledger {
    journal: Option<Arc<Journal>>,
    sent: HashMap<String, String>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("sent", &self.sent.len())
            .finish_non_exhaustive()
    }
}

impl Ledger {
    pub(crate) fn new(journal: Option<Arc<Journal>>, sent: HashMap<String, String>) -> Arc<Ledger> {
        Arc::new(Ledger { journal, sent })
    }

    /// Journals a batch before anyone waits on it, synced: a crash from here on finds it.
    fn record(&self, id: &str, custom_ids: Vec<String>) -> Result<(), String> {
        let Some(j) = &self.journal else {
            return Ok(());
        };
        j.append(&Record::Batch {
            id: id.to_string(),
            custom_ids,
        })
        .and_then(|()| j.sync())
        .map_err(|e| format!("the journal cannot record batch {id}: {e:#}"))
    }
}

/// A batched request's `custom_id` (`[a-zA-Z0-9_-]`, at most 64 characters, as the API
/// requires): the agent's journal key and occurrence for its first question; for a later turn
/// of a tool-using agent or a schema re-ask, the key and a digest of which question it is.
pub(crate) fn custom_id(key: &str, occurrence: u32, turn: u32, feedback: Option<&str>) -> String {
    if turn <= 1 && feedback.is_none() {
        return format!("{key}-{occurrence}");
    }
    let mut h = blake3::Hasher::new();
    h.update(&occurrence.to_le_bytes());
    h.update(&turn.to_le_bytes());
    h.update(feedback.unwrap_or_default().as_bytes());
    format!("{key}-{}", &h.finalize().to_hex()[..24])
}

/// How one request of a batch ended (its line of the results file).
#[derive(Debug, Clone)]
pub(crate) enum Ended {
    /// The message, as the Messages API would have answered it.
    Succeeded(Value),
    Errored {
        kind: String,
        message: String,
    },
    Canceled,
    Expired,
}

/// A batch as its poller last saw it.
#[derive(Debug, Clone, Default)]
struct State {
    status: String,
    done: u64,
    total: u64,
    /// The results, once the batch has ended and they are read.
    results: Option<Arc<HashMap<String, Ended>>>,
    /// The poller gave up: why, and whether a later try may do better.
    failed: Option<(String, bool)>,
}

struct Batch {
    id: String,
    /// The requests this run sent in it (empty for a batch a resume found in the journal).
    members: HashSet<String>,
    state: watch::Sender<State>,
    poller: Mutex<Option<tokio::task::AbortHandle>>,
}

impl Batch {
    /// `members`: the requests this run sent in it (a batch found by a resume: none known
    /// until its first poll counts them).
    fn new(id: String, members: HashSet<String>) -> Arc<Batch> {
        Arc::new(Batch {
            id,
            state: watch::Sender::new(State {
                status: "in_progress".into(),
                total: members.len() as u64,
                ..State::default()
            }),
            members,
            poller: Mutex::new(None),
        })
    }

    fn ended(&self) -> bool {
        let s = self.state.borrow();
        s.results.is_some() || s.failed.is_some()
    }
}

/// Requests gathered for the next batch, and where their batches will be announced.
struct Gathering {
    requests: Vec<(String, Bytes)>,
    sent: watch::Sender<Option<Result<Vec<Arc<Batch>>, AgentError>>>,
}

/// The `messages` backend's batches: gathering, sending, polling, reading the results.
pub(crate) struct Batcher {
    transport: Transport,
    base_url: String,
    create_uri: http::Uri,
    /// Auth and version; JSON in and out.
    headers: http::HeaderMap,
    window: Duration,
    max_attempts: u32,
    gathering: Mutex<Option<Gathering>>,
    /// Every batch this run waits on (sent, or found by a resume), by id.
    batches: Mutex<HashMap<String, Arc<Batch>>>,
    /// Held while a gathering is sent: `finish` waits for it.
    sending: tokio::sync::Mutex<()>,
    /// The run is over: nothing more is sent.
    closed: AtomicBool,
    /// Batches created, polls, results files read (the report's backend stats).
    pub(crate) created: AtomicU64,
    pub(crate) polls: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Batcher {
    /// `headers`: the Messages API's (auth, version); `base_url` without its trailing `/`.
    pub(crate) fn new(
        base_url: &str,
        headers: &http::HeaderMap,
        window: Duration,
        max_attempts: u32,
    ) -> anyhow::Result<Arc<Batcher>> {
        let create_uri: http::Uri = format!("{base_url}/v1/messages/batches").parse()?;
        let mut headers = headers.clone();
        headers.insert(
            http::header::ACCEPT,
            http::HeaderValue::from_static("application/json"),
        );
        Ok(Arc::new(Batcher {
            transport: Transport::new(&create_uri)?,
            base_url: base_url.to_string(),
            create_uri,
            headers,
            window,
            max_attempts,
            gathering: Mutex::new(None),
            batches: Mutex::new(HashMap::new()),
            sending: tokio::sync::Mutex::new(()),
            closed: AtomicBool::new(false),
            created: AtomicU64::new(0),
            polls: AtomicU64::new(0),
        }))
    }

    /// One agent's request (`params`: the Messages request, not streamed) through batches:
    /// the batch a resume found it in, else the next one gathered; sent again in the next
    /// batch when it errored in a way that may pass, expired or was canceled. The message.
    pub(crate) async fn ask(
        self: &Arc<Self>,
        ctx: &CallContext,
        custom_id: &str,
        params: &Bytes,
    ) -> Result<Value, AgentError> {
        let found = ctx
            .batches
            .as_ref()
            .and_then(|l| l.sent.get(custom_id).cloned());
        let mut why = String::new();
        for attempt in 1..=self.max_attempts {
            let batch = match found.as_deref().filter(|_| attempt == 1) {
                Some(id) => self.adopt(id, ctx),
                None => self.gather(custom_id, params, ctx).await?,
            };
            match self.wait(&batch, custom_id).await? {
                Ended::Succeeded(message) => return Ok(message),
                Ended::Errored { kind, message } if !passes(&kind) => {
                    return Err(AgentError::permanent(format!(
                        "API Error: {kind} {message} (request {custom_id} of batch {})",
                        batch.id
                    )));
                }
                ended => {
                    why = match ended {
                        Ended::Errored { kind, message } => format!("errored: {kind} {message}"),
                        Ended::Expired => "expired (not answered within the API's 24 hours)".into(),
                        _ => "was canceled".into(),
                    };
                    if attempt < self.max_attempts {
                        super::output(&format!(
                            "request {custom_id} {why} in batch {}; sent again in the next batch\n",
                            batch.id
                        ));
                        if let Some(events) = &ctx.events {
                            events.emit(Event::Log {
                                level: crate::events::LogLevel::Warn,
                                text: format!(
                                    "batched agent {}: its request {why} in batch {}; sent again in the next batch",
                                    ctx.agent.map_or_else(String::new, |n| format!("#{n}")),
                                    batch.id
                                ),
                            });
                        }
                    }
                }
            }
        }
        Err(transient(format!(
            "its request {why} in each of {} batches (`messages.max_attempts`)",
            self.max_attempts
        )))
    }

    /// A batch a resume found in the journal: polled (once, however many agents wait on it).
    fn adopt(self: &Arc<Self>, id: &str, ctx: &CallContext) -> Arc<Batch> {
        let mut batches = lock(&self.batches);
        if let Some(b) = batches.get(id) {
            return b.clone();
        }
        let batch = Batch::new(id.to_string(), HashSet::new());
        batches.insert(id.to_string(), batch.clone());
        self.start_polling(&batch, ctx.events.clone());
        batch
    }

    /// Adds a request to the gathering (starting one, and its window, if none is open) and
    /// waits until the batch it went into is sent.
    async fn gather(
        self: &Arc<Self>,
        custom_id: &str,
        params: &Bytes,
        ctx: &CallContext,
    ) -> Result<Arc<Batch>, AgentError> {
        let mut sent = {
            let mut gathering = lock(&self.gathering);
            let g = gathering.get_or_insert_with(|| {
                let me = self.clone();
                let (ledger, events) = (ctx.batches.clone(), ctx.events.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(me.window).await;
                    me.send_gathered(ledger, events).await;
                });
                Gathering {
                    requests: Vec::new(),
                    sent: watch::Sender::new(None),
                }
            });
            g.requests.push((custom_id.to_string(), params.clone()));
            g.sent.subscribe()
        };
        let batches = loop {
            if let Some(r) = sent.borrow_and_update().clone() {
                break r?;
            }
            if sent.changed().await.is_err() {
                return Err(transient("the run ended before its batch was sent".into()));
            }
        };
        batches
            .into_iter()
            .find(|b| b.members.contains(custom_id))
            .ok_or_else(|| AgentError::permanent("internal: a gathered request is in no batch"))
    }

    /// Sends what was gathered, as batches within the API's limits; each is journaled before
    /// it is announced, then polled.
    async fn send_gathered(self: Arc<Self>, ledger: Option<Arc<Ledger>>, events: Option<Events>) {
        let _sending = self.sending.lock().await;
        let Some(g) = lock(&self.gathering).take() else {
            return;
        };
        if self.closed.load(Ordering::Acquire) {
            let _ = g.sent.send(Some(Err(transient(
                "the run ended before its batch was sent".into(),
            ))));
            return;
        }
        let mut sent = Vec::new();
        let mut requests = g.requests.into_iter().peekable();
        let outcome = loop {
            let mut chunk = Vec::new();
            let mut bytes = 0;
            while let Some((_, params)) = requests.peek() {
                if !chunk.is_empty()
                    && (chunk.len() == MAX_REQUESTS || bytes + params.len() + 100 > MAX_BYTES)
                {
                    break;
                }
                bytes += params.len() + 100;
                chunk.extend(requests.next());
            }
            if chunk.is_empty() {
                break Ok(sent);
            }
            match self.create(&chunk).await {
                Ok(id) => {
                    let members: HashSet<String> = chunk.into_iter().map(|(c, _)| c).collect();
                    if let Some(Err(e)) = ledger
                        .as_ref()
                        .map(|l| l.record(&id, members.iter().cloned().collect()))
                    {
                        break Err(AgentError::permanent(e));
                    }
                    let batch = Batch::new(id.clone(), members);
                    lock(&self.batches).insert(id, batch.clone());
                    self.start_polling(&batch, events.clone());
                    sent.push(batch);
                }
                Err(e) => break Err(e),
            }
        };
        let _ = g.sent.send(Some(outcome));
    }

    /// `POST /v1/messages/batches`, with retries: the new batch's id.
    async fn create(&self, requests: &[(String, Bytes)]) -> Result<String, AgentError> {
        let mut body = Vec::with_capacity(requests.iter().map(|(_, p)| p.len() + 100).sum());
        body.extend_from_slice(b"{\"requests\":[");
        for (i, (custom_id, params)) in requests.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(b"{\"custom_id\":");
            let _ = serde_json::to_writer(&mut body, custom_id);
            body.extend_from_slice(b",\"params\":");
            body.extend_from_slice(params);
            body.push(b'}');
        }
        body.extend_from_slice(b"]}");
        let body = Bytes::from(body);
        let mut n = 0;
        loop {
            n += 1;
            match self
                .json(&http::Method::POST, &self.create_uri, &body)
                .await
            {
                Ok(v) => {
                    self.created.fetch_add(1, Ordering::Relaxed);
                    return v["id"].as_str().map(str::to_string).ok_or_else(|| {
                        AgentError::permanent(format!("the batch was created without an id: {v}"))
                    });
                }
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Retry { error, .. }) if n >= self.max_attempts => return Err(error),
                Err(Failure::Retry { after, .. }) => {
                    tokio::time::sleep(after.unwrap_or_else(|| backoff(n))).await;
                }
            }
        }
    }

    /// A request whose answer is one JSON object.
    async fn json(
        &self,
        method: &http::Method,
        uri: &http::Uri,
        body: &Bytes,
    ) -> Result<Value, Failure> {
        let response = self.fetch(method, uri, body).await?;
        let bytes = response.into_body().collect().await;
        serde_json::from_slice(&bytes).map_err(|e| Failure::Retry {
            error: transient(format!("{uri} answered with malformed JSON ({e})")),
            after: None,
        })
    }

    /// A request, its status checked (errors classified as for a Messages call).
    async fn fetch(
        &self,
        method: &http::Method,
        uri: &http::Uri,
        body: &Bytes,
    ) -> Result<http::Response<super::transport::Answer>, Failure> {
        let response = self
            .transport
            .request(method, uri, &self.headers, body)
            .await
            .map_err(|e| {
                super::transport::unsent(
                    &e,
                    &uri.to_string(),
                    "`messages.base_url` (wfhost.toml) or `ANTHROPIC_BASE_URL`",
                )
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let retry_after = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let bytes = response.into_body().collect().await;
        let v: Value = serde_json::from_slice(&bytes).unwrap_or_default();
        let message = v["error"]["message"].as_str().map_or_else(
            || String::from_utf8_lossy(&bytes).into_owned(),
            str::to_string,
        );
        Err(classify(status.as_u16(), &message, retry_after))
    }

    fn start_polling(self: &Arc<Self>, batch: &Arc<Batch>, events: Option<Events>) {
        let task = tokio::spawn(self.clone().poll(batch.clone(), events));
        *lock(&batch.poller) = Some(task.abort_handle());
    }

    /// Polls a batch until it ends, then reads its results.
    async fn poll(self: Arc<Self>, batch: Arc<Batch>, events: Option<Events>) {
        let uri: http::Uri =
            match format!("{}/v1/messages/batches/{}", self.base_url, batch.id).parse() {
                Ok(u) => u,
                Err(e) => {
                    batch.state.send_modify(|s| {
                        s.failed = Some((format!("batch id `{}`: {e}", batch.id), false));
                    });
                    return;
                }
            };
        let announce = |s: &State| {
            if let Some(events) = &events {
                events.emit(Event::Batch {
                    id: batch.id.clone(),
                    status: s.status.clone(),
                    done: s.done,
                    total: s.total,
                });
            }
        };
        announce(&batch.state.borrow());
        let (mut wait, mut failures) = (FIRST_POLL, 0);
        loop {
            tokio::time::sleep(wait).await;
            self.polls.fetch_add(1, Ordering::Relaxed);
            let v = match self.json(&http::Method::GET, &uri, &Bytes::new()).await {
                Ok(v) => v,
                Err(Failure::Retry { error, after }) if failures < POLL_FAILURES => {
                    failures += 1;
                    tracing::debug!(batch = %batch.id, error = %error.message, "poll failed");
                    wait = after.unwrap_or_else(|| backoff(failures).max(wait));
                    continue;
                }
                Err(Failure::Retry { error: e, .. } | Failure::Fatal(e)) => {
                    let transient = e.transient;
                    batch.state.send_modify(|s| {
                        s.failed = Some((format!("batch {}: {}", batch.id, e.message), transient));
                    });
                    return;
                }
            };
            failures = 0;
            let counts = &v["request_counts"];
            let n = |k: &str| counts[k].as_u64().unwrap_or(0);
            let done = n("succeeded") + n("errored") + n("canceled") + n("expired");
            let status = v["processing_status"]
                .as_str()
                .unwrap_or("in_progress")
                .to_string();
            let changed = {
                let s = batch.state.borrow();
                s.done != done || s.status != status
            };
            // Every poll is a sign of life for the agents waiting on it (the stall timeout).
            batch.state.send_modify(|s| {
                s.done = done;
                s.total = done + n("processing");
                s.status.clone_from(&status);
            });
            if changed {
                announce(&batch.state.borrow());
            }
            if status == "ended" {
                let results = match v["results_url"].as_str() {
                    Some(url) => self.results(url).await,
                    None => Err(transient(format!(
                        "batch {} ended without a results_url",
                        batch.id
                    ))),
                };
                batch.state.send_modify(|s| match results {
                    Ok(r) => s.results = Some(Arc::new(r)),
                    Err(e) => s.failed = Some((e.message, e.transient)),
                });
                return;
            }
            wait = (wait * 2).min(LONGEST_POLL);
        }
    }

    /// The results file of an ended batch: one JSON line per request, read as it streams.
    async fn results(&self, url: &str) -> Result<HashMap<String, Ended>, AgentError> {
        let uri: http::Uri = url
            .parse()
            .map_err(|e| AgentError::permanent(format!("results_url `{url}`: {e}")))?;
        let mut n = 0;
        let response = loop {
            n += 1;
            match self.fetch(&http::Method::GET, &uri, &Bytes::new()).await {
                Ok(r) => break r,
                Err(Failure::Retry { after, .. }) if n < self.max_attempts => {
                    tokio::time::sleep(after.unwrap_or_else(|| backoff(n))).await;
                }
                Err(Failure::Retry { error, .. } | Failure::Fatal(error)) => return Err(error),
            }
        };
        let mut body = response.into_body();
        let (mut out, mut pending) = (HashMap::new(), Vec::new());
        let line = |l: &[u8], out: &mut HashMap<String, Ended>| {
            if l.iter().all(u8::is_ascii_whitespace) {
                return;
            }
            if let Ok(v) = serde_json::from_slice::<Value>(l)
                && let Some(id) = v["custom_id"].as_str()
            {
                out.insert(id.to_string(), ended(&v["result"]));
            }
        };
        while let Some(chunk) = body.chunk().await {
            let chunk =
                chunk.map_err(|e| transient(format!("the results of {url} broke off: {e}")))?;
            pending.extend_from_slice(&chunk);
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                line(&pending[..end], &mut out);
                pending.drain(..=end);
            }
        }
        line(&pending, &mut out);
        Ok(out)
    }

    /// Waits until the batch has this request's result (its progress shown on the way).
    async fn wait(&self, batch: &Arc<Batch>, custom_id: &str) -> Result<Ended, AgentError> {
        let mut state = batch.state.subscribe();
        let mut shown = None;
        loop {
            {
                let s = state.borrow_and_update();
                if let Some(results) = &s.results {
                    return results.get(custom_id).cloned().ok_or_else(|| {
                        AgentError::permanent(format!(
                            "batch {} ended without a result for request {custom_id}",
                            batch.id
                        ))
                    });
                }
                if let Some((why, passes)) = &s.failed {
                    return Err(if *passes {
                        transient(why.clone())
                    } else {
                        AgentError::permanent(why.clone())
                    });
                }
                super::progress();
                if shown != Some((s.done, s.total)) {
                    shown = Some((s.done, s.total));
                    super::output(&format!(
                        "in batch {} — {} of {} done\n",
                        batch.id, s.done, s.total
                    ));
                }
            }
            if state.changed().await.is_err() {
                return Err(transient(format!("batch {}: its poller ended", batch.id)));
            }
        }
    }

    /// The run is over: nothing more is sent, and every batch not yet ended is cancelled
    /// (its finished requests stay readable, for a resume).
    pub(crate) async fn finish(&self) {
        self.closed.store(true, Ordering::Release);
        // A gathering being sent is sent (and journaled) first, so it is cancelled too.
        drop(self.sending.lock().await);
        let open: Vec<Arc<Batch>> = lock(&self.batches)
            .values()
            .filter(|b| !b.ended())
            .cloned()
            .collect();
        for batch in open {
            if let Some(poller) = lock(&batch.poller).take() {
                poller.abort();
            }
            let uri = format!("{}/v1/messages/batches/{}/cancel", self.base_url, batch.id);
            let Ok(uri) = uri.parse::<http::Uri>() else {
                continue;
            };
            let empty = Bytes::new();
            let cancel = self.json(&http::Method::POST, &uri, &empty);
            match tokio::time::timeout(Duration::from_secs(10), cancel).await {
                Ok(Ok(_)) => tracing::info!(batch = %batch.id, "batch cancelled"),
                Ok(Err(Failure::Retry { error, .. } | Failure::Fatal(error))) => {
                    tracing::warn!(batch = %batch.id, error = %error.message, "the batch could not be cancelled");
                }
                Err(_) => tracing::warn!(batch = %batch.id, "cancelling the batch took over 10 s"),
            }
        }
    }
}

/// A request's error that may pass when it is sent again.
fn passes(kind: &str) -> bool {
    matches!(kind, "overloaded_error" | "api_error" | "rate_limit_error")
}

/// A results line's `result`.
fn ended(result: &Value) -> Ended {
    match result["type"].as_str() {
        Some("succeeded") => Ended::Succeeded(result["message"].clone()),
        Some("errored") => {
            // `{"type": "error", "error": {"type": …, "message": …}}`
            let e = &result["error"]["error"];
            let e = if e.is_object() { e } else { &result["error"] };
            Ended::Errored {
                kind: e["type"].as_str().unwrap_or("error").to_string(),
                message: e["message"].as_str().unwrap_or_default().to_string(),
            }
        }
        Some("expired") => Ended::Expired,
        _ => Ended::Canceled,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_ids_are_what_the_api_accepts() {
        let key = "0123456789abcdef0123456789abcdef";
        let plain = custom_id(key, 3, 1, None);
        assert_eq!(plain, format!("{key}-3"));
        let again = custom_id(key, 3, 1, Some("the reply is not a JSON object"));
        let turn = custom_id(key, 3, 2, None);
        assert_ne!(again, plain);
        assert_ne!(turn, plain);
        assert_ne!(turn, custom_id(key, 4, 2, None));
        assert_ne!(again, custom_id(key, 3, 1, Some("missing `x`")));
        for id in [
            plain,
            again,
            turn,
            custom_id(key, u32::MAX, u32::MAX, Some("x")),
        ] {
            assert!(id.len() <= 64, "{id}");
            assert!(
                id.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "{id}"
            );
        }
    }

    #[test]
    fn results_lines_are_read_as_the_api_writes_them() {
        let line = |v: Value| ended(&v);
        assert!(matches!(
            line(serde_json::json!({"type": "succeeded", "message": {"content": []}})),
            Ended::Succeeded(_)
        ));
        match line(
            serde_json::json!({"type": "errored", "error": {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}}),
        ) {
            Ended::Errored { kind, message } => {
                assert_eq!(
                    (kind.as_str(), message.as_str()),
                    ("overloaded_error", "Overloaded")
                );
                assert!(passes(&kind));
            }
            other => panic!("{other:?}"),
        }
        assert!(!passes("invalid_request_error"));
        assert!(matches!(
            line(serde_json::json!({"type": "expired"})),
            Ended::Expired
        ));
        assert!(matches!(
            line(serde_json::json!({"type": "canceled"})),
            Ended::Canceled
        ));
    }
}
