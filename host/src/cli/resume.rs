//! `wfhost resume`: continue a run from its own snapshot of the script and args.

use super::run::{RunArgs, RunCommon, run};
use crate::ExitError;
use crate::run_dir::RunDir;
use anyhow::Result;
use clap::Args;

pub(super) const AFTER_HELP: &str = "\
Every agent call whose answer is in the run's journal is served from it (by content, in any
order); failed calls, and calls that are new or changed, run live. To resume with an edited
script instead of the run's snapshot: `wfhost run SCRIPT.js --resume RUN_ID`.

Example:
  wfhost resume 20261121T063000-1a2b3c --yes";

#[derive(Args)]
pub(super) struct ResumeArgs {
    /// The run to continue (see `wfhost runs`).
    run_id: String,
    #[command(flatten)]
    common: RunCommon,
}

pub(super) async fn resume(mut a: ResumeArgs) -> Result<u8> {
    let cwd = std::env::current_dir()?;
    let dir = RunDir::existing(&cwd, &a.run_id)?;
    // A prefix or `@last` names the run; from here on, its whole id.
    a.run_id = dir.id().to_string();
    let point = crate::journal::resume_point(&dir.journal())?;
    if point.attempts == 0 {
        return Err(ExitError::usage(format!(
            "run `{}` never started: it was stopped before its first record, so there is nothing to resume",
            a.run_id
        ))
        .hint("start the script again with `wfhost run`")
        .into());
    }
    if !dir.script().exists() {
        return Err(ExitError::usage(format!(
            "run `{}` has no script snapshot (it ran a compiled module)",
            a.run_id
        ))
        .hint(format!("`wfhost run MODULE.wasm --resume {}`", a.run_id))
        .into());
    }
    let args_file = dir.args();
    a.common.backend = a.common.backend.or_else(|| point.backend.clone());
    run(RunArgs {
        target: dir.script().display().to_string(),
        args: None,
        args_file: None,
        args_exact: args_file.exists().then_some(args_file),
        resume_point: Some(Box::new(point)),
        resume: Some(a.run_id),
        no_journal: false,
        run_id: None,
        common: a.common,
    })
    .await
}
