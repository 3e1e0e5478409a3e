//! `wfhost mcp`: the MCP server for coding agents (mcp/).

use anyhow::Result;
use clap::Args;

pub(super) const AFTER_HELP: &str = "\
Started by an MCP client, which talks to it on stdin/stdout. It serves this project (the current
directory): its configuration, saved workflows and runs; `[mcp]` in wfhost.toml limits what a
client may do. See docs/mcp.md.

Examples:
  claude mcp add wfhost -- wfhost mcp            register with Claude Code
  npx @modelcontextprotocol/inspector wfhost mcp try it by hand";

#[derive(Args)]
pub(super) struct McpArgs {}

pub(super) async fn mcp(_a: McpArgs) -> Result<u8> {
    let cwd = std::env::current_dir()?;
    let config = crate::config::load(&cwd)?.config;
    crate::mcp::serve_stdio(cwd, config).await?;
    Ok(crate::exit::OK)
}
