//! What people and CI see: plain progress, the event stream, saved workflows, traces.

use super::{Scratch, wfhost};

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
    s
}

#[test]
fn plain_mode_and_event_stream_snapshots() {
    let s = Scratch::new();
    s.file("w.js", SCRIPT);
    let out = wfhost([
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
    .dir(s.path())
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
    let s = Scratch::new();
    std::fs::create_dir(s.path().join(".git")).unwrap();
    let home = s.path().join("home");
    s.file("review.js", "export const meta = { name: 'review', description: 'review files', whenToUse: 'before a merge' };\nreturn await agent('review ' + args);");
    s.file(
        "mine.js",
        "export const meta = { name: 'review', description: 'my own review' };\nreturn 'personal';",
    );
    let wf = |args: &[&str]| {
        wfhost(args)
            .dir(s.path())
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
