//! Configuration: `wfhost.toml` in the project (the nearest one from the current directory up
//! to the repository root) over `~/.config/wfhost/config.toml`, over built-in defaults.
//! Command-line flags override all of them. `wfhost config show` prints the merged result and
//! where each value came from.

pub(crate) use crate::agent::{DEFAULT_PRICES, Price};
use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    /// `claude`, `messages`, `command`, `mock` or `replay:DIR`.
    pub backend: Option<String>,
    /// The default model for agents that do not name one.
    pub model: Option<String>,
    pub concurrency: Option<u16>,
    /// Cancel (and retry once) an agent silent for this long, e.g. `5m` [default: 10m].
    pub stall_timeout: Option<String>,
    /// Wall-clock time one agent may take, e.g. `30m` [default: 1h].
    pub agent_timeout: Option<String>,
    /// Wait for a provider's usage limit to reset instead of ending the run [default: false].
    pub wait_on_limit: Option<bool>,
    /// Re-asks of an answer that misses its schema before `agent()` rejects [default: 5].
    pub schema_retries: Option<u32>,
    /// Agents above which `wfhost plan` and the approval prompt warn of a large run
    /// [default: 50, the reference's "large"].
    pub size_guideline: Option<usize>,
    #[serde(default)]
    pub claude: ClaudeConfig,
    #[serde(default)]
    pub messages: MessagesConfig,
    #[serde(default)]
    pub command: CommandConfig,
    /// The OpenAI-compatible backend (docs/backends.md).
    #[serde(default)]
    pub openai: OpenAiConfig,
    /// What `wfhost mcp` lets a coding agent do (docs/mcp.md).
    #[serde(default)]
    pub mcp: McpConfig,
    /// USD per million tokens, by model (a model matches the longest entry it starts with).
    #[serde(default)]
    pub prices: BTreeMap<String, Price>,
    /// Where agent calls run (docs/distributed.md).
    #[serde(default)]
    pub executor: ExecutorConfig,
    /// How the pool rides a provider's rate limits (docs/cost.md).
    #[serde(default)]
    pub rate_limits: RateLimitsConfig,
    /// The tools of API agents (`messages`): which, and their guard rails (docs/tools.md).
    #[serde(default)]
    pub tools: ToolsConfig,
}

/// `[tools]`: what agents on an HTTP API may use, contained by the host (docs/tools.md).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolsConfig {
    /// The tools agents get: `Read`, `Glob`, `Grep`, `Edit`, `Write`, `Bash` (`[]`: none)
    /// [default: the read-only set, `["Read", "Glob", "Grep"]`].
    pub allow: Option<Vec<String>>,
    /// Model turns one agent may take [default: 50].
    pub max_turns: Option<u32>,
    /// Tool calls one agent may make [default: 200].
    pub max_tool_calls: Option<u32>,
    /// The largest tool result handed back to the model, e.g. `64KiB` [default: 100KiB].
    pub max_result: Option<String>,
    /// A `Bash` call's timeout when it names none, e.g. `2m` [default: 2m; at most 10m].
    pub bash_timeout: Option<String>,
    /// Run `Bash` without the kernel's confinement where the kernel cannot confine it
    /// [default: false: `Bash` is refused there, with the reason].
    pub unconfined_bash: Option<bool>,
    /// The agents' workspace: the only directory their tools reach [default: the directory
    /// the run was started in].
    pub workspace: Option<std::path::PathBuf>,
}

/// `[executor]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExecutorConfig {
    /// `local`, or `nats://HOST:PORT` [default: local].
    pub url: Option<String>,
}

/// `[rate_limits]`: the pool's behaviour under a provider's rate limits.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RateLimitsConfig {
    /// A 429 pauses the whole pool for its `retry-after`, concurrency halves and ramps back
    /// up, requests are paced by the provider's `anthropic-ratelimit-*` headers [default: true].
    pub adaptive: Option<bool>,
    /// Limits of your own, by model (a model matches the longest entry it starts with).
    #[serde(default)]
    pub models: BTreeMap<String, ModelLimits>,
}

/// `[rate_limits.models."PREFIX"]`.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct ModelLimits {
    /// Requests a minute this model may be sent (paced evenly, bursts up to the minute's count).
    pub requests_per_minute: Option<u32>,
    /// Agents of this model running at once (below the run's `--concurrency`).
    pub concurrency: Option<u16>,
}

/// `[mcp]`: the policy of `wfhost mcp`, on top of the project's backend and limits.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct McpConfig {
    /// Backends a run started over MCP may use [default: any].
    pub allowed_backends: Option<Vec<String>>,
    /// Agents one run started over MCP may start [default: the run's `--max-agents`, 1000].
    pub max_agents: Option<u32>,
    /// USD one run started over MCP may cost [default: no ceiling].
    pub max_cost: Option<f64>,
    /// Whether `workflow_run` accepts an inline `script` (else only saved workflows and files
    /// of the project) [default: true].
    pub inline_scripts: Option<bool>,
    /// Runs one MCP client (one stdio server, one HTTP session) may have going at once
    /// [default: 4].
    pub max_runs: Option<u32>,
    /// When a run is put to the person behind the client first (MCP elicitation: the script's
    /// name, phases, projected agents and cost, its blake3): `always`, `over-limits` (when the
    /// projection exceeds `confirm_agents` or `confirm_cost`) or `never` [default: over-limits].
    pub confirm: Option<Confirm>,
    /// Projected agents above which `over-limits` asks [default: 25].
    pub confirm_agents: Option<u32>,
    /// Projected USD (the high end) above which `over-limits` asks [default: 1.0].
    pub confirm_cost: Option<f64>,
}

/// `[mcp] confirm`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Confirm {
    Always,
    #[default]
    OverLimits,
    Never,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClaudeConfig {
    /// The `claude` binary [default: found on PATH].
    pub binary: Option<String>,
    /// `--permission-mode` (e.g. `acceptEdits`, `bypassPermissions`) [default: `default`].
    pub permission_mode: Option<String>,
    /// `--allowedTools`.
    pub allowed_tools: Option<Vec<String>>,
    /// `--max-turns` [default: 30].
    pub max_turns: Option<u32>,
    /// Per-agent timeout, e.g. `20m` [default: 30m].
    pub timeout: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MessagesConfig {
    /// [default: `$ANTHROPIC_BASE_URL`, else https://api.anthropic.com]
    pub base_url: Option<String>,
    /// [default: 8192]
    pub max_tokens: Option<u32>,
    /// Per-agent timeout, retries and waits included, e.g. `10m` [default: 10m].
    pub timeout: Option<String>,
    /// Per-attempt timeout: one request that has not finished in this long is abandoned and
    /// retried, e.g. `2m` [default: the per-agent timeout].
    pub attempt_timeout: Option<String>,
    /// Attempts per agent for retryable failures [default: 6].
    pub max_attempts: Option<u32>,
    /// Agents started together whose prompts share a long head: the head gets a cache
    /// breakpoint, and all but the first wait (a few seconds at most) until the first one's
    /// answer has begun, so they read the head from the cache [default: true].
    pub cache_stagger: Option<bool>,
    /// Send agents through the Message Batches API: half the price, answers within 24 h
    /// (usually minutes); an agent with tools waits on one batch per turn [default: false;
    /// `--batch`].
    pub batch: Option<bool>,
    /// How long agents that become ready together are gathered into one batch, e.g. `1s`
    /// [default: 1s; `--batch-window`].
    pub batch_window: Option<String>,
}

/// `[openai]`: any server of the OpenAI Chat Completions API (OpenAI, vLLM, llama.cpp's
/// `llama-server`, Ollama, OpenRouter), configured as the OpenAI SDKs are.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OpenAiConfig {
    /// The API's base, with its `/v1` [default: `$OPENAI_BASE_URL`, else
    /// https://api.openai.com/v1].
    pub base_url: Option<String>,
    /// The model of agents that name none [default: the top-level `model`; one is needed].
    pub model: Option<String>,
    /// `OpenAI-Organization` [default: `$OPENAI_ORG_ID`].
    pub organization: Option<String>,
    /// `OpenAI-Project` [default: `$OPENAI_PROJECT_ID`].
    pub project: Option<String>,
    /// More headers on every request (an OpenRouter `HTTP-Referer`, a gateway's key).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// `max_tokens` of each call [default: the server's].
    pub max_tokens: Option<u32>,
    /// Stream answers (SSE) [default: true].
    pub stream: Option<bool>,
    /// How a schema agent gives its answer: `json_schema` (`response_format`), `tool` (a forced
    /// `StructuredOutput` function) or `json_object` (JSON mode, the schema in the prompt)
    /// [default: `json_schema`, and `tool` from the first refusal of it on].
    pub structured: Option<String>,
    /// `strict` of the `json_schema` response format (the server then guarantees the schema,
    /// but takes only schemas whose objects list every property as required and forbid others)
    /// [default: false].
    pub strict: Option<bool>,
    /// Per-agent timeout, retries and waits included [default: 10m].
    pub timeout: Option<String>,
    /// Per-attempt timeout [default: the per-agent timeout].
    pub attempt_timeout: Option<String>,
    /// Attempts per agent for retryable failures [default: 6].
    pub max_attempts: Option<u32>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CommandConfig {
    /// The program that answers agents (request JSON on stdin, response JSON on stdout).
    pub program: Option<String>,
    #[serde(default)]
    pub args: Vec<String>,
    /// Per-agent timeout [default: 30m].
    pub timeout: Option<String>,
}

/// The default model when neither the script nor the configuration names one.
pub(crate) const DEFAULT_MODEL: &str = "claude-sonnet-4-5";

impl Config {
    /// The price of a model: the longest configured (then built-in) prefix it starts with.
    pub(crate) fn price(&self, model: &str) -> Option<Price> {
        let configured = self.prices.iter().map(|(k, v)| (k.as_str(), *v));
        let best = |it: &mut dyn Iterator<Item = (&str, Price)>| {
            it.filter(|(k, _)| model.starts_with(k))
                .max_by_key(|(k, _)| k.len())
                .map(|(_, p)| p)
        };
        best(&mut configured.into_iter()).or_else(|| best(&mut DEFAULT_PRICES.iter().copied()))
    }

    /// The configured limits of a model: the longest `[rate_limits.models]` prefix it starts with.
    pub(crate) fn model_limits(&self, model: &str) -> ModelLimits {
        self.rate_limits
            .models
            .iter()
            .filter(|(k, _)| model.starts_with(k.as_str()))
            .max_by_key(|(k, _)| k.len())
            .map(|(_, l)| *l)
            .unwrap_or_default()
    }

    pub(crate) fn model(&self) -> &str {
        self.model.as_deref().unwrap_or(DEFAULT_MODEL)
    }
}

/// The merged configuration and where each value came from.
pub(crate) struct Loaded {
    pub config: Config,
    /// `dotted.key` → the file it came from.
    pub sources: BTreeMap<String, String>,
    pub files: Vec<PathBuf>,
}

/// The project's `wfhost.toml`: the nearest from `cwd` up to the repository root.
fn project_file(cwd: &Path) -> Option<PathBuf> {
    crate::paths::project_dirs(cwd)
        .into_iter()
        .map(|d| d.join("wfhost.toml"))
        .find(|f| f.is_file())
}

fn personal_file() -> Option<PathBuf> {
    Some(crate::paths::config_dir()?.join("config.toml")).filter(|f| f.is_file())
}

/// Loads personal then project configuration (project wins), remembering each value's source.
pub(crate) fn load(cwd: &Path) -> Result<Loaded> {
    let mut merged = toml::Table::new();
    let mut sources = BTreeMap::new();
    let mut files = Vec::new();
    for file in [personal_file(), project_file(cwd)].into_iter().flatten() {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("cannot read `{}`", file.display()))?;
        let table: toml::Table = toml::from_str(&text)
            .with_context(|| format!("`{}` is not valid TOML", file.display()))?;
        merge(
            &mut merged,
            table,
            "",
            &file.display().to_string(),
            &mut sources,
        );
        tracing::debug!(file = %file.display(), "configuration read");
        files.push(file);
    }
    let config: Config = toml::Value::Table(merged).try_into().with_context(|| {
        format!(
            "invalid configuration in {}",
            files
                .iter()
                .map(|f| format!("`{}`", f.display()))
                .collect::<Vec<_>>()
                .join(" or ")
        )
    })?;
    let loaded = Loaded {
        config,
        sources,
        files,
    };
    loaded.validate()?;
    Ok(loaded)
}

impl Loaded {
    /// Refuses settings that parse but make no sense, naming the key and the file it came from,
    /// before anything runs (a 0 concurrency would hang a run; a `0s` timeout would fail every
    /// agent; a `base_url` that is not http(s) would send prompts who knows where).
    fn validate(&self) -> Result<()> {
        let c = &self.config;
        let bad = |key: &str, why: String| -> anyhow::Error {
            let file = self
                .sources
                .get(key)
                .map_or("the configuration", String::as_str);
            crate::ExitError::usage(format!("`{key}` in `{file}` {why}"))
                .hint(format!(
                    "fix or remove `{key}`; `wfhost config show` lists every value and its file"
                ))
                .into()
        };
        if let Some(n) = c.concurrency
            && !(1..=256).contains(&n)
        {
            return Err(bad("concurrency", format!("is {n}; it must be 1 to 256")));
        }
        for (key, value) in [
            ("messages.timeout", &c.messages.timeout),
            ("messages.attempt_timeout", &c.messages.attempt_timeout),
            ("openai.timeout", &c.openai.timeout),
            ("openai.attempt_timeout", &c.openai.attempt_timeout),
            ("claude.timeout", &c.claude.timeout),
            ("command.timeout", &c.command.timeout),
            ("stall_timeout", &c.stall_timeout),
            ("agent_timeout", &c.agent_timeout),
        ] {
            if let Some(text) = value {
                match humantime::parse_duration(text) {
                    Ok(d) if d.is_zero() => {
                        return Err(bad(
                            key,
                            format!("is \"{text}\"; a timeout must be more than 0"),
                        ));
                    }
                    Ok(_) => {}
                    Err(_) => {
                        return Err(bad(
                            key,
                            format!("is \"{text}\", not a duration like \"10m\""),
                        ));
                    }
                }
            }
        }
        if let Some(url) = &c.messages.base_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err(bad(
                "messages.base_url",
                format!("is \"{url}\"; it must be an http:// or https:// URL"),
            ));
        }
        if let Some(url) = &c.openai.base_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err(bad(
                "openai.base_url",
                format!("is \"{url}\"; it must be an http:// or https:// URL"),
            ));
        }
        if let Some(mode) = &c.openai.structured
            && !["json_schema", "tool", "json_object"].contains(&mode.as_str())
        {
            return Err(bad(
                "openai.structured",
                format!("is \"{mode}\"; it must be \"json_schema\", \"tool\" or \"json_object\""),
            ));
        }
        if c.openai.max_attempts == Some(0) || c.messages.max_attempts == Some(0) {
            let key = if c.openai.max_attempts == Some(0) {
                "openai.max_attempts"
            } else {
                "messages.max_attempts"
            };
            return Err(bad(key, "is 0; it must be at least 1".into()));
        }
        if c.messages.max_attempts == Some(0) {
            return Err(bad(
                "messages.max_attempts",
                "is 0; it must be at least 1".into(),
            ));
        }
        if c.messages.max_tokens == Some(0) {
            return Err(bad(
                "messages.max_tokens",
                "is 0; it must be at least 1".into(),
            ));
        }
        for (model, l) in &c.rate_limits.models {
            if l.requests_per_minute == Some(0) || l.concurrency == Some(0) {
                return Err(bad(
                    &format!("rate_limits.models.{model}"),
                    "has a limit of 0, which would stop every agent of that model; remove it or set at least 1".into(),
                ));
            }
        }
        for (model, p) in &c.prices {
            if [p.input, p.output, p.cache_write, p.cache_read]
                .iter()
                .any(|v| !v.is_finite() || *v < 0.0)
            {
                return Err(bad(
                    &format!("prices.{model}"),
                    "has a price that is negative or not a number".into(),
                ));
            }
        }
        Ok(())
    }
}

fn merge(
    into: &mut toml::Table,
    from: toml::Table,
    prefix: &str,
    source: &str,
    sources: &mut BTreeMap<String, String>,
) {
    for (k, v) in from {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match (into.get_mut(&k), v) {
            (Some(toml::Value::Table(existing)), toml::Value::Table(t)) => {
                merge(existing, t, &path, source, sources);
            }
            (_, toml::Value::Table(t)) => {
                let mut fresh = toml::Table::new();
                merge(&mut fresh, t, &path, source, sources);
                into.insert(k, toml::Value::Table(fresh));
            }
            (_, v) => {
                sources.insert(path, source.to_string());
                into.insert(k, v);
            }
        }
    }
}

/// `10m`-style durations from the configuration, naming the key on error.
pub(crate) fn duration(
    value: &Option<String>,
    key: &str,
    default: std::time::Duration,
) -> Result<std::time::Duration> {
    match value {
        None => Ok(default),
        Some(s) => humantime::parse_duration(s)
            .with_context(|| format!("`{key}` = \"{s}\" is not a duration like \"10m\"")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_match_the_longest_prefix_and_config_wins() {
        let mut c = Config::default();
        assert_eq!(c.price("claude-sonnet-4-5-20250929").unwrap().output, 15.0);
        assert!(c.price("gpt-x").is_none());
        c.prices.insert(
            "claude-sonnet-4-5".into(),
            Price {
                input: 1.0,
                output: 2.0,
                ..Price::default()
            },
        );
        assert_eq!(c.price("claude-sonnet-4-5-20250929").unwrap().output, 2.0);
        let u = crate::agent::Usage {
            input_tokens: 1_000_000,
            output_tokens: 500_000,
            ..Default::default()
        };
        assert_eq!(c.price("claude-sonnet-4-5").unwrap().cost(&u), 2.0);
    }

    #[test]
    fn project_overrides_personal_and_sources_are_kept() {
        let mut merged = toml::Table::new();
        let mut sources = BTreeMap::new();
        merge(
            &mut merged,
            toml::from_str("backend = 'claude'\n[claude]\nmax_turns = 5\n").unwrap(),
            "",
            "home",
            &mut sources,
        );
        merge(
            &mut merged,
            toml::from_str("[claude]\npermission_mode = 'acceptEdits'\n").unwrap(),
            "",
            "project",
            &mut sources,
        );
        let c: Config = toml::Value::Table(merged).try_into().unwrap();
        assert_eq!(c.claude.max_turns, Some(5));
        assert_eq!(c.claude.permission_mode.as_deref(), Some("acceptEdits"));
        assert_eq!(sources["claude.max_turns"], "home");
        assert_eq!(sources["claude.permission_mode"], "project");
    }
}
