//! An agent's finished turns, journaled as they happen, so that an agent interrupted by a
//! crash, `stop`, a stall restart or a schema re-ask continues from its last turn: the model
//! is not asked again for a turn it already took, and a journaled `Edit`, `Write` or `Bash` is
//! never applied twice.
//!
//! A turn is journaled twice: when the model has asked for its tool calls (before any runs),
//! then with their results. A turn found with calls but no results was interrupted while its
//! tools ran: its read-only calls run again; a call that may have changed the workspace is
//! not repeated — the model is told it may or may not have been applied.

use super::ToolOutput;
use crate::journal::{Journal, Record};
use serde_json::Value;
use std::sync::{Arc, Mutex};

/// One model turn that called tools.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Turn {
    /// 1-based.
    pub turn: u32,
    /// The model's message: its content blocks, as the API gave them (text, tool_use).
    pub assistant: Value,
    /// The results of its tool calls, by `tool_use` id, in the order of the calls (`None`:
    /// not all of them finished).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub results: Option<Vec<(String, ToolOutput)>>,
}

/// A worker's transcript as it stands after a change: what the turns bucket stores.
#[derive(Debug, Clone)]
pub(crate) struct Relayed {
    pub turns: Vec<Turn>,
    pub session: Option<String>,
}

/// The turns of one agent call (its journal key and occurrence).
pub(crate) struct Transcript {
    journal: Option<Arc<Journal>>,
    key: String,
    occurrence: u32,
    turns: Mutex<Vec<Turn>>,
    /// On a NATS worker: every change, as the whole transcript, for the turns bucket
    /// (executor::worker), which the run host journals from.
    relay: Option<tokio::sync::mpsc::UnboundedSender<Relayed>>,
    /// A `claude` agent's session (its conversation, kept by Claude Code): journaled when it
    /// starts, so that an interrupted agent continues it (`claude --resume`) instead of
    /// starting over. `None` once the call has ended.
    session: Mutex<Option<String>>,
}

impl Transcript {
    /// `previous`: what the journal has of this call (a resume), in turn order.
    pub(crate) fn new(
        journal: Option<Arc<Journal>>,
        key: String,
        occurrence: u32,
        previous: Vec<Turn>,
        session: Option<String>,
    ) -> Arc<Transcript> {
        Arc::new(Transcript {
            journal,
            key,
            occurrence,
            turns: Mutex::new(previous),
            relay: None,
            session: Mutex::new(session),
        })
    }

    /// The session of an interrupted `claude` agent, to continue.
    pub(crate) fn session(&self) -> Option<String> {
        self.session
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// A `claude` agent's session has begun (`None`: its call has ended, and a later call — a
    /// schema re-ask — starts afresh). A new session is journaled before the agent works in it.
    pub(crate) fn set_session(&self, id: Option<String>) {
        {
            let mut session = self
                .session
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if *session == id {
                return;
            }
            if let (Some(j), Some(new)) = (&self.journal, &id) {
                let _ = j.append(&Record::Session {
                    key: self.key.clone(),
                    occurrence: self.occurrence,
                    session_id: new.clone(),
                });
            }
            *session = id.clone();
        }
        if let Some(relay) = &self.relay {
            let _ = relay.send(Relayed {
                turns: self.turns(),
                session: id,
            });
        }
    }

    /// A worker's transcript of a call: no journal here; each change goes to `relay`.
    /// `previous`: the call's turns and session so far (a dead worker's, the run host's).
    pub(crate) fn relayed(
        previous: Relayed,
        relay: tokio::sync::mpsc::UnboundedSender<Relayed>,
    ) -> Arc<Transcript> {
        Arc::new(Transcript {
            journal: None,
            key: String::new(),
            occurrence: 0,
            turns: Mutex::new(previous.turns),
            relay: Some(relay),
            session: Mutex::new(previous.session),
        })
    }

    pub(crate) fn turns(&self) -> Vec<Turn> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Turn>> {
        self.turns
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Keeps a turn (new, or now with its results) and journals it.
    pub(crate) fn keep(&self, turn: Turn) {
        if let Some(j) = &self.journal {
            let _ = j.append(&Record::Turn {
                key: self.key.clone(),
                occurrence: self.occurrence,
                turn: turn.turn,
                assistant: turn.assistant.clone(),
                results: turn.results.clone(),
            });
        }
        let relayed = {
            let mut turns = self.lock();
            match turns.iter_mut().find(|t| t.turn == turn.turn) {
                Some(t) => *t = turn,
                None => turns.push(turn),
            }
            self.relay.as_ref().map(|_| turns.clone())
        };
        // (The turns' lock is let go before the session's is taken: `set_session` takes them
        // the other way round.)
        if let (Some(relay), Some(turns)) = (&self.relay, relayed) {
            let _ = relay.send(Relayed {
                turns,
                session: self.session(),
            });
        }
    }

    /// Turns kept elsewhere (a NATS worker's, from the turns bucket): each one this transcript
    /// does not hold as it is is kept (and so journaled).
    pub(crate) fn merge(&self, turns: Vec<Turn>) {
        for turn in turns {
            let known = self.lock().contains(&turn);
            if !known {
                self.keep(turn);
            }
        }
    }
}

impl std::fmt::Debug for Transcript {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transcript")
            .field("key", &self.key)
            .field("occurrence", &self.occurrence)
            .finish_non_exhaustive()
    }
}

/// Journaled turns by call (journal key, occurrence).
pub(crate) type Turns = std::collections::HashMap<(String, u32), Vec<Turn>>;

/// The turns a journal holds, by call: the latest record of each turn wins.
pub(crate) fn collect(records: impl IntoIterator<Item = Record>) -> Turns {
    let mut out = Turns::default();
    for r in records {
        if let Record::Turn {
            key,
            occurrence,
            turn,
            assistant,
            results,
        } = r
        {
            let turns = out.entry((key, occurrence)).or_default();
            let t = Turn {
                turn,
                assistant,
                results,
            };
            match turns.iter_mut().find(|x| x.turn == turn) {
                Some(x) => *x = t,
                None => turns.push(t),
            }
        }
    }
    for turns in out.values_mut() {
        turns.sort_by_key(|t| t.turn);
    }
    out
}
