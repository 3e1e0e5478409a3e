//! Steering a live run from the command line: `wfhost stop`, `pause`, `continue`, and
//! `wfhost agent kill|restart`. Each sends one command on the run's control socket
//! (docs/control.md) and says what happened; a finished, crashed or unknown run is a clear
//! error (exit 2).

use crate::ExitError;
use crate::control::client::Client;
use crate::control::{AgentRef, Command};
use crate::run_dir::RunDir;
use anyhow::Result;
use clap::{Args, Subcommand};
use std::time::{Duration, Instant};

pub(super) const AFTER_HELP: &str = "\
RUN is a run id (`wfhost runs` lists them). Each command is journaled with who sent it, and
shows in `wfhost runs show RUN` and the event stream.

Examples:
  wfhost pause 20261121T063000-1a2b3c      no new agent starts; running ones finish
  wfhost continue 20261121T063000-1a2b3c
  wfhost stop 20261121T063000-1a2b3c       cancel running agents; exit 130; resumable";

pub(super) const AGENT_HELP: &str = "\
AGENT is the number `wfhost watch` shows (1 is the first agent the script started), or a label
that names exactly one agent.

Examples:
  wfhost agent kill 20261121T063000-1a2b3c 3       agent 3 resolves to null (counted as failed)
  wfhost agent restart 20261121T063000-1a2b3c 3    cancel it and ask again; the script gets the new answer";

#[derive(Args)]
pub(super) struct RunRef {
    /// The run (see `wfhost runs`).
    run_id: String,
    /// Print the run's JSON reply.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub(super) struct AgentArgs {
    #[command(subcommand)]
    command: AgentCommand,
}

#[derive(Subcommand)]
enum AgentCommand {
    /// The agent resolves to `null` in the script, counted as failed ("killed by the operator").
    Kill {
        run_id: String,
        agent: String,
        #[arg(long)]
        json: bool,
    },
    /// Cancel the agent's call and ask the same request again; the script gets the new answer.
    Restart {
        run_id: String,
        agent: String,
        #[arg(long)]
        json: bool,
    },
}

/// How long `wfhost stop` waits for the run's process to end. Why 30 s: cancelling ends agent
/// processes and requests at once; the rest is the journal's final sync.
const STOP_WAIT: Duration = Duration::from_secs(30);

async fn send(run_id: &str, command: Command, json: bool) -> Result<serde_json::Value> {
    let cwd = std::env::current_dir()?;
    let dir = RunDir::existing(&cwd, run_id)?;
    let name = match &command {
        Command::Kill { .. } | Command::Restart { .. } => {
            format!("wfhost agent {}", command.action())
        }
        _ => format!("wfhost {}", command.action()),
    };
    let reply = Client::connect(&dir, &name).await?.request(command).await?;
    if json {
        println!("{reply}");
    }
    Ok(reply)
}

pub(super) async fn pause(a: RunRef) -> Result<u8> {
    send(&a.run_id, Command::Pause, a.json).await?;
    if !a.json {
        eprintln!(
            "paused run {}: no new agent starts; running ones finish (`wfhost continue {}`)",
            a.run_id, a.run_id
        );
    }
    Ok(crate::exit::OK)
}

pub(super) async fn resume_dispatch(a: RunRef) -> Result<u8> {
    send(&a.run_id, Command::Continue, a.json).await?;
    if !a.json {
        eprintln!("run {} continues", a.run_id);
    }
    Ok(crate::exit::OK)
}

pub(super) async fn stop(a: RunRef) -> Result<u8> {
    send(&a.run_id, Command::Stop, a.json).await?;
    let dir = RunDir::existing(&std::env::current_dir()?, &a.run_id)?;
    let waited = Instant::now();
    while dir.is_running() {
        if waited.elapsed() > STOP_WAIT {
            return Err(ExitError::temporary(format!(
                "run {} was told to stop, but its process is still running after {}s",
                a.run_id,
                STOP_WAIT.as_secs()
            ))
            .hint("`wfhost runs` shows its status; its process can be ended with SIGTERM")
            .into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if !a.json {
        eprintln!(
            "stopped run {}: finished agents are kept; resume with:\n  wfhost resume {} --yes",
            a.run_id, a.run_id
        );
    }
    Ok(crate::exit::OK)
}

pub(super) async fn agent(a: AgentArgs) -> Result<u8> {
    let (run_id, agent, json, kill) = match a.command {
        AgentCommand::Kill {
            run_id,
            agent,
            json,
        } => (run_id, agent, json, true),
        AgentCommand::Restart {
            run_id,
            agent,
            json,
        } => (run_id, agent, json, false),
    };
    let agent_ref = match agent.trim_start_matches('#').parse::<u32>() {
        Ok(n) => AgentRef::Number(n),
        Err(_) => AgentRef::Name(agent.clone()),
    };
    let command = if kill {
        Command::Kill { agent: agent_ref }
    } else {
        Command::Restart { agent: agent_ref }
    };
    let reply = send(&run_id, command, json).await?;
    if !json {
        let label = crate::sanitize::line(reply["label"].as_str().unwrap_or_default()).into_owned();
        let n = &reply["agent"];
        eprintln!(
            "{} agent {n} ({label}) of run {run_id}",
            if kill { "killed" } else { "restarted" }
        );
    }
    Ok(crate::exit::OK)
}
