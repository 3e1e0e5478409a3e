//! Prompt-cache-aware fan-out (the reference's prefix stagger).
//!
//! A fan-out's prompts usually share a long head (the instructions, a document) and differ in a
//! short tail (the item). The provider caches a prompt's prefix up to a `cache_control`
//! breakpoint, but the entry exists only once the request that writes it has begun answering:
//! sixteen requests sent at once all miss and all pay to write the same head. So, for agents
//! started together (the `agent()` calls of one guest turn, e.g. one `parallel()`):
//!
//! 1. each prompt's **shared head** is found: `agent(prompt, {sharedHeadLength})` when the
//!    script says, else the longest prefix it shares with another prompt of the batch (or a
//!    recent one), cut back to a line end so that items which happen to start alike do not
//!    split a group; heads under [`MIN_SHARED_HEAD`] are not worth an entry;
//! 2. agents with the same head (and model) form a group: the first **writes** the entry, the
//!    others **follow**: the backend puts the breakpoint at the end of the head and holds a
//!    follower until the writer's answer has begun (at most [`MAX_HOLD`]), so they read it.
//!
//! Only backends that place cache breakpoints themselves use it (`Backend::caches_prompts`:
//! `messages`). `messages.cache_stagger = false` keeps the breakpoints but not the hold.

use super::AgentJob;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// The shortest head worth a cache entry, in bytes. Why 4096: the Messages API caches prefixes
/// from 1,024 tokens (2,048 for Haiku), about 4 characters a token.
pub(crate) const MIN_SHARED_HEAD: usize = 4096;

/// The longest a follower waits for its writer. Why 5 s: the writer's answer begins once its
/// prompt is read, a second or two for a long head; past that something is wrong with the
/// writer, and a follower that writes the entry itself costs 25 % more on its head, not a stall.
pub(crate) const MAX_HOLD: Duration = Duration::from_secs(5);

/// How many recent prompts (of at least [`MIN_SHARED_HEAD`] bytes: a shorter one cannot share a
/// head worth an entry) a new batch is compared with (sequential fan-outs, pipelines).
const RECENT: usize = 32;

/// Opens when the writer's answer has begun (or it ended without one).
#[derive(Debug)]
pub(crate) struct Gate {
    open: watch::Sender<bool>,
}

impl Gate {
    fn new() -> Arc<Gate> {
        Arc::new(Gate {
            open: watch::Sender::new(false),
        })
    }
    fn open(&self) {
        self.open.send_replace(true);
    }
    fn is_open(&self) -> bool {
        *self.open.borrow()
    }
}

/// What a backend is told about one call's prompt.
#[derive(Debug)]
pub(crate) struct CacheHint {
    /// Bytes of the prompt that are the shared head (a character boundary).
    pub head: usize,
    gate: Arc<Gate>,
    writer: bool,
    /// Hold followers until the writer has begun (`messages.cache_stagger`).
    hold: bool,
}

impl CacheHint {
    /// Before sending: a follower waits for its writer's answer to begin (at most `MAX_HOLD`).
    pub(crate) async fn before_send(&self) {
        if self.writer || !self.hold || self.gate.is_open() {
            return;
        }
        let mut rx = self.gate.open.subscribe();
        let _ = tokio::time::timeout(MAX_HOLD, rx.wait_for(|open| *open)).await;
    }

    /// The answer has begun (the cache entry exists): the writer lets its followers go.
    pub(crate) fn begun(&self) {
        if self.writer {
            self.gate.open();
        }
    }

    /// The call ended, answered or not: a writer's followers must not wait for it any more.
    pub(crate) fn release(&self) {
        self.begun();
    }

    #[cfg(test)]
    pub(crate) fn is_writer(&self) -> bool {
        self.writer
    }
}

/// The run's memory of heads and their writers.
#[derive(Default)]
pub(crate) struct Stagger {
    hold: bool,
    recent: std::collections::VecDeque<String>,
    /// (model, head) → the gate of the call that writes that entry.
    gates: HashMap<(Option<String>, blake3::Hash), Arc<Gate>>,
}

impl Stagger {
    pub(crate) fn new(hold: bool) -> Stagger {
        Stagger {
            hold,
            ..Stagger::default()
        }
    }

    /// Gives each job of a batch (agents started together) its cache hint, if it has a head
    /// worth caching. `explicit`: `sharedHeadLength` per job, when the script gave one.
    pub(crate) fn plan(&mut self, batch: &mut [AgentJob]) {
        if batch.is_empty() {
            return;
        }
        let heads = shared_heads(batch, self.recent.make_contiguous());
        if self.gates.len() > 4096 {
            // Old entries have expired on the provider's side (5 minutes) long since.
            self.gates.clear();
        }
        for (job, head) in batch.iter_mut().zip(heads) {
            let Some(head) = head else { continue };
            let key = (
                job.request.model.clone(),
                blake3::hash(&job.request.prompt.as_bytes()[..head]),
            );
            let (gate, writer) = match self.gates.get(&key) {
                Some(g) => (g.clone(), false),
                None => {
                    let g = Gate::new();
                    self.gates.insert(key, g.clone());
                    (g, true)
                }
            };
            job.cache = Some(Arc::new(CacheHint {
                head,
                gate,
                writer,
                hold: self.hold,
            }));
        }
        let long: Vec<&AgentJob> = batch
            .iter()
            .filter(|j| j.request.prompt.len() >= MIN_SHARED_HEAD)
            .collect();
        for job in &long[long.len().saturating_sub(RECENT)..] {
            if self.recent.len() == RECENT {
                self.recent.pop_front();
            }
            self.recent.push_back(job.request.prompt.clone());
        }
    }
}

/// Each job's shared head: its `sharedHeadLength`, else the longest prefix it shares with any
/// other prompt (sorted order makes that a neighbour: O(n log n), not O(n²)), cut to a line end.
/// Prompts shorter than [`MIN_SHARED_HEAD`] take no part: they cannot share a head worth an
/// entry, and a longer prompt's longest worthwhile prefix is shared with another long one (so a
/// fan-out of short prompts costs nothing here).
fn shared_heads(batch: &[AgentJob], recent: &[String]) -> Vec<Option<usize>> {
    let long = |p: &&str| p.len() >= MIN_SHARED_HEAD;
    // (the prompt, its place in the batch: `usize::MAX` for a recent one)
    let prompts: Vec<(&str, usize)> = batch
        .iter()
        .enumerate()
        .map(|(i, j)| (j.request.prompt.as_str(), i))
        .filter(|(p, _)| long(p))
        .chain(
            recent
                .iter()
                .map(|p| (p.as_str(), usize::MAX))
                .filter(|(p, _)| long(p)),
        )
        .collect();
    let mut order: Vec<usize> = (0..prompts.len()).collect();
    order.sort_unstable_by(|a, b| prompts[*a].0.cmp(prompts[*b].0));
    let mut longest = vec![0usize; batch.len()];
    for w in order.windows(2) {
        let ((a, i), (b, j)) = (prompts[w[0]], prompts[w[1]]);
        let n = common_prefix(a, b);
        for k in [i, j] {
            if let Some(l) = longest.get_mut(k) {
                *l = (*l).max(n);
            }
        }
    }
    batch
        .iter()
        .enumerate()
        .map(|(i, job)| {
            let prompt = job.request.prompt.as_str();
            if let Some(n) = job.shared_head {
                let n = n.min(prompt.len());
                let n = (0..=n)
                    .rev()
                    .find(|i| prompt.is_char_boundary(*i))
                    .unwrap_or(0);
                return Some(n).filter(|n| *n > 0);
            }
            let n = longest[i];
            // Up to and including the last line break of the shared part, when it has one.
            let n = prompt[..n].rfind('\n').map_or(n, |at| at + 1);
            Some(n).filter(|n| *n >= MIN_SHARED_HEAD)
        })
        .collect()
}

/// Bytes two strings share from the start, backed off to a character boundary.
pub(crate) fn common_prefix(a: &str, b: &str) -> usize {
    let n = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    (0..=n).rev().find(|i| b.is_char_boundary(*i)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::AgentRequest;

    fn job(prompt: &str, shared: Option<usize>) -> AgentJob {
        AgentJob {
            handle: 0,
            request: AgentRequest {
                prompt: prompt.into(),
                ..AgentRequest::default()
            },
            schema: None,
            key: String::new(),
            occurrence: 0,
            stall: None,
            agent_def: None,
            shared_head: shared,
            cache: None,
            turns: Vec::new(),
        }
    }

    #[test]
    fn a_fan_out_has_one_writer_and_the_rest_follow() {
        let head = format!("{}\n", "Instructions. ".repeat(400));
        let mut batch: Vec<AgentJob> = (0..16)
            .map(|i| job(&format!("{head}Review file src/f{i}.rs"), None))
            .collect();
        let mut s = Stagger::new(true);
        s.plan(&mut batch);
        let hints: Vec<_> = batch.iter().map(|j| j.cache.as_ref().unwrap()).collect();
        assert!(
            hints.iter().all(|h| h.head == head.len()),
            "cut at the line end"
        );
        assert_eq!(hints.iter().filter(|h| h.is_writer()).count(), 1);
        assert!(hints[0].is_writer(), "the first started writes");
        // A later batch with the same head follows the same writer.
        let mut later = vec![job(&format!("{head}Review file src/late.rs"), None)];
        s.plan(&mut later);
        assert!(!later[0].cache.as_ref().unwrap().is_writer());
    }

    #[test]
    fn short_heads_and_lone_prompts_get_no_hint() {
        let mut batch = vec![job("short a", None), job("short b", None)];
        Stagger::new(true).plan(&mut batch);
        assert!(batch.iter().all(|j| j.cache.is_none()));
        let mut one = vec![job(&"x".repeat(10_000), None)];
        Stagger::new(true).plan(&mut one);
        assert!(one[0].cache.is_none());
    }

    #[test]
    fn short_prompts_between_long_ones_change_nothing() {
        let head = format!("{}\n", "Context. ".repeat(600));
        let mut s = Stagger::new(true);
        let mut first = vec![job(&format!("{head}item 1"), None)];
        s.plan(&mut first);
        assert!(first[0].cache.is_none(), "alone so far");
        // More short prompts than the recent list holds, then the head again: still matched.
        let mut short: Vec<AgentJob> = (0..100).map(|i| job(&format!("q{i}"), None)).collect();
        s.plan(&mut short);
        assert!(short.iter().all(|j| j.cache.is_none()));
        // Its only partner is the long prompt of three batches ago.
        let mut mixed = vec![job("tiny", None), job(&format!("{head}item 2"), None)];
        s.plan(&mut mixed);
        assert!(mixed[0].cache.is_none());
        assert_eq!(mixed[1].cache.as_ref().unwrap().head, head.len());
    }

    #[test]
    fn shared_head_length_is_honoured() {
        let mut batch = vec![job("abcdef-1", Some(6)), job("abcdef-2", Some(6))];
        Stagger::new(true).plan(&mut batch);
        assert_eq!(batch[0].cache.as_ref().unwrap().head, 6);
        assert!(batch[0].cache.as_ref().unwrap().is_writer());
        assert!(!batch[1].cache.as_ref().unwrap().is_writer());
    }

    #[tokio::test(start_paused = true)]
    async fn a_follower_waits_for_its_writer_at_most_max_hold() {
        let mut batch = vec![job("h-1", Some(2)), job("h-2", Some(2))];
        Stagger::new(true).plan(&mut batch);
        let (w, f) = (
            batch[0].cache.clone().unwrap(),
            batch[1].cache.clone().unwrap(),
        );
        let start = tokio::time::Instant::now();
        let waiter = tokio::spawn(async move { f.before_send().await });
        tokio::time::sleep(Duration::from_millis(700)).await;
        w.begun();
        waiter.await.unwrap();
        let t = start.elapsed();
        assert!(
            t >= Duration::from_millis(700) && t < Duration::from_secs(1),
            "{t:?}"
        );
        // Without its writer ever beginning: MAX_HOLD.
        let mut batch = vec![job("g-1", Some(2)), job("g-2", Some(2))];
        Stagger::new(true).plan(&mut batch);
        let start = tokio::time::Instant::now();
        batch[1].cache.as_ref().unwrap().before_send().await;
        assert_eq!(start.elapsed(), MAX_HOLD);
    }
}
