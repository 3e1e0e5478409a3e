//! `wfhost config show`: the merged configuration and where each value came from.

use crate::config::{self, DEFAULT_MODEL, DEFAULT_PRICES};
use anyhow::Result;
use clap::{Args, Subcommand};
use serde_json::json;

pub(super) const AFTER_HELP: &str = "\
Files, lowest priority first: ~/.config/wfhost/config.toml, then the project's wfhost.toml
(the nearest from the current directory up to the repository root). Flags override both.

Example wfhost.toml:
  backend = \"claude\"
  model = \"claude-sonnet-4-5\"
  concurrency = 8
  [claude]
  permission_mode = \"acceptEdits\"
  allowed_tools = [\"Read\", \"Grep\", \"Edit\"]
  max_turns = 20
  [messages]
  max_tokens = 8192
  timeout = \"10m\"
  [command]
  program = \"./agents/local.sh\"
  [prices.\"claude-sonnet-4-5\"]
  input = 3.0
  output = 15.0
  cache_write = 3.75
  cache_read = 0.3";

#[derive(Args)]
pub(super) struct ConfigArgs {
    #[command(subcommand)]
    command: ConfigCommand,
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the merged configuration, each value with its source.
    Show {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

pub(super) fn config(a: ConfigArgs) -> Result<u8> {
    let ConfigCommand::Show { json } = a.command;
    let loaded = config::load(&std::env::current_dir()?)?;
    let value = serde_json::to_value(&loaded.config)?;
    let mut rows: Vec<(String, String, String)> = Vec::new();
    flatten(&value, "", &mut rows, &loaded.sources);
    if loaded.config.model.is_none() {
        rows.push((
            "model".into(),
            format!("\"{DEFAULT_MODEL}\""),
            "default".into(),
        ));
    }
    for (prefix, p) in DEFAULT_PRICES {
        if !loaded.config.prices.contains_key(*prefix) {
            let v = format!(
                "{{ input = {}, output = {}, cache_write = {}, cache_read = {} }}",
                p.input, p.output, p.cache_write, p.cache_read
            );
            rows.push((format!("prices.\"{prefix}\""), v, "default".into()));
        }
    }
    if json {
        let files: Vec<String> = loaded
            .files
            .iter()
            .map(|f| f.display().to_string())
            .collect();
        let values: Vec<_> = rows
            .iter()
            .map(|(k, v, s)| json!({"key": k, "value": v, "source": s}))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"files": files, "values": values}))?
        );
        return Ok(crate::exit::OK);
    }
    if loaded.files.is_empty() {
        println!(
            "# no configuration files (~/.config/wfhost/config.toml, ./wfhost.toml): built-in defaults"
        );
    } else {
        println!(
            "# files: {}",
            loaded
                .files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let width = rows
        .iter()
        .map(|(k, v, _)| k.len() + v.len() + 3)
        .max()
        .unwrap_or(0);
    for (k, v, s) in rows {
        let line = format!("{k} = {v}");
        println!("{line:<width$}  # {s}");
    }
    Ok(crate::exit::OK)
}

fn flatten(
    v: &serde_json::Value,
    prefix: &str,
    rows: &mut Vec<(String, String, String)>,
    sources: &std::collections::BTreeMap<String, String>,
) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(v, &key, rows, sources);
            }
        }
        serde_json::Value::Null => {}
        serde_json::Value::Array(a) if a.is_empty() => {}
        other => {
            let source = sources
                .get(prefix)
                .cloned()
                .unwrap_or_else(|| "default".into());
            rows.push((prefix.to_string(), other.to_string(), source));
        }
    }
}
