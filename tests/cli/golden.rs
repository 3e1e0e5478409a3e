//! Golden files for scripts refused before running: `tests/golden/NAME.js` → `NAME.err`
//! (what `wfhost run` prints on stderr). `WFHOST_BLESS=1` rewrites the `.err` files.

use super::{repo, wfhost};

#[test]
fn rejected_scripts_match_their_golden_errors() {
    let dir = repo().join("tests/golden");
    let mut checked = 0;
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for js in entries
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "js"))
    {
        let name = js.file_name().unwrap().to_string_lossy().to_string();
        let out = wfhost(["run", &name, "--backend", "mock", "--yes", "--quiet"])
            .dir(&dir)
            .run();
        out.code(65);
        let err = js.with_extension("err");
        if std::env::var_os("WFHOST_BLESS").is_some() {
            std::fs::write(&err, &out.stderr).unwrap();
        }
        let want =
            std::fs::read_to_string(&err).unwrap_or_else(|_| panic!("missing {}", err.display()));
        assert_eq!(out.stderr, want, "{name}");
        checked += 1;
    }
    assert!(checked >= 8, "only {checked} golden files");
}
