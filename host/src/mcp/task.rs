//! MCP tasks (the tasks extension, SEP-2663, as rmcp 3.9 implements it): a `workflow_run` from
//! a client that declared the extension, without `wait`, answers with a task instead of a
//! result. The task *is* the run: its id is the run's id, and its record (`task.json`) lives in
//! the run directory, so any `wfhost mcp` process of the project — one started after the client
//! reconnected, or after this one crashed — answers `tasks/get` for it. `tasks/get` reads the
//! run: `working` (with a progress line) while it runs, `input_required` while a person is asked
//! something for it, `completed` with what `workflow_result` returns once it ended, `cancelled`
//! when `tasks/cancel` stopped it. rmcp's in-memory `TaskManager` is not used: its tasks die
//! with the process.

use super::output::Answer;
use super::runs;
use crate::control::RunStatus;
use crate::run_dir::RunDir;
use rmcp::ErrorData as McpError;
use rmcp::model::{DetailedTask, JsonObject, Task, TaskPayload, TaskStatus};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why 2 s: a run's agents take seconds to minutes; polling faster only costs the client and
/// this server reads of the run's socket.
const POLL_INTERVAL_MS: u64 = 2_000;

/// A task's record in its run directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    task_id: String,
    created_at: String,
    /// `tasks/cancel` was asked: the run was stopped for it, and the task reads `cancelled`.
    #[serde(default)]
    cancelled: bool,
}

fn file(dir: &RunDir) -> PathBuf {
    dir.path().join("task.json")
}

fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

fn write(dir: &RunDir, r: &Record) -> Result<(), McpError> {
    let text = serde_json::to_vec_pretty(r).unwrap_or_default();
    RunDir::write_private(&file(dir), &text)
        .map_err(|e| McpError::internal_error(format!("cannot write the task's record: {e}"), None))
}

fn unknown(id: &str) -> McpError {
    McpError::invalid_params(
        format!("unknown task `{id}`: no run of this project was started as that task"),
        None,
    )
}

/// The run a task id names, and its record.
fn find(cwd: &Path, id: &str) -> Result<(RunDir, Record), McpError> {
    let dir = RunDir::existing(cwd, id).map_err(|_| unknown(id))?;
    let text = std::fs::read(file(&dir)).map_err(|_| unknown(id))?;
    let record = serde_json::from_slice(&text).map_err(|_| unknown(id))?;
    Ok((dir, record))
}

fn task(r: &Record) -> Task {
    let mut t = Task::new(
        r.task_id.clone(),
        TaskStatus::Working,
        r.created_at.clone(),
        now(),
    )
    .with_poll_interval_ms(POLL_INTERVAL_MS);
    // Kept as long as the run directory is: `ttlMs: null`.
    t.ttl_ms = None;
    t
}

/// Makes a started run a task: its record written, its seed state returned.
pub(crate) fn create(dir: &RunDir) -> Result<Task, McpError> {
    let record = Record {
        task_id: dir.id().to_string(),
        created_at: now(),
        cancelled: false,
    };
    write(dir, &record)?;
    Ok(task(&record).with_status_message("started"))
}

/// A run's progress in one line: `Review: 3/10 agents done (1 failed), 12345 tokens`, and
/// where its pending batches stand (`; in batch msgbatch_… — 4 of 12 done`).
pub(crate) fn progress_line(s: &RunStatus) -> String {
    let a = s.agents;
    let done = a.done + a.cached + a.failed;
    let total = done + a.running + a.queued;
    let batches: String = s
        .batches
        .iter()
        .filter(|b| b.status != "ended")
        .map(|b| format!("; {b}"))
        .collect();
    format!(
        "{}: {done}/{total} agents done{}, {} tokens{batches}",
        s.phase.as_deref().unwrap_or("running"),
        if a.failed > 0 {
            format!(" ({} failed)", a.failed)
        } else {
            String::new()
        },
        s.usage.input_tokens + s.usage.output_tokens
    )
}

/// `tasks/get`: the run as a task now; `input_required` while its agents' permission requests
/// wait for a person (`tasks/update` answers them).
pub(crate) async fn get(cwd: &Path, id: &str) -> Result<DetailedTask, McpError> {
    let (dir, record) = find(cwd, id)?;
    let t = task(&record);
    if dir.is_running() {
        let status = runs::status(&dir).await.ok();
        let t = match &status {
            Some(s) => t.with_status_message(progress_line(s)),
            None => t,
        };
        let input_requests = super::ask::open_requests(&dir).await;
        let payload = if input_requests.is_empty() {
            TaskPayload::Working
        } else {
            TaskPayload::InputRequired { input_requests }
        };
        return Ok(DetailedTask::new(t, payload));
    }
    let (headline, outcome) = runs::result(&dir)
        .map_err(|e| McpError::internal_error(format!("run `{id}` cannot be read: {e:#}"), None))?;
    let t = t.with_status_message(headline.clone());
    if record.cancelled && outcome.run.status == "stopped" {
        return Ok(DetailedTask::new(t, TaskPayload::Cancelled));
    }
    // Completed, whatever the run's own outcome: the result says it (a failed run is a tool
    // result with its failures, as `workflow_result` gives it).
    let result = match serde_json::to_value(Answer::new(headline, outcome).into_result()) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => JsonObject::new(),
    };
    Ok(DetailedTask::new(t, TaskPayload::Completed { result }))
}

/// `tasks/update`: the person's answers to the task's open permission requests.
pub(crate) async fn update(
    cwd: &Path,
    id: &str,
    responses: &rmcp::model::InputResponses,
    client: &str,
) -> Result<(), McpError> {
    let (dir, _) = find(cwd, id)?;
    super::ask::answer_all(&dir, responses, client).await;
    Ok(())
}

/// `tasks/cancel`: the run is stopped (resumable, as `workflow_control stop` leaves it), and
/// the task reads `cancelled` from then on.
pub(crate) async fn cancel(cwd: &Path, id: &str) -> Result<(), McpError> {
    let (dir, mut record) = find(cwd, id)?;
    if !dir.is_running() {
        // Already ended: cancelling a terminal task changes nothing (SEP-2663).
        return Ok(());
    }
    record.cancelled = true;
    write(&dir, &record)?;
    runs::control(&dir, super::Action::Stop, None)
        .await
        .map_err(|e| McpError::internal_error(format!("cannot stop run `{id}`: {e:#}"), None))?;
    Ok(())
}

/// Waits for the run's end and tells the client (`notifications/tasks`), while it is connected.
pub(crate) fn notify_at_end(cwd: PathBuf, dir: RunDir, peer: rmcp::Peer<rmcp::RoleServer>) {
    tokio::spawn(async move {
        // Only whether it still runs (no status read): the notification needs the end alone.
        while dir.is_running() {
            if peer.is_transport_closed() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        if let Ok(detailed) = get(&cwd, dir.id()).await {
            let n = rmcp::model::TaskStatusNotification::new(detailed.into());
            let _ = peer
                .send_notification(rmcp::model::ServerNotification::TaskStatusNotification(n))
                .await;
        }
    });
}
