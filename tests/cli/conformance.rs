//! The reference runtime's conformance cases (tests/conformance/cases, copied from
//! ../shared/conformance) run through the real binary by the reference's own checker.

use std::process::Command;

#[test]
fn all_conformance_cases_match() {
    let repo = super::repo();
    let runs = tempfile::tempdir().unwrap();
    let out = Command::new("python3")
        .arg(repo.join("tests/conformance/check.py"))
        .arg("--wfhost")
        .arg(env!("CARGO_BIN_EXE_wfhost"))
        .arg("--cases")
        .arg(repo.join("tests/conformance/cases"))
        .env("WFHOST_CACHE_DIR", super::cache_dir())
        .env("WFHOST_RUNS_DIR", runs.path())
        .output()
        .expect("python3 runs check.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default().to_string();
    let cases = std::fs::read_dir(repo.join("tests/conformance/cases"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".expected.json")
        })
        .count();
    assert_eq!(
        last,
        format!("conformance: {cases}/{cases} cases match"),
        "{stdout}"
    );
    assert!(out.status.success());
}
