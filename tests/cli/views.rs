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
