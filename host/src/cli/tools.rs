//! `--tools` and the agents' guard rails, shared by `run`, `resume` and `plan`.

use clap::Args;
use std::path::Path;
use std::time::Duration;

/// What API agents (`messages`) may use: Claude Code's tool names, contained by the host
/// (docs/tools.md). Each flag overrides its `[tools]` key in wfhost.toml.
#[derive(Args, Clone, Debug, Default)]
pub(super) struct ToolArgs {
    /// The tools agents get, comma-separated: Read, Glob, Grep, Edit, Write, Bash (`none`: no
    /// tools) [default: Read,Glob,Grep; config `[tools] allow`]. An agent type's `tools:`
    /// narrows them for its agents.
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        help_heading = "Agent tools"
    )]
    tools: Option<Vec<String>>,
    /// Model turns one agent may take [default: 50; config `[tools] max_turns`].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..), help_heading = "Agent tools")]
    max_turns: Option<u32>,
    /// Tool calls one agent may make [default: 200; config `[tools] max_tool_calls`].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..), help_heading = "Agent tools")]
    max_tool_calls: Option<u32>,
    /// A `Bash` call's timeout when it names none, at most 10m [default: 2m; config
    /// `[tools] bash_timeout`].
    #[arg(long, value_name = "DURATION", value_parser = super::parse_positive_duration, help_heading = "Agent tools")]
    bash_timeout: Option<Duration>,
}

impl ToolArgs {
    /// The flags over the configuration; the workspace is the run's directory unless
    /// `[tools] workspace` names one (relative to that directory).
    pub(super) fn apply(&self, cfg: &mut crate::config::ToolsConfig, cwd: &Path) {
        if let Some(t) = &self.tools {
            cfg.allow = Some(t.clone());
        }
        if let Some(n) = self.max_turns {
            cfg.max_turns = Some(n);
        }
        if let Some(n) = self.max_tool_calls {
            cfg.max_tool_calls = Some(n);
        }
        if let Some(d) = self.bash_timeout {
            cfg.bash_timeout = Some(humantime::format_duration(d).to_string());
        }
        cfg.workspace = Some(match &cfg.workspace {
            Some(w) => cwd.join(w),
            None => cwd.to_path_buf(),
        });
    }
}
