//! The vocabulary every stage shares about one agent call: what was asked (`AgentRequest`),
//! what it spent (`Usage`), what that costs (`Price`), and where it stands (`AgentState`).
//!
//! A leaf module: it imports nothing of wfhost's, so `config`, `backend`, `journal` and the
//! views can all use it without importing each other.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One agent call, as the script made it (after the host's checks).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AgentRequest {
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
    /// The journal key and occurrence of this call (set by the host; replay looks answers up
    /// by it). Not part of the request a backend sends anywhere.
    #[serde(skip)]
    pub call: Option<(String, u32)>,
    /// The `parallel()`/`pipeline()` slot the call was made in (as the journal records it);
    /// `wfhost plan` reads it. Not sent anywhere.
    #[serde(skip)]
    pub group: Option<Value>,
    /// Shown in logs and progress; not part of what determines the answer.
    #[serde(default)]
    pub label: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Where the agent works when it is not the run's directory: an isolated agent's worktree
    /// (set by the host around the call, backend::worktree). Not part of the journal key.
    #[serde(skip)]
    pub workspace: Option<std::path::PathBuf>,
}

/// Token usage of one backend call (or the sum of several).
#[derive(
    Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema,
)]
pub(crate) struct Usage {
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

/// USD per million tokens.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct Price {
    pub input: f64,
    pub output: f64,
    #[serde(default)]
    pub cache_write: f64,
    #[serde(default)]
    pub cache_read: f64,
}

/// Built-in list prices (USD per million tokens) for Anthropic's current model families, so
/// costs are shown without configuration. Override them under `[prices."MODEL"]`.
pub(crate) const DEFAULT_PRICES: &[(&str, Price)] = &[
    (
        "claude-opus-4",
        Price {
            input: 15.0,
            output: 75.0,
            cache_write: 18.75,
            cache_read: 1.5,
        },
    ),
    (
        "claude-sonnet-4",
        Price {
            input: 3.0,
            output: 15.0,
            cache_write: 3.75,
            cache_read: 0.3,
        },
    ),
    (
        "claude-haiku-4",
        Price {
            input: 1.0,
            output: 5.0,
            cache_write: 1.25,
            cache_read: 0.1,
        },
    ),
    (
        "claude-3-5-haiku",
        Price {
            input: 0.8,
            output: 4.0,
            cache_write: 1.0,
            cache_read: 0.08,
        },
    ),
];

impl Price {
    pub(crate) fn cost(&self, u: &Usage) -> f64 {
        (u.input_tokens as f64 * self.input
            + u.output_tokens as f64 * self.output
            + u.cache_creation_input_tokens as f64 * self.cache_write
            + u.cache_read_input_tokens as f64 * self.cache_read)
            / 1e6
    }
}

/// Where one agent call stands. Journaled, shown by `runs show`, the trace and the views.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub(crate) enum AgentState {
    /// Waiting for a slot in the pool (live views only: the journal records a start).
    Queued,
    /// Started (or queued) and no outcome recorded yet.
    Running,
    /// Answered by its backend.
    Done,
    /// Its backend failed, or its answer never matched the schema.
    Failed,
    /// Served from the run's journal instead of its backend (a resume).
    Cached,
}

impl AgentState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            AgentState::Queued => "queued",
            AgentState::Running => "running",
            AgentState::Done => "done",
            AgentState::Failed => "failed",
            AgentState::Cached => "cached",
        }
    }

    /// One character for terminal views.
    pub(crate) fn mark(self) -> &'static str {
        match self {
            AgentState::Queued => "·",
            AgentState::Running => "…",
            AgentState::Done => "✓",
            AgentState::Failed => "✗",
            AgentState::Cached => "↺",
        }
    }
}

impl std::fmt::Display for AgentState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
