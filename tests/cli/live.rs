//! Live runs: `run --detach`, the control socket and the commands that use it (`stop`, `pause`,
//! `continue`, `agent kill|restart`, `logs --follow`), and the stall timeout. Agents are real
//! processes (the `command` backend running a small Python agent that counts its calls), so
//! "asked again" is counted where the calls arrive.

use super::{Out, Scratch, wfhost};
use serde_json::Value;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// An agent that sleeps for the `[sleep=S]` of its prompt (`[first-sleep=S]`: on its first call
/// only), then answers `LABEL call N`, where
/// N counts the calls it got for that label (one line per call in `calls/LABEL`).
const AGENT: &str = r#"
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
fn project(n: usize, sleep: f64) -> Scratch {
    let s = Scratch::new();
    s.file(
        "w.js",
        format!(
            "export const meta = {{ name: 'live', description: 'steered', phases: [{{ title: 'Work' }}] }};\n\
             phase('Work');\n\
             const out = await parallel(Array.from({{ length: {n} }}, (_, i) => () => agent(`task ${{i + 1}} [sleep={sleep}]`, {{ label: `task-${{i + 1}}` }})));\n\
             log('done: ' + JSON.stringify(out));\n\
             return out;\n"
        ),
    );
    s.file("agent.py", AGENT);
    s.file(
        "wfhost.toml",
        "backend = \"command\"\n[command]\nprogram = \"python3\"\nargs = [\"agent.py\"]\n",
    );
    s
}

fn wf(s: &Scratch, args: &[&str]) -> super::Wf {
    wfhost(args)
        .dir(s.path())
        .env("WFHOST_RUNS_DIR", s.path().join("runs"))
}

fn calls(s: &Scratch, label: &str) -> usize {
    std::fs::read_to_string(s.path().join("calls").join(label))
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

fn run_dir(s: &Scratch, id: &str) -> PathBuf {
    s.path().join("runs").join(id)
}

/// Starts the script in the background; returns its run id.
fn detach(s: &Scratch, extra: &[&str]) -> String {
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
fn follow(s: &Scratch, id: &str) -> Vec<Value> {
    let out = wf(s, &["logs", id, "--follow", "--json"]).run();
    out.code(0);
    out.stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Polls until `done` holds, for at most `limit`.
fn wait_for(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn events_of<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == kind).collect()
}

fn steer(s: &Scratch, args: &[&str]) -> Out {
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
    let s = project(6, 1.0);
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
    std::thread::sleep(Duration::from_secs(2));
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
    assert!(continued >= paused + 2000, "paused for 2 s");
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
    let s = project(4, 0.2);
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
