//! The script API through the real binary and the mock backend.

use super::{Project, run_script};
use serde_json::json;

#[test]
fn hello_world_and_logs_reach_the_host() {
    let (report, out) = run_script(
        "log('hello'); console.log('a', 1, {b: 2}); console.warn('careful'); return 'world';",
        &[],
    );
    out.code(0);
    assert_eq!(report["outcome"], "completed");
    assert_eq!(report["result"], "world");
    assert_eq!(
        report["logs"],
        json!(["hello", "a 1 {\"b\":2}", "[warn] careful"])
    );
}

#[test]
fn human_output_streams_logs_and_prints_the_result() {
    let s = Project::new();
    s.file("w.js", "export const meta = { name: 'greet', description: 'says hi' };\nlog('hi there');\nreturn { n: await agent('count') };");
    let out = s.wf(["run", "w.js", "--backend", "mock", "--yes"]).run();
    out.code(0);
    assert!(
        out.stderr.contains("▶ greet — says hi (backend: mock)"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("│ hi there"), "{}", out.stderr);
    assert!(out.stderr.contains("✓ completed"), "{}", out.stderr);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out.stdout).unwrap(),
        json!({"n": "R(count)"})
    );
}

#[test]
fn concurrency_is_bounded_and_used() {
    let (report, out) = run_script(
        "const r = await parallel(Array.from({length: 40}, (_, i) => () => agent(`c${i} [delay=300]`))); return r.length;",
        &["--concurrency", "16"],
    );
    out.code(0);
    assert_eq!(report["result"], 40);
    assert_eq!(report["backend_stats"]["max_in_flight"], 16, "{report}");
    // 40 agents at 16 at a time is 3 waves of 300 ms; allow generous slack for loaded CI.
    let ms = report["duration_ms"].as_u64().unwrap();
    assert!((850..3000).contains(&ms), "3 waves of 300 ms took {ms} ms");
}

#[test]
fn agent_cap_is_enforced() {
    let (report, out) = run_script(
        "const r = await parallel(Array.from({length: 12}, (_, i) => () => agent(`a${i}`)));\n\
         let after; try { await agent('x'); } catch (e) { after = e.name; }\n\
         return { nulls: r.filter(x => x === null).length, after };",
        &["--max-agents", "10"],
    );
    out.code(0);
    assert_eq!(
        report["result"],
        json!({"nulls": 2, "after": "WorkflowAgentCapError"})
    );
    assert_eq!(report["agents"], 10);
}

#[test]
fn fan_out_limit_is_an_error_not_truncation() {
    let (report, _) = run_script(
        "try { await parallel(Array.from({length: 4097}, () => () => 1)); } catch (e) { return String(e); }",
        &[],
    );
    assert_eq!(
        report["result"],
        "RangeError: parallel() got 4097 items; the limit is 4096 per call. Split the work into batches of at most 4096."
    );
    let (report, _) = run_script(
        "try { await pipeline(new Array(5000).fill(1), x => x); } catch (e) { return e.name; }",
        &[],
    );
    assert_eq!(report["result"], "RangeError");
}

#[test]
fn budget_is_a_hard_ceiling() {
    // Each mock answer "R(budget step N)" is 16 characters = 4 output tokens.
    let (report, out) = run_script(
        "const got = [];\n\
         for (let i = 0; i < 10; i++) { try { await agent(`budget step ${i}`); got.push(budget.spent()); } catch (e) { got.push(e.name); break; } }\n\
         return { got, total: budget.total, remaining: budget.remaining() };",
        &["--budget-tokens", "12"],
    );
    out.code(0);
    assert_eq!(
        report["result"],
        json!({"got": [4, 8, 12, "WorkflowBudgetError"], "total": 12, "remaining": 0})
    );
    assert_eq!(report["agents"], 3);
}

#[test]
fn schema_agents_return_objects_and_bad_schemas_throw_before_starting() {
    let (report, _) = run_script(
        "const s = { type: 'object', properties: { n: { type: 'integer' } }, required: ['n'] };\n\
         const ok = await agent('count [json={\"n\": 3}]', { schema: s });\n\
         let wrong; try { await agent('count [json={\"n\": \"three\"}]', { schema: s, label: 'bad' }); } catch (e) { wrong = String(e); }\n\
         let thrown; try { await agent('x', { schema: { type: 'array' } }); } catch (e) { thrown = String(e); }\n\
         return { ok, wrong, thrown };",
        &[],
    );
    assert_eq!(report["result"]["ok"], json!({"n": 3}));
    assert_eq!(
        report["result"]["wrong"],
        "Error: agent({schema}): subagent completed without calling StructuredOutput (after in-conversation nudge)",
        "a schema never met rejects, as on the reference: {report}"
    );
    assert!(
        report["result"]["thrown"]
            .as_str()
            .unwrap()
            .starts_with("TelemetrySafeError: agent({schema}) received an unusable JSON Schema")
    );
    assert_eq!(
        report["agents"], 3,
        "the refused call counts, as on the reference; it never reaches the backend"
    );
    let failure = report["failures"][0]["error"].as_str().unwrap();
    assert!(
        failure.starts_with("agent({schema}): subagent completed"),
        "{failure}"
    );
    assert_eq!(
        report["backend_stats"]["calls"], 7,
        "one call, then the first answer and its 5 re-asks: {report}"
    );
}

#[test]
fn timers_deadlocks_and_unhandled_rejections() {
    let (report, _) = run_script(
        "const order = []; setTimeout(() => order.push('b'), 30); const t = setTimeout(() => order.push('never'), 10); clearTimeout(t);\n\
         await new Promise(r => setTimeout(r, 60)); order.push('c'); return order;",
        &[],
    );
    assert_eq!(report["result"], json!(["b", "c"]));
    let (report, out) = run_script("await new Promise(() => {}); return 1;", &[]);
    out.code(65);
    assert!(
        report["error"]
            .as_str()
            .unwrap()
            .starts_with("workflow deadlock"),
        "{report}"
    );
    let (report, out) = run_script("Promise.reject(new Error('lost')); return 1;", &[]);
    out.code(65);
    assert!(
        report["error"]
            .as_str()
            .unwrap()
            .starts_with("unhandled promise rejection: Error: lost"),
        "{report}"
    );
}

#[test]
fn results_must_be_json() {
    let (report, out) = run_script("return { f: () => 1 };", &[]);
    out.code(65);
    assert!(
        report["error"]
            .as_str()
            .unwrap()
            .contains("result.f is a function"),
        "{report}"
    );
}

#[test]
fn errors_carry_the_script_stack() {
    let (report, _) = run_script(
        "function inner() { throw new Error('deep'); }\ninner();",
        &[],
    );
    assert_eq!(report["error"], "Error: deep");
    assert!(
        report["stack"].as_str().unwrap().contains("inner"),
        "{report}"
    );
}

#[test]
fn no_backend_is_a_clear_error() {
    let s = Project::new();
    s.file(
        "w.js",
        "export const meta = { name: 'a', description: 'b' };\nreturn 1;",
    );
    let out = s
        .wf(["run", "w.js", "--yes"])
        .env("PATH", "/usr/bin:/bin")
        .env_remove("ANTHROPIC_API_KEY")
        .run();
    assert_ne!(out.code, 0);
    assert!(
        out.stderr
            .starts_with("error: no agent backend is available"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("`--backend mock` is a dry run"),
        "{}",
        out.stderr
    );
}

#[test]
fn ci_without_yes_is_refused() {
    let s = Project::new();
    s.file(
        "w.js",
        "export const meta = { name: 'a', description: 'b' };\nreturn 1;",
    );
    let out = s.wf(["run", "w.js", "--backend", "mock"]).run();
    out.code(77);
    assert!(
        out.stderr.contains("needs approval") && out.stderr.contains("--yes"),
        "{}",
        out.stderr
    );
}

/// `pipeline()` has no barrier between stages: an item moves on as soon as its own stage ends.
#[test]
fn pipeline_has_no_barrier() {
    let (report, out) = run_script(
        "const order = [];\n\
         const res = await pipeline(['a [delay=300]', 'b [delay=50]'],\n\
           (item, _, i) => agent('s1 ' + item).then(r => { order.push('s1-end ' + i); return r; }),\n\
           (prev, item, i) => { order.push('s2-start ' + i); return agent(`s2 ${i} [delay=${i === 0 ? 10 : 500}]`).then(r => { order.push('s2-end ' + i); return r; }); });\n\
         return { res, order };",
        &[],
    );
    out.code(0);
    assert_eq!(
        report["result"],
        json!({
            "res": ["R(s2 0 [delay=10])", "R(s2 1 [delay=500])"],
            "order": ["s1-end 1", "s2-start 1", "s1-end 0", "s2-start 0", "s2-end 0", "s2-end 1"]
        })
    );
}

#[test]
fn unreadable_inputs_are_usage_errors() {
    let s = Project::new();
    s.file(
        "w.js",
        "export const meta = { name: 'a', description: 'b' };\nreturn 1;",
    );
    let missing = s.wf(["run", "nope.js", "--backend", "mock", "--yes"]).run();
    missing.code(2);
    assert!(
        missing.stderr.starts_with("error: cannot read `nope.js`")
            && missing.stderr.contains("hint: check the path"),
        "{}",
        missing.stderr
    );
    let args = s
        .wf([
            "run",
            "w.js",
            "--backend",
            "mock",
            "--yes",
            "--args-file",
            "missing.json",
        ])
        .run();
    args.code(2);
    let dir = s.wf(["run", ".", "--backend", "mock", "--yes"]).run();
    dir.code(2);
    assert!(dir.stderr.contains("not a directory"), "{}", dir.stderr);
}

/// Loud partial failure: the report and the final lines say how many agents failed and why,
/// grouped by error; `--max-failed-agents N` stops a run whose failures pass N, as failed.
#[test]
fn partial_failures_are_loud_and_can_end_the_run() {
    let s = super::Project::new();
    s.file(
        "w.js",
        "export const meta = { name: 't', description: 'partial' };\nconst out = [];\nfor (const [p, label] of [['one', 'one'], ['bad [fail]', 'two'], ['bad [fail]', 'three'], ['four', 'four']]) out.push(await agent(p, { label }));\nreturn out;",
    );
    let run = |extra: &[&str]| {
        s.wf(["run", "w.js", "--backend", "mock", "--yes"])
            .args(extra)
            .run()
    };
    let out = run(&["--json"]);
    out.code(0);
    let r = out.report();
    assert_eq!(r["failures"][0]["count"], 2, "{r}");
    assert_eq!(
        r["failures"][0]["agents"],
        serde_json::json!(["two", "three"])
    );
    let human = run(&[]);
    human.code(0);
    assert!(
        human.stderr.contains("2 agent(s) failed:\n  2× ") && human.stderr.contains("(two, three)"),
        "{}",
        human.stderr
    );
    assert!(
        human.stderr.contains("⚠ completed"),
        "never a plain ✓: {}",
        human.stderr
    );
    let stopped = run(&["--json", "--max-failed-agents", "1"]);
    stopped.code(65);
    let r = stopped.report();
    assert!(
        r["error"].as_str().unwrap().contains("--max-failed-agents"),
        "{r}"
    );
    assert_eq!(r["agents"], 3, "the fourth agent never started: {r}");
}

/// `wfhost plan`: on scripts with a loop, a pipeline, a nested `workflow()` and schema agents,
/// the projected agent counts equal a real mock run's, and the projected input tokens are what
/// the mock run reports plus the framing (the same characters ÷ 4). Nothing runs on a backend.
#[test]
fn plan_projects_the_agents_and_tokens_a_mock_run_spends() {
    let s = Project::new();
    s.file(
        ".wfhost/workflows/child.js",
        "export const meta = { name: 'child', description: 'nested' };\nreturn await agent('child work on ' + JSON.stringify(args));\n",
    );
    s.file(
        "w.js",
        "export const meta = { name: 'planned', description: 'plan probe', phases: [{ title: 'Loop' }, { title: 'Pipe' }, { title: 'Nest' }] };\n\
         phase('Loop');\n\
         let n = 0;\n\
         while (n < 4) { const r = await agent(`step ${n} of the loop, with some words to count`, { schema: { type: 'object', properties: { done: { type: 'boolean' } } } }); n++; if (!r) break; }\n\
         phase('Pipe');\n\
         const piped = await pipeline(['a', 'b', 'c'], (x) => agent(`draft ${x}`), (d) => agent(`review: ${d}`));\n\
         phase('Nest');\n\
         const nested = await workflow('child', { k: 1 });\n\
         return { n, piped: piped.length, nested: !!nested };\n",
    );
    let plan = s.wf(["plan", "w.js", "--json"]).run();
    plan.code(0);
    let plan: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    let run = s
        .wf([
            "run",
            "w.js",
            "--backend",
            "mock",
            "--yes",
            "--json",
            "--no-journal",
        ])
        .run();
    let run = run.report();
    assert_eq!(plan["total"]["agents"], run["agents"], "{plan}\n{run}");
    assert_eq!(plan["total"]["agents"], 11);
    assert_eq!(plan["phases"]["Loop"]["agents"], 4);
    assert_eq!(plan["phases"]["Pipe"]["agents"], 6);
    // The child workflow's agent belongs to no phase of the parent's.
    assert_eq!(plan["phases"]["(no phase)"]["agents"], 1, "{plan}");
    // The mock model counts a prompt's characters ÷ 4, as the estimate does: the projection is
    // exactly that plus the framing each agent gets.
    let projected = plan["total"]["input_tokens"].as_u64().unwrap();
    let spent = run["usage"]["input_tokens"].as_u64().unwrap();
    assert_eq!(
        projected,
        spent + 11 * wfhost::testing::FRAMING_TOKENS,
        "projected {projected} input tokens, the mock run spent {spent}"
    );
    assert!(
        plan["total"]["output_tokens_low"].as_u64() < plan["total"]["output_tokens_high"].as_u64()
    );

    // A loop that never converges stops at the cap, and the plan says so.
    s.file(
        "forever.js",
        "export const meta = { name: 'forever', description: 'never stops' };\nwhile (true) { await agent('again'); }\n",
    );
    let out = s.wf(["plan", "forever.js", "--max-agents", "20"]).run();
    out.code(0);
    assert!(
        out.stdout.contains("20 agents") && out.stdout.contains("agent cap (20)"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("the same prompt is sent 20 times"),
        "{}",
        out.stdout
    );
}

/// `--max-tokens` counts input and output of every agent (`--budget-tokens` counts output
/// only): once reached, new agents are refused with a budget error naming the flag.
#[test]
fn max_tokens_counts_input_and_output() {
    let (report, out) = run_script(
        "const got = []; let refused;\n\
         for (let i = 0; i < 10; i++) { try { got.push(await agent(`step ${i}: a prompt of about forty characters`)); } catch (e) { refused = String(e); break; } }\n\
         return { answered: got.length, refused };",
        &["--max-tokens", "60"],
    );
    let r = &report["result"];
    let refused = r["refused"]
        .as_str()
        .unwrap_or_else(|| panic!("{report}\n{}", out.stderr));
    assert!(
        refused.starts_with("WorkflowBudgetError: the token ceiling is reached")
            && refused.contains("--max-tokens"),
        "{refused}"
    );
    let answered = r["answered"].as_u64().unwrap();
    assert!((1..10).contains(&answered), "{report}");
    let used = report["usage"]["input_tokens"].as_u64().unwrap()
        + report["usage"]["output_tokens"].as_u64().unwrap();
    assert!(
        used >= 60,
        "stopped only once the ceiling was reached: {used}"
    );
    assert_eq!(
        report["ceilings"]["limits"]["max_tokens"], 60,
        "stored with the run, for resume"
    );
}

/// `meta.phases[].model` (a wfhost extension): the default model of that phase's agents unless
/// `agent({model})` names one; `plan` shows the split and prices each at its model.
#[test]
fn a_phase_model_is_the_default_of_its_agents() {
    let s = Project::new();
    s.file("wfhost.toml", "model = \"claude-sonnet-4-5\"\n");
    s.file(
        "w.js",
        "export const meta = { name: 'phased', description: 'models per phase', phases: [{ title: 'Cheap', model: 'claude-haiku-4-5' }, { title: 'Deep' }] };\n\
         phase('Cheap');\n\
         await parallel([1, 2, 3].map(i => () => agent(`skim ${i}`)));\n\
         await agent('skim, but well', { model: 'claude-opus-4-1' });\n\
         phase('Deep');\n\
         return await agent('think hard');\n",
    );
    let plan = s.wf(["plan", "w.js", "--json"]).run();
    plan.code(0);
    let plan: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    assert_eq!(
        plan["models"],
        json!({"claude-haiku-4-5": 3, "claude-opus-4-1": 1, "claude-sonnet-4-5": 1}),
        "{plan}"
    );
    let events = s.path().join("events.jsonl");
    let run = s
        .wf([
            "run",
            "w.js",
            "--backend",
            "mock",
            "--yes",
            "--json",
            "--no-journal",
            "--events",
        ])
        .arg(&events)
        .run();
    run.code(0);
    let started: Vec<String> = std::fs::read_to_string(&events)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["type"] == "agent_started")
        .map(|e| {
            e["model"]
                .as_str()
                .unwrap_or("(backend default)")
                .to_string()
        })
        .collect();
    assert_eq!(
        started.iter().filter(|m| *m == "claude-haiku-4-5").count(),
        3,
        "{started:?}"
    );
    assert!(
        started.contains(&"claude-opus-4-1".to_string()),
        "{started:?}"
    );
}

/// A misused `parallel()` throws the reference's message and nothing more (scripts read it);
/// which entry was wrong goes to the run's own log (its events, its stderr), not to the
/// script's narrator lines.
#[test]
fn misuse_detail_goes_to_the_runs_log_not_the_message() {
    let events = tempfile::NamedTempFile::new().unwrap();
    let (r, out) = run_script(
        "try { await parallel([() => 1, 'oops']); } catch (e) { return e.message; }",
        &["--events", events.path().to_str().unwrap()],
    );
    assert_eq!(
        r["result"],
        "parallel() expects an array of functions, not promises. Wrap each call: () => agent(...)"
    );
    assert_eq!(r["logs"], json!([]), "not a narrator line: {r}");
    let logged: Vec<serde_json::Value> = std::fs::read_to_string(events.path())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|e: &serde_json::Value| e["type"] == "log")
        .collect();
    assert!(
        logged
            .iter()
            .any(|e| e["text"] == "parallel(): entry 1 is string, not a function"),
        "{logged:?}\n{}",
        out.stderr
    );
}
