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

/// Prints events as lines on stderr (no ANSI codes; safe for CI logs).
pub fn plain() -> Events {
    plain_when(Arc::new(AtomicBool::new(true)))
}

/// The plain view while `on` is set (`wfhost run` turns it on when the operator leaves the
/// dashboard and the run goes on).
pub fn plain_when(on: Arc<AtomicBool>) -> Events {
    Events::new(move |e| {
        if !on.load(Ordering::Relaxed) {
            return;
        }
        if let Some(line) = plain_line(e) {
            let _ = writeln!(std::io::stderr().lock(), "{line}");
        }
    })
}

/// The plain view's line for an event (`None`: the plain view does not show it). Every
/// string the script controls is made safe for a terminal.
pub fn plain_line(e: &Event) -> Option<String> {
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
pub fn summary(run: &LiveRun) -> String {
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
        run.outcome.as_deref().unwrap_or("ended"),
        Duration::from_millis(run.t_ms).as_secs_f64()
    ));
    out
}
