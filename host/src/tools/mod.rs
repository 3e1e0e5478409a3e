//! Agent tools: what an agent on an HTTP API (`messages`) can use to read, search, edit and
//! run, with Claude Code's names and input schemas — contained by the host, not by a prompt.
//!
//! One file per tool (`read`, `glob`, `grep`, `edit`, `write`, `bash`); `workspace` is the
//! containment of the file tools (every path resolved beneath the workspace by cap-std, after
//! symlinks), `confine` the kernel's confinement of `Bash` (Landlock, a network namespace, a
//! scrubbed environment, limits); `transcript` keeps an agent's finished turns, so a resumed
//! agent continues from its last one; `rails` are the per-agent guard rails. The loop that
//! asks the model and runs its calls is the backend's (`backend::messages`).

mod bash;
pub(crate) mod confine;
mod edit;
mod glob;
mod grep;
mod rails;
mod read;
pub(crate) mod transcript;
pub(crate) mod turn;
mod workspace;
mod write;

pub(crate) use rails::{Rails, Tally};
pub(crate) use transcript::{Relayed, Transcript, Turn};
pub(crate) use workspace::{READ_ONLY, Workspace};

use serde_json::{Value, json};
use std::sync::Arc;

/// The tools, by their Claude Code names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ToolName {
    Read,
    Glob,
    Grep,
    Edit,
    Write,
    Bash,
}

impl ToolName {
    pub const ALL: [ToolName; 6] = [
        ToolName::Read,
        ToolName::Glob,
        ToolName::Grep,
        ToolName::Edit,
        ToolName::Write,
        ToolName::Bash,
    ];
    /// What agents get when neither `--tools` nor `[tools] allow` says otherwise.
    pub const READ_ONLY: [ToolName; 3] = [ToolName::Read, ToolName::Glob, ToolName::Grep];

    pub fn as_str(self) -> &'static str {
        match self {
            ToolName::Read => "Read",
            ToolName::Glob => "Glob",
            ToolName::Grep => "Grep",
            ToolName::Edit => "Edit",
            ToolName::Write => "Write",
            ToolName::Bash => "Bash",
        }
    }

    pub fn parse(name: &str) -> Option<ToolName> {
        ToolName::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// Only reads: calls of one turn that all only read run concurrently.
    pub fn read_only(self) -> bool {
        matches!(self, ToolName::Read | ToolName::Glob | ToolName::Grep)
    }

    /// Changes the workspace (or may): never run twice for one journaled call.
    pub fn mutates(self) -> bool {
        !self.read_only()
    }

    fn spec(self) -> (&'static str, Value) {
        match self {
            ToolName::Read => (read::DESCRIPTION, read::schema()),
            ToolName::Glob => (glob::DESCRIPTION, glob::schema()),
            ToolName::Grep => (grep::DESCRIPTION, grep::schema()),
            ToolName::Edit => (edit::DESCRIPTION, edit::schema()),
            ToolName::Write => (write::DESCRIPTION, write::schema()),
            ToolName::Bash => (bash::DESCRIPTION, bash::schema()),
        }
    }
}

/// The wire form of tool definitions: the Messages API's `{name, description, input_schema}`
/// or Chat Completions' `{type: "function", function: {name, description, parameters}}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Messages,
    OpenAi,
}

/// The tool definitions a model is offered, as a rendered JSON array, spliced into each
/// request's body as it is. Rendered once per tool set and dialect for the whole process: a
/// tool-using fan-out sends them with every request, and building and serialising them as
/// `Value`s per request was most of the host's CPU for 5,000 instant agents.
#[derive(Debug, Clone)]
pub(crate) struct Specs(std::borrow::Cow<'static, str>);

impl Specs {
    pub(crate) fn of(tools: &[ToolName], dialect: Dialect) -> Specs {
        const SETS: usize = 1 << ToolName::ALL.len();
        static RENDERED: [[std::sync::OnceLock<String>; SETS]; 2] =
            [const { [const { std::sync::OnceLock::new() }; SETS] }; 2];
        let set = tools.iter().fold(0usize, |m, t| m | 1 << *t as usize);
        let rendered = RENDERED[dialect as usize][set].get_or_init(|| {
            let defs: Vec<Value> = ToolName::ALL
                .into_iter()
                .filter(|t| set & 1 << *t as usize != 0)
                .map(|t| {
                    let (description, schema) = t.spec();
                    Specs::definition(dialect, t.as_str(), description, schema)
                })
                .collect();
            Value::Array(defs).to_string()
        });
        Specs(std::borrow::Cow::Borrowed(rendered.as_str()))
    }

    /// One definition in `dialect`'s form.
    pub(crate) fn definition(
        dialect: Dialect,
        name: &str,
        description: &str,
        schema: Value,
    ) -> Value {
        match dialect {
            Dialect::Messages => {
                json!({"name": name, "description": description, "input_schema": schema})
            }
            Dialect::OpenAi => json!({"type": "function", "function": {
                "name": name, "description": description, "parameters": schema,
            }}),
        }
    }

    /// Adds a definition (a schema agent's answer tool) at the end.
    pub(crate) fn push(&mut self, def: &Value) {
        let s = self.0.to_mut();
        s.pop(); // the array's `]`
        if s.len() > 1 {
            s.push(',');
        }
        s.push_str(&def.to_string());
        s.push(']');
    }

    /// `body` (a JSON object) serialised with these definitions as its `tools`.
    pub(crate) fn body_with(&self, body: &Value) -> bytes::Bytes {
        let mut out = Vec::with_capacity(self.0.len() + 1024);
        let _ = serde_json::to_writer(&mut out, body);
        if out.last() == Some(&b'}') {
            out.pop();
            if out.len() > 1 {
                out.push(b',');
            }
            out.extend_from_slice(b"\"tools\":");
            out.extend_from_slice(self.0.as_bytes());
            out.push(b'}');
        }
        bytes::Bytes::from(out)
    }
}

/// Parses a list of tool names (`--tools`, `[tools] allow`, an agent type's `tools:`):
/// `none` or an empty list is no tools.
pub(crate) fn parse_list<S: AsRef<str>>(names: &[S]) -> Result<Vec<ToolName>, String> {
    let mut out = Vec::new();
    for n in names {
        let n = n.as_ref().trim();
        if n.is_empty() || n.eq_ignore_ascii_case("none") {
            continue;
        }
        let Some(t) = ToolName::parse(n) else {
            return Err(format!(
                "`{n}` is not a tool wfhost gives agents; the tools are {}",
                names_of(&ToolName::ALL)
            ));
        };
        if !out.contains(&t) {
            out.push(t);
        }
    }
    out.sort();
    Ok(out)
}

/// `Read, Glob, Grep`.
pub(crate) fn names_of(tools: &[ToolName]) -> String {
    if tools.is_empty() {
        return "(none)".to_string();
    }
    tools
        .iter()
        .map(|t| t.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a tool call gives back to the model.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ToolOutput {
    pub content: String,
    pub is_error: bool,
}

impl ToolOutput {
    fn ok(content: String) -> ToolOutput {
        ToolOutput {
            content,
            is_error: false,
        }
    }
    pub fn error(content: impl Into<String>) -> ToolOutput {
        ToolOutput {
            content: content.into(),
            is_error: true,
        }
    }
}

/// One call's toolbox and the tools it is offered (`Toolbox::for_call`).
pub(crate) type Offered = (Arc<Toolbox>, Vec<ToolName>);

/// The run's tools: the workspace, the tools in force and their limits. Built once per run
/// from `[tools]` and the flags; a `Bash` call checks the kernel's confinement when it starts.
#[derive(Debug)]
pub struct Toolbox {
    workspace: Workspace,
    allowed: Vec<ToolName>,
    pub rails: Rails,
    bash: bash::Policy,
}

impl Toolbox {
    /// `None` when no tool is allowed (agents are then one model call, as before).
    pub fn from_config(cfg: &crate::config::ToolsConfig) -> anyhow::Result<Option<Arc<Toolbox>>> {
        let allowed = match &cfg.allow {
            Some(list) => parse_list(list).map_err(|e| {
                crate::ExitError::usage(e)
                    .hint("list them with `--tools Read,Grep,…` or `[tools] allow = [\"Read\", …]`")
            })?,
            None => ToolName::READ_ONLY.to_vec(),
        };
        if allowed.is_empty() {
            return Ok(None);
        }
        let root = match &cfg.workspace {
            Some(p) => p.clone(),
            None => std::env::current_dir()?,
        };
        let workspace = Workspace::open(&root)?;
        let rails = Rails::from_config(cfg)?;
        let bash = bash::Policy {
            default_timeout: rails.bash_timeout,
            unconfined: cfg.unconfined_bash == Some(true),
        };
        Ok(Some(Arc::new(Toolbox {
            workspace,
            allowed,
            rails,
            bash,
        })))
    }

    pub fn workspace(&self) -> &Workspace {
        &self.workspace
    }

    /// The tools one agent call gets, and which of them it is offered: `None` when it is
    /// offered none (the agent is one model call); an isolated agent's reach its worktree
    /// (`req.workspace`) instead of the run's workspace.
    pub(crate) fn for_call(
        tools: Option<&Arc<Toolbox>>,
        req: &crate::agent::AgentRequest,
    ) -> Result<Option<Offered>, crate::backend::AgentError> {
        let Some(tools) = tools else {
            return Ok(None);
        };
        let offered = tools.for_agent(crate::backend::agent_definition().as_deref());
        if offered.is_empty() {
            return Ok(None);
        }
        let tools = match &req.workspace {
            Some(dir) => Arc::new(
                tools
                    .in_workspace(dir)
                    .map_err(|e| crate::backend::AgentError::permanent(format!("{e:#}")))?,
            ),
            None => tools.clone(),
        };
        Ok(Some((tools, offered)))
    }

    /// The same tools, rails and `Bash` policy, reaching `root` instead (an isolated agent's
    /// worktree, backend::worktree).
    pub fn in_workspace(&self, root: &std::path::Path) -> anyhow::Result<Toolbox> {
        Ok(Toolbox {
            workspace: Workspace::open(root)?,
            allowed: self.allowed.clone(),
            rails: self.rails.clone(),
            bash: self.bash.clone(),
        })
    }

    pub fn allowed(&self) -> &[ToolName] {
        &self.allowed
    }

    /// The tools one agent is offered: the run's, narrowed by its agent type's `tools:`.
    pub fn for_agent(&self, def: Option<&crate::workflows::AgentDef>) -> Vec<ToolName> {
        let Some(def) = def.filter(|d| !d.tools.is_empty()) else {
            return self.allowed.clone();
        };
        let named: Vec<ToolName> = def
            .tools
            .iter()
            .filter_map(|t| ToolName::parse(t.trim()))
            .collect();
        self.allowed
            .iter()
            .copied()
            .filter(|t| named.contains(t))
            .collect()
    }

    /// What, besides the request, determines an agent's answer: the tools in force and the
    /// workspace (part of the journal key).
    pub fn identity(&self) -> String {
        format!(
            "tools={}@{}",
            names_of(&self.allowed).replace(' ', ""),
            self.workspace.root().display()
        )
    }

    /// The tool a call names, if this agent was offered it; otherwise the error result that
    /// names it.
    fn check(name: &str, offered: &[ToolName]) -> Result<ToolName, ToolOutput> {
        ToolName::parse(name)
            .filter(|t| offered.contains(t))
            .ok_or_else(|| {
                ToolOutput::error(format!(
                    "`{name}` is not among this agent's tools ({}). Use only those; the operator can allow more with `--tools` or `[tools] allow`.",
                    names_of(offered)
                ))
            })
    }

    /// Runs one call the model made: a tool outside `offered` gets an error result naming it;
    /// every result is capped at `rails.max_result` bytes.
    pub async fn call(&self, name: &str, input: &Value, offered: &[ToolName]) -> ToolOutput {
        match Toolbox::check(name, offered) {
            Ok(ToolName::Bash) => self.cap(bash::call(&self.workspace, &self.bash, input).await),
            Ok(_) => self.call_file(name, input, offered),
            Err(refused) => refused,
        }
    }

    /// A call of a file tool (they read and write the disk: run it on a blocking thread).
    pub fn call_file(&self, name: &str, input: &Value, offered: &[ToolName]) -> ToolOutput {
        let ws = &self.workspace;
        let result = match Toolbox::check(name, offered) {
            Ok(ToolName::Read) => read::call(ws, input),
            Ok(ToolName::Glob) => glob::call(ws, input),
            Ok(ToolName::Grep) => grep::call(ws, input),
            Ok(ToolName::Edit) => edit::call(ws, input),
            Ok(ToolName::Write) => write::call(ws, input),
            Ok(ToolName::Bash) => Err("`Bash` is not a file tool".to_string()),
            Err(refused) => return refused,
        };
        self.cap(match result {
            Ok(text) => ToolOutput::ok(text),
            Err(e) => ToolOutput::error(e),
        })
    }

    fn cap(&self, mut out: ToolOutput) -> ToolOutput {
        let max = self.rails.max_result;
        if out.content.len() > max {
            let mut cut = max;
            while !out.content.is_char_boundary(cut) {
                cut -= 1;
            }
            let total = out.content.len();
            out.content.truncate(cut);
            out.content.push_str(&format!(
                "\n… (cut: {total} bytes, more than the {max} a tool result may hand back; narrow the call)"
            ));
        }
        out
    }
}

/// What `wfhost audit` and `wfhost plan` say of the agents' tools: which, where, their rails
/// and (for `Bash`) whether this kernel confines it.
pub(crate) fn describe(cfg: &crate::config::ToolsConfig) -> anyhow::Result<Value> {
    let Some(tb) = Toolbox::from_config(cfg)? else {
        return Ok(json!({"allowed": [], "note": "no tools: each API agent is one model call"}));
    };
    let bash = if tb.allowed.contains(&ToolName::Bash) {
        Some(match confine::probe(tb.workspace.root()) {
            Ok(()) => {
                json!({"confined": true, "by": "Landlock (files, TCP, signals, abstract sockets), network + PID + mount namespaces, rlimits, a scrubbed environment"})
            }
            Err(why) if tb.bash.unconfined => {
                json!({"confined": false, "why": why, "note": "[tools] unconfined_bash = true: Bash runs WITHOUT confinement"})
            }
            Err(why) => json!({"confined": false, "why": why, "note": "Bash calls are refused"}),
        })
    } else {
        None
    };
    Ok(json!({
        "allowed": tb.allowed.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
        "workspace": tb.workspace.root(),
        "hidden": tb.workspace.hidden(),
        "read_only": [READ_ONLY],
        "max_turns": tb.rails.max_turns,
        "max_tool_calls": tb.rails.max_tool_calls,
        "max_result_bytes": tb.rails.max_result,
        "bash_timeout": humantime::format_duration(tb.rails.bash_timeout).to_string(),
        "bash": bash,
    }))
}

/// The tool names of a `describe` answer.
pub(crate) fn allowed_in(described: &Value) -> Vec<&str> {
    described["allowed"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str())
        .collect()
}

/// A string field of a tool's input, or an error naming it.
fn text<'a>(input: &'a Value, key: &str) -> Result<&'a str, String> {
    input[key]
        .as_str()
        .ok_or_else(|| format!("`{key}` is required and must be a string"))
}

/// A whole-number field of a tool's input (absent: `None`).
fn number(input: &Value, key: &str) -> Result<Option<u64>, String> {
    match &input[key] {
        Value::Null => Ok(None),
        v => v
            .as_u64()
            .or_else(|| {
                v.as_f64()
                    .filter(|f| *f >= 0.0 && f.fract() == 0.0 && *f < 9e15)
                    .map(|f| {
                        #[allow(
                            clippy::cast_possible_truncation,
                            clippy::cast_sign_loss,
                            reason = "a whole number in 0..9e15"
                        )]
                        let n = f as u64;
                        n
                    })
            })
            .map(Some)
            .ok_or_else(|| format!("`{key}` must be a whole number of 0 or more")),
    }
}

/// A one-line summary of a call, as views show it: `Read src/lib.rs`, `Bash cargo test`.
pub(crate) fn summary(name: &str, input: &Value) -> String {
    let arg = ["file_path", "pattern", "command", "path"]
        .iter()
        .find_map(|k| input[*k].as_str())
        .unwrap_or("");
    let arg: String = arg
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(120)
        .collect();
    format!("{name} {arg}").trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The spliced body is the same JSON as one built with a `tools` member, in both dialects,
    /// with and without a pushed definition (and for an empty set).
    #[test]
    fn spliced_tools_are_the_definitions_in_each_dialect() {
        let body = json!({"model": "m", "messages": [{"role": "user", "content": "hi \"there\""}]});
        for dialect in [Dialect::Messages, Dialect::OpenAi] {
            let read_grep = [ToolName::Read, ToolName::Grep];
            let sent: Value =
                serde_json::from_slice(&Specs::of(&read_grep, dialect).body_with(&body)).unwrap();
            assert_eq!(sent["messages"], body["messages"]);
            let names: Vec<&str> = sent["tools"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| match dialect {
                    Dialect::Messages => t["name"].as_str().unwrap(),
                    Dialect::OpenAi => t["function"]["name"].as_str().unwrap(),
                })
                .collect();
            assert_eq!(names, ["Read", "Grep"]);
            let (description, schema) = ToolName::Grep.spec();
            assert_eq!(
                sent["tools"][1],
                Specs::definition(dialect, "Grep", description, schema)
            );

            let answer = Specs::definition(dialect, "StructuredOutput", "d", json!({}));
            let mut with = Specs::of(&read_grep, dialect);
            with.push(&answer);
            let sent: Value = serde_json::from_slice(&with.body_with(&body)).unwrap();
            assert_eq!(sent["tools"].as_array().unwrap().len(), 3);
            assert_eq!(sent["tools"][2], answer);
            // The shared rendering is untouched by a push.
            let again: Value =
                serde_json::from_slice(&Specs::of(&read_grep, dialect).body_with(&body)).unwrap();
            assert_eq!(again["tools"].as_array().unwrap().len(), 2);

            let mut none = Specs::of(&[], dialect);
            none.push(&answer);
            let sent: Value = serde_json::from_slice(&none.body_with(&body)).unwrap();
            assert_eq!(sent["tools"], json!([answer]));
        }
    }
}
