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
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    tools: super::tools::ToolArgs,
}

pub(super) async fn plan(a: PlanArgs) -> Result<u8> {
    let cwd = std::env::current_dir()?;
    let mut config = crate::config::load(&cwd)?.config;
    a.tools.apply(&mut config.tools, &cwd);
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
    // Input tokens counted by the Messages API when that is the backend the run would use.
    let backend = a.backend.clone().or_else(|| config.backend.clone());
    let (model, counter) = match backend.as_deref() {
        Some("messages") => {
            let m = Arc::new(crate::backend::messages::Messages::new(&config)?);
            (
                Some(crate::backend::Backend::default_model(m.as_ref())),
                Some(m),
            )
        }
        // Nothing runs, so the `claude` binary need not be here: its agents use the configured
        // model, or Claude Code's own default, projected at the default model's price.
        Some("claude") => (Some(Some(config.model().to_string())), None),
        Some(name) => (
            Some(crate::backend::select(Some(name), &config)?.default_model()),
            None,
        ),
        None => (None, None),
    };
    let claude_default = (backend.as_deref() == Some("claude") && config.model.is_none())
        .then(|| config.model().to_string());
    let mut plan = crate::plan::dry_run(crate::plan::DryRun {
        script,
        args,
        config: config.clone(),
        limits: a.limits.limits(),
        cwd,
        no_cache: a.limits.no_cache(),
        backend_model: model,
        counter,
    })
    .await?;
    if backend.as_deref() == Some("messages") {
        plan.tools = Some(crate::tools::describe(&config.tools)?);
    }
    if let Some(model) = claude_default {
        plan.warnings.push(format!(
            "`claude` agents use Claude Code's default model, which this plan cannot know: projected at `{model}`'s price (set `model` in wfhost.toml for another); their input is estimated and is a floor (files and tool results come on top)"
        ));
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&plan)?);
    } else {
        print!("{}", plan.render());
    }
    Ok(crate::exit::OK)
}
