//! The run's control socket: `control.sock` in its run directory, mode 0600, and only peers of
//! the run's own uid are served (SO_PEERCRED), since the socket can stop the run, kill its
//! agents and read every prompt and answer in the event stream. One task per connection;
//! requests and replies are JSON lines (docs/control.md).

use super::{Command, Control, PROTOCOL_VERSION, Request, Who};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinSet;

/// Why 1 MiB: a request is a command and an agent name, a few dozen bytes; a connection that
/// sends more than this is not a client of this protocol, and reading on would let it make
/// the run hold memory.
const MAX_CONNECTION_BYTES: u64 = 1 << 20;

/// How long the run waits, as it ends, for subscribers to receive the end of the stream. Why
/// 2 s: the backlog is already in memory and loopback writes are fast; a client that reads
/// nothing must not hold a finished run open.
const DRAIN: Duration = Duration::from_secs(2);

/// The first wait after a failed `accept`.
const ACCEPT_BACKOFF: std::time::Duration = std::time::Duration::from_millis(50);

/// A listening control socket. Dropping it (or `shutdown`) removes the socket file.
pub(crate) struct Server {
    path: PathBuf,
    accept: tokio::task::JoinHandle<()>,
    connections: Arc<tokio::sync::Mutex<JoinSet<()>>>,
}

/// Whether a peer may use the socket: only the uid the run belongs to. (The file's 0600 mode
/// already keeps other users out; this holds even if the mode were changed, or for root's
/// processes connecting to another user's run through a path they can reach.)
pub(crate) fn authorize(peer_uid: u32, owner_uid: u32) -> Result<(), String> {
    if peer_uid == owner_uid {
        Ok(())
    } else {
        Err(format!(
            "refused: uid {peer_uid} may not control a run owned by uid {owner_uid}"
        ))
    }
}

fn my_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

impl Server {
    /// Listens on `path`. A socket file already there is stale: the caller holds the run's
    /// lock, so no live process can be serving it (a crashed attempt left it).
    pub(crate) fn listen(control: Arc<Control>, path: &Path) -> std::io::Result<Server> {
        if std::fs::symlink_metadata(path).is_ok() {
            std::fs::remove_file(path)?;
        }
        let listener = UnixListener::bind(path)?;
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        }
        let connections = Arc::new(tokio::sync::Mutex::new(JoinSet::new()));
        let set = connections.clone();
        let owner = my_uid();
        let accept = tokio::spawn(async move {
            // A failed accept (EMFILE: out of file descriptors, ENOBUFS…) is waited out, not the
            // end of the socket: one ended it for the rest of the run, and `wfhost stop` then
            // answered 75 forever. Why 50 ms doubling to 1 s: descriptors come back as
            // connections close; a busy loop would only burn the core the guest needs.
            let mut backoff = ACCEPT_BACKOFF;
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        backoff = ACCEPT_BACKOFF;
                        let control = control.clone();
                        let mut set = set.lock().await;
                        // Reap the connections that ended, so the set holds only live ones.
                        while set.try_join_next().is_some() {}
                        set.spawn(async move {
                            let _ = serve(control, stream, owner).await;
                        });
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "control socket: accept failed; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(std::time::Duration::from_secs(1));
                    }
                }
            }
        });
        Ok(Server {
            path: path.to_path_buf(),
            accept,
            connections,
        })
    }

    /// Stops accepting, gives subscribers a moment to receive the end of the stream, and
    /// removes the socket.
    pub(crate) async fn shutdown(self) {
        self.accept.abort();
        let _ = std::fs::remove_file(&self.path);
        let mut set = self.connections.lock().await;
        let _ =
            tokio::time::timeout(DRAIN, async { while set.join_next().await.is_some() {} }).await;
        set.abort_all();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.accept.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A refusal's line: `{"v": 1, "ok": false, "error": …, "hint": …}`.
fn refusal(refused: impl Into<super::Refused>) -> String {
    let mut v = json!(refused.into());
    v["v"] = PROTOCOL_VERSION.into();
    v["ok"] = false.into();
    format!("{v}\n")
}

async fn serve(control: Arc<Control>, stream: UnixStream, owner: u32) -> std::io::Result<()> {
    let cred = stream.peer_cred()?;
    let (read, mut write) = stream.into_split();
    let send = |v: serde_json::Value| format!("{v}\n");
    if let Err(e) = authorize(cred.uid(), owner) {
        write.write_all(refusal(e).as_bytes()).await?;
        return Ok(());
    }
    let mut reader = BufReader::new(read.take(MAX_CONNECTION_BYTES));
    let mut raw = Vec::new();
    loop {
        raw.clear();
        if reader.read_until(b'\n', &mut raw).await? == 0 {
            break;
        }
        // A line that is not UTF-8 gets an error line, as any other bad request does (it closed
        // the connection without a word).
        let Ok(line) = std::str::from_utf8(&raw) else {
            let error = format!(
                "not a request of control protocol {PROTOCOL_VERSION}: the line is not UTF-8 text"
            );
            write.write_all(refusal(error).as_bytes()).await?;
            continue;
        };
        if line.trim().is_empty() {
            continue;
        }
        let request: Request = match serde_json::from_str(line) {
            Ok(r) => r,
            Err(e) => {
                let error = format!("not a request of control protocol {PROTOCOL_VERSION}: {e}");
                write.write_all(refusal(error).as_bytes()).await?;
                continue;
            }
        };
        if request.v != PROTOCOL_VERSION {
            let error = format!(
                "this run speaks control protocol {PROTOCOL_VERSION}, not {}",
                request.v
            );
            write.write_all(refusal(error).as_bytes()).await?;
            continue;
        }
        if request.command == Command::Subscribe {
            write
                .write_all(
                    send(json!({"v": PROTOCOL_VERSION, "ok": true, "subscribed": true})).as_bytes(),
                )
                .await?;
            // A cursor into the run's stream: the subscriber reads at its own pace, and one
            // that never reads holds nothing but its place.
            let _watching = control.watching();
            let mut appended = control.appended();
            let mut out = tokio::io::BufWriter::new(write);
            let mut cursor = 0;
            loop {
                let (chunk, ended) = control.lines_from(cursor);
                if chunk.is_empty() {
                    if ended || appended.changed().await.is_err() {
                        break;
                    }
                    continue;
                }
                cursor += chunk.len();
                for line in chunk {
                    out.write_all(line.as_bytes()).await?;
                    out.write_all(b"\n").await?;
                }
                if ended {
                    break;
                }
                // Flush when caught up; a backlog goes out in large writes.
                if cursor >= control.stream_len() {
                    out.flush().await?;
                }
            }
            out.flush().await?;
            out.shutdown().await?;
            return Ok(());
        }
        if let Command::Permission { agent, tool, input } = &request.command {
            // Held open until an operator answers or the wait runs out (other connections go on).
            let (allowed, message) = control.ask_permission(*agent, tool, input).await;
            let reply = json!({
                "v": PROTOCOL_VERSION,
                "ok": true,
                "behavior": if allowed { "allow" } else { "deny" },
                "message": message,
            });
            write.write_all(send(reply).as_bytes()).await?;
            continue;
        }
        let who = Who {
            uid: cred.uid(),
            pid: cred.pid(),
            client: request.client.clone(),
        };
        let reply = match control.command(&request.command, &who) {
            Ok(mut v) => {
                if let serde_json::Value::Object(m) = &mut v {
                    m.insert("v".into(), PROTOCOL_VERSION.into());
                    m.insert("ok".into(), true.into());
                }
                v
            }
            Err(refused) => {
                write.write_all(refusal(refused).as_bytes()).await?;
                continue;
            }
        };
        write.write_all(send(reply).as_bytes()).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_runs_own_uid_is_served() {
        assert!(authorize(1000, 1000).is_ok());
        let refused = authorize(1001, 1000).unwrap_err();
        assert!(refused.contains("uid 1001") && refused.contains("uid 1000"));
    }

    /// The real check on a real socket: a peer's uid as the kernel reports it.
    #[tokio::test]
    async fn peer_credentials_come_from_the_kernel() {
        let (a, _b) = UnixStream::pair().unwrap();
        let cred = a.peer_cred().unwrap();
        assert_eq!(cred.uid(), my_uid());
        assert!(authorize(cred.uid(), my_uid()).is_ok());
        assert!(authorize(cred.uid(), my_uid().wrapping_add(1)).is_err());
    }
}
