//! The `openai` backend against the fake API's OpenAI-compatible endpoint (tests/cli/
//! fake_openai.rs) on loopback: plain, schema, streamed and whole answers; tools; faults; a
//! server without `json_schema`.

use super::Project;
use super::fake_api::FakeApi;
use serde_json::{Value, json};

/// `wfhost run w.js --backend openai:test-model --yes --json EXTRA…` against `api`.
fn run(p: &Project, api: &FakeApi, extra: &[&str]) -> super::Out {
    let mut wf = p
        .wf([
            "run",
            "w.js",
            "--backend",
            "openai:test-model",
            "--yes",
            "--json",
        ])
        .args(extra);
    for (k, v) in api.openai_env() {
        wf = wf.env(k, v);
    }
    wf.run()
}

const SCHEMA: &str = "{ type: 'object', properties: { verdict: { type: 'string' }, score: { type: 'integer' } }, required: ['verdict', 'score'] }";

fn plain_and_schema() -> String {
    format!(
        "const schema = {SCHEMA};\nreturn await parallel([() => agent('say hello'), () => agent('judge it', {{ schema }}), () => agent('judge again', {{ schema, model: 'other-model' }})]);"
    )
}

fn check_plain_and_schema(r: &Value) {
    let result = r["result"].as_array().unwrap_or_else(|| panic!("{r}"));
    assert_eq!(result[0], "R(say hello)", "{r}");
    for answer in &result[1..] {
        assert!(
            answer["verdict"].is_string() && answer["score"].is_i64(),
            "a schema answer, validated: {r}"
        );
    }
    assert_eq!(r["backend"], "openai", "{r}");
}

#[test]
fn plain_and_schema_answers_streamed_and_whole() {
    let api = FakeApi::start(false);
    let p = Project::with_script(&plain_and_schema());
    let events = p.path().join("events.jsonl");
    let out = run(&p, &api, &["--events", events.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let r = out.report();
    check_plain_and_schema(&r);
    // No price for these models: their cost is said to be unknown, once per model.
    let unpriced: Vec<String> = std::fs::read_to_string(&events)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["type"] == "log")
        .filter_map(|e| e["text"].as_str().map(str::to_owned))
        .filter(|t| t.starts_with("no price for model"))
        .collect();
    assert_eq!(unpriced.len(), 2, "{unpriced:?}");
    assert!(
        unpriced[0].contains("set [prices.")
            && unpriced.iter().any(|t| t.contains("`other-model`")),
        "{unpriced:?}"
    );
    assert_eq!(r["cost"]["total_usd"], 0.0);
    assert_eq!(
        r["cost"]["unpriced_models"],
        json!(["other-model", "test-model"]),
        "{r}"
    );
    // What went out: streamed with usage asked for, the model named, the schema as a
    // json_schema response format.
    {
        let seen = api.seen.lock().unwrap();
        let judged = seen
            .bodies
            .iter()
            .find(|b| {
                b["messages"][1]["content"]
                    .as_str()
                    .unwrap_or("")
                    .contains("judge it")
            })
            .unwrap();
        assert_eq!(judged["stream"], true);
        assert_eq!(judged["stream_options"]["include_usage"], true);
        assert_eq!(judged["model"], "test-model");
        assert_eq!(judged["response_format"]["type"], "json_schema");
        assert!(
            seen.bodies.iter().any(|b| b["model"] == "other-model"),
            "agent(p, {{model}}) wins"
        );
        assert!(
            seen.answered.values().all(|n| *n == 1),
            "{:?}",
            seen.answered
        );
    }
    // Usage came back (from the stream's last chunk) and reached the report.
    assert!(
        r["usage"]["output_tokens"].as_u64().unwrap_or(0) > 0,
        "usage: {r}"
    );

    // The same, without streaming, and with a price for the model: the cost is counted.
    let api = FakeApi::start(false);
    let p = Project::with_script(&plain_and_schema())
        .toml("[openai]\nstream = false\n[prices.\"test-model\"]\ninput = 1.0\noutput = 2.0\n");
    let out = run(&p, &api, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let r = out.report();
    check_plain_and_schema(&r);
    assert!(
        api.seen
            .lock()
            .unwrap()
            .bodies
            .iter()
            .all(|b| b.get("stream").is_none()),
        "not streamed"
    );
    assert!(r["usage"]["input_tokens"].as_u64().unwrap_or(0) > 0, "{r}");
    assert!(
        r["cost"]["total_usd"].as_f64().unwrap() > 0.0,
        "priced: {r}"
    );
    assert_eq!(r["cost"]["unpriced_models"], json!(["other-model"]), "{r}");
}

/// 429 with retry-after, 500s and a stream broken off before `[DONE]`: each agent is answered
/// exactly once, over HTTPS (the fake's own CA through `SSL_CERT_FILE`).
#[test]
fn faults_are_retried_and_each_agent_answered_once() {
    let api = FakeApi::start(true);
    let p = Project::with_script(
        "return await parallel([() => agent('a [429x1]'), () => agent('b [500x2]'), () => agent('c [dropx1]'), () => agent('d')]);",
    );
    let out = run(&p, &api, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let r = out.report();
    assert_eq!(
        r["result"],
        json!(["R(a [429x1])", "R(b [500x2])", "R(c [dropx1])", "R(d)"]),
        "{r}"
    );
    let seen = api.seen.lock().unwrap();
    assert_eq!(seen.attempts["a [429x1]"].len(), 2);
    assert_eq!(seen.attempts["b [500x2]"].len(), 3);
    assert_eq!(seen.attempts["c [dropx1]"].len(), 2);
    assert!(
        seen.answered.values().all(|n| *n == 1),
        "answered once each: {:?}",
        seen.answered
    );
    assert!(
        seen.http2 > 0,
        "HTTPS goes over the shared HTTP/2 connection"
    );
    drop(seen);
    assert_eq!(r["backend_stats"]["retries"], 4, "{r}");
    // A refused request is not retried, and says what the server said.
    let p = Project::with_script("return await agent('no [400]');");
    let out = run(&p, &api, &[]);
    let r = out.report();
    assert_eq!(r["result"], Value::Null, "{r}");
    assert!(
        r["logs"][0]
            .as_str()
            .unwrap_or_default()
            .contains("API Error: 400 forced failure"),
        "{r}"
    );
}

/// A server that refuses `response_format: json_schema` (some local servers): the schema agent
/// is asked again through a forced `StructuredOutput` function, and so are the run's later
/// ones; the answer is valid.
#[test]
fn a_server_without_json_schema_gets_the_function_fallback() {
    let api = FakeApi::start(false);
    api.seen.lock().unwrap().refuse_json_schema = true;
    let p = Project::with_script(&format!(
        "const schema = {SCHEMA};\nconst first = await agent('judge one', {{ schema }});\nconst second = await agent('judge two', {{ schema }});\nreturn [first, second];"
    ));
    let out = run(&p, &api, &[]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let r = out.report();
    for a in r["result"].as_array().unwrap() {
        assert!(a["verdict"].is_string() && a["score"].is_i64(), "{r}");
    }
    assert_eq!(r["backend_stats"]["structured"], "tool", "{r}");
    let seen = api.seen.lock().unwrap();
    let refused = seen
        .bodies
        .iter()
        .filter(|b| b["response_format"]["type"] == "json_schema")
        .count();
    assert_eq!(refused, 1, "refused once, then never asked that way again");
    // JSON mode, by configuration: the schema in the prompt, a fenced answer, validated.
    drop(seen);
    let api = FakeApi::start(false);
    let p = Project::with_script(&format!(
        "const schema = {SCHEMA};\nreturn await agent('judge', {{ schema }});"
    ))
    .toml("[openai]\nstructured = \"json_object\"\n");
    let out = run(&p, &api, &[]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let r = out.report();
    assert!(r["result"]["verdict"].is_string(), "{r}");
    assert_eq!(
        api.seen.lock().unwrap().bodies[0]["response_format"]["type"],
        "json_object"
    );
}

/// A tool-using agent: two reads of one turn (parallel tool calls), then a grep; the answer
/// carries what the tools returned; a path outside the project is refused by the host, as on
/// `messages`.
#[test]
fn an_agent_uses_tools_in_parallel_and_stays_contained() {
    let api = FakeApi::start(false);
    let p = Project::with_script("return await agent('[play:look] look around');");
    p.file("src/lib.rs", "fn alpha() {}\n");
    p.file("notes.md", "alpha and beta\n");
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "TOP-SECRET").unwrap();
    let secret = outside.path().join("secret.txt");
    api.play(
        "look",
        vec![
            vec![
                json!({"name": "Read", "input": {"file_path": "src/lib.rs"}}),
                json!({"name": "Read", "input": {"file_path": "notes.md"}}),
            ],
            vec![
                json!({"name": "Grep", "input": {"pattern": "beta"}}),
                json!({"name": "Read", "input": {"file_path": secret}}),
            ],
        ],
    );
    let out = run(&p, &api, &["--tools", "Read,Grep"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let r = out.report();
    let text = r["result"].as_str().unwrap_or_else(|| panic!("{r}"));
    let results: Vec<Value> = serde_json::from_str(text.strip_prefix("DONE ").unwrap()).unwrap();
    assert_eq!(results.len(), 4, "{results:?}");
    assert_eq!(results[0]["content"], "     1\tfn alpha() {}\n");
    assert_eq!(results[1]["content"], "     1\talpha and beta\n");
    assert!(
        results[2]["content"].as_str().unwrap().contains("notes.md"),
        "{}",
        results[2]
    );
    assert_eq!(results[3]["is_error"], true, "{}", results[3]);
    assert!(
        !results[3]["content"]
            .as_str()
            .unwrap()
            .contains("TOP-SECRET"),
        "{}",
        results[3]
    );
    assert_eq!(api.play_turns("look"), [0, 1, 2]);
    assert_eq!(api.play_tools("look"), ["Read", "Grep"]);
    // The first turn's two calls went out as one assistant message, their results as two
    // `role: "tool"` messages.
    let seen = api.seen.lock().unwrap();
    let second = &seen.bodies[1]["messages"];
    let assistant = second
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "assistant")
        .unwrap();
    assert_eq!(assistant["tool_calls"].as_array().unwrap().len(), 2);
    assert_eq!(
        second
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["role"] == "tool")
            .count(),
        2
    );
}

/// No model anywhere: the backend says how to name one.
#[test]
fn a_model_is_required_and_the_error_says_where() {
    let api = FakeApi::start(false);
    let p = Project::with_script("return await agent('x');");
    let mut wf = p.wf(["run", "w.js", "--backend", "openai", "--yes", "--json"]);
    for (k, v) in api.openai_env() {
        wf = wf.env(k, v);
    }
    let out = wf.run();
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("the `openai` backend needs a model")
            && out.stderr.contains("--backend openai:MODEL"),
        "{}",
        out.stderr
    );
}

/// Not a test: a benchmark that needs the suite's fake API, so it lives here, ignored;
/// `just bench-openai` runs it. 5,000 instant agents over the openai backend (TLS + HTTP/2,
/// streamed) against the same on the mock backend: the run time of each (best of three), as a
/// `BENCH openai-vs-mock` line. The target: openai ÷ mock ≤ 1.5, as for `messages`.
#[test]
#[ignore = "a benchmark: `just bench-openai` runs it"]
fn bench_openai_backend_against_mock() {
    // The same server as `bench_messages_backend_against_mock`'s: no bodies kept, its thread
    // `SCHED_BATCH` (a server on another machine must not preempt the wfhost measured here).
    let api = FakeApi::serve(super::fake_api::Serve {
        tls: true,
        bench: true,
        ..super::fake_api::Serve::default()
    });
    let p = Project::with_script(
        "const n = 5000, out = [];\nfor (let b = 0; b < n; b += 4000) out.push(...await parallel(Array.from({ length: Math.min(4000, n - b) }, (_, i) => () => agent('m' + (b + i)))));\nreturn out.length;",
    )
    .toml(&std::env::var("BENCH_TOML").unwrap_or_default());
    let best = |backend: &str| {
        (0..3)
            .map(|_| {
                let mut wf = p
                    .wf(["run", "w.js", "--yes", "--json", "--backend", backend])
                    .args([
                        "--concurrency",
                        "16",
                        "--no-journal",
                        "--max-agents",
                        "5000",
                    ]);
                for (k, v) in api.openai_env() {
                    wf = wf.env(k, v);
                }
                let r = wf.run().report();
                assert_eq!(r["result"], 5000, "{r}");
                r["timings"]["run_ms"].as_f64().unwrap()
            })
            .fold(f64::INFINITY, f64::min)
    };
    // CPU of wfhost (the children) and of the fake server (this process), per run.
    let cpu = |who: libc::c_int| {
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        unsafe { libc::getrusage(who, &raw mut usage) };
        let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        (secs(usage.ru_utime) + secs(usage.ru_stime)) * 1000.0
    };
    let (c0, s0) = (cpu(libc::RUSAGE_CHILDREN), cpu(libc::RUSAGE_SELF));
    let mock = best("mock");
    let (c1, s1) = (cpu(libc::RUSAGE_CHILDREN), cpu(libc::RUSAGE_SELF));
    let openai = best("openai:bench-model");
    let (c2, s2) = (cpu(libc::RUSAGE_CHILDREN), cpu(libc::RUSAGE_SELF));
    println!(
        "BENCH openai-vs-mock {openai:.1} {mock:.1} ratio {:.2}",
        openai / mock
    );
    // One connection per run is the shared HTTP/2 connection working.
    let (connections, http2) = {
        let seen = api.seen.lock().unwrap();
        (seen.connections, seen.http2)
    };
    println!("BENCH openai-connections {connections} http2-requests {http2}");
    println!(
        "BENCH openai-vs-mock-cpu wfhost {:.1} {:.1} server {:.1} {:.1}",
        (c2 - c1) / 3.0,
        (c1 - c0) / 3.0,
        (s2 - s1) / 3.0,
        (s1 - s0) / 3.0
    );
}
