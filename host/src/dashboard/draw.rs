//! Draws the dashboard from its state: header, phases, the selected phase's agents, the last
//! log lines, and a footer with the keys (or the question awaiting an answer). Every string the
//! script controls was made terminal-safe before it reached the state.

use super::input::HELP;
use super::state::{App, Focus};
use crate::agent::AgentState;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Clear, Paragraph, Row, Table, TableState, Wrap};

fn secs(ms: u64) -> String {
    let s = ms / 1000;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{:.1}s", ms as f64 / 1000.0)
    }
}

fn state_style(state: AgentState) -> Style {
    match state {
        AgentState::Done => Style::new().fg(Color::Green),
        AgentState::Failed => Style::new().fg(Color::Red),
        AgentState::Running => Style::new().fg(Color::Yellow),
        AgentState::Cached => Style::new().fg(Color::Blue),
        AgentState::Queued => Style::new().fg(Color::DarkGray),
    }
}

/// The dashboard, one area at a time (ratatui's demo2: one render function per area).
pub(crate) fn draw(frame: &mut Frame<'_>, app: &App, now_ms: u64) {
    let run = &app.run;
    let phase_rows = u16::try_from(run.phases.len().clamp(1, 8)).unwrap_or(8) + 3;
    let [header, phases, agents, logs, footer] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Length(phase_rows),
        Constraint::Min(5),
        Constraint::Length(5),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    // The clock the areas share: the run's own once it ended.
    let elapsed = if app.ended {
        run.t_ms
    } else {
        now_ms.max(run.t_ms)
    };
    render_header(frame, header, app, now_ms, elapsed);
    render_phases(frame, phases, app, elapsed);
    render_agents(frame, agents, app, elapsed);
    render_logs(frame, logs, app);
    render_footer(frame, footer, app);
    if let Some(d) = &app.detail {
        draw_detail(frame, d);
    } else if let Some(p) = app.run.permissions.first() {
        draw_permission(frame, app, p);
    }
}

/// Colours that carry meaning, in one place.
mod theme {
    use super::super::state::{App, Focus};
    use ratatui::style::{Color, Style};

    /// The status in the header, from the run's state (not from the words shown): green
    /// completed, yellow running or completed with failed agents, magenta held (paused, rate
    /// limited), red anything else that ended.
    pub(super) fn status(run: &crate::live::LiveRun, ended: bool, now_ms: u64) -> Style {
        use crate::report::Outcome;
        let colour = match run.outcome {
            Some(Outcome::Completed) if run.counts.failed == 0 => Color::Green,
            Some(Outcome::Completed) => Color::Yellow,
            Some(_) => Color::Red,
            None if ended => Color::Red,
            None if run.paused || run.held_until_ms.is_some_and(|u| u > now_ms) => Color::Magenta,
            None => Color::Yellow,
        };
        Style::new().fg(colour).bold()
    }

    /// A list's border: cyan while it has the keys.
    pub(super) fn focus(app: &App, f: Focus) -> Style {
        if app.focus == f && app.detail.is_none() {
            Style::new().fg(Color::Cyan)
        } else {
            Style::new()
        }
    }

    /// A count of failures: red and bold when there are any.
    pub(super) fn failures(any: bool) -> Style {
        if any {
            Style::new().fg(Color::Red).bold()
        } else {
            Style::new()
        }
    }
}

/// Run, script, status, backend, agents, tokens, cost, elapsed.
fn render_header(frame: &mut Frame<'_>, area: Rect, app: &App, now_ms: u64, elapsed: u64) {
    let run = &app.run;
    let status = if app.ended {
        run.outcome_shown().unwrap_or_else(|| "ended".into())
    } else {
        run.status_at(now_ms)
    };
    let status_style = theme::status(run, app.ended, now_ms);
    let title = Line::from(vec![
        Span::raw(" wfhost ").bold(),
        Span::raw(format!("{} ", run.name)),
        Span::raw(format!("· run {} ", run.run_id)).dark_gray(),
    ]);
    let failed = run.counts.failed;
    let mut facts = vec![
        Span::styled(status, status_style),
        Span::raw(format!(
            " · {} · {} agents ({} done, {} running, {} queued",
            run.backend,
            run.counts.total(),
            run.counts.done + run.counts.cached,
            run.counts.running,
            run.counts.queued
        )),
    ];
    if failed > 0 {
        facts.push(Span::raw(", "));
        facts.push(Span::styled(
            format!("{failed} failed"),
            theme::failures(true),
        ));
    }
    facts.push(Span::raw(format!(
        ") · {} in / {} out · ${:.4} · {}",
        run.usage.input_tokens,
        run.usage.output_tokens,
        run.cost_usd,
        secs(elapsed)
    )));
    // Batches still pending at the Message Batches API (`--batch`): where each stands.
    for b in run.batches.iter().filter(|b| b.status != "ended") {
        facts.push(Span::raw(format!(" · ⧗ {b}")).dark_gray());
    }
    frame.render_widget(
        Paragraph::new(Line::from(facts)).block(Block::new().title(title)),
        area,
    );
}

/// One row per phase, with its counts.
fn render_phases(frame: &mut Frame<'_>, area: Rect, app: &App, elapsed: u64) {
    let run = &app.run;
    let rows: Vec<Row<'_>> = run
        .phases
        .iter()
        .map(|p| {
            let c = p.counts;
            let live = c.running + c.queued > 0 && !app.ended;
            let took = match (p.first_ms, p.last_ms) {
                (Some(a), _) if live => secs(elapsed.saturating_sub(a)),
                (Some(a), Some(b)) => secs(b.saturating_sub(a)),
                _ => "—".into(),
            };
            Row::new(vec![
                Cell::from(if p.title.is_empty() {
                    "(no phase)".to_string()
                } else {
                    p.title.clone()
                }),
                Cell::from(c.done.to_string()).green(),
                Cell::from(c.running.to_string()).yellow(),
                Cell::from(c.queued.to_string()),
                Cell::from(c.failed.to_string()).style(theme::failures(c.failed > 0)),
                Cell::from(c.cached.to_string()).blue(),
                Cell::from(p.tokens.to_string()),
                Cell::from(took),
            ])
        })
        .collect();
    let table = Table::new(
        rows,
        [
            Constraint::Fill(1),
            Constraint::Length(6),
            Constraint::Length(8),
            Constraint::Length(7),
            Constraint::Length(7),
            Constraint::Length(7),
            Constraint::Length(10),
            Constraint::Length(8),
        ],
    )
    .header(
        Row::new([
            "phase", "done", "running", "queued", "failed", "cached", "tokens", "time",
        ])
        .bold(),
    )
    .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED))
    .block(
        Block::bordered()
            .title(" Phases ")
            .border_style(theme::focus(app, Focus::Phases)),
    );
    let mut state = TableState::default().with_selected(Some(app.phase));
    frame.render_stateful_widget(table, area, &mut state);
}

/// The selected phase's agents.
fn render_agents(frame: &mut Frame<'_>, area: Rect, app: &App, elapsed: u64) {
    let visible = app.visible();
    let rows: Vec<Row<'_>> = visible
        .iter()
        .map(|a| {
            let time = match (a.started_ms, a.ended_ms) {
                (Some(s), Some(e)) => secs(e.saturating_sub(s)),
                (Some(s), None) => secs(elapsed.saturating_sub(s)),
                _ => String::new(),
            };
            let state = if a.restarts > 0 {
                format!("{} ↻{}", a.state, a.restarts)
            } else {
                a.state.to_string()
            };
            Row::new(vec![
                Cell::from(a.number.to_string()),
                Cell::from(a.label.clone()),
                Cell::from(format!("{} {state}", a.state.mark())).style(state_style(a.state)),
                Cell::from(a.model.clone().unwrap_or_default()),
                Cell::from((a.usage.input_tokens + a.usage.output_tokens).to_string()),
                Cell::from(time),
            ])
        })
        .collect();
    let title = format!(
        " Agents · {} · {} of them · filter: {} ",
        app.phase_title().map_or("all phases", |t| if t.is_empty() {
            "(no phase)"
        } else {
            t
        }),
        visible.len(),
        app.filter.name()
    );
    let table = Table::new(
        rows,
        [
            Constraint::Length(5),
            Constraint::Fill(1),
            Constraint::Length(13),
            Constraint::Length(20),
            Constraint::Length(9),
            Constraint::Length(8),
        ],
    )
    .header(Row::new(["#", "label", "state", "model", "tokens", "time"]).bold())
    .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED))
    .block(
        Block::bordered()
            .title(title)
            .border_style(theme::focus(app, Focus::Agents)),
    );
    let mut state = TableState::default().with_selected((!visible.is_empty()).then_some(app.agent));
    frame.render_stateful_widget(table, area, &mut state);
}

/// The last log lines.
fn render_logs(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let run = &app.run;
    let shown = usize::from(area.height.saturating_sub(2));
    let lines: Vec<Line<'_>> = run
        .logs
        .iter()
        .skip(run.logs.len().saturating_sub(shown))
        .map(|(level, text)| match level {
            crate::events::LogLevel::Info => Line::raw(text.as_str()),
            _ => Line::raw(text.as_str()).yellow(),
        })
        .collect();
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" Log ")),
        area,
    );
}

/// The question awaiting an answer, else the last message, else the keys. Replies echo labels
/// and errors the script controls: made safe here, where they are shown.
fn render_footer(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let asking = app.run.permissions.first().map(|p| {
        format!(
            "{} asks to use {} (above) — [a]llow once · allow [A]lways {} · [d]eny",
            asker(p.agent),
            p.tool,
            p.always
        )
    });
    let footer_line = match (&app.confirm, &app.message, asking) {
        (Some((_, question)), _, _) => Line::raw(crate::sanitize::line(question).into_owned())
            .bold()
            .magenta(),
        (None, _, Some(asking)) => Line::raw(crate::sanitize::line(&asking).into_owned())
            .bold()
            .yellow(),
        (None, Some(m), None) => Line::from(vec![
            Span::raw(crate::sanitize::line(m).into_owned()).cyan(),
            Span::raw(" · ").dark_gray(),
            Span::raw(HELP).dark_gray(),
        ]),
        (None, None, None) => Line::raw(HELP).dark_gray(),
    };
    frame.render_widget(Paragraph::new(footer_line), area);
}

fn asker(agent: Option<u32>) -> String {
    agent.map_or_else(|| "an agent".into(), |n| format!("agent {n}"))
}

/// An agent's permission request, over the lists until it is answered: the whole input
/// (wrapped, scrollable, padding and controls made visible) and, always in view below it,
/// the three answers and what "always" would allow.
fn draw_permission(frame: &mut Frame<'_>, app: &App, p: &crate::live::PermissionRow) {
    let area = popup(frame.area());
    frame.render_widget(Clear, area);
    let more = match app.run.permissions.len() {
        1 => String::new(),
        n => format!(" · {} more waiting", n - 1),
    };
    let block = Block::bordered()
        .title(format!(
            " {} asks to use {} · ↑↓ scroll{more} ",
            asker(p.agent),
            p.tool
        ))
        .border_style(Style::new().fg(Color::Yellow));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let [body, keys] = Layout::vertical([Constraint::Min(1), Constraint::Length(2)]).areas(inner);
    frame.render_widget(
        Paragraph::new(crate::control::permission::show_input(&p.input))
            .wrap(Wrap { trim: false })
            .scroll((app.asking_scroll(), 0)),
        body,
    );
    frame.render_widget(
        Paragraph::new(vec![
            Line::from(vec![
                Span::raw("[a] ").bold(),
                Span::raw("allow once   "),
                Span::raw("[A] ").bold(),
                Span::raw(format!("allow always: {}   ", p.always)),
                Span::raw("[d] ").bold(),
                Span::raw("deny"),
            ]),
            Line::raw("a request nobody answers is denied (--permission-timeout)").dark_gray(),
        ])
        .wrap(Wrap { trim: false }),
        keys,
    );
}

fn draw_detail(frame: &mut Frame<'_>, d: &super::state::Detail) {
    let area = popup(frame.area());
    frame.render_widget(Clear, area);
    frame.render_widget(
        Paragraph::new(d.text.as_str())
            .wrap(Wrap { trim: false })
            .scroll((d.scroll, 0))
            .block(
                Block::bordered()
                    .title(format!(" {} · ↑↓ scroll · Esc close ", d.title))
                    .border_style(Style::new().fg(Color::Cyan)),
            ),
        area,
    );
}

/// The detail pane: most of the screen, centred.
fn popup(area: Rect) -> Rect {
    let [_, middle, _] = Layout::vertical([
        Constraint::Percentage(8),
        Constraint::Percentage(84),
        Constraint::Percentage(8),
    ])
    .areas(area);
    let [_, centre, _] = Layout::horizontal([
        Constraint::Percentage(6),
        Constraint::Percentage(88),
        Constraint::Percentage(6),
    ])
    .areas(middle);
    centre
}
