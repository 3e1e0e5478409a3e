//! `wfhost agents`: the agent types a script can name in `agent({agentType})`.

use crate::sanitize;
use crate::workflows::Resolver;
use anyhow::Result;
use clap::Args;

pub(super) const AFTER_HELP: &str = "\
The built-ins, then `.claude/agents/*.md` of the project (nearest first, up to the repository
root) and `~/.claude/agents/`: Markdown with YAML front matter (`name`, `description`, `tools`,
`model`) whose body is the agent's system prompt, as Claude Code writes them. Every backend
applies a definition: its prompt, its model (unless the agent() call names one) and, for
`claude`, its tools.

Example:
  wfhost agents --json";

#[derive(Args)]
pub(super) struct AgentsArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub(super) fn agents(a: AgentsArgs) -> Result<u8> {
    let resolver = Resolver::discover(&std::env::current_dir()?);
    let defs = resolver.agent_defs();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&defs)?);
        return Ok(crate::exit::OK);
    }
    for d in defs {
        let source = d
            .path
            .as_ref()
            .map_or_else(|| "built in".to_string(), |p| p.display().to_string());
        println!(
            "{:<20} {}",
            sanitize::line(&d.name),
            sanitize::line(&d.description)
        );
        let mut facts = vec![source];
        if let Some(m) = &d.model {
            facts.push(format!("model {}", sanitize::line(m)));
        }
        if !d.tools.is_empty() {
            facts.push(format!("tools {}", sanitize::line(&d.tools.join(", "))));
        }
        println!("{:<20} {}", "", facts.join(" · "));
    }
    Ok(crate::exit::OK)
}
