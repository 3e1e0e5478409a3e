//! Agents on many machines: `wfhost run --executor nats://…` and `wfhost worker`, against a real
//! `nats-server -js` on a free loopback port (a temporary store) and the fake Messages API. The
//! run host has no API key; the workers do.

use super::fake_api::FakeApi;
use super::{Project, wait_for, wfhost};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A real nats-server with JetStream, stopped on drop.
struct NatsServer {
    child: Child,
    port: u16,
    store: tempfile::TempDir,
    extra: Vec<String>,
}

/// `nats-server -js` on `port` with its store in `store`; returns once it accepts connections.
fn launch(bin: &str, port: u16, store: &std::path::Path, extra: &[String]) -> Child {
    let child = Command::new(bin)
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(store)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nats-server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

impl NatsServer {
    fn start(test: &str) -> Option<NatsServer> {
        Self::start_with(test, &[])
    }

    /// With extra server flags (`--user`, `--pass`, …).
    fn start_with(test: &str, extra: &[&str]) -> Option<NatsServer> {
        let Some(bin) = nats_bin() else {
            super::missing_tool(test, "`nats-server` is not installed");
            return None;
        };
        let store = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let extra: Vec<String> = extra.iter().map(|a| (*a).to_string()).collect();
        Some(NatsServer {
            child: launch(bin, port, store.path(), &extra),
            port,
            store,
            extra,
        })
    }

    /// Starts it again on the same port and store (a restart).
    fn spawn(&self, bin: &str) -> Child {
        launch(bin, self.port, self.store.path(), &self.extra)
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `wfhost worker` on the messages backend against the fake API, killed on drop.
struct Worker(Child);

impl Worker {
    fn start(nats: &NatsServer, api: &FakeApi, name: &str, concurrency: u32) -> Worker {
        let mut wf = wfhost([
            "worker",
            "--nats",
            &nats.url(),
            "--backend",
            "messages",
            "--concurrency",
            &concurrency.to_string(),
            "--lease",
            "2s",
            "--grace",
            "5s",
            "--name",
            name,
        ]);
        for (k, v) in api.env() {
            wf = wf.env(k, v);
        }
        Worker(wf.spawn())
    }

    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// 60 agents, each answered by the fake API after `first_token`.
const SPREAD: &str = "export const meta = { name: 'spread', description: 'many machines' };\nphase('Fan');\nconst r = await parallel(Array.from({ length: 60 }, (_, i) => () => agent('task ' + i)));\nreturn r;";

/// The 60-agent project on a model with a known price.
fn spread() -> Project {
    Project::with_script(SPREAD).toml("model = \"claude-sonnet-4-5\"\n")
}

/// `wfhost run` (or `resume`) on the nats executor; the run host gets no API key.
fn host(s: &Project, nats: &NatsServer, args: &[&str]) -> super::Wf {
    s.wf(args)
        .args(["--executor", &nats.url(), "--concurrency", "12"])
        .env("WFHOST_RUNS_DIR", s.path().join("runs"))
}

/// The fake API (answers begin after `first_token_ms`) and `n` workers of `concurrency` on it.
fn cluster(
    nats: &NatsServer,
    first_token_ms: u64,
    n: usize,
    concurrency: u32,
) -> (FakeApi, Vec<Worker>) {
    let api = FakeApi::start(false);
    api.seen.lock().unwrap().first_token = Duration::from_millis(first_token_ms);
    let workers = (1..=n)
        .map(|i| Worker::start(nats, &api, &format!("w{i}"), concurrency))
        .collect();
    (api, workers)
}

/// Waits until the fake API has answered `n` distinct prompts (the run is under way).
fn wait_answered(api: &FakeApi, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while api.seen.lock().unwrap().answered.len() < n {
        assert!(Instant::now() < deadline, "the run never got going");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A `--json` run's report, once it has exited 0.
fn report_of(run: Child) -> serde_json::Value {
    super::Out::of(run).code(0).report()
}

fn nats_bin() -> Option<&'static str> {
    ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
}

fn answered_counts(api: &FakeApi) -> Vec<u32> {
    api.seen
        .lock()
        .unwrap()
        .answered
        .values()
        .copied()
        .collect()
}

#[test]
fn three_workers_serve_a_run_and_each_prompt_is_asked_once() {
    let Some(nats) = NatsServer::start("three_workers_serve_a_run_and_each_prompt_is_asked_once")
    else {
        return;
    };
    let (api, _workers) = cluster(&nats, 50, 3, 4);
    let s = spread();
    let out = host(
        &s,
        &nats,
        &["run", "w.js", "--yes", "--json", "--backend", "messages"],
    )
    .run();
    out.code(0);
    let distributed = out.report();
    assert_eq!(
        distributed["result"].as_array().unwrap().len(),
        60,
        "{distributed}"
    );
    let counts = answered_counts(&api);
    assert_eq!(counts.len(), 60);
    assert!(
        counts.iter().all(|n| *n == 1),
        "each prompt once: {counts:?}"
    );
    // The same run on the local executor (with the key here) gives the same result.
    let mut local = s
        .wf(["run", "w.js", "--yes", "--json", "--backend", "messages"])
        .env("WFHOST_RUNS_DIR", s.path().join("runs-local"));
    for (k, v) in api.env() {
        local = local.env(k, v);
    }
    let local = local.run();
    local.code(0);
    assert_eq!(local.report()["result"], distributed["result"]);
}

#[test]
fn a_killed_worker_loses_no_finished_work() {
    let Some(nats) = NatsServer::start("a_killed_worker_loses_no_finished_work") else {
        return;
    };
    let (api, mut workers) = cluster(&nats, 300, 3, 4);
    let s = spread();
    let run = host(
        &s,
        &nats,
        &["run", "w.js", "--yes", "--json", "--backend", "messages"],
    )
    .spawn();
    // Once some agents have finished, SIGKILL a worker that holds others.
    wait_answered(&api, 10);
    workers[0].kill();
    let report = report_of(run);
    let result = report["result"].as_array().unwrap();
    assert_eq!(result.len(), 60);
    assert!(
        result
            .iter()
            .all(|r| r.as_str().is_some_and(|t| t.starts_with("R(task"))),
        "{report}"
    );
    // Only calls in flight on the killed worker (4 at a time) may have been made twice.
    let counts = answered_counts(&api);
    assert_eq!(counts.len(), 60);
    let twice = counts.iter().filter(|n| **n > 1).count();
    assert!(twice <= 4 && counts.iter().all(|n| *n <= 2), "{counts:?}");
}

#[test]
fn a_killed_run_host_resumes_from_the_results_bucket() {
    let Some(nats) = NatsServer::start("a_killed_run_host_resumes_from_the_results_bucket") else {
        return;
    };
    let (api, _workers) = cluster(&nats, 300, 2, 6);
    let s = spread();
    let started = host(
        &s,
        &nats,
        &[
            "run",
            "w.js",
            "--yes",
            "--detach",
            "--json",
            "--backend",
            "messages",
        ],
    )
    .run();
    started.code(0);
    let info: serde_json::Value = serde_json::from_str(started.stdout.trim()).unwrap();
    let (run_id, pid) = (
        info["run_id"].as_str().unwrap(),
        info["pid"].as_i64().unwrap(),
    );
    wait_answered(&api, 15);
    // SIGKILL the run host: its jobs in flight go on on the workers, into the results bucket.
    unsafe {
        libc::kill(i32::try_from(pid).unwrap(), libc::SIGKILL);
    }
    std::thread::sleep(Duration::from_secs(1));
    let resumed = host(&s, &nats, &["resume", run_id, "--yes", "--json"]).run();
    resumed.code(0);
    let r = resumed.report();
    assert_eq!(r["result"].as_array().unwrap().len(), 60, "{r}");
    let counts = answered_counts(&api);
    assert_eq!(counts.len(), 60);
    assert!(
        counts.iter().all(|n| *n == 1),
        "nothing asked twice: {counts:?}"
    );
    // The calls the dead host had out were taken from the results bucket, not asked again.
    assert!(
        r["backend_stats"]["served_from_results_bucket"]
            .as_u64()
            .unwrap()
            >= 1,
        "{r}"
    );
}

/// A worker project on the `command` backend: an agent that records its pid (`pids/LABEL`) and
/// sleeps for its prompt's `[sleep=S]`.
const SLEEPER: &str = r#"
import json, os, re, sys, time
req = json.load(sys.stdin)
os.makedirs("pids", exist_ok=True)
with open(os.path.join("pids", req["label"]), "w") as f:
    f.write(str(os.getpid()))
m = re.search(r"\[sleep=([0-9.]+)\]", req["prompt"])
if m:
    time.sleep(float(m.group(1)))
print(json.dumps({"text": "done " + req["label"], "usage": {"input_tokens": 1, "output_tokens": 1}}))
"#;

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 checks that the process exists; nothing is sent.
    unsafe { libc::kill(pid, 0) == 0 }
}

fn pid_of(dir: &std::path::Path, label: &str) -> Option<i32> {
    std::fs::read_to_string(dir.join("pids").join(label))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// `agent kill` and `stop` on the run host end the call a worker is making on another machine:
/// the agent's process is gone within seconds, not when its 60 s sleep ends.
#[test]
fn kill_and_stop_reach_a_workers_running_call() {
    let Some(nats) = NatsServer::start("kill_and_stop_reach_a_workers_running_call") else {
        return;
    };
    let workdir = Project::new();
    workdir.file("agent.py", SLEEPER);
    workdir.file(
        "wfhost.toml",
        "backend = \"command\"\n[command]\nprogram = \"python3\"\nargs = [\"agent.py\"]\n",
    );
    let _worker = Worker(
        wfhost([
            "worker",
            "--nats",
            &nats.url(),
            "--concurrency",
            "4",
            "--lease",
            "2s",
            "--workdir",
        ])
        .arg(workdir.path())
        .spawn(),
    );
    let s = Project::new();
    // The executor from the configuration this time (`[executor] url`), not the flag.
    s.file(
        "wfhost.toml",
        format!(
            "backend = \"command\"\n[executor]\nurl = \"{}\"\n",
            nats.url()
        ),
    );
    s.file(
        "w.js",
        "export const meta = { name: 'steered', description: 'kill and stop' };\nconst r = await parallel(['one', 'two', 'three'].map((x, i) => () => agent(x + (i < 2 ? ' [sleep=60]' : ''), { label: x })));\nreturn r;",
    );
    let started = s
        .wf(["run", "w.js", "--yes", "--detach", "--json"])
        .env("WFHOST_RUNS_DIR", s.path().join("runs"))
        .run();
    started.code(0);
    let info: serde_json::Value = serde_json::from_str(started.stdout.trim()).unwrap();
    let run_id = info["run_id"].as_str().unwrap().to_string();
    wait_for(Duration::from_secs(20), "both sleepers to start", || {
        pid_of(workdir.path(), "one").is_some() && pid_of(workdir.path(), "two").is_some()
    });
    let (one, two) = (
        pid_of(workdir.path(), "one").unwrap(),
        pid_of(workdir.path(), "two").unwrap(),
    );
    let steer = |args: &[&str]| {
        let out = s
            .wf(args)
            .env("WFHOST_RUNS_DIR", s.path().join("runs"))
            .run();
        out.code(0);
    };
    steer(&["agent", "kill", &run_id, "one"]);
    wait_for(
        Duration::from_secs(10),
        "the killed agent's process to end",
        || !alive(one),
    );
    assert!(alive(two), "only the killed agent's call ended");
    steer(&["stop", &run_id]);
    wait_for(
        Duration::from_secs(10),
        "the stopped run's call to end",
        || !alive(two),
    );
}

/// nats-server restarts mid-run (file store): the run goes on, and every agent is answered once.
#[test]
fn a_nats_server_restart_loses_nothing() {
    let Some(mut nats) = NatsServer::start("a_nats_server_restart_loses_nothing") else {
        return;
    };
    let (api, _workers) = cluster(&nats, 100, 2, 4);
    let s = spread();
    let run = host(
        &s,
        &nats,
        &["run", "w.js", "--yes", "--json", "--backend", "messages"],
    )
    .spawn();
    wait_answered(&api, 10);
    let _ = nats.child.kill();
    let _ = nats.child.wait();
    std::thread::sleep(Duration::from_secs(1));
    nats.child = nats.spawn(nats_bin().unwrap());
    let report = report_of(run);
    let result = report["result"].as_array().unwrap();
    assert!(
        result
            .iter()
            .all(|r| r.as_str().is_some_and(|t| t.starts_with("R(task"))),
        "{report}"
    );
    let counts = answered_counts(&api);
    assert_eq!(counts.len(), 60);
    // Calls in flight at the restart may be made again (their results could not be stored);
    // finished ones are not.
    assert!(counts.iter().filter(|n| **n > 1).count() <= 8, "{counts:?}");
}

/// SIGTERM: a worker takes no new job, lets a call finish within `--grace` (its result is kept,
/// not asked again), hands back one that does not (another worker makes it), and exits 0.
#[test]
fn sigterm_finishes_or_hands_back_a_workers_calls() {
    let Some(nats) = NatsServer::start("sigterm_finishes_or_hands_back_a_workers_calls") else {
        return;
    };
    let workdir = Project::new();
    // The live tests' agent: sleeps `[first-sleep=S]` on its first call for a label only and
    // counts calls per label.
    workdir.file("agent.py", super::live::AGENT);
    workdir.file(
        "wfhost.toml",
        "backend = \"command\"\n[command]\nprogram = \"python3\"\nargs = [\"agent.py\"]\n",
    );
    let calls = |label: &str| {
        std::fs::read_to_string(workdir.path().join("calls").join(label))
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };
    let worker = |name: &str| {
        wfhost([
            "worker",
            "--nats",
            &nats.url(),
            "--concurrency",
            "4",
            "--lease",
            "2s",
            "--grace",
            "2s",
            "--name",
            name,
            "--workdir",
        ])
        .arg(workdir.path())
        .spawn()
    };
    let mut first = worker("first");
    let s = Project::new();
    s.file(
        "w.js",
        "export const meta = { name: 'drain', description: 'sigterm' };\nreturn await parallel([agent('quick [first-sleep=1]', { label: 'quick' }), agent('long [first-sleep=60]', { label: 'long' })].map(p => () => p));",
    );
    let run = host(
        &s,
        &nats,
        &["run", "w.js", "--yes", "--json", "--backend", "command"],
    )
    .spawn();
    wait_for(Duration::from_secs(20), "both calls to start", || {
        calls("quick") == 1 && calls("long") == 1
    });
    let stopping = Instant::now();
    unsafe {
        libc::kill(i32::try_from(first.id()).unwrap(), libc::SIGTERM);
    }
    let status = first.wait().unwrap();
    assert_eq!(status.code(), Some(0), "a drained worker exits 0");
    let took = stopping.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "it left after its grace, not the long call: {took:?}"
    );
    // The handed-back call goes to another worker.
    let _second = Worker(worker("second"));
    let report = report_of(run);
    assert_eq!(
        report["result"],
        serde_json::json!(["quick call 1", "long call 2"]),
        "{report}"
    );
    assert_eq!(
        calls("quick"),
        1,
        "the call that finished in its grace is not made again"
    );
    assert_eq!(
        calls("long"),
        2,
        "the handed-back call was made once more, elsewhere"
    );
}

/// A server that requires a user and password: without them the run host says so and how to
/// fix it; with them a worker and the run host work.
#[test]
fn nats_credentials_are_required_and_used() {
    let Some(nats) = NatsServer::start_with(
        "nats_credentials_are_required_and_used",
        &["--user", "wf", "--pass", "s3cret"],
    ) else {
        return;
    };
    let s = Project::new();
    s.file(
        "w.js",
        "export const meta = { name: 'auth', description: 'auth' };\nreturn await agent('hello');",
    );
    let refused = host(&s, &nats, &["run", "w.js", "--yes", "--backend", "mock"]).run();
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("cannot connect to NATS") && refused.stderr.contains("--nats-"),
        "{}",
        refused.stderr
    );
    let _worker = Worker(
        wfhost([
            "worker",
            "--nats",
            &nats.url(),
            "--backend",
            "mock",
            "--nats-user",
            "wf",
        ])
        .env("WFHOST_NATS_PASSWORD", "s3cret")
        .spawn(),
    );
    let out = host(
        &s,
        &nats,
        &[
            "run",
            "w.js",
            "--yes",
            "--json",
            "--backend",
            "mock",
            "--nats-user",
            "wf",
        ],
    )
    .env("WFHOST_NATS_PASSWORD", "s3cret")
    .run();
    out.code(0);
    assert!(
        out.report()["result"]
            .as_str()
            .unwrap()
            .starts_with("R(hello"),
        "{}",
        out.stdout
    );
}

/// A server that speaks only TLS: the run host and a worker trust its CA with `--nats-ca` and
/// connect over `tls://`; without the CA the connection is refused, saying so.
#[test]
fn nats_over_tls_with_a_private_ca() {
    let certs = tempfile::tempdir().unwrap();
    let cert =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let (ca, key) = (certs.path().join("ca.pem"), certs.path().join("key.pem"));
    std::fs::write(&ca, cert.cert.pem()).unwrap();
    std::fs::write(&key, cert.signing_key.serialize_pem()).unwrap();
    let Some(nats) = NatsServer::start_with(
        "nats_over_tls_with_a_private_ca",
        &[
            "--tls",
            "--tlscert",
            ca.to_str().unwrap(),
            "--tlskey",
            key.to_str().unwrap(),
        ],
    ) else {
        return;
    };
    let url = format!("tls://127.0.0.1:{}", nats.port);
    let s = Project::new();
    s.file(
        "w.js",
        "export const meta = { name: 'tls', description: 'tls' };\nreturn await agent('over tls');",
    );
    let run = |extra: &[&str]| {
        s.wf([
            "run",
            "w.js",
            "--yes",
            "--json",
            "--backend",
            "mock",
            "--executor",
            &url,
        ])
        .args(extra)
        .env("WFHOST_RUNS_DIR", s.path().join("runs"))
        .run()
    };
    let refused = run(&[]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("cannot connect to NATS"),
        "{}",
        refused.stderr
    );
    let _worker = Worker(
        wfhost(["worker", "--nats", &url, "--backend", "mock", "--nats-ca"])
            .arg(&ca)
            .spawn(),
    );
    let out = run(&["--nats-ca", ca.to_str().unwrap()]);
    out.code(0);
    assert!(
        out.report()["result"]
            .as_str()
            .unwrap()
            .starts_with("R(over tls"),
        "{}",
        out.stdout
    );
}

/// A worker of any backend (`mock` needs no API).
fn worker_of(nats: &NatsServer, backend: &str, name: &str) -> Worker {
    Worker(
        wfhost([
            "worker",
            "--nats",
            &nats.url(),
            "--backend",
            backend,
            "--concurrency",
            "4",
            "--lease",
            "2s",
            "--name",
            name,
        ])
        .spawn(),
    )
}

/// docs/distributed.md's first example: a fleet of `mock` and `messages` workers. Each job goes
/// to a worker of its run's backend — none is refused into a failure — and `wfhost workers`
/// lists the fleet with each worker's backend.
#[test]
fn a_mixed_fleet_serves_each_run_on_its_own_backend() {
    let Some(nats) = NatsServer::start("a_mixed_fleet_serves_each_run_on_its_own_backend") else {
        return;
    };
    let (api, _messages_workers) = cluster(&nats, 20, 1, 4);
    let _mock_worker = worker_of(&nats, "mock", "m1");
    let s = spread();
    let report = report_of(
        host(
            &s,
            &nats,
            &["run", "w.js", "--yes", "--json", "--backend", "messages"],
        )
        .spawn(),
    );
    assert_eq!(report["usage"]["agents_failed"], 0, "{report}");
    assert_eq!(report["usage"]["agents_done"], 60, "{report}");
    let counts = answered_counts(&api);
    assert_eq!(counts.len(), 60);
    assert!(counts.iter().all(|n| *n == 1), "{counts:?}");
    // The same fleet serves a mock run, on the mock worker.
    let answered_before = api.requests();
    let report = report_of(
        host(
            &s,
            &nats,
            &["run", "w.js", "--yes", "--json", "--backend", "mock"],
        )
        .spawn(),
    );
    assert_eq!(report["usage"]["agents_done"], 60, "{report}");
    assert_eq!(
        api.requests(),
        answered_before,
        "a mock job reached the API"
    );
    // Who serves what.
    let out = wfhost(["workers", "--nats", &nats.url(), "--json"]).run();
    out.code(0);
    let workers: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let backends: Vec<(&str, &str)> = workers
        .iter()
        .map(|w| (w["name"].as_str().unwrap(), w["backend"].as_str().unwrap()))
        .collect();
    assert_eq!(
        backends,
        [("m1", "mock"), ("w1", "messages")],
        "{}",
        out.stdout
    );
    let mock = workers.iter().find(|w| w["name"] == "m1").unwrap();
    assert_eq!(mock["served"], 60, "{mock}");
    // A line per job on the worker's stderr: run, agent, outcome, time.
    let mut mock_worker = _mock_worker;
    mock_worker.kill();
    let mut log = String::new();
    use std::io::Read as _;
    mock_worker
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    let jobs: Vec<&str> = log.lines().filter(|l| l.contains(" job ")).collect();
    assert_eq!(jobs.len(), 60, "{log}");
    assert!(
        jobs.iter()
            .all(|l| l.contains("wfhost worker m1: ") && l.contains(" ok in ")),
        "{log}"
    );
}

/// A run whose backend no worker serves says so within seconds (a log line, an event), not
/// after the stall timeout.
#[test]
fn a_run_with_no_worker_for_its_backend_says_so() {
    let Some(nats) = NatsServer::start("a_run_with_no_worker_for_its_backend_says_so") else {
        return;
    };
    let _other = worker_of(&nats, "mock", "m1");
    let s = spread();
    let events = s.path().join("events.jsonl");
    let mut run = host(&s, &nats, &["run", "w.js", "--yes", "--backend", "claude"])
        .args(["--events", events.to_str().unwrap()])
        .spawn();
    let stderr = std::io::BufReader::new(run.stderr.take().unwrap());
    let started = Instant::now();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in stderr.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    let warning = loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) if line.contains("no worker has taken a `claude` job") => break line,
            Ok(line) => seen.push(line),
            Err(_) => {}
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no warning within 15 s: {seen:?}"
        );
    };
    assert!(warning.contains("wfhost worker --nats"), "{warning}");
    // The same warning as an event (the views and the event log see it in turn: wait for it
    // before the run is killed).
    let logged = || {
        std::fs::read_to_string(&events).is_ok_and(|e| {
            e.lines()
                .any(|l| l.contains("\"log\"") && l.contains("no worker has taken"))
        })
    };
    super::wait_for(
        Duration::from_secs(5),
        "the warning in the event log",
        logged,
    );
    let _ = run.kill();
    let _ = run.wait();
}

/// A failure a worker stored is the run host's news, not an answer: a resume asks that agent
/// again (it was served from the results bucket for 7 days, without a call).
#[test]
fn a_stored_failure_is_asked_again_on_resume() {
    let Some(nats) = NatsServer::start("a_stored_failure_is_asked_again_on_resume") else {
        return;
    };
    let (api, _workers) = cluster(&nats, 0, 1, 4);
    let s = Project::new();
    s.file(
        "w.js",
        "export const meta = { name: 'again', description: 'a failure is not an answer' };\nreturn await parallel(['one', 'two [400]', 'three'].map(p => () => agent(p)));",
    );
    s.file("wfhost.toml", "model = \"claude-sonnet-4-5\"\n");
    let report = report_of(
        host(
            &s,
            &nats,
            &["run", "w.js", "--yes", "--json", "--backend", "messages"],
        )
        .spawn(),
    );
    assert_eq!(report["usage"]["agents_failed"], 1, "{report}");
    assert_eq!(api.attempts("two [400]").len(), 1);
    let run_id = report["run_id"].as_str().unwrap().to_string();
    let report = report_of(host(&s, &nats, &["resume", &run_id, "--yes", "--json"]).spawn());
    assert_eq!(report["usage"]["agents_failed"], 1, "{report}");
    assert_eq!(
        api.attempts("two [400]").len(),
        2,
        "the stored failure was served instead of asking again"
    );
    assert_eq!(
        api.attempts("one").len(),
        1,
        "an answer is served, not asked again"
    );
}

/// Whoever can publish a job must not choose what a worker's `claude` agents may do: a job's
/// agent type is the worker's own definition (a type it lacks is refused), a definition whose
/// tools are not tool names is refused before `claude` starts, and no value becomes a flag.
#[expect(
    clippy::too_many_lines,
    reason = "one end-to-end scenario, step by step"
)]
#[test]
fn a_published_job_cannot_put_flags_on_a_claude_workers_command_line() {
    let Some(nats) =
        NatsServer::start("a_published_job_cannot_put_flags_on_a_claude_workers_command_line")
    else {
        return;
    };
    let s = Project::new();
    let argv = s.path().join("argv.log");
    s.file(
        "fake-claude",
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" >> '{}'\ncat >/dev/null\necho '{{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false,\"result\":\"fine\",\"usage\":{{\"input_tokens\":1,\"output_tokens\":1}}}}'\n",
            argv.display()
        ),
    );
    std::fs::set_permissions(
        s.path().join("fake-claude"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    s.file("wfhost.toml", "[claude]\nbinary = \"./fake-claude\"\n");
    s.file(
        ".claude/agents/sneaky.md",
        "---\nname: sneaky\ndescription: a local file with a flag for a tool\ntools: Read, --dangerously-skip-permissions\n---\nbe sneaky\n",
    );
    let mut worker = Worker(
        wfhost([
            "worker",
            "--nats",
            &nats.url(),
            "--backend",
            "claude",
            "--name",
            "c1",
            "--workdir",
            s.path().to_str().unwrap(),
        ])
        .spawn(),
    );
    let job = |id: &str, agent_type: &str, tools: &[&str]| {
        serde_json::json!({
            "id": id, "run_id": "hostile", "backend": "claude",
            "request": {"prompt": "do it", "agentType": agent_type, "label": id},
            "call": null, "feedback": null,
            "definition": {"name": agent_type, "description": "", "tools": tools, "model": "--mcp-config", "path": null},
        })
    };
    let jobs = [
        job(
            "evil0000000000000000",
            "evil",
            &["--dangerously-skip-permissions"],
        ),
        job("sneaky00000000000000", "sneaky", &["Read"]),
        job("explore0000000000000", "Explore", &["--mcp-config", "x"]),
        // No agent type, a definition all the same: it is not used.
        serde_json::json!({
            "id": "notype00000000000000", "run_id": "hostile", "backend": "claude",
            "request": {"prompt": "do it", "label": "notype", "model": "--dangerously-skip-permissions"},
            "call": null, "feedback": null,
            "definition": {"name": "x", "description": "", "tools": ["--dangerously-skip-permissions"], "model": null, "path": null},
        }),
        // A "session to continue" that is a flag: the agent starts afresh, no `--resume`.
        serde_json::json!({
            "id": "session0000000000000", "run_id": "hostile", "backend": "claude",
            "request": {"prompt": "do it", "label": "session"},
            "call": null, "feedback": null, "session": "--dangerously-skip-permissions",
        }),
    ];
    let rt = tokio::runtime::Runtime::new().unwrap();
    let results: Vec<serde_json::Value> = rt.block_on(async {
        let client = async_nats::connect(nats.url()).await.unwrap();
        let js = async_nats::jetstream::new(client);
        // The worker creates the stream and the buckets when it starts.
        let deadline = Instant::now() + Duration::from_secs(20);
        let kv = loop {
            if let (Ok(kv), Ok(_)) = (
                js.get_key_value("wfhost-results").await,
                js.get_stream("WFHOST_JOBS").await,
            ) {
                break kv;
            }
            assert!(
                Instant::now() < deadline,
                "the worker never set up the queue"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        for j in &jobs {
            js.publish("wfhost.jobs.claude.hostile", j.to_string().into())
                .await
                .unwrap()
                .await
                .unwrap();
        }
        let mut out = Vec::new();
        for j in &jobs {
            let id = j["id"].as_str().unwrap();
            let value = loop {
                if let Ok(Some(v)) = kv.get(id).await {
                    break v;
                }
                assert!(Instant::now() < deadline, "no result for {id}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            out.push(serde_json::from_slice(&value).unwrap());
        }
        out
    });
    worker.kill();
    let error = |r: &serde_json::Value| {
        r["outcome"]["Err"]["message"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    assert!(
        error(&results[0]).contains("does not define the agent type `evil`"),
        "{}",
        results[0]
    );
    assert!(
        error(&results[1])
            .contains("names `--dangerously-skip-permissions` as a tool, and it is not one"),
        "{}",
        results[1]
    );
    assert_eq!(
        results[2]["outcome"]["Ok"]["text"], "fine",
        "{}",
        results[2]
    );
    // A model that is not a model name is refused too.
    assert!(
        error(&results[3]).contains("is not a model name"),
        "{}",
        results[3]
    );
    assert_eq!(
        results[4]["outcome"]["Ok"]["text"], "fine",
        "{}",
        results[4]
    );
    let args = std::fs::read_to_string(&argv).unwrap();
    assert!(
        !args.contains("--dangerously")
            && !args.contains("--mcp-config")
            && !args.contains("--resume"),
        "a job's value reached claude's command line:\n{args}"
    );
    assert_eq!(
        args.matches("-p\n").count(),
        2,
        "claude ran twice (Explore, and the forged session afresh): {args}"
    );
}

/// A prompt or an answer larger than the server's `max_payload` fails once, at once, naming
/// the limit: the large prompt is never published, the large answer is paid for once (it was
/// made again about 20 times, holding every worker slot).
#[test]
fn payloads_over_the_servers_limit_fail_once_and_say_so() {
    let conf = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(conf.path(), "max_payload: 65536\n").unwrap();
    let Some(nats) = NatsServer::start_with(
        "payloads_over_the_servers_limit_fail_once_and_say_so",
        &["-c", conf.path().to_str().unwrap()],
    ) else {
        return;
    };
    let (api, _workers) = cluster(&nats, 0, 1, 4);
    let s = Project::new();
    s.file(
        "w.js",
        "export const meta = { name: 'large', description: 'payload limits' };\nconst r = await parallel(['small', 'huge answer [bigx100]', 'long prompt ' + 'y'.repeat(80000)].map(p => () => agent(p)));\nreturn r.map(x => x === null ? null : x.length);",
    );
    s.file("wfhost.toml", "model = \"claude-sonnet-4-5\"\n");
    let started = Instant::now();
    let report = report_of(
        host(
            &s,
            &nats,
            &["run", "w.js", "--yes", "--json", "--backend", "messages"],
        )
        .spawn(),
    );
    assert!(started.elapsed() < Duration::from_secs(30), "{report}");
    assert_eq!(report["usage"]["agents_failed"], 2, "{report}");
    let failures = report["failures"].to_string();
    assert!(
        failures.contains("the agent's answer is") && failures.contains("max_payload"),
        "{failures}"
    );
    assert!(failures.contains("this agent's job is"), "{failures}");
    assert_eq!(
        api.attempts("huge answer").len(),
        1,
        "the large answer was made again"
    );
    assert!(
        api.attempts("long prompt").is_empty(),
        "the large prompt was published"
    );
}

/// Whoever can write the results bucket cannot answer for an agent: a result with a cost that
/// is no cost is refused (a negative one switched `--max-cost` off), and with a shared results
/// key only a signed result is taken — a real worker's, signed, is.
#[test]
fn forged_results_are_refused() {
    let Some(nats) = NatsServer::start("forged_results_are_refused") else {
        return;
    };
    let s = Project::new();
    s.file(
        "w.js",
        "export const meta = { name: 'forged', description: 'a hostile bucket' };\nreturn await parallel(['a', 'b', 'c'].map(p => () => agent(p)));",
    );
    s.file("results.key", "a shared secret of some length\n");
    // The forger: takes the jobs off the queue and answers each in the results bucket.
    let forge = |url: String, signed_by: Option<&'static str>| {
        std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async move {
                use futures_util::StreamExt as _;
                let client = async_nats::connect(url).await.unwrap();
                let js = async_nats::jetstream::new(client);
                let deadline = Instant::now() + Duration::from_secs(20);
                let stream = loop {
                    if let Ok(s) = js.get_stream("WFHOST_JOBS").await {
                        break s;
                    }
                    assert!(Instant::now() < deadline);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                };
                let kv = js.get_key_value("wfhost-results").await.unwrap();
                let consumer = stream
                    .get_or_create_consumer(
                        "forger",
                        async_nats::jetstream::consumer::pull::Config {
                            durable_name: Some("forger".into()),
                            filter_subject: "wfhost.jobs.mock.>".into(),
                            ..Default::default()
                        },
                    )
                    .await
                    .unwrap();
                let mut msgs = consumer.messages().await.unwrap();
                for _ in 0..3 {
                    let m = msgs.next().await.unwrap().unwrap();
                    let job: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
                    let id = job["id"].as_str().unwrap().to_string();
                    let mut result = serde_json::json!({
                        "worker": "forger",
                        "job": id,
                        "outcome": {"Ok": {"text": "forged", "structured": null,
                            "usage": {"input_tokens": 1, "output_tokens": 1, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
                            "cost_usd": if signed_by.is_some() { 0.01 } else { -999.0 }, "note": null}},
                    });
                    if let Some(sig) = signed_by {
                        result["signature"] = sig.into();
                    }
                    kv.put(&id, result.to_string().into()).await.unwrap();
                    // Acked for sure before the consumer goes: a plain ack still in flight
                    // left the job in the work queue, for the next forger to take instead of
                    // one of its own run's (and that run then waited forever).
                    m.double_ack().await.unwrap();
                }
                // A work queue takes one consumer per subject: the worker's comes next.
                drop(msgs);
                stream.delete_consumer("forger").await.unwrap();
            });
        })
    };
    // No key: the negative cost is refused, and the run's cost never goes below zero.
    // Every agent failing ends the run with 65: the report all the same.
    let report_any = |run: std::process::Child| -> serde_json::Value {
        let out = run.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(stdout.lines().last().unwrap_or("{}")).unwrap()
    };
    let mock_run = |extra: &[&str]| {
        host(
            &s,
            &nats,
            &["run", "w.js", "--yes", "--json", "--backend", "mock"],
        )
        .args(extra)
        .spawn()
    };
    let forger = forge(nats.url(), None);
    let report = report_any(mock_run(&["--max-cost", "1"]));
    forger.join().unwrap();
    assert_eq!(report["usage"]["agents_failed"], 3, "{report}");
    assert!(
        report["failures"]
            .to_string()
            .contains("which is not a cost"),
        "{report}"
    );
    assert!(
        report["cost"]["total_usd"].as_f64().unwrap() >= 0.0,
        "{report}"
    );
    // With a key: a plausible but wrongly signed result is refused.
    let forger = forge(nats.url(), Some("00".repeat(32).leak()));
    let report = report_any(mock_run(&["--results-key-file", "results.key"]));
    forger.join().unwrap();
    assert_eq!(report["usage"]["agents_failed"], 3, "{report}");
    assert!(
        report["failures"].to_string().contains("sign"),
        "the refusal names the signature: {report}"
    );
    // A worker with the key: its signed results are taken.
    let _worker = Worker(
        wfhost([
            "worker",
            "--nats",
            &nats.url(),
            "--backend",
            "mock",
            "--name",
            "m1",
            "--results-key-file",
            s.path().join("results.key").to_str().unwrap(),
        ])
        .spawn(),
    );
    let report = report_of(mock_run(&["--results-key-file", "results.key"]));
    assert_eq!(report["usage"]["agents_done"], 3, "{report}");
}

/// Whoever can publish on NATS cannot abandon a call the run host waits for: a cancel must
/// carry the secret only the job's run host knows. A forger that cancels every job it sees
/// taken (`wfhost.progress.<job>`) is ignored — the worker says so — and each prompt is asked
/// once (the host waited a stall timeout, and paid twice).
#[test]
fn a_forged_cancel_is_ignored_and_each_call_is_paid_once() {
    let Some(nats) = NatsServer::start("a_forged_cancel_is_ignored_and_each_call_is_paid_once")
    else {
        return;
    };
    let (api, mut workers) = cluster(&nats, 1500, 1, 4);
    let s = Project::new();
    s.file(
        "w.js",
        "export const meta = { name: 'forged', description: 'forged cancels' };\nreturn await parallel(Array.from({ length: 4 }, (_, i) => () => agent('slow task ' + i)));",
    );
    s.file("wfhost.toml", "model = \"claude-sonnet-4-5\"\n");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let forged = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let url = nats.url();
    let count = forged.clone();
    rt.spawn(async move {
        use futures_util::StreamExt as _;
        let client = async_nats::connect(url).await.unwrap();
        let mut taken = client.subscribe("wfhost.progress.*").await.unwrap();
        let mut seen = std::collections::HashSet::new();
        while let Some(m) = taken.next().await {
            let job = m.subject.as_str().rsplit('.').next().unwrap().to_string();
            if seen.insert(job.clone()) {
                for payload in ["cancel", "", "0000"] {
                    client
                        .publish(format!("wfhost.cancel.{job}"), payload.into())
                        .await
                        .unwrap();
                }
                client.flush().await.unwrap();
                count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    });
    let out = host(
        &s,
        &nats,
        &["run", "w.js", "--yes", "--json", "--backend", "messages"],
    )
    .run();
    out.code(0);
    rt.shutdown_background();
    assert_eq!(
        out.report()["result"].as_array().map(Vec::len),
        Some(4),
        "{}",
        out.stdout
    );
    assert!(
        forged.load(std::sync::atomic::Ordering::Relaxed) >= 4,
        "the forger saw every job taken"
    );
    let counts = answered_counts(&api);
    assert_eq!(counts.len(), 4);
    assert!(
        counts.iter().all(|n| *n == 1),
        "each prompt once: {counts:?}"
    );
    let worker = &mut workers[0].0;
    let _ = worker.kill();
    let _ = worker.wait();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut worker.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("ignored a cancel of job"), "{stderr}");
}

/// Tools run on the worker, in its `--workdir`, under the same containment: the run host
/// has neither the files nor the key.
#[test]
fn a_workers_agents_use_tools_in_its_workdir() {
    let Some(nats) = NatsServer::start("a_workers_agents_use_tools_in_its_workdir") else {
        return;
    };
    let api = FakeApi::start(false);
    let workdir = tempfile::tempdir().unwrap();
    let workdir_path = std::fs::canonicalize(workdir.path()).unwrap();
    std::fs::write(workdir_path.join("only-here.txt"), "on the worker\n").unwrap();
    api.play(
        "remote",
        vec![vec![
            serde_json::json!({"name": "Read", "input": {"file_path": "only-here.txt"}}),
            serde_json::json!({"name": "Read", "input": {"file_path": "/etc/hostname"}}),
        ]],
    );
    let mut wf = wfhost([
        "worker",
        "--nats",
        &nats.url(),
        "--backend",
        "messages",
        "--name",
        "tooled",
        "--workdir",
    ])
    .arg(&workdir_path);
    for (k, v) in api.env() {
        wf = wf.env(k, v);
    }
    let _worker = Worker(wf.spawn());
    let s = Project::new();
    s.file(
        "w.js",
        "export const meta = { name: 'remote-tools', description: 'tools on a worker' };\nreturn await agent('[play:remote] read it');",
    );
    let out = host(
        &s,
        &nats,
        &["run", "w.js", "--yes", "--json", "--backend", "messages"],
    )
    .run();
    out.code(0);
    let text = out.report()["result"].as_str().unwrap().to_string();
    let results: Vec<serde_json::Value> =
        serde_json::from_str(text.strip_prefix("DONE ").unwrap()).unwrap();
    assert_eq!(results[0]["content"], "     1\ton the worker\n");
    assert_eq!(results[1]["is_error"], true, "{}", results[1]);
    assert!(
        results[1]["content"]
            .as_str()
            .unwrap()
            .contains(&format!("reach only `{}`", workdir_path.display())),
        "{}",
        results[1]
    );
}

/// A tool-using agent on a worker that dies in its third of five turns continues, on the
/// worker that takes the job next, from its last finished turn: the model is asked only for the
/// missing turns, and the command of turn 2 ran once (the turns bucket, executor::TURNS).
#[test]
fn a_dead_workers_agent_continues_turn_by_turn() {
    let Some(nats) = NatsServer::start("a_dead_workers_agent_continues_turn_by_turn") else {
        return;
    };
    let api = FakeApi::start(false);
    let workdir = worker_dir(&[
        ("a.txt", "a\n".into()),
        (
            "wfhost.toml",
            "[tools]\nallow = [\"Read\", \"Glob\", \"Bash\"]\n".into(),
        ),
    ]);
    let bash =
        |command: &str| vec![serde_json::json!({"name": "Bash", "input": {"command": command}})];
    api.play(
        "five",
        vec![
            vec![serde_json::json!({"name": "Read", "input": {"file_path": "a.txt"}})],
            bash("echo once >> log.txt"),
            bash("sleep 43"),
            vec![serde_json::json!({"name": "Read", "input": {"file_path": "log.txt"}})],
            vec![serde_json::json!({"name": "Glob", "input": {"pattern": "*.txt"}})],
        ],
    );
    let worker = |name: &str| {
        let mut wf = leased_worker(&nats, "messages", name, &workdir);
        for (k, v) in api.env() {
            wf = wf.env(k, v);
        }
        Worker(wf.spawn())
    };
    let mut first = worker("first");
    let s = Project::new();
    s.file(
        "w.js",
        "export const meta = { name: 'turns', description: 'turn by turn on a worker' };\nreturn await agent('[play:five] five turns');",
    );
    let run = host(
        &s,
        &nats,
        &["run", "w.js", "--yes", "--json", "--backend", "messages"],
    )
    .spawn();
    let start = Instant::now();
    while !api.play_turns("five").contains(&2) {
        assert!(start.elapsed().as_secs() < 60, "turn 3 never came");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Turn 3's command is running on the first worker: SIGKILL it.
    std::thread::sleep(Duration::from_millis(800));
    first.kill();
    let _second = worker("second");
    let report = report_of(run);
    // Only the missing turns (4, 5, and the answer) were asked for.
    assert_eq!(api.play_turns("five"), [0, 1, 2, 3, 4, 5], "{report}");
    assert_eq!(
        std::fs::read_to_string(workdir.join("log.txt")).unwrap(),
        "once\n",
        "turn 2's command ran once"
    );
    let text = report["result"].as_str().unwrap();
    let r: Vec<serde_json::Value> =
        serde_json::from_str(text.strip_prefix("DONE ").unwrap()).unwrap();
    assert_eq!(r.len(), 5, "{r:?}");
    assert_eq!(r[0]["content"], "     1\ta\n");
    assert!(
        r[2]["is_error"] == true && r[2]["content"].as_str().unwrap().contains("interrupted"),
        "the interrupted command is not run again: {}",
        r[2]
    );
    assert_eq!(r[3]["content"], "     1\tonce\n");
    let _ = std::fs::remove_dir_all(&workdir);
}

/// A `claude` agent (the real CLI against the fake API) on a worker that dies after the agent's
/// first turn continues its Claude Code session on the worker that takes the job next (the
/// same machine, where Claude Code keeps its sessions): the session came to the run host's
/// journal through the turns bucket as it began, the agent Claude Code was running died with
/// its worker, and the API sees the conversation go on, never the first turn asked again.
#[test]
fn a_dead_workers_claude_agent_continues_its_session() {
    let test = "a_dead_workers_claude_agent_continues_its_session";
    let Some(nats) = NatsServer::start(test) else {
        return;
    };
    let Some(claude) = super::backends::claude_binary() else {
        super::missing_tool(
            test,
            "Claude Code is not installed in ~/.cache/wfhost-claude",
        );
        return;
    };
    let api = FakeApi::start(false);
    // The worker's directory, and the home where its Claude Code keeps sessions.
    let workdir = worker_dir(&[
        ("notes.txt", "the secret is 4417\n".into()),
        (
            "wfhost.toml",
            format!(
                "[claude]\nbinary = \"{}\"\nmax_turns = 4\n",
                claude.display()
            ),
        ),
    ]);
    api.play(
        "cont",
        vec![vec![
            serde_json::json!({"name": "Read", "input": {"file_path": workdir.join("notes.txt")}}),
        ]],
    );
    api.seen.lock().unwrap().play_stall = Some(("cont".into(), 1));
    let worker = |name: &str| {
        let wf = leased_worker(&nats, "claude", name, &workdir);
        Worker(super::backends::claude_env(wf, &workdir, &api).spawn())
    };
    let mut first = worker("first");
    let s = Project::with_script("return await agent('[play:cont] read the notes');")
        .toml("model = \"claude-sonnet-4-5\"\n");
    let run = host(
        &s,
        &nats,
        &["run", "w.js", "--yes", "--json", "--backend", "claude"],
    )
    .spawn();
    wait_for(Duration::from_secs(60), "the agent's second turn", || {
        api.play_turns("cont").contains(&1)
    });
    // Once Claude Code has written the first turn to its session, and the session has reached
    // the run host's journal, the worker dies.
    super::backends::first_turn_saved(&workdir);
    let journal = || {
        std::fs::read_dir(s.path().join("runs"))
            .unwrap()
            .flatten()
            .find(|e| e.path().is_dir())
            .and_then(|e| std::fs::read_to_string(e.path().join("journal.jsonl")).ok())
            .unwrap_or_default()
    };
    wait_for(
        Duration::from_secs(20),
        "the session in the journal",
        || !super::backends::sessions_in(&journal()).is_empty(),
    );
    let session = super::backends::sessions_in(&journal())[0].clone();
    first.kill();
    // Claude Code died with its worker (nothing else runs with the worker's home now).
    wait_for(
        Duration::from_secs(10),
        "the dead worker's agent to end",
        || with_home(&workdir).is_empty(),
    );
    let mut second = worker("second");
    let last = super::backends::assert_continued(&api, &report_of(run));
    assert!(
        last["metadata"]["user_id"].to_string().contains(&session),
        "the continuation is sent in the journaled session {session}: {}",
        last["metadata"]
    );
    assert_eq!(
        super::backends::sessions_in(&journal()),
        vec![session.clone()],
        "the same session, continued"
    );
    second.kill();
    let mut log = String::new();
    std::io::Read::read_to_string(&mut second.0.stderr.take().unwrap(), &mut log).unwrap();
    assert!(
        log.contains(&format!("continued its interrupted session {session}")),
        "{log}"
    );
    let _ = std::fs::remove_dir_all(&workdir);
}

/// A worker's directory (kept: the test removes it) holding `files`.
fn worker_dir(files: &[(&str, String)]) -> std::path::PathBuf {
    let dir = std::fs::canonicalize(tempfile::tempdir().unwrap().keep()).unwrap();
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    dir
}

/// `wfhost worker` on `backend` in `workdir`, its lease short (2 s): a killed worker's call
/// goes to the next taker soon.
fn leased_worker(
    nats: &NatsServer,
    backend: &str,
    name: &str,
    workdir: &std::path::Path,
) -> super::Wf {
    wfhost([
        "worker",
        "--nats",
        &nats.url(),
        "--backend",
        backend,
        "--lease",
        "2s",
        "--grace",
        "5s",
        "--name",
        name,
        "--workdir",
    ])
    .arg(workdir)
}

/// The processes whose `HOME` is `home`.
fn with_home(home: &std::path::Path) -> Vec<u32> {
    let want = format!("HOME={}", home.display());
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|var| var == want.as_bytes()))
        })
        .collect()
}

/// `--backend openai:MODEL` on a worker as on the others: its API key and endpoint live on the
/// worker; the run host has none.
#[test]
fn an_openai_worker_serves_a_run_host_without_a_key() {
    let Some(nats) = NatsServer::start("an_openai_worker_serves_a_run_host_without_a_key") else {
        return;
    };
    let api = FakeApi::start(false);
    let mut wf = wfhost([
        "worker",
        "--nats",
        &nats.url(),
        "--backend",
        "openai:test-model",
        "--name",
        "gpt",
    ]);
    for (k, v) in api.openai_env() {
        wf = wf.env(k, v);
    }
    let _worker = Worker(wf.spawn());
    let s =
        Project::with_script("return await parallel([() => agent('one'), () => agent('two')]);");
    let out = host(
        &s,
        &nats,
        &[
            "run",
            "w.js",
            "--yes",
            "--json",
            "--backend",
            "openai:test-model",
        ],
    )
    .run();
    out.code(0);
    let r = out.report();
    assert_eq!(r["result"], serde_json::json!(["R(one)", "R(two)"]), "{r}");
    let seen = api.seen.lock().unwrap();
    assert!(
        seen.bodies.iter().all(|b| b["model"] == "test-model"),
        "the worker asked its own endpoint"
    );
    assert_eq!(seen.answered.len(), 2);
}
