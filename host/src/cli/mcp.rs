//! `wfhost mcp`: the MCP server for coding agents (mcp/).

use anyhow::Result;
use clap::Args;

pub(super) const AFTER_HELP: &str = "\
Started by an MCP client, which talks to it on stdin/stdout. It serves this project (the current
directory): its configuration, saved workflows and runs; `[mcp]` in wfhost.toml limits what a
client may do. See docs/mcp.md.

Examples:
  claude mcp add wfhost -- wfhost mcp            register with Claude Code
  npx @modelcontextprotocol/inspector wfhost mcp try it by hand
  WFHOST_MCP_TOKEN=… wfhost mcp --http 127.0.0.1:8765   streamable HTTP, bearer token";

#[derive(Args)]
pub(super) struct McpArgs {
    /// Serve streamable HTTP on this loopback address (e.g. 127.0.0.1:8765) instead of stdio;
    /// every request needs `Authorization: Bearer $WFHOST_MCP_TOKEN` (a random token is made
    /// and printed when it is unset).
    #[arg(long, value_name = "ADDR")]
    http: Option<std::net::SocketAddr>,
}

pub(super) async fn mcp(a: McpArgs) -> Result<u8> {
    let cwd = std::env::current_dir()?;
    let config = crate::config::load(&cwd)?.config;
    match a.http {
        Some(addr) => crate::mcp::http::serve(cwd, config, addr).await?,
        None => crate::mcp::serve_stdio(cwd, config).await?,
    }
    Ok(crate::exit::OK)
}

/// The permission helper a `claude` agent is started with (not for people).
#[derive(Args)]
pub(super) struct PermissionServerArgs {
    /// The run's control socket.
    #[arg(long)]
    socket: std::path::PathBuf,
    /// The agent's number.
    #[arg(long)]
    agent: Option<u32>,
}

pub(super) async fn permission_server(a: PermissionServerArgs) -> Result<u8> {
    crate::mcp::permission::serve(a.socket, a.agent).await?;
    Ok(crate::exit::OK)
}
