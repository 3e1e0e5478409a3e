//! The run as a picture: the execution trace of a run, built from its journal, drawn as
//! Mermaid, Graphviz DOT or one self-contained HTML page.
//!
//! The trace is a DAG by construction: every edge goes from an agent to one that started
//! later. Agents are nodes (label, state, tokens, duration) grouped by phase; edges are
//! - `seq`: one agent after another;
//! - `fork` / `join`: into and out of a `parallel()` (or a `pipeline()`'s first and last stages);
//! - `stage`: from one pipeline stage to the next for the same item;
//! - `data`: an agent whose prompt contains an earlier agent's answer.

use crate::agent::AgentState;
use crate::journal::{History, Transcripts};
use crate::run_dir::RunDir;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Node {
    pub id: usize,
    pub label: String,
    pub phase: Option<String>,
    pub state: AgentState,
    pub output_tokens: u64,
    pub duration_ms: Option<u64>,
    pub cost_usd: f64,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum EdgeKind {
    Seq,
    Fork,
    Join,
    Stage,
    Data,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Edge {
    pub from: usize,
    pub to: usize,
    pub kind: EdgeKind,
}

#[derive(Debug, Default, Serialize)]
pub(crate) struct Trace {
    pub run_id: String,
    pub name: String,
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
    /// Ceilings operators raised on resumes (who, when, old → new).
    pub raises: Vec<crate::limits::Raised>,
}

impl Trace {
    /// One line per raise: `ceilings raised at … by …: max_cost 0.005 → 0.05`.
    fn raise_lines(&self) -> Vec<String> {
        self.raises
            .iter()
            .map(|r| format!("ceilings raised {} by {}: {}", r.at, r.by, r.describe()))
            .collect()
    }
}

struct Group {
    id: u64,
    pipeline: bool,
    base: Vec<usize>,
    /// (node, item, stage)
    members: Vec<(usize, u64, u64)>,
}

impl Group {
    fn leaves(&self) -> Vec<usize> {
        if !self.pipeline {
            return self.members.iter().map(|m| m.0).collect();
        }
        let mut last: BTreeMap<u64, (u64, usize)> = BTreeMap::new();
        for &(node, item, stage) in &self.members {
            let e = last.entry(item).or_insert((stage, node));
            if stage >= e.0 {
                *e = (stage, node);
            }
        }
        last.values().map(|(_, n)| *n).collect()
    }
}

/// Builds the trace of the last attempt of a run (a resume's trace includes what it served
/// from the journal, marked `cached`): a node per agent, the structure edges as they start,
/// then the data edges.
pub(crate) fn build(run: &RunDir, history: &History) -> Trace {
    let mut trace = Trace {
        run_id: run.id().to_string(),
        name: history.name.clone(),
        raises: history.raises.clone(),
        ..Trace::default()
    };
    let transcripts = Transcripts::load(run);
    let mut prompts: Vec<String> = Vec::new();
    let mut answers: Vec<Option<String>> = Vec::new();
    let mut structure = Structure::default();
    for start in &history.last_attempt {
        let call = &history.calls[start.call];
        let id = trace.nodes.len();
        trace.nodes.push(node(id, call, start.cached, &transcripts));
        prompts.push(
            transcripts
                .prompt(&call.key, call.occurrence)
                .unwrap_or_default(),
        );
        answers.push(call.value.clone().map(|v| match v {
            Value::String(s) => s,
            other => other.to_string(),
        }));
        structure.place(id, start.group.as_ref().filter(|g| g.is_object()));
    }
    trace.edges = structure.edges;
    data_edges(&prompts, &answers, &mut trace.edges);
    trace
}

/// An agent's node: its state in this attempt, and tokens and cost only once it answered.
fn node(id: usize, call: &crate::journal::Call, cached: bool, transcripts: &Transcripts) -> Node {
    let state = match (cached, call.answered, &call.error) {
        (true, _, _) => AgentState::Cached,
        (false, true, _) => AgentState::Done,
        (false, false, Some(_)) => AgentState::Failed,
        (false, false, None) => AgentState::Running,
    };
    let answered = call.answered;
    Node {
        id,
        label: call.label.clone(),
        phase: call.phase.clone(),
        state,
        output_tokens: if answered {
            call.usage.output_tokens
        } else {
            0
        },
        duration_ms: transcripts.duration_ms(&call.key, call.occurrence),
        cost_usd: if answered { call.cost_usd } else { 0.0 },
    }
}

/// The structure edges as agents start: a sequence, forks into and joins out of a
/// `parallel()` or `pipeline()` group, stages of one pipeline item.
#[derive(Default)]
struct Structure {
    /// The nodes the next agent outside a group follows.
    frontier: Vec<usize>,
    /// The group agents are starting in.
    open: Option<Group>,
    edges: Vec<Edge>,
}

impl Structure {
    /// Places node `id`, started in `group` (the journal's `{id, kind, index | item, stage}`).
    fn place(&mut self, id: usize, g: Option<&Value>) {
        let same = matches!((&self.open, g), (Some(o), Some(g)) if g["id"].as_u64() == Some(o.id));
        if !same {
            if let Some(o) = self.open.take() {
                self.frontier = o.leaves();
            }
            if let Some(g) = g {
                self.open = Some(Group {
                    id: g["id"].as_u64().unwrap_or(0),
                    pipeline: g["kind"] == "pipeline",
                    base: self.frontier.clone(),
                    members: Vec::new(),
                });
            }
        }
        match (&mut self.open, g) {
            (Some(o), Some(g)) => {
                let (item, stage) = if o.pipeline {
                    (
                        g["item"].as_u64().unwrap_or(0),
                        g["stage"].as_u64().unwrap_or(0),
                    )
                } else {
                    (g["index"].as_u64().unwrap_or(0), 0)
                };
                let previous_stage = o
                    .members
                    .iter()
                    .filter(|m| m.1 == item && m.2 < stage)
                    .max_by_key(|m| m.2)
                    .map(|m| m.0);
                match previous_stage {
                    Some(p) if o.pipeline => self.edges.push(Edge {
                        from: p,
                        to: id,
                        kind: EdgeKind::Stage,
                    }),
                    _ => self.edges.extend(o.base.iter().map(|&b| Edge {
                        from: b,
                        to: id,
                        kind: EdgeKind::Fork,
                    })),
                }
                o.members.push((id, item, stage));
            }
            _ => {
                let kind = if self.frontier.len() > 1 {
                    EdgeKind::Join
                } else {
                    EdgeKind::Seq
                };
                self.edges.extend(self.frontier.iter().map(|&f| Edge {
                    from: f,
                    to: id,
                    kind,
                }));
                self.frontier = vec![id];
            }
        }
    }
}

/// Data flow: a prompt that contains an earlier agent's answer (of 8 characters or more, so
/// that "yes" or "42" do not link everything).
fn data_edges(prompts: &[String], answers: &[Option<String>], edges: &mut Vec<Edge>) {
    for (to, prompt) in prompts.iter().enumerate() {
        for (from, answer) in answers.iter().enumerate().take(to) {
            if let Some(a) = answer
                && a.len() >= 8
                && prompt.contains(a.as_str())
                && !edges.iter().any(|e| e.from == from && e.to == to)
            {
                edges.push(Edge {
                    from,
                    to,
                    kind: EdgeKind::Data,
                });
            }
        }
    }
}

/// A label for the text formats: one line, no quotes or brackets, controls made visible.
fn short(s: &str, n: usize) -> String {
    let one = crate::sanitize::line(&s.replace(['\n', '"', '<', '>'], " ")).into_owned();
    if one.chars().count() > n {
        format!("{}…", one.chars().take(n - 1).collect::<String>())
    } else {
        one
    }
}

fn detail(n: &Node) -> String {
    let mut d = format!("{} · {} tok", n.state, n.output_tokens);
    if let Some(ms) = n.duration_ms {
        let _ = write!(d, " · {:.1}s", ms as f64 / 1000.0);
    }
    d
}

/// Phases in order of first appearance, with their nodes.
fn phases(t: &Trace) -> Vec<(Option<String>, Vec<&Node>)> {
    let mut out: Vec<(Option<String>, Vec<&Node>)> = Vec::new();
    for n in &t.nodes {
        match out.iter_mut().find(|(p, _)| *p == n.phase) {
            Some((_, v)) => v.push(n),
            None => out.push((n.phase.clone(), vec![n])),
        }
    }
    out
}

pub(crate) fn mermaid(t: &Trace) -> String {
    let mut s = String::from("flowchart TD\n");
    for line in t.raise_lines() {
        let _ = writeln!(s, "  %% {}", short(&line, 200));
    }
    for (i, (phase, nodes)) in phases(t).iter().enumerate() {
        let indent = if phase.is_some() { "    " } else { "  " };
        if let Some(p) = phase {
            let _ = writeln!(s, "  subgraph phase{i}[\"{}\"]", short(p, 60));
        }
        for n in nodes {
            let _ = writeln!(
                s,
                "{indent}n{}[\"{}<br/>{}\"]:::{}",
                n.id,
                short(&n.label, 48),
                detail(n),
                n.state
            );
        }
        if phase.is_some() {
            s.push_str("  end\n");
        }
    }
    for e in &t.edges {
        let arrow = if e.kind == EdgeKind::Data {
            "-. data .->"
        } else {
            "-->"
        };
        let _ = writeln!(s, "  n{} {arrow} n{}", e.from, e.to);
    }
    s.push_str(
        "  classDef done fill:#e6f4ea,stroke:#1e8e3e\n  classDef cached fill:#e8f0fe,stroke:#1a73e8\n  classDef failed fill:#fce8e6,stroke:#d93025\n  classDef running fill:#fef7e0,stroke:#f9ab00\n",
    );
    s
}

pub(crate) fn dot(t: &Trace) -> String {
    let mut s = format!(
        "digraph \"{}\" {{\n  rankdir=TB;\n  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\"];\n",
        short(&t.name, 60)
    );
    for line in t.raise_lines() {
        let _ = writeln!(s, "  // {}", short(&line, 200));
    }
    let fill = |state: AgentState| match state {
        AgentState::Done => "#e6f4ea",
        AgentState::Cached => "#e8f0fe",
        AgentState::Failed => "#fce8e6",
        AgentState::Running | AgentState::Queued => "#fef7e0",
    };
    for (i, (phase, nodes)) in phases(t).iter().enumerate() {
        if let Some(p) = phase {
            let _ = writeln!(
                s,
                "  subgraph cluster_{i} {{\n    label=\"{}\";",
                short(p, 60)
            );
        }
        for n in nodes {
            let _ = writeln!(
                s,
                "    n{} [label=\"{}\\n{}\", fillcolor=\"{}\"];",
                n.id,
                short(&n.label, 48),
                detail(n),
                fill(n.state)
            );
        }
        if phase.is_some() {
            s.push_str("  }\n");
        }
    }
    for e in &t.edges {
        let style = if e.kind == EdgeKind::Data {
            " [style=dashed, label=\"data\"]"
        } else {
            ""
        };
        let _ = writeln!(s, "  n{} -> n{}{style};", e.from, e.to);
    }
    s.push_str("}\n");
    s
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One self-contained page: an SVG laid out in ranks (longest path from the first agent), the
/// phases as labelled bands, and a table of every agent. No scripts, no external resources.
pub(crate) fn html(t: &Trace) -> String {
    const W: f64 = 210.0;
    const H: f64 = 54.0;
    const GX: f64 = 30.0;
    const GY: f64 = 46.0;
    // Edges go forward in start order, so one pass in that order computes longest paths.
    let mut rank = vec![0usize; t.nodes.len()];
    let mut by_target: Vec<Vec<usize>> = vec![Vec::new(); t.nodes.len()];
    for e in &t.edges {
        by_target[e.to].push(e.from);
    }
    for i in 0..t.nodes.len() {
        rank[i] = by_target[i].iter().map(|&f| rank[f] + 1).max().unwrap_or(0);
    }
    let ranks = rank.iter().copied().max().map_or(0, |r| r + 1);
    let mut column = vec![0usize; t.nodes.len()];
    let mut per_rank = vec![0usize; ranks];
    for i in 0..t.nodes.len() {
        column[i] = per_rank[rank[i]];
        per_rank[rank[i]] += 1;
    }
    let widest = per_rank.iter().copied().max().unwrap_or(1).max(1);
    let left = 140.0;
    let width = left + widest as f64 * (W + GX) + GX;
    let height = ranks as f64 * (H + GY) + GY;
    let pos = |i: usize| {
        let offset = (widest - per_rank[rank[i]]) as f64 * (W + GX) / 2.0;
        (
            left + offset + column[i] as f64 * (W + GX),
            GY / 2.0 + rank[i] as f64 * (H + GY),
        )
    };
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"execution trace\">\n<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#5f6368\"/></marker></defs>\n"
    );
    for (phase, nodes) in phases(t) {
        let Some(p) = phase else { continue };
        let ys: Vec<f64> = nodes.iter().map(|n| pos(n.id).1).collect();
        let (top, bottom) = (
            ys.iter().cloned().fold(f64::MAX, f64::min),
            ys.iter().cloned().fold(f64::MIN, f64::max),
        );
        let _ = writeln!(
            svg,
            "<g class=\"phase\"><rect x=\"6\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"10\" fill=\"#f8f9fa\" stroke=\"#dadce0\"/><text x=\"16\" y=\"{}\" class=\"phase-title\">{}</text></g>",
            top - 12.0,
            width - 12.0,
            bottom - top + H + 24.0,
            top + 8.0,
            esc(&short(&p, 18))
        );
    }
    for e in &t.edges {
        let ((x1, y1), (x2, y2)) = (pos(e.from), pos(e.to));
        let (x1, y1, x2, y2) = (x1 + W / 2.0, y1 + H, x2 + W / 2.0, y2);
        let dash = if e.kind == EdgeKind::Data {
            " stroke-dasharray=\"5 4\""
        } else {
            ""
        };
        let _ = writeln!(
            svg,
            "<path class=\"edge {:?}\" d=\"M{x1},{y1} C{x1},{} {x2},{} {x2},{y2}\" fill=\"none\" stroke=\"#5f6368\"{dash} marker-end=\"url(#arrow)\"/>",
            e.kind,
            (y1 + y2) / 2.0,
            (y1 + y2) / 2.0
        );
    }
    for n in &t.nodes {
        let (x, y) = pos(n.id);
        let _ = writeln!(
            svg,
            "<g class=\"node {}\"><rect x=\"{x}\" y=\"{y}\" width=\"{W}\" height=\"{H}\" rx=\"8\"/><text x=\"{}\" y=\"{}\" class=\"label\">{}</text><text x=\"{}\" y=\"{}\" class=\"detail\">{}</text></g>",
            n.state,
            x + 10.0,
            y + 22.0,
            esc(&short(&n.label, 28)),
            x + 10.0,
            y + 41.0,
            esc(&detail(n))
        );
    }
    svg.push_str("</svg>");
    let mut rows = String::new();
    for n in &t.nodes {
        let _ = writeln!(
            rows,
            "<tr class=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>${:.4}</td></tr>",
            n.state,
            esc(&n.label),
            esc(n.phase.as_deref().unwrap_or("")),
            n.state,
            n.output_tokens,
            n.duration_ms
                .map(|d| format!("{:.1}s", d as f64 / 1000.0))
                .unwrap_or_default(),
            n.cost_usd
        );
    }
    let raises: String = t
        .raise_lines()
        .iter()
        .map(|l| format!("<p class=\"meta raise\">⇡ {}</p>\n", esc(l)))
        .collect();
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>wfhost trace — {name}</title>\n<style>\n\
         body{{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#202124}} h1{{font-size:20px}} .meta{{color:#5f6368}}\n\
         .node rect{{stroke-width:1.5}} .done rect{{fill:#e6f4ea;stroke:#1e8e3e}} .cached rect{{fill:#e8f0fe;stroke:#1a73e8}}\n\
         .failed rect{{fill:#fce8e6;stroke:#d93025}} .running rect{{fill:#fef7e0;stroke:#f9ab00}}\n\
         .label{{font-weight:600;font-size:13px}} .detail{{font-size:11px;fill:#5f6368}} .phase-title{{font-size:12px;fill:#5f6368;font-weight:600}}\n\
         table{{border-collapse:collapse;margin-top:24px}} td,th{{border-bottom:1px solid #dadce0;padding:4px 10px;text-align:left}}\n\
         .legend span{{display:inline-block;padding:2px 8px;margin-right:6px;border-radius:4px}}\n\
         </style></head><body>\n<h1>{name}</h1>\n<p class=\"meta\">run {run} · {agents} agents · edges: solid = order, fork/join, pipeline stages; dashed = data flow</p>\n{raises}\
         <p class=\"legend\"><span class=\"done\" style=\"background:#e6f4ea\">done</span><span style=\"background:#e8f0fe\">cached</span><span style=\"background:#fce8e6\">failed</span><span style=\"background:#fef7e0\">running</span></p>\n\
         {svg}\n<table><thead><tr><th>agent</th><th>phase</th><th>state</th><th>output tokens</th><th>duration</th><th>cost</th></tr></thead><tbody>\n{rows}</tbody></table>\n</body></html>\n",
        name = esc(&t.name),
        run = esc(&t.run_id),
        agents = t.nodes.len(),
    )
}
