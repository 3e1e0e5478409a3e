//! Line views of the event stream:
//! - [`plain`]: line-oriented progress on stderr, no ANSI codes (CI logs, pipes, `TERM=dumb`,
//!   `wfhost logs`);
//! - [`summary`]: what `wfhost run` leaves on a terminal after its dashboard (dashboard/)
//!   closes: the log lines and a table per phase.

use crate::events::{Event, Events, LogLevel};
use crate::live::LiveRun;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The plain view while `on` is set (`wfhost run` turns it on when the operator leaves the
/// dashboard and the run goes on).
///
/// Besides the event lines, progress while agents run, as cargo and uv print it in CI: a line
/// per finished agent while they finish slowly (at most one a second), and otherwise a tally
/// every `HEARTBEAT` (done, running, failed, tokens, cost) — never silence between a phase
/// header and the end, never a line per agent at a thousand agents a second.
pub(crate) fn plain_when(on: Arc<AtomicBool>) -> Events {
    let progress = Arc::new(std::sync::Mutex::new(Progress::default()));
    heartbeat(Arc::downgrade(&progress), on.clone());
    Events::new(move |e| {
        if !on.load(Ordering::Relaxed) {
            return;
        }
        let progress_line = progress
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .apply(e, std::time::Instant::now());
        let mut err = std::io::stderr().lock();
        for line in progress_line.into_iter().chain(plain_line(e)) {
            let _ = writeln!(err, "{line}");
        }
    })
}

/// A tally line is printed this often at the most while agents finish faster than one a
/// second. Why 5 s: often enough that a CI log never looks stuck, rare enough that a
/// 1,000-agent fan-out prints a few lines, not a thousand.
const HEARTBEAT: Duration = Duration::from_secs(5);
/// A line per finished agent, unless the last progress line came sooner than this.
const AGENT_LINE_GAP: Duration = Duration::from_secs(1);

/// What the plain view counts for its progress lines.
#[derive(Default)]
struct Progress {
    running: u64,
    done: u64,
    failed: u64,
    cached: u64,
    tokens: u64,
    cost_usd: f64,
    /// When the last progress line was printed.
    last_line: Option<std::time::Instant>,
    /// Agents finished since the last progress line (a tally is owed).
    unsaid: u64,
}

impl Progress {
    /// Folds an event in; the progress line to print before the event's own line, if any.
    fn apply(&mut self, e: &Event, now: std::time::Instant) -> Option<String> {
        match e {
            Event::AgentStarted { .. } => self.running += 1,
            Event::AgentCached { .. } => self.cached += 1,
            Event::AgentFinished {
                label,
                usage,
                cost_usd,
                duration_ms,
                ..
            } => {
                self.running = self.running.saturating_sub(1);
                self.done += 1;
                self.tokens += usage.input_tokens + usage.output_tokens;
                self.cost_usd += cost_usd;
                if self
                    .last_line
                    .is_some_and(|t| now.duration_since(t) < AGENT_LINE_GAP)
                {
                    self.unsaid += 1;
                    return None;
                }
                self.last_line = Some(now);
                self.unsaid = 0;
                return Some(format!(
                    "  ✓ {} · {} tok · {:.1}s   ({})",
                    crate::sanitize::line(label),
                    human_tokens(usage.input_tokens + usage.output_tokens),
                    Duration::from_millis(*duration_ms).as_secs_f64(),
                    self.tally()
                ));
            }
            // Its reason is logged on its own line (`[label] failed: …`, or the script's own
            // catch of a rejection); what the first line leaves out — why a schema was never
            // met — is said here, where a person reads it (the script sees only the first).
            Event::AgentFailed { label, error, .. } => {
                self.running = self.running.saturating_sub(1);
                self.failed += 1;
                self.unsaid += 1;
                let why: Vec<&str> = error.lines().skip(1).filter(|l| !l.is_empty()).collect();
                if !why.is_empty() {
                    return Some(format!(
                        "  ✗ {}: {}",
                        crate::sanitize::line(label),
                        crate::sanitize::line(&why.join(" "))
                    ));
                }
            }
            // A new phase or the end: what finished since the last line is said first.
            Event::Phase { .. } | Event::RunFinished { .. } => return self.owed(now),
            _ => {}
        }
        None
    }

    /// The tally, if agents finished since the last progress line.
    fn owed(&mut self, now: std::time::Instant) -> Option<String> {
        if self.unsaid == 0 {
            return None;
        }
        self.unsaid = 0;
        self.last_line = Some(now);
        Some(format!("  … {}", self.tally()))
    }

    fn tally(&self) -> String {
        let mut parts = vec![format!("{} done", self.done)];
        if self.cached > 0 {
            parts.push(format!("{} cached", self.cached));
        }
        parts.push(format!("{} running", self.running));
        if self.failed > 0 {
            parts.push(format!("{} failed", self.failed));
        }
        parts.push(format!("{} tok", human_tokens(self.tokens)));
        if self.cost_usd > 0.0 {
            parts.push(format!("${:.4}", self.cost_usd));
        }
        parts.join(", ")
    }
}

/// Prints the owed tally every `HEARTBEAT` while agents finish faster than their own lines;
/// ends with the view.
fn heartbeat(progress: std::sync::Weak<std::sync::Mutex<Progress>>, on: Arc<AtomicBool>) {
    let _ = std::thread::Builder::new()
        .name("wfhost-progress".into())
        .spawn(move || {
            loop {
                std::thread::sleep(Duration::from_millis(500));
                let Some(progress) = progress.upgrade() else {
                    return;
                };
                let mut p = progress
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let now = std::time::Instant::now();
                if !on.load(Ordering::Relaxed)
                    || p.last_line
                        .is_some_and(|t| now.duration_since(t) < HEARTBEAT)
                {
                    continue;
                }
                if let Some(line) = p.owed(now) {
                    let _ = writeln!(std::io::stderr().lock(), "{line}");
                }
            }
        });
}

/// The plain view's line for an event (`None`: the plain view does not show it). Every
/// string the script controls is made safe for a terminal.
pub(crate) fn plain_line(e: &Event) -> Option<String> {
    let e = &e.for_terminal();
    Some(match e {
        Event::RunStarted {
            meta,
            backend,
            model,
            ..
        } => format!(
            "▶ {} — {} (backend: {backend}{})",
            meta.name,
            meta.description,
            model
                .as_ref()
                .map(|m| format!(", model: {m}"))
                .unwrap_or_default()
        ),
        Event::Phase { title } => format!("── {title}"),
        Event::Log {
            level: LogLevel::Info,
            text,
        } => format!("  │ {text}"),
        Event::Log { text, .. } => format!("  ! {text}"),
        Event::Control {
            action,
            agent,
            by,
            detail,
            ..
        } => {
            let agent = agent.map(|n| format!(" agent {n}")).unwrap_or_default();
            let detail = detail
                .as_ref()
                .map(|d| format!(": {d}"))
                .unwrap_or_default();
            format!("  ⏵ {action}{agent} by {by}{detail}")
        }
        _ => return None,
    })
}

fn human_tokens(n: u64) -> String {
    if n >= 10_000 {
        format!("{:.1}k", n as f64 / 1000.0)
    } else {
        n.to_string()
    }
}

/// What a terminal keeps after the dashboard of `wfhost run` closes (its screen is gone): the
/// log lines, then a table with a row per phase and the outcome.
pub(crate) fn summary(run: &LiveRun) -> String {
    let mut out = String::new();
    for (level, text) in &run.logs {
        let mark = if *level == LogLevel::Info { "│" } else { "!" };
        out.push_str(&format!("  {mark} {}\n", crate::sanitize::line(text)));
    }
    out.push_str(&format!(
        "\n{:<24} {:>6} {:>7} {:>7} {:>9} {:>10} {:>8}\n",
        "phase", "done", "failed", "cached", "tokens", "cost", "time"
    ));
    for p in run
        .phases
        .iter()
        .filter(|p| p.counts.total() > 0 || !p.title.is_empty())
    {
        let took = match (p.first_ms, p.last_ms) {
            (Some(a), Some(b)) => b.saturating_sub(a),
            _ => 0,
        };
        let title = if p.title.is_empty() {
            "(no phase)"
        } else {
            &p.title
        };
        out.push_str(&format!(
            "{:<24} {:>6} {:>7} {:>7} {:>9} {:>10} {:>7.1}s\n",
            crate::sanitize::line(title)
                .chars()
                .take(24)
                .collect::<String>(),
            p.counts.done,
            p.counts.failed,
            p.counts.cached,
            human_tokens(p.tokens),
            format!("${:.4}", p.cost_usd),
            Duration::from_millis(took).as_secs_f64()
        ));
    }
    out.push_str(&format!(
        "{} in {:.1}s",
        run.outcome_shown().as_deref().unwrap_or("ended"),
        Duration::from_millis(run.t_ms).as_secs_f64()
    ));
    out
}
