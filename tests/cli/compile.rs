//! `wfhost compile` → a standalone module → `wfhost run OUT.wasm`.

use super::Project;

const SCRIPT: &str = "export const meta = { name: 'mod', description: 'compiled', phases: [{ title: 'P' }] };\n\
                      phase('P');\nconst a = await agent('from module');\nreturn { a, args };";

#[test]
fn compiled_module_runs_and_is_deterministic() {
    let s = Project::new();
    s.file("w.js", SCRIPT);
    s.wf(["compile", "w.js", "-o", "a.wasm"]).run().code(0);
    s.wf(["compile", "w.js", "-o", "b.wasm", "--no-cache"])
        .run()
        .code(0);
    let (a, b) = (
        std::fs::read(s.path().join("a.wasm")).unwrap(),
        std::fs::read(s.path().join("b.wasm")).unwrap(),
    );
    assert_eq!(a, b, "codegen must be deterministic");
    assert!(
        a.len() < 4096,
        "a dynamic module carries only bytecode: {} bytes",
        a.len()
    );

    let out = s
        .wf([
            "run",
            "a.wasm",
            "--backend",
            "mock",
            "--json",
            "--yes",
            "--args",
            "[1,2]",
        ])
        .run();
    out.code(0);
    let r = out.report();
    assert_eq!(
        r["result"],
        serde_json::json!({"a": "R(from module)", "args": [1, 2]})
    );

    let audit = s.wf(["audit", "a.wasm", "--json"]).run();
    audit.code(0);
    let audit: serde_json::Value = serde_json::from_str(&audit.stdout).unwrap();
    assert_eq!(audit["meta"]["name"], "mod");
    let imports: Vec<String> = audit["module_imports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            format!(
                "{}::{}",
                i["module"].as_str().unwrap(),
                i["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        imports,
        [
            "wfhost_plugin_v1::cabi_realloc",
            "wfhost_plugin_v1::invoke",
            "wfhost_plugin_v1::memory"
        ]
    );
}

#[test]
fn compile_rejects_bad_scripts_with_the_reference_message() {
    let s = Project::new();
    s.file(
        "bad.js",
        "const x = 1;\nexport const meta = { name: 'a', description: 'b' };",
    );
    let out = s.wf(["compile", "bad.js", "-o", "x.wasm"]).run();
    out.code(65);
    assert!(
        out.stderr.contains("must be the FIRST statement"),
        "{}",
        out.stderr
    );
    assert!(!s.path().join("x.wasm").exists());
}

/// `wfhost compile --warm` fills the compile cache with the guest, so the first run after an
/// install starts warm (its report says the guest came from the cache).
#[test]
fn compile_warm_makes_the_first_run_warm() {
    let s = Project::new();
    let cache = s.path().join("cache");
    s.file(
        "w.js",
        "export const meta = { name: 't', description: 'warm' };\nreturn 1;",
    );
    let warm = s
        .wf(["compile", "--warm"])
        .env("WFHOST_CACHE_DIR", &cache)
        .run();
    warm.code(0);
    assert!(warm.stderr.contains("guest ready in"), "{}", warm.stderr);
    let out = s
        .wf(["run", "w.js", "--backend", "mock", "--yes", "--json"])
        .env("WFHOST_CACHE_DIR", &cache)
        .run();
    out.code(0);
    assert_eq!(out.report()["timings"]["guest_source"], "cache");
}
