//! `wfhost watch [RUN]`: the full-screen dashboard of a live run (dashboard/).

use crate::ExitError;
use crate::dashboard::{self, Exit, Link};
use crate::run_dir::RunDir;
use anyhow::Result;
use clap::Args;
use std::io::IsTerminal;

pub(super) const AFTER_HELP: &str = "\
Without RUN: the newest running run of this project.

Keys: ↑↓ move · Tab switches between phases and agents · Enter opens an agent's prompt, answer
and transcript · f filters agents by state · p pauses or continues the run · x kills the selected
agent · r restarts it (each asks y/N first) · s saves the script as a workflow · q leaves (the run
goes on).

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
        None => RunDir::list(&cwd)
            .into_iter()
            .find(RunDir::is_running)
            .ok_or_else(|| {
                ExitError::usage("no run of this project is running").hint(
                    "start one with `wfhost run SCRIPT --detach`; `wfhost runs` lists past runs",
                )
            })?,
    };
    let id = dir.id().to_string();
    let (exit, _) = dashboard::run(Link::Socket(dir), false).await?;
    match exit {
        Exit::Left => eprintln!(
            "left the dashboard; run {id} goes on (`wfhost watch {id}` to return, `wfhost stop {id}` to stop it)"
        ),
        Exit::RunEnded => {}
        Exit::Interrupted => return Ok(crate::exit::INTERRUPTED),
    }
    Ok(crate::exit::OK)
}
