//! `wfhost run`

use super::{LimitArgs, read_file};
use crate::compile::{self, Cache};
use crate::control::Control;
use crate::control::server::Server;
use crate::dashboard::{self, Exit, Link};
use crate::journal::Record;
use crate::limits::Ceilings;
use crate::report::{Outcome, RunReport};
use crate::run::{RunOptions, Target, execute, new_run_id, open_journal, parse_args, rejected};
use crate::run_dir::RunDir;
use crate::sandbox::{self, Sandbox};
use crate::script::{Meta, Script};
use crate::workflows::Resolver;
use crate::{ExitError, exit, printer, sanitize};
use anyhow::{Context as _, Result, anyhow, bail};
use clap::Args;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

pub(super) const AFTER_HELP: &str = "\
Examples:
  wfhost run review.js --backend mock --yes
  wfhost run review.js --args '{\"files\": [\"src/a.rs\"]}' --budget-tokens 200000
  wfhost run review.wasm --json              one JSON report on stdout (for CI)
  wfhost run deep-review                     a saved workflow (see .wfhost/workflows/)
  wfhost run review.js --detach --yes        in the background; prints the run id

Without a terminal (CI), `--yes` is required: running a script is an explicit decision.";

#[derive(Args)]
pub(super) struct RunArgs {
    /// A script (`.js`), a module from `wfhost compile` (`.wasm`), or a saved workflow's name.
    pub(super) target: String,
    /// The script's `args`: JSON, or any other text (it arrives as a string).
    #[arg(long, value_name = "JSON", conflicts_with = "args_file")]
    pub(super) args: Option<String>,
    /// Read `args` from a file (same rules as --args).
    #[arg(long, value_name = "FILE")]
    pub(super) args_file: Option<PathBuf>,
    /// Continue run RUN_ID: calls whose answer is in its journal are served from it.
    #[arg(long, value_name = "RUN_ID")]
    pub(super) resume: Option<String>,
    /// Do not keep a journal for this run (it cannot be resumed).
    #[arg(long, conflicts_with = "resume")]
    pub(super) no_journal: bool,
    /// The run's id (set by `--detach` for the process it starts).
    #[arg(long, hide = true, value_name = "RUN_ID", conflicts_with = "resume")]
    pub(super) run_id: Option<String>,
    /// A resume's stored args (`args.json`), read as exact JSON.
    #[arg(skip)]
    pub(super) args_exact: Option<PathBuf>,
    /// A resume's journal, already read (`wfhost resume` reads it to find the backend).
    #[arg(skip)]
    pub(super) resume_point: Option<Box<crate::journal::ResumePoint>>,
    #[command(flatten)]
    pub(super) common: RunCommon,
}

/// The flags of everything that runs a script: `wfhost run` and `wfhost resume` (as wasmtime's
/// `RunCommon`), so neither can drop one the other has.
#[derive(Args)]
pub(super) struct RunCommon {
    /// Who answers agents: claude, messages, command, mock, replay:DIR [default: from
    /// wfhost.toml, else claude when on PATH, else messages when ANTHROPIC_API_KEY is set;
    /// on resume, the backend the run used].
    #[arg(long, value_name = "NAME", help_heading = "Agents")]
    pub(super) backend: Option<String>,
    /// Start in the background: print the run id and the commands to watch, stop and resume
    /// it, and return at once. Its output goes to the run directory (`output.log`).
    #[arg(long, help_heading = "Output")]
    pub(super) detach: bool,
    /// Print one JSON report on stdout when the run ends (and nothing else there).
    #[arg(long, help_heading = "Output")]
    pub(super) json: bool,
    /// Write a JUnit XML report to FILE when the run ends: a testsuite per phase, a testcase per
    /// agent, the script's own error as an error (GitLab, Jenkins, Buildkite and GitHub's
    /// test-report actions read it). Under GitHub Actions a job summary and annotations are
    /// written as well (docs/ci.md).
    #[arg(long, value_name = "FILE", help_heading = "Output")]
    pub(super) junit: Option<PathBuf>,
    /// Run without asking for approval (required without a terminal).
    #[arg(long, short = 'y', help_heading = "Output")]
    pub(super) yes: bool,
    /// No progress on stderr.
    #[arg(long, short = 'q', help_heading = "Output")]
    pub(super) quiet: bool,
    /// Write every event as a JSON line to FILE (`-`: stdout). Schema: docs/events.md.
    #[arg(long, value_name = "FILE", help_heading = "Output")]
    pub(super) events: Option<String>,
    /// A hard ceiling on output tokens: once spent, new agent() calls throw.
    #[arg(long, value_name = "N", help_heading = "Spending")]
    pub(super) budget_tokens: Option<u64>,
    /// Stop starting agents once the run has cost this much (USD).
    #[arg(long, value_name = "USD", value_parser = super::parse_usd, help_heading = "Spending")]
    pub(super) max_cost: Option<f64>,
    /// On a resume: let flags raise the run's ceilings above what it was started with
    /// (`--max-cost`, `--budget-tokens`, `--max-tokens`, `--max-agents`, …) — an operator's
    /// decision, journaled (who, when, old → new) and shown by `runs show` and `trace`.
    /// Without it a terminal asks, and without a terminal a raise is refused (exit 2).
    #[arg(long, help_heading = "Spending")]
    pub(super) raise: bool,
    /// When the provider says a usage or spend limit is reached, wait until it resets (the
    /// time the provider gives, else 5 minutes) and go on, instead of ending the run with exit
    /// 75 [config: `wait_on_limit = true`].
    #[arg(long, help_heading = "Spending")]
    pub(super) wait_on_limit: bool,
    /// How long a `claude` agent's request to use a tool outside its allow-list waits for an
    /// operator (`wfhost watch`, MCP) before it is denied, with the reason [default: 60s].
    #[arg(long, value_name = "DURATION", value_parser = super::parse_positive_duration, help_heading = "Agents")]
    pub(super) permission_timeout: Option<std::time::Duration>,
    /// Where agent calls run: `local` (this process) or `nats://HOST:PORT` (a JetStream work
    /// queue served by `wfhost worker`s; docs/distributed.md) [config: `[executor] url`].
    #[arg(long, value_name = "URL", help_heading = "Agents")]
    pub(super) executor: Option<String>,
    #[command(flatten, next_help_heading = "NATS executor")]
    pub(super) nats: crate::executor::NatsArgs,
    #[command(flatten)]
    pub(super) tools: super::tools::ToolArgs,
    /// Send agents through the Message Batches API (`messages` backend): half the price,
    /// answers within 24 h, usually minutes; an agent with tools waits on one batch per turn.
    /// A resume of a batched run batches again, onto the batches it left pending
    /// (docs/cost.md) [config: `[messages] batch = true`].
    #[arg(long, help_heading = "Spending")]
    pub(super) batch: bool,
    /// How long agents that become ready together are gathered into one batch [default: 1s;
    /// config `[messages] batch_window`].
    #[arg(long, value_name = "DURATION", requires = "batch", value_parser = super::parse_positive_duration, help_heading = "Spending")]
    pub(super) batch_window: Option<std::time::Duration>,
    /// Store every answer in DIR, for `--backend replay:DIR`.
    #[arg(long, value_name = "DIR", help_heading = "Agents")]
    pub(super) record: Option<PathBuf>,
    #[command(flatten, next_help_heading = "Limits")]
    pub(super) limits: LimitArgs,
}

/// `wfhost run` (and `resume`), in steps: configure → the run id and what a resume serves →
/// the backend, args and ceilings → load the target → approval → (detach) → the journal, the
/// control and the views → execute, or stop on a signal or `wfhost stop`.
pub(super) async fn run(mut a: RunArgs) -> Result<u8> {
    let started = Instant::now();
    let cwd = std::env::current_dir()?;
    let run_id = run_id(&mut a, &cwd)?;
    let mut point = resume_point(&mut a, &cwd)?;
    // A batched run resumes batched: it may have batches to poll rather than requests to send.
    a.common.batch |= point.as_ref().is_some_and(|p| p.batched);
    let config = Arc::new(check_and_configure(&a, &cwd)?);
    let backend = crate::executor::select(
        a.common.executor.as_deref(),
        a.common.backend.as_deref(),
        &a.common.nats,
        &config,
        &run_id,
    )
    .await?;
    check_batch(&a, backend.as_ref())?;
    let args = script_args(&a)?;
    let stored = point.as_mut().and_then(|p| p.ceilings.take());
    let (ceilings, ceilings_note, raised) = ceilings(&a, stored, &config)?;
    let limits = ceilings.limits.clone();
    let cache = Cache::new(a.common.limits.no_cache);

    let target_path = resolve_target(&a.target, &cwd)?;
    let sandbox = Sandbox::new(limits.clone(), &cache)?;
    let target = match load_target(&target_path, &sandbox)? {
        Ok(t) => t,
        Err(rejection) => {
            let report = rejected(run_id, &rejection, backend.name(), started);
            return Ok(finish(&a, &report));
        }
    };

    confirm(
        &a,
        &target,
        &target_path,
        &cwd,
        &args,
        &config,
        &limits,
        backend.as_ref(),
    )
    .await?;

    if a.common.detach {
        return detach(&a, &run_id, &cwd);
    }

    // The journal first: the control socket and the event log live in the run directory.
    let journal = match a.no_journal {
        true => None,
        false => Some(open_journal(&cwd, &run_id, point.map(|p| p.cache))?),
    };
    let journal_handle = journal.as_ref().map(|j| j.journal.clone());
    let script = match &target {
        Target::Script(s) => Some((s.origin.clone(), s.source.clone())),
        Target::Module { .. } => None,
    };
    let control = Control::new(&run_id, journal_handle.clone(), script, cwd.clone());
    if let Some(wait) = a.common.permission_timeout {
        control.set_permission_wait(wait);
    }
    let (consumers, dashboard, plain_on) =
        consumers(&a, &control, journal_handle.as_ref().map(|j| j.dir()))?;
    let events = crate::events::Events::tee(consumers);
    control.attach(events.clone());
    let server = listen(&control, journal_handle.as_ref().map(|j| j.dir()));
    let backend_for_record = backend.clone();
    let opts = RunOptions {
        args,
        budget_tokens: ceilings.budget_tokens,
        limits,
        backend,
        cwd,
        events: events.clone(),
        journal,
        config: config.clone(),
        recorder: recorder(&a, backend_for_record.as_ref())?,
        max_cost: ceilings.max_cost,
        ceilings_note,
        raised,
        control: control.clone(),
        wait_on_limit: a.common.wait_on_limit || config.wait_on_limit == Some(true),
    };
    let view = dashboard.then(|| {
        start_dashboard(
            control.clone(),
            journal_handle.as_ref().map(|j| j.dir().clone()),
            plain_on.clone(),
        )
    });
    let (reason, message) = tokio::select! {
        report = execute(&sandbox, &cache, target, opts, run_id.clone()) => {
            if let Some(s) = server {
                s.shutdown().await;
            }
            close_view(view).await;
            let report = report?;
            ci_reports(&a, &report, &control)?;
            return Ok(finish(&a, &report));
        }
        signal = stop_signal() => (signal.to_string(), format!("interrupted ({signal})")),
        reason = control.stopped() => (reason.clone(), reason),
    };
    stop(
        &control,
        journal_handle.as_deref(),
        &events,
        &reason,
        started,
    );
    // What the backend has in flight is given up: a pending batch is cancelled (its finished
    // requests stay readable for the resume).
    backend_for_record.finish().await;
    if let Some(s) = server {
        s.shutdown().await;
    }
    close_view(view).await;
    // Exact: the run's backend and ceilings are stored with it, and resume reuses them.
    eprintln!("\n{message}: finished agents are kept in the journal; resume with:");
    eprintln!("  wfhost resume {run_id} --yes");
    Ok(exit::INTERRUPTED)
}

impl RunCommon {
    /// `--batch` and `--batch-window` over `[messages]`.
    fn apply_batch(&self, messages: &mut crate::config::MessagesConfig) {
        if self.batch {
            messages.batch = Some(true);
        }
        if let Some(w) = self.batch_window {
            messages.batch_window = Some(humantime::format_duration(w).to_string());
        }
    }
}

/// `--batch` on a backend that does not batch is refused before anything starts.
fn check_batch(a: &RunArgs, backend: &dyn crate::backend::Backend) -> Result<()> {
    if a.common.batch && !backend.batches() {
        bail!(
            ExitError::usage(format!(
                "`--batch` sends agents through the Message Batches API, which the `{}` backend does not use",
                backend.name()
            ))
            .hint("run with `--backend messages` (and ANTHROPIC_API_KEY), from this host (no `--executor`)")
        );
    }
    Ok(())
}

/// Flags that cannot go together are refused before anything starts; the configuration, with
/// the flags that override it.
fn check_and_configure(a: &RunArgs, cwd: &Path) -> Result<crate::config::Config> {
    if a.common.json && a.common.events.as_deref() == Some("-") {
        bail!(
            ExitError::usage("`--json` and `--events -` would both write to stdout")
                .hint("write the events to a file (`--events run.jsonl`), or drop `--json`: the event stream ends with `run_finished`")
        );
    }
    let mut config = crate::config::load(cwd)?.config;
    a.common.tools.apply(&mut config.tools, cwd);
    a.common.apply_batch(&mut config.messages);
    Ok(config)
}

/// The run's id: a resume's (named by a prefix or `@last`: from here on, its whole id), the
/// one `--detach` chose, or a new one.
fn run_id(a: &mut RunArgs, cwd: &Path) -> Result<String> {
    if let Some(id) = &a.resume
        && a.resume_point.is_none()
    {
        a.resume = Some(RunDir::existing(cwd, id)?.id().to_string());
    }
    Ok(a.resume
        .clone()
        .or_else(|| a.run_id.clone())
        .unwrap_or_else(new_run_id))
}

/// A resume reads its journal once: the results to serve, the backend, the ceilings.
fn resume_point(a: &mut RunArgs, cwd: &Path) -> Result<Option<crate::journal::ResumePoint>> {
    let Some(id) = &a.resume else {
        return Ok(None);
    };
    Ok(Some(match a.resume_point.take() {
        Some(p) => *p,
        None => crate::journal::resume_point(&RunDir::existing(cwd, id)?.journal())?,
    }))
}

/// `--record DIR`: every answer stored for `--backend replay:DIR`.
fn recorder(
    a: &RunArgs,
    backend: &dyn crate::backend::Backend,
) -> Result<Option<Arc<crate::backend::replay::Recorder>>> {
    Ok(match &a.common.record {
        Some(dir) => Some(Arc::new(crate::backend::replay::Recorder::new(
            dir, backend,
        )?)),
        None => None,
    })
}

/// The script's `args`: `--args`, `--args-file`, or on a resume the run's own, exactly as
/// stored (no string-to-JSON rule again, so the string "123" stays a string).
fn script_args(a: &RunArgs) -> Result<Option<serde_json::Value>> {
    Ok(match (&a.args, &a.args_file) {
        (Some(text), _) => Some(parse_args(text)?),
        (None, Some(path)) => Some(parse_args(&String::from_utf8_lossy(&read_file(path)?))?),
        (None, None) => match &a.args_exact {
            Some(path) => Some(serde_json::from_slice(&read_file(path)?).with_context(|| {
                format!("`{}` (the run's stored args) is not JSON", path.display())
            })?),
            None => None,
        },
    })
}

/// The dashboard's terminal is restored before anything else is printed; what it showed is
/// summarised.
async fn close_view(view: Option<tokio::task::JoinHandle<Option<crate::live::LiveRun>>>) {
    if let Some(view) = view
        && let Ok(Some(run)) = view.await
    {
        eprintln!("{}", printer::summary(&run));
    }
}

/// The run's control socket (`wfhost stop`, `watch`, MCP); a run whose socket cannot be
/// opened goes on, unsteerable, and says so.
fn listen(control: &Arc<Control>, run_dir: Option<&RunDir>) -> Option<Server> {
    let dir = run_dir?;
    match Server::listen(control.clone(), &dir.control_socket()) {
        Ok(s) => Some(s),
        Err(e) => {
            eprintln!(
                "warning: this run cannot be steered (`wfhost stop`, `watch`): its control socket `{}` could not be opened: {e}",
                dir.control_socket().display()
            );
            None
        }
    }
}

/// Stopped (a signal, or `stop` on the control socket): running calls are abandoned, and
/// every finished agent is already in the journal. Records why the run stopped.
fn stop(
    control: &Control,
    journal: Option<&crate::journal::Journal>,
    events: &crate::events::Events,
    reason: &str,
    started: Instant,
) {
    control.halt(reason);
    if let Some(j) = journal {
        let _ = j.append(&Record::Interrupted {
            reason: reason.to_string(),
            duration_ms: Some(crate::report::millis(started.elapsed())),
        });
        let _ = j.sync();
    }
    events.emit(crate::events::Event::RunFinished {
        outcome: Outcome::Stopped,
        duration_ms: crate::report::millis(started.elapsed()),
    });
}

/// The run's target: a compiled module (its imports and guest checked) or a script (parsed;
/// `Err`: rejected before it ran, as the report will say).
fn load_target(
    target_path: &Path,
    sandbox: &Sandbox,
) -> Result<Result<Target, crate::script::Rejection>> {
    Ok(Ok(
        if target_path.extension().is_some_and(|e| e == "wasm") {
            let bytes = read_file(target_path)?;
            let info = compile::module_info(&bytes)?;
            let module = wasmtime::Module::new(sandbox.engine(), &bytes).map_err(|e| {
                ExitError::usage(format!(
                    "`{}` is not a valid WebAssembly module: {e}",
                    target_path.display()
                ))
            })?;
            sandbox::check_imports(&module, Some(compile::PLUGIN_NAMESPACE))?;
            match &info.guest_sha256 {
                Some(sha) if sha == compile::GUEST_SHA256 => {}
                other => bail!(
                    ExitError::usage(format!(
                        "`{}` was compiled for guest {}, but this wfhost carries guest {}",
                        target_path.display(),
                        other.as_deref().unwrap_or("(unknown)"),
                        compile::GUEST_SHA256,
                    ))
                    .hint(format!(
                        "recompile it: `wfhost compile SCRIPT.js -o {}`",
                        target_path.display()
                    ))
                ),
            }
            Target::Module {
                module,
                meta: info.meta,
            }
        } else {
            let source = String::from_utf8(read_file(target_path)?).map_err(|_| {
                ExitError::usage(format!("`{}` is not UTF-8 text", target_path.display()))
            })?;
            match Script::parse(&target_path.display().to_string(), &source) {
                Ok(s) => Target::Script(s),
                Err(rejection) => return Ok(Err(rejection)),
            }
        },
    ))
}

/// Who reads the run's events: the control socket's stream; on a terminal the dashboard
/// (the plain lines take over if the operator leaves it), else plain lines; `--events`; the
/// run's own event log. Returns them, whether the dashboard is wanted, and the plain lines'
/// switch.
fn consumers(
    a: &RunArgs,
    control: &Arc<Control>,
    run_dir: Option<&RunDir>,
) -> Result<(
    Vec<crate::events::Events>,
    bool,
    Arc<std::sync::atomic::AtomicBool>,
)> {
    let mut consumers = vec![control.consumer()];
    // On a terminal, the dashboard (started below, once the stream exists); the plain lines
    // take over if the operator leaves it and the run goes on. Off a terminal: plain lines.
    let dashboard = !a.common.quiet
        && !a.common.json
        && std::io::stderr().is_terminal()
        && std::io::stdout().is_terminal()
        && std::io::stdin().is_terminal()
        && std::env::var_os("CI").is_none()
        && std::env::var("TERM").map_or(true, |t| t != "dumb");
    let plain_on = Arc::new(std::sync::atomic::AtomicBool::new(!dashboard));
    if !a.common.quiet && !a.common.json {
        consumers.push(printer::plain_when(plain_on.clone()));
    }
    if let Some(target) = &a.common.events {
        consumers.push(
            crate::events::json_lines(target)
                .map_err(|e| anyhow!("cannot write events to `{target}`: {e}"))?,
        );
    }
    if let Some(dir) = run_dir {
        // The run's own event log (`wfhost logs`); a resume appends its attempt.
        let log = RunDir::private_file(&dir.events());
        match log {
            Ok(f) => control.log_to(f),
            Err(e) => eprintln!("warning: no event log for `wfhost logs`: {e}"),
        }
    }
    Ok((consumers, dashboard, plain_on))
}

/// The dashboard on this terminal: leaving it (`q`) hands over to the plain lines; Ctrl-C in
/// it stops the run. Its last view of the run, when the run ended under it.
fn start_dashboard(
    control: Arc<Control>,
    run_dir: Option<RunDir>,
    plain_on: Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<Option<crate::live::LiveRun>> {
    let link = Link::Local(control.clone(), run_dir);
    tokio::spawn(async move {
        let ended = dashboard::run(link, true).await;
        match &ended {
            // Left with `q`: the run goes on, in plain lines.
            Ok((Exit::Left, _)) => {
                plain_on.store(true, std::sync::atomic::Ordering::Relaxed);
                eprintln!("left the dashboard; the run goes on (Ctrl-C stops it)");
            }
            Ok((Exit::Interrupted, _)) => control.halt("interrupted (Ctrl-C)"),
            Ok((Exit::RunEnded, _)) => {}
            Err(e) => {
                plain_on.store(true, std::sync::atomic::Ordering::Relaxed);
                eprintln!("warning: the dashboard failed ({e:#}); plain lines from here");
            }
        }
        ended
            .ok()
            .filter(|(exit, _)| *exit != Exit::Left)
            .map(|(_, run)| run)
    })
}

/// `--detach`: the same command again, in its own session (setsid), its output in the run
/// directory; this process prints how to reach it and returns once its control socket is up.
/// The script's meta warnings, then — without `--yes` — the person's approval, shown what the
/// run is projected to start and cost (`wfhost plan`) when a terminal asks.
#[expect(
    clippy::too_many_arguments,
    reason = "the run's inputs as `run` has them; a struct would only rename them"
)]
async fn confirm(
    a: &RunArgs,
    target: &Target,
    target_path: &Path,
    cwd: &Path,
    args: &Option<serde_json::Value>,
    config: &Arc<crate::config::Config>,
    limits: &crate::limits::Limits,
    backend: &dyn crate::backend::Backend,
) -> Result<()> {
    let meta = match &target {
        Target::Script(s) => Some(&s.meta),
        Target::Module { meta, .. } => meta.as_ref(),
    };
    if !a.common.quiet && !a.common.json {
        for w in meta.map(|m| m.warnings.clone()).unwrap_or_default() {
            eprintln!("warning: {w}");
        }
    }
    if !a.common.yes {
        // Before asking a person: what the run is projected to start and cost (`wfhost plan`).
        let asking = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
        let projection = match (target, asking) {
            (Target::Script(s), true) => crate::plan::dry_run(crate::plan::DryRun {
                script: s.clone(),
                args: args.clone(),
                config: config.clone(),
                limits: limits.clone(),
                cwd: cwd.to_path_buf(),
                no_cache: a.common.limits.no_cache(),
                backend_model: Some(backend.default_model()),
                counter: None,
            })
            .await
            .ok(),
            _ => None,
        };
        approve(meta, target_path, cwd, projection.as_ref())?;
    }

    Ok(())
}

fn detach(a: &RunArgs, run_id: &str, cwd: &Path) -> Result<u8> {
    use std::os::unix::process::CommandExt as _;
    if a.no_journal {
        bail!(
            ExitError::usage(
                "`--detach` needs the run's journal: it cannot be combined with `--no-journal`"
            )
            .hint("drop `--no-journal`; a background run is reached through its run directory")
        );
    }
    let dir = RunDir::new(cwd, run_id)?;
    dir.create()?;
    let output = RunDir::private_file(&dir.output())
        .with_context(|| format!("cannot write `{}`", dir.output().display()))?;
    // The arguments as given, less `--detach`, plus the run id and the approval just given.
    // `--args` text goes through a private file, not the command line every local user can
    // read (`ps`): the script's args may hold anything.
    let mut args: Vec<std::ffi::OsString> = Vec::new();
    let mut given = std::env::args_os().skip(1);
    while let Some(x) = given.next() {
        if x == "--detach" {
            continue;
        }
        if x == "--args" {
            let _ = given.next();
            continue;
        }
        if x.to_string_lossy().starts_with("--args=") {
            continue;
        }
        args.push(x);
    }
    if let Some(text) = &a.args {
        let file = dir.path().join("args.input");
        RunDir::write_private(&file, text.as_bytes())
            .with_context(|| format!("cannot write `{}`", file.display()))?;
        args.extend(["--args-file".into(), file.into_os_string()]);
    }
    if a.resume.is_none() && a.run_id.is_none() {
        args.extend(["--run-id".into(), run_id.into()]);
    }
    if !a.common.yes {
        args.push("--yes".into());
    }
    let exe = std::env::current_exe().context("cannot find the wfhost binary to detach")?;
    let mut cmd = std::process::Command::new(exe);
    cmd.args(&args)
        .current_dir(cwd)
        .stdin(std::process::Stdio::null())
        .stdout(output.try_clone()?)
        .stderr(output);
    // SAFETY: setsid is async-signal-safe; it only makes the child the leader of a new
    // session, so a closing terminal or a Ctrl-C there does not reach the run.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    // A socket left by a crashed attempt is stale (nobody holds the run's lock): gone before
    // the new attempt starts, so the wait below sees only the new one.
    if !dir.is_running() {
        let _ = std::fs::remove_file(dir.control_socket());
    }
    let mut child = cmd.spawn().context("cannot start the background run")?;
    // Return once the run can be reached (its control socket is up), or say why it ended.
    let socket = dir.control_socket();
    let waited = Instant::now();
    let code = loop {
        if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
            break None;
        }
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if waited.elapsed() > std::time::Duration::from_secs(30) {
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    // Ended already: a quick run may finish before this process looks. It started if its
    // journal has a record; otherwise it ended before it began, and its output says why.
    let began = crate::journal::load_run(&dir).is_ok_and(|l| !l.records.is_empty());
    if let Some(status) = code.filter(|_| !began) {
        let out = std::fs::read_to_string(dir.output()).unwrap_or_default();
        eprint!("{}", sanitize::text(&out));
        let code = status.code().and_then(|c| u8::try_from(c).ok());
        eprintln!(
            "the background run ended at once ({status}); its output is above and in `{}`",
            dir.output().display()
        );
        return Ok(code.unwrap_or(exit::INTERNAL));
    }
    if a.common.json {
        println!(
            "{}",
            serde_json::json!({
                "run_id": run_id,
                "pid": child.id(),
                "run_dir": dir.path(),
                "output": dir.output(),
            })
        );
    } else {
        println!("{run_id}");
        eprintln!(
            "started run {run_id} in the background (pid {})\n  watch:   wfhost watch {run_id}\n  logs:    wfhost logs {run_id} --follow\n  pause:   wfhost pause {run_id}   (then `wfhost continue {run_id}`)\n  stop:    wfhost stop {run_id}\n  resume:  wfhost resume {run_id} --yes   (after a stop or a crash)",
            child.id()
        );
    }
    Ok(exit::OK)
}

/// The ceilings this run holds to. A new run: the flags, else the configuration, else the
/// defaults. A resume: the ceilings its run was started with, which a flag may tighten, and
/// raise only as an operator's decision (`--raise`, or a yes on a terminal): then also the
/// raises, to journal.
fn ceilings(
    a: &RunArgs,
    stored: Option<Ceilings>,
    config: &crate::config::Config,
) -> Result<(Ceilings, Option<String>, Option<crate::limits::Raised>)> {
    let mut requested = a.common.limits.requested();
    requested.budget_tokens = a.common.budget_tokens;
    requested.max_cost = a.common.max_cost;
    let mut base = crate::limits::Limits::default();
    if let Some(c) = config.concurrency {
        base.concurrency = usize::from(c);
    }
    // Checked by `config::load`: these parse.
    let duration =
        |v: &Option<String>| v.as_deref().and_then(|t| humantime::parse_duration(t).ok());
    if let Some(d) = duration(&config.stall_timeout) {
        base.stall_timeout = d;
    }
    if let Some(d) = duration(&config.agent_timeout) {
        base.agent_timeout = d;
    }
    let Some(stored) = stored else {
        if a.common.raise {
            bail!(
                ExitError::usage(
                    "`--raise` only applies to a resume: a new run has no ceilings to raise"
                )
                .hint("drop `--raise`; the flags set a new run's ceilings as they are")
            );
        }
        return Ok((Ceilings::new(&requested, &base), None, None));
    };
    let (ceilings, changes) = stored.resumed(&requested);
    let raised = match changes.raised.as_slice() {
        [] => None,
        raises => Some(crate::limits::Raised {
            raises: raises.to_vec(),
            by: raise_decision(a, raises)?,
            at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        }),
    };
    let mut note = "resumed under the run's own ceilings".to_string();
    if !changes.tightened.is_empty() {
        note.push_str(&format!(
            ", tightened by flags: {}",
            changes.tightened.join(", ")
        ));
    }
    if let Some(r) = &raised {
        note.push_str(&format!(", raised by the operator: {}", r.describe()));
    }
    Ok((ceilings, Some(note), raised))
}

/// Whether a resume's raises stand, and who decided: `--raise`, else a yes on a terminal;
/// without a terminal a raise is refused, naming `--raise`.
fn raise_decision(a: &RunArgs, raises: &[crate::limits::Raise]) -> Result<String> {
    let who = |how: &str| {
        crate::control::Who {
            uid: unsafe { libc::getuid() },
            pid: Some(std::process::id().cast_signed()),
            client: Some(how.to_string()),
        }
        .to_string()
    };
    if a.common.raise {
        return Ok(who("--raise"));
    }
    let listed = raises
        .iter()
        .map(|r| format!("`{}` {} → {}", r.flag(), r.old, r.new))
        .collect::<Vec<_>>()
        .join(", ");
    let refused = || {
        let first = &raises[0];
        ExitError::usage(format!(
            "cannot resume with these flags: `{}` {} is more than the {} the run was started with",
            first.flag(),
            first.new,
            first.old
        ))
        .hint(format!(
            "a resume keeps the ceilings its run started with; raising one ({listed}) is an operator's decision: add `--raise` (it is journaled)"
        ))
    };
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        bail!(refused());
    }
    let mut err = std::io::stderr().lock();
    writeln!(err, "this resume raises the run's ceilings:")?;
    for r in raises {
        writeln!(err, "  {:<18} {} → {}", r.flag(), r.old, r.new)?;
    }
    write!(err, "raise them? [y/N]: ")?;
    err.flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    match answer.trim().to_lowercase().as_str() {
        "y" | "yes" => Ok(who("terminal")),
        _ => bail!(refused()),
    }
}

/// Waits for Ctrl-C or SIGTERM (how CI cancels a job).
async fn stop_signal() -> &'static str {
    #[cfg(unix)]
    {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => "Ctrl-C",
            _ = term.recv() => "SIGTERM",
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}

/// `.wasm` and `.js` paths are files; anything else that is not a file is a saved workflow.
pub(super) fn resolve_target(target: &str, cwd: &Path) -> Result<PathBuf> {
    let path = PathBuf::from(target);
    let file_like = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("js") || e.eq_ignore_ascii_case("wasm"));
    if path.exists() || file_like || target.contains('/') {
        return Ok(path);
    }
    Resolver::discover(cwd)
        .find(target)
        .map_err(|e| {
            ExitError::usage(e)
                .hint(format!("`{target}` is neither a file nor a saved workflow in .wfhost/workflows/ or .claude/workflows/"))
                .into()
        })
}

/// Where "always for this name in this directory" answers are kept.
fn approvals_file() -> Option<PathBuf> {
    Some(crate::paths::config_dir()?.join("approvals.json"))
}

fn approvals() -> serde_json::Value {
    approvals_file()
        .and_then(|f| std::fs::read(f).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| serde_json::json!({ "always": [] }))
}

/// Asks on the terminal before running a script: run / always for this name in this
/// directory / view the script / no. Refuses (exit 77) without a terminal. "Always" is pinned
/// to the script's blake3: a changed script asks again, and says that it changed.
fn approve(
    meta: Option<&Meta>,
    path: &Path,
    cwd: &Path,
    projection: Option<&crate::plan::Plan>,
) -> Result<()> {
    let name = meta.map_or_else(|| path.display().to_string(), |m| m.name.clone());
    let dir = cwd.display().to_string();
    let source = std::fs::read(path).unwrap_or_default();
    let hash = blake3::hash(&source).to_hex().to_string();
    let always = serde_json::json!({ "dir": dir, "name": name, "blake3": hash });
    let approved = approvals()["always"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if approved.contains(&always) {
        return Ok(());
    }
    let changed = approved
        .iter()
        .any(|a| a["dir"] == always["dir"] && a["name"] == always["name"]);
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return Err(ExitError::refused(format!(
            "refused: running `{}` needs approval, and there is no terminal to ask on",
            path.display()
        ))
        .hint(format!(
            "review the script (`wfhost audit {}`), then pass `--yes`",
            path.display()
        ))
        .into());
    }
    let mut err = std::io::stderr().lock();
    if changed {
        writeln!(
            err,
            "`{}` was approved to run always here, but the script has changed since: review it again",
            sanitize::line(&name)
        )?;
    }
    match meta {
        Some(m) => writeln!(err, "{}", sanitize::text(&m.summary()))?,
        None => writeln!(err, "{} (no metadata)", path.display())?,
    }
    if let Some(plan) = projection {
        writeln!(err, "{}", plan.headline())?;
        for w in &plan.warnings {
            writeln!(err, "warning: {}", sanitize::line(w))?;
        }
    }
    loop {
        write!(
            err,
            "run it? [r]un / [a]lways for `{}` in this directory / [v]iew the script / [n]o: ",
            sanitize::line(&name)
        )?;
        err.flush()?;
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        match answer.trim().to_lowercase().as_str() {
            "r" | "run" | "y" | "yes" => return Ok(()),
            "a" | "always" => {
                let mut all = approvals();
                if let Some(list) = all["always"].as_array_mut() {
                    // One entry per name and directory: the newest approval replaces the old.
                    list.retain(|a| !(a["dir"] == always["dir"] && a["name"] == always["name"]));
                    list.push(always);
                }
                if let Some(f) = approvals_file() {
                    std::fs::create_dir_all(f.parent().unwrap_or(Path::new(".")))?;
                    std::fs::write(&f, serde_json::to_vec_pretty(&all)?)?;
                    writeln!(
                        err,
                        "approved: `{}` runs without asking in {dir} while it stays unchanged (remove it from {})",
                        sanitize::line(&name),
                        f.display()
                    )?;
                }
                return Ok(());
            }
            "v" | "view" => {
                let source =
                    std::fs::read_to_string(path).unwrap_or_else(|e| format!("(cannot read: {e})"));
                write!(err, "{}", view_listing(&source))?;
            }
            _ => return Err(ExitError::refused("not approved; nothing was run").into()),
        }
    }
}

/// The script as the approval prompt shows it: numbered lines, every control character made
/// visible (a carriage return or an escape sequence inside a comment must not hide a line from
/// the person approving), and lines that held any marked with `!`. Lines are split on `\n`
/// only, so a lone `\r` shows as `␍` where it is.
fn view_listing(source: &str) -> String {
    let mut out = String::new();
    let mut marked = 0;
    for (i, line) in source.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let flag = if sanitize::has_controls(line) {
            marked += 1;
            '!'
        } else {
            ' '
        };
        out.push_str(&format!("{flag}{:>4} │ {}\n", i + 1, sanitize::line(line)));
    }
    if marked > 0 {
        out.push_str(&format!(
            "! {marked} line(s) contain control or bidirectional characters, shown as ␛, ␍, <U+…>: read them closely\n"
        ));
    }
    out
}

/// JSON with the characters that change how a terminal shows text — C1 controls, bidi
/// overrides and isolates — written as `\uXXXX` escapes: the same JSON to a parser, and a
/// result's `\u202e` cannot reorder what a person reads. (They can only occur inside strings.)
fn escape_invisible(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        let u = u32::from(c);
        if (0x80..=0x9f).contains(&u)
            || matches!(u, 0x200e | 0x200f | 0x061c)
            || (0x202a..=0x202e).contains(&u)
            || (0x2066..=0x2069).contains(&u)
        {
            out.push_str(&format!("\\u{u:04x}"));
        } else {
            out.push(c);
        }
    }
    out
}

/// Prints the outcome; returns the exit code.
/// The reports CI systems read (ci.rs): `--junit FILE`, and under GitHub Actions the job
/// summary and annotations.
fn ci_reports(a: &RunArgs, report: &RunReport, control: &Control) -> Result<()> {
    let (name, agents) = control.agents();
    if let Some(path) = &a.common.junit {
        std::fs::write(path, crate::ci::junit(report, &name, &agents)).map_err(|e| {
            ExitError::usage(format!(
                "cannot write the JUnit report `{}`: {e}",
                path.display()
            ))
            .hint("give `--junit` a path in a directory that exists and can be written")
        })?;
    }
    crate::ci::github(report, &name, &agents);
    Ok(())
}

fn finish(a: &RunArgs, report: &RunReport) -> u8 {
    if a.common.json {
        println!(
            "{}",
            serde_json::to_string(&report).expect("report serialises")
        );
        return report.exit_code;
    }
    match report.outcome {
        Outcome::Completed => {
            let result = report.result.clone().unwrap_or_default();
            println!(
                "{}",
                escape_invisible(
                    &serde_json::to_string_pretty(&result).expect("result serialises")
                )
            );
        }
        Outcome::Failed | Outcome::Rejected | Outcome::Stopped => {
            let what = if report.outcome == Outcome::Rejected {
                "the script was rejected"
            } else {
                "the workflow failed"
            };
            let error = report.error.clone().unwrap_or_default();
            eprintln!("error: {what}: {}", sanitize::text(&error));
            if let Some(stack) = &report.stack {
                eprintln!("{}", sanitize::text(stack.trim_end()));
            }
        }
    }
    if !a.common.quiet {
        if let Some(note) = &report.ceilings_note {
            eprintln!("{note}");
        }
        // Loud partial failure: which agents failed and why, grouped, above the summary.
        if !report.failures.is_empty() {
            eprintln!("{} agent(s) failed:", report.usage.agents_failed);
            for g in &report.failures {
                let more = if g.count as usize > g.agents.len() {
                    ", …"
                } else {
                    ""
                };
                eprintln!(
                    "  {}× {} ({}{more})",
                    g.count,
                    sanitize::line(&g.error),
                    sanitize::line(&g.agents.join(", "))
                );
            }
        }
        let u = &report.usage;
        eprintln!(
            "{} {} in {:.1}s · {} agents ({} done, {} failed) · {} tokens in, {} out · {}",
            match (report.exit_code, report.usage.agents_failed) {
                (exit::OK, 0) => "✓",
                (exit::OK, _) => "⚠", // completed, but not every agent answered
                _ => "✗",
            },
            report.outcome,
            report.duration_ms as f64 / 1000.0,
            report.agents,
            u.agents_done,
            u.agents_failed,
            u.input_tokens,
            u.output_tokens,
            // A script rejected before it ran (or a run without a journal) left no run
            // directory: no id to look up, resume or trace.
            if report.run_dir.is_some() {
                format!("run {}", report.run_id)
            } else {
                "no run kept".to_string()
            }
        );
    }
    report.exit_code
}
