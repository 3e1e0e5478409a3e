//! Agents' permission requests put to the person behind the client (MCP elicitation), besides
//! the dashboard and the control socket: whichever answers first wins (the run takes the first
//! answer and refuses the rest), and the run's journal and events say who answered
//! (`wfhost mcp (elicitation, CLIENT)`).
//!
//! The requests are read from the run's status (its open `permissions`), so nothing is held
//! here that a restarted server would lose. How they reach the person depends on the client:
//! - up to protocol 2025-11-25: an `elicitation/create` request per open request, sent by a
//!   relay that follows each run this server started while the client is connected;
//! - a run started as a task: `tasks/get` shows the task `input_required` with the requests as
//!   `inputRequests`, and `tasks/update` answers them.

use super::runs;
use crate::control::client::Client;
use crate::control::{Command, RunStatus};
use crate::live::PermissionRow;
use crate::run_dir::RunDir;
use rmcp::model::{
    ElicitRequest, ElicitRequestParams, ElicitResult, ElicitationAction, ElicitationSchema,
    EnumSchema, InputRequest, InputRequests,
};
use serde_json::Value;
use std::collections::HashSet;
use std::time::Duration;

/// The key of a permission request in `inputRequests`.
fn key(id: u32) -> String {
    format!("permission-{id}")
}

/// What the person is asked for one request.
pub(super) fn elicitation(run: &RunStatus, p: &PermissionRow) -> ElicitRequestParams {
    let agent = p
        .agent
        .map(|n| format!("agent {n}"))
        .unwrap_or_else(|| "an agent".into());
    let message = format!(
        "Run {} ({}): {agent} wants to use `{}` outside its allow-list.\nInput: {}\n\"Always\" allows `{}` for the rest of this run.",
        run.run_id, run.name, p.tool, p.input, p.always
    );
    let decision = EnumSchema::builder(vec!["once".into(), "always".into(), "deny".into()])
        .enum_titles(vec![
            "Allow once".into(),
            "Always, for this run".into(),
            "Deny".into(),
        ])
        .map(|b| b.title("Decision").build())
        .unwrap_or_else(|_| {
            EnumSchema::builder(vec!["once".into(), "always".into(), "deny".into()]).build()
        });
    let schema = ElicitationSchema::builder()
        .required_enum_schema("decision", decision)
        .description("Allow the agent's tool once, for the rest of the run, or deny it.")
        .build()
        .unwrap_or_else(|_| ElicitationSchema::new(std::collections::BTreeMap::new()));
    ElicitRequestParams::FormElicitationParams {
        meta: None,
        message,
        requested_schema: schema,
    }
}

/// The person's answer as the run takes it: `once`, `always` or `deny` (declining, cancelling
/// or an answer that is none of these denies).
fn decision(answer: &ElicitResult) -> &'static str {
    if answer.action != ElicitationAction::Accept {
        return "deny";
    }
    match answer
        .content
        .as_ref()
        .and_then(|c| c.get("decision"))
        .and_then(Value::as_str)
    {
        Some("once") => "once",
        Some("always") => "always",
        _ => "deny",
    }
}

/// Gives the run the person's answer to request `id`.
async fn answer(dir: &RunDir, id: u32, answer: &ElicitResult, client: &str) {
    let who = format!("wfhost mcp (elicitation, {client})");
    if let Ok(mut c) = Client::connect(dir, &who).await {
        // Refused when someone answered first: theirs stands.
        let _ = c
            .request(Command::Answer {
                id,
                decision: decision(answer).to_string(),
            })
            .await;
    }
}

/// A task's open requests, as `inputRequests` (empty when none).
pub(super) async fn open_requests(dir: &RunDir) -> InputRequests {
    let mut requests = InputRequests::new();
    if let Ok(status) = runs::status(dir).await {
        for p in &status.permissions {
            requests.insert(
                key(p.id),
                InputRequest::Elicitation(ElicitRequest::new(elicitation(&status, p))),
            );
        }
    }
    requests
}

/// `tasks/update`: the person's answers to a task's requests.
pub(super) async fn answer_all(
    dir: &RunDir,
    responses: &rmcp::model::InputResponses,
    client: &str,
) {
    for (k, v) in responses {
        let Some(id) = k.strip_prefix("permission-").and_then(|n| n.parse().ok()) else {
            continue;
        };
        if let Ok(a) = serde_json::from_value::<ElicitResult>(v.clone()) {
            answer(dir, id, &a, client).await;
        }
    }
}

/// Follows a run this server started and asks the person each of its agents' permission
/// requests (`elicitation/create`), until the run ends or the client goes.
pub(super) fn relay(dir: RunDir, peer: rmcp::Peer<rmcp::RoleServer>, client: String) {
    tokio::spawn(async move {
        let mut asked: HashSet<u32> = HashSet::new();
        while dir.is_running() && !peer.is_transport_closed() {
            if let Ok(status) = runs::status(&dir).await {
                for p in status.permissions.iter().filter(|p| asked.insert(p.id)) {
                    let (dir, peer, client) = (dir.clone(), peer.clone(), client.clone());
                    let params = elicitation(&status, p);
                    let id = p.id;
                    tokio::spawn(async move {
                        if let Ok(a) = peer.create_elicitation(params).await {
                            answer(&dir, id, &a, &client).await;
                        }
                    });
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
}
