//! The run's event stream: everything that happens, typed. Every view (the printer, the JSON
//! report) consumes this stream and nothing else.

use crate::backend::Usage;
use crate::script::Meta;
use serde::Serialize;
use std::sync::Arc;

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    RunStarted {
        run_id: String,
        script: String,
        meta: Meta,
        backend: String,
        /// The backend's default model, when it has one.
        model: Option<String>,
    },
    Phase {
        title: String,
    },
    AgentQueued {
        handle: u32,
        label: String,
        phase: Option<String>,
    },
    /// Served from the run's journal (a resume): no backend call.
    AgentCached {
        handle: u32,
        label: String,
    },
    AgentStarted {
        handle: u32,
        label: String,
        model: Option<String>,
    },
    AgentFinished {
        handle: u32,
        label: String,
        usage: Usage,
        cost_usd: f64,
        duration_ms: u64,
    },
    AgentFailed {
        handle: u32,
        label: String,
        error: String,
        duration_ms: u64,
    },
    Log {
        level: LogLevel,
        text: String,
    },
    RunFinished {
        outcome: String,
        duration_ms: u64,
    },
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    Info,
    Warn,
    Error,
}

impl LogLevel {
    pub fn from_guest(level: u32) -> LogLevel {
        match level {
            1 => LogLevel::Warn,
            2 => LogLevel::Error,
            _ => LogLevel::Info,
        }
    }
}

/// A cheap, cloneable handle to the run's event consumers.
#[derive(Clone)]
pub struct Events(Arc<dyn Fn(&Event) + Send + Sync>);

impl Events {
    pub fn new(f: impl Fn(&Event) + Send + Sync + 'static) -> Events {
        Events(Arc::new(f))
    }
    pub fn none() -> Events {
        Events::new(|_| {})
    }
    pub fn emit(&self, event: Event) {
        (self.0)(&event)
    }
}
