//! What a run is allowed: fixed before the guest starts and shared, never changed by it.

use crate::limits::Limits;
use crate::workflows::Resolver;
use serde_json::{Value, json};

/// The run's policy: its ceilings, its limits and what identifies its backend.
#[derive(Debug)]
pub(crate) struct Policy {
    /// `{args?, budgetTotal, agentCap, capMessage}`, handed to the guest by `context`.
    pub context: String,
    /// `--budget-tokens`: no new agents once this many output tokens are spent.
    pub budget_total: Option<u64>,
    /// `--max-cost`: no new agents once the run's cost reaches it (USD).
    pub max_cost: Option<f64>,
    pub limits: Limits,
    /// Part of every journal key (see journal::agent_key).
    pub backend_identity: String,
    /// Where `workflow()` looks for child workflows.
    pub workflows: Resolver,
    /// `meta.phases[].model`: an agent of that phase that names no model gets this one.
    pub phase_models: std::collections::HashMap<String, String>,
    /// Whether isolated agents can be given worktrees (asked once, at the first that asks).
    pub worktrees: crate::backend::worktree::Check,
}

impl Policy {
    #[expect(
        clippy::too_many_arguments,
        reason = "the run's fixed inputs, each once; one caller (Capabilities::new)"
    )]
    pub(crate) fn new(
        servable: u32,
        args: Option<Value>,
        budget_total: Option<u64>,
        max_cost: Option<f64>,
        limits: Limits,
        backend_identity: String,
        workflows: Resolver,
        phase_models: std::collections::HashMap<String, String>,
        worktrees: crate::backend::worktree::Check,
    ) -> Policy {
        let mut context = json!({
            "budgetTotal": budget_total,
            "agentCap": limits.max_agents.saturating_add(servable),
            "capMessage": cap_message(limits.max_agents),
        });
        if let Some(a) = args {
            context["args"] = a;
        }
        Policy {
            context: context.to_string(),
            budget_total,
            max_cost,
            limits,
            backend_identity,
            workflows,
            phase_models,
            worktrees,
        }
    }
}

/// The reference runtime's message when a run reaches its agent cap.
pub(crate) fn cap_message(cap: u32) -> String {
    format!(
        "Workflow agent() call cap reached ({cap}). This usually means a loop using budget.remaining() never terminates because no token budget was set — remaining() returns Infinity when budget.total is null. Add a hard iteration cap to the loop, or pass a token budget."
    )
}

/// Why an `agent()` call was refused at the boundary, before anything was asked of a backend.
/// The script sees it as an error with `js_name()` and `message()`; the run goes on.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Refusal {
    /// `schema` is not a JSON Schema the host can check answers against.
    BadSchema(String),
    /// `agentType` names no built-in or project agent type (the message lists them).
    UnknownAgentType(String),
    /// `isolation: "worktree"` where no worktree can be made (not a git repository, or no
    /// commit yet): the reference's message, before any agent is started.
    NoWorktree(&'static str),
    /// The prompt alone is larger than `--max-prompt-bytes`.
    PromptTooLarge { bytes: u64, max: u64 },
    /// Prompts held for queued and running agents would pass `--max-queued-bytes`.
    QueueFull { held: u64, bytes: u64, max: u64 },
    /// `--max-cost` is reached.
    Cost { spent: f64, max: f64 },
    /// `--max-tokens` is reached.
    Tokens { used: u64, max: u64 },
    /// `--budget-tokens` is spent.
    Budget { spent: u64, total: u64 },
    /// `--max-agents` agents have run.
    AgentCap(u32),
}

impl Refusal {
    /// The name of the error the script's `agent()` call throws (the reference's where it has one).
    pub(crate) fn js_name(&self) -> &'static str {
        match self {
            Refusal::BadSchema(_) => "TelemetrySafeError",
            Refusal::UnknownAgentType(_) | Refusal::NoWorktree(_) => "Error",
            Refusal::PromptTooLarge { .. } | Refusal::QueueFull { .. } => "RangeError",
            Refusal::Cost { .. } | Refusal::Tokens { .. } | Refusal::Budget { .. } => {
                "WorkflowBudgetError"
            }
            Refusal::AgentCap(_) => "WorkflowAgentCapError",
        }
    }

    /// Whether the refused call still counts among the run's agents (as on the reference: a
    /// call with a bad schema or an unknown type was started, then failed).
    pub(crate) fn counts_as_started(&self) -> bool {
        matches!(self, Refusal::BadSchema(_) | Refusal::UnknownAgentType(_))
    }

    pub(crate) fn message(&self) -> String {
        match self {
            Refusal::BadSchema(m) | Refusal::UnknownAgentType(m) => m.clone(),
            Refusal::NoWorktree(m) => (*m).to_string(),
            Refusal::PromptTooLarge { bytes, max } => format!(
                "agent() prompt is {bytes} bytes, more than the {max} --max-prompt-bytes allows"
            ),
            Refusal::QueueFull { held, bytes, max } => format!(
                "the host already holds {held} bytes of prompts for agents queued or running; this one ({bytes} bytes) would pass the {max} --max-queued-bytes allows. Start fewer large agents at once"
            ),
            Refusal::Cost { spent, max } => format!(
                "the cost ceiling is reached (${spent:.4} of ${max:.4}); no new agents can start. Raise --max-cost if this is expected"
            ),
            Refusal::Tokens { used, max } => format!(
                "the token ceiling is reached ({used} of {max} tokens, input and output); no new agents can start. Raise --max-tokens if this is expected"
            ),
            Refusal::Budget { spent, total } => format!(
                "the token budget is spent ({spent} of {total} output tokens); no new agents can start. Check budget.remaining() before starting agents, or raise --budget-tokens"
            ),
            Refusal::AgentCap(cap) => cap_message(*cap),
        }
    }

    /// The `{"error": {name, message}}` the guest's `agent()` rejects with.
    pub(crate) fn to_js(&self) -> Value {
        json!({ "error": { "name": self.js_name(), "message": self.message() } })
    }
}

/// What the run has used so far, as `Policy::admit` needs it.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Spent {
    pub cost_usd: f64,
    /// Input and output tokens.
    pub tokens: u64,
    /// Output tokens against `--budget-tokens`.
    pub budget: u64,
    /// Prompt bytes held for agents queued or running.
    pub queued_bytes: u64,
}

impl Policy {
    /// The ceilings an `agent()` call of `prompt_bytes` must pass before it is queued: checked
    /// here, at the boundary, so a refused call reaches no backend.
    pub(crate) fn admit(&self, prompt_bytes: u64, spent: Spent) -> Result<(), Refusal> {
        let limits = &self.limits;
        if prompt_bytes > limits.max_prompt_bytes {
            return Err(Refusal::PromptTooLarge {
                bytes: prompt_bytes,
                max: limits.max_prompt_bytes,
            });
        }
        if spent.queued_bytes + prompt_bytes > limits.max_queued_bytes {
            return Err(Refusal::QueueFull {
                held: spent.queued_bytes,
                bytes: prompt_bytes,
                max: limits.max_queued_bytes,
            });
        }
        if let Some(max) = self.max_cost
            && spent.cost_usd >= max
        {
            return Err(Refusal::Cost {
                spent: spent.cost_usd,
                max,
            });
        }
        if let Some(max) = limits.max_tokens
            && spent.tokens >= max
        {
            return Err(Refusal::Tokens {
                used: spent.tokens,
                max,
            });
        }
        if let Some(total) = self.budget_total
            && spent.budget >= total
        {
            return Err(Refusal::Budget {
                spent: spent.budget,
                total,
            });
        }
        Ok(())
    }
}
