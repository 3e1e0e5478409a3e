//! Hostile scripts and modules: each is contained with a clear error, the host stays healthy
//! (it still writes its report and exits with the documented code).

use super::{Project, run_script};

fn failed_with(body: &str, extra: &[&str], needle: &str) -> serde_json::Value {
    let (report, out) = run_script(body, extra);
    out.code(65);
    assert_eq!(report["outcome"], "failed", "{report}");
    let error = report["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(needle),
        "error should mention {needle:?}: {error}"
    );
    report
}

#[test]
fn infinite_loop_is_stopped_by_the_cpu_limit() {
    failed_with(
        "log('spinning'); while (true) {}",
        &["--cpu-timeout", "1s"],
        "--cpu-timeout",
    );
}

#[test]
fn cpu_limit_counts_only_synchronous_time() {
    // 3 × 600 ms of waiting on agents is not CPU time: a 1 s limit must not fire.
    let (report, out) = run_script(
        "for (let i = 0; i < 3; i++) await agent(`wait ${i} [delay=600]`); return 'ok';",
        &["--cpu-timeout", "1s"],
    );
    out.code(0);
    assert_eq!(report["result"], "ok");
}

#[test]
fn memory_bomb_is_stopped_by_the_memory_limit() {
    failed_with(
        "const hog = []; while (true) hog.push('x'.repeat(1 << 20) + hog.length);",
        &["--max-memory", "64MiB"],
        "--max-memory",
    );
}

#[test]
fn deep_recursion_fails_the_run_cleanly() {
    // QuickJS on WASI has no catchable stack check: even a try/catch cannot keep the run alive,
    // but the host names the problem and stays healthy.
    let report = failed_with(
        "function f(n) { return f(n + 1) + 1; }\ntry { f(0); } catch (e) { return 'caught'; }",
        &[],
        "RangeError: Maximum call stack size exceeded",
    );
    assert!(
        report["error"].as_str().unwrap().len() < 300,
        "no wasm backtrace in the message: {report}"
    );
    // Recursion that is merely deep (10 000 frames) works.
    let (report, out) = run_script(
        "function f(n) { return n === 0 ? 0 : f(n - 1) + 1; }\nreturn f(10000);",
        &[],
    );
    out.code(0);
    assert_eq!(report["result"], 10000);
}

#[test]
fn no_way_out_through_globals() {
    failed_with(
        "Javy.IO.readSync(3, new Uint8Array(16));",
        &[],
        "Javy is not defined",
    );
    failed_with("require('fs');", &[], "require is not defined");
    failed_with(
        "await fetch('http://127.0.0.1:9/');",
        &[],
        "fetch is not defined",
    );
    failed_with("process.env.HOME;", &[], "process is not defined");
    failed_with(
        "new WebAssembly.Module(new Uint8Array(8));",
        &[],
        "WebAssembly is not defined",
    );
}

#[test]
fn imports_are_rejected_before_running() {
    for body in [
        "import fs from 'fs';",
        "const fs = await import('fs');",
        "export const x = 1;",
    ] {
        let (report, out) = run_script(body, &[]);
        out.code(65);
        assert_eq!(report["outcome"], "rejected", "{body}: {report}");
        assert_eq!(report["agents"], 0);
        let error = report["error"].as_str().unwrap();
        assert!(
            error.starts_with("Workflow script has a syntax error and was not launched:"),
            "{error}"
        );
        assert!(error.contains("w.js:2:"), "location missing: {error}");
    }
}

#[test]
fn flooding_the_log_is_stopped() {
    failed_with(
        "for (;;) console.log('x'.repeat(1 << 20));",
        &[],
        "--max-output-bytes",
    );
    // The old flag is an alias of the ledger's limit.
    failed_with(
        "for (;;) console.log('x'.repeat(1 << 10));",
        &["--max-log-bytes", "64KiB"],
        "more than 64.0 KiB of output",
    );
    failed_with(
        "for (;;) log('line');",
        &["--max-log-lines", "1000"],
        "--max-log-lines",
    );
}

#[test]
fn no_clock_and_no_randomness() {
    failed_with(
        "return Date.now();",
        &[],
        "Date.now() / new Date() are unavailable",
    );
    failed_with("return Math.random();", &[], "Math.random() is unavailable");
    failed_with(
        "return (function(){}).constructor('return 1')();",
        &[],
        "EvalError",
    );
    let (report, _) = run_script("return new Date(0).toISOString();", &[]);
    assert_eq!(report["result"], "1970-01-01T00:00:00.000Z");
}

/// A module that imports `wasi_snapshot_preview1::NAME` and exports `_start`.
fn module_importing(name: &str) -> Vec<u8> {
    use wasm_encoder::ValType;
    module_with_import(
        "wasi_snapshot_preview1",
        name,
        &[ValType::I32; 9],
        &[ValType::I32],
    )
}

/// A module that imports one function of the given type and exports an empty `_start`.
fn module_with_import(
    module: &str,
    name: &str,
    params: &[wasm_encoder::ValType],
    results: &[wasm_encoder::ValType],
) -> Vec<u8> {
    use wasm_encoder::*;
    let mut types = TypeSection::new();
    types
        .ty()
        .function(params.iter().copied(), results.iter().copied());
    types.ty().function([], []);
    let mut imports = ImportSection::new();
    imports.import(module, name, EntityType::Function(0));
    let mut funcs = FunctionSection::new();
    funcs.function(1);
    let mut exports = ExportSection::new();
    exports.export("_start", ExportKind::Func, 1);
    let mut code = CodeSection::new();
    let mut f = Function::new([]);
    f.instruction(&Instruction::End);
    code.function(&f);
    let mut m = Module::new();
    m.section(&types)
        .section(&imports)
        .section(&funcs)
        .section(&exports)
        .section(&code);
    m.finish()
}

#[test]
fn modules_with_forbidden_imports_are_refused_by_name() {
    let s = Project::new();
    for name in ["path_open", "sock_accept"] {
        s.file("evil.wasm", module_importing(name));
        let out = s
            .wf(["run", "evil.wasm", "--backend", "mock", "--yes"])
            .run();
        out.code(77);
        assert!(
            out.stderr
                .contains(&format!("`wasi_snapshot_preview1::{name}`"))
                && out.stderr.contains("refused"),
            "{}",
            out.stderr
        );
        let audit = s.wf(["audit", "evil.wasm"]).run();
        audit.code(77);
        assert!(
            audit
                .stdout
                .contains(&format!("REFUSED  wasi_snapshot_preview1::{name}")),
            "{}",
            audit.stdout
        );
    }
}

/// Every byte a script makes the host keep is charged to one ledger: `phase()` titles and agent
/// labels too. (2,000 titles of 10 KiB under a 1 KiB limit used to complete with exit 0 and
/// write 20 MiB to the journal.)
#[test]
fn phase_titles_and_labels_are_charged_to_the_output_ledger() {
    for body in [
        "for (let i = 0; i < 2000; i++) phase('p'.repeat(10240) + i);\nreturn 'done';",
        "const r = [];\nfor (let i = 0; i < 200; i++) r.push(await agent('hi ' + i, { label: 'l'.repeat(10240) + i }));\nreturn r.length;",
    ] {
        let s = Project::new();
        s.file(
            "w.js",
            format!("export const meta = {{ name: 't', description: 'flood' }};\n{body}"),
        );
        let out = s
            .wf([
                "run",
                "w.js",
                "--backend",
                "mock",
                "--json",
                "--yes",
                "--max-log-bytes",
                "1KiB",
            ])
            .run();
        out.code(65);
        let report = out.report();
        let error = report["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("more than 1.0 KiB of output") && error.contains("--max-output-bytes"),
            "{error}"
        );
        let runs = s.path().join(".wfhost/runs");
        let run = std::fs::read_dir(&runs)
            .unwrap()
            .flatten()
            .find(|e| e.path().is_dir());
        let journal = run.unwrap().path().join("journal.jsonl");
        let size = std::fs::metadata(&journal).unwrap().len();
        assert!(size < 4096, "the journal grew to {size} bytes");
    }
}

/// A run-level wall-clock limit: a script that keeps itself alive with a self-re-arming timer
/// (never spending 30 s of CPU at once) is stopped by `--timeout`, naming it.
#[test]
fn a_script_that_keeps_itself_alive_is_stopped_by_the_timeout() {
    let started = std::time::Instant::now();
    let report = failed_with(
        "function tick() { setTimeout(tick, 5); }\ntick();\nawait new Promise(() => {});",
        &["--timeout", "1s"],
        "--timeout",
    );
    assert!(
        report["error"]
            .as_str()
            .unwrap()
            .contains("took longer than 1s"),
        "{report}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}

/// A script past the size limit is refused before compiling, with a hint (a 100 MB script used
/// to end in "wasm trap: unreachable").
#[test]
fn an_oversized_script_is_refused_before_compiling() {
    let (report, out) = run_script(
        &format!("const s = '{}';\nreturn 1;", "x".repeat(5 << 20)),
        &[],
    );
    out.code(65);
    assert_eq!(report["outcome"], "rejected");
    let error = report["error"].as_str().unwrap();
    assert!(
        error.contains("too large") && error.contains("hint: a workflow script is code"),
        "{error}"
    );
}

/// Host memory is bounded too: the host copies every prompt it queues, so one prompt has a size
/// limit and the prompts held at once have another; both reach the script as errors naming the
/// flag (40 agents of 10 MB used to hold 550 MB of host memory).
#[test]
fn prompts_held_by_the_host_are_bounded() {
    let (report, out) = run_script(
        "try { await agent('x'.repeat(2 << 20)); } catch (e) { return String(e); }",
        &["--max-prompt-bytes", "1MiB"],
    );
    out.code(0);
    assert!(
        report["result"]
            .as_str()
            .unwrap()
            .contains("--max-prompt-bytes"),
        "{report}"
    );
    let (report, out) = run_script(
        "const big = 'x'.repeat(2 << 20);\nconst rs = await parallel(Array.from({ length: 40 }, (_, i) => () => agent(big + i + ' [delay=300]')));\nreturn rs.filter(r => r !== null).length;",
        &["--max-queued-bytes", "16MiB", "--concurrency", "16"],
    );
    out.code(0);
    let answered = report["result"].as_u64().unwrap();
    assert!((1..40).contains(&answered), "{report}");
    let logs = report["logs"].to_string();
    assert!(logs.contains("--max-queued-bytes"), "{logs}");
}

/// JSON nested deeper than 128 levels is named as such: in `--args` (it arrived as a string)
/// and in a result (it was "a malformed outcome").
#[test]
fn deep_json_is_named_not_mangled() {
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let s = Project::new();
    s.file(
        "w.js",
        "export const meta = { name: 't', description: 'deep' };\nreturn typeof args;",
    );
    let out = s
        .wf(["run", "w.js", "--backend", "mock", "--yes", "--args", &deep])
        .run();
    out.code(2);
    assert!(
        out.stderr.contains("nested deeper than 128 levels"),
        "{}",
        out.stderr
    );
    let report = failed_with(
        "let v = [];\nfor (let i = 0; i < 200; i++) v = [v];\nreturn v;",
        &[],
        "nested deeper than 128 levels",
    );
    assert!(
        !report["error"].as_str().unwrap().contains("malformed"),
        "{report}"
    );
    // A cyclic result names the cycle (it overflowed the stack: "recursed too deeply").
    failed_with(
        "const a = { list: [] };\na.list.push({ back: a });\nreturn a;",
        &[],
        "result.list[0].back refers back to an object that contains it (a cycle)",
    );
}

/// A module importing an allowed name with the wrong type could never link: `audit` says so
/// (it used to report it as allowed) and `run` refuses it before instantiation, saying why.
#[test]
fn an_allowed_name_with_the_wrong_type_is_refused_with_the_reason() {
    let module = module_with_import(
        "wfhost_plugin_v1",
        "invoke",
        &[wasm_encoder::ValType::I32],
        &[],
    );
    let s = Project::new();
    s.file("odd.wasm", module);
    let audit = s.wf(["audit", "odd.wasm"]).run();
    audit.code(77);
    assert!(
        audit.stdout.contains("REFUSED  wfhost_plugin_v1::invoke — its type is `(i32) -> ()`, but wfhost provides `(i32, i32, i32, i32, i32) -> ()`"),
        "{}",
        audit.stdout
    );
    let run = s
        .wf(["run", "odd.wasm", "--backend", "mock", "--yes"])
        .run();
    run.code(77);
    assert!(run.stderr.contains("it could not link"), "{}", run.stderr);
}

/// A script that breaks the capability protocol — here, a string past the 64 MiB the host
/// reads in one call — fails as the script's fault (65), not as an internal error (70).
#[test]
fn a_string_past_its_cap_is_the_scripts_fault() {
    failed_with(
        "log('x'.repeat(65 << 20));\nreturn 1;",
        &[],
        "larger than the 64 MiB allowed",
    );
}
