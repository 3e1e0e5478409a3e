//! JSON Schema for structured agents: the shape rule checked before an agent starts, and the
//! validation of its reply (the `jsonschema` crate).

use serde_json::Value;
use std::sync::Arc;

/// A schema that passed the shape rule, compiled once per agent.
#[derive(Clone)]
pub(crate) struct Schema {
    pub value: Value,
    validator: Arc<jsonschema::Validator>,
}

impl std::fmt::Debug for Schema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.value.fmt(f)
    }
}

impl Schema {
    /// The root must be an object schema (`{type: "object", …}`): an agent answers with one
    /// object. As on the reference, nothing else is required of it: `properties` may be
    /// missing, and `required` may name a key `properties` does not have.
    pub(crate) fn new(value: Value) -> Result<Schema, String> {
        let unusable = |why: &str| {
            Err(format!(
                "agent({{schema}}) received an unusable JSON Schema — {why}"
            ))
        };
        let Some(root) = value.as_object() else {
            return unusable(
                "the root must be an object schema: { type: \"object\", properties: { … } }",
            );
        };
        if root.get("type").and_then(Value::as_str) != Some("object") {
            return unusable(
                "the root must have type: \"object\" (an agent answers with one object)",
            );
        }
        let validator = jsonschema::validator_for(&value)
            .map_err(|e| format!("agent({{schema}}) received an unusable JSON Schema — {e}"))?;
        Ok(Schema {
            value,
            validator: Arc::new(validator),
        })
    }

    /// `Ok` when `instance` matches; otherwise every problem, one per line.
    pub(crate) fn validate(&self, instance: &Value) -> Result<(), String> {
        let errors: Vec<String> = self
            .validator
            .iter_errors(instance)
            .take(8)
            .map(|e| {
                let path = e.instance_path().to_string();
                if path.is_empty() {
                    e.to_string()
                } else {
                    format!("{path}: {e}")
                }
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("\n"))
        }
    }
}

/// The object an agent answered with: its structured output, or JSON found in its text
/// (a bare object, or the last fenced ```json block).
pub(crate) fn reply_object(structured: Option<&Value>, text: &str) -> Option<Value> {
    if let Some(v) = structured {
        return Some(v.clone());
    }
    let t = text.trim();
    if let Ok(v) = serde_json::from_str(t) {
        return Some(v);
    }
    let fenced = t.rsplit("```").nth(1)?;
    serde_json::from_str(fenced.trim_start_matches("json").trim()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shape_rule_refuses_only_a_root_that_is_not_an_object() {
        for ok in [
            json!({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}),
            json!({"type": "object"}),
            json!({"type": "object", "properties": {}, "required": ["x"]}),
        ] {
            assert!(Schema::new(ok.clone()).is_ok(), "{ok}");
        }
        for s in [json!({"type": "array"}), json!(["x"])] {
            let e = Schema::new(s).unwrap_err();
            assert!(
                e.starts_with("agent({schema}) received an unusable JSON Schema — "),
                "{e}"
            );
        }
    }

    #[test]
    fn validation_and_extraction() {
        let s = Schema::new(
            json!({"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}),
        )
        .unwrap();
        assert!(s.validate(&json!({"n": 1})).is_ok());
        assert!(s.validate(&json!({"n": "x"})).unwrap_err().contains("/n"));
        assert_eq!(
            reply_object(None, "here:\n```json\n{\"n\": 2}\n```"),
            Some(json!({"n": 2}))
        );
    }
}
