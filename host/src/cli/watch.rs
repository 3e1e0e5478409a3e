//! `wfhost watch [RUN]`: the full-screen dashboard of a live run (dashboard/).

use crate::ExitError;
use crate::dashboard::{self, Exit, Link};
use crate::run_dir::RunDir;
use anyhow::Result;
use clap::Args;
use std::io::IsTerminal;

pub(super) const AFTER_HELP: &str = "\
Without RUN: the newest running run of this project. A run that has ended opens read-only.

Keys: ↑↓ move · Tab switches between phases and agents · Enter opens an agent's prompt, answer
and transcript · f filters agents by state · p pauses or continues the run · x kills the selected
agent · r restarts it (each asks y/N first) · s saves the script as a workflow · ? shows the keys ·
q leaves (the run goes on).

Examples:
  wfhost run review.js --detach --yes && wfhost watch
  wfhost watch 20261121T063000-1a2b3c";

#[derive(Args)]
pub(super) struct WatchArgs {
    /// The run [default: the newest running run].
    run_id: Option<String>,
}

pub(super) async fn watch(a: WatchArgs) -> Result<u8> {
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        return Err(
            ExitError::usage("`wfhost watch` draws on a terminal, and this is not one")
                .hint("off a terminal, `wfhost logs RUN --follow` prints the run as lines")
                .into(),
        );
    }
    let cwd = std::env::current_dir()?;
    let dir = match &a.run_id {
        Some(id) => RunDir::existing(&cwd, id)?,
        None => {
            let mut running: Vec<RunDir> = RunDir::list(&cwd)
                .into_iter()
                .filter(RunDir::is_running)
                .collect();
            match running.len() {
                0 => {
                    return Err(ExitError::usage("no run of this project is running")
                        .hint("start one with `wfhost run SCRIPT --detach`; `wfhost watch RUN` opens a past run read-only (`wfhost runs` lists them)")
                        .into());
                }
                1 => running.remove(0),
                _ => pick(running)?,
            }
        }
    };
    let id = dir.id().to_string();
    // A run that has ended is browsed read-only, from its event log.
    let link = if dir.is_running() {
        Link::Socket(dir)
    } else {
        Link::Finished(dir)
    };
    let (exit, _) = dashboard::run(link, false).await?;
    match exit {
        Exit::Left => eprintln!(
            "left the dashboard; run {id} goes on (`wfhost watch {id}` to return, `wfhost stop {id}` to stop it)"
        ),
        Exit::RunEnded => {}
        Exit::Interrupted => return Ok(crate::exit::INTERRUPTED),
    }
    Ok(crate::exit::OK)
}

/// Several runs are running: the operator picks one by its number.
fn pick(mut runs: Vec<RunDir>) -> Result<RunDir> {
    use std::io::Write as _;
    let mut err = std::io::stderr().lock();
    writeln!(err, "{} runs are running:", runs.len())?;
    for (i, r) in runs.iter().enumerate() {
        writeln!(err, "  {:>2}  {}", i + 1, r.id())?;
    }
    write!(err, "watch which? [1-{}, Enter for 1] ", runs.len())?;
    err.flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    let answer = answer.trim();
    let n = if answer.is_empty() {
        1
    } else {
        answer
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=runs.len()).contains(n))
            .ok_or_else(|| {
                ExitError::usage(format!("`{answer}` is not one of the runs listed"))
                    .hint("`wfhost watch RUN` names one directly (a prefix of its id is enough)")
            })?
    };
    Ok(runs.remove(n - 1))
}
