//! The fake Messages API's Message Batches endpoints, as the API documents them: create
//! (`POST /v1/messages/batches`), retrieve (`GET …/{id}`), results (`GET …/{id}/results`, JSON
//! lines) and cancel (`POST …/{id}/cancel`). A batch is `in_progress` for `delay` after it is
//! created (or while `hold` is set), then `ended`; a cancelled one ends at once with its
//! requests `canceled`. Requests are answered as the live endpoint answers them (the mock
//! model), and tags in a prompt make a request end otherwise in its first N batches:
//! `[failxN]` (errored, `api_error`), `[expirexN]` (expired); `[400]` errors for good
//! (`invalid_request_error`).

use super::fake_api::{Seen, tag_count, unframe};
use http_body_util::Full;
use hyper::Response;
use hyper::body::Bytes;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The batches a fake server has been sent.
#[derive(Default)]
pub(crate) struct Batches {
    pub list: Vec<Batch>,
    /// A batch stays `in_progress` this long after it is created.
    pub delay: Duration,
    /// While set, every batch stays `in_progress` (a test kills or stops the run meanwhile).
    pub hold: bool,
    /// `GET …/{id}` calls, by batch id.
    pub polls: HashMap<String, u32>,
    /// `GET …/{id}/results` calls, by batch id.
    pub results_read: HashMap<String, u32>,
    /// Batches of which a request of this prompt was part, by prompt (the tags' attempts).
    pub sent: HashMap<String, u32>,
}

impl Batches {
    /// Requests answered (and billed), by prompt: the succeeded requests of ended batches.
    pub(crate) fn answered(&self) -> HashMap<String, u32> {
        let mut out = HashMap::new();
        for b in self.list.iter().filter(|b| b.ended(self)) {
            for ((_, prompt, _), r) in b.requests.iter().zip(b.results_now()) {
                if r["result"]["type"] == "succeeded" {
                    *out.entry(prompt.clone()).or_default() += 1;
                }
            }
        }
        out
    }
}

pub(crate) struct Batch {
    pub id: String,
    pub created: Instant,
    /// (custom_id, prompt, params) of each request.
    pub requests: Vec<(String, String, Value)>,
    pub canceled: bool,
    /// Each request's result line, fixed when the batch is created (its attempt of the tags).
    results: Vec<Value>,
}

impl Batch {
    fn ended(&self, b: &Batches) -> bool {
        self.canceled || (!b.hold && self.created.elapsed() >= b.delay)
    }

    fn object(&self, b: &Batches, base: &str) -> Value {
        let ended = self.ended(b);
        let mut counts =
            json!({"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0});
        if ended {
            for r in self.results_now() {
                let kind = r["result"]["type"]
                    .as_str()
                    .unwrap_or("errored")
                    .to_string();
                counts[kind] = (counts[&kind].as_u64().unwrap_or(0) + 1).into();
            }
        } else {
            counts["processing"] = self.requests.len().into();
        }
        json!({
            "id": self.id,
            "type": "message_batch",
            "processing_status": if ended { "ended" } else if self.canceled { "canceling" } else { "in_progress" },
            "request_counts": counts,
            "created_at": "2026-12-05T00:00:00Z",
            "expires_at": "2026-12-06T00:00:00Z",
            "ended_at": if ended { json!("2026-12-05T00:01:00Z") } else { Value::Null },
            "cancel_initiated_at": if self.canceled { json!("2026-12-05T00:00:30Z") } else { Value::Null },
            "archived_at": null,
            "results_url": if ended { json!(format!("{base}/v1/messages/batches/{}/results", self.id)) } else { Value::Null },
        })
    }

    /// The result lines as they stand (a cancelled batch's requests are `canceled`).
    fn results_now(&self) -> Vec<Value> {
        self.results
            .iter()
            .map(|r| {
                if self.canceled {
                    json!({"custom_id": r["custom_id"], "result": {"type": "canceled"}})
                } else {
                    r.clone()
                }
            })
            .collect()
    }
}

fn json_response(status: u16, v: &Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(v.to_string())))
        .unwrap()
}

fn error(status: u16, kind: &str, message: &str) -> Response<Full<Bytes>> {
    json_response(
        status,
        &json!({"type": "error", "error": {"type": kind, "message": message}}),
    )
}

/// The prompt of a Messages request: its last user turn's text, unframed.
fn prompt_of(params: &Value) -> String {
    let last_user = params["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
        .cloned()
        .unwrap_or_default();
    let text = match &last_user["content"] {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect(),
        _ => String::new(),
    };
    unframe(&text)
}

/// What the mock model answers a request: the live endpoint's answer (`R(` + the prompt's
/// first 40 characters + `)`, or the schema filled through `StructuredOutput`), as a message.
fn message(params: &Value, prompt: &str) -> Value {
    let input_tokens = (prompt.chars().count() as u64).div_ceil(4);
    let structured = params["tools"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["name"] == "StructuredOutput"))
        .map(|t| t["input_schema"].clone());
    let (block, answer) = match structured {
        Some(schema) => {
            let v = wfhost::testing::fill(&schema, &prompt.chars().take(20).collect::<String>());
            let s = v.to_string();
            (
                json!({"type": "tool_use", "id": "toolu_1", "name": "StructuredOutput", "input": v}),
                s,
            )
        }
        None => {
            let text = format!("R({})", prompt.chars().take(40).collect::<String>());
            (json!({"type": "text", "text": text}), text)
        }
    };
    json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": params["model"],
        "content": [block], "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": input_tokens, "output_tokens": (answer.chars().count() as u64).div_ceil(4),
                  "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0},
    })
}

/// Serves `/v1/messages/batches…`; `None` for any other path.
pub(crate) fn handle(
    method: &hyper::Method,
    path: &str,
    body: &[u8],
    seen: &std::sync::Mutex<Seen>,
) -> Option<Response<Full<Bytes>>> {
    let rest = path.strip_prefix("/v1/messages/batches")?;
    let mut s = seen.lock().unwrap();
    let base = s.url.clone();
    let parts: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
    Some(match (method.as_str(), parts.as_slice()) {
        ("POST", [""]) => create(body, &mut s, &base),
        ("GET", [id]) => {
            *s.batches.polls.entry((*id).to_string()).or_default() += 1;
            match s.batches.list.iter().find(|b| b.id == *id) {
                Some(b) => json_response(200, &b.object(&s.batches, &base)),
                None => error(
                    404,
                    "not_found_error",
                    &format!("message batch `{id}` not found"),
                ),
            }
        }
        ("GET", [id, "results"]) => {
            *s.batches.results_read.entry((*id).to_string()).or_default() += 1;
            match s.batches.list.iter().find(|b| b.id == *id) {
                Some(b) if b.ended(&s.batches) => {
                    let lines: String = b.results_now().iter().map(|r| format!("{r}\n")).collect();
                    Response::builder()
                        .header("content-type", "application/binary")
                        .body(Full::new(Bytes::from(lines)))
                        .unwrap()
                }
                Some(_) => error(
                    400,
                    "invalid_request_error",
                    "the batch has not ended: no results yet",
                ),
                None => error(
                    404,
                    "not_found_error",
                    &format!("message batch `{id}` not found"),
                ),
            }
        }
        ("POST", [id, "cancel"]) => {
            let batches = &mut s.batches;
            match batches.list.iter().position(|b| b.id == *id) {
                Some(i) => {
                    if !batches.list[i].ended(batches) {
                        batches.list[i].canceled = true;
                    }
                    let object = batches.list[i].object(batches, &base);
                    json_response(200, &object)
                }
                None => error(
                    404,
                    "not_found_error",
                    &format!("message batch `{id}` not found"),
                ),
            }
        }
        _ => error(404, "not_found_error", &format!("{method} {path}")),
    })
}

/// `POST /v1/messages/batches`: each request checked as the API checks it, its result fixed.
fn create(body: &[u8], s: &mut Seen, base: &str) -> Response<Full<Bytes>> {
    let v: Value = serde_json::from_slice(body).unwrap_or_default();
    let Some(requests) = v["requests"].as_array() else {
        return error(400, "invalid_request_error", "requests: Field required");
    };
    let mut batch = Batch {
        id: format!("msgbatch_fake{:04}", s.batches.list.len() + 1),
        created: Instant::now(),
        requests: Vec::new(),
        canceled: false,
        results: Vec::new(),
    };
    for r in requests {
        let custom_id = r["custom_id"].as_str().unwrap_or_default().to_string();
        let valid = !custom_id.is_empty()
            && custom_id.len() <= 64
            && custom_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return error(
                400,
                "invalid_request_error",
                &format!(
                    "requests.custom_id: `{custom_id}` does not match ^[a-zA-Z0-9_-]{{1,64}}$"
                ),
            );
        }
        if batch.requests.iter().any(|(c, _, _)| *c == custom_id) {
            return error(
                400,
                "invalid_request_error",
                &format!("duplicate custom_id `{custom_id}`"),
            );
        }
        if r["params"]["stream"] == true {
            return error(
                400,
                "invalid_request_error",
                "requests.params.stream: streaming is not supported in batches",
            );
        }
        let params = r["params"].clone();
        let prompt = prompt_of(&params);
        let attempt = {
            let n = s.batches.sent.entry(prompt.clone()).or_default();
            *n += 1;
            *n
        };
        let failing = |tag: &str| tag_count(&prompt, tag).is_some_and(|n| attempt <= n);
        let result = if prompt.contains("[400]") {
            json!({"type": "errored", "error": {"type": "error", "error": {"type": "invalid_request_error", "message": "forced failure"}}})
        } else if failing("fail") {
            json!({"type": "errored", "error": {"type": "error", "error": {"type": "api_error", "message": "Internal server error"}}})
        } else if failing("expire") {
            json!({"type": "expired"})
        } else {
            json!({"type": "succeeded", "message": message(&params, &prompt)})
        };
        batch
            .results
            .push(json!({"custom_id": custom_id, "result": result}));
        batch.requests.push((custom_id, prompt, params));
    }
    let object = batch.object(&s.batches, base);
    s.batches.list.push(batch);
    json_response(200, &object)
}
