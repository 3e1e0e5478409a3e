//! What a new user hits in the first hour (issue "The first hour"): each through the real
//! binary — a JSON typo in `--args`, the first wave over HTTP/1.1, progress in plain output,
//! closed pipes, connection errors, `plan` on `claude`, run references, flags that mislead.

use super::fake_api::FakeApi;
use super::{Project, wfhost};
use std::io::BufRead as _;
use std::time::{Duration, Instant};

fn script(body: &str) -> Project {
    let s = Project::new();
    s.file(
        "w.js",
        format!("export const meta = {{ name: 'first-hour', description: 'a new user' }};\n{body}"),
    );
    s
}

#[test]
fn args_that_look_like_json_but_do_not_parse_are_a_usage_error() {
    let s = script("return args;");
    let out = s
        .wf([
            "run",
            "w.js",
            "--backend",
            "mock",
            "--yes",
            "--args",
            r#"{"files": ["a.rs",]}"#,
        ])
        .run();
    out.code(2);
    assert!(
        out.stderr
            .contains("the args look like JSON but do not parse")
            && out.stderr.contains("line 1, column 19")
            && out.stderr.contains("hint:"),
        "{}",
        out.stderr
    );
    // The same from a file, on the second line.
    s.file("args.json", "{\n  \"files\": [\"a.rs\" \"b.rs\"]\n}\n");
    let out = s
        .wf([
            "run",
            "w.js",
            "--backend",
            "mock",
            "--yes",
            "--args-file",
            "args.json",
        ])
        .run();
    out.code(2);
    assert!(out.stderr.contains("at line 2"), "{}", out.stderr);
    // Text that is not meant as JSON still arrives as a string.
    let out = s
        .wf([
            "run",
            "w.js",
            "--backend",
            "mock",
            "--yes",
            "--json",
            "--args",
            "just words",
        ])
        .run();
    out.code(0);
    assert_eq!(out.report()["result"], "just words");
}

/// 8 agents whose answers take 1 s each, at concurrency 8, over `http://`: together, not one
/// after another (they took 8 s when the first request held the others until it answered).
#[test]
fn the_first_wave_over_http1_goes_out_together() {
    let api = FakeApi::start(false);
    api.seen.lock().unwrap().first_token = Duration::from_secs(1);
    let s = script(
        "return (await parallel(Array.from({length: 8}, (_, i) => () => agent('wave ' + i)))).length;",
    );
    s.file("wfhost.toml", "model = \"claude-sonnet-4-5\"\n");
    let mut wf = s.wf([
        "run",
        "w.js",
        "--yes",
        "--json",
        "--backend",
        "messages",
        "--concurrency",
        "8",
    ]);
    for (k, v) in api.env() {
        wf = wf.env(k, v);
    }
    let started = Instant::now();
    let out = wf.run();
    let took = started.elapsed();
    out.code(0);
    assert_eq!(out.report()["result"], 8);
    assert!(
        took < Duration::from_secs(3),
        "8 agents of 1 s at concurrency 8 took {took:?}"
    );
}

/// In a pipe (CI), agents finishing show up as they finish, not only at the end.
#[test]
fn plain_output_shows_agents_as_they_finish() {
    let s = script(
        "phase('Work');\nreturn await parallel([300, 1500, 3000].map(ms => () => agent(`task ${ms} [delay=${ms}]`, {label: 'task ' + ms})));",
    );
    let mut child = s
        .wf([
            "run",
            "w.js",
            "--backend",
            "mock",
            "--yes",
            "--concurrency",
            "3",
        ])
        .spawn();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let started = Instant::now();
    let mut lines = Vec::new();
    for line in stderr.lines() {
        lines.push((started.elapsed(), line.unwrap()));
    }
    child.wait().unwrap();
    let ended = started.elapsed();
    let first = lines
        .iter()
        .find(|(_, l)| l.contains("✓ task 300"))
        .unwrap_or_else(|| panic!("no progress line for `task 300`: {lines:?}"));
    assert!(
        first.1.contains("1 done") && first.1.contains("2 running"),
        "{lines:?}"
    );
    // Printed while the other two were still running, long before the end.
    assert!(
        ended.saturating_sub(first.0) > Duration::from_millis(1500),
        "the first progress line came at {:?}, the run ended at {ended:?}",
        first.0
    );
    assert!(
        lines.iter().any(|(_, l)| l.contains("✓ task 1500")),
        "{lines:?}"
    );
}

/// `wfhost runs | head -1` and `wfhost logs --json | head -c 1`: the reader goes away, and
/// wfhost ends quietly (0, or SIGPIPE as `cat` does), never a panic (101) or exit 70.
#[test]
fn a_closed_pipe_ends_commands_quietly() {
    let s = script(
        "return (await parallel(Array.from({length: 400}, (_, i) => () => agent('agent ' + i)))).length;",
    );
    let runs = s.path().join("runs");
    let out = s
        .wf(["run", "w.js", "--backend", "mock", "--yes", "--quiet"])
        .env("WFHOST_RUNS_DIR", &runs)
        .run();
    out.code(0);
    // A large history: the run's directory copied under 300 more ids.
    let id = std::fs::read_dir(&runs)
        .unwrap()
        .map(|e| e.unwrap())
        .find(|e| e.path().is_dir())
        .unwrap()
        .file_name();
    for i in 0..300 {
        let copy = runs.join(format!("20200101T000000-{i:06}"));
        std::fs::create_dir_all(&copy).unwrap();
        for f in std::fs::read_dir(runs.join(&id)).unwrap() {
            let f = f.unwrap();
            if f.file_type().unwrap().is_file() {
                std::fs::copy(f.path(), copy.join(f.file_name())).unwrap();
            }
        }
    }
    let bin = env!("CARGO_BIN_EXE_wfhost");
    for pipeline in [
        format!("'{bin}' runs | head -1 >/dev/null"),
        format!("'{bin}' logs --json | head -c 1 >/dev/null"),
        format!("'{bin}' runs --json | head -c 1 >/dev/null"),
    ] {
        for _ in 0..5 {
            let out = std::process::Command::new("bash")
                .args([
                    "-c",
                    &format!("{pipeline}; echo \"status=${{PIPESTATUS[0]}}\""),
                ])
                .current_dir(s.path())
                .env("WFHOST_RUNS_DIR", &runs)
                .env("HOME", s.path())
                .env("WFHOST_CACHE_DIR", s.path().join("cache"))
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                stdout.contains("status=0") || stdout.contains("status=141"),
                "`{pipeline}`: {stdout} {stderr}"
            );
            assert!(!stderr.contains("panicked"), "`{pipeline}`: {stderr}");
        }
    }
}

/// Nothing listens at the base URL: the error names the URL and the cause, once, and the run
/// stops (75: start the server, resume) instead of failing agent after agent.
#[test]
fn a_refused_connection_names_the_url_and_is_reported_once() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let s = script(
        "return (await parallel(Array.from({length: 6}, (_, i) => () => agent('ask ' + i)))).length;",
    );
    s.file(
        "wfhost.toml",
        "model = \"claude-sonnet-4-5\"\n[messages]\nmax_attempts = 2\n",
    );
    let out = s
        .wf([
            "run",
            "w.js",
            "--yes",
            "--backend",
            "messages",
            "--concurrency",
            "2",
        ])
        .env("ANTHROPIC_BASE_URL", &url)
        .env("ANTHROPIC_API_KEY", "test-key")
        .run();
    out.code(75);
    assert!(
        out.stderr.contains(&format!(
            "cannot connect to `{url}/v1/messages`: connection refused"
        )),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("client error (Connect)"),
        "{}",
        out.stderr
    );
    // The error once, and the failures table's one grouped line: never a line per agent.
    let said = out.stderr.matches("connection refused").count();
    assert!(said <= 2, "said {said} times:\n{}", out.stderr);
    assert!(out.stderr.contains("wfhost resume"), "{}", out.stderr);
}

/// A server whose certificate is not trusted: not temporary (2, not 75), said once, with the
/// certificate problem and how to trust its CA.
#[test]
fn an_untrusted_certificate_is_a_configuration_error() {
    let api = FakeApi::start(true);
    let s = script(
        "return (await parallel(Array.from({length: 4}, (_, i) => () => agent('ask ' + i)))).length;",
    );
    s.file("wfhost.toml", "model = \"claude-sonnet-4-5\"\n");
    let out = s
        .wf(["run", "w.js", "--yes", "--json", "--backend", "messages"])
        .env("ANTHROPIC_BASE_URL", &api.url)
        .env("ANTHROPIC_API_KEY", "test-key")
        // No SSL_CERT_FILE: the fake's self-signed certificate is not trusted.
        .env("SSL_CERT_FILE", "/dev/null")
        .run();
    out.code(2);
    let report = out.report();
    let error = report["error"].as_str().unwrap();
    assert!(
        error.contains("its TLS certificate is not trusted")
            && error.contains("unknown issuer")
            && error.contains("SSL_CERT_FILE"),
        "{error}"
    );
    assert_eq!(api.requests(), 0);
}

/// `plan --backend claude` runs nothing, so it needs no `claude` binary, and it prices the
/// agents (saying which model it assumed).
#[test]
fn plan_on_claude_needs_no_binary_and_shows_a_cost() {
    let s = script(
        "phase('Ask');\nreturn await parallel(['a', 'b'].map(x => () => agent('Question ' + x + ' '.repeat(400))));",
    );
    let out = s
        .wf(["plan", "w.js", "--backend", "claude", "--json"])
        .env("PATH", "/usr/bin:/bin")
        .run();
    out.code(0);
    let plan: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(plan["total"]["agents"], 2);
    assert!(
        plan["total"]["cost_low"].as_f64().unwrap() > 0.0,
        "{}",
        out.stdout
    );
    assert!(
        plan["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("Claude Code's default model")),
        "{}",
        out.stdout
    );
}

/// A run can be named by a unique prefix of its id, or `@last`; an ambiguous prefix says which
/// runs it could mean.
#[test]
fn runs_are_named_by_prefix_or_at_last() {
    let s = script("return 1;");
    let runs = s.path().join("runs");
    for _ in 0..2 {
        s.wf(["run", "w.js", "--backend", "mock", "--yes", "--quiet"])
            .env("WFHOST_RUNS_DIR", &runs)
            .run()
            .code(0);
    }
    let mut ids: Vec<String> = std::fs::read_dir(&runs)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    ids.sort();
    let newest = ids.last().unwrap().clone();
    let out = s
        .wf(["runs", "show", "@last", "--json"])
        .env("WFHOST_RUNS_DIR", &runs)
        .run();
    out.code(0);
    assert!(out.stdout.contains(&newest), "{}", out.stdout);
    let out = s
        .wf(["runs", "show", &newest[..newest.len() - 3], "--json"])
        .env("WFHOST_RUNS_DIR", &runs)
        .run();
    out.code(0);
    assert!(out.stdout.contains(&newest), "{}", out.stdout);
    let out = s
        .wf(["runs", "show", "20", "--json"])
        .env("WFHOST_RUNS_DIR", &runs)
        .run();
    out.code(2);
    assert!(out.stderr.contains("names 2 runs"), "{}", out.stderr);
}

#[test]
fn flags_that_would_mislead_are_refused() {
    let s = script("return 1;");
    let out = s
        .wf([
            "run",
            "w.js",
            "--backend",
            "mock",
            "--yes",
            "--max-memory",
            "12",
        ])
        .run();
    out.code(2);
    assert!(out.stderr.contains("a size needs a unit"), "{}", out.stderr);
    let out = s
        .wf([
            "run",
            "w.js",
            "--backend",
            "mock",
            "--yes",
            "--json",
            "--events",
            "-",
        ])
        .run();
    out.code(2);
    assert!(
        out.stderr.contains("would both write to stdout"),
        "{}",
        out.stderr
    );
    // A script rejected before it ran names no run that does not exist.
    let bad = script("import fs from 'fs';\nreturn 1;");
    let out = bad.wf(["run", "w.js", "--backend", "mock", "--yes"]).run();
    out.code(65);
    assert!(
        !out.stderr.contains(" · run ") && out.stderr.contains("no run kept"),
        "{}",
        out.stderr
    );
}

#[test]
fn run_help_groups_its_flags() {
    let out = wfhost(["run", "--help"]).run();
    out.code(0);
    for heading in [
        "Agents:",
        "Output:",
        "Spending:",
        "NATS executor:",
        "Limits:",
    ] {
        assert!(
            out.stdout.contains(heading),
            "no `{heading}`:\n{}",
            out.stdout
        );
    }
}

/// A schema never met: the script sees the reference's one-line rejection; the person reading
/// the plain output is told why.
#[test]
fn a_schema_failure_says_why_on_the_terminal() {
    let s = script(
        "const s = { type: 'object', properties: { n: { type: 'number' } }, required: ['n'] };\nawait agent('fine');\ntry { await agent('count [json={\"n\": \"three\"}]', { schema: s, label: 'bad' }); } catch (e) { return String(e); }",
    );
    let out = s.wf(["run", "w.js", "--backend", "mock", "--yes"]).run();
    out.code(0);
    assert!(
        out.stdout
            .contains("subagent completed without calling StructuredOutput")
            && !out.stdout.contains("did not match"),
        "{}",
        out.stdout
    );
    let why = out
        .stderr
        .lines()
        .find(|l| l.contains("✗ bad:"))
        .unwrap_or_else(|| panic!("no reason on the terminal:\n{}", out.stderr));
    assert!(
        why.contains("did not match the schema") && why.contains("\"three\""),
        "{why}"
    );
}

/// `wfhost watch RUN` of a run that has ended opens it read-only (it was refused), and `?`
/// shows the keys.
#[test]
fn watch_opens_a_finished_run_read_only() {
    let s = script(
        "phase('Work');\nreturn await parallel([1, 2, 3].map(i => () => agent('task ' + i + (i === 2 ? ' [fail]' : ''), {label: 'task-' + i})));",
    );
    let runs = s.path().join("runs");
    s.wf(["run", "w.js", "--backend", "mock", "--yes", "--quiet"])
        .env("WFHOST_RUNS_DIR", &runs)
        .run()
        .code(0);
    let cmd = format!(
        "cd {} && env -u CI TERM=xterm-256color WFHOST_RUNS_DIR=runs {} watch @last; echo WATCH-EXIT=$?; sleep 60",
        s.path().display(),
        env!("CARGO_BIN_EXE_wfhost")
    );
    let Some(term) = super::Terminal::start("watch_finished", &cmd) else {
        return;
    };
    let screen = term.wait_for("the run ended");
    assert!(
        screen.contains("completed ⚠ 1 agent(s) failed") && screen.contains("task-3"),
        "{screen}"
    );
    term.press(&["?"]);
    let keys = term.wait_for("leave the dashboard");
    assert!(keys.contains("kill the selected agent"), "{keys}");
    term.press(&["Escape"]);
    term.press(&["s"]);
    let refused = term.wait_for("read-only");
    assert!(refused.contains("save refused"), "{refused}");
    term.press(&["q"]);
    let left = term.wait_for("WATCH-EXIT=");
    assert!(left.contains("WATCH-EXIT=0"), "{left}");
}

/// `-v` says what wfhost decides (here: the backend and the run directory); without it, none
/// of that; `RUST_LOG` chooses as well.
#[test]
fn verbose_prints_diagnostics_and_only_when_asked() {
    let s = script("return 1;");
    let out = s
        .wf([
            "run",
            "w.js",
            "--backend",
            "mock",
            "--yes",
            "-v",
            "--color",
            "never",
        ])
        .run();
    out.code(0);
    assert!(
        out.stderr.contains("choosing the backend") && out.stderr.contains("run directory"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains('\u{1b}'),
        "--color never: {}",
        out.stderr
    );
    let quiet = s.wf(["run", "w.js", "--backend", "mock", "--yes"]).run();
    assert!(
        !quiet.stderr.contains("choosing the backend"),
        "{}",
        quiet.stderr
    );
    let logged = s
        .wf(["run", "w.js", "--backend", "mock", "--yes"])
        .env("RUST_LOG", "wfhost=debug")
        .run();
    assert!(
        logged.stderr.contains("choosing the backend"),
        "{}",
        logged.stderr
    );
}

/// A script's uncaught error points at its own lines: no frame of the runtime's prelude, none
/// of the wrapper past the script's last line.
#[test]
fn a_stack_trace_names_only_the_scripts_lines() {
    let s = Project::new();
    s.file(
        "w.js",
        "export const meta = {\n  name: 'st',\n  description: 'stack',\n};\nfunction boom() {\n  throw new Error('boom');\n}\nboom();\n",
    );
    let out = s
        .wf(["run", "w.js", "--backend", "mock", "--yes", "--json"])
        .run();
    out.code(65);
    let stack = out.report()["stack"].as_str().unwrap().to_string();
    assert!(stack.contains("at boom (workflow.js:6:"), "{stack}");
    assert!(stack.contains("(workflow.js:8:1)"), "{stack}");
    assert!(
        !stack.contains("eval_script") && !stack.contains("at default"),
        "{stack}"
    );
}

/// The dashboard of `wfhost run` on a terminal: Enter on a running agent shows the start of its
/// prompt and its output as the backend streams it (it was empty until the agent ended).
#[test]
fn the_dashboard_shows_a_running_agents_streamed_output() {
    let s = script(
        "phase('Work');\nreturn await agent('look at the streaming pane', {label: 'streamer'});",
    );
    s.file(
        "wfhost.toml",
        "backend = \"command\"\n[command]\nprogram = \"sh\"\nargs = [\"-c\", \"cat >/dev/null; echo step-one; sleep 1; echo step-two; sleep 60\"]\n",
    );
    let cmd = format!(
        "cd {} && env -u CI TERM=xterm-256color WFHOST_RUNS_DIR=runs {} run w.js --yes; echo RUN-EXIT=$?; sleep 60",
        s.path().display(),
        env!("CARGO_BIN_EXE_wfhost")
    );
    let Some(term) = super::Terminal::start("dashboard_stream", &cmd) else {
        return;
    };
    term.wait_for("streamer");
    term.press(&["Enter"]);
    let pane = term.wait_for("step-two");
    assert!(
        pane.contains("look at the streaming pane") && pane.contains("step-one"),
        "{pane}"
    );
    term.press(&["Escape"]);
    term.press(&["C-c"]);
    let left = term.wait_for("RUN-EXIT=");
    assert!(left.contains("RUN-EXIT=130"), "{left}");
}

/// `wfhost runs` counts what a failed agent spent (a schema never met is billed), and a run
/// stopped part-way reports how long it ran, not 0.0 s.
#[test]
fn runs_count_failed_agents_spend_and_stopped_runs_time() {
    let s = script(
        "const s = { type: 'object', properties: { n: { type: 'number' } }, required: ['n'] };\nawait agent('fine');\ntry { await agent('count [json={\"n\": \"three\"}]', { schema: s, label: 'bad' }); } catch (e) {}\nawait agent('slow [delay=30000]');\nreturn 1;",
    );
    let runs = s.path().join("runs");
    let out = s
        .wf(["run", "w.js", "--backend", "mock", "--yes", "--detach"])
        .env("WFHOST_RUNS_DIR", &runs)
        .run();
    out.code(0);
    let summary = |s: &Project| -> serde_json::Value {
        let out = s.wf(["runs", "--json"]).env("WFHOST_RUNS_DIR", &runs).run();
        out.code(0);
        serde_json::from_str::<serde_json::Value>(&out.stdout).unwrap()[0].clone()
    };
    super::wait_for(Duration::from_secs(20), "the slow agent to start", || {
        summary(&s)["agents_unfinished"] == 1
    });
    std::thread::sleep(Duration::from_millis(300));
    s.wf(["stop", "@last"])
        .env("WFHOST_RUNS_DIR", &runs)
        .run()
        .code(0);
    let run = summary(&s);
    assert_eq!(run["status"], "stopped", "{run}");
    assert!(run["duration_ms"].as_u64().unwrap() >= 300, "{run}");
    // `fine` (its tokens) and `bad` (six replies' tokens, none accepted).
    let fine_only = 1;
    let input = run["usage"]["input_tokens"].as_u64().unwrap();
    assert!(
        input > fine_only,
        "the failed agent's tokens are not counted: {run}"
    );
    assert_eq!(run["agents_failed"], 1, "{run}");
}

/// `wfhost watch` with several runs running asks which one.
#[test]
fn watch_asks_which_run_when_several_run() {
    let s =
        script("phase('Slow');\nreturn await agent('slow [delay=30000]', {label: 'slow-one'});");
    let runs = s.path().join("runs");
    let mut ids = Vec::new();
    for _ in 0..2 {
        let out = s
            .wf([
                "run",
                "w.js",
                "--backend",
                "mock",
                "--yes",
                "--detach",
                "--json",
            ])
            .env("WFHOST_RUNS_DIR", &runs)
            .run();
        out.code(0);
        ids.push(out.report()["run_id"].as_str().unwrap().to_string());
    }
    let cmd = format!(
        "cd {} && env -u CI TERM=xterm-256color WFHOST_RUNS_DIR=runs {} watch; echo WATCH-EXIT=$?; sleep 60",
        s.path().display(),
        env!("CARGO_BIN_EXE_wfhost")
    );
    let stop_all = || {
        for id in &ids {
            let _ = s.wf(["stop", id]).env("WFHOST_RUNS_DIR", &runs).run();
        }
    };
    let Some(term) = super::Terminal::start("watch_pick", &cmd) else {
        stop_all();
        return;
    };
    let asked = term.wait_for("watch which?");
    assert!(asked.contains("2 runs are running"), "{asked}");
    term.press(&["2", "Enter"]);
    let screen = term.wait_for("slow-one");
    assert!(screen.contains("running"), "{screen}");
    term.press(&["q"]);
    let left = term.wait_for("WATCH-EXIT=");
    stop_all();
    assert!(left.contains("WATCH-EXIT=0"), "{left}");
}
