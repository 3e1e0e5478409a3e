//! What the MCP tools do with runs, apart from the protocol: check a script the way `wfhost run`
//! does, start a detached run (the same binary, `wfhost run --detach`), and read a run's state,
//! live (its control socket) or finished (its journal).

use super::output::Outcome;
use crate::ExitError;
use crate::control::client::Client;
use crate::control::{AgentRef, Command, RunStatus};
use crate::journal::{History, Lifecycle};
use crate::run_dir::RunDir;
use crate::script::Script;
use anyhow::{Context as _, Result, anyhow};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Why 16 KiB: a tool result lands in a model's context window; a larger result is written to
/// `result.json` in the run directory and the tool gives its path.
pub(crate) const MAX_RESULT_CHARS: usize = 16 << 10;

/// Checks a script as `wfhost run` does before launching it: meta, imports and syntax (the
/// guest's QuickJS compiles it). `Err`: the message and hint `wfhost run` would print.
pub(crate) async fn check(origin: &str, source: &str) -> Result<Script, String> {
    let script = Script::parse(origin, source).map_err(|r| r.render())?;
    let compiled = async {
        let cache = crate::compile::Cache::new(false);
        let sandbox = crate::sandbox::Sandbox::new(crate::limits::Limits::default(), &cache)?;
        anyhow::Ok(sandbox.bytecode(&cache, &script.module).await?.0)
    };
    match compiled.await {
        Ok(Ok(_)) => {}
        Ok(Err(message)) => {
            return Err(format!(
                "Workflow script has a syntax error and was not launched:\n  {message}\n  --> {origin}"
            ));
        }
        Err(e) => return Err(format!("the script could not be checked: {e:#}")),
    }
    Ok(script)
}

/// A `scriptPath` a model gave: inside the project (or its runs directory, where inline scripts
/// are saved), a `.js` file, no `..`, no symlink on the way. Relative paths are from the
/// project's directory.
pub(crate) fn script_path(p: &str, cwd: &Path) -> Result<PathBuf, String> {
    use std::path::Component;
    let refuse = |why: &str| {
        format!(
            "scriptPath `{p}` is refused: {why}. Give a `.js` file inside the project ({}), without `..` or symlinks, or pass the source as `script`",
            cwd.display()
        )
    };
    let path = Path::new(p);
    if path.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(refuse("it contains `..`"));
    }
    if !path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("js"))
    {
        return Err(refuse("it is not a `.js` file"));
    }
    let full = if path.is_absolute() {
        path.to_path_buf()
    } else {
        cwd.join(path)
    };
    let root = crate::paths::project_root(cwd);
    let runs = crate::run_dir::runs_root(cwd);
    let bases: [&Path; 2] = [root, &runs];
    let base = bases
        .into_iter()
        .find(|b| full.starts_with(b))
        .ok_or_else(|| refuse("it is outside the project"))?;
    let levels = full
        .strip_prefix(base)
        .map(|r| r.components().count())
        .unwrap_or(0);
    if crate::workflows::symlinked(&full, levels.max(1)) {
        return Err(refuse("a symlink is on its way"));
    }
    Ok(full)
}

/// Reads a script file without blocking or following a final symlink.
pub(crate) fn read(path: &Path) -> Result<String, String> {
    crate::workflows::read_script(path)
        .map_err(|why| format!("`{}` cannot be read: {why}", path.display()))
}

/// What to start.
pub(crate) struct Launch<'a> {
    /// The script file to run (`None`: resume the run's own snapshot).
    pub script: Option<&'a Path>,
    pub args: Option<&'a Value>,
    pub resume: Option<&'a str>,
    /// A new run's id (chosen before, so an inline script can be saved in its directory).
    pub run_id: Option<&'a str>,
    pub max_agents: Option<u32>,
    pub max_cost: Option<f64>,
}

/// Starts a detached run with this very binary; returns its id once its control socket is up.
pub(crate) fn start(l: &Launch<'_>, cwd: &Path) -> Result<String> {
    let exe = std::env::current_exe().context("cannot find the wfhost binary")?;
    let mut cmd = std::process::Command::new(exe);
    match (l.script, l.resume) {
        (None, Some(id)) => {
            cmd.args(["resume", id]);
        }
        (Some(path), resume) => {
            cmd.arg("run").arg(path);
            if let Some(id) = resume {
                cmd.args(["--resume", id]);
            } else if let Some(id) = l.run_id {
                cmd.args(["--run-id", id]);
            }
            // Through a private file of the run's directory, not argv: an argument of 128 KiB
            // or more does not fit (E2BIG), `-5` would read as a flag, and `ps` shows argv to
            // every local user.
            if let Some(args) = l.args {
                let id = resume
                    .or(l.run_id)
                    .ok_or_else(|| anyhow!("a run with args needs its id"))?;
                let dir = crate::run_dir::RunDir::new(cwd, id)?;
                dir.create()?;
                let file = dir.path().join("args.request.json");
                crate::run_dir::RunDir::write_private(&file, args.to_string().as_bytes())
                    .with_context(|| format!("cannot write `{}`", file.display()))?;
                cmd.arg("--args-file").arg(file);
            }
        }
        (None, None) => return Err(anyhow!("nothing to run")),
    }
    cmd.args(["--detach", "--yes", "--json"]);
    if let Some(n) = l.max_agents {
        cmd.args(["--max-agents", &n.to_string()]);
    }
    if let Some(usd) = l.max_cost {
        cmd.args(["--max-cost", &usd.to_string()]);
    }
    let out = cmd
        .current_dir(cwd)
        .stdin(std::process::Stdio::null())
        .output()
        .context("cannot start the run")?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(ExitError::new(
            u8::try_from(out.status.code().unwrap_or(70)).unwrap_or(70),
            stderr.trim().trim_start_matches("error: ").to_string(),
        )
        .into());
    }
    let started: Value = serde_json::from_slice(&out.stdout).context("the run said nothing")?;
    started["run_id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("the run gave no id"))
}

/// A run's state: live from its socket, else from its run directory.
pub(crate) async fn status(dir: &RunDir) -> Result<RunStatus> {
    if dir.is_running()
        && let Ok(mut c) = Client::connect(dir, "wfhost mcp").await
        && let Ok(v) = c.request(Command::Status).await
        && let Ok(mut s) = serde_json::from_value::<RunStatus>(v)
    {
        s.run_dir = Some(dir.path().to_path_buf());
        return Ok(s);
    }
    let h = History::fold(&crate::journal::load_run(dir)?);
    Ok(RunStatus::from_run_dir(dir, &h))
}

/// A run's failed agents grouped by their error.
fn failures(h: &History) -> Vec<crate::report::FailureGroup> {
    let failures: Vec<(String, String)> = h
        .calls
        .iter()
        .filter(|c| !c.answered)
        .filter_map(|c| c.error.clone().map(|e| (c.label.clone(), e)))
        .collect();
    crate::report::group_failures(&failures)
}

/// Waits until the run is no longer running, for at most `wait`, calling `tick` with its live
/// status about once a second. True when it ended.
pub(crate) async fn wait_end(
    dir: &RunDir,
    wait: Duration,
    tick: impl Fn(&RunStatus) + Send + Sync,
) -> bool {
    matches!(
        wait_for(dir, wait, |s| {
            tick(s);
            false
        })
        .await,
        Waited::Ended
    )
}

/// How a wait ended.
pub(crate) enum Waited {
    Ended,
    TimedOut,
    /// `until` said so.
    Until,
}

/// Waits as [`wait_end`] does, and stops early when `until` is true of the live status.
pub(crate) async fn wait_for(
    dir: &RunDir,
    wait: Duration,
    until: impl Fn(&RunStatus) -> bool + Send + Sync,
) -> Waited {
    let deadline = Instant::now() + wait;
    let mut last = Instant::now() - Duration::from_secs(1);
    loop {
        if !dir.is_running() {
            return Waited::Ended;
        }
        if Instant::now() >= deadline {
            return Waited::TimedOut;
        }
        if last.elapsed() >= Duration::from_secs(1) {
            last = Instant::now();
            if let Ok(s) = status(dir).await
                && until(&s)
            {
                return Waited::Until;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A finished run's outcome for a model: a first line that never reads as a plain success when
/// agents failed, the result (capped; the whole of it in `result.json`), the failures, and
/// where the transcripts are.
pub(crate) fn result(dir: &RunDir) -> Result<(String, Outcome)> {
    let h = History::fold(&crate::journal::load_run(dir)?);
    let status = h.status_now(dir.is_running());
    let (done, failed) = (h.done() + h.served, h.failed());
    // The script's warnings (a refused agent, a failed parallel() slot): what a model must not
    // miss when a result holds nulls. From the run's event log, the last 20.
    let warnings: Vec<String> = std::fs::read_to_string(dir.events())
        .unwrap_or_default()
        .lines()
        .filter_map(crate::events::from_line)
        .filter_map(|(_, e)| match e {
            // Warnings, and the runtime's own `parallel[i] failed: …` lines (logged as info,
            // as the reference does).
            crate::events::Event::Log { level, text }
                if level != crate::events::LogLevel::Info || text.contains(" failed: ") =>
            {
                Some(text)
            }
            _ => None,
        })
        .collect();
    let warned = if warnings.is_empty() {
        String::new()
    } else {
        format!("; {} warning(s) in its log, see warnings", warnings.len())
    };
    let headline = match status {
        Lifecycle::Completed if failed == 0 && warnings.is_empty() => {
            format!("completed: all {done} agents answered")
        }
        Lifecycle::Completed if failed == 0 => {
            format!("completed: {done} agents answered{warned}")
        }
        Lifecycle::Completed => format!(
            "completed, but {failed} of {} agents failed (they returned null to the script; see failures){warned}",
            done + failed
        ),
        Lifecycle::Running | Lifecycle::Paused => format!("still {status}"),
        other => format!(
            "{other}: {}",
            h.error.as_deref().unwrap_or("the run did not finish")
        ),
    };
    let mut outcome = Outcome {
        run: RunStatus::from_run_dir(dir, &h),
        failures: failures(&h),
        warnings: warnings[warnings.len().saturating_sub(20)..].to_vec(),
        result: None,
        result_truncated: false,
        result_path: None,
        error: h.error.clone(),
        transcripts: Some(dir.transcripts_log()),
    };
    if let Some(result) = &h.result {
        let text = serde_json::to_string_pretty(result)?;
        if text.chars().count() > MAX_RESULT_CHARS {
            let path = dir.path().join("result.json");
            crate::run_dir::RunDir::write_private(&path, text.as_bytes())?;
            outcome.result = Some(json!(
                text.chars().take(MAX_RESULT_CHARS).collect::<String>()
            ));
            outcome.result_truncated = true;
            outcome.result_path = Some(path);
        } else {
            outcome.result = Some(result.clone());
        }
    }
    Ok((headline, outcome))
}

/// A run that has not ended, as `workflow_result` gives it: its status, no result yet.
pub(crate) fn unfinished(status: RunStatus) -> Outcome {
    Outcome {
        run: status,
        failures: Vec::new(),
        warnings: Vec::new(),
        result: None,
        result_truncated: false,
        result_path: None,
        error: None,
        transcripts: None,
    }
}

/// `workflow_control`: one command on the run's socket.
pub(crate) async fn control(
    dir: &RunDir,
    action: super::Action,
    agent: Option<&str>,
) -> Result<Value> {
    use super::Action;
    let agent_ref = || -> Result<AgentRef> {
        let a = agent.ok_or_else(|| {
            anyhow!(
                "`{}` needs `agent`: its number (as workflow_status lists them) or its label",
                action.as_str()
            )
        })?;
        Ok(match a.trim_start_matches('#').parse::<u32>() {
            Ok(n) => AgentRef::Number(n),
            Err(_) => AgentRef::Name(a.to_string()),
        })
    };
    let command = match action {
        Action::Pause => Command::Pause,
        Action::Continue => Command::Continue,
        Action::Stop => Command::Stop,
        Action::KillAgent => Command::Kill {
            agent: agent_ref()?,
        },
        Action::RestartAgent => Command::Restart {
            agent: agent_ref()?,
        },
    };
    let stop = command == Command::Stop;
    let reply = Client::connect(dir, "wfhost mcp")
        .await?
        .request(command)
        .await?;
    if stop {
        // The run ends at once (its agents are cancelled): report it ended.
        wait_end(dir, Duration::from_secs(30), |_| {}).await;
    }
    Ok(reply)
}
