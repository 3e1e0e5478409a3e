//! `wfhost runs`: the runs of this project, from their journals.

use crate::agent::Usage;
use crate::journal::{History, Lifecycle, Transcripts};
use crate::run_dir::{RunDir, runs_root};
use crate::sanitize;
use anyhow::Result;
use clap::{Args, Subcommand};
use serde::Serialize;
use std::time::Duration;

pub(super) const AFTER_HELP: &str = "\
Runs live in .wfhost/runs/<run_id>/ of the project (the nearest directory with .git, else the
current one; $WFHOST_RUNS_DIR overrides).

Examples:
  wfhost runs                         every run, newest first
  wfhost runs show 20261121T063000-1a2b3c
  wfhost runs gc --older-than 30d     delete finished runs started more than 30 days ago";

#[derive(Args)]
pub(super) struct RunsArgs {
    #[command(subcommand)]
    command: Option<RunsCommand>,
    /// Print JSON.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand)]
enum RunsCommand {
    /// One run: its phases, agents and result.
    Show { run_id: String },
    /// Delete runs that started before a time ago (running runs are kept).
    Gc {
        /// e.g. 30d, 12h.
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        older_than: Duration,
        /// Only say what would be deleted.
        #[arg(long)]
        dry_run: bool,
    },
}

/// One run, summarised from its journal.
#[derive(Debug, Serialize)]
pub(super) struct Summary {
    pub run_id: String,
    pub name: String,
    pub script: String,
    pub backend: String,
    pub status: Lifecycle,
    pub agents_done: u32,
    pub agents_failed: u32,
    pub agents_cached: u32,
    /// Started and not finished: running or queued (a live run), or lost (a crashed one).
    pub agents_unfinished: u32,
    pub usage: Usage,
    pub started_at: String,
    pub duration_ms: u64,
    /// 1 + the number of resumes.
    pub attempts: u32,
}

pub(super) fn summarise(run: &RunDir, h: &History) -> Summary {
    Summary {
        run_id: run.id().to_string(),
        name: h.name.clone(),
        script: h.script.clone(),
        backend: h.backend.clone(),
        status: h.status_now(run.is_running()),
        agents_done: h.done(),
        agents_failed: h.failed(),
        agents_cached: h.served,
        agents_unfinished: u32::try_from(
            h.last_attempt
                .iter()
                .filter(|s| h.calls[s.call].state == crate::agent::AgentState::Running)
                .count(),
        )
        .unwrap_or(u32::MAX),
        usage: h.usage,
        started_at: h.started_at.clone(),
        duration_ms: h.duration_ms,
        attempts: h.attempts,
    }
}

pub(super) fn runs(a: RunsArgs) -> Result<u8> {
    let cwd = std::env::current_dir()?;
    match a.command {
        None => list(&cwd, a.json)?,
        Some(RunsCommand::Show { run_id }) => show(&cwd, &run_id, a.json)?,
        Some(RunsCommand::Gc {
            older_than,
            dry_run,
        }) => gc(&cwd, older_than, dry_run)?,
    }
    Ok(crate::exit::OK)
}

/// `wfhost runs`: every run of the project, newest first, as a table or JSON.
fn list(cwd: &std::path::Path, json: bool) -> Result<()> {
    let mut summaries = Vec::new();
    for run in RunDir::list(cwd) {
        match crate::journal::load_run(&run) {
            Ok(loaded) => summaries.push(summarise(&run, &History::fold(&loaded))),
            Err(e) => eprintln!("warning: skipping run `{}`: {e:#}", run.id()),
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&summaries)?);
    } else if summaries.is_empty() {
        eprintln!("no runs in `{}`", runs_root(cwd).display());
    } else {
        println!(
            "{:<24} {:<18} {:<11} {:>16} {:>16} {:<21} {:>9}",
            "RUN", "NAME", "STATUS", "DONE/FAIL/CACHED", "TOKENS IN/OUT", "STARTED", "DURATION"
        );
        for s in &summaries {
            let status = match s.status {
                Lifecycle::Running | Lifecycle::Paused => {
                    format!("{} ({})", s.status, s.agents_unfinished)
                }
                other => other.to_string(),
            };
            println!(
                "{:<24} {:<18} {:<11} {:>16} {:>16} {:<21} {:>8.1}s",
                s.run_id,
                truncate(&s.name, 18),
                status,
                format!("{}/{}/{}", s.agents_done, s.agents_failed, s.agents_cached),
                format!("{}/{}", s.usage.input_tokens, s.usage.output_tokens),
                s.started_at,
                s.duration_ms as f64 / 1000.0
            );
        }
    }
    Ok(())
}

/// `wfhost runs show RUN`: its agents phase by phase, the operators' commands and decisions,
/// and its result or error.
fn show(cwd: &std::path::Path, run_id: &str, json: bool) -> Result<()> {
    let run = RunDir::existing(cwd, run_id)?;
    let history = History::fold(&crate::journal::load_run(&run)?);
    let summary = summarise(&run, &history);
    let transcripts = Transcripts::load(&run);
    let duration = |c: &crate::journal::Call| transcripts.duration_ms(&c.key, c.occurrence);
    // Where its batches stand (`--batch`), as the run's events last told it.
    let batches = if history.batches.is_empty() {
        Vec::new()
    } else {
        crate::control::RunStatus::from_run_dir(&run, &history).batches
    };
    if json {
        let agents: Vec<serde_json::Value> = history
            .calls
            .iter()
            .map(|c| {
                let mut v = serde_json::to_value(c).unwrap_or_default();
                v["duration_ms"] = duration(c).into();
                v
            })
            .collect();
        let v = serde_json::json!({
            "summary": summary, "phases": history.phases, "agents": agents,
            "result": history.result, "error": history.error,
            "torn_tail": history.torn_tail, "controls": history.controls,
            "permissions": history.permissions, "raises": history.raises,
            "batches": batches,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!(
        "run {} — {} ({})",
        summary.run_id,
        sanitize::line(&summary.name),
        summary.status
    );
    println!(
        "  script {} · backend {} · started {} · {} attempt(s)",
        sanitize::line(&summary.script),
        summary.backend,
        summary.started_at,
        summary.attempts
    );
    for b in &batches {
        println!("  ⧗ {b}");
    }
    print_calls(&history, &duration);
    print_steering(&history);
    match (&history.result, &history.error) {
        (_, Some(e)) => println!("error: {}", sanitize::text(e)),
        (Some(r), _) => println!(
            "result: {}",
            sanitize::text(&serde_json::to_string_pretty(r)?)
        ),
        _ => {}
    }
    Ok(())
}

/// Each agent call, under its phase: state, label, output tokens, how long, the start of its
/// answer or error.
fn print_calls(history: &History, duration: &dyn Fn(&crate::journal::Call) -> Option<u64>) {
    let mut current: Option<&Option<String>> = None;
    for row in &history.calls {
        if current != Some(&row.phase) {
            println!(
                "{}",
                row.phase
                    .as_deref()
                    .map_or("(no phase)".to_string(), |p| format!(
                        "phase {}",
                        sanitize::line(p)
                    ))
            );
            current = Some(&row.phase);
        }
        let detail = match (&row.value, &row.error) {
            (_, Some(e)) => format!("failed: {}", truncate(e, 60)),
            (Some(v), _) => truncate(&v.to_string(), 60),
            _ => String::new(),
        };
        let took = duration(row).map_or_else(String::new, |ms| {
            format!("{:.1}s", std::time::Duration::from_millis(ms).as_secs_f64())
        });
        println!(
            "  {} {:<32} {:>6} out {took:>7}  {detail}",
            row.state.mark(),
            truncate(&row.label, 32),
            row.usage.output_tokens
        );
    }
}

/// What operators did: ceilings raised on a resume, control commands, and decisions on agents'
/// permission requests.
fn print_steering(history: &History) {
    for r in &history.raises {
        println!(
            "  ⇡ {} ceilings raised: {} by {}",
            r.at,
            r.describe(),
            sanitize::line(&r.by)
        );
    }
    for c in &history.controls {
        let agent = c.agent.map(|n| format!(" agent {n}")).unwrap_or_default();
        println!(
            "  ⏵ {} {}{agent} by {}",
            c.at,
            c.action,
            sanitize::line(&c.by)
        );
    }
    for p in &history.permissions {
        let agent = p.agent.map(|n| format!(" agent {n}")).unwrap_or_default();
        let rule = p
            .rule
            .as_ref()
            .map(|r| format!(" · rule {}", sanitize::line(r)))
            .unwrap_or_default();
        println!(
            "  ⚿ {} {}{agent} {} ({}) by {}{rule}: {}",
            p.at,
            sanitize::line(&p.tool),
            if p.allowed { "allowed" } else { "denied" },
            p.decision,
            sanitize::line(&p.by),
            truncate(
                crate::control::permission::show_input(&p.input)
                    .trim_end()
                    .replace('\n', " · ")
                    .as_str(),
                500
            )
        );
    }
}

/// `wfhost runs gc`: removes runs older than `older_than` that are not running.
fn gc(cwd: &std::path::Path, older_than: std::time::Duration, dry_run: bool) -> Result<()> {
    let now = std::time::SystemTime::now();
    let (mut removed, mut kept) = (0, 0);
    for run in RunDir::list(cwd) {
        let id = run.id();
        let started = crate::journal::load_run(&run)
            .ok()
            .and_then(|l| humantime::parse_rfc3339(&History::fold(&l).started_at).ok());
        let started = started.or_else(|| {
            std::fs::metadata(run.path())
                .and_then(|m| m.modified())
                .ok()
        });
        let old = started.is_some_and(|t| now.duration_since(t).unwrap_or_default() > older_than);
        if old && !run.is_running() {
            if !dry_run {
                std::fs::remove_dir_all(run.path())?;
            }
            println!("{} {id}", if dry_run { "would remove" } else { "removed" });
            removed += 1;
        } else {
            kept += 1;
        }
    }
    eprintln!(
        "{removed} run(s) {}, {kept} kept",
        if dry_run { "to remove" } else { "removed" }
    );
    Ok(())
}

/// One line of at most `n` characters, safe for a terminal.
fn truncate(s: &str, n: usize) -> String {
    let one_line = sanitize::line(&s.replace('\n', " ")).into_owned();
    if one_line.chars().count() > n {
        format!("{}…", one_line.chars().take(n - 1).collect::<String>())
    } else {
        one_line
    }
}
