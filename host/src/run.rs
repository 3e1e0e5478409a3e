//! One run, end to end: compile (cached), sandbox, scheduler, report.

use crate::backend::Backend;
use crate::compile::Cache;
use crate::events::{Event, Events};
use crate::journal::{Cached, Journal, Record};
use crate::limits::{Ceilings, LimitHit, Limits};
use crate::report::{
    AgentTally, Cost, Outcome, ReportUsage, RunReport, Timings, exit_code, millis, ms, round_usd,
};
use crate::run_dir::RunDir;
use crate::sandbox::capabilities::{Capabilities, RunSetup};
use crate::sandbox::{Ending, Sandbox};
use crate::scheduler::{Scheduler, SchedulerSetup};
use crate::script::{Meta, Rejection, Script};
use crate::workflows::Resolver;
use anyhow::Result;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// What to run.
pub(crate) enum Target {
    Script(Script),
    /// A standalone module from `wfhost compile` (already import-checked).
    Module {
        module: wasmtime::Module,
        meta: Option<Meta>,
    },
}

pub(crate) struct RunOptions {
    pub args: Option<Value>,
    pub budget_tokens: Option<u64>,
    pub limits: Limits,
    pub backend: Arc<dyn Backend>,
    pub cwd: PathBuf,
    pub events: Events,
    /// The run's journal (`None`: `--no-journal`).
    pub journal: Option<RunJournal>,
    pub config: Arc<crate::config::Config>,
    /// `--record DIR`.
    pub recorder: Option<Arc<crate::backend::replay::Recorder>>,
    /// `--max-cost USD`.
    pub max_cost: Option<f64>,
    /// On a resume: the run's ceilings were kept (and which a flag tightened).
    pub ceilings_note: Option<String>,
    /// On a resume: the ceilings an operator raised (journaled after `run_started`).
    pub raised: Option<crate::limits::Raised>,
    /// The run's steering: pause, kill, restart, stop (the control socket serves it).
    pub control: Arc<crate::control::Control>,
    /// `--wait-on-limit`: a provider's usage limit holds the run until it resets.
    pub wait_on_limit: bool,
}

impl RunOptions {
    /// The ceilings in force, as the journal and the report keep them.
    fn ceilings(&self) -> Ceilings {
        Ceilings {
            budget_tokens: self.budget_tokens,
            max_cost: self.max_cost,
            limits: self.limits.clone(),
        }
    }
}

/// An open run directory, and what a resume may serve from it.
pub(crate) struct RunJournal {
    pub journal: Arc<Journal>,
    pub cache: HashMap<(String, u32), Cached>,
    /// The journaled turns of tool-using agents that did not finish (tools::transcript).
    pub turns: crate::tools::transcript::Turns,
    /// The batch each request was last sent in (backend::batch), `custom_id` → batch id.
    pub batches: HashMap<String, String>,
    /// Sessions of `claude` agents that were interrupted, by call (tools::transcript).
    pub sessions: HashMap<(String, u32), String>,
    pub resume: bool,
}

/// Opens the directory of `run_id`: a new run, or a resume (`served`: the stored results it
/// serves again, read once by `journal::resume_point`).
pub(crate) fn open_journal(
    cwd: &Path,
    run_id: &str,
    served: Option<HashMap<(String, u32), Cached>>,
) -> Result<RunJournal> {
    let resume = served.is_some();
    let dir = if resume {
        RunDir::existing(cwd, run_id)?
    } else {
        RunDir::new(cwd, run_id)?
    };
    tracing::debug!(dir = %dir.path().display(), resume, "run directory");
    let (turns, batches, sessions) = if resume {
        (
            crate::journal::resume_turns(&dir.journal())?,
            crate::journal::resume_batches(&dir.journal())?,
            crate::journal::resume_sessions(&dir.journal())?,
        )
    } else {
        (HashMap::new(), HashMap::new(), HashMap::new())
    };
    let journal = Arc::new(Journal::open(&dir)?);
    Ok(RunJournal {
        journal,
        turns,
        batches,
        sessions,
        cache: served.unwrap_or_default(),
        resume,
    })
}

/// A new run id: sortable by start time, unique enough for one project.
pub(crate) fn new_run_id() -> String {
    let now = std::time::SystemTime::now();
    let stamp = humantime::format_rfc3339_seconds(now)
        .to_string()
        .replace(['-', ':'], "");
    let nanos = now
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let salt = blake3::hash(format!("{nanos}-{}", std::process::id()).as_bytes()).to_hex();
    format!("{}-{}", stamp.trim_end_matches('Z'), &salt[..6])
}

/// `--args` / `--args-file` text: a value that parses as JSON arrives as JSON, otherwise as a
/// string; a JSON string that itself holds JSON arrives parsed (as on the reference runtime).
/// JSON nested deeper than `limits::MAX_JSON_DEPTH` is refused by name rather than arriving
/// as a string.
pub(crate) fn parse_args(text: &str) -> Result<Value> {
    let too_deep = |e: &serde_json::Error| e.to_string().contains("recursion limit exceeded");
    let v = match serde_json::from_str(text.trim()) {
        Ok(v) => v,
        Err(e) if too_deep(&e) => return Err(args_too_deep()),
        // Text that starts like JSON was meant as JSON: a typo must not turn it into a string
        // the script then misreads (`{"files": ["a.rs",]}` would run with no files).
        Err(e) if text.trim_start().starts_with(['{', '[', '"']) => {
            return Err(args_not_json(text, &e));
        }
        Err(_) => Value::String(text.to_string()),
    };
    Ok(match &v {
        Value::String(s) => match serde_json::from_str(s) {
            Ok(inner) => inner,
            Err(e) if too_deep(&e) => return Err(args_too_deep()),
            Err(_) => v,
        },
        _ => v,
    })
}

/// The usage error for args that look like JSON and are not: where, and what the parser said.
fn args_not_json(text: &str, e: &serde_json::Error) -> anyhow::Error {
    // serde_json counts lines and columns of the trimmed text; the user's text may start with
    // blank lines.
    let skipped = text.len() - text.trim_start().len();
    let line_offset = text[..skipped].matches('\n').count();
    let line = e.line() + line_offset;
    let shown = text
        .trim_start()
        .lines()
        .nth(e.line().saturating_sub(1))
        .unwrap_or_default();
    let mut message = format!(
        "the args look like JSON but do not parse: {} at line {line}, column {}",
        strip_position(&e.to_string()),
        e.column()
    );
    if shown.chars().count() <= 200 {
        let caret = " ".repeat(e.column().saturating_sub(1));
        message.push_str(&format!("\n  {shown}\n  {caret}^"));
    }
    crate::ExitError::usage(message)
        .hint("fix the JSON; to pass text that starts with `{`, `[` or `\"` as a string, write it as a JSON string (`'\"…\"'`)")
        .into()
}

/// serde_json's message without its own " at line L column C" (said once, by us).
fn strip_position(message: &str) -> &str {
    message
        .rfind(" at line ")
        .map_or(message, |i| &message[..i])
}

fn args_too_deep() -> anyhow::Error {
    crate::ExitError::usage(format!(
        "the args are JSON nested deeper than {} levels",
        crate::limits::MAX_JSON_DEPTH
    ))
    .hint("flatten them, or pass the deep part as a string the script parses")
    .into()
}

/// A stack trace with only the script's own frames: the runtime's (the prelude's
/// `eval_script`) and the wrapper's (`default`, on a line past the script's end) point at no
/// line the author wrote.
fn script_frames(stack: &str) -> String {
    stack
        .lines()
        .filter(|l| {
            let l = l.trim_start();
            !(l.contains("(eval_script:") || l.starts_with("at default (workflow.js:"))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A report for a script refused before it ran.
pub(crate) fn rejected(
    run_id: String,
    rejection: &Rejection,
    backend: &str,
    started: Instant,
) -> RunReport {
    RunReport {
        run_id,
        outcome: Outcome::Rejected,
        result: None,
        error: Some(rejection.render()),
        stack: None,
        logs: vec![],
        failures: vec![],
        agents: 0,
        usage: ReportUsage::default(),
        backend: backend.to_string(),
        model: None,
        cost: Cost::default(),
        backend_stats: None,
        duration_ms: millis(started.elapsed()),
        run_dir: None,
        timings: Timings::default(),
        ceilings: None,
        ceilings_note: None,
        exit_code: crate::exit::SCRIPT,
    }
}

/// Runs a workflow to its end, in steps: compile (a script QuickJS cannot compile is rejected
/// before anything runs) → prepare (the run directory, `RunStarted`) → start (scheduler and
/// capabilities, then the guest) → the outcome → the journal's last record and the report.
pub(crate) async fn execute(
    sandbox: &Sandbox,
    cache: &Cache,
    target: Target,
    mut opts: RunOptions,
    run_id: String,
) -> Result<RunReport> {
    let started = Instant::now();
    let mut timings = Timings {
        guest_load_ms: ms(sandbox.load_time),
        guest_source: sandbox.artifact.source.to_string(),
        ..Timings::default()
    };
    let bytecode = match compile(sandbox, cache, &target, &mut timings).await? {
        Ok(b) => b,
        Err(rejection) => {
            return Ok(rejected(run_id, &rejection, opts.backend.name(), started));
        }
    };
    let (journal, found, resume) = match opts.journal.take() {
        Some(j) => (
            Some(j.journal),
            Found {
                served: j.cache,
                turns: j.turns,
                batches: j.batches,
                sessions: j.sessions,
            },
            j.resume,
        ),
        None => (None, Found::default(), false),
    };
    prepare(&target, &opts, journal.as_ref(), &run_id, resume)?;
    let caps = start(&target, &mut opts, journal.clone(), found);
    let run_start = Instant::now();
    let (ending, caps) = match (&target, bytecode) {
        (Target::Module { module, .. }, _) => sandbox.run_module(module, caps).await,
        (_, Some(bytecode)) => sandbox.run_bytecode(&bytecode, caps).await,
        (Target::Script(_), None) => unreachable!("scripts always have bytecode"),
    };
    // Whatever the backend still has in flight for this run is given up now, and this waits
    // until it has been (a batch not yet ended is cancelled: `stop`, a failure).
    opts.backend.finish().await;
    timings.run_ms = ms(run_start.elapsed());
    timings.instantiate_ms = ms(caps.instantiate);
    let ended = Ended::of(
        ending,
        &caps.ledger,
        &opts.limits,
        journal.as_ref(),
        &run_id,
    );
    Ok(finish(
        ended,
        caps.ledger,
        opts,
        journal,
        run_id,
        started,
        timings,
    ))
}

/// The guest's bytecode for a script (`None` for a precompiled module), or the rejection of a
/// script with a syntax error.
async fn compile(
    sandbox: &Sandbox,
    cache: &Cache,
    target: &Target,
    timings: &mut Timings,
) -> Result<Result<Option<Vec<u8>>, Rejection>> {
    let compile_start = Instant::now();
    let bytecode = match target {
        Target::Script(script) => match sandbox.bytecode(cache, &script.module).await? {
            (Ok(b), cached) => {
                timings.bytecode_cached = cached;
                Some(b)
            }
            (Err(message), _) => {
                return Ok(Err(Rejection {
                    message: format!(
                        "Workflow script has a syntax error and was not launched:\n  {message}"
                    ),
                    location: Some(script.origin.clone()),
                    hint: None,
                }));
            }
        },
        Target::Module { .. } => None,
    };
    timings.compile_ms = ms(compile_start.elapsed());
    Ok(Ok(bytecode))
}

/// The run directory gets the script, its args and `RunStarted` (a run that cannot write them
/// does not start: exit 75); the views get `run_started`.
fn prepare(
    target: &Target,
    opts: &RunOptions,
    journal: Option<&Arc<Journal>>,
    run_id: &str,
    resume: bool,
) -> Result<()> {
    let (origin, meta) = match target {
        Target::Script(s) => (s.origin.clone(), Some(s.meta.clone())),
        Target::Module { meta, .. } => ("module".to_string(), meta.clone()),
    };
    if let Some(j) = journal {
        let dir = j.dir();
        let unwritable = |e: anyhow::Error| -> anyhow::Error {
            crate::ExitError::temporary(format!("the run cannot start: {e:#}"))
                .hint("free space on that disk (or point $WFHOST_RUNS_DIR elsewhere), then run it again")
                .into()
        };
        let write = |path: PathBuf, bytes: &[u8]| {
            RunDir::write_private(&path, bytes).map_err(|e| {
                unwritable(anyhow::Error::new(e).context(format!("writing `{}`", path.display())))
            })
        };
        if let Target::Script(s) = target {
            write(dir.script(), s.source.as_bytes())?;
        }
        if let Some(args) = &opts.args {
            write(dir.args(), &serde_json::to_vec_pretty(args)?)?;
        }
        j.append(&Record::RunStarted {
            run_id: run_id.to_string(),
            script: origin.clone(),
            name: meta
                .as_ref()
                .map_or_else(|| "module".to_string(), |m| m.name.clone()),
            backend: opts.backend.spec(),
            started_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            resume,
            ceilings: Some(opts.ceilings()),
        })
        .map_err(unwritable)?;
        if let Some(raised) = &opts.raised {
            j.append(&Record::CeilingsRaised(raised.clone()))
                .map_err(unwritable)?;
        }
    }
    if let Some(meta) = meta {
        opts.events.emit(Event::RunStarted {
            run_id: run_id.to_string(),
            script: origin,
            meta,
            backend: opts.backend.name().to_string(),
            model: opts.backend.default_model(),
        });
    }
    Ok(())
}

/// What a resume found in the journal for the run's agents.
#[derive(Default)]
struct Found {
    /// Results it serves again.
    served: HashMap<(String, u32), Cached>,
    /// Turns of tool-using agents that did not finish (tools::transcript).
    turns: crate::tools::transcript::Turns,
    /// The batch each request was last sent in (backend::batch).
    batches: HashMap<String, String>,
    /// Sessions of `claude` agents that were interrupted (tools::transcript).
    sessions: HashMap<(String, u32), String>,
}

/// The scheduler (the bounded pool of agents) and the capabilities the guest will run with.
fn start(
    target: &Target,
    opts: &mut RunOptions,
    journal: Option<Arc<Journal>>,
    Found {
        served,
        turns,
        batches,
        sessions,
    }: Found,
) -> Capabilities {
    let meta = match target {
        Target::Script(s) => Some(&s.meta),
        Target::Module { meta, .. } => meta.as_ref(),
    };
    let phase_models: HashMap<String, String> = meta
        .iter()
        .flat_map(|m| &m.phases)
        .filter_map(|p| p.model.clone().map(|model| (p.title.clone(), model)))
        .collect();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let batched = opts.backend.batches();
    let scheduler = Scheduler::start(SchedulerSetup {
        limited: std::sync::atomic::AtomicBool::new(false),
        backend: opts.backend.clone(),
        // Batched agents wait on the API, not on this machine: the pool holds a fan-out's
        // worth of them, so they go out together (backend::batch::POOL).
        concurrency: if batched {
            opts.limits.concurrency.max(crate::backend::batch::POOL)
        } else {
            opts.limits.concurrency
        },
        done: tx.clone(),
        events: opts.events.clone(),
        journal: journal.clone(),
        recorder: opts.recorder.clone(),
        config: opts.config.clone(),
        control: opts.control.clone(),
        stall_timeout: if batched {
            opts.limits.stall_timeout.max(crate::backend::batch::STALL)
        } else {
            opts.limits.stall_timeout
        },
        wait_on_limit: opts.wait_on_limit,
        agent_timeout: if batched {
            opts.limits
                .agent_timeout
                .max(crate::backend::batch::WALL_CLOCK)
        } else {
            opts.limits.agent_timeout
        },
        batches: batched.then(|| crate::backend::batch::Ledger::new(journal.clone(), batches)),
        sessions,
    });
    Capabilities::new(RunSetup {
        args: opts.args.take(),
        budget_total: opts.budget_tokens,
        limits: opts.limits.clone(),
        scheduler,
        completions: (tx, rx),
        workflows: Resolver::discover(&opts.cwd),
        events: opts.events.clone(),
        journal,
        cache: served,
        turns,
        backend_identity: opts.backend.identity(),
        max_cost: opts.max_cost,
        phase_models,
        worktrees: crate::backend::worktree::Check::new(&opts.cwd, opts.backend.place()),
    })
}

/// How the guest ended, as the report and the journal say it.
struct Ended {
    outcome: Outcome,
    result: Option<Value>,
    error: Option<String>,
    stack: Option<String>,
    /// A trap inside wfhost (exit 70), not the script's fault.
    internal: bool,
    /// A provider's usage limit or an unreachable provider: exit 75, resume later.
    usage_limited: bool,
    /// A backend that is set up wrong: exit 2.
    misconfigured: bool,
}

impl Ended {
    fn of(
        ending: Ending,
        ledger: &crate::sandbox::capabilities::Ledger,
        limits: &Limits,
        journal: Option<&Arc<Journal>>,
        run_id: &str,
    ) -> Ended {
        let usage_limited = matches!(
            ending,
            Ending::Limit(LimitHit::UsageLimit | LimitHit::Unreachable)
        );
        let misconfigured = matches!(ending, Ending::Limit(LimitHit::Misconfigured));
        let failed = |error: String| Ended {
            outcome: Outcome::Failed,
            result: None,
            error: Some(error),
            stack: None,
            internal: false,
            usage_limited,
            misconfigured,
        };
        match ending {
            Ending::Finished(o) if o["ok"] == Value::Bool(true) => Ended {
                outcome: Outcome::Completed,
                result: Some(o["value"].clone()),
                error: None,
                ..failed(String::new())
            },
            Ending::Finished(o) => {
                let text = |k: &str| o[k].as_str().map(str::to_owned);
                Ended {
                    error: text("error"),
                    stack: text("stack")
                        .map(|s| script_frames(&s))
                        .filter(|s| !s.trim().is_empty()),
                    ..failed(String::new())
                }
            }
            Ending::Limit(LimitHit::UsageLimit) => failed(format!(
                "{}\nhint: when the limit resets, `wfhost resume {run_id} --yes` runs only what did not finish",
                LimitHit::UsageLimit.describe(limits)
            )),
            // Said once, with the failing agent's error (the URL and the cause), not agent by agent.
            Ending::Limit(limit @ (LimitHit::Unreachable | LimitHit::Misconfigured)) => {
                let cause = ledger
                    .failures
                    .last()
                    .map(|(_, e)| e.clone())
                    .unwrap_or_default();
                let resume = if limit == LimitHit::Unreachable {
                    format!(
                        "\nhint: once it answers, `wfhost resume {run_id} --yes` runs only what did not finish"
                    )
                } else {
                    String::new()
                };
                failed(format!("{}\n{cause}{resume}", limit.describe(limits)))
            }
            Ending::Limit(LimitHit::Journal) => {
                let why = journal
                    .and_then(|j| j.failure().map(str::to_owned))
                    .unwrap_or_default();
                failed(format!(
                    "{}\n{why}\nhint: free space, then `wfhost resume {run_id} --yes`: every result saved before is served again",
                    LimitHit::Journal.describe(limits)
                ))
            }
            Ending::Limit(limit) => failed(limit.describe(limits)),
            Ending::Trapped { message, internal } => Ended {
                internal,
                ..failed(message)
            },
        }
    }
}

/// The journal's `RunFinished`, the `run_finished` event, and the report with its exit code.
fn finish(
    ended: Ended,
    r: crate::sandbox::capabilities::Ledger,
    opts: RunOptions,
    journal: Option<Arc<Journal>>,
    run_id: String,
    started: Instant,
    timings: Timings,
) -> RunReport {
    let Ended {
        outcome,
        result,
        error,
        stack,
        internal,
        usage_limited,
        misconfigured,
    } = ended;
    let duration_ms = millis(started.elapsed());
    if let Some(j) = &journal {
        let _ = j.append(&Record::RunFinished {
            outcome,
            result: result.clone(),
            error: error.clone(),
            duration_ms,
            usage: r.usage,
            agents_done: r.agents_done,
            agents_failed: r.agents_failed,
            agents_cached: r.agents_cached,
        });
        // Best effort now: the run is over, and its report must reach the user whatever the
        // disk says (the journal holds every result; a missing final record reads as crashed).
        let _ = j.sync();
    }
    let journal_failed = journal.as_ref().is_some_and(|j| j.failure().is_some());
    opts.events.emit(Event::RunFinished {
        outcome,
        duration_ms,
    });
    // A journal that failed is a temporary condition (free space, resume): exit 75.
    // A full disk or a provider's usage limit is temporary: free space or wait, then resume.
    let exit_code = if journal_failed || usage_limited {
        crate::exit::TEMPORARY
    } else if misconfigured {
        crate::exit::USAGE
    } else {
        exit_code(
            outcome,
            AgentTally {
                done: r.agents_done,
                failed: r.agents_failed,
                cached: r.agents_cached,
                transient: r.transient_failures,
            },
            internal,
        )
    };
    RunReport {
        run_id,
        outcome,
        result,
        error,
        stack,
        failures: crate::report::group_failures(&r.failures),
        logs: r.logs,
        agents: r.agents_started,
        usage: ReportUsage::new(r.usage, r.agents_done, r.agents_failed, r.agents_cached),
        backend: opts.backend.name().to_string(),
        model: opts.backend.default_model(),
        cost: Cost {
            total_usd: round_usd(r.cost_usd),
            cached_usd: round_usd(r.cached_cost_usd),
            unpriced_models: r.unpriced.iter().cloned().collect(),
            by_phase: r
                .cost_by_phase
                .iter()
                .map(|(k, v)| (k.clone(), round_usd(*v)))
                .collect(),
        },
        backend_stats: opts.backend.stats(),
        duration_ms,
        run_dir: journal.map(|j| j.dir().path().display().to_string()),
        timings,
        ceilings: Some(opts.ceilings()),
        ceilings_note: opts.ceilings_note,
        exit_code,
    }
}
