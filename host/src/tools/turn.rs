//! One turn's tool calls, as any backend's loop runs them (`messages`, `openai`):
//! the guard rails first, the calls (concurrently when they all only read), a sign of life
//! for the stall timeout while they run, and what the views and events show of them.

use super::{Tally, ToolName, ToolOutput, Toolbox, Turn};
use crate::events::Event;
use serde_json::Value;
use std::sync::Arc;

/// A tool call the model made.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub id: String,
    pub name: String,
    pub input: Value,
}

/// How often a running tool shows the call is alive: a 9-minute test suite is not a stall.
const ALIVE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Runs the calls of turn `turn`; `Err` ends the agent (a guard rail, with the reason).
pub(crate) async fn run(
    tools: &Arc<Toolbox>,
    offered: &[ToolName],
    turn: u32,
    calls: &[Call],
    tally: &mut Tally,
) -> Result<Vec<(String, ToolOutput)>, String> {
    for c in calls {
        tally.call(&tools.rails, &c.name, &c.input)?;
    }
    let ctx = crate::backend::call_context();
    for c in calls {
        let summary = super::summary(&c.name, &c.input);
        crate::backend::output(&format!("\n⚙ {summary}\n"));
        if let (Some(events), Some(handle)) = (&ctx.events, ctx.handle) {
            events.emit(Event::ToolCall {
                handle,
                turn,
                tool: c.name.clone(),
                summary,
            });
        }
    }
    let all_read = calls
        .iter()
        .all(|c| ToolName::parse(&c.name).is_some_and(ToolName::read_only));
    let work = async {
        if all_read {
            futures_util::future::join_all(calls.iter().map(|c| one(tools, offered, c))).await
        } else {
            let mut out = Vec::with_capacity(calls.len());
            for c in calls {
                out.push(one(tools, offered, c).await);
            }
            out
        }
    };
    tokio::pin!(work);
    let mut alive = tokio::time::interval(ALIVE_EVERY);
    let results = loop {
        tokio::select! {
            r = &mut work => break r,
            _ = alive.tick() => crate::backend::progress(),
        }
    };
    for (c, r) in calls.iter().zip(&results) {
        shown(&ctx, turn, c, r);
    }
    Ok(calls.iter().map(|c| c.id.clone()).zip(results).collect())
}

/// One call: the file tools on a blocking thread (they read the disk), `Bash` as it is. A
/// tool outside the agent's set is refused — or, when someone watches the run (`wfhost watch`,
/// MCP), asked of them as a `claude` agent's permission question is; allowed, it runs under the
/// same containment.
async fn one(tools: &Arc<Toolbox>, offered: &[ToolName], c: &Call) -> ToolOutput {
    let mut offered = offered.to_vec();
    if let Some(t) = ToolName::parse(&c.name).filter(|t| !offered.contains(t)) {
        let ctx = crate::backend::call_context();
        if let Some(control) = ctx.control.filter(|c| c.watched()) {
            let (allowed, message) = control.ask_permission(ctx.agent, &c.name, &c.input).await;
            if !allowed {
                return ToolOutput::error(format!("`{}` was not allowed: {message}", c.name));
            }
            offered.push(t);
        }
    }
    let offered = offered.as_slice();
    if ToolName::parse(&c.name) == Some(ToolName::Bash) {
        return tools.call(&c.name, &c.input, offered).await;
    }
    let (tools, offered, c) = (tools.clone(), offered.to_vec(), c.clone());
    tokio::task::spawn_blocking(move || tools.call_file(&c.name, &c.input, &offered))
        .await
        .unwrap_or_else(|e| ToolOutput::error(format!("the tool failed: {e}")))
}

fn shown(ctx: &crate::backend::CallContext, turn: u32, c: &Call, r: &ToolOutput) {
    let head: String = r
        .content
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(120)
        .collect();
    let lines = r.content.lines().count();
    crate::backend::output(&if r.is_error {
        format!("  ✗ {head}\n")
    } else {
        format!("  → {lines} line{}\n", if lines == 1 { "" } else { "s" })
    });
    if let (Some(events), Some(handle)) = (&ctx.events, ctx.handle) {
        events.emit(Event::ToolResult {
            handle,
            turn,
            tool: c.name.clone(),
            is_error: r.is_error,
            bytes: r.content.len() as u64,
            head,
        });
    }
}

/// A model turn ended: the `agent_turn` event (its tool calls and what it cost in tokens).
pub(crate) fn turn_taken(turn: u32, assistant: &Value, usage: crate::agent::Usage) {
    let ctx = crate::backend::call_context();
    if let (Some(events), Some(handle)) = (&ctx.events, ctx.handle) {
        events.emit(Event::AgentTurn {
            handle,
            turn,
            tool_calls: u32::try_from(calls_of(assistant).len()).unwrap_or(u32::MAX),
            usage,
        });
    }
}

/// The calls of a turn's assistant message: its `tool_use` blocks (Messages API), or its
/// `tool_calls` (an OpenAI-compatible message; the arguments are a JSON string there).
pub(crate) fn calls_of(assistant: &Value) -> Vec<Call> {
    if let Some(calls) = assistant["tool_calls"].as_array() {
        return calls
            .iter()
            .map(|c| Call {
                id: c["id"].as_str().unwrap_or_default().to_string(),
                name: c["function"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                input: c["function"]["arguments"]
                    .as_str()
                    .and_then(|a| {
                        serde_json::from_str(if a.trim().is_empty() { "{}" } else { a }).ok()
                    })
                    .unwrap_or_else(|| Value::Object(serde_json::Map::new())),
            })
            .collect();
    }
    assistant
        .as_array()
        .into_iter()
        .flatten()
        .filter(|b| b["type"] == "tool_use")
        .map(|b| Call {
            id: b["id"].as_str().unwrap_or_default().to_string(),
            name: b["name"].as_str().unwrap_or_default().to_string(),
            input: b["input"].clone(),
        })
        .collect()
}

/// The turns this call already took (a resume, a stall restart, a schema re-ask), each with
/// its results — an interrupted one's recovered (`recover`) and kept — counted on `tally`, for
/// the backend to put back in its conversation in its own wire format.
pub(crate) async fn replay(
    tools: &Arc<Toolbox>,
    offered: &[ToolName],
    transcript: Option<&crate::tools::Transcript>,
    tally: &mut Tally,
) -> Vec<(Value, Vec<(String, ToolOutput)>)> {
    let mut out = Vec::new();
    for t in transcript.iter().flat_map(|t| t.turns()) {
        let _ = tally.turn(&tools.rails);
        let results = match &t.results {
            Some(r) => r.clone(),
            None => {
                let r = recover(tools, offered, &t).await;
                if let Some(tr) = transcript {
                    tr.keep(Turn {
                        results: Some(r.clone()),
                        ..t.clone()
                    });
                }
                r
            }
        };
        out.push((t.assistant, results));
    }
    out
}

/// Turn `n` of a call: kept with its calls before they run (an interruption then never
/// repeats a call that may have changed the workspace), run, and kept with the results.
pub(crate) async fn take(
    tools: &Arc<Toolbox>,
    offered: &[ToolName],
    transcript: Option<&crate::tools::Transcript>,
    n: u32,
    assistant: &Value,
    calls: &[Call],
    tally: &mut Tally,
) -> Result<Vec<(String, ToolOutput)>, String> {
    let keep = |results: Option<Vec<(String, ToolOutput)>>| {
        if let Some(t) = transcript {
            t.keep(Turn {
                turn: n,
                assistant: assistant.clone(),
                results,
            });
        }
    };
    keep(None);
    let results = run(tools, offered, n, calls, tally).await?;
    keep(Some(results.clone()));
    Ok(results)
}

/// The results of a journaled turn that was interrupted while its tools ran: read-only
/// calls run again; a call that may have changed the workspace is not repeated, and the
/// model is told so (tools::transcript).
pub(crate) async fn recover(
    tools: &Arc<Toolbox>,
    offered: &[ToolName],
    turn: &Turn,
) -> Vec<(String, ToolOutput)> {
    let mut out = Vec::new();
    for c in calls_of(&turn.assistant) {
        let result = match ToolName::parse(&c.name) {
            Some(t) if t.mutates() => ToolOutput::error(format!(
                "This `{}` call was interrupted (the run stopped) before its result was kept: it may or may not have been applied. Check the workspace before repeating it.",
                c.name
            )),
            _ => one(tools, offered, &c).await,
        };
        out.push((c.id, result));
    }
    out
}
