//! `setTimeout` on the host: each timer is a task that sends a completion when it fires.

use crate::scheduler::Completion;
use std::collections::HashMap;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Why 1 hour: longer timers in a workflow are a mistake (or an attempt to hang CI).
pub(crate) const MAX_TIMER_MS: u64 = 60 * 60 * 1000;

#[derive(Debug, Default)]
pub(crate) struct Timers {
    running: HashMap<u32, JoinHandle<()>>,
}

impl Timers {
    /// Starts timer `handle`; it sends `Completion::Timer` on `done` after `ms`.
    pub(crate) fn start(
        &mut self,
        handle: u32,
        ms: u64,
        done: mpsc::UnboundedSender<Completion>,
    ) -> Result<(), String> {
        if ms > MAX_TIMER_MS {
            return Err(format!(
                "setTimeout() delay {ms} ms is longer than the 1 hour a workflow timer may wait"
            ));
        }
        let task = tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            let _ = done.send(Completion::Timer { handle });
        });
        self.running.insert(handle, task);
        Ok(())
    }

    /// `clearTimeout`: a timer that already fired or never existed is ignored.
    pub(crate) fn cancel(&mut self, handle: u32) {
        if let Some(t) = self.running.remove(&handle) {
            t.abort();
        }
    }

    /// Timer `handle` fired and its completion was delivered.
    pub(crate) fn fired(&mut self, handle: u32) {
        self.running.remove(&handle);
    }

    pub(crate) fn len(&self) -> usize {
        self.running.len()
    }

    pub(crate) fn shutdown(&mut self) {
        for (_, t) in self.running.drain() {
            t.abort();
        }
    }
}
