//! A fake Anthropic Messages API on 127.0.0.1, over HTTPS (a generated certificate the client
//! is told to trust through SSL_CERT_FILE) or plain HTTP, speaking HTTP/1.1 and HTTP/2.
//!
//! It answers like the mock model (`R(` + 40 characters + `)`, schema filling through the
//! forced `StructuredOutput` tool) and streams SSE like the real API. Tags in a prompt inject
//! faults into its first N attempts: `[429xN]` (with `retry-after: 1`), `[529xN]`, `[500xN]`,
//! `[stallxN]` (never answers), `[midstreamxN]` (an `overloaded_error` event mid-stream),
//! `[malformedxN]` (invalid JSON in the stream); `[400]` and `[spend]` (a spend-limit 429);
//! `[bigxK]` answers K KiB more text
//! fail every attempt.

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Request, Response};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
pub(crate) struct Seen {
    /// Attempt times by prompt.
    pub attempts: HashMap<String, Vec<Instant>>,
    /// Successful answers by prompt (must end up exactly one each).
    pub answered: HashMap<String, u32>,
    /// Output tokens of successful answers.
    pub output_tokens: u64,
    pub input_tokens: u64,
    pub http2: u32,
    pub bodies: Vec<Value>,
    /// TCP connections accepted.
    pub connections: u32,
    /// How long every answer takes to begin (its first token): the prompt being read.
    pub first_token: Duration,
    /// A request rate limit: 429 + `retry-after` beyond it, `anthropic-ratelimit-requests-*`
    /// headers on every answer.
    pub bucket: Option<Bucket>,
    /// Requests refused with a rate-limit 429 (the bucket's).
    pub limited: u32,
    /// Calls to the count-tokens endpoint.
    pub counted: u32,
    /// Keep every request body in `bodies` (the default; a benchmark turns it off, so that the
    /// server's own work does not crowd wfhost's out of the machine's two cores).
    pub forget_bodies: bool,
    /// The prompt cache (entry key → readable yet). See `cache_usage`.
    cache: HashMap<blake3::Hash, bool>,
    /// (cache read, cache write, uncached input) tokens of each answered request whose prompt
    /// has a `cache_control` breakpoint.
    pub cache_usage: Vec<(u64, u64, u64)>,
    /// Scripted tool-using agents: a prompt with `[play:NAME]` is answered turn by turn with
    /// the tool calls of `plays[NAME]` (each turn a list of `{name, input}`), then with
    /// `DONE ` and the JSON of every tool result it was handed (`{content, is_error}`).
    pub plays: HashMap<String, Vec<Vec<Value>>>,
    /// (play, turn index) of every request a play answered, in order.
    pub play_turns: Vec<(String, usize)>,
    /// The tool names each play's requests offered, by play.
    pub play_tools: HashMap<String, Vec<String>>,
    /// (play, turn) whose first request is never answered (it waits two minutes): the agent
    /// is interrupted there.
    pub play_stall: Option<(String, usize)>,
    /// Set by the play whose request is to stall; taken by the handler.
    stalling: bool,
    /// The OpenAI-compatible endpoint refuses `response_format: json_schema` (as some local
    /// servers do), with a 400 naming it.
    pub refuse_json_schema: bool,
    /// The Message Batches endpoints' batches (fake_batches).
    pub batches: super::fake_batches::Batches,
    /// This server's base URL (a batch's `results_url` names it).
    pub url: String,
}

/// A token bucket of requests: `capacity` at once, refilled at `per_second`.
pub(crate) struct Bucket {
    pub capacity: f64,
    pub per_second: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    pub(crate) fn new(capacity: f64, per_second: f64) -> Bucket {
        Bucket {
            capacity,
            per_second,
            tokens: capacity,
            at: Instant::now(),
        }
    }
    /// Takes a request's token: `Ok(remaining)`, or `Err(seconds until one is there)`.
    fn take(&mut self) -> Result<f64, f64> {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * self.per_second)
            .min(self.capacity);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(self.tokens)
        } else {
            Err((1.0 - self.tokens) / self.per_second)
        }
    }
    fn headers(&self, remaining: f64) -> Vec<(&'static str, String)> {
        let full_in =
            Duration::from_secs_f64(((self.capacity - remaining) / self.per_second).max(0.0));
        vec![
            (
                "anthropic-ratelimit-requests-limit",
                format!("{:.0}", self.per_second * 60.0),
            ),
            (
                "anthropic-ratelimit-requests-remaining",
                format!("{:.0}", remaining.floor()),
            ),
            (
                "anthropic-ratelimit-requests-reset",
                humantime::format_rfc3339_seconds(std::time::SystemTime::now() + full_in)
                    .to_string(),
            ),
        ]
    }
}

/// The Messages API's prompt cache, as documented: a `cache_control` breakpoint makes the
/// prefix up to it (for this model) an entry; a request reads the longest readable entry its
/// prompt starts with and writes the rest up to its last breakpoint; an entry is readable only
/// once the request that writes it has begun answering. Counts over the user turn's text (the
/// system prompt is left out, so the other tests' counts do not move): tokens = chars / 4.
/// Returns (read, write, uncached) tokens and the entries this request writes.
fn cache_split(
    cache: &mut HashMap<blake3::Hash, bool>,
    model: &str,
    content: &Value,
) -> Option<((u64, u64, u64), Vec<blake3::Hash>)> {
    let blocks = content.as_array()?;
    if !blocks.iter().any(|b| b.get("cache_control").is_some()) {
        return None;
    }
    let tokens = |chars: usize| (chars as u64).div_ceil(4);
    let mut prefix = blake3::Hasher::new();
    prefix.update(model.as_bytes());
    let mut chars = 0usize;
    let mut breakpoints = Vec::new();
    for b in blocks {
        let text = b["text"].as_str().unwrap_or_default();
        prefix.update(text.as_bytes());
        chars += text.chars().count();
        if b.get("cache_control").is_some() {
            breakpoints.push((prefix.finalize(), chars));
        }
    }
    if breakpoints.is_empty() {
        return None;
    }
    let read = breakpoints
        .iter()
        .rev()
        .find(|(k, _)| cache.get(k) == Some(&true))
        .map_or(0, |(_, c)| *c);
    let last = breakpoints.last().map_or(0, |(_, c)| *c);
    let mut writes = Vec::new();
    for (k, c) in &breakpoints {
        if *c > read && cache.get(k) != Some(&true) {
            cache.entry(*k).or_insert(false);
            writes.push(*k);
        }
    }
    let (r, w) = (tokens(read), tokens(last) - tokens(read));
    Some(((r, w, tokens(chars) - r - w), writes))
}

pub(crate) struct FakeApi {
    pub url: String,
    pub ca_file: Option<PathBuf>,
    pub seen: Arc<Mutex<Seen>>,
    _dir: tempfile::TempDir,
    _runtime: tokio::runtime::Runtime,
}

/// `FAKE_API_DUMP`: a file every request body is appended to (read once).
fn dump_file() -> Option<&'static std::ffi::OsString> {
    static DUMP: std::sync::OnceLock<Option<std::ffi::OsString>> = std::sync::OnceLock::new();
    DUMP.get_or_init(|| std::env::var_os("FAKE_API_DUMP"))
        .as_ref()
}

pub(crate) fn tag_count(prompt: &str, tag: &str) -> Option<u32> {
    let rest = &prompt[prompt.find(&format!("[{tag}x"))? + tag.len() + 2..];
    rest[..rest.find(']')?].parse().ok()
}

fn sse(events: &[(&str, Value)]) -> String {
    events
        .iter()
        .map(|(name, data)| format!("event: {name}\ndata: {data}\n\n"))
        .collect()
}

fn error_response(
    status: u16,
    kind: &str,
    message: &str,
    retry_after: Option<&str>,
) -> Response<Full<Bytes>> {
    let mut r = Response::builder()
        .status(status)
        .header("content-type", "application/json");
    if let Some(ra) = retry_after {
        r = r.header("retry-after", ra);
    }
    r.body(Full::new(Bytes::from(
        json!({"type": "error", "error": {"type": kind, "message": message}}).to_string(),
    )))
    .unwrap()
}

#[expect(
    clippy::too_many_lines,
    reason = "the fake server's routing: one arm per endpoint and scripted fault"
)]
async fn handle(
    req: Request<hyper::body::Incoming>,
    seen: Arc<Mutex<Seen>>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let http2 = req.version() == hyper::Version::HTTP_2;
    let counting = req.uri().path() == "/v1/messages/count_tokens";
    let chat = req.uri().path() == "/v1/chat/completions";
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let bytes = req.into_body().collect().await?.to_bytes();
    if let Some(r) = super::fake_batches::handle(&method, &path, &bytes, &seen) {
        return Ok(r);
    }
    if chat {
        seen.lock().unwrap().http2 += u32::from(http2);
        if seen.lock().unwrap().forget_bodies
            && let Some(r) = super::fake_openai::answer_lean(&bytes)
        {
            return Ok(r);
        }
        let body: Value = serde_json::from_slice(&bytes).unwrap_or_default();
        return Ok(super::fake_openai::handle(body, &seen));
    }
    // A benchmark keeps no bodies: a plain text question is then answered without building a
    // `Value` or remembering the prompt, so that this server's share of the machine's two
    // cores stays small beside the wfhost being measured (`answer_lean`).
    if !counting
        && dump_file().is_none()
        && seen.lock().unwrap().forget_bodies
        && let Some(r) = answer_lean(&bytes, &seen)
    {
        return Ok(r);
    }
    let body: Value = serde_json::from_slice(&bytes).unwrap_or_default();
    if counting {
        // The count-tokens endpoint: characters of the system prompt, the messages and the
        // tools, ÷ 4 (what this server bills as input).
        let text = |v: &Value| content_text(v).chars().count();
        let chars = text(&body["system"])
            + body["messages"]
                .as_array()
                .map_or(0, |m| m.iter().map(|m| text(&m["content"])).sum())
            + body.get("tools").map_or(0, |t| t.to_string().len());
        seen.lock().unwrap().counted += 1;
        return Ok(Response::builder()
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(
                json!({ "input_tokens": (chars as u64).div_ceil(4) }).to_string(),
            )))
            .unwrap());
    }
    // The prompt: the text of the latest user turn, without Claude Code's system reminders.
    let null = Value::Null;
    let last_user = body["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
        .unwrap_or(&null);
    let tool_result = last_user["content"]
        .as_array()
        .is_some_and(|c| c.iter().any(|b| b["type"] == "tool_result"));
    let prompt = match &last_user["content"] {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .filter(|t| !t.trim_start().starts_with("<system-reminder>"))
            .collect::<String>(),
        _ => String::new(),
    };
    let prompt = if tool_result {
        "(tool result)".to_string()
    } else {
        unframe(&prompt)
    };
    let mut limit_headers = Vec::new();
    let attempt = {
        let mut s = seen.lock().unwrap();
        if let Some(bucket) = s.bucket.as_mut() {
            match bucket.take() {
                Ok(remaining) => limit_headers = bucket.headers(remaining),
                Err(wait) => {
                    let headers = bucket.headers(0.0);
                    s.limited += 1;
                    let mut r = error_response(
                        429,
                        "rate_limit_error",
                        "Number of requests has exceeded your per-minute rate limit",
                        Some(&format!("{:.0}", wait.ceil().max(1.0))),
                    );
                    for (k, v) in headers {
                        r.headers_mut().insert(k, v.parse().unwrap());
                    }
                    return Ok(r);
                }
            }
        }
        s.http2 += u32::from(http2);
        if !s.forget_bodies {
            s.bodies.push(body.clone());
        }
        if let Some(dump) = dump_file() {
            use std::io::Write as _;
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dump)
            {
                let _ = writeln!(f, "{body}");
            }
        }
        let a = s.attempts.entry(prompt.clone()).or_default();
        a.push(Instant::now());
        u32::try_from(a.len()).unwrap()
    };
    let failing = |tag: &str| tag_count(&prompt, tag).is_some_and(|n| attempt <= n);
    if failing("429") {
        return Ok(error_response(
            429,
            "rate_limit_error",
            "slow down",
            Some("1"),
        ));
    }
    if failing("529") {
        return Ok(error_response(529, "overloaded_error", "Overloaded", None));
    }
    if failing("500") {
        return Ok(error_response(
            500,
            "api_error",
            "Internal server error",
            None,
        ));
    }
    if prompt.contains("[400]") {
        return Ok(error_response(
            400,
            "invalid_request_error",
            "forced failure",
            None,
        ));
    }
    if prompt.contains("[spend]") || failing("spend") {
        return Ok(error_response(
            429,
            "rate_limit_error",
            "You have reached your spend limit",
            Some("1"), // resets in a second (what `--wait-on-limit` waits for)
        ));
    }
    if failing("stall") {
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
    let head: String = prompt.chars().take(40).collect();
    let mut input_tokens = (prompt.chars().count() as u64).div_ceil(4);
    let (first_token, split) = {
        let mut s = seen.lock().unwrap();
        let model = body["model"].as_str().unwrap_or_default().to_string();
        let split = cache_split(&mut s.cache, &model, &last_user["content"]);
        (s.first_token, split)
    };
    let (mut cache_read, mut cache_write) = (0, 0);
    if let Some(((r, w, rest), _)) = &split {
        (cache_read, cache_write, input_tokens) = (*r, *w, *rest);
    }
    // Reading the prompt: the answer begins after this, and only then is what this request
    // writes to the cache readable.
    if !first_token.is_zero() {
        tokio::time::sleep(first_token).await;
    }
    if let Some((usage, writes)) = split {
        let mut s = seen.lock().unwrap();
        for k in writes {
            s.cache.insert(k, true);
        }
        s.cache_usage.push(usage);
    }
    let start = json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": body["model"],
        "content": [], "usage": {"input_tokens": input_tokens, "output_tokens": 1, "cache_read_input_tokens": cache_read, "cache_creation_input_tokens": cache_write}}});
    if failing("midstream") {
        let text = sse(&[
            ("message_start", start),
            (
                "error",
                json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
            ),
        ]);
        return Ok(Response::new(Full::new(Bytes::from(text))));
    }
    if failing("malformed") {
        let text = format!(
            "{}event: content_block_delta\ndata: {{not json\n\n",
            sse(&[("message_start", start)])
        );
        return Ok(Response::new(Full::new(Bytes::from(text))));
    }
    if let Some(text) = player(&body, &seen) {
        if std::mem::take(&mut seen.lock().unwrap().stalling) {
            tokio::time::sleep(Duration::from_secs(120)).await;
        }
        return Ok(Response::builder()
            .header("content-type", "text/event-stream")
            .body(Full::new(Bytes::from(text)))
            .unwrap());
    }
    if let Some(turn) = conductor(&body) {
        let text = sse(&[
            ("message_start", start),
            (
                "content_block_start",
                json!({"type": "content_block_start", "index": 0, "content_block": turn.block}),
            ),
            (
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": turn.delta}),
            ),
            (
                "content_block_stop",
                json!({"type": "content_block_stop", "index": 0}),
            ),
            (
                "message_delta",
                json!({"type": "message_delta", "delta": {"stop_reason": turn.stop}, "usage": {"output_tokens": 10}}),
            ),
            ("message_stop", json!({"type": "message_stop"})),
        ]);
        return Ok(Response::builder()
            .header("content-type", "text/event-stream")
            .body(Full::new(Bytes::from(text)))
            .unwrap());
    }
    let structured_tool = body["tools"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["name"] == "StructuredOutput"))
        .cloned();
    let (block, delta, answer) = match structured_tool
        .filter(|_| !tool_result)
        .map(|t| t["input_schema"].clone())
        .unwrap_or(Value::Null)
    {
        Value::Null => {
            // `[bigxK]`: an answer of K KiB more.
            let big = tag_count(&prompt, "big").map_or(0, |k| k as usize * 1024);
            let text = format!("R({head}){}", "x".repeat(big));
            (
                r#"{"type":"text","text":""}"#.to_string(),
                format!(
                    r#"{{"type":"text_delta","text":{}}}"#,
                    serde_json::to_string(&text).unwrap()
                ),
                text,
            )
        }
        schema => {
            let v = wfhost::testing::fill(&schema, &prompt.chars().take(20).collect::<String>());
            let s = v.to_string();
            (
                json!({"type": "tool_use", "id": "toolu_1", "name": "StructuredOutput", "input": {}})
                    .to_string(),
                json!({"type": "input_json_delta", "partial_json": s}).to_string(),
                s,
            )
        }
    };
    let output_tokens = (answer.chars().count() as u64).div_ceil(4);
    // Written out rather than built as `Value`s: the benchmark's fan-outs make this server
    // share the machine's cores with the wfhost it measures.
    let mut text = String::with_capacity(1024);
    let _ = write!(
        text,
        "event: message_start\ndata: {start}\n\n\
         event: content_block_start\ndata: {{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{block}}}\n\n\
         event: ping\ndata: {{\"type\":\"ping\"}}\n\n\
         event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{delta}}}\n\n\
         event: content_block_stop\ndata: {{\"type\":\"content_block_stop\",\"index\":0}}\n\n\
         event: message_delta\ndata: {{\"type\":\"message_delta\",\"delta\":{{\"stop_reason\":\"end_turn\"}},\"usage\":{{\"output_tokens\":{output_tokens}}}}}\n\n\
         event: message_stop\ndata: {{\"type\":\"message_stop\"}}\n\n"
    );
    {
        let mut s = seen.lock().unwrap();
        *s.answered.entry(prompt).or_default() += 1;
        s.output_tokens += output_tokens;
        s.input_tokens += input_tokens;
    }
    let mut r = Response::builder().header("content-type", "text/event-stream");
    for (k, v) in limit_headers {
        r = r.header(k, v);
    }
    Ok(r.body(Full::new(Bytes::from(text))).unwrap())
}

/// Serves one connection (HTTP/1.1 or h2), closing it gracefully after `close_after` requests.
async fn serve_connection<I>(io: I, state: Arc<Mutex<Seen>>, close_after: Option<u32>)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let served = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let enough = Arc::new(tokio::sync::Notify::new());
    let service = {
        let enough = enough.clone();
        hyper::service::service_fn(move |req| {
            let n = served.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            if close_after == Some(n) {
                enough.notify_one();
            }
            handle(req, state.clone())
        })
    };
    let builder =
        hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
    let connection = builder.serve_connection(hyper_util::rt::TokioIo::new(io), service);
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => {}
        () = enough.notified() => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

/// The benchmark's answer to a plain text question (one user turn of text blocks, no tools, no
/// fault tag, no slow first token): the same SSE stream as `handle` writes, with the same
/// usage, from a borrowing parse. `None`: anything else, which `handle` answers.
fn answer_lean(bytes: &[u8], seen: &Mutex<Seen>) -> Option<Response<Full<Bytes>>> {
    use std::borrow::Cow;
    #[derive(serde::Deserialize)]
    struct Request<'a> {
        #[serde(borrow)]
        model: Cow<'a, str>,
        #[serde(borrow)]
        messages: Vec<Message<'a>>,
        #[serde(borrow, default)]
        tools: Vec<Tool<'a>>,
    }
    #[derive(serde::Deserialize)]
    struct Tool<'a> {
        #[serde(borrow)]
        name: Cow<'a, str>,
    }
    #[derive(serde::Deserialize)]
    struct Message<'a> {
        #[serde(borrow)]
        role: Cow<'a, str>,
        #[serde(borrow)]
        content: Vec<Block<'a>>,
    }
    #[derive(serde::Deserialize)]
    struct Block<'a> {
        #[serde(borrow)]
        text: Option<Cow<'a, str>>,
        cache_control: Option<serde::de::IgnoredAny>,
    }
    let r: Request<'_> = serde_json::from_slice(bytes).ok()?;
    let [m] = &r.messages[..] else { return None };
    if r.tools.iter().any(|t| t.name == "StructuredOutput")
        || m.role != "user"
        || m.content.iter().any(|b| b.cache_control.is_some())
    {
        return None;
    }
    {
        let s = seen.lock().unwrap();
        if s.bucket.is_some() || !s.first_token.is_zero() {
            return None;
        }
    }
    let mut prompt = String::new();
    for b in &m.content {
        let t = b.text.as_deref()?;
        if !t.trim_start().starts_with("<system-reminder>") {
            prompt.push_str(t);
        }
    }
    let prompt = unframe(&prompt);
    if prompt.contains('[') {
        return None;
    }
    let input_tokens = (prompt.chars().count() as u64).div_ceil(4);
    let text = format!("R({})", prompt.chars().take(40).collect::<String>());
    let output_tokens = (text.chars().count() as u64).div_ceil(4);
    let (model, text) = (
        serde_json::to_string(&r.model).ok()?,
        serde_json::to_string(&text).ok()?,
    );
    {
        let mut s = seen.lock().unwrap();
        s.output_tokens += output_tokens;
        s.input_tokens += input_tokens;
    }
    let mut sse = String::with_capacity(1024);
    let _ = write!(
        sse,
        "event: message_start\ndata: {{\"type\":\"message_start\",\"message\":{{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":{model},\"content\":[],\"usage\":{{\"input_tokens\":{input_tokens},\"output_tokens\":1,\"cache_read_input_tokens\":0,\"cache_creation_input_tokens\":0}}}}}}\n\n\
         event: content_block_start\ndata: {{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{{\"type\":\"text\",\"text\":\"\"}}}}\n\n\
         event: ping\ndata: {{\"type\":\"ping\"}}\n\n\
         event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":{text}}}}}\n\n\
         event: content_block_stop\ndata: {{\"type\":\"content_block_stop\",\"index\":0}}\n\n\
         event: message_delta\ndata: {{\"type\":\"message_delta\",\"delta\":{{\"stop_reason\":\"end_turn\"}},\"usage\":{{\"output_tokens\":{output_tokens}}}}}\n\n\
         event: message_stop\ndata: {{\"type\":\"message_stop\"}}\n\n"
    );
    Some(
        Response::builder()
            .header("content-type", "text/event-stream")
            .body(Full::new(Bytes::from(sse)))
            .unwrap(),
    )
}

/// How a `FakeApi` serves.
#[derive(Default, Clone, Copy)]
pub(crate) struct Serve {
    /// HTTPS (a generated certificate), else plain HTTP.
    pub tls: bool,
    /// Offer only HTTP/1.1 in ALPN (a server or gateway without h2).
    pub http1_only: bool,
    /// Close each connection gracefully (GOAWAY on h2) after this many requests, as servers
    /// do after a while.
    pub close_after: Option<u32>,
    /// The benchmark's server: it keeps no bodies, and its thread runs `SCHED_BATCH`. It stands
    /// for a server on another machine; on this one it must not preempt the wfhost it measures
    /// each time a request wakes it (client and server then take turns one request per context
    /// switch on one core: bench/README.md).
    pub bench: bool,
}

impl FakeApi {
    /// Scripts the tool calls of the agent whose prompt says `[play:NAME]` (`Seen::plays`).
    pub(crate) fn play(&self, name: &str, turns: Vec<Vec<Value>>) {
        self.seen
            .lock()
            .unwrap()
            .plays
            .insert(name.to_string(), turns);
    }

    /// The turn indexes the play's requests asked for, in order.
    pub(crate) fn play_turns(&self, name: &str) -> Vec<usize> {
        self.seen
            .lock()
            .unwrap()
            .play_turns
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, t)| *t)
            .collect()
    }

    /// The tools the play's latest request offered.
    pub(crate) fn play_tools(&self, name: &str) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .play_tools
            .get(name)
            .cloned()
            .unwrap_or_default()
    }

    pub(crate) fn start(tls: bool) -> FakeApi {
        FakeApi::serve(Serve {
            tls,
            ..Serve::default()
        })
    }

    pub(crate) fn serve(how: Serve) -> FakeApi {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .on_thread_start(move || {
                if how.bench {
                    let param = libc::sched_param { sched_priority: 0 };
                    // SAFETY: sets this thread's own policy; a failure leaves it as it was.
                    unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &raw const param) };
                }
            })
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let seen = Arc::new(Mutex::new(Seen {
            forget_bodies: how.bench,
            ..Seen::default()
        }));
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let (acceptor, ca_file) = if how.tls {
            let cert =
                rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
                    .unwrap();
            let ca_file = dir.path().join("ca.pem");
            std::fs::write(&ca_file, cert.cert.pem()).unwrap();
            let key = tokio_rustls::rustls::pki_types::PrivateKeyDer::Pkcs8(
                cert.signing_key.serialize_der().into(),
            );
            let mut config = tokio_rustls::rustls::ServerConfig::builder_with_provider(Arc::new(
                tokio_rustls::rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.cert.der().clone()], key)
            .unwrap();
            config.alpn_protocols = if how.http1_only {
                vec![b"http/1.1".to_vec()]
            } else {
                vec![b"h2".to_vec(), b"http/1.1".to_vec()]
            };
            (
                Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))),
                Some(ca_file),
            )
        } else {
            (None, None)
        };
        let state = seen.clone();
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                // As a production API server does: without it, Nagle's algorithm holds a
                // response's second write until the client's delayed ACK (up to 40 ms).
                let _ = stream.set_nodelay(true);
                state.lock().unwrap().connections += 1;
                let (acceptor, state) = (acceptor.clone(), state.clone());
                tokio::spawn(async move {
                    match acceptor {
                        Some(a) => {
                            if let Ok(tls) = a.accept(stream).await {
                                serve_connection(tls, state, how.close_after).await;
                            }
                        }
                        None => serve_connection(stream, state, how.close_after).await,
                    }
                });
            }
        });
        let scheme = if how.tls { "https" } else { "http" };
        let url = format!("{scheme}://127.0.0.1:{port}");
        seen.lock().unwrap().url.clone_from(&url);
        FakeApi {
            url,
            ca_file,
            seen,
            _dir: dir,
            _runtime: runtime,
        }
    }

    /// Environment for a wfhost that uses this server.
    pub(crate) fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("ANTHROPIC_BASE_URL", self.url.clone()),
            ("ANTHROPIC_API_KEY", "test-key".to_string()),
        ];
        if let Some(ca) = &self.ca_file {
            env.push(("SSL_CERT_FILE", ca.display().to_string()));
        }
        env
    }

    /// Environment for a wfhost whose `openai` backend uses this server (its OpenAI-compatible
    /// endpoint, `/v1/chat/completions`).
    pub(crate) fn openai_env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("OPENAI_BASE_URL", format!("{}/v1", self.url)),
            ("OPENAI_API_KEY", "test-key".to_string()),
        ];
        if let Some(ca) = &self.ca_file {
            env.push(("SSL_CERT_FILE", ca.display().to_string()));
        }
        env
    }

    /// Every request answered so far.
    pub(crate) fn requests(&self) -> usize {
        self.seen
            .lock()
            .unwrap()
            .attempts
            .values()
            .map(Vec::len)
            .sum()
    }

    pub(crate) fn attempts(&self, prompt: &str) -> Vec<Instant> {
        self.seen
            .lock()
            .unwrap()
            .attempts
            .iter()
            .find(|(p, _)| p.starts_with(prompt))
            .map(|(_, a)| a.clone())
            .unwrap_or_default()
    }
}

/// One turn of the model the conductor plays.
struct Turn {
    block: Value,
    delta: Value,
    stop: &'static str,
}

/// A scripted tool-using agent (`Seen::plays`): the SSE answer to this request, or `None`
/// when the prompt names no play.
fn player(body: &Value, seen: &Arc<Mutex<Seen>>) -> Option<String> {
    let messages = body["messages"].as_array()?;
    let task = unframe(&content_text(&messages.first()?["content"]));
    let name = task.split("[play:").nth(1)?.split(']').next()?.to_string();
    let turn = messages.iter().filter(|m| m["role"] == "assistant").count();
    let calls = {
        let mut s = seen.lock().unwrap();
        s.play_turns.push((name.clone(), turn));
        let offered = body["tools"]
            .as_array()
            .map(|t| {
                t.iter()
                    .filter_map(|t| t["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        s.play_tools.insert(name.clone(), offered);
        if s.play_stall.as_ref() == Some(&(name.clone(), turn)) {
            s.play_stall = None;
            s.stalling = true;
        }
        s.plays.get(&name)?.get(turn).cloned()
    };
    let start = json!({"type": "message_start", "message": {"id": format!("msg_{turn}"), "type": "message", "role": "assistant",
        "model": body["model"], "content": [], "usage": {"input_tokens": 100, "output_tokens": 1}}});
    let mut events = vec![("message_start", start)];
    let stop = match calls {
        Some(calls) => {
            for (i, c) in calls.iter().enumerate() {
                events.push(("content_block_start", json!({"type": "content_block_start", "index": i,
                    "content_block": {"type": "tool_use", "id": format!("toolu_{name}_{turn}_{i}"), "name": c["name"], "input": {}}})));
                events.push((
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": i,
                    "delta": {"type": "input_json_delta", "partial_json": c["input"].to_string()}}),
                ));
                events.push((
                    "content_block_stop",
                    json!({"type": "content_block_stop", "index": i}),
                ));
            }
            "tool_use"
        }
        None => {
            // Every tool result of the conversation, in order.
            let results: Vec<Value> = messages
                .iter()
                .filter(|m| m["role"] == "user")
                .filter_map(|m| m["content"].as_array())
                .flatten()
                .filter(|b| b["type"] == "tool_result")
                .map(|b| json!({"content": b["content"], "is_error": b["is_error"]}))
                .collect();
            let text = format!("DONE {}", Value::Array(results));
            events.push(("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})));
            events.push(("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}})));
            events.push((
                "content_block_stop",
                json!({"type": "content_block_stop", "index": 0}),
            ));
            "end_turn"
        }
    };
    events.push(("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": stop}, "usage": {"output_tokens": 20}})));
    events.push(("message_stop", json!({"type": "message_stop"})));
    Some(sse(&events))
}

/// The text of a message's content (a string, or its text and tool-result blocks).
fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .map(|p| match (&p["text"], &p["content"]) {
                (Value::String(t), _) => t.clone(),
                (_, inner @ (Value::String(_) | Value::Array(_))) => content_text(inner),
                _ => String::new(),
            })
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// Plays a model that drives `wfhost mcp` through Claude Code, when the task says `[mcp-run]`:
/// it calls `workflow_run` with the task's ```js script and `wait`, then `workflow_result` with
/// the run id it got, then answers with that tool result's text (`WORKFLOW RESULT: …`); a tool
/// error is answered as `WORKFLOW ERROR: …`.
fn conductor(body: &Value) -> Option<Turn> {
    if let Some(turn) = prober(body) {
        return Some(turn);
    }
    let tools = body["tools"].as_array()?;
    if !tools
        .iter()
        .any(|t| t["name"] == "mcp__wfhost__workflow_run")
    {
        return None;
    }
    let messages = body["messages"].as_array()?;
    let task = messages
        .iter()
        .filter(|m| m["role"] == "user")
        .map(|m| content_text(&m["content"]))
        .find(|t| t.contains("[mcp-run]"))?;
    let tool_use = |name: &str, input: Value| Turn {
        block: json!({"type": "tool_use", "id": format!("toolu_{name}"), "name": format!("mcp__wfhost__{name}"), "input": {}}),
        delta: json!({"type": "input_json_delta", "partial_json": input.to_string()}),
        stop: "tool_use",
    };
    let say = |text: String| Turn {
        block: json!({"type": "text", "text": ""}),
        delta: json!({"type": "text_delta", "text": text}),
        stop: "end_turn",
    };
    let last = messages.last()?;
    // The newest tool result (Claude Code merges turns that share a message id into one).
    let result = last["content"]
        .as_array()
        .and_then(|c| c.iter().rev().find(|b| b["type"] == "tool_result"));
    let Some(result) = result else {
        let script = task
            .split("```js")
            .nth(1)?
            .split("```")
            .next()?
            .trim()
            .to_string();
        return Some(tool_use(
            "workflow_run",
            json!({ "script": script, "args": { "items": ["a", "b"] }, "wait": 30 }),
        ));
    };
    let text = content_text(&result["content"]);
    if result["is_error"] == true {
        return Some(say(format!("WORKFLOW ERROR: {text}")));
    }
    match result["tool_use_id"].as_str()? {
        "toolu_workflow_run" => {
            // `"runId": "…"` (pretty) or `"runId":"…"` (compact).
            let rest = &text[text.find("\"runId\"")? + "\"runId\"".len()..];
            let rest = rest.trim_start_matches([':', ' ', '"']);
            let id: String = rest.chars().take_while(|c| *c != '"').collect();
            Some(tool_use(
                "workflow_result",
                json!({ "runId": id, "wait": 30 }),
            ))
        }
        _ => Some(say(format!("WORKFLOW RESULT: {text}"))),
    }
}

/// Plays an agent that needs a tool it was not allowed, when its task says `[perm-probe]`: it
/// asks for `Bash` (`touch probe-made && echo permitted-$((6*7))`: not read-only, so Claude Code asks), then answers `TOOL SAID: ` and what came back
/// (the output, or the refusal and its reason).
fn prober(body: &Value) -> Option<Turn> {
    let tools = body["tools"].as_array()?;
    if !tools.iter().any(|t| t["name"] == "Bash") {
        return None;
    }
    let messages = body["messages"].as_array()?;
    messages
        .iter()
        .filter(|m| m["role"] == "user")
        .map(|m| content_text(&m["content"]))
        .find(|t| t.contains("[perm-probe]"))?;
    let last = messages.last()?;
    let result = last["content"]
        .as_array()
        .and_then(|c| c.iter().rev().find(|b| b["type"] == "tool_result"));
    Some(match result {
        None => Turn {
            block: json!({"type": "tool_use", "id": "toolu_bash", "name": "Bash", "input": {}}),
            delta: json!({"type": "input_json_delta", "partial_json": json!({"command": "touch probe-made && echo permitted-$((6*7))", "description": "probe"}).to_string()}),
            stop: "tool_use",
        },
        Some(r) => Turn {
            block: json!({"type": "text", "text": ""}),
            delta: json!({"type": "text_delta", "text": format!("TOOL SAID: {}", content_text(&r["content"]))}),
            stop: "end_turn",
        },
    })
}

/// The task inside wfhost's provenance frame (`backend::framed_task`), as the script wrote it:
/// the frame's line removed and each task line's four-space indent taken off. Text after the
/// task (a schema re-ask's feedback) is kept as it is.
pub(crate) fn unframe(prompt: &str) -> String {
    let Some(task) = prompt
        .strip_prefix(wfhost::testing::PROVENANCE)
        .and_then(|r| r.strip_prefix("\n\n"))
    else {
        return prompt.to_string();
    };
    let mut out = Vec::new();
    let mut in_task = true;
    for line in task.split('\n') {
        match line.strip_prefix("    ") {
            Some(l) if in_task => out.push(l),
            _ => {
                in_task = false;
                out.push(line);
            }
        }
    }
    out.join("\n")
}
