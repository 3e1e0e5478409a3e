//! Keys → changes to the dashboard's state, or an action for the run. Kill, restart and pause
//! ask first: one key (`y`) confirms, any other cancels.

use super::state::{App, Focus};
use crate::control::{AgentRef, Command};
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// What a key asks of the run.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Action {
    /// Send this command on the control socket.
    Send(Command),
    /// Open the detail pane of the agent with this handle.
    Open(u32),
}

pub(crate) const HELP: &str = "↑↓ move · Tab phases/agents · Enter open · f filter · p pause · x kill · r restart · s save · ? keys · q leave";

/// What `?` shows.
pub(crate) const KEYS: &str = "\
↑ ↓ / k j     move in the list that has the focus (PgUp PgDn: ten rows)
Tab ← →       switch between the phases and the agents
Enter         open the selected agent: its prompt, answer or error, transcript
f             filter the agents by state (all, running, failed, done, queued)
p             pause the run (no queued agent starts), or continue it   — asks y/N
x             kill the selected agent (it resolves to null)              — asks y/N
r             restart the selected agent (its call is asked again)       — asks y/N
s             save the script as a workflow (`wfhost run NAME`)
a / A / d     answer an agent's permission request: allow once / always / deny
              (its whole input is shown, ↑↓ scroll it; \"always\" allows the pattern
              the request names — `Bash(git status:*)` — never the whole tool)
Esc           close this pane
q             leave the dashboard: the run goes on (`wfhost watch` returns to it)
Ctrl-C        in `wfhost run`: stop the run (resumable)";

pub(crate) fn handle(app: &mut App, key: KeyEvent) -> Option<Action> {
    let ctrl_c = key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c');
    if ctrl_c {
        app.quit = true;
        return None;
    }
    // A question is open: `y` confirms it, anything else drops it.
    if let Some((command, _)) = app.confirm.take() {
        if key.code == KeyCode::Char('y') {
            return Some(Action::Send(command));
        }
        app.message = Some("cancelled".into());
        return None;
    }
    // An agent waits for permission to use a tool: a / A / d answer the oldest request.
    if let Some(p) = app.run.permissions.first() {
        let decision = match key.code {
            KeyCode::Char('a') => Some("once"),
            KeyCode::Char('A') => Some("always"),
            KeyCode::Char('d') => Some("deny"),
            _ => None,
        };
        if let Some(decision) = decision {
            return Some(Action::Send(Command::Answer {
                id: p.id,
                decision: decision.into(),
            }));
        }
    }
    match key.code {
        KeyCode::Char('q') if app.detail.is_none() => app.quit = true,
        KeyCode::Char('?') => {
            app.detail = Some(super::state::Detail {
                title: "keys".into(),
                text: KEYS.into(),
                scroll: 0,
                live: None,
            });
        }
        KeyCode::Esc | KeyCode::Char('q') => app.detail = None,
        KeyCode::Up | KeyCode::Char('k') => app.move_by(-1),
        KeyCode::Down | KeyCode::Char('j') => app.move_by(1),
        KeyCode::PageUp => app.move_by(-10),
        KeyCode::PageDown => app.move_by(10),
        KeyCode::Tab | KeyCode::Left | KeyCode::Right => {
            app.focus = match app.focus {
                Focus::Phases => Focus::Agents,
                Focus::Agents => Focus::Phases,
            };
        }
        KeyCode::Enter => {
            if let Some(a) = app.selected_agent() {
                return Some(Action::Open(a.handle));
            }
        }
        KeyCode::Char('f') => {
            app.filter = app.filter.next();
            app.agent = 0;
        }
        KeyCode::Char('s') => {
            return Some(Action::Send(Command::Save {
                personal: false,
                force: false,
            }));
        }
        KeyCode::Char('p') if !app.ended => {
            let (command, question) = if app.run.paused {
                (Command::Continue, "continue the run?")
            } else {
                (
                    Command::Pause,
                    "pause the run? (no new agent starts; running ones finish)",
                )
            };
            app.confirm = Some((command, format!("{question} [y/N]")));
        }
        KeyCode::Char(c @ ('x' | 'r')) if !app.ended => {
            if let Some(a) = app.selected_agent() {
                let agent = AgentRef::Number(a.number);
                let label = crate::sanitize::line(&a.label).into_owned();
                let (command, verb) = if c == 'x' {
                    (Command::Kill { agent }, "kill")
                } else {
                    (Command::Restart { agent }, "restart")
                };
                app.confirm = Some((
                    command,
                    format!("{verb} agent {} ({label})? [y/N]", a.number),
                ));
            }
        }
        _ => {}
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Event;

    fn key(c: char) -> KeyEvent {
        KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)
    }

    #[test]
    fn kill_asks_first_and_only_y_confirms() {
        let mut app = App::new();
        app.run.apply(
            0,
            &Event::AgentQueued {
                handle: 7,
                label: "a".into(),
                phase: None,
            },
        );
        assert_eq!(handle(&mut app, key('x')), None);
        assert!(
            app.confirm
                .as_ref()
                .unwrap()
                .1
                .contains("kill agent 1 (a)?")
        );
        assert_eq!(handle(&mut app, key('n')), None, "anything but y cancels");
        assert!(app.confirm.is_none());
        handle(&mut app, key('x'));
        assert_eq!(
            handle(&mut app, key('y')),
            Some(Action::Send(Command::Kill {
                agent: AgentRef::Number(1)
            }))
        );
        assert_eq!(
            handle(&mut app, KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE)),
            Some(Action::Open(7))
        );
        handle(&mut app, key('q'));
        assert!(app.quit);
    }

    #[test]
    fn a_permission_request_is_answered_with_a_capital_a_for_always() {
        let mut app = App::new();
        app.run.apply(
            0,
            &Event::Permission {
                id: 4,
                agent: Some(1),
                tool: "Bash".into(),
                input: "{}".into(),
                always: "Bash(this exact input)".into(),
            },
        );
        let always = KeyEvent::new(KeyCode::Char('A'), KeyModifiers::SHIFT);
        assert_eq!(
            handle(&mut app, always),
            Some(Action::Send(Command::Answer {
                id: 4,
                decision: "always".into()
            }))
        );
        assert_eq!(
            handle(&mut app, key('d')),
            Some(Action::Send(Command::Answer {
                id: 4,
                decision: "deny".into()
            }))
        );
    }
}
