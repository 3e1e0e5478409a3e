//! The dashboard's state: the live fold of the run's events, and what the operator is looking
//! at (the selected phase and agent, the filter, an open detail pane, a question awaiting a
//! one-key answer). No terminal here: `input` changes it, `draw` renders it.

use crate::agent::AgentState;
use crate::control::Command;
use crate::live::{AgentRow, LiveRun};

/// Which list the arrow keys move in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Focus {
    Phases,
    Agents,
}

/// Which agents the agent list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Filter {
    All,
    Only(AgentState),
}

impl Filter {
    /// `f`: all → running → queued → failed → done → cached → all.
    pub(crate) fn next(self) -> Filter {
        use AgentState::{Cached, Done, Failed, Queued, Running};
        match self {
            Filter::All => Filter::Only(Running),
            Filter::Only(Running) => Filter::Only(Queued),
            Filter::Only(Queued) => Filter::Only(Failed),
            Filter::Only(Failed) => Filter::Only(Done),
            Filter::Only(Done) => Filter::Only(Cached),
            Filter::Only(Cached) => Filter::All,
        }
    }
    pub(crate) fn name(self) -> &'static str {
        match self {
            Filter::All => "all",
            Filter::Only(s) => s.as_str(),
        }
    }
    fn admits(self, state: AgentState) -> bool {
        match self {
            Filter::All => true,
            Filter::Only(s) => s == state,
        }
    }
}

/// An open detail pane: an agent's prompt, answer or error, and transcript.
#[derive(Debug, Clone)]
pub(crate) struct Detail {
    pub title: String,
    pub text: String,
    pub scroll: u16,
    /// The agent it shows, while that agent runs: the pane follows its output.
    pub live: Option<u32>,
}

/// Everything the dashboard shows.
pub(crate) struct App {
    pub run: LiveRun,
    pub focus: Focus,
    pub phase: usize,
    /// The selected row among the agents the filter shows.
    pub agent: usize,
    pub filter: Filter,
    pub detail: Option<Detail>,
    /// A command waiting for `y` (kill, restart, pause), and the question shown.
    pub confirm: Option<(Command, String)>,
    /// The last thing that happened (a command's reply, an error), shown in the footer.
    pub message: Option<String>,
    /// The run has ended; the stream is closed.
    pub ended: bool,
    pub quit: bool,
    /// The phase selection follows the run's current phase until the operator picks one.
    pub follow: bool,
    /// How far the open permission request (the oldest) is scrolled, and which one it is.
    pub asking_scroll: (u32, u16),
}

impl App {
    pub(crate) fn new() -> App {
        App {
            run: LiveRun::default(),
            focus: Focus::Agents,
            phase: 0,
            agent: 0,
            filter: Filter::All,
            detail: None,
            confirm: None,
            message: None,
            ended: false,
            quit: false,
            follow: true,
            asking_scroll: (0, 0),
        }
    }

    /// The scroll of the permission request shown now (a new request starts at the top).
    pub(crate) fn asking_scroll(&self) -> u16 {
        match self.run.permissions.first() {
            Some(p) if p.id == self.asking_scroll.0 => self.asking_scroll.1,
            _ => 0,
        }
    }

    /// The selected phase's title (`None`: the run has no phases yet).
    pub(crate) fn phase_title(&self) -> Option<&str> {
        self.run.phases.get(self.phase).map(|p| p.title.as_str())
    }

    /// The agents the list shows: the selected phase's (every agent when the run has no
    /// phases), through the filter.
    pub(crate) fn visible(&self) -> Vec<&AgentRow> {
        let phase = self.phase_title();
        self.run
            .agents
            .iter()
            .filter(|a| phase.is_none_or(|p| a.phase.as_deref().unwrap_or("") == p))
            .filter(|a| self.filter.admits(a.state))
            .collect()
    }

    pub(crate) fn selected_agent(&self) -> Option<&AgentRow> {
        self.visible().get(self.agent).copied()
    }

    /// Keeps the selections inside their lists as they grow and shrink.
    pub(crate) fn clamp(&mut self) {
        if self.follow
            && let Some(current) = &self.run.current_phase
            && let Some(i) = self.run.phases.iter().position(|p| &p.title == current)
            && i != self.phase
        {
            self.phase = i;
            self.agent = 0;
        }
        self.phase = self.phase.min(self.run.phases.len().saturating_sub(1));
        self.agent = self.agent.min(self.visible().len().saturating_sub(1));
    }

    pub(crate) fn move_by(&mut self, delta: isize) {
        let step = |i: usize, len: usize| -> usize {
            let max = len.saturating_sub(1);
            i.saturating_add_signed(delta).min(max)
        };
        if self.detail.is_none()
            && let Some(p) = self.run.permissions.first()
        {
            let scroll = i64::from(self.asking_scroll()) + delta as i64;
            self.asking_scroll = (p.id, u16::try_from(scroll).unwrap_or(0).min(u16::MAX - 1));
            return;
        }
        match (&mut self.detail, self.focus) {
            (Some(d), _) => {
                d.scroll = u16::try_from(i64::from(d.scroll) + delta as i64)
                    .unwrap_or(0)
                    .min(u16::MAX - 1);
            }
            (None, Focus::Phases) => {
                self.follow = false;
                self.phase = step(self.phase, self.run.phases.len());
                self.agent = 0;
            }
            (None, Focus::Agents) => self.agent = step(self.agent, self.visible().len()),
        }
    }
}

impl Default for App {
    fn default() -> Self {
        App::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Event;

    #[test]
    fn the_agent_list_follows_the_phase_and_the_filter() {
        let mut app = App::new();
        for (h, phase) in [(1, "A"), (2, "A"), (3, "B")] {
            app.run.apply(
                0,
                &Event::AgentQueued {
                    handle: h,
                    label: format!("a{h}"),
                    phase: Some(phase.into()),
                },
            );
        }
        app.run.apply(
            1,
            &Event::AgentStarted {
                handle: 2,
                label: "a2".into(),
                model: None,
                prompt: None,
            },
        );
        assert_eq!(app.visible().len(), 2, "phase A");
        app.filter = app.filter.next();
        assert_eq!(app.visible()[0].label, "a2", "running only");
        app.focus = Focus::Phases;
        app.move_by(1);
        app.filter = Filter::All;
        assert_eq!(app.visible()[0].label, "a3", "phase B");
        app.move_by(5);
        assert_eq!(app.phase, 1, "clamped to the last phase");
    }
}
