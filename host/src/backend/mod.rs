//! Agent backends: what actually answers an `agent()` call. One trait, one file per backend.
//!
//! The scheduler calls a backend only after every host-side check has passed (agent cap,
//! budget, schema shape), so a backend never sees a request the script was not allowed to make.

pub mod mock;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One agent call, as the script made it (after the host's checks).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AgentRequest {
    pub prompt: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effort: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolation: Option<String>,
    /// Shown in logs and progress; not part of what determines the answer.
    #[serde(default)]
    pub label: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
}

/// Token usage of one backend call (or the sum of several).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    #[serde(default)]
    pub cache_creation_input_tokens: u64,
    #[serde(default)]
    pub cache_read_input_tokens: u64,
}

impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, o: Usage) {
        self.input_tokens += o.input_tokens;
        self.output_tokens += o.output_tokens;
        self.cache_creation_input_tokens += o.cache_creation_input_tokens;
        self.cache_read_input_tokens += o.cache_read_input_tokens;
    }
}

/// A backend's answer: the final text, or a structured object when a schema was asked for.
#[derive(Debug, Clone, Default)]
pub struct AgentReply {
    pub text: String,
    pub structured: Option<Value>,
    pub usage: Usage,
}

/// Why a backend call failed. `transient` failures (rate limits, overload, network) may
/// succeed later; the run's exit code says so (75) when they end a run.
#[derive(Debug, Clone)]
pub struct AgentError {
    pub message: String,
    pub transient: bool,
}

impl AgentError {
    pub fn permanent(message: impl Into<String>) -> Self {
        AgentError {
            message: message.into(),
            transient: false,
        }
    }
}

/// Everything that can answer an agent.
#[async_trait::async_trait]
pub trait Backend: Send + Sync {
    /// The backend's name as the user chose it (`mock`, `claude`, …).
    fn name(&self) -> &str;
    /// What, besides the request, determines the answer (backend and its configuration).
    /// Part of the journal key: a different identity never replays another's answers.
    fn identity(&self) -> String {
        self.name().to_string()
    }
    /// Runs one agent call. `feedback` is set when the previous reply did not match the schema.
    async fn run(
        &self,
        request: &AgentRequest,
        feedback: Option<&str>,
    ) -> Result<AgentReply, AgentError>;
    /// Backend-specific counters for the run report.
    fn stats(&self) -> Option<Value> {
        None
    }
}
