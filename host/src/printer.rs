//! Progress views, each a consumer of the event stream:
//! - [`plain`]: line-oriented progress on stderr, no ANSI codes (CI logs, pipes, `TERM=dumb`);
//! - [`live`]: on a terminal, a line per phase (done/running/queued/failed, tokens, cost,
//!   elapsed), the running agents beneath, log lines scrolling above, and a summary table at
//!   the end; the bars are cleared so the terminal is left clean.

use crate::events::{Event, Events, LogLevel};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Prints events as lines on stderr (no ANSI codes; safe for CI logs).
pub fn plain() -> Events {
    Events::new(|e| {
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

#[derive(Default, Clone)]
struct PhaseStats {
    done: u32,
    running: u32,
    queued: u32,
    failed: u32,
    cached: u32,
    tokens: u64,
    cost: f64,
    started: Option<Instant>,
    ended: Option<Instant>,
}

struct Live {
    multi: MultiProgress,
    phases: Vec<(String, PhaseStats, ProgressBar)>,
    agents: HashMap<u32, (String, ProgressBar)>,
    queued_phase: HashMap<u32, usize>,
    current: usize,
    start: Instant,
}

/// Why 8: more running agents than this do not fit a terminal; the phase line counts them all.
const SHOWN_AGENTS: usize = 8;

fn human_tokens(n: u64) -> String {
    if n >= 10_000 {
        format!("{:.1}k", n as f64 / 1000.0)
    } else {
        n.to_string()
    }
}

impl Live {
    fn phase_index(&mut self, title: &str) -> usize {
        if let Some(i) = self.phases.iter().position(|(t, ..)| t == title) {
            return i;
        }
        let bar = self.multi.add(ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {prefix:.bold} {msg}").expect("valid template"),
        );
        bar.set_prefix(title.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        self.phases.push((
            title.to_string(),
            PhaseStats {
                started: Some(Instant::now()),
                ..PhaseStats::default()
            },
            bar,
        ));
        self.phases.len() - 1
    }

    fn refresh(&self, i: usize) {
        let (_, s, bar) = &self.phases[i];
        let elapsed = s
            .ended
            .unwrap_or_else(Instant::now)
            .duration_since(s.started.unwrap_or(self.start));
        let mut msg = format!(
            "{} done · {} running · {} queued · {} failed",
            s.done, s.running, s.queued, s.failed
        );
        if s.cached > 0 {
            msg.push_str(&format!(" · {} cached", s.cached));
        }
        msg.push_str(&format!(" · {} tok", human_tokens(s.tokens)));
        if s.cost > 0.0 {
            msg.push_str(&format!(" · ${:.4}", s.cost));
        }
        msg.push_str(&format!(" · {:.0}s", elapsed.as_secs_f64()));
        bar.set_message(msg);
    }

    fn on(&mut self, e: &Event) {
        match e {
            Event::RunStarted {
                meta,
                backend,
                model,
                ..
            } => {
                let model = model
                    .as_ref()
                    .map(|m| format!(", model {m}"))
                    .unwrap_or_default();
                let _ = self.multi.println(format!(
                    "▶ {} — {} (backend {backend}{model})",
                    meta.name, meta.description
                ));
                if !meta.phases.is_empty() {
                    let titles: Vec<&str> = meta.phases.iter().map(|p| p.title.as_str()).collect();
                    let _ = self
                        .multi
                        .println(format!("  phases: {}", titles.join(" → ")));
                }
            }
            Event::Phase { title } => {
                if let Some((_, s, _)) = self.phases.get_mut(self.current) {
                    s.ended.get_or_insert_with(Instant::now);
                }
                self.current = self.phase_index(title);
                self.refresh(self.current);
            }
            Event::AgentQueued { handle, phase, .. } => {
                let i = self.phase_index(phase.as_deref().unwrap_or("(no phase)"));
                self.queued_phase.insert(*handle, i);
                self.phases[i].1.queued += 1;
                self.refresh(i);
            }
            Event::AgentCached { phase, .. } => {
                let i = self.phase_index(phase.as_deref().unwrap_or("(no phase)"));
                self.phases[i].1.cached += 1;
                self.refresh(i);
            }
            Event::AgentStarted { handle, label, .. } => {
                let i = *self.queued_phase.get(handle).unwrap_or(&0);
                if let Some((_, s, _)) = self.phases.get_mut(i) {
                    s.queued = s.queued.saturating_sub(1);
                    s.running += 1;
                }
                if self.agents.len() < SHOWN_AGENTS {
                    let bar = self.multi.add(ProgressBar::new_spinner());
                    bar.set_style(
                        ProgressStyle::with_template("    {spinner} {msg} {elapsed}")
                            .expect("valid template"),
                    );
                    bar.set_message(label.chars().take(60).collect::<String>());
                    bar.enable_steady_tick(Duration::from_millis(120));
                    self.agents.insert(*handle, (label.clone(), bar));
                }
                if i < self.phases.len() {
                    self.refresh(i);
                }
            }
            Event::AgentFinished {
                handle,
                usage,
                cost_usd,
                ..
            } => self.end(*handle, false, usage.output_tokens, *cost_usd),
            Event::AgentFailed { handle, .. } => self.end(*handle, true, 0, 0.0),
            Event::Log { level, text } => {
                let mark = if *level == LogLevel::Info { "│" } else { "!" };
                let _ = self.multi.println(format!("  {mark} {text}"));
            }
            Event::RunFinished {
                outcome,
                duration_ms,
            } => {
                for (_, s, bar) in &mut self.phases {
                    s.ended.get_or_insert_with(Instant::now);
                    bar.finish_and_clear();
                }
                for (_, (_, bar)) in self.agents.drain() {
                    bar.finish_and_clear();
                }
                let _ = self.multi.clear();
                let mut table = format!(
                    "\n{:<24} {:>6} {:>7} {:>7} {:>9} {:>10} {:>8}\n",
                    "phase", "done", "failed", "cached", "tokens", "cost", "time"
                );
                for (title, s, _) in &self.phases {
                    let t = s
                        .ended
                        .unwrap_or_else(Instant::now)
                        .duration_since(s.started.unwrap_or(self.start));
                    table.push_str(&format!(
                        "{:<24} {:>6} {:>7} {:>7} {:>9} {:>10} {:>7.1}s\n",
                        title.chars().take(24).collect::<String>(),
                        s.done,
                        s.failed,
                        s.cached,
                        human_tokens(s.tokens),
                        format!("${:.4}", s.cost),
                        t.as_secs_f64()
                    ));
                }
                table.push_str(&format!(
                    "{outcome} in {:.1}s",
                    *duration_ms as f64 / 1000.0
                ));
                let _ = writeln!(std::io::stderr().lock(), "{table}");
            }
            _ => {}
        }
    }

    fn end(&mut self, handle: u32, failed: bool, tokens: u64, cost: f64) {
        let i = *self.queued_phase.get(&handle).unwrap_or(&0);
        if let Some((_, s, _)) = self.phases.get_mut(i) {
            s.running = s.running.saturating_sub(1);
            if failed {
                s.failed += 1;
            } else {
                s.done += 1;
            }
            s.tokens += tokens;
            s.cost += cost;
        }
        if let Some((_, bar)) = self.agents.remove(&handle) {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
        if i < self.phases.len() {
            self.refresh(i);
        }
    }
}

/// The live terminal view (stderr must be a terminal).
pub fn live() -> Events {
    if std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()) {
        console::set_colors_enabled_stderr(false);
    }
    let state = Mutex::new(Live {
        multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10)),
        phases: Vec::new(),
        agents: HashMap::new(),
        queued_phase: HashMap::new(),
        current: 0,
        start: Instant::now(),
    });
    Events::new(move |e| {
        if let Ok(mut live) = state.lock() {
            live.on(&e.for_terminal());
        }
    })
}
