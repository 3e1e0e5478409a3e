//! Agents on many machines: `wfhost run --executor nats://…` and `wfhost worker`, against a real
//! `nats-server -js` on a free loopback port (a temporary store) and the fake Messages API. The
//! run host has no API key; the workers do.

use super::fake_api::FakeApi;
use super::{Scratch, wfhost};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A real nats-server with JetStream, stopped on drop.
struct NatsServer {
    child: Child,
    port: u16,
    store: tempfile::TempDir,
}

impl NatsServer {
    fn start(test: &str) -> Option<NatsServer> {
        let bin = ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists());
        let Some(bin) = bin else {
            super::missing_tool(test, "`nats-server` is not installed");
            return None;
        };
        let store = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut s = NatsServer {
            child: Command::new(bin).arg("--version").spawn().unwrap(),
            port,
            store,
        };
        let _ = s.child.wait();
        s.child = s.spawn(bin);
        Some(s)
    }

    fn spawn(&self, bin: &str) -> Child {
        let child = Command::new(bin)
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(self.store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        child
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
fn project() -> Scratch {
    let s = Scratch::new();
    s.file(
        "w.js",
        "export const meta = { name: 'spread', description: 'many machines' };\nphase('Fan');\nconst r = await parallel(Array.from({ length: 60 }, (_, i) => () => agent('task ' + i)));\nreturn r;",
    );
    s.file("wfhost.toml", "model = \"claude-sonnet-4-5\"\n");
    s
}

/// `wfhost run` (or `resume`) on the nats executor; the run host gets no API key.
fn host(s: &Scratch, nats: &NatsServer, args: &[&str]) -> super::Wf {
    wfhost(args)
        .args(["--executor", &nats.url(), "--concurrency", "12"])
        .dir(s.path())
        .env("WFHOST_RUNS_DIR", s.path().join("runs"))
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
    let api = FakeApi::start(false);
    api.seen.lock().unwrap().first_token = Duration::from_millis(50);
    let _workers: Vec<Worker> = (1..=3)
        .map(|i| Worker::start(&nats, &api, &format!("w{i}"), 4))
        .collect();
    let s = project();
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
    let mut local = wfhost(["run", "w.js", "--yes", "--json", "--backend", "messages"])
        .dir(s.path())
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
    let api = FakeApi::start(false);
    api.seen.lock().unwrap().first_token = Duration::from_millis(300);
    let mut workers: Vec<Worker> = (1..=3)
        .map(|i| Worker::start(&nats, &api, &format!("w{i}"), 4))
        .collect();
    let s = project();
    let run = host(
        &s,
        &nats,
        &["run", "w.js", "--yes", "--json", "--backend", "messages"],
    )
    .spawn();
    // Once some agents have finished, SIGKILL a worker that holds others.
    let deadline = Instant::now() + Duration::from_secs(20);
    while api.seen.lock().unwrap().answered.len() < 10 {
        assert!(Instant::now() < deadline, "the run never got going");
        std::thread::sleep(Duration::from_millis(20));
    }
    workers[0].kill();
    let out = run.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
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
    let api = FakeApi::start(false);
    api.seen.lock().unwrap().first_token = Duration::from_millis(300);
    let _workers: Vec<Worker> = (1..=2)
        .map(|i| Worker::start(&nats, &api, &format!("w{i}"), 6))
        .collect();
    let s = project();
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
    let deadline = Instant::now() + Duration::from_secs(20);
    while api.seen.lock().unwrap().answered.len() < 15 {
        assert!(Instant::now() < deadline, "the run never got going");
        std::thread::sleep(Duration::from_millis(20));
    }
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
