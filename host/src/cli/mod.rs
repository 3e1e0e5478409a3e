//! The command line. One file per command; this one holds the shared flags, dispatch and the
//! error format (`error: …` lowercase, then a `hint:` line).

mod agents;
mod audit;
mod compile;
mod config;
mod logs;
mod mcp;
mod plan;
mod resume;
mod run;
mod runs;
mod schema;
mod steer;
mod tools;
mod trace;
mod watch;
mod worker;
mod workflows;

use crate::exit;
use crate::limits::Limits;
use clap::{Args, Parser, Subcommand};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

const AFTER_HELP: &str = "\
Exit codes:
  0   the workflow completed
  2   bad usage: an unknown flag, a bad config value or run id, a file that cannot be read
  65  the script failed, or was rejected before running (meta, syntax, import); or it
      returned although every agent failed
  70  internal error in wfhost
  75  temporary failure: provider trouble (rate limit, overload, network), a full disk
      (free space, then resume), a run locked by another process: retry later
  77  refused by policy (import outside the capability surface, no approval, an edited
      journal)
  130 interrupted (Ctrl-C, SIGTERM): `wfhost resume RUN_ID` continues it

Examples:
  wfhost run review.js --backend mock --yes          dry run on the deterministic mock model
  wfhost run review.js --args '{\"files\":[\"a.rs\"]}'  pass `args` as JSON
  wfhost compile review.js -o review.wasm            a standalone module
  wfhost audit review.wasm                           what it can reach, and why nothing else";

#[derive(Parser)]
#[command(
    name = "wfhost",
    version = version(),
    about = "Run model-written workflow scripts in a WebAssembly sandbox",
    long_about = "Run model-written workflow scripts in a WebAssembly sandbox.\n\n\
        A script is compiled by Javy (QuickJS → WebAssembly) and runs in Wasmtime with no \
        filesystem, socket, environment or clock: its only way out is spawning agents, waiting \
        for them, and logging.",
    after_help = AFTER_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Diagnostics on stderr: `-v` what wfhost decides (configuration, backend, connections,
    /// caches), `-vv` also its libraries' (HTTP/2, NATS, MCP). `RUST_LOG` (e.g.
    /// `RUST_LOG=wfhost=debug,h2=trace`) chooses finely and wins over `-v`.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Colour in diagnostics and `--help`: auto (on a terminal, unless NO_COLOR is set),
    /// always, never. The plain progress lines never have colour; the dashboard always has.
    #[arg(long, global = true, value_enum, default_value_t = ColorWhen::Auto, value_name = "WHEN")]
    color: ColorWhen,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum ColorWhen {
    Auto,
    Always,
    Never,
}

impl ColorWhen {
    /// Whether stderr gets colour.
    fn on_stderr(self) -> bool {
        use std::io::IsTerminal as _;
        match self {
            ColorWhen::Always => true,
            ColorWhen::Never => false,
            ColorWhen::Auto => {
                std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
            }
        }
    }
}

/// Diagnostics (`-v`, `RUST_LOG`) through `tracing`, on stderr. Without either, nothing: the
/// plain view and the dashboard are the user's output; diagnostics are asked for.
fn diagnostics(verbose: u8, color: ColorWhen) {
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => tracing_subscriber::EnvFilter::new(spec),
        _ => match verbose {
            0 => return,
            1 => tracing_subscriber::EnvFilter::new("wfhost=debug"),
            _ => tracing_subscriber::EnvFilter::new("debug,wfhost=trace"),
        },
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(color.on_stderr())
        .with_target(true)
        .try_init();
}

fn version() -> &'static str {
    Box::leak(
        format!(
            "{}\nguest sha256 {}\nwasmtime {}",
            env!("CARGO_PKG_VERSION"),
            crate::compile::GUEST_SHA256,
            crate::compile::WASMTIME_VERSION
        )
        .into_boxed_str(),
    )
}

#[derive(Subcommand)]
enum Command {
    /// Run a workflow script (`.js`), a compiled module (`.wasm`) or a saved workflow by name.
    #[command(after_help = run::AFTER_HELP)]
    Run(run::RunArgs),
    /// Compile a script to a standalone WebAssembly module (a Javy dynamic-linking module).
    #[command(after_help = compile::AFTER_HELP)]
    Compile(compile::CompileArgs),
    /// Continue an interrupted or failed run: stored results are served, the rest runs.
    #[command(after_help = resume::AFTER_HELP)]
    Resume(resume::ResumeArgs),
    /// Project a run's agents, tokens and cost without running any agent.
    #[command(after_help = plan::AFTER_HELP)]
    Plan(plan::PlanArgs),
    /// A full-screen dashboard of a live run: phases, agents, keys to pause, kill, restart, save.
    #[command(after_help = watch::AFTER_HELP)]
    Watch(watch::WatchArgs),
    /// Serve MCP on stdio, so coding agents can launch, watch and steer workflows.
    #[command(after_help = mcp::AFTER_HELP)]
    Mcp(mcp::McpArgs),
    /// Serve agent calls from a NATS JetStream work queue (`run --executor nats://…`).
    #[command(after_help = worker::AFTER_HELP)]
    Worker(worker::WorkerArgs),
    /// List the workers serving a NATS work queue: backend, load, jobs served.
    #[command(after_help = worker::WORKERS_HELP)]
    Workers(worker::WorkersArgs),
    /// The permission helper of `claude` agents (started by wfhost itself).
    #[command(hide = true)]
    PermissionServer(mcp::PermissionServerArgs),
    /// Print a run's plain view (live with `--follow`), or its events as JSON lines.
    #[command(after_help = logs::AFTER_HELP)]
    Logs(logs::LogsArgs),
    /// Stop a running run: cancel its running agents, keep what finished (exit 130; resumable).
    #[command(after_help = steer::AFTER_HELP)]
    Stop(steer::RunRef),
    /// Pause a running run: no new agent starts; running ones finish.
    #[command(after_help = steer::AFTER_HELP)]
    Pause(steer::RunRef),
    /// Continue a paused run.
    #[command(after_help = steer::AFTER_HELP)]
    Continue(steer::RunRef),
    /// Kill or restart one agent of a running run.
    #[command(after_help = steer::AGENT_HELP)]
    Agent(steer::AgentArgs),
    /// List this project's runs, show one, or delete old ones.
    #[command(after_help = runs::AFTER_HELP)]
    Runs(runs::RunsArgs),
    /// Print the capability surface: what a script or module can reach, and the limits.
    #[command(after_help = audit::AFTER_HELP)]
    Audit(audit::AuditArgs),
    /// Draw a run's execution trace (Mermaid, DOT, HTML).
    #[command(after_help = trace::AFTER_HELP)]
    Trace(trace::TraceArgs),
    /// Show the configuration (wfhost.toml, ~/.config/wfhost/config.toml).
    #[command(after_help = config::AFTER_HELP)]
    Config(config::ConfigArgs),
    /// List the agent types a script can name in `agent({agentType})`.
    #[command(after_help = agents::AFTER_HELP)]
    Agents(agents::AgentsArgs),
    /// List saved workflows (project and personal).
    #[command(after_help = workflows::LIST_HELP)]
    List(workflows::ListArgs),
    /// Show a saved workflow: its metadata, where it is, and its source.
    #[command(after_help = "Example:\n  wfhost show review")]
    Show(workflows::ShowArgs),
    /// Save a script as a workflow that `wfhost run NAME` and `workflow(\"NAME\")` find.
    #[command(after_help = workflows::SAVE_HELP)]
    Save(workflows::SaveArgs),
    /// Print shell completions: bash, zsh, fish, elvish or powershell.
    #[command(
        after_help = "Example:\n  wfhost completions bash > ~/.local/share/bash-completion/completions/wfhost"
    )]
    Completions { shell: clap_complete::Shell },
    /// Print the JSON Schema of the `--json` report or of an `--events` line.
    #[command(
        after_help = "Examples:\n  wfhost schema report > report.schema.json\n  wfhost schema events > events.schema.json\n\nGenerated from the types wfhost writes them from (also in docs/schemas/)."
    )]
    Schema(schema::SchemaArgs),
    /// Write the man pages (wfhost.1 and one per command) into DIR (release archives, the
    /// Debian package: scripts/dist.sh).
    #[command(hide = true)]
    Man { dir: std::path::PathBuf },
}

/// The sandbox limits, shared by every command that runs or describes a run. Each is `None`
/// unless given, so a resume can tell a flag that tightens the run's stored ceilings from a
/// default (see `limits::Ceilings`).
#[derive(Args, Clone, Debug)]
pub(crate) struct LimitArgs {
    /// Guest linear-memory cap (e.g. 256MiB, 1GiB) [default: 256MiB].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    max_memory: Option<u64>,
    /// How long the script may run without waiting on an agent or timer (e.g. 30s, 2m)
    /// [default: 30s].
    #[arg(long, value_name = "DURATION", value_parser = parse_positive_duration)]
    cpu_timeout: Option<Duration>,
    /// Bytes of output one run may make the host write or keep: logs, phase titles, agent
    /// labels, the result, captured stdout/stderr (one ledger) [default: 16MiB].
    #[arg(long, visible_alias = "max-log-bytes", value_name = "SIZE", value_parser = parse_size)]
    max_output_bytes: Option<u64>,
    /// Number of log lines and phase titles one run may write [default: 100000].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    max_log_lines: Option<u64>,
    /// Agents one run may start (the reference runtime's cap) [default: 1000].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    max_agents: Option<u32>,
    /// Wall-clock time one run may take, agents included (e.g. 30m, 2h) [default: 12h].
    #[arg(long, value_name = "DURATION", value_parser = parse_positive_duration)]
    timeout: Option<Duration>,
    /// Stop the run as failed once more than N agents have failed [default: no limit].
    #[arg(long, value_name = "N")]
    max_failed_agents: Option<u32>,
    /// Tokens (input + output, all agents) after which no new agent starts [default: no
    /// limit]. `--budget-tokens` counts output only.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    max_tokens: Option<u64>,
    /// The largest prompt one agent may be sent [default: 8MiB].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    max_prompt_bytes: Option<u64>,
    /// Bytes of prompts the host may hold for agents queued or running [default: 256MiB].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    max_queued_bytes: Option<u64>,
    /// Cancel an agent whose backend shows no progress for this long; it is retried once,
    /// then fails (e.g. 2m) [default: 10m; config `stall_timeout`].
    #[arg(long, value_name = "DURATION", value_parser = parse_positive_duration)]
    stall_timeout: Option<Duration>,
    /// Wall-clock time one agent may take, retries included (e.g. 20m) [default: 1h; config
    /// `agent_timeout`].
    #[arg(long, value_name = "DURATION", value_parser = parse_positive_duration)]
    agent_timeout: Option<Duration>,
    /// Agents running at once [default: min(16, max(2, cores − 2))].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    concurrency: Option<u16>,
    /// Do not read or write the compile cache ($WFHOST_CACHE_DIR, else $XDG_CACHE_HOME/wfhost).
    #[arg(long)]
    no_cache: bool,
}

impl LimitArgs {
    /// `--no-cache`.
    pub(crate) fn no_cache(&self) -> bool {
        self.no_cache
    }

    /// The limits: each flag given, else its default.
    pub(crate) fn limits(&self) -> Limits {
        crate::limits::Ceilings::new(&self.requested(), &Limits::default()).limits
    }

    /// The limits the flags ask for (`None` where no flag was given).
    pub(crate) fn requested(&self) -> crate::limits::Requested {
        crate::limits::Requested {
            max_memory: self.max_memory,
            cpu_timeout: self.cpu_timeout,
            max_output_bytes: self.max_output_bytes,
            max_log_lines: self.max_log_lines,
            max_agents: self.max_agents,
            timeout: self.timeout,
            max_failed_agents: self.max_failed_agents,
            max_tokens: self.max_tokens,
            max_prompt_bytes: self.max_prompt_bytes,
            max_queued_bytes: self.max_queued_bytes,
            concurrency: self.concurrency.map(usize::from),
            stall_timeout: self.stall_timeout,
            agent_timeout: self.agent_timeout,
            ..crate::limits::Requested::default()
        }
    }
}

/// A duration that is more than zero (a limit of 0 would stop every run at once).
fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    match humantime::parse_duration(s) {
        Ok(d) if d.is_zero() => Err("must be more than 0 (e.g. 30s)".into()),
        Ok(d) => Ok(d),
        Err(e) => Err(format!("not a duration like 30s or 2m: {e}")),
    }
}

/// A dollar amount: a finite number, 0 or more.
pub(crate) fn parse_usd(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        Ok(_) => Err("must be a finite amount of 0 or more (e.g. 5 or 0.25)".into()),
        Err(e) => Err(format!("not a number: {e}")),
    }
}

fn parse_size(s: &str) -> Result<u64, String> {
    // `--max-memory 12` is twelve bytes to bytesize, and never what was meant.
    if !s.trim().is_empty() && s.trim().chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(format!(
            "a size needs a unit: `{0}MiB`, `{0}GiB` (or `{0}B` for bytes)",
            s.trim()
        ));
    }
    match s.parse::<bytesize::ByteSize>() {
        Ok(b) if b.as_u64() == 0 => Err("must be more than 0 (e.g. 256MiB)".into()),
        Ok(b) => Ok(b.as_u64()),
        Err(e) => Err(format!("not a size like 256MiB: {e}")),
    }
}

/// Prints an error the way every command does: `error: …` with its causes, then the
/// `hint: …` of the `ExitError` inside it, if it has one.
pub(crate) fn print_error(e: &anyhow::Error) {
    eprint!("{}", crate::render_error(e));
}

pub(crate) fn error_code(e: &anyhow::Error) -> u8 {
    crate::ExitError::find(e).map_or(exit::INTERNAL, |x| x.code)
}

/// `--color WHEN` (or `--color=WHEN`) as given, before clap parses anything.
fn color_from_args() -> ColorWhen {
    let args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let value = args.iter().enumerate().find_map(|(i, a)| {
        a.strip_prefix("--color=")
            .map(str::to_owned)
            .or_else(|| (a == "--color").then(|| args.get(i + 1).cloned()).flatten())
    });
    match value.as_deref() {
        Some("always") => ColorWhen::Always,
        Some("never") => ColorWhen::Never,
        _ => ColorWhen::Auto,
    }
}

/// A closed pipe (`wfhost runs | head -1`) ends the process quietly, as it ends `cat`, rg and
/// cargo: by SIGPIPE, never a panic (101) or an internal error (70).
///
/// Commands that only print get the signal's default action back (Rust starts with it
/// ignored). Those that run agents keep it ignored — a `claude` child or a socket closing under
/// a write must be an error the run handles, not the end of the host — and a print of theirs
/// to a closed stdout (the report under `--json | head`) is turned into the same quiet end.
fn quiet_on_closed_pipe(command: &Command) {
    let prints_only = matches!(
        command,
        Command::Runs(_)
            | Command::Logs(_)
            | Command::List(_)
            | Command::Show(_)
            | Command::Agents(_)
            | Command::Config(_)
            | Command::Audit(_)
            | Command::Trace(_)
            | Command::Completions { .. }
            | Command::Schema(_)
            | Command::Man { .. }
    );
    if prints_only {
        // SAFETY: setting a signal's disposition to its default before any thread is started.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.starts_with("failed printing to std") && message.contains("Broken pipe") {
            die_of_sigpipe();
        }
        default(info);
    }));
}

/// Ends the process the way a closed pipe ends a program that does not ignore SIGPIPE.
fn die_of_sigpipe() -> ! {
    // SAFETY: restoring the default disposition and raising the signal on this process.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::raise(libc::SIGPIPE);
    }
    // Not reached: SIGPIPE's default action ends the process. If it did not, a quiet success.
    std::process::exit(0)
}

/// Whether an error is a write to a closed pipe.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

pub fn main() -> ExitCode {
    // `--color` reaches clap's own help and errors too (read before parsing them).
    let color = color_from_args();
    let mut command = <Cli as clap::CommandFactory>::command().color(match color {
        ColorWhen::Auto => clap::ColorChoice::Auto,
        ColorWhen::Always => clap::ColorChoice::Always,
        ColorWhen::Never => clap::ColorChoice::Never,
    });
    let cli = match command
        .try_get_matches_from_mut(std::env::args_os())
        .and_then(|mut m| <Cli as clap::FromArgMatches>::from_arg_matches_mut(&mut m))
    {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    quiet_on_closed_pipe(&cli.command);
    diagnostics(cli.verbose, cli.color);
    tracing::debug!(version = env!("CARGO_PKG_VERSION"), "wfhost starts");
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    // `run`, `resume` and `plan` run the script's guest on this, the main, thread: it is their
    // critical path (every agent starts and finishes through it), so the pool's workers take
    // the other cores rather than contend with it: on 2 cores, one worker. Measured on 5,000
    // agents over TLS + HTTP/2: less CPU and less run time (bench/README.md).
    // `TOKIO_WORKER_THREADS` still decides when it is set.
    if matches!(
        cli.command,
        Command::Run(_) | Command::Resume(_) | Command::Plan(_)
    ) && std::env::var_os("TOKIO_WORKER_THREADS").is_none()
        && let Ok(cores) = std::thread::available_parallelism()
    {
        builder.worker_threads(cores.get().saturating_sub(1).max(1));
    }
    let runtime = match builder.enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::INTERNAL);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run(a) => run::run(a).await,
            Command::Compile(a) => compile::compile(a).await,
            Command::Audit(a) => audit::audit(a),
            Command::Resume(a) => resume::resume(a).await,
            Command::Runs(a) => runs::runs(a),
            Command::Logs(a) => logs::logs(a).await,
            Command::Watch(a) => watch::watch(a).await,
            Command::Plan(a) => plan::plan(a).await,
            Command::Mcp(a) => mcp::mcp(a).await,
            Command::Worker(a) => worker::worker(a).await,
            Command::Workers(a) => worker::workers(a).await,
            Command::PermissionServer(a) => mcp::permission_server(a).await,
            Command::Stop(a) => steer::stop(a).await,
            Command::Pause(a) => steer::pause(a).await,
            Command::Continue(a) => steer::resume_dispatch(a).await,
            Command::Agent(a) => steer::agent(a).await,
            Command::Config(a) => config::config(a),
            Command::Trace(a) => trace::trace(a),
            Command::List(a) => workflows::list(a),
            Command::Agents(a) => agents::agents(a),
            Command::Show(a) => workflows::show(a),
            Command::Save(a) => workflows::save(a),
            Command::Schema(a) => schema::schema(a),
            Command::Man { dir } => {
                use clap::CommandFactory;
                std::fs::create_dir_all(&dir)?;
                clap_mangen::generate_to(Cli::command(), &dir)?;
                Ok(crate::exit::OK)
            }
            Command::Completions { shell } => {
                use clap::CommandFactory;
                clap_complete::generate(
                    shell,
                    &mut Cli::command(),
                    "wfhost",
                    &mut std::io::stdout(),
                );
                Ok(exit::OK)
            }
        }
    });
    // Agents still running (the script returned without awaiting them) must not hold the
    // process open.
    runtime.shutdown_timeout(Duration::from_millis(100));
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) if is_broken_pipe(&e) => die_of_sigpipe(),
        Err(e) => {
            print_error(&e);
            ExitCode::from(error_code(&e))
        }
    }
}

/// Reads a file the user named; failing is a usage error (exit 2), not an internal one.
pub(crate) fn read_file(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        let error = crate::ExitError::usage(format!("cannot read `{}`: {e}", path.display()));
        match e.kind() {
            std::io::ErrorKind::NotFound => error
                .hint("check the path (saved workflows run by name: see `wfhost list`)")
                .into(),
            _ if path.is_dir() => error.hint("name a file, not a directory").into(),
            _ => error.into(),
        }
    })
}
