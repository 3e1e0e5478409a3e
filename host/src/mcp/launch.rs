//! `workflow_run` in named steps: which script was given (`Given::of`), the project's policy
//! (`admit`: backends, the client's runs going at once), the script read and checked
//! (`script`), an inline one saved in its run directory (`save_inline`), the run started
//! (`launch`), and followed while the client waits (`follow`). Each step refuses with a
//! `ToolError` the model can act on; nothing starts before every check has passed.

use super::output::{Answer, Launched};
use super::{MAX_RUNS_PER_CLIENT, Server, ToolError, runs};
use crate::live::PhaseRow;
use crate::run_dir::RunDir;
use crate::script::Meta;
use crate::workflows::Resolver;
use rmcp::RoleServer;
use rmcp::service::RequestContext;
use std::path::PathBuf;
use std::time::Duration;

/// Which script a `workflow_run` call names.
pub(super) enum Given<'a> {
    Inline(&'a str),
    Path(&'a str),
    Saved(&'a str),
    /// Only `resumeFromRunId`: the run's own snapshot.
    Resume,
}

impl<'a> Given<'a> {
    pub(super) fn of(p: &'a super::RunParams) -> Result<Given<'a>, ToolError> {
        match (&p.script, &p.script_path, &p.name) {
            (Some(s), None, None) => Ok(Given::Inline(s)),
            (None, Some(sp), None) => Ok(Given::Path(sp)),
            (None, None, Some(n)) => Ok(Given::Saved(n)),
            (None, None, None) if p.resume_from_run_id.is_some() => Ok(Given::Resume),
            (None, None, None) => Err(
                "nothing to run: give `script` (the source), `scriptPath` (a .js file of the project) or `name` (a saved workflow; see workflow_list)".into(),
            ),
            _ => Err("give exactly one of `script`, `scriptPath` or `name`, not several".into()),
        }
    }
}

/// The script to run: its source, its file (`None` for inline ones until saved), and its meta
/// once checked.
pub(super) struct Source {
    source: String,
    path: Option<PathBuf>,
    pub(super) meta: Option<Meta>,
}

impl Source {
    /// The script's text.
    pub(super) fn text(&self) -> &str {
        &self.source
    }
}

/// A run whose last attempt ended at one of its ceilings: resuming it over MCP would stop there
/// again, and MCP cannot raise a ceiling (an operator's decision, docs/resume.md). The refusal
/// names the command a person can run.
fn ended_at_ceiling(id: &str, h: &crate::journal::History) -> Option<String> {
    let text = format!(
        "{} {}",
        h.error.as_deref().unwrap_or(""),
        h.result
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default()
    );
    let c = h.ceilings.as_ref()?;
    let (flag, now, more) = if text.contains("the cost ceiling is reached")
        || (text.contains("WorkflowBudgetError") && c.max_cost.is_some())
    {
        let v = c.max_cost?;
        ("--max-cost", format!("{v}"), format!("{}", v * 2.0))
    } else if text.contains("the token ceiling is reached") {
        let v = c.limits.max_tokens?;
        ("--max-tokens", v.to_string(), (v * 2).to_string())
    } else if text.contains("the token budget is spent")
        || (text.contains("WorkflowBudgetError") && c.budget_tokens.is_some())
    {
        let v = c.budget_tokens?;
        ("--budget-tokens", v.to_string(), (v * 2).to_string())
    } else if text.contains("WorkflowAgentCapError") || text.contains("agent() call cap reached") {
        let v = c.limits.max_agents;
        ("--max-agents", v.to_string(), (v * 2).to_string())
    } else {
        return None;
    };
    Some(format!(
        "run `{id}` ended at its ceiling ({flag} {now}): resumed over MCP it would stop there again, and MCP cannot raise a ceiling. Tell the user; a person can raise it and resume with `wfhost resume {id} {flag} {more} --raise` (the raise is journaled)"
    ))
}

impl Server {
    /// The project's `[mcp]` policy: the backend (the project's, or a resumed run's own) must be
    /// one it permits, and this client may not have more runs going than `max_runs`.
    pub(super) fn admit(&self, p: &super::RunParams) -> Result<(), ToolError> {
        let policy = &self.config.mcp;
        let permitted = |backend: &str| {
            policy.allowed_backends.as_ref().is_none_or(|allowed| {
                allowed
                    .iter()
                    .any(|b| b == backend || backend.starts_with(&format!("{b}:")))
            })
        };
        let allowed_list = || {
            policy
                .allowed_backends
                .clone()
                .unwrap_or_default()
                .join(", ")
        };
        let backend = self
            .config
            .backend
            .clone()
            .unwrap_or_else(|| "(automatic)".into());
        if !permitted(&backend) {
            return Err(format!(
                "the project's backend `{backend}` is not one [mcp] allowed_backends permits ({}); a person must change wfhost.toml",
                allowed_list()
            )
            .into());
        }
        if let Some(id) = &p.resume_from_run_id {
            let dir = self.run_dir(id)?;
            if let Ok(loaded) = crate::journal::load_run(&dir) {
                let history = crate::journal::History::fold(&loaded);
                if let Some(refusal) = ended_at_ceiling(id, &history) {
                    return Err(refusal.into());
                }
            }
            // A resume runs on the backend the run used, not the project's: the same policy
            // holds for it (an edited script would otherwise send new prompts to a backend
            // the project does not permit over MCP).
            if policy.allowed_backends.is_some() {
                let stored = crate::journal::resume_point(&dir.journal())
                    .ok()
                    .and_then(|point| point.backend)
                    .unwrap_or_else(|| "(unknown)".into());
                if !permitted(&stored) {
                    return Err(format!(
                        "run `{id}` ran on the backend `{stored}`, which [mcp] allowed_backends does not permit ({}): a person can resume it with `wfhost resume {id}`",
                        allowed_list()
                    )
                    .into());
                }
            }
        }
        // One client's runs going at once are capped: the runs it started that still run.
        let cap = policy.max_runs.unwrap_or(MAX_RUNS_PER_CLIENT);
        let going: Vec<String> = {
            let mut started = self
                .started
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            started.retain(|id| RunDir::existing(&self.cwd, id).is_ok_and(|d| d.is_running()));
            started.clone()
        };
        if going.len() >= cap as usize {
            return Err(format!(
                "this client already has {} runs going ({}), as many as [mcp] max_runs allows ({cap}): wait for one to end (workflow_result {{runId, wait}}) or stop one (workflow_control)",
                going.len(),
                going.join(", ")
            )
            .into());
        }
        Ok(())
    }

    /// The script, read and checked as `wfhost run` checks it (meta, imports, syntax).
    pub(super) async fn script(&self, given: &Given<'_>) -> Result<Source, ToolError> {
        let (origin, source, path) = match *given {
            Given::Inline(source) => {
                if self.config.mcp.inline_scripts == Some(false) {
                    return Err(
                        "this project does not accept inline scripts over MCP ([mcp] inline_scripts = false): save the script as a file of the project and pass `scriptPath`, or run a saved workflow by `name`".into(),
                    );
                }
                ("script".to_string(), source.to_string(), None)
            }
            Given::Path(sp) => {
                let path = runs::script_path(sp, &self.cwd)?;
                (sp.to_string(), runs::read(&path)?, Some(path))
            }
            Given::Saved(name) => {
                let path = Resolver::discover(&self.cwd).find(name)?;
                (format!("workflow '{name}'"), runs::read(&path)?, Some(path))
            }
            Given::Resume => {
                return Ok(Source {
                    source: String::new(),
                    path: None,
                    meta: None,
                });
            }
        };
        let script = runs::check(&origin, &source)
            .await
            .map_err(|e| format!("the script was rejected: {e}"))?;
        Ok(Source {
            source,
            path,
            meta: Some(script.meta),
        })
    }

    /// An inline script is saved in its run's directory, where the model can edit it and pass
    /// it back as `scriptPath` (`script.next.js` beside a resumed run's own).
    pub(super) fn save_inline(
        &self,
        given: &Given<'_>,
        source: &mut Source,
        resume: Option<&str>,
        new_id: &str,
    ) -> Result<(), ToolError> {
        if !matches!(given, Given::Inline(_)) {
            return Ok(());
        }
        let dir = match resume {
            Some(id) => self.run_dir(id)?,
            None => RunDir::new(&self.cwd, new_id)?,
        };
        let file = dir.path().join(if resume.is_some() {
            "script.next.js"
        } else {
            "script.js"
        });
        dir.create()
            .and_then(|()| Ok(std::fs::write(&file, &source.source)?))
            .map_err(|e| format!("the script could not be saved: {e:#}"))?;
        source.path = Some(file);
        Ok(())
    }

    /// Starts the run (a detached `wfhost run` under `[mcp]`'s ceilings); its id once its
    /// control socket is up, counted against this client's `max_runs`.
    pub(super) fn launch(
        &self,
        p: &super::RunParams,
        source: &Source,
        new_id: &str,
    ) -> Result<(RunDir, Launched), ToolError> {
        // A resume keeps the run's ceilings: `[mcp]`'s apply only where they are tighter (a
        // looser one would be a raise, which MCP cannot make).
        let stored = p
            .resume_from_run_id
            .as_deref()
            .and_then(|id| self.run_dir(id).ok())
            .and_then(|dir| crate::journal::resume_point(&dir.journal()).ok())
            .and_then(|point| point.ceilings);
        let (mut max_agents, mut max_cost) = (self.config.mcp.max_agents, self.config.mcp.max_cost);
        if let Some(c) = &stored {
            max_agents = max_agents.filter(|m| *m <= c.limits.max_agents);
            max_cost = max_cost.filter(|m| c.max_cost.is_none_or(|s| *m <= s));
        }
        let launch = runs::Launch {
            script: source.path.as_deref(),
            args: p.args.as_ref(),
            resume: p.resume_from_run_id.as_deref(),
            run_id: Some(new_id),
            max_agents,
            max_cost,
        };
        let run_id =
            runs::start(&launch, &self.cwd).map_err(|e| format!("the run did not start: {e:#}"))?;
        self.started
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(run_id.clone());
        let dir = self.run_dir(&run_id)?;
        let meta = source.meta.as_ref();
        let phases = meta
            .map(|m| {
                m.phases
                    .iter()
                    .map(|p| PhaseRow {
                        declared: true,
                        ..PhaseRow::titled(&p.title)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let launched = Launched {
            workflow_name: meta.map(|m| m.name.clone()),
            script_path: source.path.clone().unwrap_or_else(|| dir.script()),
            outcome: runs::unfinished(crate::control::RunStatus {
                run_id,
                name: meta.map(|m| m.name.clone()).unwrap_or_default(),
                status: "running".into(),
                phases,
                run_dir: Some(dir.path().to_path_buf()),
                ..crate::control::RunStatus::default()
            }),
        };
        Ok((dir, launched))
    }

    /// Waits up to `wait` for the run's end, reporting progress to a client that asked for it
    /// (a progress token); then its result, or that it still runs.
    pub(super) async fn follow(
        &self,
        dir: &RunDir,
        mut started: Launched,
        wait: Duration,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<Answer<Launched>, ToolError> {
        let token = ctx.meta.get_progress_token();
        let peer = ctx.peer.clone();
        // A 2026-07-28 client cannot be asked from here (the retry would start the run again):
        // a permission request ends the wait, pointing at workflow_result, which asks.
        let modern = super::confirm::asking(ctx) == super::confirm::Asking::ByRetry;
        let waited = runs::wait_for(dir, wait, |s| {
            if modern && !s.permissions.is_empty() {
                return true;
            }
            let Some(token) = &token else { return false };
            let a = s.agents;
            let done = a.done + a.cached + a.failed;
            let total = done + a.running + a.queued;
            let message = super::task::progress_line(s);
            let param = rmcp::model::ProgressNotificationParam::new(token.clone(), f64::from(done))
                .with_total(f64::from(total))
                .with_message(message);
            let peer = peer.clone();
            tokio::spawn(async move {
                let _ = peer.notify_progress(param).await;
            });
            false
        })
        .await;
        let still = match waited {
            runs::Waited::Ended => None,
            runs::Waited::TimedOut => Some(format!(
                "run {} is still running after {}s; workflow_result {{runId, wait}} waits for its end",
                dir.id(),
                wait.as_secs()
            )),
            runs::Waited::Until => Some(format!(
                "run {}: an agent asks for permission to use a tool; call workflow_result {{runId, wait}} to put it to the user",
                dir.id()
            )),
        };
        if let Some(headline) = still {
            if let Ok(now) = runs::status(dir).await {
                started.outcome.run = now;
            }
            return Ok(Answer::new(headline, started));
        }
        let (headline, outcome) = runs::result(dir)
            .map_err(|e| format!("the run ended, but its journal cannot be read: {e:#}"))?;
        started.outcome = outcome;
        Ok(Answer::new(headline, started))
    }
}
