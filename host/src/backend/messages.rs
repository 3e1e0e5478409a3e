//! `messages`: one Anthropic Messages API call per agent, over HTTP/2 + rustls.
//!
//! A single model call without tools: suited to reasoning, classification and synthesis.
//! Streaming (SSE) over one multiplexed HTTP/2 connection (`backend::http2`), or hyper's pooled
//! HTTP/1.1 client for `http://` URLs and servers without h2.
//! Structured output through a forced `StructuredOutput` tool whose `input_schema` is the
//! agent's schema. Retries: 429 honours `retry-after`; 529, 500, 502, 503, 504, connection
//! errors, timeouts, truncated or malformed streams and mid-stream `overloaded`/`api_error`
//! events back off exponentially with jitter (0.5 s → 8 s); 400, 401, 403, 404, 413 and a
//! spend-limit 429 are never retried.

use super::transport::{Answer, Failure, Retries, Throttled, Transport};
use super::{AgentError, AgentReply, AgentRequest, Backend, Usage};
use crate::config::{self, Config};
use crate::tools::{Dialect, Specs, Tally, ToolName, ToolOutput, Toolbox, turn};
use anyhow::Result;
use hyper::body::Bytes;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const API_VERSION: &str = "2023-06-01";
/// Where the endpoint is set, for the hints of errors that name it.
const SETTINGS: &str = "`messages.base_url` (wfhost.toml) or `ANTHROPIC_BASE_URL`";
const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";

pub(crate) struct Messages {
    transport: Transport,
    base_url: String,
    /// `{base_url}/v1/messages` and `…/count_tokens`, parsed once.
    messages_uri: http::Uri,
    count_uri: http::Uri,
    /// The headers of every Messages request (auth, version, JSON in, SSE out), built once.
    headers: http::HeaderMap,
    model: String,
    max_tokens: u32,
    timeout: Duration,
    attempt_timeout: Duration,
    max_attempts: u32,
    requests: AtomicU64,
    retries: AtomicU64,
    /// The agents' tools (`None`: no tools, one model call per agent).
    tools: Option<Arc<Toolbox>>,
    /// `--batch`: every model call goes through the Message Batches API (backend::batch).
    batch: Option<Arc<super::batch::Batcher>>,
    /// The price table (a batched answer is priced here, at the batch discount).
    prices: Arc<Config>,
}

/// What a request body is for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// A live call, streamed.
    Stream,
    /// One request of a batch (the Batches API streams nothing).
    Batch,
    /// The count-tokens endpoint (no `stream`, no `max_tokens`).
    Count,
}

impl Messages {
    pub(crate) fn new(cfg: &Config) -> Result<Messages> {
        let api_key = std::env::var("ANTHROPIC_API_KEY")
            .ok()
            .filter(|k| !k.is_empty())
            .ok_or_else(|| {
                crate::ExitError::usage("the `messages` backend needs `ANTHROPIC_API_KEY`")
                    .hint("export ANTHROPIC_API_KEY=…, or choose another backend with `--backend`")
            })?;
        let base_url = cfg
            .messages
            .base_url
            .clone()
            .or_else(|| {
                std::env::var("ANTHROPIC_BASE_URL")
                    .ok()
                    .filter(|u| !u.is_empty())
            })
            .unwrap_or_else(|| DEFAULT_BASE_URL.to_string());
        let uri = |path: &str| {
            format!("{}{path}", base_url.trim_end_matches('/'))
                .parse::<http::Uri>()
                .map_err(|e| {
                    crate::ExitError::usage(format!(
                        "the Messages API URL `{base_url}` is not a URL: {e}"
                    ))
                    .hint(
                        "set `messages.base_url` (or `ANTHROPIC_BASE_URL`) to https://host[:port]",
                    )
                })
        };
        let (messages_uri, count_uri) = (uri("/v1/messages")?, uri("/v1/messages/count_tokens")?);
        tracing::debug!(url = %messages_uri, "messages backend");
        let mut headers = http::HeaderMap::new();
        let mut api_key_value = http::HeaderValue::from_str(&api_key).map_err(|_| {
            crate::ExitError::usage("`ANTHROPIC_API_KEY` is not a valid header value")
                .hint("check that the key was copied whole, without line breaks")
        })?;
        api_key_value.set_sensitive(true);
        headers.insert("x-api-key", api_key_value);
        headers.insert(
            "anthropic-version",
            http::HeaderValue::from_static(API_VERSION),
        );
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        headers.insert(
            http::header::ACCEPT,
            http::HeaderValue::from_static("text/event-stream"),
        );
        let timeout = config::duration(
            &cfg.messages.timeout,
            "messages.timeout",
            Duration::from_secs(600),
        )?;
        let attempt_timeout = config::duration(
            &cfg.messages.attempt_timeout,
            "messages.attempt_timeout",
            timeout,
        )?
        .min(timeout);
        let base = base_url.trim_end_matches('/');
        let batch = if cfg.messages.batch.unwrap_or(false) {
            let window = config::duration(
                &cfg.messages.batch_window,
                "messages.batch_window",
                super::batch::WINDOW,
            )?;
            let attempts = cfg.messages.max_attempts.unwrap_or(6).max(1);
            Some(super::batch::Batcher::new(
                base, &headers, window, attempts,
            )?)
        } else {
            None
        };
        Ok(Messages {
            batch,
            prices: Arc::new(cfg.clone()),
            transport: Transport::new(&messages_uri)?,
            messages_uri,
            count_uri,
            headers,
            base_url: base_url.trim_end_matches('/').to_string(),
            model: cfg.model().to_string(),
            max_tokens: cfg.messages.max_tokens.unwrap_or(8192),
            timeout,
            attempt_timeout,
            max_attempts: cfg.messages.max_attempts.unwrap_or(6).max(1),
            requests: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            tools: Toolbox::from_config(&cfg.tools)?,
        })
    }

    /// The request body, serialised once per agent (a retry sends the same bytes), and its
    /// model. Typed: building a `serde_json::Value` for every request was a visible share of a
    /// fan-out's CPU.
    fn body(
        &self,
        req: &AgentRequest,
        feedback: Option<&str>,
        purpose: Purpose,
    ) -> (Bytes, String) {
        // `agentType`: the definition's system prompt and model (unless the call names one).
        let def = super::agent_definition();
        let framing = super::system_prompt(req, def.as_deref(), false);
        let model = req
            .model
            .clone()
            .or_else(|| def.and_then(|d| d.model.clone()))
            .unwrap_or_else(|| self.model.clone());
        // The user content: the task, with a `cache_control` breakpoint at the end of the
        // head it shares with its fan-out (scheduler::stagger found it), so the others read it
        // from the cache.
        let mut prompt = super::framed_task(&req.prompt);
        // The frame indents every line, so the framed head is a prefix of the framed task.
        let head = super::cache_hint()
            .map(|h| super::framed_task(&req.prompt[..h.head]).len())
            .filter(|n| *n < prompt.len());
        if let Some(f) = feedback {
            prompt.push_str(&format!(
                "\n\nYour previous answer did not match the required schema:\n{f}\nCall StructuredOutput again with a corrected answer."
            ));
        }
        let content = match head {
            Some(n) => {
                let (head, tail) = prompt.split_at(n);
                vec![Text::cached(head), Text::plain(tail)]
            }
            None => vec![Text::plain(&prompt)],
        };
        // effort → extended thinking (not with a forced tool: the API refuses the pair).
        let thinking = thinking_budget(req.effort.as_deref())
            .filter(|_| req.schema.is_none())
            .map(|budget_tokens| Thinking {
                kind: "enabled",
                budget_tokens,
            });
        let body = Body {
            model: &model,
            max_tokens: (purpose != Purpose::Count).then(|| {
                thinking
                    .as_ref()
                    .map_or(self.max_tokens, |t| self.max_tokens.max(t.budget_tokens + 4096))
            }),
            stream: (purpose == Purpose::Stream).then_some(true),
            system: [Text::cached(&framing)],
            messages: [Message {
                role: "user",
                content,
            }],
            tools: req.schema.as_ref().map(|schema| {
                [Tool {
                    name: "StructuredOutput",
                    description: "Return your final answer. Its input is the answer, matching the schema exactly.",
                    input_schema: schema,
                }]
            }),
            tool_choice: req.schema.as_ref().map(|_| ToolChoice {
                kind: "tool",
                name: "StructuredOutput",
            }),
            thinking,
        };
        // Sized for the texts it carries: no regrowing (and copying) while it is written.
        let mut bytes = Vec::with_capacity(framing.len() + prompt.len() + 512);
        let _ = serde_json::to_writer(&mut bytes, &body);
        (Bytes::from(bytes), model)
    }

    /// The input tokens of an agent's first request, as the API counts them (its free
    /// count-tokens endpoint; `wfhost plan`). The same body the agent would send, minus what the
    /// endpoint does not take.
    pub(crate) async fn count_tokens(&self, req: &AgentRequest) -> Result<u64, AgentError> {
        let (body, _) = self.body(req, None, Purpose::Count);
        // The Messages headers, but the answer is JSON, not a stream.
        let mut headers = self.headers.clone();
        headers.remove(http::header::ACCEPT);
        let work = async {
            let response = self
                .transport
                .send(&self.count_uri, &headers, &body)
                .await
                .map_err(|e| {
                    AgentError::permanent(e.message(&self.count_uri.to_string(), SETTINGS))
                })?;
            let status = response.status();
            let bytes = response.into_body().collect().await;
            let v: Value = serde_json::from_slice(&bytes).unwrap_or_default();
            match v["input_tokens"].as_u64() {
                Some(n) if status.is_success() => Ok(n),
                _ => Err(AgentError::permanent(format!(
                    "count_tokens answered {status}: {}",
                    String::from_utf8_lossy(&bytes).trim()
                ))),
            }
        };
        tokio::time::timeout(Duration::from_secs(30), work)
            .await
            .unwrap_or_else(|_| Err(AgentError::permanent("count_tokens took over 30 s")))
    }

    /// One request and its answer stream.
    async fn attempt(&self, body: &Bytes, model: &str) -> Result<Streamed, Failure> {
        let throttled = Throttled::acquire(model).await;
        self.requests.fetch_add(1, Ordering::Relaxed);
        let response = self
            .transport
            .send(&self.messages_uri, &self.headers, body)
            .await
            .map_err(|e| super::transport::unsent(&e, &self.messages_uri.to_string(), SETTINGS))?;
        throttled.observe(&response);
        if !response.status().is_success() {
            return Err(throttled.refused(response).await);
        }
        read_stream(response.into_body()).await
    }

    /// One model call with its retries, bounded by `messages.timeout`.
    async fn call(&self, body: &Bytes, model: &str) -> Result<Streamed, AgentError> {
        Retries {
            max_attempts: self.max_attempts,
            timeout: self.timeout,
            attempt_timeout: self.attempt_timeout,
            settings: ("messages.timeout", "messages.attempt_timeout"),
            counter: &self.retries,
        }
        .run(|| self.attempt(body, model))
        .await
    }
}

/// Told to a schema agent that ended its turn without giving its answer.
const ANSWER_NOW: &str = "Give your final answer now, through the StructuredOutput tool.";

impl Messages {
    /// A tool-using agent: model call → its tool calls, run by the host → their results →
    /// the next call, until the model ends its turn (or gives its structured answer). Every
    /// turn that called tools is journaled (tools::transcript): a call that continues an
    /// interrupted agent starts from its last finished turn, without asking the model again.
    async fn run_with_tools(
        &self,
        req: &AgentRequest,
        feedback: Option<&str>,
        tools: &Arc<Toolbox>,
        offered: &[ToolName],
    ) -> Result<AgentReply, AgentError> {
        let purpose = if self.batch.is_some() {
            Purpose::Batch
        } else {
            Purpose::Stream
        };
        let (first, model) = self.body(req, feedback, purpose);
        let mut base: Value = serde_json::from_slice(&first)
            .map_err(|e| AgentError::permanent(format!("internal: the request body: {e}")))?;

        let mut specs = Specs::of(offered, Dialect::Messages);
        if let Some(schema) = &req.schema {
            specs.push(&Specs::definition(
                Dialect::Messages,
                "StructuredOutput",
                "Return your final answer. Its input is the answer, matching the schema exactly.",
                schema.clone(),
            ));
        }
        base["tool_choice"] = json!({"type": "auto"});
        let mut messages: Vec<Value> = match base.get_mut("messages").map(Value::take) {
            Some(Value::Array(m)) => m,
            _ => Vec::new(),
        };
        let transcript = super::call_context().transcript;
        let mut tally = Tally::default();
        // The turns this call already took (a resume, a stall restart, a schema re-ask).
        for (assistant, results) in
            turn::replay(tools, offered, transcript.as_deref(), &mut tally).await
        {
            messages.push(json!({"role": "assistant", "content": assistant}));
            messages.push(results_message(&results));
        }
        let mut usage = super::Usage::default();
        let mut cost: Option<f64> = None;
        let mut forced = false;
        if let Some(hint) = super::cache_hint().filter(|_| self.batch.is_none()) {
            hint.before_send().await;
        }
        loop {
            tally.turn(&tools.rails).map_err(AgentError::permanent)?;
            // Lent to the body for this request and taken back: no copy of the conversation
            // per turn.
            base["messages"] = Value::Array(std::mem::take(&mut messages));
            if forced {
                base["tool_choice"] = json!({"type": "tool", "name": "StructuredOutput"});
            }
            let body = specs.body_with(&base);
            if let Some(Value::Array(m)) = base.get_mut("messages").map(Value::take) {
                messages = m;
            }
            let streamed = match &self.batch {
                Some(batcher) => {
                    let turn = tally.turns();
                    let streamed = self.batched(batcher, req, feedback, turn, &body).await?;
                    *cost.get_or_insert(0.0) += self.batch_cost(&model, &streamed.reply.usage);
                    streamed
                }
                None => self.call(&body, &model).await?,
            };
            usage += streamed.reply.usage;
            super::spent(streamed.reply.usage);
            let assistant = Value::Array(streamed.blocks.iter().map(Block::to_json).collect());
            turn::turn_taken(tally.turns(), &assistant, streamed.reply.usage);
            if streamed.reply.structured.is_some() {
                return Ok(AgentReply {
                    usage,
                    cost_usd: cost,
                    ..streamed.reply
                });
            }
            let calls = turn::calls_of(&assistant);
            if calls.is_empty() {
                if req.schema.is_some() && !forced {
                    forced = true;
                    if !streamed.blocks.is_empty() {
                        messages.push(json!({"role": "assistant", "content": assistant}));
                        messages.push(json!({"role": "user", "content": ANSWER_NOW}));
                    }
                    continue;
                }
                return Ok(AgentReply {
                    usage,
                    cost_usd: cost,
                    ..streamed.reply
                });
            }
            let n = tally.turns();
            let results = turn::take(
                tools,
                offered,
                transcript.as_deref(),
                n,
                &assistant,
                &calls,
                &mut tally,
            )
            .await
            .map_err(AgentError::permanent)?;
            messages.push(json!({"role": "assistant", "content": assistant}));
            messages.push(results_message(&results));
        }
    }
}

/// The user turn that hands a turn's tool results back, with a cache breakpoint at its end:
/// the next turn reads the whole conversation so far from the prompt cache.
fn results_message(results: &[(String, ToolOutput)]) -> Value {
    let mut content: Vec<Value> = results
        .iter()
        .map(|(id, r)| {
            json!({"type": "tool_result", "tool_use_id": id, "content": r.content, "is_error": r.is_error})
        })
        .collect();
    if let Some(last) = content.last_mut() {
        last["cache_control"] = json!({"type": "ephemeral"});
    }
    json!({"role": "user", "content": content})
}

/// One content block of an answer, as the stream built it.
#[derive(Debug)]
enum Block {
    Text(String),
    ToolUse {
        id: String,
        name: String,
        json: String,
    },
    /// Extended thinking: carried to the next turn exactly as signed (the API requires it
    /// when a thinking agent uses tools).
    Thinking {
        thinking: String,
        signature: String,
    },
    /// Anything else (thinking, …): kept as the API sent it.
    Other(Value),
}

impl Block {
    /// `content_block_delta`: more of the block at `index` (its text also goes to `text`, the
    /// reply's, and to the views).
    fn delta(blocks: &mut Vec<Block>, index: usize, delta: &Delta<'_>, text: &mut String) {
        match delta.kind.as_deref() {
            Some("text_delta") => {
                let t = delta.text.as_deref().unwrap_or("");
                super::output(t);
                text.push_str(t);
                if let Some(Block::Text(b)) = blocks.get_mut(index) {
                    b.push_str(t);
                }
            }
            Some("thinking_delta") => {
                if let Some(Block::Thinking { thinking, .. }) = blocks.get_mut(index) {
                    thinking.push_str(delta.thinking.as_deref().unwrap_or(""));
                }
            }
            Some("signature_delta") => {
                if let Some(Block::Thinking { signature, .. }) = blocks.get_mut(index) {
                    signature.push_str(delta.signature.as_deref().unwrap_or(""));
                }
            }
            Some("input_json_delta") => {
                let part = delta.partial_json.as_deref().unwrap_or("");
                if !matches!(blocks.get(index), Some(Block::ToolUse { .. })) {
                    // A stream without content_block_start: one tool call, the answer's.
                    Block::start(
                        blocks,
                        index,
                        json!({"type": "tool_use", "name": "StructuredOutput"}),
                    );
                }
                if let Some(Block::ToolUse { json, .. }) = blocks.get_mut(index) {
                    json.push_str(part);
                }
            }
            _ => {}
        }
    }

    /// `content_block_start`: the block at `index` begins.
    fn start(blocks: &mut Vec<Block>, index: usize, b: Value) {
        let block = match b["type"].as_str() {
            Some("text") => Block::Text(String::new()),
            Some("thinking") => Block::Thinking {
                thinking: String::new(),
                signature: String::new(),
            },
            Some("tool_use") => Block::ToolUse {
                id: b["id"].as_str().unwrap_or_default().to_string(),
                name: b["name"].as_str().unwrap_or_default().to_string(),
                json: String::new(),
            },
            _ => Block::Other(b),
        };
        if blocks.len() <= index {
            blocks.resize_with(index + 1, || Block::Text(String::new()));
        }
        blocks[index] = block;
    }

    /// The block as the next request's assistant message carries it.
    fn to_json(&self) -> Value {
        match self {
            Block::Text(t) => json!({"type": "text", "text": t}),
            Block::ToolUse { id, name, json } => json!({
                "type": "tool_use", "id": id, "name": name,
                "input": serde_json::from_str::<Value>(json).unwrap_or_else(|_| json!({})),
            }),
            Block::Thinking {
                thinking,
                signature,
            } => json!({"type": "thinking", "thinking": thinking, "signature": signature}),
            Block::Other(v) => v.clone(),
        }
    }
}

/// What one model call answered: the reply (text, usage, structured answer) and its content
/// blocks (text, and the tool calls it wants run).
#[derive(Debug)]
struct Streamed {
    reply: AgentReply,
    blocks: Vec<Block>,
}

/// Reads a Messages SSE stream into a reply.
async fn read_stream(mut body: Answer) -> Result<Streamed, Failure> {
    let retry = |message: String| Failure::Retry {
        error: AgentError {
            usage_limit: false,
            stops_run: false,
            resets_in: None,
            message,
            transient: true,
        },
        after: None,
    };
    let mut events = super::sse::Parser::default();
    let mut reply = AgentReply::default();
    let mut blocks: Vec<Block> = Vec::new();
    let mut stopped = false;
    loop {
        let Some(event) = events.next_event() else {
            let Some(chunk) = body.chunk().await else {
                break;
            };
            let chunk = chunk.map_err(|e| retry(format!("the answer stream broke: {e}")))?;
            events.push(&chunk);
            continue;
        };
        // Every event, pings included, shows the call is alive (the stall timeout).
        super::progress();
        if event.event == "ping" {
            continue;
        }
        // Typed, borrowing from the event's text: an answer is a handful of events per agent,
        // and building a `Value` map for each was a visible share of a fan-out's CPU.
        let data: StreamEvent<'_> = serde_json::from_str(&event.data)
            .map_err(|e| retry(format!("malformed event in the answer stream ({e})")))?;
        let delta = data.delta.unwrap_or_default();
        let index = data.index.unwrap_or(0);
        match data.kind.as_deref().unwrap_or(event.event.as_str()) {
            "content_block_start" => {
                Block::start(&mut blocks, index, data.content_block.unwrap_or_default());
            }
            "message_start" => {
                // The answer has begun: the prompt's cache entry exists, and the calls that
                // share its head may go (scheduler::stagger).
                if let Some(hint) = super::cache_hint() {
                    hint.begun();
                }
                if let Some(u) = data.message.and_then(|m| m.usage) {
                    let n = |v: Option<u64>| v.unwrap_or(0);
                    reply.usage += Usage {
                        input_tokens: n(u.input_tokens),
                        output_tokens: n(u.output_tokens),
                        cache_creation_input_tokens: n(u.cache_creation_input_tokens),
                        cache_read_input_tokens: n(u.cache_read_input_tokens),
                    };
                }
            }
            "content_block_delta" => Block::delta(&mut blocks, index, &delta, &mut reply.text),
            "message_delta" => {
                // message_delta carries the final output count (cumulative).
                if let Some(out) = data.usage.and_then(|u| u.output_tokens) {
                    reply.usage.output_tokens = out;
                }
            }
            "message_stop" => stopped = true,
            "error" => {
                let e = data.error.unwrap_or_default();
                let kind = e.kind.as_deref().unwrap_or("error");
                let message = e.message.as_deref().unwrap_or(kind);
                let transient =
                    matches!(kind, "overloaded_error" | "api_error" | "rate_limit_error");
                let error = AgentError {
                    usage_limit: false,
                    stops_run: false,
                    resets_in: None,
                    message: format!("API Error: {kind} {message}"),
                    transient,
                };
                return Err(if transient {
                    Failure::Retry { error, after: None }
                } else {
                    Failure::Fatal(error)
                });
            }
            _ => {}
        }
    }
    if !stopped {
        return Err(retry("the answer stream ended before message_stop".into()));
    }
    for b in &blocks {
        if let Block::ToolUse { name, json, .. } = b {
            let v: Value = serde_json::from_str(if json.is_empty() { "{}" } else { json })
                .map_err(|e| retry(format!("malformed `{name}` tool input ({e})")))?;
            if name == "StructuredOutput" {
                reply.structured = Some(v);
            }
        }
    }
    Ok(Streamed { reply, blocks })
}

/// The thinking budget for an agent's `effort` (`low` or none: no extended thinking).
fn thinking_budget(effort: Option<&str>) -> Option<u32> {
    match effort? {
        "medium" => Some(4096),
        "high" | "max" => Some(16384),
        _ => None,
    }
}

/// A Messages API request, as wfhost sends it (fields in the order the API documents them).
#[derive(serde::Serialize)]
struct Body<'a> {
    model: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream: Option<bool>,
    system: [Text<'a>; 1],
    messages: [Message<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<[Tool<'a>; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<ToolChoice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking: Option<Thinking>,
}

#[derive(serde::Serialize)]
struct Text<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    text: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_control: Option<CacheControl>,
}

impl<'a> Text<'a> {
    fn plain(text: &'a str) -> Text<'a> {
        Text {
            kind: "text",
            text,
            cache_control: None,
        }
    }
    /// A cache breakpoint at the end of this text.
    fn cached(text: &'a str) -> Text<'a> {
        Text {
            cache_control: Some(CacheControl { kind: "ephemeral" }),
            ..Text::plain(text)
        }
    }
}

#[derive(serde::Serialize)]
struct CacheControl {
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(serde::Serialize)]
struct Message<'a> {
    role: &'static str,
    content: Vec<Text<'a>>,
}

#[derive(serde::Serialize)]
struct Tool<'a> {
    name: &'static str,
    description: &'static str,
    input_schema: &'a Value,
}

#[derive(serde::Serialize)]
struct ToolChoice {
    #[serde(rename = "type")]
    kind: &'static str,
    name: &'static str,
}

#[derive(serde::Serialize)]
struct Thinking {
    #[serde(rename = "type")]
    kind: &'static str,
    budget_tokens: u32,
}

/// One event of the Messages API's answer stream: only the fields wfhost reads (the rest are
/// skipped), strings borrowed from the event where they have no escapes.
#[derive(Debug, Default, serde::Deserialize)]
struct StreamEvent<'a> {
    #[serde(rename = "type", default, borrow)]
    kind: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    message: Option<StartMessage>,
    #[serde(default, borrow)]
    delta: Option<Delta<'a>>,
    #[serde(default)]
    usage: Option<DeltaUsage>,
    #[serde(default, borrow)]
    error: Option<StreamError<'a>>,
    #[serde(default)]
    index: Option<usize>,
    #[serde(default)]
    content_block: Option<Value>,
}

#[derive(Debug, Default, serde::Deserialize)]
struct StartMessage {
    #[serde(default)]
    usage: Option<StartUsage>,
}

/// Lenient: a missing or `null` count is 0.
#[derive(Debug, Default, serde::Deserialize)]
struct StartUsage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
}

#[derive(Debug, Default, serde::Deserialize)]
struct Delta<'a> {
    #[serde(rename = "type", default, borrow)]
    kind: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    text: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    partial_json: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    thinking: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    signature: Option<std::borrow::Cow<'a, str>>,
}

#[derive(Debug, Default, serde::Deserialize)]
struct DeltaUsage {
    #[serde(default)]
    output_tokens: Option<u64>,
}

#[derive(Debug, Default, serde::Deserialize)]
struct StreamError<'a> {
    #[serde(rename = "type", default, borrow)]
    kind: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    message: Option<std::borrow::Cow<'a, str>>,
}

#[async_trait::async_trait]
impl Backend for Messages {
    fn name(&self) -> &str {
        "messages"
    }

    fn identity(&self) -> String {
        match &self.tools {
            Some(t) => format!(
                "messages:{}:{}:{}",
                self.model,
                self.max_tokens,
                t.identity()
            ),
            None => format!("messages:{}:{}", self.model, self.max_tokens),
        }
    }

    fn default_model(&self) -> Option<String> {
        Some(self.model.clone())
    }

    fn caches_prompts(&self) -> bool {
        true
    }

    async fn run(
        &self,
        req: &AgentRequest,
        feedback: Option<&str>,
    ) -> Result<AgentReply, AgentError> {
        if let Some((tools, offered)) = Toolbox::for_call(self.tools.as_ref(), req)? {
            return self.run_with_tools(req, feedback, &tools, &offered).await;
        }
        if let Some(batcher) = &self.batch {
            return self.run_batched(batcher, req, feedback).await;
        }
        let (body, model) = self.body(req, feedback, Purpose::Stream);
        // Sharing a head with a call that is writing it to the cache: wait until it can be read.
        if let Some(hint) = super::cache_hint() {
            hint.before_send().await;
        }
        Ok(self.call(&body, &model).await?.reply)
    }

    fn stats(&self) -> Option<Value> {
        let mut stats = json!({
            "requests": self.requests.load(Ordering::Relaxed),
            "retries": self.retries.load(Ordering::Relaxed),
            "base_url": self.base_url,
        });
        if let Some(b) = &self.batch {
            stats["batches"] = b.created.load(Ordering::Relaxed).into();
            stats["batch_polls"] = b.polls.load(Ordering::Relaxed).into();
        }
        Some(stats)
    }

    fn batches(&self) -> bool {
        self.batch.is_some()
    }

    async fn finish(&self) {
        if let Some(b) = &self.batch {
            b.finish().await;
        }
    }
}

impl Messages {
    /// An agent without tools through the Message Batches API (backend::batch): one request
    /// (the same as live, cache breakpoints kept: the discounts stack), its answer read from
    /// the batch's results, priced at the batch discount.
    async fn run_batched(
        &self,
        batcher: &Arc<super::batch::Batcher>,
        req: &AgentRequest,
        feedback: Option<&str>,
    ) -> Result<AgentReply, AgentError> {
        let (params, model) = self.body(req, feedback, Purpose::Batch);
        let mut reply = self
            .batched(batcher, req, feedback, 1, &params)
            .await?
            .reply;
        reply.cost_usd = Some(self.batch_cost(&model, &reply.usage));
        Ok(reply)
    }

    /// One model call as a request of a batch (`turn`: which of the agent's calls it is).
    async fn batched(
        &self,
        batcher: &Arc<super::batch::Batcher>,
        req: &AgentRequest,
        feedback: Option<&str>,
        turn: u32,
        params: &Bytes,
    ) -> Result<Streamed, AgentError> {
        let ctx = super::call_context();
        let (key, occurrence) = ctx
            .key
            .clone()
            .unwrap_or_else(|| (crate::journal::agent_key(req, &self.identity()), 0));
        let custom_id = super::batch::custom_id(&key, occurrence, turn, feedback);
        let message = batcher.ask(&ctx, &custom_id, params).await?;
        let streamed = answered(&message);
        super::output(&streamed.reply.text);
        Ok(streamed)
    }

    /// What a batched call cost: the price table's, at the batch discount (0 without a
    /// price: the run reports the model unpriced).
    fn batch_cost(&self, model: &str, usage: &Usage) -> f64 {
        self.prices
            .price(model)
            .map_or(0.0, |p| p.cost(usage) * super::batch::DISCOUNT)
    }
}

/// A whole (not streamed) Messages answer, as a streamed one is read: its reply (text,
/// `StructuredOutput` input, usage) and its content blocks (the tool calls it wants run).
fn answered(message: &Value) -> Streamed {
    let mut reply = AgentReply::default();
    let mut blocks = Vec::new();
    for block in message["content"].as_array().into_iter().flatten() {
        blocks.push(match block["type"].as_str() {
            Some("text") => {
                let text = block["text"].as_str().unwrap_or_default();
                reply.text.push_str(text);
                Block::Text(text.to_string())
            }
            Some("tool_use") => {
                let name = block["name"].as_str().unwrap_or_default().to_string();
                if name == "StructuredOutput" {
                    reply.structured = Some(block["input"].clone());
                }
                Block::ToolUse {
                    id: block["id"].as_str().unwrap_or_default().to_string(),
                    name,
                    json: block["input"].to_string(),
                }
            }
            Some("thinking") => Block::Thinking {
                thinking: block["thinking"].as_str().unwrap_or_default().to_string(),
                signature: block["signature"].as_str().unwrap_or_default().to_string(),
            },
            _ => Block::Other(block.clone()),
        });
    }
    let u = &message["usage"];
    let n = |k: &str| u[k].as_u64().unwrap_or(0);
    reply.usage = Usage {
        input_tokens: n("input_tokens"),
        output_tokens: n("output_tokens"),
        cache_creation_input_tokens: n("cache_creation_input_tokens"),
        cache_read_input_tokens: n("cache_read_input_tokens"),
    };
    Streamed { reply, blocks }
}
