//! `wfhost trace`: a run's execution trace as Mermaid, DOT or a self-contained HTML page.

use crate::journal::History;
use crate::run_dir::RunDir;
use crate::trace;
use anyhow::Result;
use clap::{Args, ValueEnum};
use std::path::PathBuf;

pub(super) const AFTER_HELP: &str = "\
Agents are nodes (label, state, tokens, duration), grouped by phase; edges show order,
parallel() fork/join, pipeline() stages, and data flow (a prompt containing an earlier answer).

Examples:
  wfhost trace 20261121T063000-1a2b3c --format mermaid > trace.mmd
  wfhost trace 20261121T063000-1a2b3c --format html -o trace.html   # open it in a browser
  wfhost trace 20261121T063000-1a2b3c --format dot | dot -Tsvg > trace.svg";

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Mermaid,
    Dot,
    Html,
    Json,
}

#[derive(Args)]
pub(super) struct TraceArgs {
    /// The run (see `wfhost runs`).
    run_id: String,
    #[arg(long, value_enum, default_value = "mermaid")]
    format: Format,
    /// Write to FILE instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
}

pub(super) fn trace(a: TraceArgs) -> Result<u8> {
    let cwd = std::env::current_dir()?;
    let run = RunDir::existing(&cwd, &a.run_id)?;
    let t = trace::build(&run, &History::fold(&crate::journal::load_run(&run)?));
    let text = match a.format {
        Format::Mermaid => trace::mermaid(&t),
        Format::Dot => trace::dot(&t),
        Format::Html => trace::html(&t),
        Format::Json => serde_json::to_string_pretty(&t)? + "\n",
    };
    match a.output {
        Some(path) => {
            std::fs::write(&path, text)?;
            eprintln!("wrote {}", path.display());
        }
        None => print!("{text}"),
    }
    Ok(crate::exit::OK)
}
