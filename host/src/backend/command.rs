//! `command`: any program as an agent (codex, gemini, a local model, a script).
//!
//! For each agent the program is started once with the request as JSON on stdin; it answers
//! with JSON on stdout. See docs/backends.md for the protocol and an example wrapper.
//!
//! request: `{"prompt", "system", "schema"?, "model"?, "effort"?, "agentType"?, "isolation"?,
//!            "label", "phase"?, "feedback"?}`
//! response: `{"text": "…"}` or `{"structured": {…}}` (plus optional `"usage"` and
//!           `"cost_usd"`), or `{"error": "…", "transient"?: bool}`. A non-zero exit status
//!           is a failure too (stderr is the message).

use super::{AgentError, AgentReply, AgentRequest, Backend, Usage};
use crate::config::{self, Config};
use anyhow::{Result, bail};
use serde_json::{Value, json};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

pub(crate) struct Command {
    program: String,
    args: Vec<String>,
    timeout: Duration,
}

impl Command {
    pub(crate) fn new(cfg: &Config) -> Result<Command> {
        let Some(program) = cfg.command.program.clone() else {
            bail!(
                crate::ExitError::usage("the `command` backend needs a program")
                    .hint("set it in wfhost.toml:\n  [command]\n  program = \"./my-agent.sh\"")
            );
        };
        // A relative path to the program is made absolute now, while it means what the user meant.
        let program = if program.contains('/') {
            std::path::absolute(&program)
                .map(|p| p.display().to_string())
                .unwrap_or(program)
        } else {
            program
        };
        Ok(Command {
            program,
            args: cfg.command.args.clone(),
            timeout: config::duration(
                &cfg.command.timeout,
                "command.timeout",
                Duration::from_secs(30 * 60),
            )?,
        })
    }
}

#[async_trait::async_trait]
impl Backend for Command {
    fn name(&self) -> &str {
        "command"
    }

    fn identity(&self) -> String {
        format!("command:{} {}", self.program, self.args.join(" "))
    }

    async fn run(
        &self,
        req: &AgentRequest,
        feedback: Option<&str>,
    ) -> Result<AgentReply, AgentError> {
        let mut request = serde_json::to_value(req).unwrap_or_default();
        // `agentType`: its definition travels with the request, its prompt in `system`.
        let def = super::agent_definition();
        if let Some(def) = &def {
            request["agent"] = serde_json::to_value(&**def).unwrap_or_default();
        }
        let system = super::system_prompt(req, def.as_deref(), false);
        request["system"] = json!(system);
        // The task as the claude and messages backends frame it for their agents.
        request["framed_prompt"] = json!(super::framed_task(&req.prompt));
        if let Some(f) = feedback {
            request["feedback"] = json!(f);
        }
        let mut cmd = tokio::process::Command::new(&self.program);
        cmd.args(&self.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // An isolated agent's program runs in its worktree (backend::worktree).
        if let Some(dir) = &req.workspace {
            cmd.current_dir(dir);
        }
        let mut child = super::spawn_in_group(&mut cmd)
            .map_err(|e| AgentError::permanent(format!("cannot start `{}`: {e}", self.program)))?;
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(request.to_string().as_bytes()).await;
        }
        let output =
            match tokio::time::timeout(self.timeout, super::output_with_progress(child)).await {
                Ok(Ok(o)) => o,
                Ok(Err(e)) => {
                    return Err(AgentError::permanent(format!(
                        "`{}` failed: {e}",
                        self.program
                    )));
                }
                Err(_) => {
                    return Err(AgentError {
                        usage_limit: false,
                        stops_run: false,
                        resets_in: None,
                        message: format!(
                            "`{}` gave no answer within {} (command.timeout)",
                            self.program,
                            humantime::format_duration(self.timeout)
                        ),
                        transient: true,
                    });
                }
            };
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(AgentError::permanent(format!(
                "`{}` exited with {}: {}",
                self.program,
                output.status,
                stderr.trim()
            )));
        }
        let response: Value = serde_json::from_slice(&output.stdout).map_err(|e| {
            AgentError::permanent(format!(
                "`{}` did not print a JSON response on stdout: {e}",
                self.program
            ))
        })?;
        if let Some(error) = response["error"].as_str() {
            return Err(AgentError {
                usage_limit: false,
                stops_run: false,
                resets_in: None,
                message: error.to_string(),
                transient: response["transient"] == true,
            });
        }
        let usage: Usage = serde_json::from_value(response["usage"].clone()).unwrap_or_default();
        let structured = Some(response["structured"].clone()).filter(|v| !v.is_null());
        let text = match &response["text"] {
            Value::String(s) => s.clone(),
            _ => structured
                .as_ref()
                .map(Value::to_string)
                .unwrap_or_default(),
        };
        Ok(AgentReply {
            text,
            structured,
            usage,
            cost_usd: response["cost_usd"].as_f64(),
            note: None,
        })
    }
}
