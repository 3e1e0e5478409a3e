//! `openai`: agents on any server of the OpenAI Chat Completions API — OpenAI itself, vLLM,
//! llama.cpp's `llama-server`, Ollama (`/v1`), OpenRouter — over the transport `messages` uses
//! (backend::transport: a shared HTTP/2 connection where the server offers h2, HTTP/1.1
//! otherwise; the system's TLS roots or `SSL_CERT_FILE`; the same retries and throttle).
//!
//! Configured as the OpenAI SDKs are: `OPENAI_BASE_URL` (with its `/v1`), `OPENAI_API_KEY`
//! (optional: local servers take none), `OPENAI_ORG_ID`, `OPENAI_PROJECT_ID`, or `[openai]`
//! in wfhost.toml. Answers stream (SSE `chat.completion.chunk`s up to `data: [DONE]`, usage in
//! the last chunk) unless `[openai] stream = false`. Agents with tools run the same loop as on
//! `messages` (tools::turn), with OpenAI function tools; schema agents answer through
//! `response_format: json_schema`, a forced `StructuredOutput` function, or JSON mode.

use super::transport::{Answer, Failure, Retries, Throttled, Transport};
use super::{AgentError, AgentReply, AgentRequest, Backend, Usage};
use crate::config::{self, Config};
use crate::tools::{Dialect, Specs, Tally, ToolName, ToolOutput, Toolbox, turn};
use anyhow::Result;
use hyper::body::Bytes;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";
/// Where the endpoint is set, for the hints of errors that name it.
const SETTINGS: &str = "`openai.base_url` (wfhost.toml) or `OPENAI_BASE_URL`";
const STRUCTURED: &str = "StructuredOutput";
/// Told to a schema agent that ended its turn without giving its answer.
const ANSWER_NOW: &str = "Give your final answer now, through the StructuredOutput function.";

/// How a schema agent gives its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Structured {
    /// `response_format: {type: "json_schema", json_schema: {name, schema, strict}}`.
    JsonSchema = 0,
    /// A `StructuredOutput` function whose parameters are the schema, forced.
    Tool = 1,
    /// `response_format: {type: "json_object"}`, the schema in the prompt.
    JsonObject = 2,
}

impl Structured {
    fn parse(s: Option<&str>) -> Structured {
        match s {
            Some("tool") => Structured::Tool,
            Some("json_object") => Structured::JsonObject,
            _ => Structured::JsonSchema,
        }
    }
    fn from_u8(n: u8) -> Structured {
        match n {
            1 => Structured::Tool,
            2 => Structured::JsonObject,
            _ => Structured::JsonSchema,
        }
    }
}

pub(crate) struct OpenAi {
    transport: Transport,
    base_url: String,
    chat_uri: http::Uri,
    headers: http::HeaderMap,
    model: String,
    max_tokens: Option<u32>,
    stream: bool,
    /// The way schema agents answer now: `json_schema` until the server refuses it, then
    /// `tool` for the rest of the run.
    structured: AtomicU8,
    strict: bool,
    timeout: Duration,
    attempt_timeout: Duration,
    max_attempts: u32,
    requests: AtomicU64,
    retries: AtomicU64,
    tools: Option<Arc<Toolbox>>,
}

impl OpenAi {
    /// `model`: `--backend openai:MODEL`'s, which wins over the configuration's.
    pub(crate) fn new(cfg: &Config, model: Option<&str>) -> Result<OpenAi> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let base_url = cfg
            .openai
            .base_url
            .clone()
            .or_else(|| env("OPENAI_BASE_URL"))
            .unwrap_or_else(|| DEFAULT_BASE_URL.to_string());
        let base_url = base_url.trim_end_matches('/').to_string();
        let chat_uri = format!("{base_url}/chat/completions")
            .parse::<http::Uri>()
            .map_err(|e| {
                crate::ExitError::usage(format!(
                    "the OpenAI-compatible API URL `{base_url}` is not a URL: {e}"
                ))
                .hint("set `openai.base_url` (or `OPENAI_BASE_URL`) to https://host[:port]/v1")
            })?;
        let model = model
            .map(str::to_owned)
            .or_else(|| cfg.openai.model.clone())
            .or_else(|| cfg.model.clone())
            .ok_or_else(|| {
                crate::ExitError::usage("the `openai` backend needs a model")
                    .hint("name it with `--backend openai:MODEL`, `[openai] model = \"…\"` or `model = \"…\"` in wfhost.toml (or per agent: `agent(p, {model})`)")
            })?;
        let headers = headers(cfg, &env)?;
        let timeout = config::duration(
            &cfg.openai.timeout,
            "openai.timeout",
            Duration::from_secs(600),
        )?;
        let attempt_timeout = config::duration(
            &cfg.openai.attempt_timeout,
            "openai.attempt_timeout",
            timeout,
        )?
        .min(timeout);
        tracing::debug!(url = %chat_uri, model, "openai backend");
        Ok(OpenAi {
            transport: Transport::new(&chat_uri)?,
            base_url,
            chat_uri,
            headers,
            model,
            max_tokens: cfg.openai.max_tokens,
            stream: cfg.openai.stream.unwrap_or(true),
            structured: AtomicU8::new(Structured::parse(cfg.openai.structured.as_deref()) as u8),
            strict: cfg.openai.strict.unwrap_or(false),
            timeout,
            attempt_timeout,
            max_attempts: cfg.openai.max_attempts.unwrap_or(6).max(1),
            requests: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            tools: Toolbox::from_config(&cfg.tools)?,
        })
    }

    fn structured(&self) -> Structured {
        Structured::from_u8(self.structured.load(Ordering::Relaxed))
    }

    /// The request of an agent's first turn, and its model.
    fn body(
        &self,
        req: &AgentRequest,
        feedback: Option<&str>,
        mode: Structured,
    ) -> (Request, String) {
        let def = super::agent_definition();
        let mut system = super::system_prompt(req, def.as_deref(), false);
        let model = req
            .model
            .clone()
            .or_else(|| def.and_then(|d| d.model.clone()))
            .unwrap_or_else(|| self.model.clone());
        let mut prompt = super::framed_task(&req.prompt);
        if let Some(f) = feedback {
            prompt.push_str(&format!(
                "\n\nYour previous answer did not match the required schema:\n{f}\nAnswer again, corrected."
            ));
        }
        let mut body = json!({"model": model});
        let mut tools = None;
        if let (Some(schema), Structured::JsonObject) = (&req.schema, mode) {
            system.push_str(&format!(
                "\n\nAnswer with one JSON object (nothing else) that matches this JSON Schema:\n{schema}"
            ));
        }
        body["messages"] = json!([
            {"role": "system", "content": system},
            {"role": "user", "content": prompt},
        ]);
        if let Some(n) = self.max_tokens {
            body["max_tokens"] = json!(n);
        }
        if self.stream {
            body["stream"] = json!(true);
            // The usage of a streamed answer comes in a last chunk, when asked for.
            body["stream_options"] = json!({"include_usage": true});
        }
        if let Some(schema) = &req.schema {
            match mode {
                Structured::JsonSchema => {
                    body["response_format"] = json!({"type": "json_schema", "json_schema": {
                        "name": "answer", "schema": schema, "strict": self.strict,
                    }});
                }
                Structured::JsonObject => body["response_format"] = json!({"type": "json_object"}),
                Structured::Tool => {
                    let mut specs = Specs::of(&[], Dialect::OpenAi);
                    specs.push(&structured_tool(schema));
                    tools = Some(specs);
                    body["tool_choice"] =
                        json!({"type": "function", "function": {"name": STRUCTURED}});
                }
            }
        }
        (Request { body, tools }, model)
    }

    /// One request and its answer (streamed or whole).
    async fn attempt(&self, body: &Bytes, model: &str) -> Result<Completion, Failure> {
        let throttled = Throttled::acquire(model).await;
        self.requests.fetch_add(1, Ordering::Relaxed);
        let response = self
            .transport
            .send(&self.chat_uri, &self.headers, body)
            .await
            .map_err(|e| super::transport::unsent(&e, &self.chat_uri.to_string(), SETTINGS))?;
        throttled.observe(&response);
        if !response.status().is_success() {
            return Err(throttled.refused(response).await);
        }
        if self.stream {
            read_stream(response.into_body()).await
        } else {
            read_whole(response.into_body()).await
        }
    }

    /// One model call with its retries, bounded by `openai.timeout`. A schema agent's call
    /// that the server refuses for its `response_format` is sent again with the
    /// `StructuredOutput` function instead (and so are the run's later calls).
    async fn call(
        &self,
        request: &mut Request,
        model: &str,
        schema: Option<&Value>,
    ) -> Result<Completion, AgentError> {
        loop {
            let bytes = request.bytes();
            let answer = Retries {
                max_attempts: self.max_attempts,
                timeout: self.timeout,
                attempt_timeout: self.attempt_timeout,
                settings: ("openai.timeout", "openai.attempt_timeout"),
                counter: &self.retries,
            }
            .run(|| self.attempt(&bytes, model))
            .await;
            match (answer, schema) {
                (Err(e), Some(schema))
                    if request.body.get("response_format").is_some()
                        && refuses_response_format(&e.message) =>
                {
                    self.structured
                        .store(Structured::Tool as u8, Ordering::Relaxed);
                    tracing::warn!(error = %e.message, "the server refuses response_format: schema agents answer through a function");
                    if let Some(b) = request.body.as_object_mut() {
                        b.remove("response_format");
                    }
                    // Forced only when it is the agent's one tool: an agent with tools of its
                    // own is asked for it once it is done with them (run_with_tools).
                    let tools = request.tools.get_or_insert_with(|| {
                        request.body["tool_choice"] =
                            json!({"type": "function", "function": {"name": STRUCTURED}});
                        Specs::of(&[], Dialect::OpenAi)
                    });
                    tools.push(&structured_tool(schema));
                }
                (answer, _) => return answer,
            }
        }
    }

    /// An agent without tools: one model call.
    async fn run_plain(
        &self,
        req: &AgentRequest,
        feedback: Option<&str>,
    ) -> Result<AgentReply, AgentError> {
        let (mut request, model) = self.body(req, feedback, self.structured());
        let c = self.call(&mut request, &model, req.schema.as_ref()).await?;
        super::spent(c.usage);
        Ok(c.reply(req.schema.is_some()))
    }

    /// A tool-using agent: model call → its tool calls, run by the host → their results (as
    /// `role: "tool"` messages) → the next call, until the model answers without tools (or
    /// gives its structured answer). Every turn that called tools is journaled, as on
    /// `messages` (tools::transcript).
    async fn run_with_tools(
        &self,
        req: &AgentRequest,
        feedback: Option<&str>,
        tools: &Arc<Toolbox>,
        offered: &[ToolName],
    ) -> Result<AgentReply, AgentError> {
        let mode = self.structured();
        let (mut request, model) = self.body(req, feedback, mode);
        let mut specs = Specs::of(offered, Dialect::OpenAi);
        if let (Some(schema), Structured::Tool) = (&req.schema, mode) {
            specs.push(&structured_tool(schema));
        }
        request.tools = Some(specs);
        request.body["tool_choice"] = json!("auto");
        let mut messages: Vec<Value> = match request.body.get_mut("messages").map(Value::take) {
            Some(Value::Array(m)) => m,
            _ => Vec::new(),
        };
        let transcript = super::call_context().transcript;
        let mut tally = Tally::default();
        for (assistant, results) in
            turn::replay(tools, offered, transcript.as_deref(), &mut tally).await
        {
            messages.push(assistant);
            messages.extend(results_messages(&results));
        }
        let mut usage = Usage::default();
        let mut forced = false;
        loop {
            tally.turn(&tools.rails).map_err(AgentError::permanent)?;
            // Lent to the body for this request and taken back: no copy of the conversation
            // per turn.
            request.body["messages"] = Value::Array(std::mem::take(&mut messages));
            if forced {
                request.body["tool_choice"] =
                    json!({"type": "function", "function": {"name": STRUCTURED}});
            }
            let c = self.call(&mut request, &model, req.schema.as_ref()).await;
            if let Some(Value::Array(m)) = request.body.get_mut("messages").map(Value::take) {
                messages = m;
            }
            let c = c?;
            usage += c.usage;
            super::spent(c.usage);
            let assistant = c.assistant();
            turn::turn_taken(tally.turns(), &assistant, c.usage);
            let calls: Vec<turn::Call> = turn::calls_of(&assistant)
                .into_iter()
                .filter(|call| call.name != STRUCTURED)
                .collect();
            // A schema agent answering through the function that ended its turn without it:
            // asked once more, with the function forced (as on `messages`).
            if calls.is_empty()
                && c.structured_call().is_none()
                && req.schema.is_some()
                && self.structured() == Structured::Tool
                && !forced
            {
                forced = true;
                messages.push(assistant.clone());
                messages.push(json!({"role": "user", "content": ANSWER_NOW}));
                continue;
            }
            if calls.is_empty() || c.structured_call().is_some() {
                return Ok(AgentReply {
                    usage,
                    ..c.reply(req.schema.is_some())
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
            messages.push(assistant.clone());
            messages.extend(results_messages(&results));
        }
    }
}

/// Every request's headers: JSON in (SSE out when streaming), the key when there is one, the
/// organization and project, and the configuration's own.
fn headers(cfg: &Config, env: &dyn Fn(&str) -> Option<String>) -> Result<http::HeaderMap> {
    let mut headers = http::HeaderMap::new();
    let value = |v: &str, what: &str| {
        http::HeaderValue::from_str(v).map_err(|_| {
            crate::ExitError::usage(format!("{what} is not a valid header value"))
                .hint("check that it was copied whole, without line breaks")
        })
    };
    if let Some(key) = env("OPENAI_API_KEY") {
        let mut v = value(&format!("Bearer {}", key.trim()), "`OPENAI_API_KEY`")?;
        v.set_sensitive(true);
        headers.insert(http::header::AUTHORIZATION, v);
    }
    if let Some(org) = cfg
        .openai
        .organization
        .clone()
        .or_else(|| env("OPENAI_ORG_ID"))
    {
        headers.insert("openai-organization", value(&org, "`openai.organization`")?);
    }
    if let Some(p) = cfg
        .openai
        .project
        .clone()
        .or_else(|| env("OPENAI_PROJECT_ID"))
    {
        headers.insert("openai-project", value(&p, "`openai.project`")?);
    }
    for (k, v) in &cfg.openai.headers {
        let name = http::HeaderName::from_bytes(k.as_bytes()).map_err(|_| {
            crate::ExitError::usage(format!("`openai.headers.{k}` is not a header name"))
        })?;
        let mut v = value(v, &format!("`openai.headers.{k}`"))?;
        v.set_sensitive(true);
        headers.insert(name, v);
    }
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(headers)
}

/// A request: its JSON body, and the tool definitions spliced into it as rendered once.
struct Request {
    body: Value,
    tools: Option<Specs>,
}

impl Request {
    fn bytes(&self) -> Bytes {
        match &self.tools {
            Some(tools) => tools.body_with(&self.body),
            None => Bytes::from(serde_json::to_vec(&self.body).unwrap_or_default()),
        }
    }
}

/// The function a schema agent answers through (`structured = "tool"`, or after a refusal).
fn structured_tool(schema: &Value) -> Value {
    json!({"type": "function", "function": {
        "name": STRUCTURED,
        "description": "Return your final answer. Its arguments are the answer, matching the schema exactly.",
        "parameters": schema,
    }})
}

/// Whether a server's error says it does not take `response_format` (or its `json_schema`).
fn refuses_response_format(message: &str) -> bool {
    let m = message.to_lowercase();
    (m.contains("response_format") || m.contains("json_schema") || m.contains("structured"))
        && !m.contains("gave up after")
}

/// A turn's tool results, one `role: "tool"` message per call.
fn results_messages(results: &[(String, ToolOutput)]) -> Vec<Value> {
    results
        .iter()
        .map(|(id, r)| {
            let content = if r.is_error {
                format!("Error: {}", r.content)
            } else {
                r.content.clone()
            };
            json!({"role": "tool", "tool_call_id": id, "content": content})
        })
        .collect()
}

/// One model call's answer: its text, its tool calls, what it used.
#[derive(Debug, Default)]
struct Completion {
    text: String,
    /// `(id, name, arguments)`, arguments as the JSON text the model wrote.
    calls: Vec<(String, String, String)>,
    usage: Usage,
}

impl Completion {
    /// The assistant message as the next request carries it back.
    fn assistant(&self) -> Value {
        let mut m = json!({"role": "assistant", "content": self.text});
        if !self.calls.is_empty() {
            m["tool_calls"] = self
                .calls
                .iter()
                .map(|(id, name, args)| {
                    json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}})
                })
                .collect();
        }
        m
    }

    /// The arguments of a `StructuredOutput` call, parsed.
    fn structured_call(&self) -> Option<Value> {
        self.calls
            .iter()
            .find(|(_, name, _)| name == STRUCTURED)
            .and_then(|(_, _, args)| serde_json::from_str(args).ok())
    }

    /// The reply: for a schema agent, the structured answer (a `StructuredOutput` call's
    /// arguments, else the text as JSON, fenced or not); the scheduler validates it.
    fn reply(self, schema: bool) -> AgentReply {
        let structured = schema
            .then(|| self.structured_call().or_else(|| json_in(&self.text)))
            .flatten();
        AgentReply {
            text: self.text,
            structured,
            usage: self.usage,
            cost_usd: None,
            note: None,
        }
    }
}

/// The JSON object a text holds: the whole text, or a fenced block of it.
fn json_in(text: &str) -> Option<Value> {
    let t = text.trim();
    let t = t
        .strip_prefix("```json")
        .or_else(|| t.strip_prefix("```"))
        .and_then(|r| r.strip_suffix("```"))
        .unwrap_or(t);
    serde_json::from_str::<Value>(t.trim())
        .ok()
        .filter(Value::is_object)
}

/// A `usage` object → tokens: cached prompt tokens (`prompt_tokens_details.cached_tokens`, when
/// the server reports them) are cache reads, the rest of the prompt is input.
fn usage_of(u: &Value) -> Usage {
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    let prompt = n(&u["prompt_tokens"]);
    let cached = n(&u["prompt_tokens_details"]["cached_tokens"]).min(prompt);
    Usage {
        input_tokens: prompt - cached,
        output_tokens: n(&u["completion_tokens"]),
        cache_creation_input_tokens: 0,
        cache_read_input_tokens: cached,
    }
}

fn retry(message: String) -> Failure {
    Failure::Retry {
        error: super::transport::transient(message),
        after: None,
    }
}

/// The `error` object of an answer (a stream's `data: {"error": …}`, or a 200 with one).
fn error_in(e: &Value) -> Option<Failure> {
    let message = e["message"].as_str().unwrap_or("error").to_string();
    let code = e["code"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| e["code"].as_u64().map(|c| c.to_string()))
        .unwrap_or_default();
    let transient = matches!(
        code.as_str(),
        "" | "server_error" | "rate_limit_exceeded" | "500" | "502" | "503" | "429"
    ) || e["type"] == "server_error";
    let error = AgentError {
        transient,
        ..AgentError::permanent(format!("API Error: {message}"))
    };
    Some(if transient {
        Failure::Retry { error, after: None }
    } else {
        Failure::Fatal(error)
    })
}

/// A whole (non-streamed) answer.
async fn read_whole(body: Answer) -> Result<Completion, Failure> {
    let bytes = body.collect().await;
    super::progress();
    let v: Value =
        serde_json::from_slice(&bytes).map_err(|e| retry(format!("malformed answer ({e})")))?;
    if let Some(f) = v.get("error").and_then(error_in) {
        return Err(f);
    }
    let message = &v["choices"][0]["message"];
    if message.is_null() {
        return Err(retry("an answer without choices".into()));
    }
    let text = message["content"].as_str().unwrap_or_default().to_string();
    super::output(&text);
    let calls = message["tool_calls"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            (
                c["id"].as_str().unwrap_or_default().to_string(),
                c["function"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                c["function"]["arguments"]
                    .as_str()
                    .unwrap_or("{}")
                    .to_string(),
            )
        })
        .collect();
    Ok(Completion {
        text,
        calls,
        usage: usage_of(&v["usage"]),
    })
}

/// A streamed answer: `chat.completion.chunk`s, their deltas (text, and tool calls by index,
/// their arguments in pieces), the usage in the last chunk, up to `data: [DONE]`.
/// One `chat.completion.chunk` of a stream, parsed borrowing what it can: a fan-out reads
/// thousands of them, and building a `Value` per chunk was a visible share of its CPU.
#[derive(serde::Deserialize)]
struct Chunk<'a> {
    // `Option`s: some servers send `null` for what they leave out.
    #[serde(borrow)]
    choices: Option<Vec<ChunkChoice<'a>>>,
    usage: Option<Value>,
    error: Option<Value>,
}

#[derive(serde::Deserialize)]
struct ChunkChoice<'a> {
    #[serde(borrow)]
    delta: Option<ChunkDelta<'a>>,
}

#[derive(serde::Deserialize)]
struct ChunkDelta<'a> {
    #[serde(borrow)]
    content: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    tool_calls: Option<Vec<CallDelta<'a>>>,
}

#[derive(serde::Deserialize)]
struct CallDelta<'a> {
    index: Option<u64>,
    #[serde(borrow)]
    id: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    function: Option<FunctionDelta<'a>>,
}

#[derive(serde::Deserialize)]
struct FunctionDelta<'a> {
    #[serde(borrow)]
    name: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    arguments: Option<std::borrow::Cow<'a, str>>,
}

async fn read_stream(mut body: Answer) -> Result<Completion, Failure> {
    let mut events = super::sse::Parser::default();
    let mut c = Completion::default();
    let mut done = false;
    loop {
        let Some(event) = events.next_event() else {
            let Some(chunk) = body.chunk().await else {
                break;
            };
            let chunk = chunk.map_err(|e| retry(format!("the answer stream broke: {e}")))?;
            events.push(&chunk);
            continue;
        };
        super::progress();
        if event.data.trim() == "[DONE]" {
            done = true;
            break;
        }
        let chunk: Chunk<'_> = serde_json::from_str(&event.data)
            .map_err(|e| retry(format!("malformed chunk in the answer stream ({e})")))?;
        if let Some(f) = chunk.error.as_ref().and_then(error_in) {
            return Err(f);
        }
        if let Some(u) = chunk.usage.filter(Value::is_object) {
            c.usage = usage_of(&u);
        }
        let Some(delta) = chunk
            .choices
            .into_iter()
            .flatten()
            .next()
            .and_then(|c| c.delta)
        else {
            continue;
        };
        if let Some(t) = delta.content.as_deref() {
            super::output(t);
            c.text.push_str(t);
        }
        for call in delta.tool_calls.into_iter().flatten() {
            let i = call
                .index
                .and_then(|i| usize::try_from(i).ok())
                .unwrap_or(c.calls.len());
            if c.calls.len() <= i {
                c.calls.resize_with(i + 1, Default::default);
            }
            let slot = &mut c.calls[i];
            if let Some(id) = call.id {
                slot.0 = id.into_owned();
            }
            if let Some(f) = call.function {
                slot.1.push_str(f.name.as_deref().unwrap_or(""));
                slot.2.push_str(f.arguments.as_deref().unwrap_or(""));
            }
        }
    }
    if !done {
        return Err(retry(
            "the answer stream ended before `data: [DONE]`".into(),
        ));
    }
    Ok(c)
}

#[async_trait::async_trait]
impl Backend for OpenAi {
    fn name(&self) -> &str {
        "openai"
    }

    /// `openai:MODEL`: a resume asks the same model, whatever the configuration says then.
    fn spec(&self) -> String {
        format!("openai:{}", self.model)
    }

    fn identity(&self) -> String {
        let base = format!("openai:{}:{}", self.base_url, self.model);
        match &self.tools {
            Some(t) => format!("{base}:{}", t.identity()),
            None => base,
        }
    }

    fn default_model(&self) -> Option<String> {
        Some(self.model.clone())
    }

    async fn run(
        &self,
        req: &AgentRequest,
        feedback: Option<&str>,
    ) -> Result<AgentReply, AgentError> {
        if let Some((tools, offered)) = Toolbox::for_call(self.tools.as_ref(), req)? {
            return self.run_with_tools(req, feedback, &tools, &offered).await;
        }
        self.run_plain(req, feedback).await
    }

    fn stats(&self) -> Option<Value> {
        Some(json!({
            "requests": self.requests.load(Ordering::Relaxed),
            "retries": self.retries.load(Ordering::Relaxed),
            "base_url": self.base_url,
            "structured": match self.structured() {
                Structured::JsonSchema => "json_schema",
                Structured::Tool => "tool",
                Structured::JsonObject => "json_object",
            },
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_splits_cached_prompt_tokens() {
        let u = usage_of(&json!({"prompt_tokens": 100, "completion_tokens": 7,
            "prompt_tokens_details": {"cached_tokens": 60}}));
        assert_eq!(
            (u.input_tokens, u.cache_read_input_tokens, u.output_tokens),
            (40, 60, 7)
        );
    }

    #[test]
    fn json_answers_fenced_or_not() {
        assert_eq!(json_in("{\"a\":1}"), Some(json!({"a": 1})));
        assert_eq!(json_in("```json\n{\"a\":1}\n```"), Some(json!({"a": 1})));
        assert_eq!(json_in("no"), None);
    }
}
