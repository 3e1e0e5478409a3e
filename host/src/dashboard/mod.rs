//! `wfhost watch`: a full-screen dashboard of a live run on ratatui + crossterm, kept as the
//! ratatui apps do it: `state` (what is shown), `input` (keys → state or actions), `draw`
//! (state → frame), and this loop between them. It reads the run's event stream (the control
//! socket's `subscribe`, or this process's own run) and sends commands back on the socket.
//!
//! The terminal is always restored: on leaving, on the run's end, on a panic (ratatui's hook)
//! and on SIGTERM or SIGINT. It redraws at most ten times a second, however fast events come.

pub(crate) mod draw;
pub(crate) mod input;
pub(crate) mod state;

use crate::control::client::Client;
use crate::control::{Command, Control, Who};
use crate::events::from_line;
use crate::run_dir::RunDir;
use anyhow::Result;
use input::Action;
use ratatui::crossterm::event::{self, Event as TermEvent, KeyEventKind};
use state::{App, Detail};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Why 100 ms: ten frames a second reads as live to a person, and drawing costs the same at
/// 1 or 1000 events between frames.
const FRAME: Duration = Duration::from_millis(100);

/// Where the dashboard's run is.
pub(crate) enum Link {
    /// A run in another process, through its control socket (`wfhost watch`).
    Socket(RunDir),
    /// This process's own run (`wfhost run` on a terminal).
    Local(Arc<Control>, Option<RunDir>),
    /// A run that has ended, read-only from its event log (`wfhost watch` of a past run).
    Finished(RunDir),
}

impl Link {
    fn dir(&self) -> Option<&RunDir> {
        match self {
            Link::Socket(d) | Link::Finished(d) => Some(d),
            Link::Local(_, d) => d.as_ref(),
        }
    }

    /// The run's event stream, from its start: lines of the events schema.
    async fn stream(&self) -> Result<mpsc::UnboundedReceiver<String>> {
        let (tx, rx) = mpsc::unbounded_channel();
        match self {
            Link::Socket(dir) => {
                let mut lines = Client::connect(dir, "wfhost watch")
                    .await?
                    .subscribe()
                    .await?;
                tokio::spawn(async move {
                    while let Ok(Some(line)) = lines.next_line().await {
                        if tx.send(line).is_err() {
                            break;
                        }
                    }
                });
            }
            // The whole log at once; the channel then closes, as a run's stream does at its end.
            Link::Finished(dir) => {
                let text = std::fs::read_to_string(dir.events()).map_err(|e| {
                    crate::ExitError::usage(format!(
                        "run `{}` has no event log (`{}`: {e})",
                        dir.id(),
                        dir.events().display()
                    ))
                    .hint(format!("`wfhost runs show {}` reads its journal", dir.id()))
                })?;
                for line in text.lines() {
                    let _ = tx.send(line.to_string());
                }
            }
            Link::Local(control, _) => {
                let (backlog, live) = control.subscribe();
                for line in backlog {
                    let _ = tx.send(line.to_string());
                }
                if let Some(mut live) = live {
                    tokio::spawn(async move {
                        while let Some(line) = live.recv().await {
                            if tx.send(line.to_string()).is_err() {
                                break;
                            }
                        }
                    });
                }
            }
        }
        Ok(rx)
    }

    async fn send(&self, command: Command) -> Result<serde_json::Value, String> {
        match self {
            Link::Finished(_) => Err("the run has ended: it is shown read-only".into()),
            Link::Socket(dir) => {
                let reply = async {
                    Client::connect(dir, "wfhost watch")
                        .await?
                        .request(command)
                        .await
                };
                match tokio::time::timeout(Duration::from_secs(5), reply).await {
                    Ok(r) => r.map_err(|e| format!("{e:#}")),
                    Err(_) => Err("the run did not answer within 5 s".into()),
                }
            }
            Link::Local(control, _) => {
                // SAFETY: geteuid has no preconditions and cannot fail.
                let uid = unsafe { libc::geteuid() };
                control
                    .command(
                        &command,
                        &Who {
                            uid,
                            pid: i32::try_from(std::process::id()).ok(),
                            client: Some("wfhost run dashboard".into()),
                        },
                    )
                    .map_err(|r| r.to_string())
            }
        }
    }
}

/// Restores the terminal however the dashboard ends.
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

/// A running agent: the start of its prompt and what it has said so far, from the event
/// stream (nothing is in the run directory until it ends). Rebuilt as its output arrives.
fn live_detail(row: &crate::live::AgentRow, scroll: u16) -> Detail {
    let mut text = format!("state: {}\n", row.state);
    if let Some(p) = &row.prompt {
        text.push_str(&format!("\n── prompt (its start)\n{p}\n"));
    }
    text.push_str("\n── output so far\n");
    if row.output.is_empty() {
        text.push_str("(nothing yet)\n");
    } else {
        text.push_str(&row.output);
    }
    Detail {
        title: crate::sanitize::line(&format!("agent {} · {}", row.number, row.label)).into_owned(),
        text: crate::sanitize::text(&text).into_owned(),
        scroll,
        live: Some(row.handle),
    }
}

/// An agent's prompt, answer or error, and transcript, from the run directory.
fn detail(dir: Option<&RunDir>, app: &App, handle: u32) -> Detail {
    let row = app.run.by_handle(handle);
    if let Some(r) = row.filter(|r| r.state == crate::agent::AgentState::Running) {
        return live_detail(r, 0);
    }
    let title = row.map_or_else(
        || format!("agent {handle}"),
        |r| format!("agent {} · {}", r.number, r.label),
    );
    let mut text = String::new();
    if let Some(r) = row {
        text.push_str(&format!("state: {}\n", r.state));
        if let Some(e) = &r.error {
            text.push_str(&format!("error: {e}\n"));
        }
    }
    let found = dir.and_then(|dir| {
        let loaded = crate::journal::load_run(dir).ok()?;
        let (key, occurrence) = loaded.records.iter().find_map(|r| match r {
            crate::journal::Record::AgentStarted {
                key,
                occurrence,
                handle: Some(h),
                ..
            } if *h == handle => Some((key.clone(), *occurrence)),
            _ => None,
        })?;
        Some((dir.clone(), loaded, key, occurrence))
    });
    if let Some((dir, loaded, key, occurrence)) = found {
        let answer = loaded.records.iter().rev().find_map(|r| match r {
            crate::journal::Record::Result {
                key: k,
                occurrence: o,
                value,
                ..
            } if *k == key && *o == occurrence => {
                Some(serde_json::to_string_pretty(value).unwrap_or_default())
            }
            _ => None,
        });
        let transcripts = crate::journal::Transcripts::load(&dir);
        if let Some(prompt) = transcripts.prompt(&key, occurrence) {
            text.push_str(&format!("\n── prompt\n{prompt}\n"));
        }
        if let Some(a) = answer {
            text.push_str(&format!("\n── answer\n{a}\n"));
        }
        if let Some(t) = transcripts.get(&key, occurrence) {
            text.push_str(&format!(
                "\n── transcript\n{}\n",
                serde_json::to_string_pretty(t).unwrap_or_default()
            ));
        }
    } else if dir.is_some() {
        text.push_str("\n(not started yet: nothing in the journal)\n");
    }
    Detail {
        title: crate::sanitize::line(&title).into_owned(),
        text: crate::sanitize::text(&text).into_owned(),
        scroll: 0,
        live: None,
    }
}

/// How the dashboard ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    /// The operator left (`q`); the run goes on.
    Left,
    /// The run ended.
    RunEnded,
    /// Ctrl-C, SIGINT or SIGTERM.
    Interrupted,
}

/// Runs the dashboard until the operator leaves, or (with `leave_at_end`) the run ends; returns
/// how it ended and the run as it stood then.
pub(crate) async fn run(link: Link, leave_at_end: bool) -> Result<(Exit, crate::live::LiveRun)> {
    let mut lines = link.stream().await?;
    let (keys_tx, mut keys) = mpsc::unbounded_channel();
    // crossterm's reads block: a thread of their own, which ends with the dashboard.
    std::thread::spawn(move || {
        loop {
            match event::poll(Duration::from_millis(50)) {
                Ok(true) => match event::read() {
                    Ok(TermEvent::Key(k)) if k.kind == KeyEventKind::Press => {
                        if keys_tx.send(Some(k)).is_err() {
                            break;
                        }
                    }
                    Ok(TermEvent::Resize(..)) => {
                        if keys_tx.send(None).is_err() {
                            break;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => break,
                },
                Ok(false) if keys_tx.is_closed() => break,
                Ok(false) => {}
                Err(_) => break,
            }
        }
    });
    let mut terminal = ratatui::init();
    let _restore = Restore;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let mut app = App::new();
    let mut tick = tokio::time::interval(FRAME);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    // The run's clock: its last event's time, and when it arrived here.
    let mut clock = (0u64, Instant::now());
    let mut dirty = true;
    let mut frames = 0u32;
    let exit = loop {
        tokio::select! {
            line = lines.recv(), if !app.ended => match line {
                Some(line) => {
                    // This line and whatever else is queued, before the next frame.
                    for line in std::iter::once(line).chain(std::iter::from_fn(|| lines.try_recv().ok())) {
                        if let Some((t_ms, e)) = from_line(&line) {
                            app.run.apply(t_ms, &e.for_terminal());
                            clock = (t_ms, Instant::now());
                        }
                    }
                    app.clamp();
                    // An open pane of a running agent follows it: its output, then (once it
                    // ends) its answer from the run directory.
                    if let Some(handle) = app.detail.as_ref().and_then(|d| d.live) {
                        let scroll = app.detail.as_ref().map_or(0, |d| d.scroll);
                        app.detail = Some(match app.run.by_handle(handle) {
                            Some(r) if r.state == crate::agent::AgentState::Running => live_detail(r, scroll),
                            _ => detail(link.dir(), &app, handle),
                        });
                    }
                    dirty = true;
                }
                None => {
                    app.ended = true;
                    app.message = Some(format!(
                        "the run ended ({}); q leaves",
                        app.run.outcome_shown().as_deref().unwrap_or("its stream closed")
                    ));
                    dirty = true;
                    if leave_at_end {
                        break Exit::RunEnded;
                    }
                }
            },
            key = keys.recv() => {
                let Some(key) = key else { break Exit::Left };
                if let Some(key) = key {
                    app.message = None;
                    match input::handle(&mut app, key) {
                        Some(Action::Send(command)) => {
                            let what = command.action();
                            app.message = Some(match link.send(command).await {
                                Ok(reply) => match what {
                                    "save" => format!("saved as `{}` ({})", reply["name"].as_str().unwrap_or("?"), reply["path"].as_str().unwrap_or("?")),
                                    "kill" | "restart" => format!("{what}: agent {} ({})", reply["agent"], reply["label"].as_str().unwrap_or("")),
                                    "answer" => format!("{} `{}`", if reply["allowed"] == true { "allowed" } else { "denied" }, reply["tool"].as_str().unwrap_or("")),
                                    _ => format!("{what}: done"),
                                },
                                Err(e) => format!("{what} refused: {}", e.lines().next().unwrap_or_default()),
                            });
                        }
                        Some(Action::Open(handle)) => app.detail = Some(detail(link.dir(), &app, handle)),
                        None => {}
                    }
                }
                dirty = true;
                if app.quit {
                    break if key.is_some_and(|k| k.modifiers.contains(event::KeyModifiers::CONTROL)) {
                        Exit::Interrupted
                    } else {
                        Exit::Left
                    };
                }
            }
            _ = tick.tick() => {
                frames = frames.wrapping_add(1);
                // Clocks move while the run is live: once a second even with no events.
                if dirty || (!app.ended && frames.is_multiple_of(10)) {
                    let now_ms = clock.0 + crate::report::millis(clock.1.elapsed());
                    terminal.draw(|f| draw::draw(f, &app, now_ms))?;
                    dirty = false;
                }
            }
            _ = term.recv() => break Exit::Interrupted,
            _ = int.recv() => break Exit::Interrupted,
        }
    };
    Ok((exit, app.run))
}
