//! Steering a live run. [`Control`] is the run's side of it: the event stream so far (for
//! `subscribe`), the live fold of it (`status`, which agent "3" is), the pause gate the
//! scheduler waits on, and a cancel switch per running agent. `server` puts it on the run's
//! Unix socket; `client` is how `wfhost stop`, `watch`, `logs` and the MCP server reach it.
//! The protocol is in docs/control.md.

pub(crate) mod client;
pub(crate) mod permission;
pub(crate) mod server;
mod status;

pub(crate) use status::RunStatus;

use crate::events::{Event, Events};
use crate::journal::{Journal, Record};
use crate::live::LiveRun;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;
use tokio::sync::{mpsc, watch};

/// The version of the control protocol (docs/control.md). A request names the version it
/// speaks; a server refuses one it does not know rather than guess.
pub(crate) const PROTOCOL_VERSION: u32 = 1;

/// One request: a JSON line `{"v": 1, "cmd": "kill", "agent": "3"}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Request {
    pub v: u32,
    #[serde(flatten)]
    pub command: Command,
    /// Who is asking, for the journal (`wfhost stop`, `wfhost watch`, an MCP client's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub(crate) enum Command {
    /// The whole event stream from the start, then live, until the run ends.
    Subscribe,
    Status,
    Pause,
    Continue,
    Stop,
    Kill {
        agent: AgentRef,
    },
    Restart {
        agent: AgentRef,
    },
    Save {
        #[serde(default)]
        personal: bool,
        #[serde(default)]
        force: bool,
    },
    /// From an agent's permission helper (`wfhost permission-server`): the agent wants a tool
    /// outside its allow-list. The reply comes when an operator answers, or the wait runs out.
    Permission {
        #[serde(default)]
        agent: Option<u32>,
        tool: String,
        #[serde(default)]
        input: Value,
    },
    /// An operator's answer to a permission request: `once`, `always` (for the rest of the
    /// run, this tool with inputs of the pattern the request showed: `Bash(git status:*)`) or
    /// `deny`.
    Answer {
        id: u32,
        decision: String,
    },
}

/// An agent as an operator names it: its number, or its label.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub(crate) enum AgentRef {
    Number(u32),
    Name(String),
}

impl std::fmt::Display for AgentRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AgentRef::Number(n) => write!(f, "{n}"),
            AgentRef::Name(s) => f.write_str(s),
        }
    }
}

impl Command {
    /// The name the journal and the event stream use.
    pub(crate) fn action(&self) -> &'static str {
        match self {
            Command::Subscribe => "subscribe",
            Command::Status => "status",
            Command::Pause => "pause",
            Command::Continue => "continue",
            Command::Stop => "stop",
            Command::Kill { .. } => "kill",
            Command::Restart { .. } => "restart",
            Command::Save { .. } => "save",
            Command::Permission { .. } => "permission",
            Command::Answer { .. } => "answer",
        }
    }
}

/// Why a running agent's call is being cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cancel {
    /// It resolves to `null`, counted as failed.
    Kill,
    /// Its request is asked again; the script gets the new answer.
    Restart,
    /// The run is stopping: the call is abandoned and nothing is recorded for it.
    Stop,
}

/// The error an agent killed by an operator fails with (the script sees `null`).
pub(crate) const KILLED: &str = "killed by the operator";

/// The run's side of the control socket (shared by the scheduler, the sandbox's event stream
/// and the socket server).
pub(crate) struct Control {
    run_id: String,
    start: Instant,
    journal: Option<Arc<Journal>>,
    /// The run's script as it ran (for `save`).
    script: Option<(String, String)>,
    cwd: std::path::PathBuf,
    /// Every consumer of the run's events, for the events the control itself emits.
    events: OnceLock<Events>,
    paused: watch::Sender<bool>,
    /// Dispatching waits until then: a provider's usage limit resets (`--wait-on-limit`).
    held_until: watch::Sender<Option<tokio::time::Instant>>,
    stopping: watch::Sender<Option<String>>,
    inner: Mutex<Inner>,
    /// The run's event log (`events.jsonl`): the same lines subscribers receive.
    log: OnceLock<Mutex<std::io::LineWriter<std::fs::File>>>,
    /// How long a permission request waits for an operator before it is denied.
    permission_wait: Mutex<std::time::Duration>,
    /// How many lines the stream has: socket subscribers wait on it (`lines_from`).
    appended: watch::Sender<usize>,
    /// Clients subscribed to the run's stream right now (`wfhost watch`, MCP, `logs -f`): a
    /// person may be there to answer an agent's permission question.
    watchers: std::sync::atomic::AtomicUsize,
}

/// Why 256: a socket subscriber copies this many line pointers at a time out of the stream,
/// under its lock — enough to write in large batches, small enough never to hold the lock long.
const SUBSCRIBER_CHUNK: usize = 256;

/// Why 60 s: an agent waiting for a person holds a pool slot; someone watching answers in
/// seconds, and with nobody attached the agent is told no, with the reason, and goes on.
pub(crate) const PERMISSION_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

#[derive(Default)]
struct Inner {
    /// The event stream so far, as JSON lines (what a late subscriber is sent first).
    lines: Vec<Arc<str>>,
    subscribers: Vec<mpsc::UnboundedSender<Arc<str>>>,
    live: LiveRun,
    /// Agents running now, by handle: the switch that cancels each call.
    running: HashMap<u32, watch::Sender<Option<Cancel>>>,
    /// Agents killed while still queued: they fail as soon as a worker takes them.
    doomed: HashMap<u32, Cancel>,
    finished: bool,
    /// Permission requests waiting for an operator, by id.
    asking: HashMap<u32, Asking>,
    next_permission: u32,
    /// What operators allowed for the rest of the run ("always"): each a tool and a pattern
    /// of its input, with who set it.
    always: Vec<(permission::Rule, String)>,
}

/// A permission request waiting for an operator.
struct Asking {
    tx: tokio::sync::oneshot::Sender<Decision>,
    tool: String,
    /// What "always" on it would allow.
    rule: permission::Rule,
}

/// How a permission request was decided: what the agent is told, and what the journal keeps.
struct Decision {
    allowed: bool,
    message: String,
    /// `once`, `always`, `deny`, `rule` (a standing "always") or `timeout`.
    how: &'static str,
    by: String,
    /// The rule it set (`always`) or matched (`rule`), as a person reads it.
    rule: Option<String>,
}

/// Who sent a command: the peer's credentials (SO_PEERCRED) and the client's own name.
#[derive(Debug, Clone)]
pub(crate) struct Who {
    pub uid: u32,
    pub pid: Option<i32>,
    pub client: Option<String>,
}

impl std::fmt::Display for Who {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "uid {}", self.uid)?;
        if let Some(p) = self.pid {
            write!(f, " pid {p}")?;
        }
        if let Some(c) = &self.client {
            write!(f, " ({})", crate::sanitize::line(c))?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control")
            .field("run_id", &self.run_id)
            .finish_non_exhaustive()
    }
}

/// One subscriber of a run's stream, counted while it lasts (`Control::watching`).
pub(crate) struct Watching(Arc<Control>);

impl Drop for Watching {
    fn drop(&mut self) {
        self.0
            .watchers
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A command's answer: the JSON line sent back.
pub(crate) type Reply = Result<Value, Refused>;

/// A refused command, as the socket sends it: `{"ok": false, "error": …, "hint": …}` — what is
/// wrong and, when there is one, what to do instead (never one string to split again).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Refused {
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Refused {
    pub(crate) fn hint(mut self, hint: impl Into<String>) -> Refused {
        self.hint = Some(hint.into());
        self
    }
}

impl From<String> for Refused {
    fn from(error: String) -> Refused {
        Refused { error, hint: None }
    }
}

impl From<&str> for Refused {
    fn from(error: &str) -> Refused {
        Refused::from(error.to_string())
    }
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.error)?;
        match &self.hint {
            Some(h) => write!(f, " (hint: {h})"),
            None => Ok(()),
        }
    }
}

impl From<&crate::ExitError> for Refused {
    fn from(e: &crate::ExitError) -> Refused {
        Refused {
            error: e.message.clone(),
            hint: e.hint.clone(),
        }
    }
}

impl Control {
    pub(crate) fn new(
        run_id: &str,
        journal: Option<Arc<Journal>>,
        script: Option<(String, String)>,
        cwd: std::path::PathBuf,
    ) -> Arc<Control> {
        Arc::new(Control {
            run_id: run_id.to_string(),
            start: Instant::now(),
            journal,
            script,
            cwd,
            events: OnceLock::new(),
            paused: watch::Sender::new(false),
            held_until: watch::Sender::new(None),
            stopping: watch::Sender::new(None),
            inner: Mutex::new(Inner::default()),
            log: OnceLock::new(),
            permission_wait: Mutex::new(PERMISSION_WAIT),
            appended: watch::Sender::new(0),
            watchers: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// The run's control socket, when it has a directory (what agents' helpers connect to).
    pub(crate) fn socket(&self) -> Option<std::path::PathBuf> {
        self.journal.as_ref().map(|j| j.dir().control_socket())
    }

    /// A client subscribed to the stream; the guard counts it until dropped.
    pub(crate) fn watching(self: &Arc<Self>) -> Watching {
        self.watchers
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Watching(self.clone())
    }

    /// Whether anyone is subscribed to the run's stream now (and could answer a question).
    pub(crate) fn watched(&self) -> bool {
        self.watchers.load(std::sync::atomic::Ordering::Relaxed) > 0
    }

    /// `--permission-timeout`.
    pub(crate) fn set_permission_wait(&self, wait: std::time::Duration) {
        if let Ok(mut w) = self.permission_wait.lock() {
            *w = wait;
        }
    }

    /// An agent asks to use `tool` with `input`: allowed at once when it matches a rule an
    /// operator set ("always"); otherwise the request waits for an answer (`answer`), and is
    /// denied, with the reason, when nobody answers in time. Every decision — a standing
    /// rule's too — is an event and a journal record. Returns (allowed, message).
    pub(crate) async fn ask_permission(
        &self,
        agent: Option<u32>,
        tool: &str,
        input: &Value,
    ) -> (bool, String) {
        let rule = permission::Rule::for_request(tool, input);
        // A standing rule decides at once; otherwise the request waits for an operator.
        let (id, waiting) = {
            let mut inner = self.inner();
            inner.next_permission += 1;
            let id = inner.next_permission;
            let standing = inner
                .always
                .iter()
                .find(|(r, _)| r.matches(tool, input))
                .map(|(r, by)| (r.describe(), by.clone()));
            let waiting = match standing {
                Some(standing) => Err(standing),
                None => {
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    inner.asking.insert(
                        id,
                        Asking {
                            tx,
                            tool: tool.to_string(),
                            rule: rule.clone(),
                        },
                    );
                    Ok(rx)
                }
            };
            (id, waiting)
        };
        let shown = permission::event_input(input);
        self.emit(Event::Permission {
            id,
            agent,
            tool: tool.to_string(),
            input: shown.clone(),
            always: rule.describe(),
        });
        let d = match waiting {
            Err((rule, by)) => Decision {
                allowed: true,
                message: format!("allowed by the standing rule `{rule}` an operator set ({by})"),
                how: "rule",
                by,
                rule: Some(rule),
            },
            Ok(rx) => {
                let wait = self.permission_wait.lock().map_or(PERMISSION_WAIT, |w| *w);
                match tokio::time::timeout(wait, rx).await {
                    Ok(Ok(answered)) => answered,
                    _ => {
                        self.inner().asking.remove(&id);
                        Decision {
                            allowed: false,
                            message: format!(
                                "nobody answered this permission request within {} (wfhost --permission-timeout): `{tool}` is not allowed for this agent; do the task without it, or say what you needed",
                                humantime::format_duration(wait)
                            ),
                            how: "timeout",
                            by: "nobody".into(),
                            rule: None,
                        }
                    }
                }
            }
        };
        if let Some(j) = &self.journal {
            let _ = j.append(&Record::Permission {
                id,
                agent,
                tool: tool.to_string(),
                input: shown,
                allowed: d.allowed,
                decision: d.how.to_string(),
                rule: d.rule,
                by: d.by,
                at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            });
        }
        self.emit(Event::PermissionAnswered {
            id,
            agent,
            tool: tool.to_string(),
            allowed: d.allowed,
            detail: d.message.clone(),
        });
        (d.allowed, d.message)
    }

    fn answer(&self, id: u32, decision: &str, who: &Who) -> Reply {
        let allowed = match decision {
            "once" | "always" => true,
            "deny" => false,
            other => {
                return Err(Refused::from(format!("`{other}` is not an answer"))
                    .hint("answer `once`, `always` or `deny`"));
            }
        };
        let mut inner = self.inner();
        let Some(asking) = inner.asking.remove(&id) else {
            return Err(Refused::from(format!(
                "there is no open permission request {id} (it was answered, or timed out)"
            ))
            .hint("`wfhost status RUN` lists the open ones"));
        };
        let tool = asking.tool.clone();
        let mut rule = None;
        if decision == "always" {
            rule = Some(asking.rule.describe());
            inner.always.push((asking.rule, who.to_string()));
        }
        let message = match (&rule, decision) {
            (Some(rule), _) => {
                format!("allowed by the operator ({who}), and from now on `{rule}`")
            }
            (None, "once") => format!("allowed once by the operator ({who})"),
            _ => format!("denied by the operator ({who}): do the task without `{tool}`"),
        };
        let how = match decision {
            "once" => "once",
            "always" => "always",
            _ => "deny",
        };
        let _ = asking.tx.send(Decision {
            allowed,
            message,
            how,
            by: who.to_string(),
            rule: rule.clone(),
        });
        Ok(json!({ "id": id, "allowed": allowed, "tool": tool, "rule": rule }))
    }

    /// Writes every line of the stream to `file` as well (the run's `events.jsonl`).
    pub(crate) fn log_to(&self, file: std::fs::File) {
        let _ = self.log.set(Mutex::new(std::io::LineWriter::new(file)));
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding it leaves plain data behind; the run goes on.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The consumer that records the run's events (tee it with the views), and the handle
    /// the control emits its own events through (`all`: every consumer, this one included).
    pub(crate) fn consumer(self: &Arc<Self>) -> Events {
        let me = self.clone();
        Events::new(move |e| me.observe(e))
    }

    /// Where the control's own events go: every consumer of the run's stream.
    pub(crate) fn attach(&self, all: Events) {
        let _ = self.events.set(all);
    }

    fn observe(&self, e: &Event) {
        let line: Arc<str> = crate::events::to_line(self.start, e).into();
        let t_ms = crate::report::millis(self.start.elapsed());
        if let Some(log) = self.log.get()
            && let Ok(mut log) = log.lock()
        {
            use std::io::Write as _;
            let _ = writeln!(log, "{line}");
        }
        let mut inner = self.inner();
        inner.live.apply(t_ms, e);
        inner.lines.push(line.clone());
        inner.subscribers.retain(|s| s.send(line.clone()).is_ok());
        if matches!(e, Event::RunFinished { .. }) {
            inner.finished = true;
            // Dropping the senders ends every subscription once its backlog is written.
            inner.subscribers.clear();
        }
        let appended = inner.lines.len();
        drop(inner);
        self.appended.send_replace(appended);
    }

    /// For a socket subscriber: up to `SUBSCRIBER_CHUNK` lines of the stream from `from` on,
    /// and whether the stream ends after them. A subscriber is a cursor into the stream the
    /// run keeps anyway, never a queue of its own: one that never reads costs the run nothing.
    pub(crate) fn lines_from(&self, from: usize) -> (Vec<Arc<str>>, bool) {
        let inner = self.inner();
        let end = inner.lines.len().min(from.saturating_add(SUBSCRIBER_CHUNK));
        let chunk = inner
            .lines
            .get(from..end)
            .map(<[_]>::to_vec)
            .unwrap_or_default();
        (chunk, inner.finished && end >= inner.lines.len())
    }

    /// How many lines the stream has now.
    pub(crate) fn stream_len(&self) -> usize {
        self.inner().lines.len()
    }

    /// Changes whenever the stream grows (`lines_from` has more).
    pub(crate) fn appended(&self) -> watch::Receiver<usize> {
        self.appended.subscribe()
    }

    /// The stream so far and, unless the run has finished, the rest as it happens.
    pub(crate) fn subscribe(&self) -> (Vec<Arc<str>>, Option<mpsc::UnboundedReceiver<Arc<str>>>) {
        let mut inner = self.inner();
        let backlog = inner.lines.clone();
        if inner.finished {
            return (backlog, None);
        }
        let (tx, rx) = mpsc::unbounded_channel();
        inner.subscribers.push(tx);
        (backlog, Some(rx))
    }

    // ---- the scheduler's side ----

    /// Waits while the run is paused or held for a usage limit. `false`: the run is stopping,
    /// start nothing.
    pub(crate) async fn dispatch_allowed(&self) -> bool {
        let mut paused = self.paused.subscribe();
        let mut stopping = self.stopping.subscribe();
        loop {
            let held = *self.held_until.borrow();
            let resumed = tokio::select! {
                r = paused.wait_for(|p| !*p) => r.is_ok(),
                _ = stopping.wait_for(Option::is_some) => false,
            };
            if !resumed || self.stopping.borrow().is_some() {
                return false;
            }
            match held {
                Some(until) if until > tokio::time::Instant::now() => {
                    tokio::select! {
                        () = tokio::time::sleep_until(until) => {}
                        _ = stopping.wait_for(Option::is_some) => return false,
                    }
                }
                _ => return true,
            }
        }
    }

    /// The provider's usage limit is reached: no call starts for `wait` (or until the latest
    /// reset any agent was told), and the run says so.
    pub(crate) fn hold(&self, wait: std::time::Duration, label: &str) {
        let until = tokio::time::Instant::now() + wait;
        self.held_until
            .send_modify(|h| *h = Some(h.map_or(until, |old| old.max(until))));
        let detail = format!(
            "the provider's usage limit is reached ([{label}]); nothing starts for {}, then it is asked again (--wait-on-limit)",
            humantime::format_duration(std::time::Duration::from_secs(wait.as_secs().max(1)))
        );
        self.emit(Event::Log {
            level: crate::events::LogLevel::Warn,
            text: detail.clone(),
        });
        self.emit(Event::Control {
            action: "limit".into(),
            agent: None,
            by: "wfhost".into(),
            detail: Some(detail),
            wait_ms: Some(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX)),
        });
    }

    /// An agent's call begins: the switch that cancels it, or the reason it must not run
    /// (killed while queued, or the run is stopping).
    pub(crate) fn begin(&self, handle: u32) -> Result<watch::Receiver<Option<Cancel>>, Cancel> {
        if self.stopping.borrow().is_some() {
            return Err(Cancel::Stop);
        }
        let mut inner = self.inner();
        if let Some(c) = inner.doomed.remove(&handle) {
            return Err(c);
        }
        let (tx, rx) = watch::channel(None);
        inner.running.insert(handle, tx);
        Ok(rx)
    }

    /// The call ended (answered, failed or cancelled).
    pub(crate) fn end(&self, handle: u32) {
        self.inner().running.remove(&handle);
    }

    /// Resolves when an operator (or a signal) stops the run: the reason.
    pub(crate) async fn stopped(&self) -> String {
        let mut rx = self.stopping.subscribe();
        match rx.wait_for(Option::is_some).await {
            Ok(r) => r.clone().unwrap_or_default(),
            Err(_) => std::future::pending().await,
        }
    }

    /// Stops the run: nothing more starts, and every running call is abandoned (its process
    /// ended, its request dropped). `stopped()` resolves with `reason`.
    pub(crate) fn halt(&self, reason: &str) {
        if self.stopping.borrow().is_none() {
            self.stopping.send_replace(Some(reason.to_string()));
        }
        let mut inner = self.inner();
        for tx in inner.running.values() {
            let _ = tx.send(Some(Cancel::Stop));
        }
        inner.doomed.clear();
    }

    /// Emits an event on the run's stream (views, `--events`, subscribers).
    pub(crate) fn emit(&self, event: Event) {
        match self.events.get() {
            Some(all) => all.emit(event),
            None => self.observe(&event),
        }
    }

    /// The agent number the views show for a handle.
    pub(crate) fn number(&self, handle: u32) -> Option<u32> {
        self.inner().live.by_handle(handle).map(|a| a.number)
    }

    // ---- commands ----

    /// Carries out one command from `who` (subscribe is the server's, not here).
    pub(crate) fn command(&self, command: &Command, who: &Who) -> Reply {
        let reply = match command {
            Command::Subscribe => return Err("`subscribe` is a stream, not a command".into()),
            Command::Status => return Ok(self.status().to_value()),
            Command::Pause | Command::Continue => {
                let pause = *command == Command::Pause;
                self.paused.send_replace(pause);
                json!({ "paused": pause })
            }
            Command::Stop => {
                // Journaled first: the run's end record must come after it, and ending the run
                // is what `halt` sets off.
                self.record("stop", None, who);
                self.halt(&format!("stopped by the operator ({who})"));
                return Ok(
                    json!({ "stopping": true, "resume": format!("wfhost resume {} --yes", self.run_id) }),
                );
            }
            Command::Kill { agent } | Command::Restart { agent } => {
                let cancel = if matches!(command, Command::Kill { .. }) {
                    Cancel::Kill
                } else {
                    Cancel::Restart
                };
                self.cancel(agent, cancel)?
            }
            Command::Save { personal, force } => self.save(*personal, *force)?,
            Command::Permission { .. } => {
                return Err(
                    "`permission` is asked by an agent's helper and waits for its answer".into(),
                );
            }
            Command::Answer { id, decision } => self.answer(*id, decision, who)?,
        };
        let agent = match command {
            Command::Kill { .. } | Command::Restart { .. } => {
                reply["agent"].as_u64().and_then(|n| u32::try_from(n).ok())
            }
            _ => None,
        };
        self.record(command.action(), agent, who);
        Ok(reply)
    }

    fn cancel(&self, agent: &AgentRef, cancel: Cancel) -> Reply {
        let mut inner = self.inner();
        let row = inner
            .live
            .find(&agent.to_string())
            .map_err(|e| Refused::from(e).hint("`wfhost status RUN` lists the run's agents"))?
            .clone();
        let what = if cancel == Cancel::Kill {
            "killed"
        } else {
            "restarted"
        };
        if let Some(tx) = inner.running.get(&row.handle) {
            let _ = tx.send(Some(cancel));
            return Ok(json!({ "agent": row.number, "label": row.label, what: true }));
        }
        use crate::agent::AgentState::{Queued, Running};
        match (row.state, cancel) {
            // Not yet in a worker's hands: it fails as soon as one takes it.
            (Queued | Running, Cancel::Kill) => {
                inner.doomed.insert(row.handle, Cancel::Kill);
                Ok(json!({ "agent": row.number, "label": row.label, what: true, "queued": true }))
            }
            (Queued, _) => Err(format!(
                "agent {} ({}) has not started yet: there is nothing to restart",
                row.number,
                crate::sanitize::line(&row.label)
            )
            .into()),
            (state, _) => Err(format!(
                "agent {} ({}) has already finished ({state})",
                row.number,
                crate::sanitize::line(&row.label)
            )
            .into()),
        }
    }

    fn save(&self, personal: bool, force: bool) -> Reply {
        let Some((origin, source)) = &self.script else {
            return Err("this run has no script to save (it runs a compiled module)".into());
        };
        match crate::workflows::save(origin, source, &self.cwd, personal, force) {
            Ok(Ok((name, path))) => Ok(json!({ "name": name, "path": path })),
            Ok(Err(rejection)) => Err(rejection.render().into()),
            Err(e) => Err(match e.downcast_ref::<crate::ExitError>() {
                Some(x) => Refused::from(x),
                None => format!("{e:#}").into(),
            }),
        }
    }

    /// Journals a command (who, when, what) and puts it on the event stream.
    fn record(&self, action: &str, agent: Option<u32>, who: &Who) {
        if let Some(j) = &self.journal {
            let _ = j.append(&Record::Control {
                action: action.to_string(),
                agent,
                by: who.to_string(),
                at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            });
        }
        self.emit(Event::Control {
            action: action.to_string(),
            agent,
            by: who.to_string(),
            detail: None,
            wait_ms: None,
        });
    }

    /// The run's name and its agents as the live fold has them (for the CI reports, ci.rs).
    pub(crate) fn agents(&self) -> (String, Vec<crate::live::AgentRow>) {
        let inner = self.inner();
        (inner.live.name.clone(), inner.live.agents.clone())
    }

    /// The `status` reply: the run, its counts, each phase, who waits and who failed.
    pub(crate) fn status(&self) -> RunStatus {
        let inner = self.inner();
        RunStatus::live(
            &self.run_id,
            &inner.live,
            self.stopping.borrow().is_some(),
            crate::report::millis(self.start.elapsed()),
        )
    }
}
