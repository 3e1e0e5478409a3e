//! `wfhost plan`: what a run would cost, before it runs. The script runs in the sandbox as
//! usual, but every agent is answered at once by a synthesized answer — the mock model's: an
//! object built from its schema, placeholder text otherwise — so the script takes the same
//! branches a mock run takes, and each agent's request (prompt, model, phase, schema) is
//! recorded. From those: agents per phase, models, estimated tokens and cost.
//!
//! The estimate (docs/plan.md):
//! - input tokens: the prompt's characters ÷ 4, plus the framing every backend adds
//!   (`FRAMING_TOKENS`); the real count depends on the tokenizer, and agents with tools read
//!   much more than their prompt (files, tool results) — a `claude` agent's input is a floor;
//! - output tokens: a range, `OUTPUT_TEXT` for text agents and `OUTPUT_SCHEMA` for schema ones;
//! - cost: the price table (`[prices]`, built-ins) × those tokens, low and high.

use crate::agent::{AgentRequest, Usage};
use crate::backend::{AgentError, AgentReply, Backend, mock::Mock};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// How many distinct prompts `plan` sends to the count-tokens endpoint at most. Why 200: the
/// endpoint is free but rate limited (from 100 requests a minute); the rest are estimated.
const MAX_COUNTED: usize = 200;

/// Tokens of the framing (system prompt) every backend adds to an agent's prompt.
pub const FRAMING_TOKENS: u64 = 120;
/// Output tokens of a text agent: (low, high). Why: a short answer to a focused question is a
/// few hundred tokens; a report or a patch runs to a couple of thousand.
pub(crate) const OUTPUT_TEXT: (u64, u64) = (150, 2000);
/// Output tokens of a schema agent: (low, high). Structured answers are short.
pub(crate) const OUTPUT_SCHEMA: (u64, u64) = (40, 600);
/// The reference's size guideline: small / medium / large runs of 5 / 10 / 50 agents. A plan
/// above `large` warns before the run.
pub(crate) const SIZE_LARGE: usize = 50;

/// What a plan keeps of each agent it was asked: sizes and hashes, never the prompt. A plan
/// (and the approval preview, its twin) runs before anyone said yes: 60 prompts of 8 MiB must
/// not take a gigabyte of the host's memory.
#[derive(Debug, Clone)]
pub(crate) struct Asked {
    pub phase: Option<String>,
    pub model: Option<String>,
    pub schema: bool,
    /// The prompt's length, in characters.
    pub chars: u64,
    /// blake3 of the prompt: which agents are sent the same prompt.
    prompt: blake3::Hash,
    /// blake3 of prompt, model and schema: which agents' input is counted once.
    request: blake3::Hash,
    /// The prompt's first 60 characters, for a warning that names it.
    head: String,
    /// The `parallel()` that started it.
    parallel: Option<u64>,
    /// Earlier agents (each of a `parallel()`) whose answer is in this prompt (at most
    /// `MAX_FEEDERS`).
    fed_by: Vec<usize>,
}

/// Why 1 KiB: the barrier check looks for an agent's answer inside later prompts; a
/// synthesized answer is a short text or a small object, and longer ones are not looked for.
const MAX_FED_ANSWER: usize = 1 << 10;
/// Why 8 bytes: shorter answers would be found inside prompts by accident.
const MIN_FED_ANSWER: usize = 8;
/// Why 64: a prompt built from more earlier answers than this is a reduce, not one step of a
/// pipeline; the check needs to know only that it is fed by more than one.
const MAX_FEEDERS: usize = 64;
/// Why 64 MiB: the answer index is rebuilt when answers arrive between prompts; this bounds
/// the work of every rebuild together (a script that alternates them cannot make the check
/// quadratic), after which later answers are not looked for.
const MAX_INDEX_WORK: usize = 64 << 20;

/// The answers of agents started by a `parallel()`, and an Aho–Corasick automaton over them:
/// each later prompt is scanned once for all of them (linear in the prompt, whatever the
/// number of answers), instead of once per answer.
#[derive(Default)]
struct AnswerIndex {
    answers: Vec<String>,
    /// The agent each answer is of.
    agents: Vec<usize>,
    automaton: Option<aho_corasick::AhoCorasick>,
    /// How many answers the automaton holds.
    built: usize,
    work: usize,
}

impl AnswerIndex {
    fn add(&mut self, agent: usize, answer: String) {
        if (MIN_FED_ANSWER..=MAX_FED_ANSWER).contains(&answer.len()) {
            self.answers.push(answer);
            self.agents.push(agent);
        }
    }

    /// The agents whose answer `prompt` contains.
    fn fed_by(&mut self, prompt: &str) -> Vec<usize> {
        if self.built < self.answers.len() {
            let cost: usize = self.answers.iter().map(String::len).sum();
            if self.work + cost <= MAX_INDEX_WORK {
                self.work += cost;
                self.automaton = aho_corasick::AhoCorasick::new(&self.answers).ok();
                self.built = self.answers.len();
            }
        }
        let Some(ac) = &self.automaton else {
            return Vec::new();
        };
        let mut found: Vec<usize> = Vec::new();
        for m in ac.find_overlapping_iter(prompt) {
            let agent = self.agents[m.pattern().as_usize()];
            if !found.contains(&agent) {
                found.push(agent);
                if found.len() > MAX_FEEDERS {
                    break;
                }
            }
        }
        found
    }
}

#[derive(Default)]
struct Record {
    asked: Vec<Asked>,
    answers: AnswerIndex,
    /// Input tokens the count-tokens endpoint counted, by request hash (`None`: being
    /// counted, or the count failed).
    counted: std::collections::HashMap<blake3::Hash, Option<u64>>,
}

/// The backend of a plan: the mock model, recording what it needs of every request.
pub(crate) struct Planner {
    inner: Mock,
    model: Option<String>,
    /// Counts each distinct request's input with the Messages API (`wfhost plan` on `messages`).
    counter: Option<Arc<crate::backend::messages::Messages>>,
    record: Mutex<Record>,
}

impl Planner {
    pub(crate) fn new(
        model: Option<String>,
        counter: Option<Arc<crate::backend::messages::Messages>>,
    ) -> Planner {
        Planner {
            inner: Mock::default(),
            model,
            counter,
            record: Mutex::new(Record::default()),
        }
    }

    /// Counts `request`'s input once per distinct request, up to `MAX_COUNTED`.
    async fn count(&self, request: &AgentRequest, key: blake3::Hash) {
        let Some(m) = &self.counter else { return };
        {
            let Ok(mut r) = self.record.lock() else {
                return;
            };
            if r.counted.len() >= MAX_COUNTED || r.counted.contains_key(&key) {
                return;
            }
            r.counted.insert(key, None);
        }
        let n = m.count_tokens(request).await.ok();
        if let Ok(mut r) = self.record.lock() {
            r.counted.insert(key, n);
        }
    }

    /// What was asked, and each agent's counted input (`None`: estimated).
    fn take(&self) -> (Vec<Asked>, Vec<Option<u64>>) {
        let Ok(mut r) = self.record.lock() else {
            return (Vec::new(), Vec::new());
        };
        let asked = std::mem::take(&mut r.asked);
        let counted = asked
            .iter()
            .map(|a| r.counted.get(&a.request).copied().flatten())
            .collect();
        (asked, counted)
    }
}

#[async_trait::async_trait]
impl Backend for Planner {
    fn name(&self) -> &str {
        "plan"
    }
    fn identity(&self) -> String {
        "plan".into()
    }
    /// A plan checks that isolated agents could get worktrees, and makes none.
    fn place(&self) -> crate::backend::worktree::Place {
        crate::backend::worktree::Place::Nowhere
    }
    async fn run(
        &self,
        request: &AgentRequest,
        feedback: Option<&str>,
    ) -> Result<AgentReply, AgentError> {
        // Instant: a plan never waits for the mock's `[delay=]`.
        let mut quick = request.clone();
        quick.prompt = quick.prompt.replace("[delay=", "[was-delay=");
        let mut reply = self.inner.run(&quick, feedback).await?;
        drop(quick);
        reply.usage = Usage::default();
        if feedback.is_some() {
            return Ok(reply);
        }
        let prompt = blake3::hash(request.prompt.as_bytes());
        let mut h = blake3::Hasher::new();
        h.update(prompt.as_bytes());
        h.update(request.model.as_deref().unwrap_or("").as_bytes());
        h.update(b"\0");
        if let Some(schema) = &request.schema {
            h.update(crate::journal::canonical_json(schema).as_bytes());
        }
        let key = h.finalize();
        self.count(request, key).await;
        let parallel = request
            .group
            .as_ref()
            .filter(|g| g["kind"] == "parallel")
            .and_then(|g| g["id"].as_u64());
        if let Ok(mut r) = self.record.lock() {
            let fed_by = match parallel {
                Some(_) => r.answers.fed_by(&request.prompt),
                None => Vec::new(),
            };
            let me = r.asked.len();
            r.asked.push(Asked {
                phase: request.phase.clone(),
                model: request.model.clone(),
                schema: request.schema.is_some(),
                chars: request.prompt.chars().count() as u64,
                prompt,
                request: key,
                head: request.prompt.chars().take(60).collect(),
                parallel,
                fed_by,
            });
            if parallel.is_some() {
                let answer = reply
                    .structured
                    .as_ref()
                    .map_or_else(|| reply.text.clone(), ToString::to_string);
                r.answers.add(me, answer);
            }
        }
        Ok(reply)
    }
    fn default_model(&self) -> Option<String> {
        self.model.clone()
    }
}

/// One phase of the plan (or the whole run).
#[derive(Debug, Clone, Default, Serialize, schemars::JsonSchema)]
pub(crate) struct Projection {
    pub agents: usize,
    pub input_tokens: u64,
    pub output_tokens_low: u64,
    pub output_tokens_high: u64,
    /// USD, when every agent's model has a price.
    pub cost_low: Option<f64>,
    pub cost_high: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Plan {
    pub name: String,
    pub total: Projection,
    pub phases: BTreeMap<String, Projection>,
    /// Agents by model (`(default)` when neither the agent nor the backend names one).
    pub models: BTreeMap<String, usize>,
    pub warnings: Vec<String>,
    /// The script stopped at the agent cap: a loop may not converge.
    pub hit_cap: bool,
    /// Agents whose input was counted by the Messages API's count-tokens endpoint (the rest
    /// are estimated: characters ÷ 4 plus the framing).
    pub input_counted: usize,
    /// The tools API agents would get (`messages`): names, workspace, rails (tools::describe).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<serde_json::Value>,
    /// The agents would go through the Message Batches API (`--batch`): costs at its price.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub batch: bool,
}

/// Projects the recorded requests.
pub(crate) fn project(
    name: &str,
    asked: &[Asked],
    default_model: Option<&str>,
    config: &crate::config::Config,
    cap_hit: bool,
    cap: u32,
    counted: &[Option<u64>],
) -> Plan {
    let mut total = Projection::default();
    let mut phases: BTreeMap<String, Projection> = BTreeMap::new();
    let mut models: BTreeMap<String, usize> = BTreeMap::new();
    // Prompt hash → (how many, the first agent sent it).
    let mut same: std::collections::HashMap<blake3::Hash, (usize, usize)> =
        std::collections::HashMap::new();
    let mut priced = true;
    for (i, r) in asked.iter().enumerate() {
        let input = counted
            .get(i)
            .copied()
            .flatten()
            .unwrap_or_else(|| r.chars.div_ceil(4) + FRAMING_TOKENS);
        let (lo, hi) = if r.schema { OUTPUT_SCHEMA } else { OUTPUT_TEXT };
        let model = r.model.as_deref().or(default_model);
        *models
            .entry(model.unwrap_or("(default)").to_string())
            .or_default() += 1;
        same.entry(r.prompt).or_insert((0, i)).0 += 1;
        let price = model.and_then(|m| config.price(m));
        priced &= price.is_some();
        let cost = |out: u64| {
            price.map(|p| {
                p.cost(&Usage {
                    input_tokens: input,
                    output_tokens: out,
                    ..Usage::default()
                })
            })
        };
        for p in [
            &mut total,
            phases
                .entry(r.phase.clone().unwrap_or_else(|| "(no phase)".into()))
                .or_default(),
        ] {
            p.agents += 1;
            p.input_tokens += input;
            p.output_tokens_low += lo;
            p.output_tokens_high += hi;
            p.cost_low = Some(p.cost_low.unwrap_or(0.0) + cost(lo).unwrap_or(0.0));
            p.cost_high = Some(p.cost_high.unwrap_or(0.0) + cost(hi).unwrap_or(0.0));
        }
    }
    if !priced {
        for p in std::iter::once(&mut total).chain(phases.values_mut()) {
            p.cost_low = None;
            p.cost_high = None;
        }
    }
    let mut warnings = Vec::new();
    if cap_hit {
        warnings.push(format!(
            "the plan stopped at the agent cap ({cap}): a loop in the script may never converge (with real answers it may stop sooner, or not at all)"
        ));
    }
    let large = config.size_guideline.unwrap_or(SIZE_LARGE);
    if total.agents > large {
        warnings.push(format!(
            "{} agents is more than the size guideline of {large} (the reference's: small 5, medium 10, large 50; `size_guideline` in wfhost.toml): check the fan-out is intended",
            total.agents
        ));
    }
    let mut repeated: Vec<(usize, usize)> = same.into_values().filter(|(n, _)| *n >= 3).collect();
    repeated.sort_by_key(|(_, first)| *first);
    for (n, first) in repeated {
        let head = &asked[first].head;
        warnings.push(format!(
            "the same prompt is sent {n} times (\"{head}…\"): with no difference between them, every answer after the first may be wasted"
        ));
    }
    if !priced {
        warnings.push(
            "some agents' models have no price ([prices] in wfhost.toml): no cost is projected"
                .into(),
        );
    }
    Plan {
        name: name.to_string(),
        total,
        phases,
        models,
        warnings,
        hit_cap: cap_hit,
        input_counted: counted.iter().flatten().count(),
        tools: None,
        batch: false,
    }
}

impl Plan {
    /// The plan as a person reads it.
    pub(crate) fn render(&self) -> String {
        let cost = |p: &Projection| match (p.cost_low, p.cost_high) {
            (Some(lo), Some(hi)) => format!("${lo:.2}–${hi:.2}"),
            _ => "—".into(),
        };
        let mut out = format!(
            "plan for {}: {} agents · ~{} input tokens · {}–{} output tokens · {}\n\n",
            crate::sanitize::line(&self.name),
            self.total.agents,
            self.total.input_tokens,
            self.total.output_tokens_low,
            self.total.output_tokens_high,
            cost(&self.total)
        );
        out.push_str(&format!(
            "{:<28} {:>7} {:>12} {:>18} {:>16}\n",
            "phase", "agents", "input", "output", "cost"
        ));
        for (name, p) in &self.phases {
            out.push_str(&format!(
                "{:<28} {:>7} {:>12} {:>18} {:>16}\n",
                crate::sanitize::line(name)
                    .chars()
                    .take(28)
                    .collect::<String>(),
                p.agents,
                p.input_tokens,
                format!("{}–{}", p.output_tokens_low, p.output_tokens_high),
                cost(p)
            ));
        }
        out.push_str("\nmodels: ");
        out.push_str(
            &self
                .models
                .iter()
                .map(|(m, n)| format!("{} × {n}", crate::sanitize::line(m)))
                .collect::<Vec<_>>()
                .join(", "),
        );
        out.push('\n');
        out.push_str(&if self.input_counted > 0 {
            format!(
                "input: counted by the Messages API for {} of {} agents\n",
                self.input_counted, self.total.agents
            )
        } else {
            "input: estimated from prompt sizes (characters ÷ 4, plus the framing)\n".to_string()
        });
        if let Some(t) = &self.tools {
            let names = crate::tools::allowed_in(t);
            out.push_str(&if names.is_empty() {
                "tools: none (each agent is one model call)\n".to_string()
            } else {
                format!(
                    "tools: {} in {} (at most {} turns per agent); tool results are input on top of this projection\n",
                    names.join(", "),
                    crate::sanitize::line(t["workspace"].as_str().unwrap_or("")),
                    t["max_turns"]
                )
            });
        }
        for w in &self.warnings {
            out.push_str(&format!("warning: {}\n", crate::sanitize::line(w)));
        }
        out
    }
}

/// What a dry run needs: the script and everything a run of it would get.
pub(crate) struct DryRun {
    pub script: crate::script::Script,
    pub args: Option<serde_json::Value>,
    pub config: Arc<crate::config::Config>,
    pub limits: crate::limits::Limits,
    pub cwd: std::path::PathBuf,
    pub no_cache: bool,
    /// The chosen backend's default model, when the caller knows the backend.
    pub backend_model: Option<Option<String>>,
    /// Counts input with the Messages API (`wfhost plan` on `messages`).
    pub counter: Option<Arc<crate::backend::messages::Messages>>,
}

/// Runs the script on synthesized answers and projects what it asked (the whole of `wfhost
/// plan` but the printing; also what the approval prompt shows).
pub(crate) async fn dry_run(d: DryRun) -> anyhow::Result<Plan> {
    let DryRun {
        script,
        args,
        config,
        limits,
        cwd,
        no_cache,
        backend_model,
        counter,
    } = d;
    let name = script.meta.name.clone();
    let cap = limits.max_agents;
    // The model agents would get: the chosen backend's default (when the caller knows the
    // backend), else the configuration's, else the default backend's.
    let model = backend_model.unwrap_or_else(|| {
        config.model.clone().or_else(|| {
            crate::backend::select(None, &config)
                .ok()
                .and_then(|b| b.default_model())
        })
    });
    let planner = Arc::new(Planner::new(model.clone(), counter.clone()));
    let cache = crate::compile::Cache::new(no_cache);
    let sandbox = crate::sandbox::Sandbox::new(limits.clone(), &cache)?;
    let opts = crate::run::RunOptions {
        args,
        budget_tokens: None,
        limits,
        backend: planner.clone(),
        cwd: cwd.clone(),
        events: crate::events::Events::none(),
        journal: None,
        config: config.clone(),
        recorder: None,
        max_cost: None,
        ceilings_note: None,
        raised: None,
        control: crate::control::Control::new("plan", None, None, cwd),
        wait_on_limit: false,
    };
    let report = crate::run::execute(
        &sandbox,
        &cache,
        crate::run::Target::Script(script),
        opts,
        crate::run::new_run_id(),
    )
    .await?;
    let (asked, counted) = planner.take();
    let hit_cap = report.agents >= cap;
    let mut plan = project(
        &name,
        &asked,
        model.as_deref(),
        &config,
        hit_cap,
        cap,
        &counted,
    );
    if counter.is_some() && plan.input_counted < asked.len() {
        plan.warnings.push(format!(
            "{} of {} agents' input was counted by the Messages API; the rest is estimated (characters ÷ 4)",
            plan.input_counted,
            asked.len()
        ));
    }
    plan.warnings.extend(barriers(&asked));
    if let Some(error) = report.error.filter(|_| !hit_cap) {
        plan.warnings.push(format!(
            "the script failed on synthesized answers, so the plan may be short: {}",
            error.lines().next().unwrap_or_default()
        ));
    }
    Ok(plan)
}

/// Barriers that could be pipelines: a `parallel()` whose agents each feed exactly one agent of
/// a later `parallel()` (its answer appears in that agent's prompt, and in no other's). The
/// second fan-out waits for the slowest of the first, where `pipeline(items, a, b)` would start
/// each second step as soon as its own first step is done.
///
/// Linear in the agents: each later `parallel()` is checked only against the groups that fed
/// its first agent, from what each agent recorded of the answers in its prompt.
pub(crate) fn barriers(asked: &[Asked]) -> Vec<String> {
    // parallel() id → the indices of its agents, in the order they were asked.
    let mut groups: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for (i, r) in asked.iter().enumerate() {
        if let Some(id) = r.parallel {
            groups.entry(id).or_default().push(i);
        }
    }
    let mut warnings = Vec::new();
    let mut reported: std::collections::HashSet<u64> = std::collections::HashSet::new();
    for (second, b) in &groups {
        // The earlier groups that fed B's first agent: the only candidates.
        let mut candidates: Vec<u64> = asked[b[0]]
            .fed_by
            .iter()
            .filter_map(|f| asked[*f].parallel)
            .filter(|g| g < second && !reported.contains(g))
            .collect();
        candidates.dedup();
        for first in candidates {
            let a = &groups[&first];
            if a.len() < 2 || a.len() != b.len() {
                continue;
            }
            let mut fed = std::collections::HashSet::new();
            let one_to_one = b.iter().all(|j| {
                let mut feeding = asked[*j]
                    .fed_by
                    .iter()
                    .filter(|f| asked[**f].parallel == Some(first));
                match (feeding.next(), feeding.next()) {
                    (Some(k), None) => fed.insert(*k),
                    _ => false,
                }
            });
            if one_to_one {
                let phase = |i: usize| {
                    asked[i]
                        .phase
                        .clone()
                        .map(|p| format!(" (phase \"{p}\")"))
                        .unwrap_or_default()
                };
                warnings.push(format!(
                    "a barrier that could be a pipeline: {} agents{} each feed one agent of a later parallel(){}, which waits for the slowest of them; `pipeline(items, first, second)` starts each second step as soon as its own first step is done",
                    a.len(),
                    phase(a[0]),
                    phase(b[0]),
                ));
                reported.insert(first);
                break;
            }
        }
    }
    warnings
}

impl Plan {
    /// `--batch`: every cost at the Message Batches price (backend::batch::DISCOUNT).
    fn at_batch_price(&mut self) {
        self.batch = true;
        let d = crate::backend::batch::DISCOUNT;
        for p in std::iter::once(&mut self.total).chain(self.phases.values_mut()) {
            p.cost_low = p.cost_low.map(|c| c * d);
            p.cost_high = p.cost_high.map(|c| c * d);
        }
    }

    /// One line for the approval prompt: agents, models, tokens, cost.
    pub(crate) fn headline(&self) -> String {
        let cost = match (self.total.cost_low, self.total.cost_high) {
            (Some(lo), Some(hi)) if self.batch => format!(" · ${lo:.2}–${hi:.2} (batch price)"),
            (Some(lo), Some(hi)) => format!(" · ${lo:.2}–${hi:.2}"),
            _ => String::new(),
        };
        format!(
            "projected: {} agents ({}) · ~{} input tokens · {}–{} output tokens{cost}",
            self.total.agents,
            self.models
                .iter()
                .map(|(m, n)| format!("{} × {n}", crate::sanitize::line(m)))
                .collect::<Vec<_>>()
                .join(", "),
            self.total.input_tokens,
            self.total.output_tokens_low,
            self.total.output_tokens_high
        )
    }
}

/// What `wfhost plan` and MCP's `workflow_plan` project: the script, its args, and the backend
/// the run would use (`None`: the configured one).
pub(crate) struct Planned {
    pub script: crate::script::Script,
    pub args: Option<serde_json::Value>,
    pub config: Arc<crate::config::Config>,
    pub cwd: std::path::PathBuf,
    pub backend: Option<String>,
    pub limits: crate::limits::Limits,
    pub no_cache: bool,
}

/// The plan of a run on `backend`: its model (input counted by the Messages API on
/// `messages`), the tools in force, and what the projection cannot know said as warnings.
pub(crate) async fn on_backend(p: Planned) -> anyhow::Result<Plan> {
    let Planned {
        script,
        args,
        config,
        cwd,
        backend,
        limits,
        no_cache,
    } = p;
    // Input tokens counted by the Messages API when that is the backend the run would use.
    let (model, counter) = match backend.as_deref() {
        Some("messages") => {
            let m = Arc::new(crate::backend::messages::Messages::new(&config)?);
            (
                Some(crate::backend::Backend::default_model(m.as_ref())),
                Some(m),
            )
        }
        // Nothing runs, so the `claude` binary need not be here: its agents use the configured
        // model, or Claude Code's own default, projected at the default model's price.
        Some("claude") => (Some(Some(config.model().to_string())), None),
        Some(name) => (
            Some(crate::backend::select(Some(name), &config)?.default_model()),
            None,
        ),
        None => (None, None),
    };
    let claude_default = (backend.as_deref() == Some("claude") && config.model.is_none())
        .then(|| config.model().to_string());
    let mut plan = dry_run(DryRun {
        script,
        args,
        config: config.clone(),
        limits,
        cwd,
        no_cache,
        backend_model: model,
        counter,
    })
    .await?;
    if backend.as_deref() == Some("messages") {
        plan.tools = Some(crate::tools::describe(&config.tools)?);
        if config.messages.batch.unwrap_or(false) {
            plan.at_batch_price();
        }
    }
    if let Some(model) = claude_default {
        plan.warnings.push(format!(
            "`claude` agents use Claude Code's default model, which this plan cannot know: projected at `{model}`'s price (set `model` in wfhost.toml for another); their input is estimated and is a floor (files and tool results come on top)"
        ));
    }
    Ok(plan)
}
