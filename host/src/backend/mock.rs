//! `--backend mock`: the deterministic model of ../shared/conformance/README.md, so a script
//! gives the same result here as on the reference runtime. Also the offline default for demos.
//!
//! - a plain agent answers `R(` + the first 40 characters of its prompt + `)`;
//! - `[delay=MS]` answers after MS milliseconds (the first such tag counts);
//! - `[fail]` fails like an HTTP 400 from the API;
//! - `[transient]` fails like an HTTP 529 (overloaded): a temporary failure (wfhost's addition,
//!   so the exit code for provider trouble can be tested);
//! - with a schema, `[json={...}]` answers that object, otherwise an object is built from the
//!   schema with seed = the first 20 characters of the prompt.
//!
//! Usage is deterministic: a token per 4 characters (rounded up) of prompt and of answer.
//!
//! `WFHOST_MOCK_FAIL=a,b` makes prompts containing `a` or `b` fail as `[fail]` does: a flaky
//! provider for demos and tests of resume. It is not part of the backend's identity, so the
//! same calls keep their journal keys with and without it.

use super::{AgentError, AgentReply, AgentRequest, Backend, Usage};
use serde_json::{Map, Value, json};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[derive(Default)]
pub(crate) struct Mock {
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
    calls: AtomicU64,
    /// `WFHOST_MOCK_FAIL`, read at the first call (not once per call: the environment's lock).
    forced: std::sync::OnceLock<Vec<String>>,
}

fn head(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

fn tokens(s: &str) -> u64 {
    (s.chars().count() as u64).div_ceil(4).max(1)
}

/// The first `[delay=MS]` tag of a prompt.
pub(crate) fn delay(prompt: &str) -> Option<Duration> {
    let rest = &prompt[prompt.find("[delay=")? + "[delay=".len()..];
    let digits = &rest[..rest.find(']')?];
    digits.trim().parse().ok().map(Duration::from_millis)
}

/// The object of a `[json={...}]` tag: the first JSON value after `[json=`.
fn json_tag(prompt: &str) -> Option<Value> {
    let rest = &prompt[prompt.find("[json=")? + "[json=".len()..];
    serde_json::Deserializer::from_str(rest)
        .into_iter::<Value>()
        .next()?
        .ok()
}

/// Builds a value matching `schema` from `seed` (the conformance model's rules).
pub fn fill(schema: &Value, seed: &str) -> Value {
    if let Some(first) = schema
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    if let Some(c) = schema.get("const") {
        return c.clone();
    }
    let ty = match schema.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("null"),
        _ if schema.get("properties").is_some() => "object",
        _ if schema.get("items").is_some() => "array",
        _ => "string",
    };
    match ty {
        "object" => {
            let mut out = Map::new();
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (key, sub) in props {
                    out.insert(key.clone(), fill(sub, &format!("{seed}.{key}")));
                }
            }
            Value::Object(out)
        }
        "array" => json!([fill(
            schema.get("items").unwrap_or(&json!({})),
            &format!("{seed}[0]")
        )]),
        "integer" | "number" => json!(seed.chars().count()),
        "boolean" => json!(true),
        "null" => Value::Null,
        _ => json!(format!("S({seed})")),
    }
}

struct InFlight<'a>(&'a Mock);

impl<'a> InFlight<'a> {
    fn enter(m: &'a Mock) -> Self {
        let now = m.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        m.max_in_flight.fetch_max(now, Ordering::SeqCst);
        m.calls.fetch_add(1, Ordering::SeqCst);
        InFlight(m)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

#[async_trait::async_trait]
impl Backend for Mock {
    fn name(&self) -> &str {
        "mock"
    }

    async fn run(
        &self,
        req: &AgentRequest,
        _feedback: Option<&str>,
    ) -> Result<AgentReply, AgentError> {
        let _guard = InFlight::enter(self);
        let prompt = &req.prompt;
        if let Some(d) = delay(prompt) {
            tokio::time::sleep(d).await;
        }
        if prompt.contains("[transient]") {
            return Err(AgentError {
                usage_limit: false,
                stops_run: false,
                resets_in: None,
                message: format!("API Error: 529 overloaded for {}", head(prompt, 40)),
                transient: true,
            });
        }
        let forced = self
            .forced
            .get_or_init(|| {
                std::env::var("WFHOST_MOCK_FAIL")
                    .unwrap_or_default()
                    .split(',')
                    .filter(|p| !p.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .iter()
            .any(|p| prompt.contains(p.as_str()));
        if forced || prompt.contains("[fail]") {
            return Err(AgentError::permanent(format!(
                "API Error: 400 forced failure for {}",
                head(prompt, 40)
            )));
        }
        let (text, structured) = match &req.schema {
            Some(schema) => {
                let v = json_tag(prompt).unwrap_or_else(|| fill(schema, &head(prompt, 20)));
                (v.to_string(), Some(v))
            }
            None => (format!("R({})", head(prompt, 40)), None),
        };
        let usage = Usage {
            input_tokens: tokens(prompt),
            output_tokens: tokens(&text),
            ..Usage::default()
        };
        Ok(AgentReply {
            text,
            structured,
            usage,
            cost_usd: None,
            note: None,
        })
    }

    fn stats(&self) -> Option<Value> {
        Some(json!({
            "calls": self.calls.load(Ordering::SeqCst),
            "max_in_flight": self.max_in_flight.load(Ordering::SeqCst),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_fill_follows_the_conformance_model() {
        let schema = json!({"type": "object", "properties": {
            "title": {"type": "string"}, "score": {"type": "integer"}, "ok": {"type": "boolean"},
            "tags": {"type": "array", "items": {"type": "string"}}, "kind": {"enum": ["a", "b"]}}});
        let v = fill(&schema, &head("schema agent prompt", 20));
        assert_eq!(
            v,
            json!({"title": "S(schema agent prompt.title)", "score": 25, "ok": true,
                   "tags": ["S(schema agent prompt.tags[0])"], "kind": "a"})
        );
    }

    #[test]
    fn tags() {
        assert_eq!(
            delay("x [delay=250] y [delay=5]"),
            Some(Duration::from_millis(250))
        );
        assert_eq!(delay("no tag"), None);
        assert_eq!(
            json_tag(r#"a [json={"t":"]","n":[1]}] b"#),
            Some(json!({"t": "]", "n": [1]}))
        );
    }
}
