//! Agents that do the work: API agents (`messages`) with Claude Code's tools, contained by
//! the host. The fake Messages API scripts the model's tool calls (`FakeApi::play`); the real
//! binary runs them in a real workspace, `Bash` under the kernel's confinement.

use super::fake_api::FakeApi;
use super::{Out, wfhost};
use serde_json::{Value, json};
use std::path::PathBuf;

/// A workspace `ws/` beside a directory it must not reach, `outside/` (with a secret), and a
/// home directory with another.
struct Bench {
    _root: tempfile::TempDir,
    ws: PathBuf,
    outside: PathBuf,
    home: PathBuf,
}

const SECRET: &str = "TOP-SECRET-4242";

impl Bench {
    fn new(script: &str) -> Bench {
        let root = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(root.path()).unwrap();
        let (ws, outside, home) = (base.join("ws"), base.join("outside"), base.join("home"));
        for d in [&ws, &outside, &home] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(outside.join("secret.txt"), SECRET).unwrap();
        std::fs::write(home.join(".secret"), SECRET).unwrap();
        std::fs::write(
            ws.join("w.js"),
            format!("export const meta = {{ name: 'tools', description: 'agents with tools' }};\n{script}"),
        )
        .unwrap();
        Bench {
            _root: root,
            ws,
            outside,
            home,
        }
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.ws.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.ws.join(name)).unwrap_or_default()
    }

    fn wf(&self, api: &FakeApi, args: &[&str]) -> super::Wf {
        let mut wf = wfhost(args)
            .dir(&self.ws)
            .home(&self.home)
            .arg("--backend")
            .arg("messages");
        for (k, v) in api.env() {
            wf = wf.env(k, v);
        }
        wf
    }

    fn run(&self, api: &FakeApi, extra: &[&str]) -> Out {
        let mut args = vec!["run", "w.js", "--yes", "--json"];
        args.extend_from_slice(extra);
        self.wf(api, &args).run()
    }
}

/// The tool results a play's agent was handed, from its `DONE [...]` answer.
fn results(answer: &Value) -> Vec<Value> {
    let text = answer
        .as_str()
        .unwrap_or_else(|| panic!("not text: {answer}"));
    let json = text
        .strip_prefix("DONE ")
        .unwrap_or_else(|| panic!("not a finished play: {text}"));
    serde_json::from_str::<Vec<Value>>(json).unwrap()
}

fn call(name: &str, input: Value) -> Value {
    json!({"name": name, "input": input})
}

#[test]
fn an_agent_reads_searches_and_edits_the_workspace() {
    let b = Bench::new("return await agent('[play:work] review the code', { label: 'reviewer' });");
    let lib = b.file("src/lib.rs", "fn alpha() {}\nfn beta() {}\n");
    b.file("notes.md", "alpha, then alpha again\n");
    b.file(".gitignore", "ignored.txt\n");
    b.file("ignored.txt", "alpha\n");
    let api = FakeApi::start(false);
    api.play(
        "work",
        vec![
            // Read-only calls of one turn (run concurrently).
            vec![
                call("Read", json!({"file_path": lib})),
                call("Grep", json!({"pattern": "alpha"})),
                call("Glob", json!({"pattern": "**/*.rs"})),
                call(
                    "Grep",
                    json!({"pattern": "fn b\\w+", "output_mode": "content", "-n": true}),
                ),
            ],
            vec![
                call(
                    "Edit",
                    json!({"file_path": lib, "old_string": "beta", "new_string": "gamma"}),
                ),
                call(
                    "Edit",
                    json!({"file_path": "notes.md", "old_string": "alpha", "new_string": "x"}),
                ),
            ],
        ],
    );
    let events = b.home.join("events.jsonl");
    let out = b.run(
        &api,
        &[
            "--tools",
            "Read,Glob,Grep,Edit",
            "--events",
            events.to_str().unwrap(),
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let r = results(&out.report()["result"]);
    assert_eq!(r.len(), 6, "{r:?}");
    // The events say each turn and call (abbreviated) for machines.
    let events: Vec<Value> = std::fs::read_to_string(&events)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let of = |kind: &str| {
        events
            .iter()
            .filter(|e| e["type"] == kind)
            .collect::<Vec<_>>()
    };
    assert_eq!(of("agent_turn").len(), 3, "two tool turns and the answer");
    assert_eq!(of("agent_turn")[0]["tool_calls"], 4);
    assert_eq!(of("tool_call").len(), 6);
    assert_eq!(
        of("tool_call")[0]["summary"],
        format!("Read {}", lib.display())
    );
    let results_ev = of("tool_result");
    assert_eq!(results_ev.len(), 6);
    assert_eq!(results_ev[5]["is_error"], true);
    assert_eq!(
        r[0]["content"].as_str().unwrap(),
        "     1\tfn alpha() {}\n     2\tfn beta() {}\n"
    );
    let grep = r[1]["content"].as_str().unwrap();
    assert!(
        grep.starts_with("Found 2 files")
            && grep.contains(&b.ws.join("src/lib.rs").display().to_string())
            && grep.contains("notes.md")
            && !grep.contains("ignored.txt"),
        "{grep}"
    );
    assert_eq!(r[2]["content"], format!("{}\n", lib.display()));
    assert_eq!(
        r[3]["content"],
        format!("{}:2:fn beta() {{}}", lib.display()),
        "ripgrep's path:line:text"
    );
    assert_eq!(r[4]["is_error"], false, "{}", r[4]);
    assert_eq!(b.read("src/lib.rs"), "fn alpha() {}\nfn gamma() {}\n");
    // A non-unique old_string is an error result, as in Claude Code, and nothing changes.
    assert_eq!(r[5]["is_error"], true);
    assert!(
        r[5]["content"]
            .as_str()
            .unwrap()
            .starts_with("Found 2 matches of the string to replace, but replace_all is false."),
        "{}",
        r[5]
    );
    assert_eq!(b.read("notes.md"), "alpha, then alpha again\n");
    assert_eq!(api.play_tools("work"), ["Read", "Glob", "Grep", "Edit"]);
}

#[test]
fn file_tools_reach_only_the_workspace() {
    let b = Bench::new("return await agent('[play:escape] look around');");
    b.file("inside.txt", "in\n");
    std::os::unix::fs::symlink(&b.outside, b.ws.join("link")).unwrap();
    let outside = b.outside.display().to_string();
    let api = FakeApi::start(false);
    api.play(
        "escape",
        vec![
            vec![
                call("Read", json!({"file_path": "../outside/secret.txt"})),
                call(
                    "Read",
                    json!({"file_path": format!("{outside}/secret.txt")}),
                ),
                call("Read", json!({"file_path": "link/secret.txt"})),
                call("Read", json!({"file_path": "src/../../outside/secret.txt"})),
                call(
                    "Read",
                    json!({"file_path": format!("/{}", b.outside.join("secret.txt").display())}),
                ),
                call("Grep", json!({"pattern": "SECRET", "path": "link"})),
                call("Glob", json!({"pattern": "*", "path": "../outside"})),
                call("Read", json!({"file_path": ".wfhost/runs"})),
                call("Read", json!({"file_path": "inside.txt"})),
            ],
            vec![
                call(
                    "Write",
                    json!({"file_path": "../outside/planted.txt", "content": "x"}),
                ),
                call(
                    "Write",
                    json!({"file_path": "link/planted.txt", "content": "x"}),
                ),
                call(
                    "Write",
                    json!({"file_path": ".git/hooks/pre-commit", "content": "x"}),
                ),
                call(
                    "Write",
                    json!({"file_path": "made/here.txt", "content": "made"}),
                ),
            ],
        ],
    );
    std::fs::create_dir_all(b.ws.join(".git/hooks")).unwrap();
    let out = b.run(&api, &["--tools", "Read,Glob,Grep,Write"]);
    assert_eq!(out.code, 0, "the run goes on: {}", out.stderr);
    let answer = out.report()["result"].clone();
    assert!(!answer.to_string().contains(SECRET), "{answer}");
    let r = results(&answer);
    for (i, refused) in r[..8].iter().enumerate() {
        assert_eq!(refused["is_error"], true, "call {i}: {refused}");
    }
    let text = |i: usize| r[i]["content"].as_str().unwrap().to_string();
    assert!(
        text(0).contains("leads outside the workspace"),
        "{}",
        text(0)
    );
    assert!(text(1).contains("is outside the workspace"), "{}", text(1));
    assert!(
        text(2).contains("leads outside the workspace"),
        "{}",
        text(2)
    );
    assert!(text(7).contains("wfhost's own run data"), "{}", text(7));
    assert_eq!(text(8), "     1\tin\n");
    for (i, refused) in r.iter().enumerate().take(12).skip(9) {
        assert_eq!(refused["is_error"], true, "write {i}: {refused}");
    }
    assert!(text(11).contains("inside `.git`"), "{}", text(11));
    assert_eq!(r[12]["is_error"], false, "{}", r[12]);
    assert_eq!(b.read("made/here.txt"), "made");
    assert!(!b.outside.join("planted.txt").exists());
    assert!(!b.ws.join(".git/hooks/pre-commit").exists());
}

/// Bash under the kernel's confinement: the workspace and a private temp dir, nothing else —
/// not a sibling directory, not `$HOME`, not the network (a listener on 127.0.0.1 hears
/// nothing), not the host's environment; and what it starts dies with it.
#[test]
fn bash_is_confined_by_the_kernel() {
    let b = Bench::new("return await agent('[play:shell] run things');");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let outside = b.outside.display().to_string();
    let home = b.home.display().to_string();
    let bash = |command: String| call("Bash", json!({"command": command}));
    let api = FakeApi::start(false);
    api.play(
        "shell",
        vec![
            vec![bash("echo made > made.txt && cat made.txt && echo tmp > \"$TMPDIR/t\" && cat \"$TMPDIR/t\"".into())],
            vec![bash(format!("cat {outside}/secret.txt"))],
            vec![bash(format!("cat {home}/.secret"))],
            vec![bash(format!("echo x > {outside}/planted.txt"))],
            vec![bash(format!("exec 3<>/dev/tcp/127.0.0.1/{port} && echo connected"))],
            vec![bash("echo key=[$ANTHROPIC_API_KEY] base=[$ANTHROPIC_BASE_URL] home=$HOME".into())],
            vec![bash("ls -a .wfhost/runs 2>&1; cat /proc/self/environ 2>&1 | head -c 100; exit 3".into())],
        ],
    );
    let out = b.run(&api, &["--tools", "Bash"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let answer = out.report()["result"].clone();
    assert!(!answer.to_string().contains(SECRET), "{answer}");
    let r = results(&answer);
    let text = |i: usize| r[i]["content"].as_str().unwrap().to_string();
    assert_eq!(text(0), "made\ntmp\n", "{}", r[0]);
    assert_eq!(b.read("made.txt"), "made\n");
    for (i, refused) in r.iter().enumerate().take(5).skip(1) {
        assert_eq!(refused["is_error"], true, "call {i}: {refused}");
    }
    assert!(text(1).contains("Permission denied"), "{}", text(1));
    assert!(text(2).contains("Permission denied"), "{}", text(2));
    assert!(text(3).contains("Permission denied"), "{}", text(3));
    assert!(!text(4).contains("connected"), "{}", text(4));
    assert!(
        matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the listener heard a connection"
    );
    assert!(!b.outside.join("planted.txt").exists());
    assert!(text(5).starts_with("key=[] base=[] home=/"), "{}", text(5));
    assert!(!text(5).contains(&home), "{}", text(5));
    // The run directory is hidden; /proc is out of reach; the exit code is reported.
    assert!(!text(6).contains("journal"), "{}", text(6));
    assert!(text(6).ends_with("Exit code 3"), "{}", text(6));
    assert_eq!(r[6]["is_error"], true);
}

/// A tool-using agent SIGKILLed in its third of five turns continues from its last finished
/// turn: the model is asked only for the missing turns, and a command journaled in turn 2 ran
/// once. The interrupted turn's command is not run again (it may have had effects).
#[test]
fn a_killed_agent_resumes_turn_by_turn() {
    let b = Bench::new("return await agent('[play:five] five turns');");
    b.file("a.txt", "a\n");
    let api = FakeApi::start(false);
    let bash = |command: &str| vec![call("Bash", json!({"command": command}))];
    api.play(
        "five",
        vec![
            vec![call("Read", json!({"file_path": "a.txt"}))],
            bash("echo once >> log.txt"),
            bash("sleep 37"),
            vec![call("Read", json!({"file_path": "log.txt"}))],
            vec![call("Glob", json!({"pattern": "*.txt"}))],
        ],
    );
    let tools = ["--tools", "Read,Glob,Bash", "--run-id", "five-turns"];
    let mut args = vec!["run", "w.js", "--yes", "--json"];
    args.extend_from_slice(&tools);
    let mut child = b.wf(&api, &args).spawn();
    let start = std::time::Instant::now();
    while !api.play_turns("five").contains(&2) {
        assert!(start.elapsed().as_secs() < 60, "turn 3 never came");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // Turn 3's command is running.
    std::thread::sleep(std::time::Duration::from_millis(800));
    child.kill().unwrap();
    child.wait().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let sleeping = std::process::Command::new("pgrep")
        .args(["-f", "sleep 37"])
        .output()
        .unwrap();
    assert!(
        sleeping.stdout.is_empty(),
        "the command outlived its run: {}",
        String::from_utf8_lossy(&sleeping.stdout)
    );
    assert_eq!(api.play_turns("five"), [0, 1, 2]);
    let out = b
        .wf(
            &api,
            &[
                "resume",
                "five-turns",
                "--yes",
                "--json",
                "--tools",
                "Read,Glob,Bash",
            ],
        )
        .run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    // Only the missing turns (4, 5, and the answer) were asked for.
    assert_eq!(api.play_turns("five"), [0, 1, 2, 3, 4, 5]);
    assert_eq!(b.read("log.txt"), "once\n", "turn 2's command ran once");
    let r = results(&out.report()["result"]);
    assert_eq!(r.len(), 5, "{r:?}");
    assert_eq!(r[0]["content"], "     1\ta\n");
    assert_eq!(r[2]["is_error"], true);
    assert!(
        r[2]["content"].as_str().unwrap().contains("interrupted"),
        "{}",
        r[2]
    );
    assert_eq!(r[3]["content"], "     1\tonce\n");
}

#[test]
fn guard_rails_end_looping_and_long_agents() {
    let b = Bench::new(
        "return [await agent('[play:loop] loop'), await agent('[play:long] long'), await agent('[play:slow] slow')];",
    );
    b.file("a.txt", "a\n");
    let api = FakeApi::start(false);
    let read = |p: &str| vec![call("Read", json!({"file_path": p}))];
    api.play("loop", vec![read("a.txt"); 6]);
    api.play(
        "long",
        (0..6).map(|i| read(&format!("missing-{i}.txt"))).collect(),
    );
    // Longer than the stall timeout, inside its own: a running tool is progress.
    api.play(
        "slow",
        vec![vec![call(
            "Bash",
            json!({"command": "sleep 3; echo slept"}),
        )]],
    );
    let out = b.run(
        &api,
        &[
            "--tools",
            "Read,Bash",
            "--max-turns",
            "4",
            "--stall-timeout",
            "1s",
        ],
    );
    let report = out.report();
    // A failed agent is `null` to the script (as on the reference) and a failure in the report.
    let r = report["result"].clone();
    assert_eq!(
        (r[0].clone(), r[1].clone()),
        (Value::Null, Value::Null),
        "{report}"
    );
    let failures = report["failures"].to_string();
    assert!(
        failures
            .contains("the agent made the same `Read` call with the same input 3 times in a row"),
        "{failures}"
    );
    assert_eq!(
        api.play_turns("loop"),
        [0, 1, 2],
        "the third identical call ends it"
    );
    assert!(
        failures.contains("the agent took 4 turns, the most `--max-turns`"),
        "{failures}"
    );
    assert_eq!(api.play_turns("long"), [0, 1, 2, 3]);
    // What the failed agents' turns cost is counted (each answer: 100 input tokens): 3 + 4 + 2.
    assert_eq!(report["usage"]["input_tokens"], 900, "{report}");
    let slow = results(&r[2]);
    assert_eq!(slow[0]["content"], "slept\n", "{}", out.stderr);
}

#[test]
fn an_agent_type_narrows_the_tools() {
    let b = Bench::new("return await agent('[play:typed] read only', { agentType: 'reader' });");
    b.file(
        ".claude/agents/reader.md",
        "---\nname: reader\ndescription: reads\ntools: Read, Grep\n---\nYou read.\n",
    );
    let api = FakeApi::start(false);
    api.play(
        "typed",
        vec![vec![call(
            "Write",
            json!({"file_path": "x.txt", "content": "x"}),
        )]],
    );
    let out = b.run(&api, &["--tools", "Read,Glob,Grep,Write"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(api.play_tools("typed"), ["Read", "Grep"]);
    let r = results(&out.report()["result"]);
    assert_eq!(r[0]["is_error"], true);
    assert!(
        r[0]["content"]
            .as_str()
            .unwrap()
            .starts_with("`Write` is not among this agent's tools (Read, Grep)"),
        "{}",
        r[0]
    );
    assert!(!b.ws.join("x.txt").exists());
}

/// `--tools none`: an agent is one model call, as before tools existed (a schema agent's
/// answer through the forced StructuredOutput tool).
#[test]
fn no_tools_means_one_model_call() {
    let b = Bench::new(
        "return await agent('classify this', { schema: { type: 'object', properties: { ok: { type: 'boolean' } }, required: ['ok'] } });",
    );
    let api = FakeApi::start(false);
    let out = b.run(&api, &["--tools", "none"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let seen = api.seen.lock().unwrap();
    assert_eq!(seen.bodies.len(), 1);
    assert_eq!(seen.bodies[0]["tools"].as_array().unwrap().len(), 1);
    assert_eq!(
        seen.bodies[0]["tool_choice"],
        json!({"type": "tool", "name": "StructuredOutput"})
    );
    assert!(out.report()["result"]["ok"].is_boolean());
}

/// A security reviewer sees the tools in force, where they reach, and whether this kernel
/// confines `Bash`; `plan` says which tools its agents would get.
#[test]
fn audit_and_plan_show_the_tools_in_force() {
    let b = Bench::new("return await agent('x');");
    let ws = b.ws.display().to_string();
    let out = wfhost(["audit", "--tools", "Read,Bash"])
        .dir(&b.ws)
        .home(&b.home)
        .run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("  tools       Read, Bash  --tools"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(&format!("  workspace   {ws}  ")),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("  Bash        confined: Landlock"),
        "{}",
        out.stdout
    );
    let out = wfhost(["audit", "--json"]).dir(&b.ws).home(&b.home).run();
    let audit: Value = serde_json::from_str(&out.stdout).unwrap();
    let t = &audit["agent_tools"];
    assert_eq!(
        t["allowed"],
        json!(["Read", "Glob", "Grep"]),
        "the read-only default"
    );
    assert_eq!(t["bash"], Value::Null);
    let api = FakeApi::start(false);
    let out = b.wf(&api, &["plan", "w.js", "--tools", "Read,Grep"]).run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains(&format!(
            "tools: Read, Grep in {ws} (at most 50 turns per agent)"
        )),
        "{}",
        out.stdout
    );
}

/// `just bench-tools`: the host's cost of agents' tools. Writes bench/RESULTS-tools.md.
/// - host time per tool call: `Read` of a small file; `Grep` over this repository beside `rg`
///   doing the same search (Debian's `ripgrep`);
/// - starting a confined `Bash` call (`wfhost __confine`: namespaces + Landlock) beside an
///   unconfined `bash -c true`;
/// - a 50-file review (each agent: one `Read` turn, then its answer) on the fake API whose
///   answers begin after 200 ms: wall time beside the ideal, 2 model calls × 200 ms.
#[test]
#[ignore = "a benchmark: `just bench-tools` runs it"]
fn bench_tools() {
    use std::time::{Duration, Instant};
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let repo = std::fs::canonicalize(repo).unwrap();
    let toolbox = |root: &std::path::Path| {
        let cfg = wfhost::testing::ToolsConfig {
            allow: Some(vec!["Read".into(), "Grep".into()]),
            workspace: Some(root.to_path_buf()),
            max_result: Some("16MiB".into()),
            ..Default::default()
        };
        wfhost::testing::Toolbox::from_config(&cfg)
            .unwrap()
            .unwrap()
    };
    let offered = [
        wfhost::testing::ToolName::Read,
        wfhost::testing::ToolName::Grep,
    ];
    let per_call = |n: u32, f: &dyn Fn()| {
        f();
        let t = Instant::now();
        for _ in 0..n {
            f();
        }
        t.elapsed() / n
    };
    let tb = toolbox(&repo);
    let read = per_call(2000, &|| {
        let out = tb.call_file("Read", &json!({"file_path": "justfile"}), &offered);
        assert!(!out.is_error);
    });
    let pattern = "fn [a-z_]+_timeout";
    let grep = per_call(10, &|| {
        let out = tb.call_file(
            "Grep",
            &json!({"pattern": pattern, "output_mode": "content"}),
            &offered,
        );
        assert!(out.content.contains("stall_timeout"), "{}", out.content);
    });
    let rg = per_call(10, &|| {
        let out = std::process::Command::new("rg")
            .args(["-n", pattern, "."])
            .current_dir(&repo)
            .output()
            .expect("`rg` (Debian's ripgrep) is needed for this benchmark");
        assert!(out.status.success());
    });
    let exe = env!("CARGO_BIN_EXE_wfhost");
    let ws = tempfile::tempdir().unwrap();
    let spawn = |confined: bool| {
        let mut c = if confined {
            let mut c = std::process::Command::new(exe);
            c.args(["__confine", "--rw"])
                .arg(ws.path())
                .args(["--", "/bin/bash", "-c", "true"]);
            c
        } else {
            let mut c = std::process::Command::new("/bin/bash");
            c.args(["-c", "true"]);
            c
        };
        let st = c.env_clear().status().unwrap();
        assert!(st.success());
    };
    let confined = per_call(50, &|| spawn(true));
    let unconfined = per_call(50, &|| spawn(false));

    // The 50-file review.
    let b = Bench::new(
        "return await parallel(Array.from({ length: 50 }, (_, i) => () => agent(`[play:f${i}] review f${i}.rs`)));",
    );
    // Over TLS + HTTP/2, as the real API (HTTP/1.1 holds a first wave until the server is heard).
    let api = FakeApi::start(true);
    let latency = Duration::from_millis(200);
    api.seen.lock().unwrap().first_token = latency;
    for i in 0..50 {
        b.file(&format!("f{i}.rs"), &"fn x() {}\n".repeat(200));
        api.play(
            &format!("f{i}"),
            vec![vec![call("Read", json!({"file_path": format!("f{i}.rs")}))]],
        );
    }
    let t = Instant::now();
    let out = b.run(&api, &["--concurrency", "50", "--no-journal"]);
    let wall = t.elapsed();
    // What a run costs with no agent at all: start-up, compile cache, report.
    let empty = Bench::new("return 1;");
    let t = Instant::now();
    assert_eq!(empty.run(&api, &["--no-journal"]).code, 0);
    let baseline = t.elapsed();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let ideal = latency * 2;
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let report = format!(
        "# Agents' tools: what the host spends\n\n\
         `just bench-tools` (tests/cli/tools.rs `bench_tools`), release build, this machine (2 cores).\n\n\
         | measure | wfhost | beside |\n|---|---|---|\n\
         | `Read` of a small file (the justfile), per call | {:.0} µs | |\n\
         | `Grep` `{pattern}` over this repository (content mode), per call | {:.1} ms | `rg -n` (a process): {:.1} ms |\n\
         | starting a `Bash` call, confined (namespaces + Landlock) | {:.2} ms | unconfined `bash -c true`: {:.2} ms |\n\
         | 50-file review, one `Read` turn per agent, answers after 200 ms (TLS + HTTP/2) | {:.0} ms | ideal (2 model calls): {:.0} ms, plus a run without agents: {:.0} ms |\n",
        us(read),
        ms(grep),
        ms(rg),
        ms(confined),
        ms(unconfined),
        ms(wall),
        ms(ideal),
        ms(baseline),
    );
    print!("{report}");
    std::fs::write(repo.join("bench/RESULTS-tools.md"), report).unwrap();
}

/// A tool outside the agent's set, while someone watches the run: the question goes to them
/// (as a `claude` agent's does); allowed once, it runs under the same containment; denied, the
/// agent gets the refusal and goes on. (Unwatched, it is refused at once: see
/// `an_agent_type_narrows_the_tools`.)
#[test]
fn a_tool_outside_the_set_is_asked_of_whoever_watches() {
    use std::io::Write as _;
    let b = Bench::new("return await agent('[play:ask] write it');");
    let api = FakeApi::start(false);
    // Time to subscribe before the model's first answer.
    api.seen.lock().unwrap().first_token = std::time::Duration::from_millis(1500);
    api.play(
        "ask",
        vec![
            vec![call(
                "Write",
                json!({"file_path": "asked.txt", "content": "yes"}),
            )],
            vec![call(
                "Write",
                json!({"file_path": "denied.txt", "content": "no"}),
            )],
        ],
    );
    let runs = b.home.join("runs");
    let child = b
        .wf(
            &api,
            &[
                "run", "w.js", "--yes", "--json", "--tools", "Read", "--run-id", "asked",
            ],
        )
        .env("WFHOST_RUNS_DIR", &runs)
        .spawn();
    let socket = runs.join("asked").join("control.sock");
    let start = std::time::Instant::now();
    let mut watcher = loop {
        if let Ok(s) = std::os::unix::net::UnixStream::connect(&socket) {
            break s;
        }
        assert!(start.elapsed().as_secs() < 20, "no control socket");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    writeln!(watcher, r#"{{"v": 1, "cmd": "subscribe"}}"#).unwrap();
    let ask = |request: Value| super::control_request(&socket, &request);
    for decision in ["once", "deny"] {
        let pending = super::pending_permission(&socket);
        assert_eq!(pending["tool"], "Write", "{pending}");
        let answered = ask(
            json!({"v": 1, "cmd": "answer", "id": pending["id"], "decision": decision, "client": "test"}),
        );
        assert_eq!(answered["ok"], true, "{answered}");
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let report: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let r = results(&report["result"]);
    assert_eq!(r[0]["is_error"], false, "{}", r[0]);
    assert_eq!(b.read("asked.txt"), "yes");
    assert_eq!(r[1]["is_error"], true);
    assert!(
        r[1]["content"]
            .as_str()
            .unwrap()
            .starts_with("`Write` was not allowed"),
        "{}",
        r[1]
    );
    assert!(!b.ws.join("denied.txt").exists());
}

/// `isolation: "worktree"` on the `messages` backend: each isolated agent's tools reach its own
/// worktree of the repository and nothing else (not even the repository it was made from);
/// the model is told where it works; a worktree with changes is kept and reported, one without
/// is removed.
#[test]
fn an_isolated_agent_works_in_its_own_worktree() {
    let b = Bench::new(
        "return await parallel([() => agent('[play:iso] change it', { isolation: 'worktree', label: 'iso' }), () => agent('[play:look] only look', { isolation: 'worktree' })]);",
    );
    let lib = b.file("src/lib.rs", "fn beta() {}\n");
    let git = |args: &[&str]| {
        let o = std::process::Command::new("git")
            .args(["-c", "user.email=t@t", "-c", "user.name=t"])
            .args(args)
            .current_dir(&b.ws)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    git(&["init", "-q"]);
    git(&["add", "src/lib.rs", "w.js"]);
    git(&["commit", "-qm", "init"]);
    let api = FakeApi::start(false);
    api.play(
        "iso",
        vec![vec![
            call(
                "Edit",
                json!({"file_path": "src/lib.rs", "old_string": "beta", "new_string": "gamma"}),
            ),
            // The repository it was made from is outside its workspace.
            call("Read", json!({"file_path": lib})),
        ]],
    );
    api.play(
        "look",
        vec![vec![call("Read", json!({"file_path": "src/lib.rs"}))]],
    );
    let out = b.run(&api, &["--tools", "Read,Edit"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let report = out.report();
    let iso = results(&report["result"][0]);
    assert_eq!(iso[0]["is_error"], false, "{}", iso[0]);
    assert_eq!(
        iso[1]["is_error"], true,
        "the parent repository is refused: {}",
        iso[1]
    );
    assert_eq!(
        results(&report["result"][1])[0]["content"],
        "     1\tfn beta() {}\n"
    );
    assert_eq!(
        b.read("src/lib.rs"),
        "fn beta() {}\n",
        "the repository is untouched"
    );
    let logs: Vec<&str> = report["logs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        logs.len(),
        1,
        "only the agent with changes is reported: {logs:?}"
    );
    let kept = logs[0]
        .strip_prefix("[iso] changes kept in worktree ")
        .unwrap_or_else(|| panic!("{logs:?}"));
    assert_eq!(
        std::fs::read_to_string(std::path::Path::new(kept).join("src/lib.rs")).unwrap(),
        "fn gamma() {}\n"
    );
    // The model was told, as the reference tells it, where it works.
    let prompts: Vec<String> = api
        .seen
        .lock()
        .unwrap()
        .bodies
        .iter()
        .map(|b| b["messages"][0]["content"].to_string())
        .collect();
    assert!(
        prompts.iter().any(|p| p.contains("[play:iso]")
            && p.contains(&format!(
                "You are operating in an isolated git worktree at {kept} — same repository"
            ))),
        "{prompts:?}"
    );
    let worktrees = git(&["worktree", "list", "--porcelain"]);
    assert_eq!(
        worktrees.matches("worktree ").count(),
        2,
        "the repository and the kept worktree: {worktrees}"
    );
    git(&["worktree", "remove", "--force", kept]);
}
