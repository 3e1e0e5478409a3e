//! What a CI system reads of a run, besides its exit code: a JUnit XML report (`--junit FILE`:
//! GitLab, Jenkins, Buildkite and GitHub's test-report actions ingest it) and, under GitHub
//! Actions (`GITHUB_ACTIONS=true`), a job summary in `$GITHUB_STEP_SUMMARY` and `::error` /
//! `::warning` annotations for the script's error and each failed agent.
//!
//! Both are written from the run's report and its agents as the run's live fold saw them
//! (control::Control), after the run: nothing here can change how the run went.

use crate::agent::AgentState;
use crate::live::AgentRow;
use crate::report::{Outcome, RunReport};
use std::fmt::Write as _;

/// The JUnit XML of a run: one testsuite per phase (agents outside any phase in `(no phase)`),
/// one testcase per agent — named by its label, timed, a failure with its error when it failed,
/// skipped when it never finished — and, when the script itself failed or was rejected, a
/// `script` testsuite whose one testcase carries that error.
pub(crate) fn junit(report: &RunReport, name: &str, agents: &[AgentRow]) -> String {
    let mut phases: Vec<(String, Vec<&AgentRow>)> = Vec::new();
    for a in agents {
        let phase = a.phase.clone().unwrap_or_else(|| "(no phase)".into());
        match phases.iter_mut().find(|(p, _)| *p == phase) {
            Some((_, v)) => v.push(a),
            None => phases.push((phase, vec![a])),
        }
    }
    let secs = |a: &AgentRow| match (a.started_ms, a.ended_ms) {
        (Some(s), Some(e)) => e.saturating_sub(s) as f64 / 1000.0,
        _ => 0.0,
    };
    let failed = |a: &AgentRow| a.state == AgentState::Failed;
    let unfinished = |a: &AgentRow| matches!(a.state, AgentState::Queued | AgentState::Running);
    let script_error = matches!(report.outcome, Outcome::Failed | Outcome::Rejected)
        .then(|| report.error.clone().unwrap_or_default());
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        xml,
        "<testsuites name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" time=\"{:.3}\">",
        attr(&format!("wfhost {name}")),
        agents.len() + usize::from(script_error.is_some()),
        agents.iter().filter(|a| failed(a)).count(),
        usize::from(script_error.is_some()),
        report.duration_ms as f64 / 1000.0
    );
    for (phase, rows) in &phases {
        let _ = writeln!(
            xml,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"{}\" time=\"{:.3}\">",
            attr(phase),
            rows.len(),
            rows.iter().filter(|a| failed(a)).count(),
            rows.iter().filter(|a| unfinished(a)).count(),
            rows.iter().map(|a| secs(a)).sum::<f64>()
        );
        for a in rows {
            let _ = write!(
                xml,
                "    <testcase name=\"{}\" classname=\"{}\" time=\"{:.3}\"",
                attr(&a.label),
                attr(&format!("{name}.{phase}")),
                secs(a)
            );
            match a.state {
                AgentState::Failed => {
                    let error = a.error.clone().unwrap_or_default();
                    let _ = writeln!(
                        xml,
                        ">\n      <failure message=\"{}\" type=\"agent failed\">{}</failure>\n    </testcase>",
                        attr(error.lines().next().unwrap_or_default()),
                        text(&error)
                    );
                }
                AgentState::Queued | AgentState::Running => {
                    let _ = writeln!(
                        xml,
                        ">\n      <skipped message=\"not finished when the run ended\"/>\n    </testcase>"
                    );
                }
                AgentState::Cached => {
                    let _ = writeln!(
                        xml,
                        ">\n      <system-out>served from the run's journal (an earlier attempt's answer)</system-out>\n    </testcase>"
                    );
                }
                AgentState::Done => xml.push_str("/>\n"),
            }
        }
        xml.push_str("  </testsuite>\n");
    }
    if let Some(error) = script_error {
        let _ = writeln!(
            xml,
            "  <testsuite name=\"script\" tests=\"1\" failures=\"0\" errors=\"1\" time=\"{:.3}\">\n    <testcase name=\"{}\" classname=\"{}\" time=\"{:.3}\">\n      <error message=\"{}\" type=\"{}\">{}</error>\n    </testcase>\n  </testsuite>",
            report.duration_ms as f64 / 1000.0,
            attr(name),
            attr(name),
            report.duration_ms as f64 / 1000.0,
            attr(error.lines().next().unwrap_or_default()),
            if report.outcome == Outcome::Rejected {
                "rejected"
            } else {
                "failed"
            },
            text(&format!(
                "{error}{}",
                report
                    .stack
                    .as_deref()
                    .map(|s| format!("\n{s}"))
                    .unwrap_or_default()
            ))
        );
    }
    xml.push_str("</testsuites>\n");
    xml
}

/// XML text: `&`, `<`, `>` escaped; control characters XML 1.0 cannot carry dropped.
fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => {}
            c => out.push(c),
        }
    }
    out
}

/// An XML attribute value (quotes too, and line breaks as character references).
fn attr(s: &str) -> String {
    text(s)
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
        .replace('\n', "&#10;")
        .replace('\r', "&#13;")
        .replace('\t', "&#9;")
}

/// Under GitHub Actions: the job summary (appended to `$GITHUB_STEP_SUMMARY`) and the
/// annotations (workflow commands, on stderr so that `--json`'s stdout stays one report).
pub(crate) fn github(report: &RunReport, name: &str, agents: &[AgentRow]) {
    if std::env::var("GITHUB_ACTIONS").as_deref() != Ok("true") {
        return;
    }
    if let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY") {
        use std::io::Write as _;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
        {
            let _ = f.write_all(summary(report, name).as_bytes());
        }
    }
    if let Some(path) = std::env::var_os("GITHUB_OUTPUT") {
        use std::io::Write as _;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
        {
            let _ = f.write_all(outputs(report).as_bytes());
        }
    }
    for line in annotations(report, name, agents) {
        eprintln!("{line}");
    }
}

/// The step's outputs (`$GITHUB_OUTPUT`, `name=value` lines), for the next steps and the
/// action's `outputs`: `run-id`, `outcome`, `cost-usd`, `exit-code`, and `result-path`: the
/// result, written as `result.json` in the run directory (pretty JSON), when there is one.
pub(crate) fn outputs(report: &RunReport) -> String {
    let mut out = format!(
        "run-id={}\noutcome={}\ncost-usd={:.6}\nexit-code={}\n",
        report.run_id,
        report.outcome.as_str(),
        report.cost.total_usd,
        report.exit_code
    );
    if let (Some(result), Some(dir)) = (&report.result, &report.run_dir) {
        let path = std::path::Path::new(dir).join("result.json");
        let text = serde_json::to_string_pretty(result).unwrap_or_default();
        // One line: a path with a line break would inject another output.
        let display = path.display().to_string();
        if !display.contains(['\n', '\r'])
            && crate::run_dir::RunDir::write_private(&path, text.as_bytes()).is_ok()
        {
            let _ = writeln!(out, "result-path={display}");
        }
    }
    out
}

/// The job summary: outcome, counts, tokens, cost, the phases' table, failures grouped by
/// error, and the start of the result.
pub(crate) fn summary(report: &RunReport, name: &str) -> String {
    let u = &report.usage;
    let mut md = String::new();
    let mark = match report.outcome {
        Outcome::Completed if u.agents_failed == 0 => "✅",
        Outcome::Completed => "⚠️",
        _ => "❌",
    };
    let _ = writeln!(
        md,
        "### {mark} wfhost `{}`: {}\n",
        cell(name),
        report.outcome.as_str()
    );
    let _ = writeln!(
        md,
        "| run | agents done | failed | from the journal | tokens in | tokens out | cost |\n|---|---|---|---|---|---|---|\n| `{}` | {} | {} | {} | {} | {} | ${:.4} |\n",
        report.run_id,
        u.agents_done,
        u.agents_failed,
        u.agents_cached,
        u.input_tokens + u.cache_read_input_tokens + u.cache_creation_input_tokens,
        u.output_tokens,
        report.cost.total_usd
    );
    if !report.cost.by_phase.is_empty() {
        md.push_str("| phase | cost |\n|---|---|\n");
        for (phase, cost) in &report.cost.by_phase {
            let phase = if phase.is_empty() {
                "(no phase)"
            } else {
                phase
            };
            let _ = writeln!(md, "| {} | ${cost:.4} |", cell(phase));
        }
        md.push('\n');
    }
    if let Some(error) = &report.error {
        let _ = writeln!(
            md,
            "**Error:** `{}`\n",
            cell(error.lines().next().unwrap_or_default())
        );
    }
    if !report.failures.is_empty() {
        md.push_str("| failed agents | error |\n|---|---|\n");
        for f in &report.failures {
            let _ = writeln!(
                md,
                "| {} ({}) | {} |",
                cell(&f.agents.join(", ")),
                f.count,
                cell(f.error.lines().next().unwrap_or_default())
            );
        }
        md.push('\n');
    }
    if let Some(result) = &report.result {
        let pretty = serde_json::to_string_pretty(result).unwrap_or_default();
        let head: Vec<&str> = pretty.lines().take(20).collect();
        let more = pretty.lines().count() > head.len();
        let _ = writeln!(
            md,
            "<details><summary>result</summary>\n\n```json\n{}{}\n```\n</details>\n",
            head.join("\n").replace("```", "ʼʼʼ"),
            if more { "\n…" } else { "" }
        );
    }
    md
}

/// A table cell: one line, no `|`.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// `::error` for the script's error (with its file and line when the stack has them) and for
/// each failed agent; `::warning` when the run was stopped.
pub(crate) fn annotations(report: &RunReport, name: &str, agents: &[AgentRow]) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(error) = &report.error {
        let mut props = format!(
            "title={}",
            property(&format!("wfhost {name}: the workflow failed"))
        );
        if let Some((file, line)) = report.stack.as_deref().and_then(location) {
            props = format!("file={},line={line},{props}", property(&file));
        }
        let level = if report.outcome == Outcome::Stopped {
            "warning"
        } else {
            "error"
        };
        out.push(format!("::{level} {props}::{}", data(error)));
    }
    for a in agents.iter().filter(|a| a.state == AgentState::Failed) {
        out.push(format!(
            "::error title={}::{}",
            property(&format!("wfhost {name}: agent `{}` failed", a.label)),
            data(a.error.as_deref().unwrap_or("failed"))
        ));
    }
    out
}

/// The first `file:line` of a stack trace (`at f (w.js:12:5)` or `at w.js:12`).
fn location(stack: &str) -> Option<(String, u32)> {
    stack.lines().find_map(|l| {
        let inner = l.trim().strip_prefix("at ")?;
        let inner = inner
            .rsplit_once('(')
            .map_or(inner, |(_, r)| r.trim_end_matches(')'));
        let mut parts = inner.split(':');
        let file = parts.next()?.to_string();
        let line = parts.next()?.parse().ok()?;
        let script = std::path::Path::new(&file)
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("js") || e.eq_ignore_ascii_case("mjs"));
        script.then_some((file, line))
    })
}

/// A workflow command's message: `%`, CR and LF escaped as the runner expects.
fn data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// A workflow command's property value: `data`'s escapes, and `:` and `,`.
fn property(s: &str) -> String {
    data(s).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(attr("a<\"b\"&\n"), "a&lt;&quot;b&quot;&amp;&#10;");
        assert_eq!(text("x\u{1}y"), "xy");
        assert_eq!(property("a:b,c%\n"), "a%3Ab%2Cc%25%0A");
        assert_eq!(
            location("Error: x\n    at run (w.js:12:5)\n    at w.js:30"),
            Some(("w.js".into(), 12))
        );
    }
}
