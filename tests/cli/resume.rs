//! The journal and resume: no completed agent ever runs twice.

use super::{Out, Project};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What these tests ask of a project besides the shared fixture's: resuming, and reading
/// its runs' journals.
impl Project {
    fn resume(&self, id: &str) -> Out {
        self.wf(["resume", id, "--yes", "--json"]).run()
    }
    fn run_id(&self) -> Option<String> {
        std::fs::read_dir(self.runs())
            .ok()?
            .filter_map(std::result::Result::ok)
            .find(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
    }
    fn journal(&self, id: &str) -> String {
        std::fs::read_to_string(self.runs().join(id).join("journal.jsonl")).unwrap_or_default()
    }
    /// (key, occurrence) of every result record in the journal's complete lines.
    fn results(&self, id: &str) -> Vec<(String, u64)> {
        results(&self.journal(id))
    }
}

fn results(journal: &str) -> Vec<(String, u64)> {
    journal
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["type"] == "result")
        .map(|r| {
            (
                r["key"].as_str().unwrap().to_string(),
                r["occurrence"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn calls(report: &Value) -> u64 {
    report["backend_stats"]["calls"].as_u64().unwrap()
}

/// Starts the run, waits until the journal holds `n` results, then SIGKILLs it.
fn kill_after(p: &Project, n: usize) -> String {
    kill_after_with(p, n, &[])
}

/// `kill_after`, the run started with `extra` flags.
fn kill_after_with(p: &Project, n: usize, extra: &[&str]) -> String {
    let mut child = p
        .wf(["run", "w.js", "--backend", "mock", "--yes", "--json"])
        .args(extra)
        .spawn();
    let id = results_within(p, n);
    child.kill().unwrap();
    child.wait().unwrap();
    id.unwrap_or_else(|| panic!("the run never got {n} results"))
}

/// The run's id once its journal holds `n` results; `None` after 20 s (the caller stops the
/// run before failing).
fn results_within(p: &Project, n: usize) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(id) = p.run_id()
            && p.results(&id).len() >= n
        {
            return Some(id);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

const FAN: &str = "const a = await agent('A');\nconst b = await agent('B');\n\
    const ps = await parallel(Array.from({ length: 10 }, (_, i) => () => agent(PROMPT)));\n\
    const c = await agent('C ' + JSON.stringify(ps));\n\
    return { a, b, ps, c };";

#[test]
fn sigkill_then_resume_runs_exactly_the_unfinished_calls_then_an_edit_reruns_only_what_changed() {
    // P0..P4 answer at once, P5..P9 after 2 s: the kill lands after A, B, P0..P4 (7 results).
    let p =
        Project::with_script(&FAN.replace("PROMPT", "`P${i}` + (i < 5 ? '' : ' [delay=2000]')"));
    let id = kill_after(&p, 7);
    assert_eq!(p.results(&id).len(), 7);

    let r = p.resume(&id).report();
    assert_eq!(r["outcome"], "completed", "{r}");
    assert_eq!(r["usage"]["agents_cached"], 7);
    assert_eq!(calls(&r), 6, "exactly P5..P9 and C run again: {r}");
    let first = r["result"].clone();

    // Edit P7's prompt: P7 and C (whose prompt holds P7's answer) run; the rest is served.
    std::fs::write(
        p.path().join("w.js"),
        format!(
            "export const meta = {{ name: 'resume-probe', description: 'resume' }};\n{}",
            FAN.replace(
                "PROMPT",
                "`P${i}` + (i < 5 ? '' : ' [delay=2000]') + (i === 7 ? ' edited' : '')"
            )
        ),
    )
    .unwrap();
    let r = p.run_mock(&["--resume", &id]).report();
    assert_eq!(calls(&r), 2, "{r}");
    assert_eq!(r["usage"]["agents_cached"], 11);
    assert_eq!(r["result"]["ps"][7], "R(P7 [delay=2000] edited)");
    assert_eq!(r["result"]["ps"][6], first["ps"][6]);
}

#[test]
fn identical_calls_are_separate_entries_served_on_resume() {
    let p = Project::with_script(
        "return await parallel([() => agent('same'), () => agent('same'), () => agent('other')]);",
    );
    let r = p.run_mock(&[]).report();
    let id = r["run_id"].as_str().unwrap().to_string();
    let entries = p.results(&id);
    assert_eq!(entries.len(), 3);
    assert_eq!(
        entries.iter().filter(|(_, occ)| *occ == 1).count(),
        1,
        "{entries:?}"
    );
    let again = p.resume(&id).report();
    assert_eq!(calls(&again), 0);
    assert_eq!(again["usage"]["agents_cached"], 3);
    assert_eq!(again["result"], json!(["R(same)", "R(same)", "R(other)"]));
}

#[test]
fn a_failed_agent_reruns_on_resume_and_its_neighbours_do_not() {
    let p = Project::with_script(
        "return await parallel([() => agent('ok one'), () => agent('flaky'), () => agent('ok two')]);",
    );
    let r = p
        .wf(["run", "w.js", "--backend", "mock", "--yes", "--json"])
        .env("WFHOST_MOCK_FAIL", "flaky")
        .run()
        .report();
    assert_eq!(r["result"], json!(["R(ok one)", null, "R(ok two)"]));
    let id = r["run_id"].as_str().unwrap();
    let again = p.resume(id).report();
    assert_eq!(calls(&again), 1, "{again}");
    assert_eq!(again["usage"]["agents_cached"], 2);
    assert_eq!(
        again["result"],
        json!(["R(ok one)", "R(flaky)", "R(ok two)"])
    );
}

#[test]
fn a_running_run_cannot_be_resumed_and_sigterm_stops_it_cleanly() {
    let p = Project::with_script("await agent('quick');\nreturn await agent('slow [delay=5000]');");
    let child = p.wf(["run", "w.js", "--backend", "mock", "--yes"]).spawn();
    let deadline = Instant::now() + Duration::from_secs(20);
    let id = loop {
        if let Some(id) = p.run_id()
            && !p.results(&id).is_empty()
        {
            break id;
        }
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    };
    let busy = p.resume(&id);
    busy.code(75);
    assert!(busy.stderr.contains("is still running"), "{}", busy.stderr);

    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("wfhost resume {id} --yes")),
        "{stderr}"
    );
    assert!(p.journal(&id).contains("\"type\":\"interrupted\""));

    let r = p.resume(&id).report();
    assert_eq!(r["usage"]["agents_cached"], 1);
    assert_eq!(r["result"], "R(slow [delay=5000])");
}

#[test]
fn runs_lists_shows_and_collects_garbage() {
    let p = Project::with_script("phase('Only');\nreturn await agent('listed');");
    let id = p.run_mock(&[]).report()["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let list: Value = serde_json::from_str(&p.wf(["runs", "--json"]).run().stdout).unwrap();
    assert_eq!(list[0]["run_id"], id.as_str());
    assert_eq!(list[0]["status"], "completed");
    assert_eq!(list[0]["agents_done"], 1);
    let show: Value =
        serde_json::from_str(&p.wf(["runs", "show", &id, "--json"]).run().stdout).unwrap();
    assert_eq!(show["phases"], json!(["Only"]));
    assert_eq!(show["agents"][0]["label"], "listed");
    assert_eq!(show["agents"][0]["phase"], "Only");
    assert_eq!(show["result"], "R(listed)");

    p.wf(["runs", "gc", "--older-than", "30d"]).run().code(0);
    assert!(p.runs().join(&id).exists(), "a new run is kept");
    std::thread::sleep(Duration::from_millis(1100));
    let gc = p.wf(["runs", "gc", "--older-than", "1s"]).run();
    assert!(
        gc.stdout.contains(&format!("removed {id}")),
        "{}",
        gc.stdout
    );
    assert!(!p.runs().join(&id).exists());
}

/// SIGKILL at random moments: the journal always loads, a resume never re-runs a completed
/// agent, and the final result equals an uninterrupted run's.
#[test]
fn crash_property() {
    let script = "const first = await parallel(Array.from({ length: 6 }, (_, i) => () => agent(`a${i} [delay=${(i * 7) % 25}]`)));\n\
                  const dup = await parallel([() => agent('dup'), () => agent('dup')]);\n\
                  const chain = await pipeline(['x', 'y', 'z'], (v) => agent(`s1 ${v} [delay=9]`), (prev) => agent(`s2 ${prev}`));\n\
                  const last = await agent('last ' + first.join('|'));\n\
                  return { first, dup, chain, last };";
    let reference = Project::with_script(script).run_mock(&[]).report()["result"].clone();
    let iterations: u64 = std::env::var("WFHOST_CRASH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut resumed = 0;
    for i in 0..iterations {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let kill_at = Duration::from_millis((seed >> 33) % 90);
        let p = Project::with_script(script);
        let mut child = p
            .wf([
                "run",
                "w.js",
                "--backend",
                "mock",
                "--yes",
                "--json",
                "--quiet",
            ])
            .spawn();
        std::thread::sleep(kill_at);
        let _ = child.kill();
        let _ = child.wait();
        let Some(id) = p
            .run_id()
            .filter(|id| p.journal(id).contains("\"type\":\"run_started\""))
        else {
            continue; // killed before the run's first record: nothing to resume
        };
        let before: HashSet<(String, u64)> = p.results(&id).into_iter().collect();
        let loads = p.wf(["runs", "show", &id, "--json"]).run();
        assert_eq!(
            loads.code, 0,
            "iteration {i}: the journal must load: {}",
            loads.stderr
        );

        let r = p.resume(&id).report();
        assert_eq!(
            r["result"], reference,
            "iteration {i} (kill at {kill_at:?})"
        );
        // What the resume ran: the results after its own run_started record.
        let after = p.journal(&id);
        let resume_start = after.rfind("{\"type\":\"run_started\"").unwrap();
        let rerun: Vec<(String, u64)> = results(&after[resume_start..]);
        for entry in &rerun {
            assert!(
                !before.contains(entry),
                "iteration {i}: {entry:?} ran again after completing"
            );
        }
        assert_eq!(
            usize::try_from(r["usage"]["agents_cached"].as_u64().unwrap()).unwrap(),
            before.len(),
            "iteration {i}"
        );
        resumed += 1;
    }
    assert!(
        resumed >= iterations / 2,
        "only {resumed} of {iterations} iterations got far enough to resume"
    );
}

/// A run keeps its ceilings across a resume: interrupted under `--budget-tokens 20`, it comes
/// back under the same budget (it used to come back with none and run every agent), a flag may
/// tighten a ceiling, and a flag that raises one is refused.
#[test]
fn resume_keeps_the_runs_ceilings() {
    let script = "const out = [];\nfor (let i = 0; i < 12; i++) { try { out.push(await agent(`step ${i}` + (i < 2 ? '' : ' [delay=400]'))); } catch (e) { out.push(e.name); break; } }\nreturn out;";
    let whole = Project::with_script(script);
    let expected = whole.run_mock(&["--budget-tokens", "20"]);
    expected.code(0);
    let expected = expected.report()["result"].clone();
    assert!(
        expected.as_array().unwrap().len() < 12
            && expected.to_string().contains("WorkflowBudgetError"),
        "the budget stops the loop: {expected}"
    );

    let p = Project::with_script(script);
    let id = kill_after_with(&p, 2, &["--budget-tokens", "20"]);

    let raised = p
        .wf(["resume", &id, "--yes", "--json", "--budget-tokens", "30"])
        .run();
    raised.code(2);
    assert!(
        raised
            .stderr
            .contains("`--budget-tokens` 30 is more than the 20 the run was started with")
            && raised.stderr.contains("hint: a resume keeps the ceilings"),
        "{}",
        raised.stderr
    );

    let resumed = p.resume(&id);
    resumed.code(0);
    let r = resumed.report();
    assert_eq!(r["result"], expected, "{r}");
    assert_eq!(r["ceilings"]["budget_tokens"], 20);
    assert_eq!(r["ceilings_note"], "resumed under the run's own ceilings");

    let tightened = p
        .wf(["resume", &id, "--yes", "--json", "--max-cost", "1"])
        .run();
    tightened.code(0);
    assert_eq!(
        tightened.report()["ceilings_note"],
        "resumed under the run's own ceilings, tightened by flags: max_cost"
    );
}

/// A run on recorded answers resumes on the same recording (it used to fail with "unknown
/// backend `replay`").
#[test]
fn a_replay_run_resumes_on_its_recording() {
    let p = Project::with_script(
        "const a = await agent('one');\nconst b = await agent('two');\nreturn [a, b];",
    );
    p.run_mock(&["--record", "rec"]).code(0);
    let out = p
        .wf(["run", "w.js", "--backend", "replay:rec", "--yes", "--json"])
        .run();
    out.code(0);
    let id = out.report()["run_id"].as_str().unwrap().to_string();
    let resumed = p.resume(&id);
    resumed.code(0);
    let r = resumed.report();
    assert_eq!(r["result"], json!(["R(one)", "R(two)"]), "{r}");
    assert_eq!(r["backend"], "replay");
}

/// A tmpfs mounted for one test and unmounted when dropped: a disk the test can fill.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(dir.to_path_buf()))
    }

    /// Writes a file until the disk is full; returns its path.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let path = self.0.join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 16 << 10];
        while f.write_all(&chunk).is_ok() {}
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// A full disk must not poison the journal: the run stops at the first record it cannot write
/// (exit 75, its report and the resume command), the journal stays valid, and once space is
/// back a resume serves every result saved before (none is asked again).
#[test]
fn a_full_disk_stops_the_run_and_resume_loses_nothing() {
    let p = Project::with_script(
        "const out = [];\nfor (let i = 0; i < 30; i++) out.push(await agent(`p${i} ` + 'x'.repeat(3000) + (i < 3 ? '' : ' [delay=150]')));\nreturn out.length;",
    );
    let Some(disk) = Tmpfs::mount(&p.runs(), "4m") else {
        super::missing_tool(
            "a_full_disk_stops_the_run_and_resume_loses_nothing",
            "cannot mount a tmpfs (needs root)",
        );
        return;
    };
    let mut child = p
        .wf(["run", "w.js", "--backend", "mock", "--yes", "--json"])
        .spawn();
    let Some(id) = results_within(&p, 3) else {
        child.kill().unwrap();
        child.wait().unwrap();
        panic!("the run never got 3 results");
    };
    let filler = disk.fill();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(75), "{stdout}");
    let report: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let error = report["error"].as_str().unwrap();
    assert!(
        error.contains("the run journal could not be written")
            && error.contains("No space left on device")
            && error.contains(&format!("wfhost resume {id} --yes")),
        "{error}"
    );
    // Every line of the journal is a whole record.
    let journal = p.journal(&id);
    for line in journal.lines() {
        serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    }
    let saved = p.results(&id).len();
    assert!((3..30).contains(&saved), "{saved} results saved");

    std::fs::remove_file(filler).unwrap();
    let resumed = p.resume(&id);
    resumed.code(0);
    let r = resumed.report();
    assert_eq!(r["result"], 30);
    assert_eq!(
        calls(&r),
        30 - saved as u64,
        "every saved result is served; only the rest is asked"
    );
}

/// Every journal record is sealed with a MAC under the run's key: an edited value, swapped keys
/// or a schema answer turned into a string is refused on resume, naming the line (exit 77),
/// never served to the script.
#[test]
fn a_tampered_journal_is_refused_not_served() {
    let p = Project::with_script(
        "const a = await agent('one', { schema: { type: 'object', properties: { n: { type: 'integer' } }, required: ['n'] } });\nconst b = await agent('two');\nreturn [a, b];",
    );
    let first = p.run_mock(&[]);
    first.code(0);
    let id = first.report()["run_id"].as_str().unwrap().to_string();
    let path = p.runs().join(&id).join("journal.jsonl");
    let original = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = original.lines().collect();
    let results: Vec<(usize, Value)> = lines
        .iter()
        .enumerate()
        .filter_map(|(i, l)| Some((i, serde_json::from_str::<Value>(l).ok()?)))
        .filter(|(_, r)| r["type"] == "result")
        .collect();
    assert_eq!(results.len(), 2);
    let (schema_line, schema_rec) = &results[0];
    let (text_line, text_rec) = &results[1];
    let (k1, k2) = (
        schema_rec["key"].as_str().unwrap(),
        text_rec["key"].as_str().unwrap(),
    );
    let schema_value = serde_json::to_string(&schema_rec["value"]).unwrap();
    let with = |edits: &[(usize, String)]| {
        let mut out: Vec<String> = lines.iter().map(|l| (*l).to_string()).collect();
        for (i, l) in edits {
            out[*i] = l.clone();
        }
        out.join("\n") + "\n"
    };
    let tampered = [
        // An edited answer.
        with(&[(*text_line, lines[*text_line].replace("R(two)", "R(pwned)"))]),
        // Two results' keys swapped.
        with(&[
            (*schema_line, lines[*schema_line].replace(k1, k2)),
            (*text_line, lines[*text_line].replace(k2, k1)),
        ]),
        // A schema answer turned into a string.
        with(&[(
            *schema_line,
            lines[*schema_line].replace(
                &format!("\"value\":{schema_value}"),
                &format!(
                    "\"value\":{}",
                    serde_json::to_string(&schema_value).unwrap()
                ),
            ),
        )]),
    ];
    for journal in tampered {
        assert_ne!(journal, original, "the edit applied");
        std::fs::write(&path, &journal).unwrap();
        let out = p.resume(&id);
        out.code(77);
        assert!(
            out.stderr.contains(&format!(
                "line {} fails its checksum",
                schema_line.min(text_line) + 1
            )) || out.stderr.contains("fails its checksum"),
            "{}",
            out.stderr
        );
        assert!(
            out.stderr.contains("none of it is served"),
            "{}",
            out.stderr
        );
    }
    // The key gone: a sealed journal is not read as an old unsealed one.
    std::fs::write(&path, &original).unwrap();
    let key = p.runs().join(&id).join("journal.key");
    let saved_key = std::fs::read(&key).unwrap();
    std::fs::remove_file(&key).unwrap();
    let out = p.resume(&id);
    out.code(77);
    assert!(
        out.stderr.contains("`journal.key` is missing"),
        "{}",
        out.stderr
    );
    // The key gone and every MAC stripped: not an old unsealed journal either, and a forged
    // answer in it is not served.
    let stripped: String = original
        .lines()
        .map(|l| match l.find(",\"mac\":\"") {
            Some(at) => format!("{}}}\n", &l[..at]),
            None => format!("{l}\n"),
        })
        .collect::<String>()
        .replace("R(two)", "R(pwned)");
    assert!(!stripped.contains("\"mac\""));
    std::fs::write(&path, &stripped).unwrap();
    let out = p.resume(&id);
    out.code(77);
    assert!(
        out.stderr.contains("`journal.key` is missing"),
        "{}",
        out.stderr
    );
    std::fs::write(&path, &original).unwrap();
    // Restored, it resumes and serves both answers.
    std::fs::write(&key, saved_key).unwrap();
    let resumed = p.resume(&id);
    resumed.code(0);
    assert_eq!(resumed.report()["usage"]["agents_cached"], 2);
}

/// A resume gets the run's args exactly as they were: the string "123" stays a string (it came
/// back as the number 123).
#[test]
fn args_keep_their_type_on_resume() {
    let p = Project::with_script(
        "await agent('one');\nreturn typeof args + ':' + JSON.stringify(args);",
    );
    let first = p.run_mock(&["--args", "\"\\\"123\\\"\""]);
    first.code(0);
    let r = first.report();
    assert_eq!(r["result"], "string:\"123\"", "{r}");
    let again = p.resume(r["run_id"].as_str().unwrap());
    again.code(0);
    assert_eq!(again.report()["result"], "string:\"123\"");
}

/// Thirty resumes in a row each serve every answer (a resume reads only the journal's result
/// and run_started lines, so the records earlier resumes added do not pile up its work).
#[test]
fn the_thirty_first_resume_still_serves_everything() {
    let p = Project::with_script(
        "return await parallel(Array.from({ length: 20 }, (_, i) => () => agent('a' + i)));",
    );
    let first = p.run_mock(&[]);
    first.code(0);
    let r = first.report();
    let id = r["run_id"].as_str().unwrap().to_string();
    let mut last = Value::Null;
    for _ in 0..30 {
        let out = p.resume(&id);
        out.code(0);
        last = out.report();
        assert_eq!(calls(&last), 0, "{last}");
    }
    assert_eq!(last["result"], r["result"]);
    assert_eq!(last["usage"]["agents_cached"], 20);
    // Each resume records what it served as one line, not a line per agent.
    let journal = p.journal(&id);
    let served = journal
        .lines()
        .filter(|l| l.starts_with("{\"type\":\"served\""))
        .count();
    assert_eq!(served, 30);
    assert!(
        journal.lines().count() < 150,
        "{} lines",
        journal.lines().count()
    );
    // runs show still counts what was served, over all attempts.
    let show = p.wf(["runs", "show", &id, "--json"]).run();
    let v: Value = serde_json::from_str(&show.stdout).unwrap();
    assert_eq!(v["summary"]["agents_cached"], 600);
}
