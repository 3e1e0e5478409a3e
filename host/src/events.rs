//! The run's event stream: everything that happens, typed. Every view (the printer, the JSON
//! report) consumes this stream and nothing else.

use crate::agent::Usage;
use crate::script::Meta;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum Event {
    RunStarted {
        run_id: String,
        script: String,
        meta: Meta,
        backend: String,
        /// The backend's default model, when it has one.
        model: Option<String>,
    },
    Phase {
        title: String,
    },
    AgentQueued {
        handle: u32,
        label: String,
        phase: Option<String>,
    },
    /// Served from the run's journal (a resume): no backend call.
    AgentCached {
        handle: u32,
        label: String,
        phase: Option<String>,
    },
    AgentStarted {
        handle: u32,
        label: String,
        model: Option<String>,
        /// The start of its prompt (at most `PROMPT_HEAD` characters), for the views.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prompt: Option<String>,
    },
    /// What a running agent has said since its last `agent_output` (streamed text, lines of its
    /// program's output), at most every 250 ms: the dashboard's agent pane while it runs.
    AgentOutput {
        handle: u32,
        text: String,
    },
    /// A tool-using agent's model turn ended: how many tool calls it made, what it cost in
    /// tokens (the agent's `agent_finished` has the total and its price).
    AgentTurn {
        handle: u32,
        turn: u32,
        tool_calls: u32,
        usage: Usage,
    },
    /// A tool-using agent (`messages` with tools) calls a tool: `summary` is the call in one
    /// line (`Read src/lib.rs`, `Bash cargo test`), `turn` the model turn that asked for it.
    ToolCall {
        handle: u32,
        turn: u32,
        tool: String,
        summary: String,
    },
    /// The call's result: an error or not, its size, and its first line.
    ToolResult {
        handle: u32,
        turn: u32,
        tool: String,
        is_error: bool,
        bytes: u64,
        head: String,
    },
    AgentFinished {
        handle: u32,
        label: String,
        usage: Usage,
        cost_usd: f64,
        duration_ms: u64,
    },
    AgentFailed {
        handle: u32,
        label: String,
        error: String,
        duration_ms: u64,
    },
    /// After each finished agent when a ceiling is set (`--budget-tokens`, `--max-cost`).
    Budget {
        spent_tokens: u64,
        total_tokens: Option<u64>,
        cost_usd: f64,
        max_cost_usd: Option<f64>,
    },
    Log {
        level: LogLevel,
        text: String,
    },
    /// An operator steered the run (the control socket: `pause`, `continue`, `stop`, `kill`,
    /// `restart`, `save`), or the host did on its own (`stall`: an agent went silent).
    Control {
        action: String,
        /// The agent's number (as `wfhost watch` shows it), for kill / restart / stall.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        agent: Option<u32>,
        /// Who: `uid U pid P (client)`, or `wfhost` for the host itself.
        by: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
        /// Dispatch is held this long (`rate-limit`: a 429; `limit`: a usage limit).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        wait_ms: Option<u64>,
    },
    /// An agent asks to use a tool outside its allow-list; an operator answers (`answer`), or
    /// it is denied when nobody does in time.
    Permission {
        id: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        agent: Option<u32>,
        tool: String,
        /// The tool's input, as JSON: all of it up to 64 KiB (`control::permission`).
        input: String,
        /// What answering "always" would allow from now on: `Bash(git status:*)`.
        #[serde(default)]
        always: String,
    },
    PermissionAnswered {
        id: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        agent: Option<u32>,
        tool: String,
        allowed: bool,
        detail: String,
    },
    /// A batch of agents sent through the Message Batches API (`--batch`), as its last poll
    /// saw it: `in_progress`, `canceling` or `ended`, and how many of its requests are done.
    Batch {
        id: String,
        status: String,
        done: u64,
        total: u64,
    },
    RunFinished {
        outcome: crate::report::Outcome,
        duration_ms: u64,
    },
}

impl Event {
    /// The event with every string the script controls made safe for a terminal
    /// (`sanitize::line`): what the views draw. JSON consumers take the raw event.
    #[must_use]
    pub(crate) fn for_terminal(&self) -> Event {
        use crate::sanitize::line;
        let l = |s: &String| line(s).into_owned();
        let mut e = self.clone();
        match &mut e {
            Event::RunStarted { script, meta, .. } => {
                *script = l(script);
                meta.name = l(&meta.name);
                meta.description = l(&meta.description);
                meta.title = meta.title.as_ref().map(l);
                meta.when_to_use = meta.when_to_use.as_ref().map(l);
                for p in &mut meta.phases {
                    p.title = l(&p.title);
                    p.detail = p.detail.as_ref().map(l);
                }
            }
            Event::Phase { title } => *title = l(title),
            Event::AgentQueued { label, phase, .. } | Event::AgentCached { label, phase, .. } => {
                *label = l(label);
                *phase = phase.as_ref().map(l);
            }
            Event::AgentStarted { label, prompt, .. } => {
                *label = l(label);
                *prompt = prompt
                    .as_deref()
                    .map(|p| crate::sanitize::text(p).into_owned());
            }
            Event::AgentFinished { label, .. } => {
                *label = l(label);
            }
            Event::AgentOutput { text, .. } => *text = crate::sanitize::text(text).into_owned(),
            Event::ToolCall { summary, .. } => *summary = l(summary),
            Event::ToolResult { head, .. } => *head = l(head),
            Event::AgentFailed { label, error, .. } => {
                *label = l(label);
                *error = l(error);
            }
            Event::Log { text, .. } => *text = l(text),
            // From the API's answers: no escape reaches a terminal.
            Event::Batch { id, status, .. } => {
                *id = l(id);
                *status = l(status);
            }
            Event::Control { by, detail, .. } => {
                *by = l(by);
                *detail = detail.as_ref().map(l);
            }
            Event::Permission {
                tool,
                input,
                always,
                ..
            } => {
                *tool = l(tool);
                *input = l(input);
                *always = l(always);
            }
            Event::PermissionAnswered { tool, detail, .. } => {
                *tool = l(tool);
                *detail = l(detail);
            }
            Event::Budget { .. } | Event::RunFinished { .. } | Event::AgentTurn { .. } => {}
        }
        e
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum LogLevel {
    Info,
    Warn,
    Error,
}

impl LogLevel {
    pub(crate) fn from_guest(level: u32) -> LogLevel {
        match level {
            1 => LogLevel::Warn,
            2 => LogLevel::Error,
            _ => LogLevel::Info,
        }
    }
}

/// A cheap, cloneable handle to the run's event consumers.
#[derive(Clone)]
pub(crate) struct Events(Arc<dyn Fn(&Event) + Send + Sync>);

impl Events {
    pub(crate) fn new(f: impl Fn(&Event) + Send + Sync + 'static) -> Events {
        Events(Arc::new(f))
    }
    pub(crate) fn none() -> Events {
        Events::new(|_| {})
    }
    #[allow(
        clippy::needless_pass_by_value,
        reason = "events are built at the call site and handed over"
    )]
    pub(crate) fn emit(&self, event: Event) {
        (self.0)(&event);
    }

    /// Every consumer in `all` sees every event, all in the same order: events come from the
    /// sandbox and from every pool worker at once, and a subscriber, the event log and the
    /// views must not disagree about which came first.
    pub(crate) fn tee(all: Vec<Events>) -> Events {
        let order = std::sync::Mutex::new(());
        Events::new(move |e| {
            let _one_at_a_time = order
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            all.iter().for_each(|c| (c.0)(e));
        })
    }
}

/// How much of a prompt `agent_started` carries. Why 2,000 characters: enough to recognise the
/// task in the dashboard's agent pane; the whole prompt is in the transcript once it ends, and
/// a fan-out of large prompts must not copy them all into the event stream.
pub(crate) const PROMPT_HEAD: usize = 2_000;

/// The version of the JSON-lines schema written by `--events` (docs/events.md). Bumped when a
/// field is removed or changes meaning; new fields and event types may be added within it.
pub(crate) const SCHEMA_VERSION: u32 = 1;

/// The JSON Schema of one `--events` line (`wfhost schema events`, docs/schemas/): generated
/// from the types the lines are written from, so it cannot drift from them.
pub(crate) fn line_schema() -> serde_json::Value {
    /// A line as `to_line` writes it: the schema's version, the time, the event.
    #[derive(schemars::JsonSchema)]
    #[expect(dead_code, reason = "only its schema is used")]
    struct EventLine {
        /// The schema's version (1): bumped when a field is removed or changes meaning.
        v: u32,
        /// Milliseconds since the run started.
        t_ms: u64,
        #[serde(flatten)]
        event: Event,
    }
    crate::report::schema_of::<EventLine>("wfhost --events line")
}

/// One event as a line of the JSON-lines schema: `{"v": 1, "t_ms": …, "type": …, …}` (no
/// newline). `t_ms`: milliseconds since `start`, the run's start.
pub(crate) fn to_line(start: std::time::Instant, e: &Event) -> String {
    /// Written straight from the event (no `serde_json::Value` in between: this runs three
    /// times per agent).
    #[derive(Serialize)]
    struct Line<'a> {
        v: u32,
        t_ms: u64,
        #[serde(flatten)]
        event: &'a Event,
    }
    serde_json::to_string(&Line {
        v: SCHEMA_VERSION,
        t_ms: crate::report::millis(start.elapsed()),
        event: e,
    })
    .unwrap_or_default()
}

/// A line of the JSON-lines schema read back: its time and its event (`None`: an event type
/// this version does not know, which readers skip).
pub(crate) fn from_line(line: &str) -> Option<(u64, Event)> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let t_ms = v["t_ms"].as_u64().unwrap_or(0);
    Some((t_ms, serde_json::from_value(v).ok()?))
}

/// `--events FILE` (or `-` for stdout): one JSON object per line, `{"v": 1, "t_ms": …, "type": …}`.
pub(crate) fn json_lines(target: &str) -> std::io::Result<Events> {
    let out: Box<dyn std::io::Write + Send> = match target {
        "-" => Box::new(std::io::stdout()),
        path => Box::new(std::fs::File::create(path)?),
    };
    Ok(write_lines(out, std::time::Instant::now()))
}

/// Every event as a line of the JSON-lines schema, written to `out` as it happens.
pub(crate) fn write_lines(
    out: Box<dyn std::io::Write + Send>,
    start: std::time::Instant,
) -> Events {
    use std::io::Write;
    let out = std::sync::Mutex::new(std::io::LineWriter::new(out));
    Events::new(move |e| {
        let line = to_line(start, e);
        if let Ok(mut out) = out.lock() {
            let _ = writeln!(out, "{line}");
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_puts_version_time_and_type_first_and_reads_back() {
        let e = Event::AgentFinished {
            handle: 7,
            label: "review a.rs".into(),
            usage: Usage {
                input_tokens: 3,
                output_tokens: 5,
                ..Usage::default()
            },
            cost_usd: 0.25,
            duration_ms: 12,
        };
        let line = to_line(std::time::Instant::now(), &e);
        assert!(
            line.starts_with(r#"{"v":1,"t_ms":0,"type":"agent_finished","handle":7,"label":"review a.rs","usage":{"#),
            "{line}"
        );
        let (t, back) = from_line(&line).expect("reads back");
        assert_eq!(t, 0);
        assert_eq!(
            serde_json::to_value(&back).unwrap(),
            serde_json::to_value(&e).unwrap()
        );
        let c = Event::Control {
            action: "pause".into(),
            agent: None,
            by: "wfhost".into(),
            detail: None,
            wait_ms: None,
        };
        assert_eq!(
            to_line(std::time::Instant::now(), &c),
            r#"{"v":1,"t_ms":0,"type":"control","action":"pause","by":"wfhost"}"#
        );
    }
}
