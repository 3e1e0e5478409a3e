//! `wfhost plan`: a run's projected agents, tokens and cost, before it runs (plan.rs).

use super::{LimitArgs, read_file};
use crate::ExitError;
use crate::run::parse_args;
use crate::script::Script;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;
use std::sync::Arc;

pub(super) const AFTER_HELP: &str = "\
The script runs in the sandbox with every agent answered at once by a synthesized answer (an
object built from its schema, placeholder text otherwise), so nothing is spent. Input tokens are
estimated from prompt sizes (characters ÷ 4, plus the framing), or counted by the Messages
API's count-tokens endpoint when the backend is `messages`; output tokens as a range; cost from
the price table. Warnings: a run above the size guideline, the same prompt sent many times, a
barrier (parallel() then parallel()) that could be a pipeline. A loop that never converges stops at --max-agents, and the plan says so.
See docs/plan.md.

Examples:
  wfhost plan review.js --args '{\"files\": [\"a.rs\", \"b.rs\"]}'
  wfhost plan review.js --json
  wfhost plan review.js --backend messages   # input counted by the API (free endpoint)";

#[derive(Args)]
pub(super) struct PlanArgs {
    /// A script (`.js`) or a saved workflow's name.
    target: String,
    /// The script's `args` (as for `wfhost run`).
    #[arg(long, value_name = "JSON", conflicts_with = "args_file")]
    args: Option<String>,
    /// Read `args` from a file.
    #[arg(long, value_name = "FILE")]
    args_file: Option<PathBuf>,
    /// Print the plan as JSON.
    #[arg(long)]
    json: bool,
    /// The backend the run would use [default: the configured one]. With `messages` (and
    /// ANTHROPIC_API_KEY set), input tokens are counted by the API's count-tokens endpoint.
    #[arg(long, value_name = "NAME")]
    backend: Option<String>,
    /// Project the cost through the Message Batches API (`messages`; as `wfhost run
    /// --batch` would send the agents): half the price.
    #[arg(long)]
    batch: bool,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    tools: super::tools::ToolArgs,
}

pub(super) async fn plan(a: PlanArgs) -> Result<u8> {
    let cwd = std::env::current_dir()?;
    let mut config = crate::config::load(&cwd)?.config;
    a.tools.apply(&mut config.tools, &cwd);
    if a.batch {
        config.messages.batch = Some(true);
    }
    let config = Arc::new(config);
    let args = match (&a.args, &a.args_file) {
        (Some(text), _) => Some(parse_args(text)?),
        (None, Some(path)) => Some(parse_args(&String::from_utf8_lossy(&read_file(path)?))?),
        (None, None) => None,
    };
    let path = super::run::resolve_target(&a.target, &cwd)?;
    let source = String::from_utf8(read_file(&path)?)
        .map_err(|_| ExitError::usage(format!("`{}` is not UTF-8 text", path.display())))?;
    let script = match Script::parse(&path.display().to_string(), &source) {
        Ok(s) => s,
        Err(r) => {
            eprintln!("error: the script was rejected: {}", r.render());
            return Ok(crate::exit::SCRIPT);
        }
    };
    let backend = a.backend.clone().or_else(|| config.backend.clone());
    let plan = crate::plan::on_backend(crate::plan::Planned {
        script,
        args,
        config,
        cwd,
        backend,
        limits: a.limits.limits(),
        no_cache: a.limits.no_cache(),
    })
    .await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&plan)?);
    } else {
        print!("{}", plan.render());
    }
    Ok(crate::exit::OK)
}
