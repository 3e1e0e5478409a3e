//! `claude`: one non-interactive Claude Code run (`claude -p`) per agent.
//!
//! An agent with tools: it can read and edit files and run commands, within the permission
//! mode and allowed tools from the configuration. `isolation: "worktree"` runs it in a fresh
//! `git worktree`, removed afterwards when the agent changed nothing and kept (and reported)
//! when it did.

use super::{AgentError, AgentReply, AgentRequest, Backend, Usage};
use crate::config::{self, Config};
use anyhow::{Result, bail};
use serde_json::Value;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

pub(crate) struct Claude {
    binary: PathBuf,
    model: Option<String>,
    permission_mode: Option<String>,
    allowed_tools: Vec<String>,
    max_turns: u32,
    timeout: Duration,
}

/// `claude` on PATH (or the configured binary), if it exists.
pub(crate) fn find(cfg: &Config) -> Option<PathBuf> {
    let name = cfg.claude.binary.clone().unwrap_or_else(|| "claude".into());
    if name.contains('/') {
        // Absolute now: agents may run in another directory (a worktree).
        return std::path::absolute(&name).ok().filter(|p| p.is_file());
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(&name))
        .find(|p| p.is_file())
}

impl Claude {
    pub(crate) fn new(cfg: &Config) -> Result<Claude> {
        let Some(binary) = find(cfg) else {
            bail!(
                crate::ExitError::usage(
                    "the `claude` backend needs Claude Code's `claude` binary, and it is not on PATH"
                )
                .hint("npm install -g @anthropic-ai/claude-code, or set `[claude] binary = \"/path/to/claude\"` in wfhost.toml")
            );
        };
        Ok(Claude {
            binary,
            model: cfg.model.clone(),
            permission_mode: cfg.claude.permission_mode.clone(),
            allowed_tools: cfg.claude.allowed_tools.clone().unwrap_or_default(),
            max_turns: cfg.claude.max_turns.unwrap_or(30),
            timeout: config::duration(
                &cfg.claude.timeout,
                "claude.timeout",
                Duration::from_secs(30 * 60),
            )?,
        })
    }

    fn args(&self, req: &AgentRequest) -> Vec<String> {
        // stream-json: a line per message as the agent works, which the stall timeout counts as
        // progress; the last line is the same result envelope `json` prints.
        let mut args: Vec<String> = [
            "-p",
            "--output-format",
            "stream-json",
            "--verbose",
            "--max-turns",
        ]
        .map(String::from)
        .to_vec();
        args.push(self.max_turns.to_string());
        // `agentType`: a definition's model (unless the call names one), tools and prompt.
        let def = super::agent_definition();
        let def_model = def.as_ref().and_then(|d| d.model.clone());
        if let Some(m) = req
            .model
            .as_ref()
            .or(def_model.as_ref())
            .or(self.model.as_ref())
        {
            args.extend(["--model".into(), m.clone()]);
        }
        if let Some(p) = &self.permission_mode {
            args.extend(["--permission-mode".into(), p.clone()]);
        }
        let mut tools = self.allowed_tools.clone();
        if let Some(d) = &def {
            tools.extend(
                d.tools
                    .iter()
                    .filter(|t| !tools.contains(t))
                    .cloned()
                    .collect::<Vec<_>>(),
            );
        }
        if !tools.is_empty() {
            args.push("--allowedTools".into());
            args.extend(tools);
        }
        if let Some(schema) = &req.schema {
            args.extend(["--json-schema".into(), schema.to_string()]);
        }
        let framing = super::system_prompt(req, def.as_deref(), true);
        args.extend(["--append-system-prompt".into(), framing]);
        // A tool outside the allow-list is asked of a person, through the run's control
        // socket (`wfhost watch`, `workflow_status`), instead of being refused outright.
        if let Ok(Some(socket)) = super::CALL.try_with(|c| c.control_socket.clone())
            && let Ok(exe) = std::env::current_exe()
        {
            let agent = super::CALL.try_with(|c| c.agent).ok().flatten();
            let mut helper = vec![
                "permission-server".to_string(),
                "--socket".to_string(),
                socket.display().to_string(),
            ];
            if let Some(n) = agent {
                helper.extend(["--agent".to_string(), n.to_string()]);
            }
            let config = serde_json::json!({ "mcpServers": { "wfhost": {
                "command": exe, "args": helper,
            }}});
            args.extend([
                "--mcp-config".into(),
                config.to_string(),
                "--permission-prompt-tool".into(),
                "mcp__wfhost__approve".into(),
            ]);
        }
        args
    }
}

/// Claude Code's own tools (a definition's `tools:` names these, each optionally with a rule in
/// parentheses, `Bash(git status:*)`), besides MCP tools (`mcp__server__tool`).
const CLAUDE_TOOLS: &[&str] = &[
    "Agent",
    "AskUserQuestion",
    "Bash",
    "BashOutput",
    "Edit",
    "ExitPlanMode",
    "Glob",
    "Grep",
    "KillShell",
    "LS",
    "MultiEdit",
    "NotebookEdit",
    "NotebookRead",
    "Read",
    "SlashCommand",
    "Skill",
    "Task",
    "TodoWrite",
    "WebFetch",
    "WebSearch",
    "Write",
];

/// Whether `tool` is a tool name `--allowedTools` may carry: a known tool (with an optional
/// `(rule)` of printable characters), or `mcp__server__tool`.
pub(crate) fn is_tool_name(tool: &str) -> bool {
    let (name, rule) = match tool.split_once('(') {
        Some((name, rest)) => (name, rest.strip_suffix(')')),
        None => (tool, Some("")),
    };
    let Some(rule) = rule else { return false };
    let rule_ok = !rule.chars().any(char::is_control);
    let word = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    let mcp = name
        .strip_prefix("mcp__")
        .is_some_and(|rest| rest.split("__").all(word) && !rest.starts_with('-'));
    rule_ok && (CLAUDE_TOOLS.contains(&name) || mcp)
}

/// Whether `model` can be a model name (`claude-sonnet-4-5`, `opus`, `us.anthropic.…:0`,
/// `claude-opus-4-1[1m]`): never an option.
pub(crate) fn is_model_name(model: &str) -> bool {
    !model.is_empty()
        && model.len() <= 200
        && !model.starts_with('-')
        && model
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._:/@[]".contains(c))
}

/// Refuses a call whose definition or request would put something other than a tool or model
/// name on `claude`'s command line.
fn check_arguments(
    req: &AgentRequest,
    def: Option<&crate::workflows::AgentDef>,
) -> Result<(), AgentError> {
    let source = || {
        def.and_then(|d| d.path.as_ref()).map_or_else(
            || "the agent type's definition".to_string(),
            |p| format!("`{}`", p.display()),
        )
    };
    if let Some(d) = def {
        if let Some(bad) = d.tools.iter().find(|t| !is_tool_name(t)) {
            return Err(AgentError::permanent(format!(
                "agent type `{}` ({}) names `{}` as a tool, and it is not one: a tool is one of Claude Code's ({}) or `mcp__server__tool`",
                crate::sanitize::line(&d.name),
                source(),
                crate::sanitize::line(bad),
                CLAUDE_TOOLS.join(", ")
            )));
        }
        if let Some(m) = d.model.as_deref().filter(|m| !is_model_name(m)) {
            return Err(AgentError::permanent(format!(
                "agent type `{}` ({}) names `{}` as its model, and it is not a model name",
                crate::sanitize::line(&d.name),
                source(),
                crate::sanitize::line(m)
            )));
        }
    }
    if let Some(m) = req.model.as_deref().filter(|m| !is_model_name(m)) {
        return Err(AgentError::permanent(format!(
            "`{}` is not a model name",
            crate::sanitize::line(m)
        )));
    }
    Ok(())
}

/// Claude Code reads its thinking budget from `MAX_THINKING_TOKENS`.
fn thinking_tokens(effort: Option<&str>) -> Option<&'static str> {
    match effort? {
        "low" => Some("0"),
        "medium" => Some("8000"),
        "high" | "max" => Some("31999"),
        _ => None,
    }
}

/// What a person watching sees of one `stream-json` line: the assistant's text, and which
/// tool it calls (the rest — system lines, tool results, the final envelope — is not shown).
fn stream_line_shown(line: &str) -> Option<String> {
    let v: Value = serde_json::from_str(line).ok()?;
    // The session the agent works in, journaled as it begins (tools::transcript): an agent
    // interrupted from here on continues it.
    if v["type"] == "system"
        && v["subtype"] == "init"
        && let Some(id) = v["session_id"].as_str()
        && let Some(t) = super::call_context().transcript
    {
        t.set_session(Some(id.to_string()));
    }
    if v["type"] != "assistant" {
        return None;
    }
    let parts: Vec<String> = v["message"]["content"]
        .as_array()?
        .iter()
        .filter_map(|c| match c["type"].as_str()? {
            "text" => c["text"].as_str().map(str::to_owned),
            "tool_use" => Some(format!("→ {}", c["name"].as_str().unwrap_or("tool"))),
            _ => None,
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join("\n"))
}

/// Parses the result envelope: the `result` line of `--output-format stream-json` (or the
/// whole output, as `--output-format json` prints it).
pub(crate) fn parse_envelope(stdout: &[u8], schema: bool) -> Result<AgentReply, AgentError> {
    let result_line = stdout
        .split(|b| *b == b'\n')
        .rev()
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .find_map(|l| {
            serde_json::from_slice::<Value>(l)
                .ok()
                .filter(|v| v["type"] == "result")
        });
    let parsed = match result_line {
        Some(v) => Ok(v),
        None => serde_json::from_slice(stdout),
    };
    let v: Value = parsed.map_err(|e| {
        AgentError::permanent(format!(
            "claude printed no JSON result ({e}): {}",
            String::from_utf8_lossy(stdout)
                .chars()
                .take(300)
                .collect::<String>()
        ))
    })?;
    let mut text = v["result"].as_str().unwrap_or_default().to_string();
    // Newer Claude Code puts what went wrong in `errors` (a result without one says nothing).
    if let Some(errors) = v["errors"].as_array().filter(|e| !e.is_empty()) {
        let said: Vec<String> = errors
            .iter()
            .map(|e| e.as_str().map_or_else(|| e.to_string(), str::to_owned))
            .collect();
        if !text.is_empty() {
            text.push_str("; ");
        }
        text.push_str(&said.join("; "));
    }
    if v["is_error"] == true || v["subtype"].as_str().is_some_and(|s| s != "success") {
        let what = v["subtype"].as_str().unwrap_or("error");
        let lower = text.to_lowercase();
        let transient = [
            "overloaded",
            "rate limit",
            "529",
            "503",
            "timeout",
            "connection",
        ]
        .iter()
        .any(|w| lower.contains(w));
        // Claude Code reports a plan's limit as "Claude AI usage limit reached|<reset time>".
        let usage_limit = ["usage limit", "spend limit", "credit balance"]
            .iter()
            .any(|w| lower.contains(w));
        // "Claude AI usage limit reached|1763769600": the reset time, in Unix seconds.
        let resets_in = text
            .rsplit_once('|')
            .and_then(|(_, t)| t.trim().parse::<u64>().ok())
            .and_then(|at| {
                let at = std::time::UNIX_EPOCH + Duration::from_secs(at);
                at.duration_since(std::time::SystemTime::now()).ok()
            })
            .filter(|_| usage_limit);
        return Err(AgentError {
            usage_limit,
            stops_run: false,
            resets_in,
            message: format!("claude {what}: {text}").trim_end().to_string(),
            transient: transient && !usage_limit,
        });
    }
    let usage: Usage = serde_json::from_value(v["usage"].clone()).unwrap_or_default();
    let structured = match &v["structured_output"] {
        Value::Null if schema => serde_json::from_str(text.trim()).ok(),
        Value::Null => None,
        s => Some(s.clone()),
    };
    Ok(AgentReply {
        text,
        structured,
        usage,
        cost_usd: v["total_cost_usd"].as_f64(),
        note: None,
    })
}

#[async_trait::async_trait]
impl Backend for Claude {
    fn name(&self) -> &str {
        "claude"
    }

    fn identity(&self) -> String {
        format!(
            "claude:{}:{}:{}",
            self.model.as_deref().unwrap_or("default"),
            self.permission_mode.as_deref().unwrap_or("default"),
            self.allowed_tools.join(",")
        )
    }

    fn default_model(&self) -> Option<String> {
        self.model.clone()
    }

    async fn run(
        &self,
        req: &AgentRequest,
        feedback: Option<&str>,
    ) -> Result<AgentReply, AgentError> {
        // What reaches `claude`'s command line from outside the configuration — a definition's
        // tools and model (a `.claude/agents` file, a NATS job), the call's model — is checked
        // first: a value that is not a tool or a model name never becomes an argument (and so
        // never a flag such as `--dangerously-skip-permissions`).
        check_arguments(req, super::agent_definition().as_deref())?;
        let ctx = super::call_context();
        let transcript = ctx.transcript.clone();
        // An agent interrupted before its answer (a stop, a crash, a restart, a stall)
        // continues its session; a schema re-ask starts afresh, as before.
        let said = |level, text: String| match &ctx.events {
            Some(events) => events.emit(crate::events::Event::Log { level, text }),
            // A NATS worker has no run's events: its log.
            None => eprintln!("wfhost: {text}"),
        };
        let label = &req.label;
        // A session id becomes an argument: one that is not an id (a forged NATS job or turns
        // entry) never reaches the command line, where `--resume --flag` would be a flag.
        let session = transcript
            .as_ref()
            .and_then(|t| t.session())
            .filter(|_| feedback.is_none())
            .filter(|id| {
                let ok = is_session_id(id);
                if !ok {
                    said(
                        crate::events::LogLevel::Warn,
                        format!(
                            "[{label}] `{}` is not a Claude Code session id: started afresh",
                            crate::sanitize::line(id)
                        ),
                    );
                }
                ok
            });
        let reply = match session {
            Some(id) => match self.attempt(req, feedback, Some(&id)).await {
                Err(e) if e.message.contains(NO_SESSION) => {
                    said(
                        crate::events::LogLevel::Warn,
                        format!(
                            "[{label}] its interrupted session {id} no longer exists: started afresh"
                        ),
                    );
                    if let Some(t) = &transcript {
                        t.set_session(None);
                    }
                    self.attempt(req, feedback, None).await
                }
                other => {
                    said(
                        crate::events::LogLevel::Info,
                        format!(
                            "[{label}] continued its interrupted session {id} (claude --resume)"
                        ),
                    );
                    other
                }
            },
            None => self.attempt(req, feedback, None).await,
        };
        // The call has ended: a later one (a schema re-ask, the scheduler's retry) is new.
        if let Some(t) = &transcript {
            t.set_session(None);
        }
        reply
    }
}

/// A Claude Code session id: a UUID (hex digits and dashes), nothing that could read as a flag.
fn is_session_id(id: &str) -> bool {
    (8..=64).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
        && !id.starts_with('-')
}

/// What `claude --resume` says of a session it does not have (deleted, another machine's).
const NO_SESSION: &str = "No conversation found";

/// Told to an agent whose session is continued after it was interrupted.
const CONTINUE: &str = "Continue: you were interrupted (the host running you stopped). Pick up where you left off; a tool call that was running may or may not have finished, so check before you repeat it. End with your final answer, as before.";

impl Claude {
    /// One `claude` process: the task, or (`session`) the continuation of an interrupted one.
    async fn attempt(
        &self,
        req: &AgentRequest,
        feedback: Option<&str>,
        session: Option<&str>,
    ) -> Result<AgentReply, AgentError> {
        let mut prompt = match session {
            Some(_) => CONTINUE.to_string(),
            None => super::framed_task(&req.prompt),
        };
        if let Some(f) = feedback {
            prompt.push_str(&format!(
                "\n\nYour previous answer did not match the required schema:\n{f}"
            ));
        }
        // `isolation: "worktree"` is made around the call (backend::worktree) and arrives as
        // the request's workspace; no other isolation is known.
        if let Some(other) = req.isolation.as_deref().filter(|i| *i != "worktree") {
            return Err(AgentError::permanent(format!(
                "isolation `{other}` is not supported (use \"worktree\")"
            )));
        }
        let mut cmd = tokio::process::Command::new(&self.binary);
        cmd.args(self.args(req));
        if let Some(id) = session {
            cmd.args(["--resume", id]);
        }
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(dir) = &req.workspace {
            cmd.current_dir(dir);
        }
        if let Some(t) = thinking_tokens(req.effort.as_deref()) {
            cmd.env("MAX_THINKING_TOKENS", t);
        }
        let mut child = super::spawn_in_group(&mut cmd).map_err(|e| {
            AgentError::permanent(format!("cannot start `{}`: {e}", self.binary.display()))
        })?;
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(prompt.as_bytes()).await;
        }
        let output = tokio::time::timeout(
            self.timeout,
            super::output_with_lines(child, stream_line_shown),
        )
        .await;
        match output {
            Err(_) => Err(AgentError {
                usage_limit: false,
                stops_run: false,
                resets_in: None,
                message: format!(
                    "claude gave no answer within {} (claude.timeout)",
                    humantime::format_duration(self.timeout)
                ),
                transient: true,
            }),
            Ok(Err(e)) => Err(AgentError::permanent(format!("claude failed: {e}"))),
            Ok(Ok(o)) if o.stdout.is_empty() => Err(AgentError::permanent(format!(
                "claude exited with {} and no result: {}",
                o.status,
                String::from_utf8_lossy(&o.stderr).trim()
            ))),
            Ok(Ok(o)) => parse_envelope(&o.stdout, req.schema.is_some()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope() {
        let ok = br#"{"type":"result","subtype":"success","is_error":false,"result":"done","session_id":"s","total_cost_usd":0.012,"usage":{"input_tokens":10,"output_tokens":3,"cache_read_input_tokens":7}}"#;
        let r = parse_envelope(ok, false).unwrap();
        assert_eq!(
            (
                r.text.as_str(),
                r.usage.output_tokens,
                r.usage.cache_read_input_tokens,
                r.cost_usd
            ),
            ("done", 3, 7, Some(0.012))
        );
        let schema =
            br#"{"subtype":"success","is_error":false,"result":"","structured_output":{"n":1}}"#;
        assert_eq!(
            parse_envelope(schema, true).unwrap().structured,
            Some(serde_json::json!({"n": 1}))
        );
        let err = br#"{"subtype":"error_max_turns","is_error":true,"result":"too many turns"}"#;
        assert!(
            parse_envelope(err, false)
                .unwrap_err()
                .message
                .contains("error_max_turns")
        );
        let overloaded =
            br#"{"subtype":"success","is_error":true,"result":"API Error: 529 Overloaded"}"#;
        assert!(parse_envelope(overloaded, false).unwrap_err().transient);
    }

    #[test]
    fn only_a_session_id_is_resumed() {
        assert!(is_session_id("0b7e4f3a-5c1d-4e2f-9a8b-7c6d5e4f3a2b"));
        for bad in [
            "--dangerously-skip-permissions",
            "-abc12345",
            "0b7e4f3a 5c1d",
            "0b7e4f3a;rm",
            "",
            "abc",
        ] {
            assert!(!is_session_id(bad), "{bad}");
        }
    }
}
