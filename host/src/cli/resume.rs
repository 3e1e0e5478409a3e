//! `wfhost resume`: continue a run from its own snapshot of the script and args.

use super::LimitArgs;
use super::run::{RunArgs, run};
use crate::journal::{self, Record};
use anyhow::{Result, bail};
use clap::Args;

pub const AFTER_HELP: &str = "\
Every agent call whose answer is in the run's journal is served from it (by content, in any
order); failed calls, and calls that are new or changed, run live. To resume with an edited
script instead of the run's snapshot: `wfhost run SCRIPT.js --resume RUN_ID`.

Example:
  wfhost resume 20261121T063000-1a2b3c --yes";

#[derive(Args)]
pub struct ResumeArgs {
    /// The run to continue (see `wfhost runs`).
    run_id: String,
    /// Who answers agents [default: the backend the run used].
    #[arg(long, value_name = "NAME")]
    backend: Option<String>,
    /// Print one JSON report on stdout when the run ends.
    #[arg(long)]
    json: bool,
    /// Run without asking for approval (required without a terminal).
    #[arg(long, short = 'y')]
    yes: bool,
    /// No progress on stderr.
    #[arg(long, short = 'q')]
    quiet: bool,
    /// Write every event as a JSON line to FILE (`-`: stdout). Schema: docs/events.md.
    #[arg(long, value_name = "FILE")]
    events: Option<String>,
    /// A hard ceiling on output tokens.
    #[arg(long, value_name = "N")]
    budget_tokens: Option<u64>,
    #[command(flatten)]
    limits: LimitArgs,
}

pub async fn resume(a: ResumeArgs) -> Result<u8> {
    let cwd = std::env::current_dir()?;
    let dir = journal::run_dir(&cwd, &a.run_id)?;
    if !dir.join("journal.jsonl").exists() {
        bail!(
            "no run `{}` in `{}`\nhint: `wfhost runs` lists the runs of this project",
            a.run_id,
            journal::runs_dir(&cwd).display()
        );
    }
    let started_backend = journal::load(&dir)?
        .records
        .into_iter()
        .find_map(|r| match r {
            Record::RunStarted { backend, .. } => Some(backend),
            _ => None,
        });
    let Some(started_backend) = started_backend else {
        bail!(
            "run `{}` never started: it was stopped before its first record, so there is nothing to resume\nhint: start the script again with `wfhost run`",
            a.run_id
        );
    };
    let script = dir.join("script.js");
    if !script.exists() {
        bail!(
            "run `{}` has no script snapshot (it ran a compiled module)\nhint: `wfhost run MODULE.wasm --resume {}`",
            a.run_id,
            a.run_id
        );
    }
    let args_file = dir.join("args.json");
    run(RunArgs {
        target: script.display().to_string(),
        args: None,
        args_file: args_file.exists().then_some(args_file),
        backend: a.backend.or(Some(started_backend)),
        json: a.json,
        yes: a.yes,
        quiet: a.quiet,
        events: a.events,
        budget_tokens: a.budget_tokens,
        resume: Some(a.run_id),
        no_journal: false,
        max_cost: None,
        record: None,
        limits: a.limits,
    })
    .await
}
