//! `wfhost permission-server`: the MCP server a `claude` agent is started with
//! (`--permission-prompt-tool mcp__wfhost__approve`). When the agent wants a tool outside its
//! allow-list, Claude Code calls `approve`; this asks the run's control socket, which shows the
//! request in `wfhost watch` and `workflow_status` and answers when an operator does — or denies
//! it, with the reason, when nobody does in time. It never hangs: an unreachable run is a deny.

use crate::control::{Command, PROTOCOL_VERSION, Request};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, Implementation, ServerCapabilities, ServerConfig};
use rmcp::{ErrorData as McpError, ServerHandler, schemars, tool, tool_handler, tool_router};
use serde::Deserialize;
use serde_json::{Value, json};
use std::path::PathBuf;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub(crate) struct ApproveParams {
    /// The tool the agent wants to use.
    pub tool_name: String,
    /// Its input.
    #[serde(default)]
    pub input: Value,
}

#[derive(Clone)]
pub(crate) struct PermissionServer {
    socket: PathBuf,
    agent: Option<u32>,
    tool_router: ToolRouter<PermissionServer>,
}

/// Asks the run; `(allowed, message)`.
async fn ask(socket: &PathBuf, agent: Option<u32>, tool: &str, input: &Value) -> (bool, String) {
    use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
    let request = Request {
        v: PROTOCOL_VERSION,
        command: Command::Permission {
            agent,
            tool: tool.to_string(),
            input: input.clone(),
        },
        client: Some("wfhost permission-server".into()),
    };
    let asked = async {
        let stream = tokio::net::UnixStream::connect(socket).await?;
        let (read, mut write) = stream.into_split();
        let mut line = serde_json::to_string(&request)?;
        line.push('\n');
        write.write_all(line.as_bytes()).await?;
        let reply = tokio::io::BufReader::new(read)
            .lines()
            .next_line()
            .await?
            .unwrap_or_default();
        anyhow::Ok(serde_json::from_str::<Value>(&reply)?)
    };
    match asked.await {
        Ok(v) if v["behavior"] == "allow" => {
            (true, v["message"].as_str().unwrap_or("").to_string())
        }
        Ok(v) => (
            false,
            v["message"]
                .as_str()
                .or(v["error"].as_str())
                .unwrap_or("denied")
                .to_string(),
        ),
        Err(e) => (
            false,
            format!("wfhost could not ask anyone for permission to use `{tool}` ({e}): denied"),
        ),
    }
}

#[tool_router]
impl PermissionServer {
    pub(crate) fn new(socket: PathBuf, agent: Option<u32>) -> PermissionServer {
        PermissionServer {
            socket,
            agent,
            tool_router: Self::tool_router(),
        }
    }

    #[tool(
        description = "Asks the person running this workflow whether the agent may use a tool outside its allow-list."
    )]
    async fn approve(
        &self,
        Parameters(p): Parameters<ApproveParams>,
    ) -> Result<CallToolResult, McpError> {
        let (allowed, message) = ask(&self.socket, self.agent, &p.tool_name, &p.input).await;
        // Claude Code's permission-prompt-tool answer.
        let answer = if allowed {
            json!({ "behavior": "allow", "updatedInput": p.input })
        } else {
            json!({ "behavior": "deny", "message": message })
        };
        Ok(CallToolResult::success(vec![ContentBlock::text(
            answer.to_string(),
        )]))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for PermissionServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build()).with_server_info(
            Implementation::new("wfhost-permissions", env!("CARGO_PKG_VERSION")),
        )
    }
}

/// Serves the permission tool on stdio until the agent's Claude Code closes it.
pub(crate) async fn serve(socket: PathBuf, agent: Option<u32>) -> anyhow::Result<()> {
    use rmcp::ServiceExt as _;
    PermissionServer::new(socket, agent)
        .serve(rmcp::transport::stdio())
        .await?
        .waiting()
        .await?;
    Ok(())
}
