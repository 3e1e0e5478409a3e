//! `workflow()` and saved workflows: lookup order, nesting, and what is refused.

use super::{Project, wfhost};

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
    let s = Project::new();
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
    let s = Project::new();
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
    let s = Project::new();
    let outside = Project::new();
    let target = outside.file(
        "evil.js",
        "export const meta = { name: 'evil', description: 'e' };\nreturn 'ran';",
    );
    std::fs::create_dir_all(s.path().join(".wfhost/workflows")).unwrap();
    std::os::unix::fs::symlink(&target, s.path().join(".wfhost/workflows/evil.js")).unwrap();
    std::os::unix::fs::symlink(&target, s.path().join("link.js")).unwrap();

    let outside_name = outside
        .path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let probes = [
        "link.js".to_string(),
        format!("../{outside_name}/evil.js"),
        "../no-such-dir/evil.js".to_string(),
        "/etc/passwd".to_string(),
        "sub/../../../root/.ssh/id.js".to_string(),
        "missing.js".to_string(),
    ];
    let list = probes
        .iter()
        .map(|p| format!("{{ scriptPath: {p:?} }}"))
        .collect::<Vec<_>>()
        .join(", ");
    let r = run(
        s.path(),
        &format!(
            "const out = [];\n\
             for (const t of ['evil', {list}])\n\
               try {{ out.push(await workflow(t)); }} catch (e) {{ out.push(String(e)); }}\n\
             return out;"
        ),
    );
    let out: Vec<String> = r["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert!(out[0].contains("is a symlink"), "{out:?}");
    assert!(!out.iter().any(|o| o == "ran"));
    // Every scriptPath refusal is worded the same whatever exists on disk (an existing file
    // outside, a missing one, a symlink, an absolute path), and names no host path.
    let generic: Vec<String> = out[1..]
        .iter()
        .zip(&probes)
        .map(|(o, p)| o.replace(p.as_str(), "P"))
        .collect();
    assert!(
        generic.iter().all(|g| g == &generic[0])
            && generic[0].contains("no workflow script at that path"),
        "{generic:#?}"
    );
    let home = std::env::var("HOME").unwrap_or_default();
    let mut cleaned = vec![out[0].clone()];
    cleaned.extend(generic.iter().cloned());
    for o in &cleaned {
        assert!(
            !o.contains(&*s.path().to_string_lossy())
                && !o.contains(&*outside.path().to_string_lossy()),
            "a host path leaked: {o}"
        );
        assert!(
            home.is_empty() || !o.contains(&home),
            "a host path leaked: {o}"
        );
    }

    let direct = s.wf(["run", "evil", "--backend", "mock", "--yes"]).run();
    assert_ne!(direct.code, 0);
    assert!(direct.stderr.contains("is a symlink"), "{}", direct.stderr);
}

#[test]
fn temporary_provider_failures_exit_75() {
    let s = Project::new();
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
    // A script that returns although every agent failed is never a green success: 75 when the
    // failures were the provider's and may pass, 65 when they were not; one answer is enough.
    let r = run(
        s.path(),
        "const rs = await parallel([() => agent('x [transient]'), () => agent('y [transient]')]);
return rs;",
    );
    assert_eq!(
        (r["outcome"].as_str(), r["exit_code"].as_u64()),
        (Some("completed"), Some(75)),
        "{r}"
    );
    let r = run(s.path(), "return [await agent('x [fail]')];");
    assert_eq!(
        (r["outcome"].as_str(), r["exit_code"].as_u64()),
        (Some("completed"), Some(65)),
        "{r}"
    );
    let r = run(
        s.path(),
        "return await parallel([() => agent('x [transient]'), () => agent('fine')]);",
    );
    assert_eq!(r["exit_code"], 0, "{r}");
}

/// `save --personal`, `list` and `run NAME` agree on where personal workflows live when
/// `XDG_CONFIG_HOME` is set (they did not: save wrote under it, list and run looked in ~/.config).
#[test]
fn personal_workflows_follow_xdg_config_home() {
    let s = Project::new();
    let (home, xdg) = (s.path().join("home"), s.path().join("xdg"));
    s.file(
        "mine.js",
        "export const meta = { name: 'mine', description: 'my own' };\nreturn 'personal';",
    );
    let wf = |args: &[&str]| s.wf(args).env("HOME", &home).env("XDG_CONFIG_HOME", &xdg);
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

/// `workflow({scriptPath})` on a FIFO used to block forever (ignoring the CPU limit, SIGTERM and
/// SIGINT); it is refused at once like any other path that is not a regular file.
#[test]
fn a_fifo_cannot_hang_the_host() {
    let s = Project::new();
    let fifo = s.path().join("pipe.js");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    s.file(
        "parent.js",
        "export const meta = { name: 'p', description: 'p' };\ntry { return await workflow({ scriptPath: 'pipe.js' }); } catch (e) { return String(e); }",
    );
    let mut child = s
        .wf(["run", "parent.js", "--backend", "mock", "--json", "--yes"])
        .spawn();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("the run hung on a FIFO");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(
        out.stdout
            .split(|b| *b == b'\n')
            .find(|l| !l.is_empty())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert!(
        report["result"]
            .as_str()
            .unwrap()
            .contains("no workflow script at that path"),
        "{report}"
    );
}

/// Agent definitions as Claude Code users write them (`.claude/agents/*.md`): `wfhost agents`
/// lists them beside the built-ins, `agent({agentType})` accepts them, and the backend receives
/// the definition's system prompt and model (the `command` backend shows what it was sent).
#[test]
fn agent_definitions_are_listed_and_applied() {
    let s = Project::new();
    std::fs::create_dir(s.path().join(".git")).unwrap();
    s.file(
        ".claude/agents/reviewer.md",
        "---\nname: reviewer\ndescription: reviews code for bugs\ntools: Read, Grep\nmodel: claude-haiku-4-5\n---\nYou are a meticulous reviewer. Report only real bugs.\n",
    );
    s.file(
        "echo.py",
        "import json, sys\nr = json.load(sys.stdin)\nprint(json.dumps({'text': r['system'].split('\\n\\n')[-1] + ' | ' + str(r.get('agent', {}).get('model'))}))\n",
    );
    s.file(
        "wfhost.toml",
        "backend = \"command\"\n[command]\nprogram = \"python3\"\nargs = [\"echo.py\"]\n",
    );
    s.file(
        "w.js",
        "export const meta = { name: 'typed', description: 'agent types' };\nreturn await agent('look at it', { agentType: 'reviewer' });\n",
    );
    let listed = s.wf(["agents", "--json"]).run();
    listed.code(0);
    let defs: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
    let names: Vec<&str> = defs
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "general-purpose",
            "Explore",
            "Plan",
            "claude",
            "statusline-setup",
            "reviewer"
        ]
    );
    assert_eq!(defs[5]["tools"], serde_json::json!(["Read", "Grep"]));
    assert_eq!(
        defs[1]["tools"],
        serde_json::json!(["Read", "Glob", "Grep"])
    );
    let out = s.wf(["run", "w.js", "--yes", "--json"]).run();
    out.code(0);
    assert_eq!(
        out.report()["result"],
        "You are a meticulous reviewer. Report only real bugs. | claude-haiku-4-5",
        "{}",
        out.stderr
    );
}

/// An unknown agent type's error lists the built-in and project types together, sorted as the
/// reference sorts them (`localeCompare`): `alpha` before `Beta` before `claude`, where byte
/// order would put `Beta` and `Explore` first.
#[test]
fn unknown_agent_types_list_every_type_in_locale_order() {
    let s = Project::new();
    std::fs::create_dir(s.path().join(".git")).unwrap();
    s.file(
        ".claude/agents/alpha.md",
        "---\nname: alpha\ndescription: a\n---\nA.\n",
    );
    s.file(
        ".claude/agents/Beta.md",
        "---\nname: Beta\ndescription: b\n---\nB.\n",
    );
    s.file(
        "w.js",
        "export const meta = { name: 'typed', description: 'agent types' };\ntry { await agent('x', { agentType: 'nope' }); } catch (e) { return e.message; }\n",
    );
    let out = s
        .wf(["run", "w.js", "--yes", "--json", "--backend", "mock"])
        .run();
    out.code(0);
    assert_eq!(
        out.report()["result"],
        "agent({agentType}): agent type 'nope' not found. Available agents: alpha, Beta, claude, Explore, general-purpose, Plan, statusline-setup",
        "{}",
        out.stderr
    );
}

/// The bundled workflows ship with the binary: listed as built-in, shown, and run by name
/// (deep-research refuses to start without a question, naming the fix; with one it runs its
/// scope → search/extract pipeline → three votes per claim → synthesis on the mock model).
#[test]
fn bundled_workflows_are_listed_and_run_by_name() {
    let s = Project::new();
    std::fs::create_dir(s.path().join(".git")).unwrap();
    let listed = s.wf(["list", "--json"]).run();
    listed.code(0);
    let list: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
    let builtins: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["scope"] == "built-in")
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(builtins, ["code-review", "deep-research"], "{list}");
    let shown = s.wf(["show", "deep-research"]).run();
    shown.code(0);
    assert!(shown.stdout.contains("(built in)"), "{}", shown.stdout);

    let refused = s
        .wf([
            "run",
            "deep-research",
            "--backend",
            "mock",
            "--yes",
            "--json",
        ])
        .run();
    assert!(
        refused.report()["error"]
            .as_str()
            .unwrap()
            .contains("deep-research needs a question"),
        "{}",
        refused.stdout
    );
    let out = s
        .wf([
            "run",
            "deep-research",
            "--args",
            "\"why is the sky blue\"",
            "--backend",
            "mock",
            "--yes",
            "--json",
        ])
        .run();
    out.code(0);
    let r = out.report();
    assert_eq!(r["result"]["question"], "why is the sky blue");
    assert!(
        r["result"]["answer"].as_str().unwrap().starts_with("R("),
        "{r}"
    );
    assert!(
        r["logs"][0].as_str().unwrap().contains("need web search"),
        "says what its agents need: {r}"
    );
    let review = s
        .wf(["run", "code-review", "--backend", "mock", "--yes", "--json"])
        .run();
    review.code(0);
    assert!(
        review.report()["result"]["findings"].is_array(),
        "{}",
        review.stdout
    );
}
