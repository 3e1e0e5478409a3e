//! `wfhost mcp`: an MCP server (rmcp, stdio) that lets a coding agent launch, watch and steer
//! sandboxed workflow runs. Each run it starts is an ordinary detached run (`wfhost watch`
//! shows it, `wfhost runs` lists it); the server holds no run state of its own, so runs outlive
//! it. Tool arguments follow the reference runtime's Workflow tool (`script`, `scriptPath`,
//! `name`, `args`, `resumeFromRunId`). Policy: the project's configuration plus `[mcp]`.
//! docs/mcp.md.

mod ask;
mod confirm;
pub(crate) mod http;
mod launch;
mod output;
pub(crate) mod permission;
pub(crate) mod runs;
mod task;

use crate::config::Config;
use crate::run_dir::RunDir;
use crate::workflows::Resolver;
use output::{Answer, schema};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::{InputResponses, RequestState};
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    ContentBlock, GetPromptRequestParams, GetPromptResponse, GetPromptResult, Implementation,
    ListPromptsResult, ListResourcesResult, PaginatedRequestParams, Prompt, PromptArgument,
    PromptMessage, ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, Resource,
    ResourceContents, Role, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{
    ErrorData as McpError, RoleServer, ServerHandler, schemars, tool, tool_handler, tool_router,
};
use serde::Deserialize;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The authoring reference every model gets (the `workflow-authoring` prompt and resource),
/// kept with docs/script-api.md.
pub(crate) const AUTHORING: &str = include_str!("../../../docs/authoring.md");

/// Why 10 minutes: a tool call that waits longer than this holds the client's turn; longer
/// runs are followed with `workflow_result {wait}` or `workflow_status`.
const MAX_WAIT: f64 = 600.0;

const INSTRUCTIONS: &str = "wfhost runs workflow scripts — JavaScript that fans work out to many LLM agents — in a sandbox (QuickJS in WebAssembly: no filesystem, network or clock for the script itself). \
What it adds over running a workflow in this session: the script cannot reach anything but its agents; every agent's answer is journaled, so a stopped or crashed run resumes (`workflow_run` with `resumeFromRunId`) without asking a finished agent again; hard ceilings on agents and cost hold (and only a person can raise them); runs go on in the background, outliving this conversation. \
Prefer it over a built-in workflow tool when the script fans out to many agents, runs long or costs much, or when the user wants it contained, resumable or capped. \
Write a script (see the `workflow-authoring` prompt), check it with `workflow_validate`, see what it would start and cost with `workflow_plan` (nothing is spent), start it with `workflow_run` (it returns at once with a runId, or waits up to `wait` seconds), \
follow it with `workflow_status`, and read the outcome with `workflow_result`. Runs go on in the background: you are free while they run. \
`workflow_control` pauses, continues or stops a run, or kills or restarts one agent.";

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RunParams {
    /// The workflow script's full source: JavaScript with `export const meta = { name, description }`
    /// and a body that calls agent(), parallel(), pipeline(). Give exactly one of script,
    /// scriptPath or name (or only resumeFromRunId, to continue a run as it was).
    pub script: Option<String>,
    /// A `.js` file inside the project (relative to it, or absolute). An inline script is saved
    /// in its run directory: edit that file and pass it here to run it again.
    pub script_path: Option<String>,
    /// A saved workflow's name (see workflow_list).
    pub name: Option<String>,
    /// The script's `args` (any JSON value).
    pub args: Option<Value>,
    /// Continue this run: every agent that already finished is served from its journal, only
    /// the rest run. With a script, the edited script is run against that journal.
    pub resume_from_run_id: Option<String>,
    /// Seconds to wait for the run to finish (at most 600) before returning; progress is
    /// reported meanwhile. Without it, returns as soon as the run has started.
    #[serde(default, deserialize_with = "lenient_seconds")]
    #[schemars(with = "Option<f64>")]
    pub wait: Option<f64>,
}

/// Seconds as a number or a numeric string (some clients send every argument as a string).
fn lenient_seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Seconds {
        Number(f64),
        Text(String),
    }
    match Option::<Seconds>::deserialize(d)? {
        None => Ok(None),
        Some(Seconds::Number(n)) => Ok(Some(n)),
        Some(Seconds::Text(t)) => t.trim().parse().map(Some).map_err(|_| {
            serde::de::Error::custom(format!("`wait` is a number of seconds, not `{t}`"))
        }),
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RunRef {
    /// The run's id, as workflow_run or workflow_runs gave it.
    pub run_id: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ResultParams {
    /// The run's id.
    pub run_id: String,
    /// Seconds to wait for the run to finish (at most 600) if it is still running.
    #[serde(default, deserialize_with = "lenient_seconds")]
    #[schemars(with = "Option<f64>")]
    pub wait: Option<f64>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ControlParams {
    /// The run's id.
    pub run_id: String,
    pub action: Action,
    /// For kill_agent and restart_agent: the agent's number (as workflow_status lists failed
    /// agents, 1 = the first started) or its label.
    pub agent: Option<String>,
}

/// What `workflow_control` does to a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Action {
    /// No new agent starts; running ones finish.
    Pause,
    /// Dispatching goes on after a pause.
    Continue,
    /// Cancels running agents and ends the run (resumable with resumeFromRunId).
    Stop,
    /// The agent returns null to the script.
    KillAgent,
    /// The agent is asked again; the script gets the new answer.
    RestartAgent,
}

impl Action {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Action::Pause => "pause",
            Action::Continue => "continue",
            Action::Stop => "stop",
            Action::KillAgent => "kill_agent",
            Action::RestartAgent => "restart_agent",
        }
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ValidateParams {
    /// The workflow script's full source (or give `scriptPath`).
    #[serde(default)]
    pub script: Option<String>,
    /// A `.js` file of the project to check instead (relative to the project, no `..`).
    #[serde(default, rename = "scriptPath")]
    pub script_path: Option<String>,
}

/// `workflow_plan`: the script as for `workflow_run`, and its args.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct PlanParams {
    /// The workflow script's full source. Give exactly one of script, scriptPath or name.
    pub script: Option<String>,
    /// A `.js` file inside the project.
    pub script_path: Option<String>,
    /// A saved workflow's name (see workflow_list).
    pub name: Option<String>,
    /// The script's `args` (any JSON value).
    pub args: Option<Value>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Empty {}

/// The server: the project it serves and its policy.
#[derive(Clone)]
pub(crate) struct Server {
    cwd: PathBuf,
    config: Arc<Config>,
    /// The runs this client started (for `[mcp] max_runs`).
    started: Arc<std::sync::Mutex<Vec<String>>>,
    tool_router: ToolRouter<Server>,
}

/// Why 4: a coding agent follows a run or two at a time; more at once from one client is a
/// loop gone wrong, and each run holds a process, a pool of agents and their spend.
pub(crate) const MAX_RUNS_PER_CLIENT: u32 = 4;

/// A tool error the model sees (and can act on), not a protocol error: handlers return
/// `ToolResult` and use `?`; rmcp marks the result `isError`.
#[derive(Debug)]
pub(crate) struct ToolError(String);

/// What every tool handler returns: its typed answer (the type is its output schema) or an
/// error for the model.
type ToolResult<T> = Result<Answer<T>, ToolError>;

impl From<String> for ToolError {
    fn from(message: String) -> ToolError {
        ToolError(message)
    }
}

impl From<&str> for ToolError {
    fn from(message: &str) -> ToolError {
        ToolError(message.to_string())
    }
}

/// An error with its `hint:` line, as `wfhost` prints it (without the `error: ` prefix).
impl From<anyhow::Error> for ToolError {
    fn from(e: anyhow::Error) -> ToolError {
        let text = crate::render_error(&e);
        ToolError(text.trim_start_matches("error: ").trim_end().to_string())
    }
}

impl rmcp::model::IntoContents for ToolError {
    fn into_contents(self) -> Vec<ContentBlock> {
        vec![ContentBlock::text(self.0)]
    }
}

/// The client's name, as it introduced itself (for the journal: who answered).
fn client_name(ctx: &RequestContext<RoleServer>) -> String {
    ctx.peer
        .peer_info()
        .map_or_else(|| "client".into(), |i| i.client_info.name.clone())
}

fn seconds(wait: Option<f64>) -> Result<Option<Duration>, String> {
    match wait {
        None => Ok(None),
        Some(w) if w.is_finite() && w >= 0.0 => Ok(Some(Duration::from_secs_f64(w.min(MAX_WAIT)))),
        Some(w) => Err(format!(
            "`wait` must be a number of seconds from 0 to {MAX_WAIT}, not {w}"
        )),
    }
}

#[tool_router]
impl Server {
    pub(crate) fn new(cwd: PathBuf, config: Config) -> Server {
        Server {
            cwd,
            config: Arc::new(config),
            started: Arc::default(),
            tool_router: Self::tool_router(),
        }
    }

    fn run_dir(&self, id: &str) -> Result<RunDir, ToolError> {
        RunDir::existing(&self.cwd, id).map_err(|_| {
            format!("there is no run `{id}` in this project; workflow_runs lists them").into()
        })
    }

    #[tool(
        description = "Start a workflow run in the sandbox. Give the script inline (`script`), as a file (`scriptPath`) or a saved workflow (`name`), plus `args`. The script is checked first (meta, syntax, imports): a rejection is returned as an error with the fix, and nothing runs. Returns at once what workflow_result gives ({runId, status, phases, agents, runDir, …}) plus workflowName and scriptPath; with `wait` (seconds), the outcome (result, failures) if it finished by then. Agents run in the background; use workflow_status / workflow_result to follow it.",
        annotations(
            title = "Run a workflow",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = true
        ),
        output_schema = schema::<output::Launched>()
    )]
    async fn workflow_run(
        &self,
        Parameters(p): Parameters<RunParams>,
        ctx: RequestContext<RoleServer>,
        InputResponses(responses): InputResponses,
        RequestState(state): RequestState,
    ) -> Result<rmcp::model::CallToolResponse, ToolError> {
        let wait = seconds(p.wait)?;
        let given = launch::Given::of(&p)?;
        self.admit(&p)?;
        let mut source = self.script(&given).await?;
        let snapshot = match (&given, &p.resume_from_run_id) {
            (launch::Given::Resume, Some(id)) => {
                runs::read(&self.run_dir(id)?.script()).unwrap_or_default()
            }
            _ => String::new(),
        };
        let shown = confirm::Shown {
            source: if snapshot.is_empty() {
                source.text()
            } else {
                &snapshot
            },
            meta: source.meta.as_ref(),
            args: p.args.as_ref(),
            resume: p.resume_from_run_id.as_deref(),
        };
        if let confirm::Next::Ask(ask) = self
            .confirm(&shown, &ctx, responses.as_ref(), state.as_deref())
            .await?
        {
            return Ok(ask.into());
        }
        let new_id = crate::run::new_run_id();
        self.save_inline(
            &given,
            &mut source,
            p.resume_from_run_id.as_deref(),
            &new_id,
        )?;
        let (dir, mut started) = self.launch(&p, &source, &new_id)?;
        // A client that declared the tasks extension gets the run as a task (call now, fetch
        // later), unless it asked to wait.
        let tasks = ctx
            .client_capabilities()
            .is_some_and(|c| c.supports_tasks());
        // Agents' permission requests go to the person too: relayed as elicitation/create up
        // to 2025-11-25; a task shows them as input_required.
        let task = tasks && wait.is_none();
        if !task && confirm::asking(&ctx) == confirm::Asking::ByRequest {
            ask::relay(dir.clone(), ctx.peer.clone(), client_name(&ctx));
        }
        if task {
            let seed = task::create(&dir).map_err(|e| ToolError(e.message.to_string()))?;
            task::notify_at_end(self.cwd.clone(), dir, ctx.peer.clone());
            return Ok(rmcp::model::CreateTaskResult::new(seed).into());
        }
        let answer = match wait {
            None => {
                if let Ok(now) = runs::status(&dir).await {
                    started.outcome.run = now;
                }
                Answer::new(
                    format!(
                        "started run {}; follow it with workflow_status or workflow_result {{runId, wait}}",
                        dir.id()
                    ),
                    started,
                )
            }
            Some(wait) => self.follow(&dir, started, wait, &ctx).await?,
        };
        Ok(answer.into_result().into())
    }

    #[tool(
        description = "A run's progress: status (running, paused, completed, failed, stopped, crashed), agents queued/running/done/failed/cached, tokens, cost, elapsed, each phase's counts, and failed agents with the first line of their error.",
        annotations(
            title = "Workflow status",
            read_only_hint = true,
            open_world_hint = false
        ),
        output_schema = schema::<crate::control::RunStatus>()
    )]
    async fn workflow_status(
        &self,
        Parameters(p): Parameters<RunRef>,
    ) -> ToolResult<crate::control::RunStatus> {
        let dir = self.run_dir(&p.run_id)?;
        let status = runs::status(&dir)
            .await
            .map_err(|e| format!("run `{}` cannot be read: {e:#}", p.run_id))?;
        Ok(Answer::new(
            format!("run {}: {}", p.run_id, status.status),
            status,
        ))
    }

    #[tool(
        description = "A run's outcome: the script's result (capped; the full JSON's path when longer), which agents failed and why, and where each agent's transcript is. With `wait` (seconds), waits for a running run to finish first. A run in which agents failed says so on its first line.",
        annotations(
            title = "Workflow result",
            read_only_hint = true,
            open_world_hint = false
        ),
        output_schema = schema::<output::Outcome>()
    )]
    async fn workflow_result(
        &self,
        Parameters(p): Parameters<ResultParams>,
        ctx: RequestContext<RoleServer>,
        InputResponses(responses): InputResponses,
    ) -> Result<rmcp::model::CallToolResponse, ToolError> {
        let dir = self.run_dir(&p.run_id)?;
        let wait = seconds(p.wait)?.unwrap_or_default();
        // A 2026-07-28 client that can ask its person (no server-to-client requests) is asked
        // the run's permission requests through input_required while it waits; its retry
        // carries the answers, and the wait goes on.
        let ask = confirm::asking(&ctx) == confirm::Asking::ByRetry;
        if let Some(r) = &responses {
            ask::answer_all(&dir, r, &client_name(&ctx)).await;
        }
        let asked = |s: &crate::control::RunStatus| ask && !s.permissions.is_empty();
        if let runs::Waited::Until = runs::wait_for(&dir, wait, asked).await {
            let requests = ask::open_requests(&dir).await;
            if !requests.is_empty() {
                return Ok(rmcp::model::InputRequiredResult::new(
                    Some(requests),
                    Some(format!("run:{}", p.run_id)),
                )
                .into());
            }
        }
        if dir.is_running() {
            let status = runs::status(&dir).await.unwrap_or_default();
            return Ok(Answer::new(
                format!("run {} is still running: no result yet", p.run_id),
                runs::unfinished(status),
            )
            .into_result()
            .into());
        }
        let (headline, outcome) =
            runs::result(&dir).map_err(|e| format!("run `{}` cannot be read: {e:#}", p.run_id))?;
        Ok(Answer::new(headline, outcome).into_result().into())
    }

    #[tool(
        description = "Steer a running run: pause, continue, stop, kill_agent or restart_agent (these two need `agent`: its number or label). Every command is journaled.",
        annotations(
            title = "Steer a workflow run",
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = false,
            open_world_hint = false
        ),
        output_schema = schema::<output::Controlled>()
    )]
    async fn workflow_control(
        &self,
        Parameters(p): Parameters<ControlParams>,
    ) -> ToolResult<output::Controlled> {
        let dir = self.run_dir(&p.run_id)?;
        let reply = runs::control(&dir, p.action, p.agent.as_deref()).await?;
        let status = runs::status(&dir).await.unwrap_or_default();
        let done = output::Controlled {
            action: p.action.as_str().to_string(),
            status: status.status,
            paused: reply["paused"].as_bool(),
            resume: reply["resume"].as_str().map(str::to_owned),
            agent: reply["agent"].as_u64().and_then(|n| u32::try_from(n).ok()),
            label: reply["label"].as_str().map(str::to_owned),
        };
        Ok(Answer::new(format!("{}: done", p.action.as_str()), done))
    }

    #[tool(
        description = "Check a workflow script without running it: meta, syntax (QuickJS compiles it), and that it imports nothing outside the sandbox's API. Give the source (`script`) or a .js file of the project (`scriptPath`). Returns the workflow's name, description and phases, or the error with how to fix it.",
        annotations(
            title = "Validate a workflow script",
            read_only_hint = true,
            open_world_hint = false
        ),
        output_schema = schema::<output::Validated>()
    )]
    async fn workflow_validate(
        &self,
        Parameters(p): Parameters<ValidateParams>,
    ) -> ToolResult<output::Validated> {
        let (origin, source) = match (&p.script, &p.script_path) {
            (Some(source), None) => ("script".to_string(), source.clone()),
            (None, Some(sp)) => {
                let path = runs::script_path(sp, &self.cwd)?;
                (sp.clone(), runs::read(&path)?)
            }
            (None, None) => {
                return Err("nothing to check: give `script` (the source) or `scriptPath` (a .js file of the project)".into());
            }
            (Some(_), Some(_)) => {
                return Err("give `script` or `scriptPath`, not both".into());
            }
        };
        let s = runs::check(&origin, &source)
            .await
            .map_err(|e| format!("the script was rejected: {e}"))?;
        Ok(Answer::new(
            "valid: it can run",
            output::Validated {
                valid: true,
                phases: output::PhaseTitle::of(&s.meta),
                name: s.meta.name,
                description: s.meta.description,
                warnings: s.meta.warnings,
            },
        ))
    }

    #[tool(
        description = "Project a run before starting it, as `wfhost plan` does: the script runs on synthesized answers (no model is called, nothing is spent) and the projection says how many agents it would start, by phase and model, their input and output tokens, the cost range at the configured prices, and warnings (a barrier that could be a pipeline, an agent count over the guideline). Give the script as for workflow_run, and its args.",
        annotations(
            title = "Plan a workflow run",
            read_only_hint = true,
            open_world_hint = false
        ),
        output_schema = schema::<output::Planned>()
    )]
    async fn workflow_plan(
        &self,
        Parameters(p): Parameters<PlanParams>,
    ) -> ToolResult<output::Planned> {
        let run = RunParams {
            script: p.script,
            script_path: p.script_path,
            name: p.name,
            args: None,
            resume_from_run_id: None,
            wait: None,
        };
        let given = launch::Given::of(&run)?;
        let source = self.script(&given).await?;
        let script = crate::script::Script::parse("script", source.text())
            .map_err(|r| format!("the script was rejected: {}", r.render()))?;
        let plan = crate::plan::on_backend(crate::plan::Planned {
            script,
            args: p.args,
            config: self.config.clone(),
            cwd: self.cwd.clone(),
            backend: self.config.backend.clone(),
            limits: crate::limits::Limits::default(),
            no_cache: false,
        })
        .await?;
        let headline = plan.render().lines().next().unwrap_or_default().to_string();
        Ok(Answer::new(headline, output::Planned::from(plan)))
    }

    #[tool(
        description = "Saved workflows of this project and the user: name, description, whenToUse, phases. Run one with workflow_run {name}.",
        annotations(
            title = "Saved workflows",
            read_only_hint = true,
            open_world_hint = false
        ),
        output_schema = schema::<output::Saved>()
    )]
    async fn workflow_list(&self, Parameters(_): Parameters<Empty>) -> ToolResult<output::Saved> {
        let workflows: Vec<output::SavedWorkflow> = Resolver::discover(&self.cwd)
            .list()
            .into_iter()
            .map(|e| {
                let script = runs::read(&e.path)
                    .ok()
                    .and_then(|src| crate::script::Script::parse(&e.name, &src).ok());
                output::SavedWorkflow {
                    name: e.name,
                    scope: e.scope,
                    description: script.as_ref().map(|s| s.meta.description.clone()),
                    when_to_use: script.as_ref().and_then(|s| s.meta.when_to_use.clone()),
                    phases: script
                        .as_ref()
                        .map(|s| output::PhaseTitle::of(&s.meta))
                        .unwrap_or_default(),
                }
            })
            .collect();
        Ok(Answer::new(
            format!("{} saved workflow(s)", workflows.len()),
            output::Saved { workflows },
        ))
    }

    #[tool(
        description = "This project's recent runs (newest first, at most 50): id, name, status, agent counts.",
        annotations(title = "Recent runs", read_only_hint = true, open_world_hint = false),
        output_schema = schema::<output::Runs>()
    )]
    async fn workflow_runs(&self, Parameters(_): Parameters<Empty>) -> ToolResult<output::Runs> {
        let mut out = Vec::new();
        for dir in RunDir::list(&self.cwd).into_iter().take(50) {
            let Ok(loaded) = crate::journal::load_run(&dir) else {
                continue;
            };
            let h = crate::journal::History::fold(&loaded);
            let status = h.status_now(dir.is_running());
            out.push(output::RunRow {
                run_id: dir.id().to_string(),
                name: h.name.clone(),
                status: status.to_string(),
                started_at: h.started_at.clone(),
                agents: crate::live::Counts {
                    done: h.done(),
                    failed: h.failed(),
                    cached: h.served,
                    ..crate::live::Counts::default()
                },
            });
        }
        Ok(Answer::new(
            format!("{} run(s)", out.len()),
            output::Runs { runs: out },
        ))
    }
}

const AUTHORING_PROMPT: &str = "workflow-authoring";
const AUTHORING_URI: &str = "wfhost://authoring";

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Server {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_prompts()
                .enable_resources()
                .enable_tasks()
                .build(),
        )
        .with_server_info(Implementation::new("wfhost", env!("CARGO_PKG_VERSION")))
        .with_instructions(INSTRUCTIONS.to_string())
    }

    async fn get_task(
        &self,
        request: rmcp::model::GetTaskParams,
        _: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::GetTaskResult, McpError> {
        let detailed = task::get(&self.cwd, &request.task_id).await?;
        Ok(rmcp::model::GetTaskResult::new(detailed))
    }

    async fn update_task(
        &self,
        request: rmcp::model::UpdateTaskParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        let client = ctx
            .peer
            .peer_info()
            .map(|i| i.client_info.name.clone())
            .unwrap_or_else(|| "client".into());
        task::update(
            &self.cwd,
            &request.task_id,
            &request.input_responses,
            &client,
        )
        .await
    }

    async fn cancel_task(
        &self,
        request: rmcp::model::CancelTaskParams,
        _: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        task::cancel(&self.cwd, &request.task_id).await
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        let mut prompts = vec![Prompt::new(
            AUTHORING_PROMPT,
            Some(
                "How to write a wfhost workflow script that passes on the first try: the script API, parallel vs pipeline, schemas, budget, limits, and what is unavailable and why.",
            ),
            None,
        )];
        for e in Resolver::discover(&self.cwd).list() {
            let description = runs::read(&e.path)
                .ok()
                .and_then(|src| crate::script::Script::parse(&e.name, &src).ok())
                .map(|s| s.meta.description);
            prompts.push(Prompt::new(
                e.name.clone(),
                description.or_else(|| Some("a saved workflow".into())),
                Some(vec![
                    PromptArgument::new("args")
                        .with_description("the workflow's args, as JSON")
                        .with_required(false),
                ]),
            ));
        }
        Ok(ListPromptsResult {
            prompts,
            ..Default::default()
        })
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        if request.name == AUTHORING_PROMPT {
            return Ok(
                GetPromptResult::new(vec![PromptMessage::new_text(Role::User, AUTHORING)])
                    .with_description("Writing wfhost workflow scripts")
                    .into(),
            );
        }
        let path = Resolver::discover(&self.cwd)
            .find(&request.name)
            .map_err(|e| McpError::invalid_params(e, None))?;
        let source = runs::read(&path).map_err(|e| McpError::internal_error(e, None))?;
        let args = request
            .arguments
            .as_ref()
            .and_then(|a| a.get("args"))
            .map(|a| a.as_str().map_or_else(|| a.to_string(), str::to_owned));
        let text = format!(
            "Run the saved workflow `{}` with the workflow_run tool: {{\"name\": \"{}\"{}}}. Its source, for reference:\n\n```js\n{source}\n```",
            request.name,
            request.name,
            args.map(|a| format!(", \"args\": {a}")).unwrap_or_default()
        );
        Ok(GetPromptResult::new(vec![PromptMessage::new_text(Role::User, text)]).into())
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        Ok(ListResourcesResult {
            resources: vec![Resource::new(
                AUTHORING_URI,
                "workflow-authoring".to_string(),
            )],
            ..Default::default()
        })
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        if request.uri == AUTHORING_URI {
            return Ok(ReadResourceResult::new(vec![ResourceContents::text(
                AUTHORING,
                AUTHORING_URI,
            )])
            .into());
        }
        Err(McpError::resource_not_found(
            format!("no resource `{}`", request.uri),
            None,
        ))
    }
}

/// Serves MCP on stdin/stdout until the client closes it.
pub(crate) async fn serve_stdio(cwd: PathBuf, config: Config) -> anyhow::Result<()> {
    use rmcp::ServiceExt as _;
    let service = Server::new(cwd, config)
        .serve(rmcp::transport::stdio())
        .await?;
    service.waiting().await?;
    Ok(())
}
