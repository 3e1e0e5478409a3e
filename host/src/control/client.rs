//! Reaching a live run's control socket: one request and its reply, or a subscription to the
//! event stream. Every error says what state the run is in and what to do instead.

use super::{Command, PROTOCOL_VERSION, Request};
use crate::ExitError;
use crate::journal::Lifecycle;
use crate::run_dir::RunDir;
use anyhow::Result;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::UnixStream;
use tokio::net::unix::OwnedReadHalf;

/// Why a run cannot be reached, in words: finished, crashed or not started yet.
fn not_live(dir: &RunDir) -> anyhow::Error {
    let id = dir.id();
    let status = crate::journal::load_run(dir)
        .ok()
        .map(|l| crate::journal::History::fold(&l).status);
    let (what, hint) = match status {
        Some(Lifecycle::Crashed) => (
            format!("run `{id}` is not running: it crashed (its process ended without finishing)"),
            format!("`wfhost resume {id} --yes` continues it; finished agents are served from its journal"),
        ),
        Some(Lifecycle::Interrupted | Lifecycle::Stopped) => (
            format!("run `{id}` is not running: it was stopped"),
            format!("`wfhost resume {id} --yes` continues it"),
        ),
        Some(s) if s != Lifecycle::Running => (
            format!("run `{id}` is not running: it has finished ({s})"),
            format!("`wfhost runs show {id}` shows what it did; `wfhost logs {id}` its output"),
        ),
        _ => (
            format!("run `{id}` has no control socket"),
            "it may still be starting (try again in a moment), or run on a wfhost without control sockets".to_string(),
        ),
    };
    ExitError::usage(what).hint(hint).into()
}

/// A connection to a run's control socket.
pub(crate) struct Client {
    lines: Lines<BufReader<OwnedReadHalf>>,
    write: tokio::net::unix::OwnedWriteHalf,
    name: String,
}

impl Client {
    /// Connects to the live run `dir`. `name` is how the journal will name this client.
    pub(crate) async fn connect(dir: &RunDir, name: &str) -> Result<Client> {
        let path = dir.control_socket();
        let stream = match UnixStream::connect(&path).await {
            Ok(s) => s,
            Err(_) if !dir.is_running() => return Err(not_live(dir)),
            Err(e) => {
                return Err(ExitError::temporary(format!(
                    "run `{}` is running, but its control socket does not answer: {e}",
                    dir.id()
                ))
                .hint("it may be starting or ending; try again in a moment")
                .into());
            }
        };
        let (read, write) = stream.into_split();
        Ok(Client {
            lines: BufReader::new(read).lines(),
            write,
            name: name.to_string(),
        })
    }

    async fn send(&mut self, command: Command) -> Result<()> {
        let request = Request {
            v: PROTOCOL_VERSION,
            command,
            client: Some(self.name.clone()),
        };
        let mut line = serde_json::to_string(&request)?;
        line.push('\n');
        self.write.write_all(line.as_bytes()).await?;
        Ok(())
    }

    async fn reply(&mut self) -> Result<Value> {
        let Some(line) = self.lines.next_line().await? else {
            anyhow::bail!(
                ExitError::temporary("the run closed its control socket without answering")
                    .hint("it may have just finished: `wfhost runs` shows its status")
            );
        };
        let v: Value = serde_json::from_str(&line)?;
        if v["ok"] == true {
            Ok(v)
        } else {
            let refused: super::Refused =
                serde_json::from_value(v).unwrap_or_else(|_| "refused".into());
            let mut e = ExitError::usage(refused.error);
            if let Some(h) = refused.hint {
                e = e.hint(h);
            }
            Err(e.into())
        }
    }

    /// Sends one command and returns its reply (an error when the run refused it).
    pub(crate) async fn request(&mut self, command: Command) -> Result<Value> {
        self.send(command).await?;
        self.reply().await
    }

    /// Subscribes: the lines of the event stream from the run's start, then live; `None` when
    /// the run has ended.
    pub(crate) async fn subscribe(mut self) -> Result<Lines<BufReader<OwnedReadHalf>>> {
        self.send(Command::Subscribe).await?;
        self.reply().await?;
        Ok(self.lines)
    }
}
