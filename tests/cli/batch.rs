//! `--batch`: agents through the Message Batches API, against the fake API's batch endpoints
//! (fake_batches): the same answers as live at half the price, a killed run resumed onto its
//! pending batch, failed and expired requests sent again, `stop` cancelling the batch.

use super::fake_api::FakeApi;
use super::{Project, wait_for};
use serde_json::Value;
use std::time::Duration;

const TOML: &str = "model = \"claude-sonnet-4-5\"\n";

/// 11 text agents and one schema agent, in one fan-out.
const TWELVE: &str = "const schema = { type: 'object', properties: { verdict: { type: 'string' } }, required: ['verdict'] };
const texts = Array.from({ length: 11 }, (_, i) => () => agent('Summarise chapter ' + i));
return await parallel([...texts, () => agent('Judge the book', { schema })]);";

fn wf_messages(p: &Project, api: &FakeApi, args: &[&str]) -> super::Wf {
    let mut wf = p.wf(args);
    for (k, v) in api.env() {
        wf = wf.env(k, v);
    }
    wf
}

fn run(p: &Project, api: &FakeApi, extra: &[&str]) -> Value {
    let out = wf_messages(
        p,
        api,
        &["run", "w.js", "--yes", "--json", "--backend", "messages"],
    )
    .args(extra)
    .run();
    out.code(0);
    out.report()
}

/// The run's id (the project's only run).
fn only_run(p: &Project) -> Option<String> {
    std::fs::read_dir(p.runs())
        .ok()?
        .filter_map(Result::ok)
        .find(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
}

fn batches(api: &FakeApi) -> Vec<(String, usize, bool)> {
    let seen = api.seen.lock().unwrap();
    seen.batches
        .list
        .iter()
        .map(|b| (b.id.clone(), b.requests.len(), b.canceled))
        .collect()
}

fn polls(api: &FakeApi, id: &str) -> u32 {
    api.seen
        .lock()
        .unwrap()
        .batches
        .polls
        .get(id)
        .copied()
        .unwrap_or(0)
}

/// A batched run of `p`'s script (with `extra` flags) against `api`, which holds its batch
/// `in_progress`: the process, and the run's id once the batch has been polled (and so
/// journaled).
fn held_batch_run(p: &Project, api: &FakeApi, extra: &[&str]) -> (std::process::Child, String) {
    api.seen.lock().unwrap().batches.hold = true;
    let child = wf_messages(
        p,
        api,
        &["run", "w.js", "--yes", "--backend", "messages", "--batch"],
    )
    .args(extra)
    .spawn();
    wait_for(Duration::from_secs(30), "the batch is polled", || {
        batches(api)
            .first()
            .is_some_and(|(id, _, _)| polls(api, id) >= 1)
    });
    (child, only_run(p).unwrap())
}

/// Lets the fake end its batches, resumes the run and returns its report, every agent answered.
fn resume_released(p: &Project, api: &FakeApi, id: &str) -> Value {
    api.seen.lock().unwrap().batches.hold = false;
    let out = wf_messages(p, api, &["resume", id, "--yes", "--json"]).run();
    out.code(0);
    let report = out.report();
    assert!(
        report["result"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| !r.is_null()),
        "{report}"
    );
    report
}

#[test]
fn twelve_agents_go_out_as_one_batch_at_half_the_live_price() {
    let live_api = FakeApi::start(false);
    let live = run(&Project::with_script(TWELVE).toml(TOML), &live_api, &[]);
    assert_eq!(live_api.requests(), 12, "the live run asked 12 times");

    let api = FakeApi::start(true);
    let p = Project::with_script(TWELVE).toml(TOML);
    let batched = run(&p, &api, &["--batch"]);
    assert_eq!(api.requests(), 0, "no live /v1/messages call: {batched}");
    let sent = batches(&api);
    assert_eq!(sent.len(), 1, "one batch: {sent:?}");
    assert_eq!(sent[0].1, 12);
    assert_eq!(
        batched["result"], live["result"],
        "the same answers as live"
    );
    assert!(batched["result"][11]["verdict"].is_string(), "{batched}");
    assert_eq!(
        batched["usage"]["input_tokens"],
        live["usage"]["input_tokens"]
    );
    assert_eq!(
        batched["usage"]["output_tokens"],
        live["usage"]["output_tokens"]
    );
    let (live_cost, batch_cost) = (
        live["cost"]["total_usd"].as_f64().unwrap(),
        batched["cost"]["total_usd"].as_f64().unwrap(),
    );
    assert!(live_cost > 0.0, "{live}");
    assert!(
        // The report's costs are rounded to a millionth of a dollar.
        (batch_cost - live_cost / 2.0).abs() <= 1e-6,
        "batched {batch_cost} is half of live {live_cost}"
    );
    assert_eq!(batched["backend_stats"]["batches"], 1, "{batched}");
    // Every request's params are a Messages request, not streamed, with its agent's key.
    let seen = api.seen.lock().unwrap();
    for (custom_id, _, params) in &seen.batches.list[0].requests {
        assert!(params.get("stream").is_none(), "{params}");
        assert_eq!(params["model"], "claude-sonnet-4-5");
        assert!(
            custom_id.len() <= 64 && custom_id.ends_with("-0"),
            "{custom_id}"
        );
    }
    drop(seen);

    // The journal names the batch; `runs show` says it was batched.
    let id = only_run(&p).unwrap();
    let journal = std::fs::read_to_string(p.runs().join(&id).join("journal.jsonl")).unwrap();
    assert!(
        journal.contains(&format!("\"id\":\"{}\"", sent[0].0)),
        "{journal}"
    );

    // `plan --batch` projects the batch price: half of the live plan's.
    let plan = |extra: &[&str]| -> Value {
        let out = wf_messages(
            &p,
            &api,
            &["plan", "w.js", "--json", "--backend", "messages"],
        )
        .args(extra)
        .run();
        out.code(0);
        serde_json::from_str(&out.stdout).unwrap()
    };
    let (full, half) = (plan(&[]), plan(&["--batch"]));
    assert_eq!(half["batch"], true, "{half}");
    for k in ["cost_low", "cost_high"] {
        let (f, h) = (
            full["total"][k].as_f64().unwrap(),
            half["total"][k].as_f64().unwrap(),
        );
        assert!(f > 0.0 && (h - f / 2.0).abs() < 1e-12, "{k}: {h} vs {f}");
    }
}

/// SIGKILL while the batch is `in_progress`: the resume polls the same batch and finishes,
/// with no second batch and no live call. Meanwhile `status` says where the batch stands.
#[test]
fn a_run_killed_while_its_batch_is_pending_resumes_onto_it() {
    let api = FakeApi::start(false);
    let p = Project::with_script(TWELVE).toml(TOML);
    let (mut child, id) = held_batch_run(&p, &api, &[]);
    let show = wf_messages(&p, &api, &["runs", "show", &id]).run();
    show.code(0);
    assert!(
        show.stdout
            .contains("in batch msgbatch_fake0001 — 0 of 12 done"),
        "{}{}",
        show.stdout,
        show.stderr
    );
    let json = wf_messages(&p, &api, &["runs", "show", &id, "--json"]).run();
    let v: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["batches"][0]["id"], "msgbatch_fake0001", "{v}");
    assert_eq!(v["batches"][0]["total"], 12, "{v}");
    child.kill().unwrap();
    child.wait().unwrap();

    let report = resume_released(&p, &api, &id);
    assert_eq!(report["result"].as_array().unwrap().len(), 12, "{report}");
    assert_eq!(batches(&api).len(), 1, "no second batch");
    assert_eq!(api.requests(), 0, "no live call");
    assert!(
        polls(&api, "msgbatch_fake0001") >= 2,
        "the resume polled the same batch"
    );
    let answered = api.seen.lock().unwrap().batches.answered();
    assert_eq!(answered.len(), 12);
    assert!(answered.values().all(|n| *n == 1), "{answered:?}");
}

/// A request that errors (`api_error`) and one that expires are sent again in the next batch;
/// one refused for good (`invalid_request_error`) fails its agent with the API's message. The
/// run completes, and says what happened.
#[test]
fn failed_and_expired_requests_go_out_again() {
    let api = FakeApi::start(false);
    let p = Project::with_script(
        "return await parallel(['a [failx1]', 'b [expirex1]', 'c', 'd [400]'].map(x => () => agent(x)));",
    )
    .toml(TOML);
    let events = p.path().join("events.jsonl");
    let report = run(&p, &api, &["--batch", "--events", events.to_str().unwrap()]);
    let result = report["result"].as_array().unwrap();
    assert_eq!(result[0], "R(a [failx1])", "{report}");
    assert_eq!(result[1], "R(b [expirex1])", "{report}");
    assert_eq!(result[2], "R(c)");
    assert!(result[3].is_null(), "{report}");
    let sent = batches(&api);
    assert_eq!(
        sent.len(),
        2,
        "the first batch, then the two sent again: {sent:?}"
    );
    assert_eq!((sent[0].1, sent[1].1), (4, 2), "{sent:?}");
    assert_eq!(api.requests(), 0, "no live call");
    let failures = report["failures"].to_string();
    assert!(
        failures.contains("invalid_request_error forced failure"),
        "{failures}"
    );
    let events = std::fs::read_to_string(events).unwrap();
    assert!(
        events.contains("errored: api_error Internal server error in batch msgbatch_fake0001; sent again in the next batch"),
        "{events}"
    );
    assert!(
        events.contains(
            "expired (not answered within the API's 24 hours) in batch msgbatch_fake0001"
        )
    );
    assert!(
        events.contains(r#""type":"batch""#),
        "batch events: {events}"
    );
}

/// `wfhost stop` while the batch is pending cancels it (the API sees the cancel), and the run
/// resumes: the cancelled requests go out in a new batch, each agent answered once.
#[test]
fn stop_cancels_the_batch_and_the_run_resumes() {
    let api = FakeApi::start(false);
    let p = Project::with_script(TWELVE).toml(TOML);
    let (child, id) = held_batch_run(&p, &api, &[]);
    wf_messages(&p, &api, &["stop", &id]).run().code(0);
    let out = child.wait_with_output().unwrap();
    assert!(
        batches(&api)[0].2,
        "the batch was cancelled; stderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    resume_released(&p, &api, &id);
    let sent = batches(&api);
    assert_eq!(
        sent.len(),
        2,
        "the cancelled requests went out again: {sent:?}"
    );
    assert_eq!(api.requests(), 0, "no live call");
    let answered = api.seen.lock().unwrap().batches.answered();
    assert_eq!(answered.len(), 12);
    assert!(answered.values().all(|n| *n == 1), "{answered:?}");
}

/// `--batch` is the `messages` backend's: on another it is refused before anything runs.
#[test]
fn batch_needs_the_messages_backend() {
    let p = Project::with_script("return 1;");
    let out = p
        .wf(["run", "w.js", "--yes", "--backend", "mock", "--batch"])
        .run();
    out.code(2);
    assert!(
        out.stderr.contains("`--batch`") && out.stderr.contains("--backend messages"),
        "{}",
        out.stderr
    );
}

/// CPU seconds (user + system) of this process's waited-for children so far.
fn children_cpu() -> f64 {
    // SAFETY: getrusage fills the struct it is given; RUSAGE_CHILDREN has no other effect.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &raw mut u) };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

/// Not a test: `just bench-batch` runs it and writes bench/RESULTS-batch.md. A 200-agent
/// fan-out live and through one batch: what it costs (the price table's Sonnet), how long it
/// takes against the fake API (a batch there ends at once, so the time is the host's and its
/// first poll), and the host's CPU per agent.
#[test]
#[ignore = "a benchmark: `just bench-batch` runs it"]
fn bench_batch() {
    const FAN_OUT: &str = "return (await parallel(Array.from({ length: 200 }, (_, i) => () => agent('Summarise section ' + i + ' of the report in two sentences.')))).filter(Boolean).length;";
    let mut rows = Vec::new();
    for (name, extra) in [("live", &[][..]), ("--batch", &["--batch"][..])] {
        let api = FakeApi::start(false);
        let p = Project::with_script(FAN_OUT).toml(TOML);
        let cpu = children_cpu();
        let r = run(&p, &api, extra);
        let cpu = children_cpu() - cpu;
        assert_eq!(r["result"], 200, "{r}");
        rows.push(format!(
            "| {name} | {} | ${:.4} | {} | {:.0} ms | {:.2} ms |",
            api.requests() + batches(&api).len(),
            r["cost"]["total_usd"].as_f64().unwrap(),
            r["usage"]["input_tokens"].as_u64().unwrap()
                + r["usage"]["output_tokens"].as_u64().unwrap(),
            r["timings"]["run_ms"].as_f64().unwrap(),
            cpu * 1000.0 / 200.0,
        ));
    }
    let text = format!(
        "# Batch benchmark (issue 29)\n\n`just bench-batch` (an ignored test in tests/cli/batch.rs, against the suite's fake Messages API and its Message Batches endpoints; a batch there ends at once, so the batched run's time is the gathering window, the first poll a second later and the results).\n\n| run | HTTP requests to create/answer | cost | tokens | run time | wfhost CPU per agent |\n|---|---|---|---|---|---|\n{}\n",
        rows.join("\n")
    );
    println!("{text}");
    std::fs::write(super::repo().join("bench/RESULTS-batch.md"), text).unwrap();
}

/// `agent kill` on a batched agent makes it `null` at once (its failure is journaled while the
/// batch is still pending); the batch goes on for the others.
#[test]
fn a_killed_batched_agent_is_null_at_once() {
    let api = FakeApi::start(false);
    let p = Project::with_script(
        "return await parallel(['first', 'second', 'third'].map(x => () => agent(x)));",
    )
    .toml(TOML);
    let (child, id) = held_batch_run(&p, &api, &["--json"]);
    wf_messages(&p, &api, &["agent", "kill", &id, "1"])
        .run()
        .code(0);
    wait_for(
        Duration::from_secs(10),
        "the killed agent's failure is journaled",
        || {
            std::fs::read_to_string(p.runs().join(&id).join("journal.jsonl"))
                .is_ok_and(|j| j.contains(r#""type":"failed""#))
        },
    );
    assert!(!batches(&api)[0].2, "the batch goes on for the others");
    api.seen.lock().unwrap().batches.hold = false;
    let out = child.wait_with_output().unwrap();
    let report: Value = serde_json::from_str(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap_or_default(),
    )
    .unwrap();
    assert_eq!(report["result"][0], Value::Null, "{report}");
    assert_eq!(report["result"][1], "R(second)", "{report}");
    assert_eq!(report["result"][2], "R(third)", "{report}");
}
