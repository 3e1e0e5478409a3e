//! Plain, line-oriented progress on stderr: a consumer of the event stream.

use crate::events::{Event, Events, LogLevel};
use std::io::Write;

/// Prints events as lines on stderr (no ANSI codes; safe for CI logs).
pub fn plain() -> Events {
    Events::new(|e| {
        let line = match e {
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
            _ => return,
        };
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    })
}
