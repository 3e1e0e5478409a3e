//! `wfhost mcp` through rmcp's own client over stdio (the real server binary, the real guest,
//! agents on the mock backend): tools, progress, control, resume, two runs at once, prompts,
//! and bad input answered as tool errors, never a crash or a hang.

use super::Project;
use rmcp::model::{
    CallToolRequestParams, CallToolResult, GetPromptRequestParams, NumberOrString,
    ProgressNotificationParam, ProgressToken, RequestMetaObject,
};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::transport::TokioChildProcess;
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
struct Client {
    progress: Arc<Mutex<Vec<ProgressNotificationParam>>>,
}

impl ClientHandler for Client {
    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.progress.lock().unwrap().push(params);
    }
}

const SCRIPT: &str = "export const meta = { name: 'mcp-probe', description: 'over MCP', phases: [{ title: 'Work' }] };\n\
phase('Work');\n\
const out = await parallel((args.items || ['a', 'b']).map(x => () => agent(`do ${x} [delay=${args.delay || 0}]`, { label: x })));\n\
return { out };\n";

/// A repository on the mock backend with one saved workflow, `saved-probe`.
fn with_saved_probe() -> Project {
    let p = Project::new().toml("backend = \"mock\"\n");
    std::fs::create_dir(p.path().join(".git")).unwrap();
    p.file(
        ".wfhost/workflows/saved-probe.js",
        SCRIPT.replace("mcp-probe", "saved-probe"),
    );
    p
}

async fn connect(s: &Project, client: Client) -> RunningService<RoleClient, Client> {
    connect_with(s, client).await
}

async fn call<C: ClientHandler>(
    c: &RunningService<RoleClient, C>,
    tool: &'static str,
    args: Value,
) -> CallToolResult {
    let Value::Object(args) = args else {
        panic!("arguments are an object")
    };
    let r = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        c.call_tool(CallToolRequestParams::new(tool).with_arguments(args)),
    )
    .await
    .expect("the tool answers in time")
    .unwrap_or_else(|e| panic!("{tool}: {e}"));
    if r.is_error != Some(true) {
        typed(c, tool, &r).await;
    }
    r
}

/// Every answer is typed: its `structuredContent` validates against the tool's `outputSchema`,
/// carries its `summary`, and is camelCase throughout (the script's own `result` and a map's
/// keys aside).
async fn typed<C: ClientHandler>(
    c: &RunningService<RoleClient, C>,
    tool: &str,
    r: &CallToolResult,
) {
    let tools = c.list_all_tools().await.unwrap();
    let schema = tools
        .iter()
        .find(|t| t.name == tool)
        .and_then(|t| t.output_schema.clone())
        .unwrap_or_else(|| panic!("{tool} has an outputSchema"));
    let schema = Value::Object((*schema).clone());
    let v = r.structured_content.clone().expect("structured content");
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&v)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{tool}: {errors:?}\n{v}");
    assert!(v["summary"].is_string(), "{tool}: {v}");
    fn snake(v: &Value, path: &str, found: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    if k.contains('_') {
                        found.push(format!("{path}.{k}"));
                    }
                    if !matches!(k.as_str(), "result" | "models" | "tools") {
                        snake(x, &format!("{path}.{k}"), found);
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|x| snake(x, path, found)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    snake(&v, "", &mut found);
    assert!(found.is_empty(), "{tool}: snake_case keys {found:?} in {v}");
}

fn text(r: &CallToolResult) -> String {
    r.content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

fn data(r: &CallToolResult) -> Value {
    assert_ne!(r.is_error, Some(true), "{}", text(r));
    r.structured_content.clone().expect("structured content")
}

fn tool_error(r: &CallToolResult, needle: &str) {
    assert_eq!(r.is_error, Some(true), "a tool error: {}", text(r));
    assert!(text(r).contains(needle), "`{needle}` in: {}", text(r));
}

#[expect(
    clippy::too_many_lines,
    reason = "one end-to-end scenario, step by step"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_server_runs_watches_and_steers_workflows() {
    let s = with_saved_probe();
    let client = Client::default();
    let c = connect(&s, client.clone()).await;

    let tools: Vec<String> = c
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    for t in [
        "workflow_run",
        "workflow_status",
        "workflow_result",
        "workflow_control",
        "workflow_validate",
        "workflow_list",
        "workflow_runs",
        "workflow_plan",
    ] {
        assert!(tools.contains(&t.to_string()), "{t} in {tools:?}");
    }

    // Validate: a good script, then one QuickJS cannot compile.
    let ok = data(&call(&c, "workflow_validate", json!({ "script": SCRIPT })).await);
    assert_eq!(ok["name"], "mcp-probe");
    let bad = call(
        &c,
        "workflow_validate",
        json!({ "script": "export const meta = { name: 'x', description: 'y' };\nconst = 1;\n" }),
    )
    .await;
    tool_error(&bad, "syntax error");

    // Run inline and wait, with a progress token: progress arrives, the result comes back, the
    // inline script is saved in the run directory, and the run is an ordinary one.
    let mut params = CallToolRequestParams::new("workflow_run").with_arguments(
        json!({ "script": SCRIPT, "args": { "items": ["a", "b", "c"], "delay": 1200 }, "wait": 30 })
            .as_object()
            .unwrap()
            .clone(),
    );
    params.meta = Some(RequestMetaObject::with_progress_token(ProgressToken(
        NumberOrString::Number(7),
    )));
    let r = data(&c.call_tool(params).await.unwrap());
    assert_eq!(r["summary"], "completed: all 3 agents answered", "{r}");
    assert_eq!(r["result"]["out"][0], "R(do a [delay=1200])");
    let run_id = r["runId"].as_str().unwrap().to_string();
    let script_path = std::path::PathBuf::from(r["scriptPath"].as_str().unwrap());
    assert_eq!(std::fs::read_to_string(&script_path).unwrap(), SCRIPT);
    assert!(
        s.path()
            .join(".wfhost/runs")
            .join(&run_id)
            .join("journal.jsonl")
            .is_file()
    );
    let progress = client.progress.lock().unwrap().clone();
    assert!(!progress.is_empty(), "progress notifications arrive");
    assert!(
        progress[0]
            .message
            .as_deref()
            .unwrap_or("")
            .contains("agents done"),
        "{progress:?}"
    );
    let runs = data(&call(&c, "workflow_runs", json!({})).await);
    assert_eq!(runs["runs"][0]["runId"], run_id.as_str());
    assert_eq!(runs["runs"][0]["status"], "completed");

    // The saved file runs again by scriptPath; a saved workflow by name. Two runs at once.
    let by_path = data(
        &call(
            &c,
            "workflow_run",
            json!({ "scriptPath": script_path, "args": { "delay": 800 } }),
        )
        .await,
    );
    let by_name = data(
        &call(
            &c,
            "workflow_run",
            json!({ "name": "saved-probe", "args": { "delay": 800 } }),
        )
        .await,
    );
    assert_eq!(by_name["workflowName"], "saved-probe");
    for started in [&by_path, &by_name] {
        let r = data(
            &call(
                &c,
                "workflow_result",
                json!({ "runId": started["runId"], "wait": 30 }),
            )
            .await,
        );
        assert_eq!(r["status"], "completed", "{r}");
        assert_eq!(r["result"]["out"][1], "R(do b [delay=800])");
    }

    // Stop a long run; resuming it asks none of the finished agents again.
    let long = data(
        &call(
            &c,
            "workflow_run",
            json!({ "script": SCRIPT.replace("[delay=${args.delay || 0}]", "[delay=${x === 'slow' ? 60000 : 10}]"), "args": { "items": ["a", "b", "slow"] } }),
        )
        .await,
    );
    let long_id = long["runId"].as_str().unwrap().to_string();
    let mut done = 0;
    let mut live = Value::Null;
    for _ in 0..100 {
        live = data(&call(&c, "workflow_status", json!({ "runId": long_id })).await);
        done = live["agents"]["done"].as_u64().unwrap_or(0);
        if done == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(done, 2, "the quick agents finished");
    let stopped = data(
        &call(
            &c,
            "workflow_control",
            json!({ "runId": long_id, "action": "stop" }),
        )
        .await,
    );
    assert_eq!(stopped["status"], "stopped", "{stopped}");
    // One status shape, live (from the socket) and ended (from the run directory): the same
    // keys, the same casing, phases with their counts either way.
    let ended = data(&call(&c, "workflow_status", json!({ "runId": long_id })).await);
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&live), keys(&ended), "live: {live}\nended: {ended}");
    assert_eq!(live["status"], "running", "{live}");
    assert_eq!(ended["status"], "stopped", "{ended}");
    assert_eq!(ended["agents"]["done"], 2, "{ended}");
    assert_eq!(ended["runDir"], live["runDir"], "{ended}");
    assert!(ended["phases"][0]["counts"]["done"].is_u64(), "{ended}");
    // An action outside the enum is refused by its schema, naming the ones there are.
    let unknown = c
        .call_tool(
            CallToolRequestParams::new("workflow_control").with_arguments(
                json!({ "runId": long_id, "action": "explode" })
                    .as_object()
                    .unwrap()
                    .clone(),
            ),
        )
        .await;
    let text = format!("{unknown:?}");
    assert!(text.contains("kill_agent"), "{text}");
    let resumed = data(
        &call(
            &c,
            "workflow_run",
            json!({ "resumeFromRunId": long_id, "wait": 0.5 }),
        )
        .await,
    );
    assert_eq!(resumed["runId"], long_id.as_str());
    let st = data(&call(&c, "workflow_status", json!({ "runId": long_id })).await);
    assert_eq!(
        st["agents"]["cached"], 2,
        "finished agents are served, not asked: {st}"
    );
    data(
        &call(
            &c,
            "workflow_control",
            json!({ "runId": long_id, "action": "stop" }),
        )
        .await,
    );

    // Bad input: tool errors naming the problem; the server stays up.
    tool_error(&call(&c, "workflow_run", json!({})).await, "nothing to run");
    tool_error(
        &call(
            &c,
            "workflow_run",
            json!({ "script": SCRIPT, "name": "saved-probe" }),
        )
        .await,
        "exactly one of",
    );
    tool_error(
        &call(&c, "workflow_run", json!({ "scriptPath": "../outside.js" })).await,
        "contains `..`",
    );
    tool_error(
        &call(
            &c,
            "workflow_run",
            json!({ "script": "export const meta = { name: 'x' };\nreturn 1;" }),
        )
        .await,
        "the script was rejected",
    );
    tool_error(
        &call(&c, "workflow_status", json!({ "runId": "nope" })).await,
        "there is no run `nope`",
    );
    tool_error(
        &call(
            &c,
            "workflow_control",
            json!({ "runId": run_id, "action": "pause" }),
        )
        .await,
        "has finished",
    );
    let invalid = c
        .call_tool(
            CallToolRequestParams::new("workflow_run")
                .with_arguments(json!({ "script": 42 }).as_object().unwrap().clone()),
        )
        .await;
    // A wrongly typed argument: an invalid-params error, or a tool error naming it.
    if let Ok(r) = invalid {
        tool_error(&r, "expected a string");
    }

    // Prompts: the authoring reference and each saved workflow.
    let prompts: Vec<String> = c
        .list_all_prompts()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert!(
        prompts.contains(&"workflow-authoring".to_string())
            && prompts.contains(&"saved-probe".to_string()),
        "{prompts:?}"
    );
    let authoring = c
        .get_prompt(GetPromptRequestParams::new("workflow-authoring"))
        .await
        .unwrap();
    let authoring = serde_json::to_string(&authoring).unwrap();
    assert!(authoring.contains("pipeline(items"), "{authoring}");
    assert!(
        !c.list_all_tools().await.unwrap().is_empty(),
        "still serving"
    );
    c.cancel().await.unwrap();
}

fn tool_in_cache(dir: &str, bin: &str) -> Option<std::path::PathBuf> {
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from)?;
    let p = home
        .join(".cache")
        .join(dir)
        .join("node_modules/.bin")
        .join(bin);
    p.is_file().then_some(p)
}

/// The MCP Inspector's CLI (npm `@modelcontextprotocol/inspector`, installed by .ci/run) lists
/// the tools, validates a script and runs one with `wait` (it sends every argument as text).
#[test]
fn the_mcp_inspector_lists_validates_and_runs() {
    let Some(inspector) = tool_in_cache("wfhost-inspector", "mcp-inspector") else {
        super::missing_tool(
            "the_mcp_inspector_lists_validates_and_runs",
            "the MCP Inspector is not installed in ~/.cache/wfhost-inspector",
        );
        return;
    };
    let s = with_saved_probe();
    let inspect = |args: &[&str]| -> Value {
        let out = std::process::Command::new(&inspector)
            .arg("--cli")
            .arg(env!("CARGO_BIN_EXE_wfhost"))
            .arg("mcp")
            .args(args)
            .current_dir(s.path())
            .env_remove("CI")
            .env("WFHOST_CACHE_DIR", super::cache_dir())
            .env("HOME", s.path().join("home"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let tools = inspect(&["--method", "tools/list"]);
    let names: Vec<&str> = tools["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 8, "{names:?}");
    assert!(names.contains(&"workflow_run") && names.contains(&"workflow_plan"));
    // The Inspector sees the annotations too.
    let plan = tools["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "workflow_plan")
        .unwrap();
    assert_eq!(plan["annotations"]["readOnlyHint"], true, "{plan}");
    let run_schema = tools["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "workflow_run")
        .unwrap();
    assert!(
        run_schema["inputSchema"]["properties"]["resumeFromRunId"].is_object(),
        "the reference's argument names: {run_schema}"
    );
    let valid = inspect(&[
        "--method",
        "tools/call",
        "--tool-name",
        "workflow_validate",
        "--tool-arg",
        &format!("script={SCRIPT}"),
    ]);
    assert_eq!(valid["structuredContent"]["name"], "mcp-probe", "{valid}");
    let ran = inspect(&[
        "--method",
        "tools/call",
        "--tool-name",
        "workflow_run",
        "--tool-arg",
        &format!("script={SCRIPT}"),
        "--tool-arg",
        r#"args={"items":["x","y"],"delay":300}"#,
        "--tool-arg",
        "wait=30",
    ]);
    let r = &ran["structuredContent"];
    assert_eq!(r["status"], "completed", "{ran}");
    assert_eq!(
        r["result"]["out"],
        json!(["R(do x [delay=300])", "R(do y [delay=300])"])
    );
}

/// The real Claude Code CLI with `wfhost mcp` in its `--mcp-config`, against the fake Messages
/// API playing the model: it calls `workflow_run` with an inline script (agents on the mock
/// backend), then `workflow_result`, then answers with the result. A rejected script comes back
/// to the model as the error text.
#[test]
fn claude_code_runs_a_workflow_through_wfhost_mcp() {
    let Some(claude) = tool_in_cache("wfhost-claude", "claude") else {
        super::missing_tool(
            "claude_code_runs_a_workflow_through_wfhost_mcp",
            "Claude Code is not installed in ~/.cache/wfhost-claude",
        );
        return;
    };
    let api = super::fake_api::FakeApi::start(false);
    let s = with_saved_probe();
    let config = json!({ "mcpServers": { "wfhost": {
        "command": env!("CARGO_BIN_EXE_wfhost"),
        "args": ["mcp"],
        "env": { "WFHOST_CACHE_DIR": super::cache_dir() },
    }}});
    s.file("mcp.json", config.to_string());
    let ask = |task: &str| -> Value {
        let mut cmd = std::process::Command::new(&claude);
        cmd.args([
            "-p",
            "--output-format",
            "json",
            "--model",
            "claude-sonnet-4-5",
            "--max-turns",
            "6",
            "--strict-mcp-config",
            "--mcp-config",
            "mcp.json",
            "--allowedTools",
            "mcp__wfhost",
        ])
        .current_dir(s.path())
        .env_remove("CI")
        .env("HOME", s.path().join("home"))
        .env("IS_SANDBOX", "1")
        .env("DISABLE_TELEMETRY", "1")
        .env("DISABLE_AUTOUPDATER", "1")
        .env("DISABLE_ERROR_REPORTING", "1")
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        // The task on stdin: `--allowedTools` takes every word after it.
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
        for (k, v) in api.env() {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        {
            use std::io::Write as _;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(task.as_bytes())
                .unwrap();
        }
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "claude: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let done = ask(&format!(
        "[mcp-run] run this workflow and tell me its result:\n```js\n{SCRIPT}\n```"
    ));
    let answer = done["result"].as_str().unwrap_or_default();
    assert!(
        answer.starts_with("WORKFLOW RESULT: ")
            && answer.contains("completed: all 2 agents answered")
            && answer.contains("R(do a [delay=0])"),
        "the final message carries the workflow's result: {done}"
    );
    let runs: Vec<_> = std::fs::read_dir(s.path().join(".wfhost/runs"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.path().join("journal.jsonl").is_file())
        .collect();
    assert_eq!(runs.len(), 1, "the run's journal exists");

    let rejected =
        ask("[mcp-run] run this:\n```js\nexport const meta = { name: 'x' };\nreturn 1;\n```");
    let answer = rejected["result"].as_str().unwrap_or_default();
    assert!(
        answer.starts_with("WORKFLOW ERROR: the script was rejected")
            && answer.contains("description"),
        "the model receives the rejection: {rejected}"
    );
}

/// `wfhost mcp --http 127.0.0.1:0` in the project with `token`; returns it and its URL.
fn http_server(s: &Project, token: &str) -> (std::process::Child, String) {
    use std::io::BufRead as _;
    let mut server = s
        .wf(["mcp", "--http", "127.0.0.1:0"])
        .home(s.path().join("home"))
        .env("WFHOST_MCP_TOKEN", token)
        .command()
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(server.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://127.0.0.1:"))
        .unwrap_or_else(|| panic!("the address: {line}"))
        .to_string();
    (server, url)
}

/// `wfhost mcp --http`: streamable HTTP on loopback, every request needing the bearer token;
/// a non-loopback address is refused.
#[test]
fn mcp_over_http_needs_the_bearer_token() {
    let s = with_saved_probe();
    let token = "test-token-0123456789abcdef";
    let (mut server, url) = http_server(&s, token);
    let post = |auth: Option<&str>, body: &str, session: Option<&str>| -> String {
        let mut cmd = std::process::Command::new("curl");
        cmd.args(["-s", "-D", "-", "-X", "POST", &url])
            .args(["-H", "content-type: application/json"])
            .args(["-H", "accept: application/json, text/event-stream"])
            .args(["--max-time", "10", "-d", body]);
        if let Some(a) = auth {
            cmd.args(["-H", &format!("authorization: Bearer {a}")]);
        }
        if let Some(id) = session {
            cmd.args(["-H", &format!("mcp-session-id: {id}")]);
        }
        String::from_utf8(cmd.output().expect("curl runs").stdout).unwrap()
    };
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}"#;
    let refused = post(None, init, None);
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    let wrong = post(Some("not-the-token"), init, None);
    assert!(wrong.starts_with("HTTP/1.1 401"), "{wrong}");
    let ok = post(Some(token), init, None);
    assert!(
        ok.starts_with("HTTP/1.1 200") && ok.contains("\"name\":\"wfhost\""),
        "{ok}"
    );
    let session = ok
        .lines()
        .find_map(|l| l.strip_prefix("mcp-session-id: "))
        .unwrap()
        .trim()
        .to_string();
    post(
        Some(token),
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        Some(&session),
    );
    let tools = post(
        Some(token),
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
        Some(&session),
    );
    assert!(
        tools.contains("\"workflow_run\"") && tools.contains("\"workflow_control\""),
        "{tools}"
    );
    server.kill().unwrap();
    let _ = server.wait();

    let open = s.wf(["mcp", "--http", "0.0.0.0:8765"]).run();
    open.code(2);
    assert!(
        open.stderr.contains("not a loopback address"),
        "{}",
        open.stderr
    );
}

/// `[mcp]` in wfhost.toml: inline scripts refused, backends not allowed refused by name, and a
/// run's agents capped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_policy_limits_what_a_client_may_do() {
    let s = with_saved_probe();
    s.file(
        "wfhost.toml",
        "backend = \"mock\"\n[mcp]\ninline_scripts = false\nmax_agents = 1\n",
    );
    let c = connect(&s, Client::default()).await;
    tool_error(
        &call(&c, "workflow_run", json!({ "script": SCRIPT })).await,
        "inline_scripts = false",
    );
    // A saved workflow runs, under the cap: its second agent is refused.
    let r = data(
        &call(
            &c,
            "workflow_run",
            json!({ "name": "saved-probe", "args": {}, "wait": 30 }),
        )
        .await,
    );
    assert_eq!(r["status"], "completed", "{r}");
    assert_eq!(r["result"]["out"][1], Value::Null, "{r}");
    assert!(
        r["summary"].as_str().unwrap().contains("1 warning(s)"),
        "{r}"
    );
    assert!(r["warnings"][0].as_str().unwrap().contains("cap"), "{r}");
    c.cancel().await.unwrap();

    s.file(
        "wfhost.toml",
        "backend = \"mock\"\n[mcp]\nallowed_backends = [\"claude\"]\n",
    );
    let c = connect(&s, Client::default()).await;
    tool_error(
        &call(&c, "workflow_run", json!({ "name": "saved-probe" })).await,
        "`mock` is not one [mcp] allowed_backends permits (claude)",
    );
    c.cancel().await.unwrap();

    // A resume runs on the run's own backend: the policy holds for it too.
    let finished = r["runId"].as_str().unwrap().to_string();
    s.file(
        "wfhost.toml",
        "backend = \"claude\"\n[mcp]\nallowed_backends = [\"claude\"]\n",
    );
    let c = connect(&s, Client::default()).await;
    tool_error(
        &call(&c, "workflow_run", json!({ "resumeFromRunId": finished })).await,
        "ran on the backend `mock`, which [mcp] allowed_backends does not permit",
    );
    c.cancel().await.unwrap();
}

/// A `claude` agent (the real Claude Code CLI, the fake API playing its model) wants `Bash`,
/// which it was not allowed: the request reaches the run's control socket. With nobody there it
/// is denied after `--permission-timeout`, and the agent is told why; when an operator allows it
/// (`answer`), the tool runs and the agent goes on with its output.
#[test]
fn a_claude_agents_permission_request_reaches_a_person() {
    let Some((s, api, _claude)) =
        claude_asking("a_claude_agents_permission_request_reaches_a_person")
    else {
        return;
    };
    let wf = |args: &[&str]| claude_env(s.wf(args), &api);
    // Nobody attached: denied after 1 s, with the reason, and the run goes on.
    let out = wf(&[
        "run",
        "w.js",
        "--yes",
        "--json",
        "--permission-timeout",
        "1s",
    ])
    .run();
    let r = out.report();
    let said = r["result"].as_str().unwrap_or_default();
    assert!(
        said.starts_with("TOOL SAID:")
            && said.contains("nobody answered this permission request within 1s"),
        "the agent is told why: {r}\n{}",
        out.stderr
    );
    let run_dir = s
        .path()
        .join(".wfhost/runs")
        .join(r["run_id"].as_str().unwrap());
    let events = std::fs::read_to_string(run_dir.join("events.jsonl")).unwrap();
    assert!(
        events.contains("\"type\":\"permission\"") && events.contains("\"tool\":\"Bash\""),
        "{events}"
    );

    // An operator allows it once: the tool runs.
    let started = wf(&[
        "run",
        "w.js",
        "--yes",
        "--detach",
        "--json",
        "--permission-timeout",
        "60s",
    ])
    .run();
    started.code(0);
    let id = serde_json::from_str::<Value>(&started.stdout).unwrap()["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let socket = s.path().join(".wfhost/runs").join(&id).join("control.sock");
    let ask = |request: Value| -> Value { super::control_request(&socket, &request) };
    let pending = super::pending_permission(&socket);
    assert_eq!(
        pending["tool"], "Bash",
        "the request is in the run's status"
    );
    assert_eq!(pending["agent"], 1);
    let answered = ask(
        json!({"v": 1, "cmd": "answer", "id": pending["id"], "decision": "once", "client": "test"}),
    );
    assert_eq!(answered["allowed"], true, "{answered}");
    let logs = wf(&["logs", &id, "--follow", "--json"]).run();
    let said = logs
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|e| e["type"] == "agent_finished")
        .map(|_| ())
        .and_then(|()| {
            let show = wf(&["runs", "show", &id, "--json"]).run();
            serde_json::from_str::<Value>(&show.stdout).ok()
        })
        .unwrap();
    assert!(
        said["result"]
            .as_str()
            .unwrap_or_default()
            .contains("permitted-42"),
        "the allowed tool ran: {said}"
    );
}

/// One client's runs going at once are capped (`[mcp] max_runs`), and `args` go to the run
/// through a private file, not its command line: a negative number and 200 KiB of args (past
/// what one argv string can hold) start runs like any others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_has_a_run_cap_and_any_args_reach_the_run() {
    let s = with_saved_probe();
    s.file("wfhost.toml", "backend = \"mock\"\n[mcp]\nmax_runs = 2\n");
    s.file(
        "echo.js",
        "export const meta = { name: 'echo', description: 'returns its args' };\nreturn typeof args === 'number' ? args : args.big.length;\n",
    );
    let c = connect(&s, Client::default()).await;
    let negative = data(
        &call(
            &c,
            "workflow_run",
            json!({ "scriptPath": "echo.js", "args": -5, "wait": 30 }),
        )
        .await,
    );
    assert_eq!(negative["result"], -5, "{negative}");
    let big = "x".repeat(200 << 10);
    let large = data(
        &call(
            &c,
            "workflow_run",
            json!({ "scriptPath": "echo.js", "args": { "big": big }, "wait": 30 }),
        )
        .await,
    );
    assert_eq!(large["result"], 200 << 10, "{}", large["status"]);
    let id = large["runId"].as_str().unwrap();
    let file = s
        .path()
        .join(".wfhost/runs")
        .join(id)
        .join("args.request.json");
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // Two long runs are this client's cap; a third is refused until one ends.
    let long = json!({ "script": SCRIPT, "args": { "delay": 60000, "items": ["a"] } });
    let first = data(&call(&c, "workflow_run", long.clone()).await);
    let second = data(&call(&c, "workflow_run", long.clone()).await);
    tool_error(
        &call(&c, "workflow_run", long.clone()).await,
        "this client already has 2 runs going",
    );
    // Another client has a cap of its own.
    let other = connect(&s, Client::default()).await;
    let theirs = data(&call(&other, "workflow_run", long.clone()).await);
    data(
        &call(
            &other,
            "workflow_control",
            json!({ "runId": theirs["runId"], "action": "stop" }),
        )
        .await,
    );
    other.cancel().await.unwrap();
    data(
        &call(
            &c,
            "workflow_control",
            json!({ "runId": first["runId"], "action": "stop" }),
        )
        .await,
    );
    let ended = data(
        &call(
            &c,
            "workflow_result",
            json!({ "runId": first["runId"], "wait": 30 }),
        )
        .await,
    );
    assert_ne!(ended["status"], "running", "{ended}");
    let third = data(&call(&c, "workflow_run", long).await);
    for r in [&second, &third] {
        data(
            &call(
                &c,
                "workflow_control",
                json!({ "runId": r["runId"], "action": "stop" }),
            )
            .await,
        );
    }
    c.cancel().await.unwrap();
}

/// `wfhost mcp --http` holds up against a local user without the token: a connection that
/// sends nothing, or trickles its headers, is closed; connections past the cap get a 503 at
/// once and the server goes on serving; a browser page of another origin is refused even with
/// the token; `initialize` past the session cap gets a 503 until a session ends.
#[test]
fn mcp_over_http_holds_up_against_a_local_user_without_the_token() {
    use std::io::{Read as _, Write as _};
    let s = with_saved_probe();
    let token = "test-token-0123456789abcdef";
    let (mut server, url) = http_server(&s, token);
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches("/mcp")
        .to_string();
    let connect = || {
        let c = std::net::TcpStream::connect(&addr).unwrap();
        c.set_read_timeout(Some(std::time::Duration::from_secs(40)))
            .unwrap();
        c
    };
    // Closed by the server: reading ends (EOF or reset), not the 40 s read timeout.
    let closed_within = |mut c: std::net::TcpStream| {
        let start = std::time::Instant::now();
        let mut buf = [0u8; 256];
        loop {
            match c.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                Err(e) => panic!("the server kept a dead connection open: {e}"),
            }
        }
        start.elapsed()
    };
    let silent = connect();
    let mut trickle = connect();
    trickle
        .write_all(b"POST /mcp HTTP/1.1\r\nhost: 127.0.0.1\r\n")
        .unwrap();
    let (silent, trickle) = std::thread::scope(|t| {
        let a = t.spawn(|| closed_within(silent));
        let b = t.spawn(|| closed_within(trickle));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert!(
        silent.as_secs() < 30 && trickle.as_secs() < 30,
        "closed after {silent:?} and {trickle:?}"
    );

    let post = |headers: &[String], body: &str, method: &str| -> String {
        let mut cmd = std::process::Command::new("curl");
        cmd.args(["-s", "-D", "-", "-X", method, &url, "--max-time", "10"])
            .args(["-H", "content-type: application/json"])
            .args(["-H", "accept: application/json, text/event-stream"])
            .args(["-d", body]);
        for h in headers {
            cmd.args(["-H", h]);
        }
        String::from_utf8(cmd.output().expect("curl runs").stdout).unwrap()
    };
    let auth = format!("authorization: Bearer {token}");
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}"#;

    // Past the connection cap: 503 at once; the held ones closed, the server serves again.
    let held: Vec<std::net::TcpStream> = (0..64).map(|_| connect()).collect();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let mut extra = connect();
    let mut reply = String::new();
    extra.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 503"), "{reply}");
    assert!(reply.contains("too many connections"), "{reply}");
    drop(held);
    std::thread::sleep(std::time::Duration::from_millis(300));

    // Another origin: refused even with the token; this server's own origin is served.
    let evil = post(
        &[auth.clone(), "origin: http://evil.example".into()],
        init,
        "POST",
    );
    assert!(evil.starts_with("HTTP/1.1 403"), "{evil}");
    let own = post(
        &[auth.clone(), format!("origin: http://{addr}")],
        init,
        "POST",
    );
    assert!(own.starts_with("HTTP/1.1 200"), "{own}");

    // Sessions: 32 at most (this server's own origin opened one above).
    let mut sessions = Vec::new();
    for _ in 0..31 {
        let ok = post(std::slice::from_ref(&auth), init, "POST");
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
        sessions.push(
            ok.lines()
                .find_map(|l| l.strip_prefix("mcp-session-id: "))
                .unwrap()
                .trim()
                .to_string(),
        );
    }
    let full = post(std::slice::from_ref(&auth), init, "POST");
    assert!(
        full.starts_with("HTTP/1.1 503") && full.contains("too many open sessions"),
        "{full}"
    );
    let ended = post(
        &[auth.clone(), format!("mcp-session-id: {}", sessions[0])],
        "",
        "DELETE",
    );
    assert!(ended.starts_with("HTTP/1.1 2"), "{ended}");
    let again = post(&[auth], init, "POST");
    assert!(again.starts_with("HTTP/1.1 200"), "{again}");
    server.kill().unwrap();
    let _ = server.wait();
}

/// A run that ended at its ceiling is not resumed over MCP, which cannot raise a ceiling: the
/// tool error names the exact command a person can run, and that command works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_cannot_raise_a_ceiling_and_names_the_command_that_can() {
    let s = Project::with_script(
        "const out = [];\nfor (let i = 0; i < 4; i++) { try { out.push(await agent(`step ${i}`)); } catch (e) { out.push(e.name); break; } }\nreturn out;",
    )
    .toml("backend = \"mock\"\n");
    let first = s.run_mock(&["--max-agents", "2"]);
    first.code(0);
    let id = first.report()["run_id"].as_str().unwrap().to_string();
    let c = connect(&s, Client::default()).await;
    let refused = call(&c, "workflow_run", json!({ "resumeFromRunId": id })).await;
    let command = format!("wfhost resume {id} --max-agents 4 --raise");
    tool_error(&refused, &command);
    tool_error(&refused, "MCP cannot raise a ceiling");
    c.cancel().await.unwrap();
    let runs: Vec<String> = std::fs::read_dir(s.runs())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        runs.iter().filter(|r| r.starts_with('2')).count(),
        1,
        "the refusal started no run: {runs:?}"
    );
    // The command the model was handed, as a person runs it (here without a terminal: `--yes`
    // approves the script, `--raise` the raise).
    let args: Vec<&str> = command.split(' ').skip(1).collect();
    let raised = s.wf(args).args(["--yes", "--json"]).run();
    raised.code(0);
    let r = raised.report();
    assert_eq!(r["result"].as_array().map(Vec::len), Some(4), "{r}");
    assert_eq!(r["usage"]["agents_cached"], 2, "{r}");
}

/// `[mcp] max_agents` counts agents that run, not those a resume serves from the journal: a run
/// that used all 3 of its agents, resumed with a script that adds a fourth, runs that one (the
/// three served counted against the cap, and the fourth was refused).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_max_agents_does_not_count_agents_a_resume_serves() {
    let s = with_saved_probe();
    s.file("wfhost.toml", "backend = \"mock\"\n[mcp]\nmax_agents = 3\n");
    let script = |items: &str| {
        format!(
            "export const meta = {{ name: 'capped', description: 'cap and resume' }};\nreturn await parallel({items}.map(x => () => agent('do ' + x)));\n"
        )
    };
    let c = connect(&s, Client::default()).await;
    let first = data(
        &call(
            &c,
            "workflow_run",
            json!({ "script": script("['a', 'b', 'c']"), "wait": 30 }),
        )
        .await,
    );
    assert_eq!(first["result"].as_array().map(Vec::len), Some(3), "{first}");
    let resumed = data(
        &call(
            &c,
            "workflow_run",
            json!({ "script": script("['a', 'b', 'c', 'd']"), "resumeFromRunId": first["runId"], "wait": 30 }),
        )
        .await,
    );
    let result = resumed["result"].as_array().expect("a result");
    assert!(
        result
            .iter()
            .all(|r| r.as_str().is_some_and(|t| t.starts_with("R(do "))),
        "every agent answered (three served, one run): {resumed}"
    );
    assert_eq!(result.len(), 4);
    // The cap still holds for agents that run: a fifth and sixth new one are one too many.
    let capped = data(
        &call(
            &c,
            "workflow_run",
            json!({ "script": script("['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h']"), "resumeFromRunId": resumed["runId"], "wait": 30 }),
        )
        .await,
    );
    let answered = capped["result"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r.is_string())
        .count();
    assert_eq!(answered, 7, "four served and three run, the cap: {capped}");
    c.cancel().await.unwrap();
}

/// Every tool says what it does to the world (`readOnlyHint`, `destructiveHint`);
/// `workflow_plan` projects a run as `wfhost plan` does, spending nothing; `workflow_validate`
/// takes a file of the project.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_are_annotated_and_plan_matches_wfhost_plan() {
    let s = with_saved_probe();
    s.file("probe.js", SCRIPT);
    let c = connect(&s, Client::default()).await;
    // The server tells the model what it adds and when to prefer it.
    let instructions = c
        .peer_info()
        .and_then(|i| i.instructions.clone())
        .expect("server instructions");
    for needle in [
        "sandbox",
        "resumeFromRunId",
        "ceilings",
        "background",
        "Prefer it over",
    ] {
        assert!(instructions.contains(needle), "{needle}: {instructions}");
    }
    let tools = c.list_all_tools().await.unwrap();
    let hint = |name: &str| {
        let t = tools
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("{name}"));
        let a = t
            .annotations
            .as_ref()
            .unwrap_or_else(|| panic!("{name} has annotations"));
        (a.read_only_hint, a.destructive_hint)
    };
    for name in [
        "workflow_status",
        "workflow_result",
        "workflow_validate",
        "workflow_list",
        "workflow_runs",
        "workflow_plan",
    ] {
        assert_eq!(hint(name).0, Some(true), "{name} is read-only");
    }
    assert_eq!(hint("workflow_control"), (Some(false), Some(true)));
    for t in &tools {
        let schema = t
            .output_schema
            .as_ref()
            .unwrap_or_else(|| panic!("{} has an outputSchema", t.name));
        assert!(
            schema["required"]
                .as_array()
                .unwrap()
                .contains(&json!("summary")),
            "{}: {schema:?}",
            t.name
        );
    }
    let control = tools.iter().find(|t| t.name == "workflow_control").unwrap();
    let action = serde_json::to_string(&control.input_schema).unwrap();
    for a in ["pause", "continue", "stop", "kill_agent", "restart_agent"] {
        assert!(action.contains(&format!("\"{a}\"")), "{a} in {action}");
    }
    assert_eq!(hint("workflow_run"), (Some(false), Some(false)));

    let args = json!({"items": ["a", "b", "c"]});
    let planned = data(
        &call(
            &c,
            "workflow_plan",
            json!({"scriptPath": "probe.js", "args": args}),
        )
        .await,
    );
    let cli = s
        .wf(["plan", "probe.js", "--json", "--args", &args.to_string()])
        .run();
    assert_eq!(cli.code, 0, "{}", cli.stderr);
    let cli: Value = serde_json::from_str(&cli.stdout).unwrap();
    for (mcp, cli_key) in [
        ("agents", "agents"),
        ("inputTokens", "input_tokens"),
        ("outputTokensLow", "output_tokens_low"),
        ("outputTokensHigh", "output_tokens_high"),
        ("costLow", "cost_low"),
    ] {
        assert_eq!(
            planned["total"][mcp], cli["total"][cli_key],
            "{mcp}: {planned}\n{cli}"
        );
    }
    // One phases shape: a list of objects with a title.
    assert_eq!(planned["phases"][0]["title"], "Work", "{planned}");
    assert_eq!(
        planned["phases"][0]["agents"], cli["phases"]["Work"]["agents"],
        "{planned}"
    );
    assert_eq!(planned["total"]["agents"], 3, "{planned}");
    assert!(
        s.runs().read_dir().map_or(true, |mut d| d.next().is_none()),
        "a plan starts no run"
    );

    let ok = data(&call(&c, "workflow_validate", json!({"scriptPath": "probe.js"})).await);
    assert_eq!(ok["name"], "mcp-probe");
    // The headline, meant for the model, is in the structured part too.
    assert_eq!(ok["summary"], "valid: it can run", "{ok}");
    tool_error(
        &call(
            &c,
            "workflow_validate",
            json!({"scriptPath": "../outside.js"}),
        )
        .await,
        "it contains `..`",
    );
    tool_error(
        &call(&c, "workflow_validate", json!({})).await,
        "nothing to check",
    );
}

/// A client that declares the tasks extension and records task notifications.
#[derive(Clone, Default)]
struct TaskClient {
    statuses: Arc<Mutex<Vec<rmcp::model::TaskStatusNotificationParams>>>,
}

impl ClientHandler for TaskClient {
    fn get_info(&self) -> rmcp::model::ClientConfig {
        rmcp::model::ClientConfig::new(
            rmcp::model::ClientCapabilities::builder()
                .enable_tasks()
                .build(),
            rmcp::model::Implementation::new("task-client", "1"),
        )
    }

    async fn on_task_status(
        &self,
        params: rmcp::model::TaskStatusNotificationParams,
        _context: NotificationContext<RoleClient>,
    ) {
        self.statuses.lock().unwrap().push(params);
    }
}

async fn connect_with<C: ClientHandler + Modern>(
    s: &Project,
    client: C,
) -> RunningService<RoleClient, C> {
    let home = s.path().join("home");
    serve(client, s.wf(["mcp"]).home(&home).command()).await
}

/// Whether a test client speaks 2026-07-28 (`server/discover`, no server-to-client requests)
/// rather than the `initialize` handshake.
trait Modern {
    fn modern(&self) -> bool {
        false
    }
}
impl Modern for Client {}
impl Modern for TaskClient {}
impl Modern for Person {
    fn modern(&self) -> bool {
        self.protocol == rmcp::model::ProtocolVersion::V_2026_07_28
    }
}

async fn serve<C: ClientHandler + Modern>(
    client: C,
    command: std::process::Command,
) -> RunningService<RoleClient, C> {
    use rmcp::service::{ClientLifecycleMode, ClientServiceExt as _};
    let transport = TokioChildProcess::new(tokio::process::Command::from(command)).unwrap();
    if client.modern() {
        client
            .serve_with_lifecycle(
                transport,
                ClientLifecycleMode::Discover {
                    preferred_versions: vec![rmcp::model::ProtocolVersion::V_2026_07_28],
                },
            )
            .await
            .unwrap()
    } else {
        client.serve(transport).await.unwrap()
    }
}

/// `workflow_run` for a client with the tasks extension: a task (its id the run's id), polled
/// with `tasks/get` until `completed` with what `workflow_result` gives.
async fn run_as_task(c: &RunningService<RoleClient, TaskClient>, args: Value) -> String {
    let Value::Object(args) = args else {
        panic!("arguments are an object")
    };
    let response = c
        .call_tool_once(CallToolRequestParams::new("workflow_run").with_arguments(args))
        .await
        .unwrap();
    let rmcp::model::CallToolResponse::Task(created) = response else {
        panic!("a task, not {response:?}")
    };
    assert_eq!(created.task.status, rmcp::model::TaskStatus::Working);
    assert_eq!(
        created.task.ttl_ms, None,
        "kept as long as its run directory"
    );
    created.task.task_id
}

async fn poll(
    c: &RunningService<RoleClient, TaskClient>,
    id: &str,
    until: impl Fn(rmcp::model::TaskStatus) -> bool,
) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let got = c
            .get_task(rmcp::model::GetTaskParams::new(id))
            .await
            .unwrap();
        if until(got.task.status()) {
            return serde_json::to_value(&got).unwrap();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "task {id} stays {got:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_is_a_task_that_outlives_its_server() {
    use rmcp::model::TaskStatus;
    let s = with_saved_probe();
    let client = TaskClient::default();
    let c = connect_with(&s, client.clone()).await;
    let id = run_as_task(
        &c,
        json!({ "script": SCRIPT, "args": { "items": ["a", "b", "c"], "delay": 600 } }),
    )
    .await;
    // The task is the run: its id is the run's, and its record is in the run directory.
    assert!(s.runs().join(&id).join("task.json").is_file(), "{id}");
    let working = poll(&c, &id, |_| true).await;
    assert_eq!(working["status"], "working", "{working}");
    assert_eq!(working["pollIntervalMs"], 2000, "{working}");
    let done = poll(&c, &id, |st| st == TaskStatus::Completed).await;
    let result = &done["result"];
    assert_eq!(result["isError"], false, "{done}");
    let structured = &result["structuredContent"];
    assert_eq!(structured["runId"], id.as_str(), "{done}");
    assert_eq!(structured["status"], "completed", "{done}");
    assert_eq!(
        structured["result"]["out"][2], "R(do c [delay=600])",
        "{done}"
    );
    assert!(
        done["statusMessage"]
            .as_str()
            .unwrap()
            .starts_with("completed"),
        "{done}"
    );
    // The client was told when it ended.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while client.statuses.lock().unwrap().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "a notifications/tasks"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let told = client.statuses.lock().unwrap()[0].clone();
    assert_eq!(told.task.task.task_id, id);
    assert_eq!(told.task.status(), TaskStatus::Completed);

    // tasks/cancel stops the run; the task reads cancelled, and the run can be resumed.
    let long = run_as_task(
        &c,
        json!({ "script": SCRIPT, "args": { "items": ["x", "y"], "delay": 30000 } }),
    )
    .await;
    c.cancel_task(rmcp::model::CancelTaskParams::new(long.as_str()))
        .await
        .unwrap();
    let cancelled = poll(&c, &long, |st| st.is_terminal()).await;
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    let status = data(&call(&c, "workflow_status", json!({ "runId": long })).await);
    assert_eq!(status["status"], "stopped", "{status}");
    // An unknown task is invalid params, not a crash.
    let unknown = c
        .get_task(rmcp::model::GetTaskParams::new("no-such-run"))
        .await
        .unwrap_err();
    assert!(unknown.to_string().contains("unknown task"), "{unknown}");
    c.cancel().await.unwrap();

    // A server started afterwards answers for the same tasks.
    let again = connect_with(&s, TaskClient::default()).await;
    let later = poll(&again, &id, |_| true).await;
    assert_eq!(later["status"], "completed", "{later}");
    assert_eq!(later["result"]["structuredContent"]["runId"], id.as_str());
    let later = poll(&again, &long, |_| true).await;
    assert_eq!(later["status"], "cancelled", "{later}");
    // With `wait`, the same client gets the result itself, not a task.
    let waited = data(
        &call(
            &again,
            "workflow_run",
            json!({ "script": SCRIPT, "args": {}, "wait": 30 }),
        )
        .await,
    );
    assert_eq!(waited["status"], "completed", "{waited}");
}

/// The same over `--http`, as a plain HTTP client speaks it: a task-augmented call returns a
/// task, and `tasks/get` on a new session (and a new server) returns its result.
#[test]
fn tasks_work_over_http_across_sessions() {
    let s = with_saved_probe();
    s.file("probe.js", SCRIPT);
    let token = "test-token-0123456789abcdef";
    let (mut server, url) = http_server(&s, token);
    let post = |url: &str, body: &str, session: Option<&str>| -> (String, Value) {
        let mut cmd = std::process::Command::new("curl");
        cmd.args(["-s", "-D", "-", "-X", "POST", url])
            .args(["-H", "content-type: application/json"])
            .args(["-H", "accept: application/json, text/event-stream"])
            .args(["-H", &format!("authorization: Bearer {token}")])
            .args(["--max-time", "20", "-d", body]);
        if let Some(id) = session {
            cmd.args(["-H", &format!("mcp-session-id: {id}")]);
        }
        let out = String::from_utf8(cmd.output().expect("curl runs").stdout).unwrap();
        let json = out
            .lines()
            .filter_map(|l| {
                l.strip_prefix("data: ")
                    .or_else(|| l.strip_prefix('{').map(|_| l))
            })
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v.get("id").is_some())
            .unwrap_or(Value::Null);
        (out, json)
    };
    let session = |url: &str| -> String {
        let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{"extensions":{"io.modelcontextprotocol/tasks":{}}},"clientInfo":{"name":"curl","version":"1"}}}"#;
        let (out, _) = post(url, init, None);
        let id = out
            .lines()
            .find_map(|l| l.strip_prefix("mcp-session-id: "))
            .unwrap_or_else(|| panic!("a session: {out}"))
            .trim()
            .to_string();
        post(
            url,
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            Some(&id),
        );
        id
    };
    let one = session(&url);
    let (out, created) = post(
        &url,
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"workflow_run","arguments":{"scriptPath":"probe.js","args":{"items":["p","q"]}}}}"#,
        Some(&one),
    );
    let result = &created["result"];
    assert_eq!(result["resultType"], "task", "{out}");
    let id = result["taskId"].as_str().unwrap().to_string();
    let get = |url: &str, session: &str| -> Value {
        let body =
            json!({"jsonrpc": "2.0", "id": 3, "method": "tasks/get", "params": {"taskId": id}});
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let (out, v) = post(url, &body.to_string(), Some(session));
            if v["result"]["status"] == "completed" {
                return v["result"].clone();
            }
            assert!(std::time::Instant::now() < deadline, "{out}");
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
    };
    let done = get(&url, &one);
    assert_eq!(
        done["result"]["structuredContent"]["result"]["out"][1], "R(do q [delay=0])",
        "{done}"
    );
    server.kill().unwrap();
    let _ = server.wait();
    // Another server, another session: the task is still there.
    let (mut second, url) = http_server(&s, token);
    let two = session(&url);
    let again = get(&url, &two);
    assert_eq!(again["taskId"], id.as_str(), "{again}");
    assert_eq!(again["result"], done["result"], "{again}");
    second.kill().unwrap();
    let _ = second.wait();
}

/// A client whose person answers every elicitation with `answer`, and what they were shown.
#[derive(Clone)]
struct Person {
    answer: rmcp::model::ElicitationAction,
    shown: Arc<Mutex<Vec<String>>>,
    protocol: rmcp::model::ProtocolVersion,
}

impl Person {
    fn answering(answer: rmcp::model::ElicitationAction) -> Person {
        Person {
            answer,
            shown: Arc::default(),
            protocol: rmcp::model::ProtocolVersion::V_2026_07_28,
        }
    }
    fn speaking(mut self, protocol: rmcp::model::ProtocolVersion) -> Person {
        self.protocol = protocol;
        self
    }
    fn shown(&self) -> Vec<String> {
        self.shown.lock().unwrap().clone()
    }
}

impl ClientHandler for Person {
    fn get_info(&self) -> rmcp::model::ClientConfig {
        rmcp::model::ClientConfig::new(
            rmcp::model::ClientCapabilities::builder()
                .enable_elicitation()
                .build(),
            rmcp::model::Implementation::new("person", "1"),
        )
        .with_protocol_version(self.protocol.clone())
    }

    async fn create_elicitation(
        &self,
        request: rmcp::model::ElicitRequestParams,
        _context: rmcp::service::RequestContext<RoleClient>,
    ) -> Result<rmcp::model::ElicitResult, rmcp::ErrorData> {
        let rmcp::model::ElicitRequestParams::FormElicitationParams { message, .. } = request
        else {
            panic!("a form")
        };
        let permission = message.contains("wants to use");
        self.shown.lock().unwrap().push(message);
        let mut a = rmcp::model::ElicitResult::new(self.answer.clone());
        if permission {
            // A permission request: allowed once.
            a.content = Some(json!({"decision": "once"}));
        }
        Ok(a)
    }
}

fn no_runs(s: &Project) -> bool {
    s.runs().read_dir().map_or(true, |mut d| d.next().is_none())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_confirms_a_run_before_it_starts() {
    use rmcp::model::ElicitationAction::{Accept, Decline};
    let s = Project::new().toml("backend = \"mock\"\n[mcp]\nconfirm = \"always\"\n");
    let args = json!({"items": ["a", "b", "c"]});
    let run = json!({ "script": SCRIPT, "args": args, "wait": 30 });

    // A client that cannot ask a person is refused, saying why.
    let blind = connect(&s, Client::default()).await;
    tool_error(
        &call(&blind, "workflow_run", run.clone()).await,
        "[mcp] confirm = \"always\"",
    );
    assert!(no_runs(&s), "nothing started");
    blind.cancel().await.unwrap();

    // Declined (2026-07-28: asked through input_required, answered on the retry): no run.
    let no = Person::answering(Decline);
    let c = connect_with(&s, no.clone()).await;
    tool_error(&call(&c, "workflow_run", run.clone()).await, "declined");
    assert!(no_runs(&s), "a declined run starts nothing");
    let shown = no.shown();
    assert_eq!(shown.len(), 1, "{shown:?}");
    let digest = blake3::hash(format!("{SCRIPT}\0{args}").as_bytes()).to_hex();
    for needle in [
        "Start the workflow `mcp-probe`?",
        "over MCP",
        "Phases: Work",
        "Projected: 3 agents",
        &format!("blake3: {digest}"),
        "confirm = \"always\"",
    ] {
        assert!(shown[0].contains(needle), "{needle} in {}", shown[0]);
    }
    c.cancel().await.unwrap();

    // Accepted: it runs, on both protocols (2025-11-25: an elicitation/create request).
    for protocol in [
        rmcp::model::ProtocolVersion::V_2026_07_28,
        rmcp::model::ProtocolVersion::V_2025_11_25,
    ] {
        let yes = Person::answering(Accept).speaking(protocol.clone());
        let c = connect_with(&s, yes.clone()).await;
        let r = data(&call(&c, "workflow_run", run.clone()).await);
        assert_eq!(r["status"], "completed", "{protocol}: {r}");
        assert_eq!(r["result"]["out"][2], "R(do c [delay=0])", "{r}");
        assert_eq!(yes.shown().len(), 1, "{protocol}: asked once");
        c.cancel().await.unwrap();
    }

    // The default, over-limits: a run under [mcp]'s thresholds is not asked about; one over.
    let s = Project::new().toml("backend = \"mock\"\n[mcp]\nconfirm_agents = 3\n");
    let yes = Person::answering(Accept);
    let c = connect_with(&s, yes.clone()).await;
    data(&call(&c, "workflow_run", run.clone()).await);
    assert!(yes.shown().is_empty(), "3 agents are not over 3");
    let four = json!({ "script": SCRIPT, "args": {"items": ["a", "b", "c", "d"]}, "wait": 30 });
    let r = data(&call(&c, "workflow_run", four).await);
    assert_eq!(r["status"], "completed", "{r}");
    let shown = yes.shown();
    assert_eq!(shown.len(), 1, "4 agents are: {shown:?}");
    assert!(shown[0].contains("over [mcp]'s limits"), "{}", shown[0]);
}

/// A project on the `claude` backend (the real CLI against the fake Messages API) whose agent
/// asks for a tool outside its allow-list, and `wfhost mcp` for it.
fn claude_asking(test: &str) -> Option<(Project, super::fake_api::FakeApi, std::path::PathBuf)> {
    let Some(claude) = tool_in_cache("wfhost-claude", "claude") else {
        super::missing_tool(
            test,
            "Claude Code is not installed in ~/.cache/wfhost-claude",
        );
        return None;
    };
    let api = super::fake_api::FakeApi::start(false);
    let s = with_saved_probe();
    s.file(
        "wfhost.toml",
        format!(
            "backend = \"claude\"\nmodel = \"claude-sonnet-4-5\"\n[claude]\nbinary = \"{}\"\nmax_turns = 4\n",
            claude.display()
        ),
    );
    s.file(
        "w.js",
        "export const meta = { name: 'perm', description: 'asks' };\nreturn await agent('[perm-probe] run the probe');\n",
    );
    Some((s, api, claude))
}

async fn connect_claude<C: ClientHandler + Modern>(
    s: &Project,
    api: &super::fake_api::FakeApi,
    client: C,
) -> RunningService<RoleClient, C> {
    let w = claude_env(s.wf(["mcp"]).home(s.path().join("home")), api);
    serve(client, w.command()).await
}

/// The environment a `claude` agent runs in here: the fake API, no telemetry or updates.
fn claude_env(w: super::Wf, api: &super::fake_api::FakeApi) -> super::Wf {
    let mut w = w
        .env_remove("WFHOST_RUNS_DIR")
        .env("IS_SANDBOX", "1")
        .env("DISABLE_TELEMETRY", "1")
        .env("DISABLE_AUTOUPDATER", "1")
        .env("DISABLE_ERROR_REPORTING", "1")
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1");
    for (k, v) in api.env() {
        w = w.env(k, v);
    }
    w
}

/// An agent's permission request answered by the person behind the MCP client: relayed as
/// `elicitation/create` (2025-11-25), and as a task's `input_required` answered with
/// `tasks/update` (2026-07-28). Either way the tool runs and the run's events say who allowed it.
#[test]
fn a_claude_agents_permission_request_is_put_to_the_person_by_elicitation() {
    // The fake API runs its own runtime: started before this test's.
    let Some((s, api, _claude)) =
        claude_asking("a_claude_agents_permission_request_is_put_to_the_person_by_elicitation")
    else {
        return;
    };
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(permission_by_elicitation(&s, &api));
}

async fn permission_by_elicitation(s: &Project, api: &super::fake_api::FakeApi) {
    use rmcp::model::TaskStatus;
    let person = Person::answering(rmcp::model::ElicitationAction::Accept)
        .speaking(rmcp::model::ProtocolVersion::V_2025_11_25);
    let c = connect_claude(s, api, person.clone()).await;
    let r = data(
        &call(
            &c,
            "workflow_run",
            json!({ "scriptPath": "w.js", "wait": 120 }),
        )
        .await,
    );
    ran_the_tool(&r);
    asked_about_bash(&person);
    let events = run_events(&r);
    assert!(
        events.contains("wfhost mcp (elicitation, person)"),
        "who answered: {events}"
    );
    c.cancel().await.unwrap();

    // 2026-07-28 (no server-to-client requests): workflow_run's wait ends at the request,
    // pointing at workflow_result, whose wait asks through input_required.
    let modern = Person::answering(rmcp::model::ElicitationAction::Accept);
    let c = connect_claude(s, api, modern.clone()).await;
    let r = data(
        &call(
            &c,
            "workflow_run",
            json!({ "scriptPath": "w.js", "wait": 120 }),
        )
        .await,
    );
    assert!(
        r["summary"]
            .as_str()
            .unwrap()
            .contains("asks for permission"),
        "{r}\n{}",
        run_events(&r)
    );
    let done = data(
        &call(
            &c,
            "workflow_result",
            json!({ "runId": r["runId"], "wait": 120 }),
        )
        .await,
    );
    ran_the_tool(&done);
    asked_about_bash(&modern);
    c.cancel().await.unwrap();

    // As a task: input_required with the request, answered by tasks/update.
    let c = connect_claude(s, api, TaskClient::default()).await;
    let id = run_as_task(&c, json!({ "scriptPath": "w.js" })).await;
    let asked = poll(&c, &id, |st| {
        st == TaskStatus::InputRequired || st.is_terminal()
    })
    .await;
    assert_eq!(asked["status"], "input_required", "{asked}");
    let (key, request) = asked["inputRequests"]
        .as_object()
        .and_then(|m| m.iter().next())
        .expect("one request");
    assert!(key.starts_with("permission-"), "{asked}");
    assert!(
        request["params"]["message"]
            .as_str()
            .unwrap()
            .contains("`Bash`"),
        "{request}"
    );
    let mut responses = rmcp::model::InputResponses::new();
    responses.insert(
        key.clone(),
        json!({"action": "accept", "content": {"decision": "once"}}),
    );
    c.update_task(rmcp::model::UpdateTaskParams::new(id.as_str(), responses))
        .await
        .unwrap();
    let done = poll(&c, &id, |st| st.is_terminal()).await;
    assert_eq!(done["status"], "completed", "{done}");
    ran_the_tool(&done["result"]["structuredContent"]);
}

/// The probe's tool ran: it was allowed.
fn ran_the_tool(answer: &Value) {
    assert!(
        answer["result"]
            .as_str()
            .unwrap_or_default()
            .contains("permitted-42"),
        "the allowed tool ran: {answer}"
    );
}

/// The person was asked about the probe's `Bash`.
fn asked_about_bash(person: &Person) {
    let shown = person.shown();
    assert!(
        shown.iter().any(|m| m.contains("wants to use `Bash`")),
        "the person was asked: {shown:?}"
    );
}

/// A run's event log, by the `runDir` of a tool's answer.
fn run_events(answer: &Value) -> String {
    std::fs::read_to_string(
        std::path::Path::new(answer["runDir"].as_str().unwrap()).join("events.jsonl"),
    )
    .unwrap_or_default()
}
