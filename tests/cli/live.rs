//! Live runs: `run --detach`, the control socket and the commands that use it (`stop`, `pause`,
//! `continue`, `agent kill|restart`, `logs --follow`), and the stall timeout. Agents are real
//! processes (the `command` backend running a small Python agent that counts its calls), so
//! "asked again" is counted where the calls arrive.

use super::{Out, Project, wait_for};
use serde_json::Value;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// An agent that sleeps for the `[sleep=S]` of its prompt (`[first-sleep=S]`: on its first call
/// only), then answers `LABEL call N`, where
/// N counts the calls it got for that label (one line per call in `calls/LABEL`).
pub(crate) const AGENT: &str = r#"
import json, os, re, sys, time
req = json.load(sys.stdin)
label = req["label"]
os.makedirs("calls", exist_ok=True)
with open(os.path.join("calls", label), "a") as f:
    f.write("call\n")
n = len(open(os.path.join("calls", label)).read().splitlines())
m = re.search(r"\[sleep=([0-9.]+)\]", req["prompt"])
if m:
    time.sleep(float(m.group(1)))
m = re.search(r"\[first-sleep=([0-9.]+)\]", req["prompt"])
if m and n == 1:
    time.sleep(float(m.group(1)))
print(json.dumps({"text": f"{label} call {n}", "usage": {"input_tokens": 1, "output_tokens": 1}}))
"#;

/// A project whose script starts `n` agents in parallel, each sleeping `sleep` seconds.
fn steered(n: usize, sleep: f64) -> Project {
    let p = Project::with_script(&format!(
        "export const meta = {{ name: 'live', description: 'steered', phases: [{{ title: 'Work' }}] }};\n\
         phase('Work');\n\
         const out = await parallel(Array.from({{ length: {n} }}, (_, i) => () => agent(`task ${{i + 1}} [sleep={sleep}]`, {{ label: `task-${{i + 1}}` }})));\n\
         log('done: ' + JSON.stringify(out));\n\
         return out;\n"
    ))
    .toml("backend = \"command\"\n[command]\nprogram = \"python3\"\nargs = [\"agent.py\"]\n");
    p.file("agent.py", AGENT);
    p
}

fn wf(s: &Project, args: &[&str]) -> super::Wf {
    s.wf(args).env("WFHOST_RUNS_DIR", s.path().join("runs"))
}

fn calls(s: &Project, label: &str) -> usize {
    std::fs::read_to_string(s.path().join("calls").join(label))
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

fn run_dir(s: &Project, id: &str) -> PathBuf {
    s.path().join("runs").join(id)
}

/// Starts the script in the background; returns its run id.
fn detach(s: &Project, extra: &[&str]) -> String {
    let out = wf(s, &["run", "w.js", "--yes", "--detach"])
        .args(extra)
        .run();
    out.code(0);
    assert!(
        out.stderr.contains("wfhost stop") && out.stderr.contains("wfhost resume"),
        "detach says how to reach the run: {}",
        out.stderr
    );
    let id = out.stdout.trim().to_string();
    assert!(
        run_dir(s, &id).join("control.sock").exists(),
        "detach returns once the run can be steered"
    );
    id
}

/// The run's event stream, read live until it ends (`logs --follow --json`).
fn follow(s: &Project, id: &str) -> Vec<Value> {
    let out = wf(s, &["logs", id, "--follow", "--json"]).run();
    out.code(0);
    out.stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn events_of<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == kind).collect()
}

fn steer(s: &Project, args: &[&str]) -> Out {
    let out = wf(s, args).run();
    out.code(0);
    out
}

/// `run --detach`, then from the command line: kill a queued agent (the script sees `null`
/// there, the rest complete), restart a running one (it is asked again and the script gets the
/// new answer), pause (no agent starts while running ones finish) and continue. Each command is
/// journaled with who sent it.
#[test]
fn a_detached_run_is_killed_restarted_paused_and_continued_agent_by_agent() {
    // Agents of 2 s: agent 3 stays queued long enough for the kill even on a loaded machine.
    let s = steered(6, 2.0);
    let id = detach(&s, &["--concurrency", "2"]);
    // Agent 3 is still queued (two run at a time): it fails the moment a worker takes it.
    let killed = steer(&s, &["agent", "kill", &id, "3"]);
    assert!(
        killed.stderr.contains("killed agent 3 (task-3)"),
        "{}",
        killed.stderr
    );
    wait_for(Duration::from_secs(10), "agent 1 to start", || {
        calls(&s, "task-1") == 1
    });
    steer(&s, &["agent", "restart", &id, "task-1"]);
    steer(&s, &["pause", &id]);
    let status = steer(&s, &["runs", "--json"]);
    let runs: Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(runs[0]["status"], "paused", "{runs}");
    std::thread::sleep(Duration::from_secs(3));
    steer(&s, &["continue", &id]);
    let events = follow(&s, &id);

    let finished = events_of(&events, "run_finished");
    assert_eq!(finished.len(), 1, "the stream ends with the run");
    assert_eq!(finished[0]["outcome"], "completed");
    let log = events_of(&events, "log")
        .into_iter()
        .find_map(|e| e["text"].as_str().filter(|t| t.starts_with("done: ")))
        .expect("the script logs its result");
    let result: Value = serde_json::from_str(&log["done: ".len()..]).unwrap();
    assert_eq!(result[2], Value::Null, "the killed agent is null: {result}");
    assert_eq!(
        result[0], "task-1 call 2",
        "the restarted agent's new answer: {result}"
    );
    for i in [2, 4, 5, 6] {
        assert_eq!(result[i - 1], format!("task-{i} call 1"), "{result}");
    }
    assert_eq!(calls(&s, "task-3"), 0, "a killed queued agent never runs");
    let failed = events_of(&events, "agent_failed");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["error"], "killed by the operator");

    // Paused: nothing started between pause and continue, and what was running finished.
    let t = |action: &str| {
        events
            .iter()
            .find(|e| e["type"] == "control" && e["action"] == action)
            .unwrap_or_else(|| panic!("a `{action}` event"))["t_ms"]
            .as_u64()
            .unwrap()
    };
    let (paused, continued) = (t("pause"), t("continue"));
    assert!(continued >= paused + 3000, "paused for 3 s");
    let between = |kind: &str| {
        events_of(&events, kind)
            .iter()
            .filter(|e| (paused..continued).contains(&e["t_ms"].as_u64().unwrap()))
            .count()
    };
    assert_eq!(between("agent_started"), 0, "no agent starts while paused");
    assert!(
        between("agent_finished") >= 1,
        "running agents finish while paused"
    );

    let show = steer(&s, &["runs", "show", &id, "--json"]);
    let show: Value = serde_json::from_str(&show.stdout).unwrap();
    let actions: Vec<&str> = show["controls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["kill", "restart", "pause", "continue"]);
    assert!(
        show["controls"][0]["by"]
            .as_str()
            .unwrap()
            .contains("(wfhost agent kill)"),
        "{show}"
    );
    assert_eq!(show["controls"][0]["agent"], 3);
    assert!(
        !run_dir(&s, &id).join("control.sock").exists(),
        "the socket is removed at exit"
    );
    // The run is over: commands say so, and how to see what it did.
    let late = wf(&s, &["pause", &id]).run();
    late.code(2);
    assert!(
        late.stderr.contains("has finished (completed)") && late.stderr.contains("hint:"),
        "{}",
        late.stderr
    );
}

/// `wfhost stop`: running agents are cancelled (their processes ended), the run ends with exit
/// 130 and the resume command, and `resume` completes asking none of the finished agents again.
#[test]
fn stop_ends_the_run_with_130_and_resume_asks_no_finished_agent_again() {
    let s = steered(4, 0.2);
    // The last agent is slow: it is the one running when the stop arrives.
    std::fs::write(
        s.path().join("w.js"),
        "export const meta = { name: 'live', description: 'steered' };\n\
         const quick = await parallel([1, 2, 3].map(i => () => agent(`task ${i} [sleep=0.2]`, { label: `task-${i}` })));\n\
         const slow = await agent('task 4 [first-sleep=30]', { label: 'task-4' });\n\
         return [...quick, slow];\n",
    )
    .unwrap();
    let id = "20261121T000000-stop01";
    let child = wf(&s, &["run", "w.js", "--yes", "--run-id", id]).spawn();
    wait_for(Duration::from_secs(15), "the slow agent to start", || {
        calls(&s, "task-4") == 1
    });
    let stopped = steer(&s, &["stop", id]);
    assert!(
        stopped
            .stderr
            .contains(&format!("wfhost resume {id} --yes"))
    );
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("stopped by the operator")
            && stderr.contains(&format!("wfhost resume {id} --yes")),
        "{stderr}"
    );
    let runs: Value = serde_json::from_str(&steer(&s, &["runs", "--json"]).stdout).unwrap();
    assert_eq!(runs[0]["status"], "stopped");

    // On resume the slow agent runs again (it never finished; its second call is quick);
    // the three that finished are served from the journal.
    let resumed = wf(&s, &["resume", id, "--yes", "--json"]).run();
    resumed.code(0);
    let r = resumed.report();
    assert_eq!(r["usage"]["agents_cached"], 3, "{r}");
    assert_eq!(r["result"][3], "task-4 call 2", "{r}");
    for label in ["task-1", "task-2", "task-3"] {
        assert_eq!(
            calls(&s, label),
            1,
            "{label} finished before the stop: never asked again"
        );
    }
    assert_eq!(calls(&s, "task-4"), 2);
}

/// Two subscribers at once receive identical streams, and one that connects after the run
/// ended still receives the whole history (from the run's event log).
#[test]
fn subscribers_receive_identical_streams_and_a_late_one_the_whole_history() {
    let s = steered(4, 0.3);
    let id = detach(&s, &["--concurrency", "2"]);
    let spawn = || wf(&s, &["logs", &id, "--follow", "--json"]).spawn();
    let (a, b) = (spawn(), spawn());
    std::thread::sleep(Duration::from_millis(300));
    let late = spawn(); // connects mid-run: the history first, then live
    let read = |c: std::process::Child| {
        let out = c.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0));
        String::from_utf8(out.stdout).unwrap()
    };
    let (a, b, late) = (read(a), read(b), read(late));
    assert!(a.lines().count() >= 10, "the whole stream: {a}");
    assert!(
        a.lines()
            .next()
            .unwrap()
            .contains("\"type\":\"run_started\"")
    );
    assert!(
        a.lines()
            .last()
            .unwrap()
            .contains("\"type\":\"run_finished\"")
    );
    assert_eq!(a, b, "two subscribers, one stream");
    assert_eq!(a, late, "a late subscriber gets the history");
    // After the run: the same stream from the event log.
    let after = steer(&s, &["logs", &id, "--json"]).stdout.clone();
    assert_eq!(a, after);
    // And the plain view of it.
    let plain = steer(&s, &["logs", &id]).stdout.clone();
    assert!(
        plain.starts_with("▶ live — steered (backend: command)"),
        "{plain}"
    );
    assert!(
        plain.trim_end().ends_with("s") && plain.contains("■ completed in"),
        "{plain}"
    );
}

/// A backend that hangs: the Messages API stalls (no event at all), and a `claude` that
/// sleeps. With a 1 s stall timeout each call is cancelled, asked once more, then fails naming
/// the limit; the run ends. The claude processes, and what they started, are ended.
#[test]
fn a_stalled_agent_is_retried_once_then_fails_and_the_run_ends() {
    let api = super::fake_api::FakeApi::start(false);
    let s = Project::new();
    s.file(
        "w.js",
        "export const meta = { name: 'stall', description: 'hangs' };\n\
         const r = await agent('hang [stallx5]');\n\
         return { r };\n",
    );
    s.file("wfhost.toml", "model = \"claude-sonnet-4-5\"\n");
    let mut run = wf(
        &s,
        &[
            "run",
            "w.js",
            "--yes",
            "--json",
            "--backend",
            "messages",
            "--stall-timeout",
            "1s",
        ],
    );
    for (k, v) in api.env() {
        run = run.env(k, v);
    }
    let started = Instant::now();
    let out = run.run();
    let r = out.report();
    assert_eq!(r["result"]["r"], Value::Null, "{r}");
    let error = r["failures"][0]["error"].as_str().unwrap();
    assert!(
        error.contains("stalled twice") && error.contains("--stall-timeout"),
        "{error}"
    );
    assert_eq!(
        api.attempts("hang").len(),
        2,
        "asked once more, then given up"
    );
    assert!(started.elapsed() < Duration::from_secs(20));

    // `claude` that sleeps (and starts a child that sleeps): ended, both times.
    s.file(
        "fake-claude",
        "#!/bin/sh\nsleep 30 &\necho $! >> pids\necho $$ >> pids\nwait\n",
    );
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            s.path().join("fake-claude"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
    }
    s.file("wfhost.toml", "[claude]\nbinary = \"./fake-claude\"\n");
    s.file(
        "w.js",
        "export const meta = { name: 'stall', description: 'hangs' };\n\
         const r = await agent('hang', { stallMs: 800 });\n\
         return { r };\n",
    );
    let out = wf(
        &s,
        &["run", "w.js", "--yes", "--json", "--backend", "claude"],
    )
    .run();
    let r = out.report();
    assert_eq!(r["result"]["r"], Value::Null, "{r}");
    let error = r["failures"][0]["error"].as_str().unwrap();
    assert!(
        error.contains("stalled twice") && error.contains("800ms"),
        "{error}"
    );
    let pids = std::fs::read_to_string(s.path().join("pids")).unwrap();
    let pids: Vec<i32> = pids.lines().map(|l| l.trim().parse().unwrap()).collect();
    assert_eq!(pids.len(), 4, "two calls, each a shell and its child");
    for pid in pids {
        // Gone, or a zombie waiting for a reaper (ended, not yet collected).
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let alive = state
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().next())
            .is_some_and(|s| s != "Z" && s != "X");
        assert!(
            !alive,
            "process {pid} of a cancelled call was ended: {state}"
        );
    }
}

/// The control socket is the run owner's alone: mode 0600, and only its uid is served.
#[test]
fn the_control_socket_is_private_to_the_runs_owner() {
    use std::os::unix::fs::PermissionsExt;
    let s = steered(1, 2.0);
    let id = detach(&s, &[]);
    let socket = run_dir(&s, &id).join("control.sock");
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    // A request in the wrong protocol version is refused by name, not guessed at.
    let mut stream = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    use std::io::{BufRead, Write};
    writeln!(stream, "{{\"v\": 9, \"cmd\": \"status\"}}").unwrap();
    let mut reply = String::new();
    std::io::BufReader::new(&stream)
        .read_line(&mut reply)
        .unwrap();
    assert!(reply.contains("control protocol 1, not 9"), "{reply}");
    writeln!(stream, "{{\"v\": 1, \"cmd\": \"status\"}}").unwrap();
    let mut reply = String::new();
    std::io::BufReader::new(&stream)
        .read_line(&mut reply)
        .unwrap();
    let status: Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(status["ok"], true);
    assert_eq!(status["run_id"], id.as_str());
    assert_eq!(status["agents"]["running"], 1, "{status}");
    // `save` (the dashboard's `s`): the run's script becomes a saved workflow of the project.
    writeln!(stream, "{{\"v\": 1, \"cmd\": \"save\"}}").unwrap();
    let mut reply = String::new();
    std::io::BufReader::new(&stream)
        .read_line(&mut reply)
        .unwrap();
    let saved: Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(saved["name"], "live", "{saved}");
    let file = s.path().join(".wfhost/workflows/live.js");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        std::fs::read_to_string(s.path().join("w.js")).unwrap()
    );
    steer(&s, &["stop", &id]);
}

/// `wfhost watch` in a real terminal (tmux) on a detached run: agent 3 is killed from the
/// dashboard (`x`, then `y`), the script sees `null` there and the others complete; strings the
/// script controls (phase titles, logs, labels) never reach the terminal raw; Ctrl-C and `q`
/// leave with the terminal restored, and the run goes on.
#[test]
fn the_dashboard_kills_an_agent_and_never_shows_raw_script_strings() {
    let s = steered(6, 2.0);
    std::fs::write(
        s.path().join("w.js"),
        "export const meta = { name: 'live', description: 'steered', phases: [{ title: 'Work' }, { title: 'Sum\\u001b[31mRED' }] };\n\
         phase('Work');\n\
         log('hello \\u001b[2Jclear \\u202eevil');\n\
         const out = await parallel(Array.from({ length: 6 }, (_, i) => () => agent(`task ${i + 1} [sleep=2]`, { label: `task-${i + 1}` })));\n\
         phase('Sum\\u001b[31mRED');\n\
         return out;\n",
    )
    .unwrap();
    let id = detach(&s, &["--concurrency", "2"]);
    let watch = |name: &str| {
        let cmd = format!(
            "cd {} && env -u CI TERM=xterm-256color WFHOST_RUNS_DIR=runs {} watch {id}; echo WATCH-EXIT=$?; sleep 60",
            s.path().display(),
            env!("CARGO_BIN_EXE_wfhost")
        );
        super::Terminal::start(name, &cmd)
    };
    let Some(term) = watch("dashboard_kill") else {
        return;
    };
    let screen = term.wait_for("Agents · Work");
    assert!(
        screen.contains("Sum␛[31mRED"),
        "a phase title's escape is shown, not obeyed:\n{screen}"
    );
    assert!(
        screen.contains("hello ␛[2Jclear <U+202E>evil"),
        "log line made visible:\n{screen}"
    );
    assert!(
        screen.contains("running · command · 6 agents"),
        "header:\n{screen}"
    );
    term.press(&["Down", "Down", "x"]);
    let asked = term.wait_for("kill agent 3 (task-3)? [y/N]");
    assert!(asked.contains("kill agent 3 (task-3)? [y/N]"), "{asked}");
    term.press(&["y"]);
    // Queued when killed: it fails as soon as a worker takes it.
    let killed = term.wait_for("✗ failed");
    assert!(killed.contains("✗ failed"), "{killed}");
    term.press(&["C-c"]);
    let left = term.wait_for("WATCH-EXIT=");
    assert!(left.contains("WATCH-EXIT=130"), "{left}");
    assert!(
        !left.contains("┌ Phases"),
        "the terminal is restored:\n{left}"
    );
    drop(term);

    // Watch again: the whole history, then live until the run ends; `q` leaves.
    let term = watch("dashboard_end").unwrap();
    // A run that completed while an agent failed never reads as a plain "completed".
    let ended = term.wait_for("the run ended (completed ⚠ 1 agent(s) failed)");
    assert!(
        ended.contains("completed ⚠ 1 agent(s) failed · command · 6 agents (5 done"),
        "{ended}"
    );
    assert!(
        ended.contains("1 failed"),
        "a failed agent is loud:\n{ended}"
    );
    term.press(&["q"]);
    let left = term.wait_for("WATCH-EXIT=");
    assert!(left.contains("WATCH-EXIT=0"), "{left}");
    let show: Value =
        serde_json::from_str(&steer(&s, &["runs", "show", &id, "--json"]).stdout).unwrap();
    let result = &show["result"];
    assert_eq!(result[2], Value::Null, "{result}");
    assert_eq!(result[5], "task-6 call 1", "{result}");
    assert_eq!(calls(&s, "task-3"), 0);
}

/// A run whose process dies leaves a stale `control.sock`: `runs` calls it crashed, commands
/// say so and how to resume, and the resumed attempt replaces the socket and can be steered.
#[test]
fn a_crashed_runs_stale_socket_is_named_and_replaced() {
    let s = steered(2, 30.0);
    let out = wf(&s, &["run", "w.js", "--yes", "--detach", "--json"]).run();
    out.code(0);
    let started: Value = serde_json::from_str(&out.stdout).unwrap();
    let id = started["run_id"].as_str().unwrap().to_string();
    let pid = i32::try_from(started["pid"].as_u64().unwrap()).unwrap();
    let socket = run_dir(&s, &id).join("control.sock");
    assert!(socket.exists());
    let status: Value = serde_json::from_str(&steer(&s, &["runs", "--json"]).stdout).unwrap();
    assert_eq!(status[0]["status"], "running");
    // The run's own process, killed without a chance to clean up.
    // SAFETY: a signal to the process this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    wait_for(Duration::from_secs(10), "the lock to be released", || {
        let runs: Value = serde_json::from_str(&steer(&s, &["runs", "--json"]).stdout).unwrap();
        runs[0]["status"] == "crashed"
    });
    assert!(socket.exists(), "a crash leaves the socket behind");
    let refused = wf(&s, &["pause", &id]).run();
    refused.code(2);
    assert!(
        refused.stderr.contains("it crashed")
            && refused
                .stderr
                .contains(&format!("wfhost resume {id} --yes")),
        "{}",
        refused.stderr
    );
    let resumed = wf(&s, &["resume", &id, "--yes", "--detach"]).run();
    resumed.code(0);
    let status: Value =
        serde_json::from_str(&wf(&s, &["pause", &id, "--json"]).run().stdout).unwrap();
    assert_eq!(status["paused"], true, "the new socket answers");
    steer(&s, &["stop", &id]);
}
