//! The fake API's OpenAI-compatible endpoint, `POST /v1/chat/completions`, as OpenAI, vLLM,
//! llama.cpp and Ollama answer it: a whole `chat.completion`, or (`stream: true`) SSE
//! `chat.completion.chunk`s up to `data: [DONE]`, the usage in a last chunk when
//! `stream_options.include_usage` asks for it. It answers like the mock model (`R(` + 40
//! characters + `)`), fills schemas (`response_format: json_schema`, a forced
//! `StructuredOutput` function, or JSON mode with the schema in the system prompt), plays
//! `[play:NAME]` agents' tool calls (all of a turn's calls in one message: parallel tool calls),
//! and injects faults into a prompt's first N attempts: `[429xN]` (`retry-after: 1`),
//! `[500xN]`, `[dropxN]` (the stream breaks off before `[DONE]`); `[400]` always fails.

use super::fake_api::{Seen, tag_count, unframe};
use http_body_util::Full;
use hyper::Response;
use hyper::body::Bytes;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Instant;

fn error(status: u16, message: &str, retry_after: Option<&str>) -> Response<Full<Bytes>> {
    let mut r = Response::builder()
        .status(status)
        .header("content-type", "application/json");
    if let Some(ra) = retry_after {
        r = r.header("retry-after", ra);
    }
    r.body(Full::new(Bytes::from(
        json!({"error": {"message": message, "type": "invalid_request_error", "code": null}})
            .to_string(),
    )))
    .unwrap()
}

/// The benchmark's answer to a plain question (a system and a user message, no schema, no
/// fault tag, no scripted play): the same stream `handle` writes, from a borrowing parse, so
/// that this server's share of the machine's two cores stays small beside the wfhost being
/// measured. `None`: anything else, which `handle` answers.
pub(crate) fn answer_lean(bytes: &[u8]) -> Option<Response<Full<Bytes>>> {
    use serde::de::IgnoredAny;
    use std::borrow::Cow;
    use std::fmt::Write as _;
    #[derive(serde::Deserialize)]
    struct Request<'a> {
        #[serde(borrow)]
        model: Cow<'a, str>,
        #[serde(borrow)]
        messages: Vec<Message<'a>>,
        #[serde(default)]
        stream: bool,
        response_format: Option<IgnoredAny>,
        tool_choice: Option<Value>,
    }
    #[derive(serde::Deserialize)]
    struct Message<'a> {
        #[serde(borrow)]
        role: Cow<'a, str>,
        #[serde(borrow)]
        content: Cow<'a, str>,
    }
    let r: Request<'_> = serde_json::from_slice(bytes).ok()?;
    let [system, user] = &r.messages[..] else {
        return None;
    };
    if system.role != "system"
        || user.role != "user"
        || !r.stream
        || r.response_format.is_some()
        || r.tool_choice.as_ref().is_some_and(|c| c != "auto")
    {
        return None;
    }
    let prompt = unframe(&user.content);
    if prompt.contains('[') {
        return None;
    }
    let text = format!("R({})", prompt.chars().take(40).collect::<String>());
    let usage = format!(
        "{{\"prompt_tokens\":{},\"completion_tokens\":{}}}",
        (prompt.chars().count() as u64).div_ceil(4),
        (text.chars().count() as u64).div_ceil(4) + 1
    );
    let (model, text) = (
        serde_json::to_string(&r.model).ok()?,
        serde_json::to_string(&text).ok()?,
    );
    let head =
        format!("{{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"model\":{model},");
    let mut sse = String::with_capacity(1024);
    let _ = write!(
        sse,
        "data: {head}\"choices\":[{{\"index\":0,\"delta\":{{\"role\":\"assistant\",\"content\":\"\"}},\"finish_reason\":null}}]}}\n\n\
         data: {head}\"choices\":[{{\"index\":0,\"delta\":{{\"content\":{text}}},\"finish_reason\":null}}]}}\n\n\
         data: {head}\"choices\":[{{\"index\":0,\"delta\":{{}},\"finish_reason\":\"stop\"}}]}}\n\n\
         data: {head}\"choices\":[],\"usage\":{usage}}}\n\n\
         data: [DONE]\n\n"
    );
    Some(
        Response::builder()
            .header("content-type", "text/event-stream")
            .body(Full::new(Bytes::from(sse)))
            .unwrap(),
    )
}

/// What the model says this turn: text, and tool calls `(id, name, arguments JSON)`.
struct Said {
    text: String,
    calls: Vec<(String, String, String)>,
}

pub(crate) fn handle(body: Value, seen: &Arc<Mutex<Seen>>) -> Response<Full<Bytes>> {
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let first_user = messages
        .iter()
        .find(|m| m["role"] == "user")
        .and_then(|m| m["content"].as_str())
        .map(unframe)
        .unwrap_or_default();
    let after_tools = messages.last().is_some_and(|m| m["role"] == "tool");
    let prompt = if after_tools {
        "(tool result)".to_string()
    } else {
        first_user.clone()
    };
    let attempt = {
        let mut s = seen.lock().unwrap();
        // A benchmark remembers nothing (`forget_bodies`): this server's share of the machine
        // stays small beside the wfhost being measured.
        if s.forget_bodies {
            1
        } else {
            s.bodies.push(body.clone());
            let a = s.attempts.entry(prompt.clone()).or_default();
            a.push(Instant::now());
            u32::try_from(a.len()).unwrap()
        }
    };
    let failing = |tag: &str| tag_count(&prompt, tag).is_some_and(|n| attempt <= n);
    if failing("429") {
        return error(429, "Rate limit reached for requests", Some("1"));
    }
    if failing("500") {
        return error(
            500,
            "The server had an error while processing your request",
            None,
        );
    }
    if prompt.contains("[400]") {
        return error(400, "forced failure", None);
    }
    let format = &body["response_format"];
    if format["type"] == "json_schema" && seen.lock().unwrap().refuse_json_schema {
        return error(
            400,
            "response_format of type json_schema is not supported by this server",
            None,
        );
    }
    let said = play(&body, &messages, &first_user, seen).unwrap_or_else(|| answer(&body, &prompt));
    let stream = body["stream"] == true;
    let usage = json!({
        "prompt_tokens": (prompt.chars().count() as u64).div_ceil(4),
        "completion_tokens": (said.text.chars().count() as u64).div_ceil(4) + 1,
    });
    if !(stream && failing("drop")) {
        let mut s = seen.lock().unwrap();
        if !s.forget_bodies {
            *s.answered.entry(prompt.clone()).or_default() += 1;
        }
    }
    let calls: Vec<Value> = said
        .calls
        .iter()
        .enumerate()
        .map(|(i, (id, name, args))| {
            json!({"index": i, "id": id, "type": "function", "function": {"name": name, "arguments": args}})
        })
        .collect();
    let finish = if calls.is_empty() {
        "stop"
    } else {
        "tool_calls"
    };
    if !stream {
        let mut message = json!({"role": "assistant", "content": said.text});
        if !calls.is_empty() {
            message["tool_calls"] = Value::Array(calls);
        }
        let whole = json!({"id": "chatcmpl-1", "object": "chat.completion", "model": body["model"],
            "choices": [{"index": 0, "message": message, "finish_reason": finish}], "usage": usage});
        return Response::builder()
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(whole.to_string())))
            .unwrap();
    }
    streamed(&body, &said, &usage, finish, failing("drop"))
}

/// A streamed answer: its chunks, up to `[DONE]` unless `broken` (the connection breaks off).
fn streamed(
    body: &Value,
    said: &Said,
    usage: &Value,
    finish: &str,
    broken: bool,
) -> Response<Full<Bytes>> {
    let chunk = |delta: Value, finish: Option<&str>| {
        json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": body["model"],
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let mut events = vec![chunk(json!({"role": "assistant", "content": ""}), None)];
    // The text in two pieces, and each call's arguments in two: as servers stream them.
    let cut = said
        .text
        .char_indices()
        .nth(said.text.chars().count() / 2)
        .map_or(0, |(i, _)| i);
    for piece in [&said.text[..cut], &said.text[cut..]] {
        if !piece.is_empty() {
            events.push(chunk(json!({"content": piece}), None));
        }
    }
    for (i, (id, name, args)) in said.calls.iter().enumerate() {
        let half = args.len() / 2;
        events.push(chunk(
            json!({"tool_calls": [{"index": i, "id": id, "type": "function", "function": {"name": name, "arguments": &args[..half]}}]}),
            None,
        ));
        events.push(chunk(
            json!({"tool_calls": [{"index": i, "function": {"arguments": &args[half..]}}]}),
            None,
        ));
    }
    let mut text: String = events.iter().map(|e| format!("data: {e}\n\n")).collect();
    if broken {
        // The connection breaks off mid-answer: no finish, no [DONE].
        return Response::builder()
            .header("content-type", "text/event-stream")
            .body(Full::new(Bytes::from(text)))
            .unwrap();
    }
    text.push_str(&format!("data: {}\n\n", chunk(json!({}), Some(finish))));
    if body["stream_options"]["include_usage"] == true {
        let last = json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": body["model"],
            "choices": [], "usage": usage});
        text.push_str(&format!("data: {last}\n\n"));
    }
    text.push_str("data: [DONE]\n\n");
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Full::new(Bytes::from(text)))
        .unwrap()
}

/// The mock model's answer: `R(head)`, or an object filling the schema the request asks for.
fn answer(body: &Value, prompt: &str) -> Said {
    let key: String = prompt.chars().take(20).collect();
    let fill = |schema: &Value| wfhost::testing::fill(schema, &key).to_string();
    let forced = body["tool_choice"]["function"]["name"] == "StructuredOutput";
    if forced
        && let Some(tool) = body["tools"].as_array().and_then(|t| {
            t.iter()
                .find(|t| t["function"]["name"] == "StructuredOutput")
        })
    {
        return Said {
            text: String::new(),
            calls: vec![(
                "call_so".into(),
                "StructuredOutput".into(),
                fill(&tool["function"]["parameters"]),
            )],
        };
    }
    let format = &body["response_format"];
    let text = match format["type"].as_str() {
        Some("json_schema") => fill(&format["json_schema"]["schema"]),
        Some("json_object") => {
            // JSON mode: the schema is in the system prompt, after its last line break.
            let system = body["messages"][0]["content"].as_str().unwrap_or_default();
            let schema = system
                .rsplit_once("JSON Schema:\n")
                .and_then(|(_, s)| serde_json::from_str::<Value>(s.trim()).ok())
                .unwrap_or(json!({"type": "object"}));
            format!("```json\n{}\n```", fill(&schema))
        }
        _ => format!("R({})", prompt.chars().take(40).collect::<String>()),
    };
    Said {
        text,
        calls: Vec::new(),
    }
}

/// A scripted tool-using agent (`Seen::plays`), as on the Messages endpoint: its turn's calls,
/// or `DONE` and every tool result it was handed (`{content, is_error}`; an error result is
/// the text our backend prefixes with `Error: `).
fn play(body: &Value, messages: &[Value], task: &str, seen: &Arc<Mutex<Seen>>) -> Option<Said> {
    let name = task.split("[play:").nth(1)?.split(']').next()?.to_string();
    let turn = messages.iter().filter(|m| m["role"] == "assistant").count();
    let calls = {
        let mut s = seen.lock().unwrap();
        s.play_turns.push((name.clone(), turn));
        let offered = body["tools"]
            .as_array()
            .map(|t| {
                t.iter()
                    .filter_map(|t| t["function"]["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        s.play_tools.insert(name.clone(), offered);
        s.plays.get(&name)?.get(turn).cloned()
    };
    Some(match calls {
        Some(calls) => Said {
            text: String::new(),
            calls: calls
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    (
                        format!("call_{name}_{turn}_{i}"),
                        c["name"].as_str().unwrap_or_default().to_string(),
                        c["input"].to_string(),
                    )
                })
                .collect(),
        },
        None => {
            let results: Vec<Value> = messages
                .iter()
                .filter(|m| m["role"] == "tool")
                .map(|m| {
                    let content = m["content"].as_str().unwrap_or_default();
                    match content.strip_prefix("Error: ") {
                        Some(e) => json!({"content": e, "is_error": true}),
                        None => json!({"content": content, "is_error": false}),
                    }
                })
                .collect();
            Said {
                text: format!("DONE {}", Value::Array(results)),
                calls: Vec::new(),
            }
        }
    })
}
