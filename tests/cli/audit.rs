//! `wfhost audit`: the capability surface, as a security reviewer reads it.

use super::wfhost;

/// The committed guest imports exactly the allow-list: a guest change that widens the surface
/// fails here (and in review: update this list deliberately, with the reason).
#[test]
fn committed_guest_imports_equal_the_allow_list() {
    let out = wfhost(["audit", "--json"]).run();
    out.code(0);
    let audit: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let mut imports: Vec<String> = audit["guest"]["imports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            assert_eq!(i["allowed"], true, "{i}");
            format!(
                "{}::{}",
                i["module"].as_str().unwrap(),
                i["name"].as_str().unwrap()
            )
        })
        .collect();
    imports.sort();
    let mut want: Vec<String> = [
        "wasi_snapshot_preview1::clock_time_get",
        "wasi_snapshot_preview1::environ_get",
        "wasi_snapshot_preview1::environ_sizes_get",
        "wasi_snapshot_preview1::fd_close",
        "wasi_snapshot_preview1::fd_fdstat_get",
        "wasi_snapshot_preview1::fd_seek",
        "wasi_snapshot_preview1::fd_write",
        "wasi_snapshot_preview1::proc_exit",
        "wasi_snapshot_preview1::random_get",
        "wfhost::cancel",
        "wfhost::context",
        "wfhost::finish",
        "wfhost::load-workflow",
        "wfhost::log",
        "wfhost::phase",
        "wfhost::spawn",
        "wfhost::spawn-agent",
        "wfhost::take-error",
        "wfhost::wait-next",
    ]
    .map(String::from)
    .to_vec();
    want.sort();
    assert_eq!(imports, want);
}

/// Every function of the WIT contract is linked, and nothing else.
#[test]
fn wit_contract_matches_the_linked_functions() {
    let wit = std::fs::read_to_string(super::repo().join("wit/wfhost.wit")).unwrap();
    let out = wfhost(["audit", "--json"]).run();
    let audit: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let linked: Vec<&str> = audit["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    let interface = wit
        .split("interface capabilities {")
        .nth(1)
        .unwrap()
        .split("\n}")
        .next()
        .unwrap();
    let declared: Vec<&str> = interface
        .lines()
        .filter_map(|l| l.trim().split_once(": func(").map(|(name, _)| name))
        .collect();
    assert_eq!(declared, linked);
    assert_eq!(
        audit["wit"].as_str().unwrap(),
        wit,
        "the binary embeds the current contract"
    );
}

#[test]
fn audit_snapshot() {
    let out = wfhost(["audit"]).run();
    out.code(0);
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"[0-9a-f]{64}", "[sha256]");
    settings.add_filter(r"\(\d+ bytes\)", "([size] bytes)");
    settings.add_filter(r"concurrency +\d+", "concurrency [n]");
    settings.add_filter(r"/tmp/\.tmp\w+", "[workspace]");
    settings.bind(|| insta::assert_snapshot!(out.stdout));
}
