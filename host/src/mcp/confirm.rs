//! Asking the person behind the client before a run starts (`[mcp] confirm`), through MCP
//! elicitation: what the reference shows before a workflow — its name, description, phases —
//! plus what it would start and cost (the projection of `wfhost plan`, nothing spent) and the
//! script's blake3, so what was approved is what runs. Accept runs it; decline or cancel
//! starts nothing and is a tool error the model reads.
//!
//! Two ways to ask, by the protocol the client speaks: up to 2025-11-25 the server sends an
//! `elicitation/create` request and waits for it; from 2026-07-28 (no server-to-client
//! requests) the call answers `input_required` with the elicitation, and the client calls
//! again with the person's answer (`inputResponses`) and the state it was given, which names
//! the script and args that were shown.

use super::{Server, ToolError};
use crate::config::Confirm;
use rmcp::RoleServer;
use rmcp::model::{
    ElicitRequest, ElicitRequestParams, ElicitResult, ElicitationAction, ElicitationSchema,
    InputRequest, InputRequiredResult, InputResponses, ProtocolVersion,
};
use rmcp::service::RequestContext;
use serde_json::Value;
use std::time::Duration;

/// Why 25: a review of a handful of files is a few agents; past a couple of dozen a fan-out is
/// a spend a person should see first.
const CONFIRM_AGENTS: u32 = 25;

/// Why 1 USD: above what a typical small workflow costs on the configured prices.
const CONFIRM_COST: f64 = 1.0;

/// Why 10 minutes: the person may be away from the client; a tool call held longer than
/// this holds the client's turn, and no answer is a no.
const ANSWER_WITHIN: Duration = Duration::from_secs(600);

/// The key of the confirmation in `inputRequests` / `inputResponses`.
const KEY: &str = "confirm-run";

/// What `workflow_run` does next.
pub(super) enum Next {
    Run,
    /// Ask through `input_required` (2026-07-28 clients): return this and wait for the retry.
    Ask(InputRequiredResult),
}

/// The script and args to confirm, as shown to the person.
pub(super) struct Shown<'a> {
    pub source: &'a str,
    pub meta: Option<&'a crate::script::Meta>,
    pub args: Option<&'a Value>,
    pub resume: Option<&'a str>,
}

impl Shown<'_> {
    /// What the person approves: the script's bytes and the args (blake3).
    fn digest(&self) -> String {
        let mut h = blake3::Hasher::new();
        h.update(self.source.as_bytes());
        h.update(b"\0");
        h.update(
            self.args
                .map(ToString::to_string)
                .unwrap_or_default()
                .as_bytes(),
        );
        h.finalize().to_hex().to_string()
    }
}

/// A client that can ask its person: it declared elicitation.
fn can_elicit(ctx: &RequestContext<RoleServer>) -> bool {
    ctx.client_capabilities()
        .is_some_and(|c| c.elicitation.is_some())
}

/// How this client's person can be asked, if at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Asking {
    /// It did not declare elicitation.
    No,
    /// `elicitation/create`, sent while it is connected (up to 2025-11-25).
    ByRequest,
    /// `input_required`, answered on the call's retry (2026-07-28: no server-to-client requests).
    ByRetry,
}

pub(super) fn asking(ctx: &RequestContext<RoleServer>) -> Asking {
    match (can_elicit(ctx), modern(ctx)) {
        (false, _) => Asking::No,
        (true, false) => Asking::ByRequest,
        (true, true) => Asking::ByRetry,
    }
}

/// The client speaks 2026-07-28 or later: no server-to-client requests.
fn modern(ctx: &RequestContext<RoleServer>) -> bool {
    ctx.protocol_version()
        .is_some_and(|v| v.as_str() >= ProtocolVersion::V_2026_07_28.as_str())
}

impl Server {
    /// Whether the run may start now, must be confirmed first, or is refused.
    pub(super) async fn confirm(
        &self,
        shown: &Shown<'_>,
        ctx: &RequestContext<RoleServer>,
        responses: Option<&InputResponses>,
        state: Option<&str>,
    ) -> Result<Next, ToolError> {
        let policy = &self.config.mcp;
        let mode = policy.confirm.unwrap_or_default();
        if mode == Confirm::Never {
            return Ok(Next::Run);
        }
        let how = asking(ctx);
        if how == Asking::No {
            return match mode {
                Confirm::Always => Err(
                    "this project asks a person to confirm every run started over MCP ([mcp] confirm = \"always\"), and this client cannot ask one (it did not declare MCP elicitation): nothing was started. A person can run it with `wfhost run`, or use a client with elicitation".into(),
                ),
                // Today's behaviour: the client's own tool-permission prompt.
                _ => Ok(Next::Run),
            };
        }
        let plan = self.project(shown).await;
        let (agents, cost) = plan
            .as_ref()
            .map_or((None, None), |p| (Some(p.total.agents), p.total.cost_high));
        let over = agents
            .is_none_or(|n| n > policy.confirm_agents.unwrap_or(CONFIRM_AGENTS) as usize)
            || cost.is_some_and(|c| c > policy.confirm_cost.unwrap_or(CONFIRM_COST));
        if mode == Confirm::OverLimits && !over {
            return Ok(Next::Run);
        }
        let digest = shown.digest();
        let why = if mode == Confirm::Always {
            "[mcp] confirm = \"always\"".to_string()
        } else {
            format!(
                "it is over [mcp]'s limits for starting without asking ({} agents, {} USD)",
                policy.confirm_agents.unwrap_or(CONFIRM_AGENTS),
                policy.confirm_cost.unwrap_or(CONFIRM_COST)
            )
        };
        let message = message(shown, plan.as_ref(), &digest, &why);
        let params = ElicitRequestParams::FormElicitationParams {
            meta: None,
            message,
            requested_schema: ElicitationSchema::builder()
                .description("Accept to start the run; decline to start nothing.")
                .build()
                .unwrap_or_else(|_| ElicitationSchema::new(std::collections::BTreeMap::new())),
        };
        let answer: ElicitResult = if how == Asking::ByRetry {
            // The retry carries the answer, for the script and args it was asked about.
            let answered = responses
                .and_then(|r| r.get(KEY))
                .filter(|_| state == Some(digest.as_str()))
                .and_then(|v| serde_json::from_value::<ElicitResult>(v.clone()).ok());
            match answered {
                Some(a) => a,
                None => {
                    let mut requests = rmcp::model::InputRequests::new();
                    requests.insert(
                        KEY.to_string(),
                        InputRequest::Elicitation(ElicitRequest::new(params)),
                    );
                    return Ok(Next::Ask(InputRequiredResult::new(
                        Some(requests),
                        Some(digest),
                    )));
                }
            }
        } else {
            match tokio::time::timeout(ANSWER_WITHIN, ctx.peer.create_elicitation(params)).await {
                Ok(Ok(a)) => a,
                Ok(Err(e)) => {
                    return Err(format!(
                        "the person could not be asked to confirm this run ({e}): nothing was started"
                    )
                    .into());
                }
                Err(_) => {
                    return Err(format!(
                        "nobody confirmed this run within {} minutes: nothing was started",
                        ANSWER_WITHIN.as_secs() / 60
                    )
                    .into());
                }
            }
        };
        match answer.action {
            ElicitationAction::Accept => Ok(Next::Run),
            ElicitationAction::Decline => Err(
                "the person declined this run: nothing was started. Ask them what to change before trying again".into(),
            ),
            _ => Err("the person cancelled this run: nothing was started".into()),
        }
    }

    /// The projection `workflow_plan` gives (`None` when the script cannot be projected: then
    /// it counts as over the limits).
    async fn project(&self, shown: &Shown<'_>) -> Option<crate::plan::Plan> {
        let script = crate::script::Script::parse("script", shown.source).ok()?;
        crate::plan::on_backend(crate::plan::Planned {
            script,
            args: shown.args.cloned(),
            config: self.config.clone(),
            cwd: self.cwd.clone(),
            backend: self.config.backend.clone(),
            limits: crate::limits::Limits::default(),
            no_cache: false,
        })
        .await
        .ok()
    }
}

/// What the person reads.
fn message(shown: &Shown<'_>, plan: Option<&crate::plan::Plan>, digest: &str, why: &str) -> String {
    let mut m = String::new();
    let name = shown.meta.map_or("(unnamed)", |m| m.name.as_str());
    m.push_str(&format!("Start the workflow `{name}`?\n"));
    if let Some(meta) = shown.meta {
        if !meta.description.is_empty() {
            m.push_str(&format!("{}\n", meta.description));
        }
        if !meta.phases.is_empty() {
            let titles: Vec<&str> = meta.phases.iter().map(|p| p.title.as_str()).collect();
            m.push_str(&format!("Phases: {}\n", titles.join(" → ")));
        }
    }
    if let Some(id) = shown.resume {
        m.push_str(&format!(
            "It resumes run {id}: agents its journal answered are not asked again.\n"
        ));
    }
    match plan {
        Some(p) => {
            let cost = match (p.total.cost_low, p.total.cost_high) {
                (Some(lo), Some(hi)) => format!("${lo:.2}–${hi:.2}"),
                _ => "unknown (no price for its models)".into(),
            };
            m.push_str(&format!(
                "Projected: {} agents, ~{} input tokens, cost {cost}\n",
                p.total.agents, p.total.input_tokens
            ));
        }
        None => m.push_str("Projected: could not be computed\n"),
    }
    m.push_str(&format!("Script and args blake3: {digest}\n"));
    m.push_str(&format!("Asked because {why}."));
    m
}
