//! Integration tests: every test runs the real `wfhost` binary with the real guest.

mod audit;
mod backends;
mod batch;
mod ci;
mod compile;
mod conformance;
mod cost;
mod distributed;
mod fake_api;
mod fake_batches;
mod fake_openai;
mod first_hour;
mod golden;
mod hardening;
mod live;
mod mcp;
mod openai;
mod resume;
mod runtime;
mod sandbox;
mod tools;
mod views;
mod workflows;

use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A shared compile cache for the whole test run: the first test pays for compiling the
/// guest, the rest deserialize it (as a user's second run does).
fn cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("wfhost-test-cache")
}

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// `wfhost` with arguments, stdin closed (like CI), hermetic: its own `HOME`,
/// `XDG_CONFIG_HOME` and `XDG_CACHE_HOME` (a fresh directory, also the working directory and so
/// where its runs go, unless the test says otherwise), the shared compile cache, and none of
/// the caller's `ANTHROPIC_*`, `OPENAI_*`, `WFHOST_*`, `CI` or `NO_COLOR`.
pub struct Wf {
    cmd: Command,
    stdin: Option<Vec<u8>>,
    home: tempfile::TempDir,
}

pub fn wfhost<I: IntoIterator<Item = S>, S: AsRef<std::ffi::OsStr>>(args: I) -> Wf {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wfhost"));
    for (key, _) in std::env::vars_os() {
        let k = key.to_string_lossy();
        if k.starts_with("ANTHROPIC_")
            || k.starts_with("OPENAI_")
            || k.starts_with("WFHOST_")
            || k == "CI"
            || k == "NO_COLOR"
        {
            cmd.env_remove(&key);
        }
    }
    let home = tempfile::tempdir().unwrap();
    cmd.args(args)
        .env("WFHOST_CACHE_DIR", cache_dir())
        .current_dir(home.path());
    let wf = Wf {
        cmd,
        stdin: None,
        home,
    };
    let home = wf.home.path().to_path_buf();
    wf.home(home)
}

impl Wf {
    /// `HOME` is `dir`, and the XDG directories are the default ones beneath it.
    pub fn home(mut self, dir: impl AsRef<Path>) -> Self {
        let dir = dir.as_ref();
        self.cmd
            .env("HOME", dir)
            .env("XDG_CONFIG_HOME", dir.join(".config"))
            .env("XDG_CACHE_HOME", dir.join(".cache"));
        self
    }
    pub fn arg(mut self, a: impl AsRef<std::ffi::OsStr>) -> Self {
        self.cmd.arg(a);
        self
    }
    pub fn args<I: IntoIterator<Item = S>, S: AsRef<std::ffi::OsStr>>(mut self, a: I) -> Self {
        self.cmd.args(a);
        self
    }
    pub fn dir(mut self, d: impl AsRef<Path>) -> Self {
        self.cmd.current_dir(d);
        self
    }
    pub fn env(mut self, k: &str, v: impl AsRef<std::ffi::OsStr>) -> Self {
        self.cmd.env(k, v);
        self
    }
    /// Starts it without waiting (for tests that kill or signal it). Its home directory is
    /// left behind (in the system's temporary directory) for the process to use.
    pub fn spawn(mut self) -> std::process::Child {
        self.cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = self.cmd.spawn().expect("wfhost starts");
        let _ = self.home.keep();
        child
    }

    /// The hermetic command itself, for a test that drives the process its own way (a tokio
    /// child, rmcp's transport). Its home directory is left behind, as for `spawn`.
    pub fn command(self) -> Command {
        let _ = self.home.keep();
        self.cmd
    }

    pub fn env_remove(mut self, k: &str) -> Self {
        self.cmd.env_remove(k);
        self
    }

    pub fn run(mut self) -> Out {
        self.cmd.stdin(if self.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        self.cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = self.cmd.spawn().expect("wfhost starts");
        if let Some(input) = self.stdin.take() {
            child.stdin.take().unwrap().write_all(&input).unwrap();
        }
        Out::of(child)
    }
}

#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// What a spawned wfhost (`Wf::spawn`) printed, once it has exited.
    pub fn of(child: std::process::Child) -> Out {
        let out = child.wait_with_output().expect("wfhost finishes");
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// The `--json` report (the last line of stdout).
    pub fn report(&self) -> Value {
        let line = self
            .stdout
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or_else(|| {
                panic!(
                    "no report on stdout (exit {}); stderr:\n{}",
                    self.code, self.stderr
                )
            });
        serde_json::from_str(line).unwrap_or_else(|e| panic!("report is not JSON ({e}): {line}"))
    }
    pub fn code(&self, want: i32) -> &Self {
        assert_eq!(
            self.code, want,
            "exit code; stdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// A scratch directory holding one script, removed when dropped.
/// One test's project (the fixture every test builds on, after just's `Test`): a temporary
/// directory, removed when the test ends, holding what the test writes — a workflow script
/// `w.js` with a default `meta`, a wfhost.toml, fixtures — and the runs wfhost keeps there
/// (`.wfhost/runs`). `wf()` is [`wfhost`] run in it.
pub struct Project {
    dir: tempfile::TempDir,
}

impl Default for Project {
    fn default() -> Self {
        Project {
            dir: tempfile::tempdir().unwrap(),
        }
    }
}

/// The `meta` of a project's `w.js` when the test gives only the script's body.
pub const DEFAULT_META: &str =
    "export const meta = { name: 'probe', description: 'a test project' };";

impl Project {
    /// An empty project.
    pub fn new() -> Project {
        Project::default()
    }

    /// A project whose `w.js` is `body`, after the default `meta` unless it has its own.
    pub fn with_script(body: &str) -> Project {
        let p = Project::new();
        if body.trim_start().starts_with("export const meta") {
            p.file("w.js", body);
        } else {
            p.file("w.js", format!("{DEFAULT_META}\n{body}"));
        }
        p
    }

    /// The project, with this wfhost.toml.
    #[must_use]
    pub fn toml(self, toml: &str) -> Project {
        self.file("wfhost.toml", toml);
        self
    }

    pub fn file(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, contents).unwrap();
        p
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Where wfhost keeps this project's runs.
    pub fn runs(&self) -> PathBuf {
        self.path().join(".wfhost").join("runs")
    }

    /// `wfhost ARGS` in the project's directory (hermetic, as [`wfhost`]).
    pub fn wf<I: IntoIterator<Item = S>, S: AsRef<std::ffi::OsStr>>(&self, args: I) -> Wf {
        wfhost(args).dir(self.path())
    }

    /// `wfhost run w.js --backend mock --yes --json EXTRA…`.
    pub fn run_mock(&self, extra: &[&str]) -> Out {
        self.wf(["run", "w.js", "--backend", "mock", "--yes", "--json"])
            .args(extra)
            .run()
    }
}

/// A test that needs a tool from outside (chromium, tmux, Claude Code) and cannot find it: under
/// CI, where `.ci/run` installs every one, that is a failure; elsewhere it says so and skips.
pub fn missing_tool(test: &str, what: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("{test}: {what}, and under CI every tool must be there (.ci/run installs it)");
    }
    eprintln!("SKIPPED {test}: {what} (.ci/run installs it)");
}

/// The first permission request waiting in a run's status (`Null` if none came in 20 s).
pub fn pending_permission(socket: &Path) -> Value {
    for _ in 0..400 {
        let status = control_request(socket, &serde_json::json!({"v": 1, "cmd": "status"}));
        if let Some(p) = status["permissions"].as_array().and_then(|p| p.first()) {
            return p.clone();
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Value::Null
}

/// Sends `request` on a run's control socket and returns the reply line (a `permission`
/// request's reply comes when it is decided; at most a minute).
pub fn control_request(socket: &Path, request: &Value) -> Value {
    use std::io::{BufRead as _, Write as _};
    let mut stream = std::os::unix::net::UnixStream::connect(socket).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    writeln!(stream, "{request}").unwrap();
    let mut line = String::new();
    std::io::BufReader::new(&stream)
        .read_line(&mut line)
        .unwrap();
    serde_json::from_str(&line).unwrap()
}

/// Polls until `done` holds, for at most `limit` (then fails, naming `what`).
pub fn wait_for(limit: std::time::Duration, what: &str, mut done: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Runs `body` as a workflow (a meta line is added) on the mock backend; returns the report.
pub fn run_script(body: &str, extra: &[&str]) -> (Value, Out) {
    let out = Project::with_script(body).run_mock(extra);
    (out.report(), out)
}

/// Runs tmux against one terminal's own server (`-L`): tests running at once never share a
/// server, so one test ending its last session (which ends a shared server) cannot take
/// another's terminal with it.
fn tmux(server: &str, args: &[&str]) -> String {
    let out = std::process::Command::new("tmux")
        .args(["-L", server])
        .args(args)
        .output()
        .expect("tmux runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A detached tmux session running `cmd` in a 160×48 terminal, on a tmux server of its own;
/// killed when dropped.
pub struct Terminal(String);

impl Terminal {
    /// `None` (and a visible skip message) when tmux is not installed.
    pub fn start(test: &str, cmd: &str) -> Option<Terminal> {
        if std::process::Command::new("tmux")
            .arg("-V")
            .output()
            .is_err()
        {
            missing_tool(test, "tmux is not installed");
            return None;
        }
        let name = format!("wfhost-{test}-{}", std::process::id());
        let started = std::process::Command::new("tmux")
            .args([
                "-L",
                &name,
                "-f",
                "/dev/null",
                "new-session",
                "-d",
                "-s",
                &name,
            ])
            .args(["-x", "160", "-y", "48", cmd])
            .status()
            .expect("tmux runs");
        assert!(
            started.success(),
            "tmux could not start a session for {test}"
        );
        Some(Terminal(name))
    }

    /// The screen (with 100 lines of scrollback) once it contains `needle`, or after 20 s.
    pub fn wait_for(&self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let screen = tmux(
                &self.0,
                &["capture-pane", "-p", "-S", "-100", "-t", &self.0],
            );
            if screen.contains(needle) || std::time::Instant::now() > deadline {
                return screen;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    pub fn keys(&self, keys: &str) {
        tmux(&self.0, &["send-keys", "-t", &self.0, keys, "Enter"]);
    }

    /// Sends keys as tmux names them (`Down`, `x`, `C-c`), without Enter.
    pub fn press(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", &self.0];
        args.extend_from_slice(keys);
        tmux(&self.0, &args);
    }

    /// The screen now.
    pub fn screen(&self) -> String {
        tmux(&self.0, &["capture-pane", "-p", "-t", &self.0])
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        tmux(&self.0, &["kill-server"]);
    }
}
