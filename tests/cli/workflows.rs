//! `workflow()` and saved workflows: lookup order, nesting, and what is refused.

use super::{Scratch, wfhost};

const CHILD: &str =
    "export const meta = { name: 'child', description: 'c' };\nreturn { from: 'DIR', args };";

fn run(dir: &std::path::Path, body: &str) -> serde_json::Value {
    std::fs::write(
        dir.join("parent.js"),
        format!("export const meta = {{ name: 'p', description: 'p' }};\n{body}"),
    )
    .unwrap();
    let out = wfhost(["run", "parent.js", "--backend", "mock", "--json", "--yes"])
        .dir(dir)
        .run();
    out.report()
}

#[test]
fn closest_project_directory_wins_and_project_beats_personal() {
    let s = Scratch::new();
    std::fs::create_dir(s.path().join(".git")).unwrap();
    s.file(".wfhost/workflows/child.js", CHILD.replace("DIR", "root"));
    s.file(
        "sub/.claude/workflows/child.js",
        CHILD.replace("DIR", "sub"),
    );
    s.file(
        "home/.claude/workflows/child.js",
        CHILD.replace("DIR", "home"),
    );
    s.file(
        "home/.claude/workflows/mine.js",
        CHILD.replace("DIR", "personal"),
    );
    let body = "return [await workflow('child', 1), await workflow('mine')];";
    std::fs::write(
        s.path().join("sub/parent.js"),
        format!("export const meta = {{ name: 'p', description: 'p' }};\n{body}"),
    )
    .unwrap();
    let out = wfhost(["run", "parent.js", "--backend", "mock", "--json", "--yes"])
        .dir(s.path().join("sub"))
        .env("HOME", s.path().join("home"))
        .run();
    let r = out.report();
    assert_eq!(
        r["result"],
        serde_json::json!([{"from": "sub", "args": 1}, {"from": "personal"}]),
        "{r}"
    );
    assert_eq!(r["logs"][0], "▸ running dynamic workflow child");
}

#[test]
fn nesting_is_limited_to_one_level() {
    let s = Scratch::new();
    s.file(
        ".wfhost/workflows/inner.js",
        "export const meta = { name: 'inner', description: 'i' };\nreturn 1;",
    );
    s.file(
        "kids/outer.js",
        "export const meta = { name: 'outer', description: 'o' };\ntry { await workflow('inner'); } catch (e) { return String(e); }",
    );
    let r = run(
        s.path(),
        "return await workflow({ scriptPath: 'kids/outer.js' });",
    );
    assert!(
        r["result"]
            .as_str()
            .unwrap()
            .starts_with("Error: workflow() cannot be called from within a child workflow"),
        "{r}"
    );
}

#[cfg(unix)]
#[test]
fn symlinks_and_escapes_are_refused() {
    let s = Scratch::new();
    let outside = Scratch::new();
    let target = outside.file(
        "evil.js",
        "export const meta = { name: 'evil', description: 'e' };\nreturn 'ran';",
    );
    std::fs::create_dir_all(s.path().join(".wfhost/workflows")).unwrap();
    std::os::unix::fs::symlink(&target, s.path().join(".wfhost/workflows/evil.js")).unwrap();
    std::os::unix::fs::symlink(&target, s.path().join("link.js")).unwrap();

    let r = run(
        s.path(),
        "const out = [];\n\
         for (const t of ['evil', { scriptPath: 'link.js' }, { scriptPath: '../x/evil.js' }, { scriptPath: '/etc/passwd' }])\n\
           try { out.push(await workflow(t)); } catch (e) { out.push(String(e)); }\n\
         return out;",
    );
    let out: Vec<String> = r["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert!(out[0].contains("is a symlink"), "{out:?}");
    assert!(out[1].contains("is a symlink"), "{out:?}");
    assert!(
        out[2].contains("inside the current directory") || out[2].contains("no such file"),
        "{out:?}"
    );
    assert!(out[3].contains("must name a `.js` file"), "{out:?}");
    assert!(!out.iter().any(|o| o == "ran"));

    let direct = wfhost(["run", "evil", "--backend", "mock", "--yes"])
        .dir(s.path())
        .run();
    assert_ne!(direct.code, 0);
    assert!(direct.stderr.contains("is a symlink"), "{}", direct.stderr);
}

#[test]
fn temporary_provider_failures_exit_75() {
    let s = Scratch::new();
    let r = run(
        s.path(),
        "const a = await agent('x [transient]');\nif (a === null) throw new Error('no answer');",
    );
    assert_eq!(r["outcome"], "failed");
    assert_eq!(r["exit_code"], 75);
    assert_eq!(
        r["logs"][0],
        "[x [transient]] failed: API Error: 529 overloaded for x [transient]"
    );
}

/// `save --personal`, `list` and `run NAME` agree on where personal workflows live when
/// `XDG_CONFIG_HOME` is set (they did not: save wrote under it, list and run looked in ~/.config).
#[test]
fn personal_workflows_follow_xdg_config_home() {
    let s = Scratch::new();
    let (home, xdg) = (s.path().join("home"), s.path().join("xdg"));
    s.file(
        "mine.js",
        "export const meta = { name: 'mine', description: 'my own' };\nreturn 'personal';",
    );
    let wf = |args: &[&str]| {
        wfhost(args)
            .dir(s.path())
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", &xdg)
    };
    wf(&["save", "mine.js", "--personal"]).run().code(0);
    assert!(xdg.join("wfhost/workflows/mine.js").is_file());
    let list: serde_json::Value =
        serde_json::from_str(&wf(&["list", "--json"]).run().code(0).stdout).unwrap();
    assert_eq!(list[0]["name"], "mine", "{list}");
    assert_eq!(list[0]["scope"], "personal");
    let out = wf(&["run", "mine", "--backend", "mock", "--json", "--yes"]).run();
    out.code(0);
    assert_eq!(out.report()["result"], "personal");
}
