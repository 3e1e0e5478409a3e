//! `wfhost runs`: the runs of this project, from their journals.

use crate::backend::Usage;
use crate::journal::{self, Loaded, Record};
use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

pub const AFTER_HELP: &str = "\
Runs live in .wfhost/runs/<run_id>/ of the project (the nearest directory with .git, else the
current one; $WFHOST_RUNS_DIR overrides).

Examples:
  wfhost runs                         every run, newest first
  wfhost runs show 20261121T063000-1a2b3c
  wfhost runs gc --older-than 30d     delete finished runs started more than 30 days ago";

#[derive(Args)]
pub struct RunsArgs {
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
pub struct Summary {
    pub run_id: String,
    pub name: String,
    pub script: String,
    pub backend: String,
    /// `running`, `completed`, `failed`, `rejected`, `interrupted` or `crashed`.
    pub status: String,
    pub agents_done: u32,
    pub agents_failed: u32,
    pub agents_cached: u32,
    pub usage: Usage,
    pub started_at: String,
    pub duration_ms: u64,
    /// 1 + the number of resumes.
    pub attempts: u32,
}

/// One agent of a run, for `runs show`.
#[derive(Debug, Serialize)]
struct AgentRow {
    label: String,
    phase: Option<String>,
    key: String,
    occurrence: u32,
    /// `done`, `failed`, `cached` or `running` (no outcome recorded).
    status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    usage: Usage,
}

pub fn summarise(run_id: &str, dir: &Path, loaded: &Loaded) -> Summary {
    let mut s = Summary {
        run_id: run_id.to_string(),
        name: String::new(),
        script: String::new(),
        backend: String::new(),
        status: "crashed".into(),
        agents_done: 0,
        agents_failed: 0,
        agents_cached: 0,
        usage: Usage::default(),
        started_at: String::new(),
        duration_ms: 0,
        attempts: 0,
    };
    let mut outcome: HashMap<(&str, u32), bool> = HashMap::new();
    for r in &loaded.records {
        match r {
            Record::RunStarted {
                name,
                script,
                backend,
                started_at,
                ..
            } => {
                if s.attempts == 0 {
                    (s.name, s.script, s.started_at) =
                        (name.clone(), script.clone(), started_at.clone());
                }
                s.backend = backend.clone();
                s.attempts += 1;
                s.status = "crashed".into();
            }
            Record::Result {
                key,
                occurrence,
                usage,
                ..
            } => {
                outcome.insert((key, *occurrence), true);
                s.usage += *usage;
            }
            Record::Failed {
                key, occurrence, ..
            } => {
                outcome.entry((key, *occurrence)).or_insert(false);
            }
            Record::Cached { .. } => s.agents_cached += 1,
            Record::RunFinished {
                outcome,
                duration_ms,
                ..
            } => {
                s.status = outcome.clone();
                s.duration_ms += duration_ms;
            }
            Record::Interrupted { .. } => s.status = "interrupted".into(),
            _ => {}
        }
    }
    s.agents_done = outcome.values().filter(|ok| **ok).count() as u32;
    s.agents_failed = outcome.values().filter(|ok| !**ok).count() as u32;
    if journal::is_running(dir) {
        s.status = "running".into();
    }
    s
}

fn agents(loaded: &Loaded) -> Vec<AgentRow> {
    let mut rows: Vec<AgentRow> = Vec::new();
    let mut index: HashMap<(String, u32), usize> = HashMap::new();
    for r in &loaded.records {
        let mut row =
            |key: &String, occurrence: u32, label: &str, phase: Option<String>, status: &str| {
                let i = *index.entry((key.clone(), occurrence)).or_insert_with(|| {
                    rows.push(AgentRow {
                        label: label.to_string(),
                        phase,
                        key: key.clone(),
                        occurrence,
                        status: String::new(),
                        value: None,
                        error: None,
                        usage: Usage::default(),
                    });
                    rows.len() - 1
                });
                rows[i].status = status.to_string();
                i
            };
        match r {
            Record::AgentStarted {
                key,
                occurrence,
                label,
                phase,
                ..
            } => {
                row(key, *occurrence, label, phase.clone(), "running");
            }
            Record::Cached {
                key,
                occurrence,
                label,
                phase,
                ..
            } => {
                row(key, *occurrence, label, phase.clone(), "cached");
            }
            Record::Result {
                key,
                occurrence,
                value,
                usage,
                ..
            } => {
                let i = row(key, *occurrence, "", None, "done");
                (rows[i].value, rows[i].usage, rows[i].error) = (Some(value.clone()), *usage, None);
            }
            Record::Failed {
                key,
                occurrence,
                error,
            } => {
                let i = row(key, *occurrence, "", None, "failed");
                rows[i].error = Some(error.clone());
            }
            _ => {}
        }
    }
    rows
}

fn list_runs(cwd: &Path) -> Vec<(String, std::path::PathBuf)> {
    let mut runs: Vec<(String, std::path::PathBuf)> = std::fs::read_dir(journal::runs_dir(cwd))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.path().join("journal.jsonl").exists())
                .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
                .collect()
        })
        .unwrap_or_default();
    runs.sort();
    runs.reverse(); // run ids start with their start time: newest first
    runs
}

pub async fn runs(a: RunsArgs) -> Result<u8> {
    let cwd = std::env::current_dir()?;
    match a.command {
        None => {
            let mut summaries = Vec::new();
            for (id, dir) in list_runs(&cwd) {
                match journal::load(&dir) {
                    Ok(loaded) => summaries.push(summarise(&id, &dir, &loaded)),
                    Err(e) => eprintln!("warning: skipping run `{id}`: {e:#}"),
                }
            }
            if a.json {
                println!("{}", serde_json::to_string_pretty(&summaries)?);
            } else if summaries.is_empty() {
                eprintln!("no runs in `{}`", journal::runs_dir(&cwd).display());
            } else {
                println!(
                    "{:<24} {:<18} {:<11} {:>16} {:>16} {:<21} {:>9}",
                    "RUN",
                    "NAME",
                    "STATUS",
                    "DONE/FAIL/CACHED",
                    "TOKENS IN/OUT",
                    "STARTED",
                    "DURATION"
                );
                for s in &summaries {
                    println!(
                        "{:<24} {:<18} {:<11} {:>16} {:>16} {:<21} {:>8.1}s",
                        s.run_id,
                        truncate(&s.name, 18),
                        s.status,
                        format!("{}/{}/{}", s.agents_done, s.agents_failed, s.agents_cached),
                        format!("{}/{}", s.usage.input_tokens, s.usage.output_tokens),
                        s.started_at,
                        s.duration_ms as f64 / 1000.0
                    );
                }
            }
        }
        Some(RunsCommand::Show { run_id }) => {
            let dir = journal::run_dir(&cwd, &run_id)?;
            if !dir.join("journal.jsonl").exists() {
                bail!("no run `{run_id}`\nhint: `wfhost runs` lists the runs of this project");
            }
            let loaded = journal::load(&dir)?;
            let summary = summarise(&run_id, &dir, &loaded);
            let rows = agents(&loaded);
            let phases: Vec<String> = loaded
                .records
                .iter()
                .filter_map(|r| match r {
                    Record::Phase { title } => Some(title.clone()),
                    _ => None,
                })
                .collect();
            let last = loaded.records.iter().rev().find_map(|r| match r {
                Record::RunFinished { result, error, .. } => Some((result.clone(), error.clone())),
                _ => None,
            });
            let (result, error) = last.unwrap_or_default();
            if a.json {
                let v = serde_json::json!({
                    "summary": summary, "phases": phases, "agents": rows, "result": result, "error": error,
                    "torn_tail": loaded.torn_tail,
                });
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(crate::exit::OK);
            }
            println!(
                "run {} — {} ({})",
                summary.run_id, summary.name, summary.status
            );
            println!(
                "  script {} · backend {} · started {} · {} attempt(s)",
                summary.script, summary.backend, summary.started_at, summary.attempts
            );
            let mut current: Option<&Option<String>> = None;
            for row in &rows {
                if current != Some(&row.phase) {
                    println!(
                        "{}",
                        row.phase
                            .as_deref()
                            .map_or("(no phase)".to_string(), |p| format!("phase {p}"))
                    );
                    current = Some(&row.phase);
                }
                let detail = match (&row.value, &row.error) {
                    (_, Some(e)) => format!("failed: {}", truncate(e, 60)),
                    (Some(v), _) => truncate(&v.to_string(), 60),
                    _ => String::new(),
                };
                let mark = match row.status.as_str() {
                    "done" => "✓",
                    "failed" => "✗",
                    "cached" => "↺",
                    _ => "…",
                };
                println!(
                    "  {mark} {:<32} {:>6} out  {detail}",
                    truncate(&row.label, 32),
                    row.usage.output_tokens
                );
            }
            match (result, error) {
                (_, Some(e)) => println!("error: {e}"),
                (Some(r), _) => println!("result: {}", serde_json::to_string_pretty(&r)?),
                _ => {}
            }
        }
        Some(RunsCommand::Gc {
            older_than,
            dry_run,
        }) => {
            let now = std::time::SystemTime::now();
            let (mut removed, mut kept) = (0, 0);
            for (id, dir) in list_runs(&cwd) {
                let started = journal::load(&dir).ok().and_then(|l| {
                    l.records.iter().find_map(|r| match r {
                        Record::RunStarted { started_at, .. } => {
                            humantime::parse_rfc3339(started_at).ok()
                        }
                        _ => None,
                    })
                });
                let started =
                    started.or_else(|| std::fs::metadata(&dir).and_then(|m| m.modified()).ok());
                let old =
                    started.is_some_and(|t| now.duration_since(t).unwrap_or_default() > older_than);
                if old && !journal::is_running(&dir) {
                    if !dry_run {
                        std::fs::remove_dir_all(&dir)?;
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
        }
    }
    Ok(crate::exit::OK)
}

fn truncate(s: &str, n: usize) -> String {
    let one_line = s.replace('\n', " ");
    if one_line.chars().count() > n {
        format!("{}…", one_line.chars().take(n - 1).collect::<String>())
    } else {
        one_line
    }
}
