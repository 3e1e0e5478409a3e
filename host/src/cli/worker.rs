//! `wfhost worker`: serve agent calls from a NATS JetStream work queue (executor/worker.rs).

use anyhow::Result;
use clap::Args;
use std::path::PathBuf;
use std::sync::Arc;

pub(super) const AFTER_HELP: &str = "\
A worker pulls agent calls that `wfhost run --executor nats://HOST:PORT` publishes, makes them
on its own backend (its API keys and its checkout stay on this machine) and stores each result
in the results bucket before it acknowledges the job. Run as many as you like, on as many
machines. A job's result is stored once: a redelivered job whose result exists is acknowledged
without a call. A call in flight when its worker dies is made once more by another worker.

SIGTERM stops taking jobs; calls in flight get --grace to finish, the rest are handed back.

Examples:
  nats-server -js -sd /var/lib/nats &
  wfhost worker --nats nats://127.0.0.1:4222 --backend claude --workdir ~/src/project
  wfhost worker --nats tls://nats.internal:4222 --nats-creds worker.creds --concurrency 16

See docs/distributed.md.";

#[derive(Args)]
pub(super) struct WorkerArgs {
    /// The NATS server (`nats://HOST:PORT`, `tls://HOST:PORT`).
    #[arg(long, value_name = "URL")]
    nats: String,
    /// Calls this worker makes at once.
    #[arg(long, default_value_t = 8, value_name = "N")]
    concurrency: usize,
    /// The backend this worker serves (claude, messages, command, mock, replay:DIR) [default:
    /// as for `wfhost run`, from the working directory's configuration].
    #[arg(long, value_name = "NAME")]
    backend: Option<String>,
    /// The worker's checkout: `claude` agents work in it, and its wfhost.toml is read.
    #[arg(long, value_name = "DIR")]
    workdir: Option<PathBuf>,
    /// A job with no heartbeat for this long goes to another worker (and a lease expires).
    #[arg(long, default_value = "30s", value_parser = super::parse_positive_duration, value_name = "DURATION")]
    lease: std::time::Duration,
    /// On SIGTERM, how long calls in flight may take before they are handed back.
    #[arg(long, default_value = "30s", value_parser = super::parse_positive_duration, value_name = "DURATION")]
    grace: std::time::Duration,
    /// This worker's name in leases and results [default: host name and pid].
    #[arg(long)]
    name: Option<String>,
    /// When a job names an agent type this worker's project does not define, take the
    /// definition the run host sent (its tools, model and prompt). Off by default: whoever can
    /// publish a job could otherwise choose what the worker's agents may do.
    #[arg(long)]
    trust_job_agents: bool,
    #[command(flatten)]
    auth: crate::executor::NatsArgs,
}

pub(super) async fn worker(a: WorkerArgs) -> Result<u8> {
    if let Some(dir) = &a.workdir {
        std::env::set_current_dir(dir).map_err(|e| {
            crate::ExitError::usage(format!("cannot enter the workdir `{}`: {e}", dir.display()))
        })?;
    }
    let cwd = std::env::current_dir()?;
    let mut config = crate::config::load(&cwd)?.config;
    // Agents' tools run here, on the worker, in its workdir, under the same containment.
    super::tools::ToolArgs::default().apply(&mut config.tools, &cwd);
    let backend: Arc<dyn crate::backend::Backend> =
        crate::backend::select(a.backend.as_deref(), &config)?;
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "worker".into());
    crate::executor::worker::serve(crate::executor::worker::WorkerOptions {
        url: a.nats,
        auth: a.auth,
        concurrency: a.concurrency,
        backend,
        lease: a.lease,
        grace: a.grace,
        name: a
            .name
            .unwrap_or_else(|| format!("{host}-{}", std::process::id())),
        trust_job_agents: a.trust_job_agents,
    })
    .await?;
    Ok(crate::exit::OK)
}

pub(super) const WORKERS_HELP: &str = "\
Every worker connected to the server answers with its name, backend, load and the jobs it has
served; a run's jobs go only to workers of the run's backend. No answer within --wait: no
worker is connected (exit 1).

Examples:
  wfhost workers --nats nats://127.0.0.1:4222
  wfhost workers --nats nats://127.0.0.1:4222 --backend messages --json";

#[derive(Args)]
pub(super) struct WorkersArgs {
    /// The NATS server (`nats://HOST:PORT`, `tls://HOST:PORT`).
    #[arg(long, value_name = "URL")]
    nats: String,
    /// Only the workers of this backend.
    #[arg(long, value_name = "NAME")]
    backend: Option<String>,
    /// How long to wait for answers.
    #[arg(long, default_value = "1s", value_parser = super::parse_positive_duration, value_name = "DURATION")]
    wait: std::time::Duration,
    /// One JSON object per worker, one per line.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    auth: crate::executor::NatsArgs,
}

pub(super) async fn workers(a: WorkersArgs) -> Result<u8> {
    use std::io::Write as _;
    let client = crate::executor::connect(&a.nats, &a.auth, "wfhost workers").await?;
    let workers = crate::executor::ask_workers(&client, a.backend.as_deref(), a.wait).await?;
    let mut out = std::io::stdout().lock();
    if a.json {
        for w in &workers {
            writeln!(out, "{}", serde_json::to_string(w)?)?;
        }
    } else if !workers.is_empty() {
        writeln!(
            out,
            "{:<28} {:<10} {:>9} {:>8} {:>7} {:>9}  version",
            "worker", "backend", "in flight", "served", "failed", "up"
        )?;
        for w in &workers {
            writeln!(
                out,
                "{:<28} {:<10} {:>5} / {:<3} {:>6} {:>7} {:>9}  {}",
                crate::sanitize::line(&w.name),
                crate::sanitize::line(&w.backend),
                w.in_flight,
                w.concurrency,
                w.served,
                w.failed,
                humantime::format_duration(std::time::Duration::from_secs(w.uptime_s)).to_string(),
                crate::sanitize::line(&w.version)
            )?;
        }
    }
    if workers.is_empty() {
        eprintln!(
            "no worker{} answered at {} within {}",
            a.backend
                .as_deref()
                .map(|b| format!(" serving `{b}`"))
                .unwrap_or_default(),
            a.nats,
            humantime::format_duration(a.wait)
        );
        return Ok(1);
    }
    Ok(crate::exit::OK)
}
