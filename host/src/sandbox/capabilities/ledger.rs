//! The run's ledger: what it spent (agents, tokens, cost) and every byte the script made the
//! host write or keep — `log` and `console.*` lines, `phase` titles, agent labels, the result
//! and the guest's captured stdout/stderr — charged against one set of limits
//! (`--max-output-bytes`, `--max-log-lines`).
//!
//! Everything is charged *before* it is written anywhere (journal, events, terminal), so the
//! journal can never grow faster than the ledger allows.

use crate::agent::Usage;
use crate::limits::{LimitHit, Limits};
use std::collections::BTreeMap;

#[derive(Debug, Default)]
pub(crate) struct Ledger {
    max_bytes: u64,
    max_lines: u64,
    /// Bytes of script-made output so far.
    bytes: u64,
    /// Narrator lines (logs and phase titles) so far.
    lines: u64,
    /// Narrator lines, for the report.
    pub logs: Vec<String>,
    pub agents_started: u32,
    pub agents_done: u32,
    pub agents_failed: u32,
    /// Models that answered without a price: their cost is unknown (counted as 0).
    pub unpriced: std::collections::BTreeSet<String>,
    pub agents_cached: u32,
    pub transient_failures: u32,
    /// USD spent by agents that ran in this run, in total and by phase.
    pub cost_usd: f64,
    pub cost_by_phase: BTreeMap<String, f64>,
    /// USD of the results served from the journal (spent by an earlier attempt).
    pub cached_cost_usd: f64,
    /// Tokens spent by agents that ran in this run.
    pub usage: Usage,
    /// Tokens of the results served from the journal (spent by an earlier attempt).
    pub cached_usage: Usage,
    /// The agents that failed: (label, error), for the report's grouped failures.
    pub failures: Vec<(String, String)>,
}

impl Ledger {
    pub(crate) fn new(limits: &Limits) -> Ledger {
        Ledger {
            max_bytes: limits.max_output_bytes,
            max_lines: limits.max_log_lines,
            ..Ledger::default()
        }
    }

    /// Charges `bytes` of output that is not a line (a label, the result, captured stdio).
    pub(crate) fn charge(&mut self, bytes: usize) -> Result<(), LimitHit> {
        self.bytes = self.bytes.saturating_add(bytes as u64);
        if self.bytes > self.max_bytes {
            return Err(LimitHit::OutputBytes);
        }
        Ok(())
    }

    /// Charges one narrator line (a log line or a phase title) and its newline.
    pub(crate) fn charge_line(&mut self, text: &str) -> Result<(), LimitHit> {
        self.lines += 1;
        if self.lines > self.max_lines {
            return Err(LimitHit::OutputLines);
        }
        self.charge(text.len() + 1)
    }

    /// Bytes charged so far.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Output tokens this run has spent, as `budget.spent()` reports them. Results served from
    /// the journal count too: a resumed script must see the numbers the first attempt saw, or
    /// its control flow (and so its later calls) could differ.
    pub(crate) fn spent(&self) -> u64 {
        self.usage.output_tokens + self.cached_usage.output_tokens
    }

    /// The run's cost as `--max-cost` counts it (served results included, as for spent()).
    pub(crate) fn cost(&self) -> f64 {
        self.cost_usd + self.cached_cost_usd
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_and_lines_share_one_budget() {
        let limits = Limits {
            max_output_bytes: 10,
            max_log_lines: 2,
            ..Limits::default()
        };
        let mut l = Ledger::new(&limits);
        l.charge_line("abcd").unwrap(); // 5
        l.charge(5).unwrap(); // 10
        assert_eq!(l.charge(1), Err(LimitHit::OutputBytes));
        let mut l = Ledger::new(&limits);
        l.charge_line("a").unwrap();
        l.charge_line("b").unwrap();
        assert_eq!(l.charge_line("c"), Err(LimitHit::OutputLines));
    }
}
