//! What a run is allowed: fixed before the guest starts and shared, never changed by it.

use crate::limits::Limits;
use crate::workflows::Resolver;
use serde_json::{Value, json};

/// The run's policy: its ceilings, its limits and what identifies its backend.
#[derive(Debug)]
pub struct Policy {
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
}

impl Policy {
    #[expect(
        clippy::too_many_arguments,
        reason = "the run's fixed inputs, each once; one caller (Capabilities::new)"
    )]
    pub fn new(
        servable: u32,
        args: Option<Value>,
        budget_total: Option<u64>,
        max_cost: Option<f64>,
        limits: Limits,
        backend_identity: String,
        workflows: Resolver,
        phase_models: std::collections::HashMap<String, String>,
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
        }
    }
}

/// The reference runtime's message when a run reaches its agent cap.
pub fn cap_message(cap: u32) -> String {
    format!(
        "Workflow agent() call cap reached ({cap}). This usually means a loop using budget.remaining() never terminates because no token budget was set — remaining() returns Infinity when budget.total is null. Add a hard iteration cap to the loop, or pass a token budget."
    )
}
