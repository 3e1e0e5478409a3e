//! `wfhost logs RUN [--follow]`: the plain view of any run, live or finished, from its event
//! log (`events.jsonl`) or, with `--follow` on a live run, its control socket.

use crate::control::client::Client;
use crate::events::{Event, from_line};
use crate::run_dir::RunDir;
use anyhow::Result;
use clap::Args;
use std::io::Write;

pub(super) const AFTER_HELP: &str = "\
Without RUN: the newest run of this project.

Examples:
  wfhost logs                                   the newest run
  wfhost logs 20261121T063000-1a2b3c --follow   live until the run ends
  wfhost logs RUN --json                        the raw event stream (docs/events.md)";

#[derive(Args)]
pub(super) struct LogsArgs {
    /// The run [default: the newest].
    run_id: Option<String>,
    /// Keep printing as the run goes on, until it ends.
    #[arg(long, short = 'f')]
    follow: bool,
    /// The events as JSON lines, as `--events` writes them.
    #[arg(long)]
    json: bool,
}

/// The run a command means: the one named, else the newest (running ones first when
/// `running_first`).
pub(super) fn pick_run(run_id: Option<&str>, running_first: bool) -> Result<RunDir> {
    let cwd = std::env::current_dir()?;
    if let Some(id) = run_id {
        return RunDir::existing(&cwd, id);
    }
    let runs = RunDir::list(&cwd);
    let newest_running = running_first
        .then(|| runs.iter().find(|r| r.is_running()).cloned())
        .flatten();
    newest_running
        .or_else(|| runs.first().cloned())
        .ok_or_else(|| {
            crate::ExitError::usage(format!(
                "no runs in `{}`",
                crate::run_dir::runs_root(&cwd).display()
            ))
            .hint("start one with `wfhost run SCRIPT` (`--detach` runs it in the background)")
            .into()
        })
}

/// Prints one line of the event log; `failed` counts the failed agents so far, so that the
/// end says `⚠` when agents failed (as `output.log` and the run's own summary do).
fn print(out: &mut impl Write, line: &str, json: bool, failed: &mut u32) -> std::io::Result<()> {
    if json {
        return writeln!(out, "{line}");
    }
    let Some((_, event)) = from_line(line) else {
        return Ok(());
    };
    if let Event::AgentFailed { .. } = &event {
        *failed += 1;
    }
    if let Event::RunFinished {
        outcome,
        duration_ms,
    } = &event
    {
        let (mark, tail) = match *failed {
            0 => ("■", String::new()),
            n => ("⚠", format!(" · {n} agent(s) failed")),
        };
        return writeln!(
            out,
            "{mark} {outcome} in {:.1}s{tail}",
            std::time::Duration::from_millis(*duration_ms).as_secs_f64()
        );
    }
    match crate::printer::plain_line(&event) {
        Some(text) => writeln!(out, "{text}"),
        None => Ok(()),
    }
}

pub(super) async fn logs(a: LogsArgs) -> Result<u8> {
    let dir = pick_run(a.run_id.as_deref(), a.follow)?;
    let mut out = std::io::stdout().lock();
    let mut failed = 0;
    if a.follow && dir.is_running() {
        // The socket sends the whole stream from the start, then live: nothing is missed
        // between reading the file and connecting.
        if let Ok(client) = Client::connect(&dir, "wfhost logs").await {
            let mut lines = client.subscribe().await?;
            while let Some(line) = lines.next_line().await? {
                print(&mut out, &line, a.json, &mut failed)?;
                out.flush()?;
            }
            return Ok(crate::exit::OK);
        }
    }
    let text = std::fs::read_to_string(dir.events()).map_err(|e| {
        crate::ExitError::usage(format!(
            "run `{}` has no event log (`{}`: {e})",
            dir.id(),
            dir.events().display()
        ))
        .hint(format!(
            "runs made before wfhost kept one have none; `wfhost runs show {}` reads its journal",
            dir.id()
        ))
    })?;
    for line in text.lines() {
        print(&mut out, line, a.json, &mut failed)?;
    }
    Ok(crate::exit::OK)
}
