//! What CI systems read of a run: `--junit FILE` (parsed here by Python's own XML parser, as a
//! CI server would parse it) and, under GitHub Actions, the job summary and annotations.

use super::Project;
use serde_json::Value;

const SCRIPT: &str = "phase('Review');\nconst r = await parallel([() => agent('look at a.rs', { label: 'a.rs' }), () => agent('look at b.rs [fail]', { label: 'b.rs' })]);\nphase('Sum up');\nreturn { sum: await agent('sum up', { label: 'summary' }), r };";

/// The JUnit file's shape, as Python's `xml.etree` reads it: suites with their counts, and
/// each testcase with its failure message, if any.
fn parse_junit(path: &std::path::Path) -> Value {
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import json, sys, xml.etree.ElementTree as ET\n\
             root = ET.parse(sys.argv[1]).getroot()\n\
             print(json.dumps({'tag': root.tag, 'tests': root.get('tests'), 'failures': root.get('failures'), 'errors': root.get('errors'),\n\
               'suites': [{'name': s.get('name'), 'tests': s.get('tests'), 'failures': s.get('failures'),\n\
                 'cases': [{'name': c.get('name'), 'failure': (c.find('failure').get('message') if c.find('failure') is not None else None),\n\
                            'error': (c.find('error').get('message') if c.find('error') is not None else None)} for c in s.findall('testcase')]}\n\
                 for s in root.findall('testsuite')]}))",
        )
        .arg(path)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn junit_has_a_testcase_per_agent_and_one_failure() {
    let p = Project::with_script(SCRIPT);
    let junit = p.path().join("report.xml");
    let out = p.run_mock(&["--junit", junit.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let j = parse_junit(&junit);
    assert_eq!(j["tag"], "testsuites");
    assert_eq!(
        (
            j["tests"].as_str(),
            j["failures"].as_str(),
            j["errors"].as_str()
        ),
        (Some("3"), Some("1"), Some("0")),
        "{j}"
    );
    let suites = j["suites"].as_array().unwrap();
    assert_eq!(suites.len(), 2, "one testsuite per phase: {j}");
    assert_eq!(suites[0]["name"], "Review");
    assert_eq!(suites[0]["failures"], "1");
    let cases = suites[0]["cases"].as_array().unwrap();
    assert_eq!(cases[0]["name"], "a.rs");
    assert_eq!(cases[0]["failure"], Value::Null);
    assert_eq!(cases[1]["name"], "b.rs");
    assert!(
        cases[1]["failure"]
            .as_str()
            .unwrap()
            .contains("forced failure"),
        "{j}"
    );
    assert_eq!(suites[1]["name"], "Sum up");
    assert_eq!(suites[1]["cases"][0]["name"], "summary");

    // The script's own error is an error of a `script` suite.
    let p = Project::with_script("await agent('one');\nthrow new Error('no <good> & done');");
    let out = p.run_mock(&["--junit", junit.to_str().unwrap()]);
    assert_ne!(out.code, 0);
    let j = parse_junit(&junit);
    assert_eq!(j["errors"], "1", "{j}");
    let script = j["suites"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(script["name"], "script");
    assert!(
        script["cases"][0]["error"]
            .as_str()
            .unwrap()
            .contains("no <good> & done"),
        "escaped and read back: {j}"
    );

    // A path that cannot be written is a usage error naming it.
    let p = Project::with_script("return 1;");
    let out = p.run_mock(&["--junit", "/nonexistent/dir/r.xml"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("cannot write the JUnit report `/nonexistent/dir/r.xml`"),
        "{}",
        out.stderr
    );
}

#[test]
fn under_github_actions_a_summary_and_annotations_are_written() {
    let p = Project::with_script(SCRIPT);
    let summary = p.path().join("summary.md");
    std::fs::write(&summary, "earlier step\n").unwrap();
    let out = p
        .wf(["run", "w.js", "--backend", "mock", "--yes", "--json"])
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", &summary)
        .run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    // stdout stays one JSON report.
    assert!(out.report()["run_id"].is_string());
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(md.starts_with("earlier step\n"), "appended: {md}");
    assert!(md.contains("### ⚠️ wfhost `probe`: completed"), "{md}");
    assert!(
        md.contains("| agents done | failed |") && md.contains("| 2 | 1 | 0 |"),
        "{md}"
    );
    assert!(
        md.contains("| b.rs (1) | API Error: 400 forced failure"),
        "{md}"
    );
    let errors: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("::error "))
        .collect();
    assert_eq!(errors.len(), 1, "{}", out.stderr);
    assert!(
        errors[0].starts_with("::error title=wfhost probe%3A agent `b.rs` failed::"),
        "{}",
        errors[0]
    );
    // Outside GitHub Actions: nothing of the kind.
    let plain = p.run_mock(&[]);
    assert!(!plain.stderr.contains("::error"), "{}", plain.stderr);
}

/// `wfhost schema report|events` print the JSON Schemas committed under docs/schemas/ (a type
/// change that is not re-committed fails here), and real outputs validate against them: the
/// `--json` report of a run with a failed agent and of a script error, and every `--events`
/// line of a run with phases, logs, a failure and a cached agent.
#[test]
fn reports_and_events_validate_against_wfhost_schema() {
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/schemas");
    let p = Project::with_script(&format!("console.log('starting');\n{SCRIPT}"));
    let schema = |what: &str| -> Value {
        let out = p.wf(["schema", what]).run();
        out.code(0);
        let printed: Value = serde_json::from_str(&out.stdout).unwrap();
        let committed: Value = serde_json::from_str(
            &std::fs::read_to_string(docs.join(format!("{what}.schema.json"))).unwrap_or_default(),
        )
        .unwrap_or_default();
        assert_eq!(
            printed, committed,
            "docs/schemas/{what}.schema.json is out of date: `wfhost schema {what} > docs/schemas/{what}.schema.json`"
        );
        printed
    };
    let report = jsonschema::validator_for(&schema("report")).unwrap();
    let events = jsonschema::validator_for(&schema("events")).unwrap();
    let check = |v: &jsonschema::Validator, instance: &Value| {
        let errors: Vec<String> = v.iter_errors(instance).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{errors:?}\n{instance}");
    };

    let log = p.path().join("events.jsonl");
    let out = p.run_mock(&["--events", log.to_str().unwrap()]);
    out.code(0);
    let r = out.report();
    assert_eq!(r["usage"]["agents_failed"], 1, "{r}");
    check(&report, &r);
    let lines = std::fs::read_to_string(&log).unwrap();
    let mut types = std::collections::BTreeSet::new();
    for line in lines.lines() {
        let e: Value = serde_json::from_str(line).unwrap();
        check(&events, &e);
        types.insert(e["type"].as_str().unwrap().to_string());
    }
    for t in [
        "run_started",
        "phase",
        "log",
        "agent_started",
        "agent_finished",
        "agent_failed",
        "run_finished",
    ] {
        assert!(types.contains(t), "{t} in {types:?}");
    }
    // A resume (cached agents) and a script error validate too.
    let id = r["run_id"].as_str().unwrap();
    let resumed = p
        .wf([
            "resume",
            id,
            "--yes",
            "--json",
            "--events",
            log.to_str().unwrap(),
        ])
        .run();
    check(&report, &resumed.report());
    let lines = std::fs::read_to_string(&log).unwrap();
    assert!(lines.contains("\"type\":\"agent_cached\""), "{lines}");
    for line in lines.lines() {
        check(&events, &serde_json::from_str(line).unwrap());
    }
    let failing = Project::with_script("throw new Error('no');");
    let out = failing.run_mock(&[]);
    assert_eq!(out.code, 65, "{}", out.stderr);
    check(&report, &out.report());
    // The schema can fail: a report missing its outcome does not validate.
    let mut broken = r.clone();
    broken.as_object_mut().unwrap().remove("outcome");
    assert!(!report.is_valid(&broken));
}

/// `shell` in `dir` as a CI runner starts a step: nothing of this machine's environment, the
/// wfhost under test on PATH, and a home of its own in `dir`.
fn ci_shell(dir: &std::path::Path, shell: &str) -> std::process::Command {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_wfhost"))
        .parent()
        .unwrap();
    let home = dir.join("home");
    let mut cmd = std::process::Command::new(shell);
    cmd.current_dir(dir)
        .env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_CACHE_HOME", home.join(".cache"))
        .env("WFHOST_CACHE_DIR", super::cache_dir());
    cmd
}

/// action.yml: a composite action with the inputs CI users need, whose outputs all come from
/// the `run` step, which runs .github/action/run.sh.
fn check_action_yml(repo: &std::path::Path) {
    let shape = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import json, sys, yaml\n\
             a = yaml.safe_load(open(sys.argv[1]))\n\
             print(json.dumps({'using': a['runs']['using'], 'inputs': sorted(a['inputs']),\n\
               'outputs': {k: v['value'] for k, v in a['outputs'].items()},\n\
               'steps': [s.get('id') or s.get('name') for s in a['runs']['steps']],\n\
               'run': [s['run'] for s in a['runs']['steps'] if s.get('id') == 'run']}))",
        )
        .arg(repo.join("action.yml"))
        .output()
        .expect("python3 runs");
    assert!(
        shape.status.success(),
        "{}",
        String::from_utf8_lossy(&shape.stderr)
    );
    let shape: Value = serde_json::from_slice(&shape.stdout).unwrap();
    assert_eq!(shape["using"], "composite");
    for input in [
        "approve",
        "args",
        "backend",
        "budget-tokens",
        "concurrency",
        "max-agents",
        "max-cost",
        "model",
        "script",
    ] {
        assert!(
            shape["inputs"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i == input),
            "{input}: {shape}"
        );
    }
    for output in ["run-id", "outcome", "cost-usd", "result-path"] {
        assert_eq!(
            shape["outputs"][output],
            format!("${{{{ steps.run.outputs.{output} }}}}"),
            "{shape}"
        );
    }
    assert!(
        shape["run"][0]
            .as_str()
            .unwrap()
            .contains(".github/action/run.sh"),
        "{shape}"
    );
}

/// The GitHub Action (action.yml) run locally: its outputs are the run step's, and that step
/// (.github/action/run.sh), with `GITHUB_*` at temp files and `wfhost` on PATH, runs the script
/// under the inputs' flags and writes the outputs, the job summary and the JUnit file; without
/// `approve: true` the script is refused (77), with the reason as an annotation.
#[test]
fn the_actions_run_step_writes_its_outputs_and_summary() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    check_action_yml(&repo);

    let p = Project::with_script(SCRIPT);
    let step = |approve: &str| {
        let output = p.path().join(format!("output-{approve}"));
        let summary = p.path().join(format!("summary-{approve}"));
        let out = ci_shell(p.path(), "bash")
            .arg(repo.join(".github/action/run.sh"))
            .env("GITHUB_ACTIONS", "true")
            .env("GITHUB_OUTPUT", &output)
            .env("GITHUB_STEP_SUMMARY", &summary)
            .env("RUNNER_TEMP", p.path())
            .env("INPUT_SCRIPT", "w.js")
            .env("INPUT_BACKEND", "mock")
            .env("INPUT_MAX_AGENTS", "10")
            .env("INPUT_ARGS", "{\"who\": \"ci\"}")
            .env("INPUT_JUNIT", "junit.xml")
            .env("INPUT_APPROVE", approve)
            .output()
            .unwrap();
        let read = |f: &std::path::Path| std::fs::read_to_string(f).unwrap_or_default();
        (out, read(&output), read(&summary))
    };

    let (out, outputs, summary) = step("false");
    assert_eq!(out.status.code(), Some(77), "{out:?}");
    assert!(outputs.contains("exit-code=77"), "{outputs}");
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("::error title=wfhost::the workflow script was not approved"),
        "{out:?}"
    );
    assert!(summary.is_empty(), "no run, no summary: {summary}");

    let (out, outputs, summary) = step("true");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let get = |name: &str| {
        outputs
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("{name} in {outputs}"))
            .to_string()
    };
    let run_id = get("run-id");
    assert!(p.runs().join(&run_id).is_dir(), "{outputs}");
    assert_eq!(get("outcome"), "completed");
    assert_eq!(get("exit-code"), "0");
    assert!(get("cost-usd").parse::<f64>().is_ok(), "{outputs}");
    let result: Value =
        serde_json::from_str(&std::fs::read_to_string(get("result-path")).unwrap()).unwrap();
    assert!(
        result["sum"].as_str().unwrap().starts_with("R(sum up"),
        "{result}"
    );
    assert!(
        summary.contains("wfhost") && summary.contains(&run_id),
        "{summary}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("::error"),
        "the failed agent is annotated: {out:?}"
    );
    let junit = parse_junit(&p.path().join("junit.xml"));
    assert_eq!(junit["failures"], "1", "{junit}");
}

/// The GitLab CI template (ci/wfhost.gitlab-ci.yml) parses, and its job's script — run here as
/// a GitLab runner runs it, one shell, `wfhost` already installed — runs the script and leaves
/// the report and the JUnit file its artifacts name; unapproved, it is refused (77).
#[test]
fn the_gitlab_template_runs_a_workflow() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let script = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import sys, yaml\n\
             job = yaml.safe_load(open(sys.argv[1]))['.wfhost']\n\
             assert job['artifacts']['reports']['junit'] == 'wfhost-junit.xml'\n\
             print('\\n'.join(job['script']))",
        )
        .arg(repo.join("ci/wfhost.gitlab-ci.yml"))
        .output()
        .expect("python3 runs");
    assert!(
        script.status.success(),
        "{}",
        String::from_utf8_lossy(&script.stderr)
    );
    let script = String::from_utf8(script.stdout).unwrap();
    let p = Project::with_script(SCRIPT);
    let job = |approve: &str| {
        ci_shell(p.path(), "sh")
            .args(["-ec", &script])
            .env("WFHOST_SCRIPT", "w.js")
            .env("WFHOST_APPROVE", approve)
            .env("WFHOST_ARGS", "{\"who\": \"ci\"}")
            .env("WFHOST_FLAGS", "--backend mock --max-agents 10")
            .output()
            .unwrap()
    };
    let refused = job("false");
    assert_eq!(refused.status.code(), Some(77), "{refused:?}");
    let ran = job("true");
    assert_eq!(ran.status.code(), Some(0), "{ran:?}");
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(p.path().join("wfhost-report.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(report["outcome"], "completed", "{report}");
    assert_eq!(
        parse_junit(&p.path().join("wfhost-junit.xml"))["failures"],
        "1"
    );
}

/// `scripts/dist.sh` (`just dist`) on the binary under test: the archive holds the binary,
/// completions, man pages, LICENSE and README, and checks against its sha256; the Debian
/// package holds the binary, man pages, completions and the worker's systemd unit, and its
/// `/usr/bin/wfhost` (unpacked with dpkg-deb, as `dpkg -i` would install it; CI installs it for
/// real) runs the README's main job.
#[test]
fn dist_builds_an_archive_and_a_debian_package_that_runs_the_demo() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap();
    let out = tempfile::tempdir().unwrap();
    let sh = |cmd: &str| {
        let o = std::process::Command::new("bash")
            .args(["-ec", cmd])
            .current_dir(out.path())
            .output()
            .unwrap();
        assert!(o.status.success(), "{cmd}: {o:?}");
        String::from_utf8(o.stdout).unwrap()
    };
    sh(&format!(
        "{}/scripts/dist.sh {} .",
        repo.display(),
        env!("CARGO_BIN_EXE_wfhost")
    ));
    sh("sha256sum --check --strict ./*.sha256");
    let listing = sh("tar -tzf wfhost-*-x86_64-unknown-linux-gnu.tar.gz");
    for f in [
        "/wfhost",
        "/LICENSE",
        "/README.md",
        "/completions/wfhost.bash",
        "/completions/_wfhost",
        "/completions/wfhost.fish",
        "/man/wfhost.1",
        "/man/wfhost-run.1",
        "/man/wfhost-resume.1",
    ] {
        assert!(listing.lines().any(|l| l.ends_with(f)), "{f} in {listing}");
    }
    let page = sh("tar -xzOf wfhost-*.tar.gz --wildcards '*/man/wfhost-run.1'");
    assert!(
        page.contains(".TH wfhost-run") && page.contains("max\\-cost"),
        "{page}"
    );

    let contents = sh("dpkg-deb --contents wfhost_*_amd64.deb");
    for f in [
        "./usr/bin/wfhost",
        "./usr/share/man/man1/wfhost.1.gz",
        "./usr/share/bash-completion/completions/wfhost",
        "./usr/lib/systemd/system/wfhost-worker.service",
        "./usr/share/doc/wfhost/copyright",
    ] {
        assert!(contents.contains(f), "{f} in {contents}");
    }
    let info = sh("dpkg-deb --field wfhost_*_amd64.deb Package Version Architecture");
    assert!(
        info.contains("Package: wfhost") && info.contains("Architecture: amd64"),
        "{info}"
    );
    sh("dpkg-deb -x wfhost_*_amd64.deb root");
    let unit = std::fs::read_to_string(
        out.path()
            .join("root/usr/lib/systemd/system/wfhost-worker.service"),
    )
    .unwrap();
    assert!(unit.contains("ExecStart=/usr/bin/wfhost worker"), "{unit}");
    let home = out.path().join("home");
    let demo = std::process::Command::new(out.path().join("root/usr/bin/wfhost"))
        .args([
            "run",
            "scripts/review.js",
            "--args-file",
            "scripts/review.args.json",
            "--backend",
            "replay:fixtures/review",
            "--yes",
            "--json",
            "--no-journal",
        ])
        .current_dir(&repo)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", &home)
        .env("XDG_CACHE_HOME", home.join(".cache"))
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .output()
        .unwrap();
    assert_eq!(demo.status.code(), Some(0), "{demo:?}");
    let report: Value = serde_json::from_slice(&demo.stdout).unwrap();
    assert_eq!(report["outcome"], "completed", "{report}");

    // The action's install step, on this release: `gh release download` (here a stand-in that
    // serves dist.sh's files and logs each call), the sha256 check, the unpacked binary on
    // GITHUB_PATH; a second run finds it cached and downloads nothing.
    let fakebin = out.path().join("fakebin");
    std::fs::create_dir_all(&fakebin).unwrap();
    let gh = fakebin.join("gh");
    std::fs::write(
        &gh,
        "#!/bin/bash\nset -e\necho \"$*\" >> \"$RELEASE_DIR/gh.log\"\n[ \"$1 $2\" = 'release download' ] || exit 3\nwhile [ $# -gt 0 ]; do case \"$1\" in --pattern) pattern=\"$2\"; shift 2;; --dir) dir=\"$2\"; shift 2;; *) shift;; esac; done\ncp \"$RELEASE_DIR\"/$pattern \"$dir\"\n",
    )
    .unwrap();
    sh(&format!("chmod +x {}", gh.display()));
    let install = || {
        std::process::Command::new("bash")
            .arg(repo.join(".github/action/install.sh"))
            .current_dir(out.path())
            .env_clear()
            .env("PATH", format!("{}:/usr/bin:/bin", fakebin.display()))
            .env("HOME", &home)
            .env("RELEASE_DIR", out.path())
            .env("WFHOST_VERSION", "v0.1.0")
            .env("WFHOST_REPOSITORY", "wfhost/wfhost")
            .env("GITHUB_PATH", out.path().join("github_path"))
            .output()
            .unwrap()
    };
    for _ in 0..2 {
        let o = install();
        assert!(o.status.success(), "{o:?}");
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("wfhost 0.1.0\n"),
            "{o:?}"
        );
    }
    let on_path = std::fs::read_to_string(out.path().join("github_path")).unwrap();
    let dir = home.join(".local/share/wfhost-action");
    assert!(
        on_path.lines().all(|l| l == dir.to_str().unwrap()),
        "{on_path}"
    );
    assert!(dir.join("wfhost").is_file());
    let calls = std::fs::read_to_string(out.path().join("gh.log")).unwrap();
    assert_eq!(
        calls.lines().count(),
        1,
        "downloaded once, then cached: {calls}"
    );
    assert!(
        calls.starts_with("release download v0.1.0 --repo wfhost/wfhost"),
        "{calls}"
    );
}
