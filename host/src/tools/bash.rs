//! `Bash`: a shell command in the workspace, confined by the kernel (`confine`): no file
//! outside the workspace and the system's directories, no network, a scrubbed environment, a
//! private `HOME` and temp dir, its own process group and PID namespace (killed on cancel or
//! timeout), CPU time, wall time and output caps.

use super::{ToolOutput, Workspace, number, text};
use serde_json::{Value, json};
use std::time::Duration;

pub(super) const DESCRIPTION: &str = "Runs a bash command in the workspace (its working directory) and returns its output and exit code. The command is confined by the host: it reads and writes only the workspace and a private temp dir ($TMPDIR, also $HOME), reads the system's directories, and has no network. `timeout` is in milliseconds (default 2 minutes, at most 10).";

/// The longest a call may take, whatever it asks (Claude Code's ceiling).
pub(super) const MAX_TIMEOUT: Duration = Duration::from_secs(600);
/// Output kept of each stream; the rest is counted and cut (Claude Code hands back 30,000
/// characters).
const MAX_OUTPUT: usize = 30_000;
/// The largest file a command may write (RLIMIT_FSIZE): why 1 GiB — a build's artifacts fit,
/// a runaway `yes > f` stops long before it fills a disk.
const MAX_FILE: u64 = 1 << 30;

#[derive(Debug, Clone)]
pub(super) struct Policy {
    pub(super) default_timeout: Duration,
    /// `[tools] unconfined_bash`: where the kernel cannot confine, run anyway (loudly).
    pub(super) unconfined: bool,
}

pub(super) fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "command": {"type": "string", "description": "The command to execute"},
            "timeout": {"type": "number", "description": "Optional timeout in milliseconds (max 600000)"},
            "description": {"type": "string", "description": "What this command does, in 5-10 words"}
        },
        "required": ["command"],
        "additionalProperties": false
    })
}

pub(super) async fn call(ws: &Workspace, policy: &Policy, input: &Value) -> ToolOutput {
    let command = match text(input, "command") {
        Ok(c) => c,
        Err(e) => return ToolOutput::error(e),
    };
    let timeout = match number(input, "timeout") {
        Ok(Some(ms)) => Duration::from_millis(ms).min(MAX_TIMEOUT),
        Ok(None) => policy.default_timeout,
        Err(e) => return ToolOutput::error(e),
    };
    let tmp = match PrivateTmp::new() {
        Ok(t) => t,
        Err(e) => return ToolOutput::error(format!("no private temp dir for the command: {e}")),
    };
    let confined = run(ws, &tmp, command, timeout, true).await;
    match confined {
        Err(Unconfinable(why)) if policy.unconfined => {
            tracing::warn!(%why, "running an agent's Bash call UNCONFINED ([tools] unconfined_bash = true)");
            match run(ws, &tmp, command, timeout, false).await {
                Ok(mut out) => {
                    out.content = format!(
                        "(ran WITHOUT the kernel's confinement: {why}; [tools] unconfined_bash = true)\n{}",
                        out.content
                    );
                    out
                }
                Err(Unconfinable(e)) => ToolOutput::error(e),
            }
        }
        Err(Unconfinable(why)) => ToolOutput::error(format!(
            "Bash is refused: the kernel cannot confine it here ({why}). wfhost never runs an agent's command unconfined silently; the operator may allow it with `[tools] unconfined_bash = true`."
        )),
        Ok(out) => out,
    }
}

/// Why the kernel could not confine a command.
struct Unconfinable(String);

/// A temp dir only this call's command can use (0700), removed when the call ends.
struct PrivateTmp(std::path::PathBuf);

impl PrivateTmp {
    fn new() -> std::io::Result<PrivateTmp> {
        use std::os::unix::fs::DirBuilderExt as _;
        let key = crate::random_key()?;
        let name = format!(
            "wfhost-bash-{}",
            blake3::hash(&key).to_hex().get(..16).unwrap_or("x")
        );
        let path = std::env::temp_dir().join(name);
        std::fs::DirBuilder::new().mode(0o700).create(&path)?;
        Ok(PrivateTmp(path))
    }
}

impl Drop for PrivateTmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn run(
    ws: &Workspace,
    tmp: &PrivateTmp,
    command: &str,
    timeout: Duration,
    confined: bool,
) -> Result<ToolOutput, Unconfinable> {
    let exe =
        std::env::current_exe().map_err(|e| Unconfinable(format!("no path to wfhost: {e}")))?;
    let mut cmd = if confined {
        let mut c = tokio::process::Command::new(exe);
        c.arg(super::confine::ARG)
            .arg("--rw")
            .arg(ws.root())
            .arg("--rw")
            .arg(&tmp.0)
            .args(
                ws.hidden()
                    .iter()
                    .filter(|h| h.is_dir())
                    .flat_map(|h| [std::ffi::OsStr::new("--hide"), h.as_os_str()]),
            )
            .args(
                ["hooks", "config"]
                    .iter()
                    .map(|p| ws.root().join(super::READ_ONLY).join(p))
                    .filter(|p| p.exists())
                    .flat_map(|p| [std::ffi::OsString::from("--read-only"), p.into_os_string()]),
            )
            .arg("--cpu")
            .arg(timeout.as_secs().max(1).to_string())
            .arg("--max-file")
            .arg(MAX_FILE.to_string())
            .arg("--")
            .arg("/bin/bash")
            .arg("-c")
            .arg(command);
        c
    } else {
        let mut c = tokio::process::Command::new("/bin/bash");
        c.arg("-c").arg(command);
        c
    };
    // Nothing of the host's environment: no API keys, no WFHOST_*, no SSH agent.
    cmd.env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        .env("HOME", &tmp.0)
        .env("TMPDIR", &tmp.0)
        .env("LANG", "C.UTF-8")
        .env("TERM", "dumb")
        .current_dir(ws.root())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = crate::backend::spawn_in_group(&mut cmd)
        .map_err(|e| Unconfinable(format!("cannot start the command: {e}")))?;
    let started = std::time::Instant::now();
    let output = tokio::time::timeout(timeout, capped_output(child)).await;
    let Ok(output) = output else {
        return Ok(ToolOutput::error(format!(
            "Command timed out after {} and was killed (with everything it started). Give a larger `timeout` (at most 10 minutes), or run less at once.",
            humantime::format_duration(Duration::from_secs(started.elapsed().as_secs()))
        )));
    };
    let (code, stdout, stderr) = match output {
        Ok(o) => o,
        Err(e) => {
            return Ok(ToolOutput::error(format!(
                "the command's output could not be read: {e}"
            )));
        }
    };
    if confined
        && code == Some(super::confine::UNAVAILABLE)
        && let Some(why) = stderr.text.strip_prefix(super::confine::REFUSED)
    {
        return Err(Unconfinable(why.trim().to_string()));
    }
    let mut content = stdout.render();
    let err = stderr.render();
    if !err.is_empty() {
        if !content.is_empty() && !content.ends_with('\n') {
            content.push('\n');
        }
        content.push_str(&err);
    }
    let is_error = code != Some(0);
    if let Some(code) = code.filter(|c| *c != 0) {
        if !content.is_empty() && !content.ends_with('\n') {
            content.push('\n');
        }
        content.push_str(&format!("Exit code {code}"));
    }
    if content.is_empty() {
        content = "(no output)".to_string();
    }
    Ok(ToolOutput { content, is_error })
}

/// What one stream said: the first `MAX_OUTPUT` bytes, and how many more were cut.
#[derive(Default)]
struct Captured {
    text: String,
    cut: u64,
}

impl Captured {
    fn render(&self) -> String {
        if self.cut == 0 {
            return self.text.clone();
        }
        format!(
            "{}\n… ({} more bytes cut: the output of a command is kept to {MAX_OUTPUT} bytes per stream)",
            self.text, self.cut
        )
    }
}

/// The child's exit code (`None`: killed by a signal) and its capped output; every chunk is a
/// sign of life for the stall timeout. Dropped before the child exits (the timeout, a
/// cancelled call): the group guard of `spawn_in_group` kills it and all it started.
async fn capped_output(
    mut child: tokio::process::Child,
) -> std::io::Result<(Option<i32>, Captured, Captured)> {
    use tokio::io::AsyncReadExt as _;
    async fn drain<R: tokio::io::AsyncRead + Unpin>(r: Option<R>) -> std::io::Result<Captured> {
        let mut kept = Vec::new();
        let mut cut = 0u64;
        let Some(mut r) = r else {
            return Ok(Captured::default());
        };
        let mut buf = [0u8; 8192];
        loop {
            let n = r.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            crate::backend::progress();
            let room = MAX_OUTPUT.saturating_sub(kept.len()).min(n);
            kept.extend_from_slice(&buf[..room]);
            cut += (n - room) as u64;
        }
        Ok(Captured {
            text: String::from_utf8_lossy(&kept).into_owned(),
            cut,
        })
    }
    let guard = crate::backend::GroupGuard::of(&child);
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let status = async {
        let s = child.wait().await;
        guard.reaped();
        s
    };
    let (out, err, status) = tokio::try_join!(drain(stdout), drain(stderr), status)?;
    Ok((status.code(), out, err))
}
