//! Riding a provider's rate limits, pool-wide.
//!
//! Without this, every agent meets a 429 on its own: each sleeps its `retry-after` and tries
//! again, while the rest of the pool keeps sending requests that are refused too. The throttle
//! is shared by every call of a run (a backend reaches it through the call's context) and does
//! what one careful client would:
//!
//! - **a 429 pauses the whole pool** for the `retry-after` it carries, and the number of
//!   requests allowed in flight halves (multiplicative decrease);
//! - **every answer adds back** a fraction of one (additive increase: one whole slot per
//!   window's worth of answers), up to the run's `--concurrency`;
//! - **the provider's `anthropic-ratelimit-*` headers pace requests**: the requests limit per
//!   minute and what remains of it become a token bucket on our side that mirrors the
//!   provider's, so a fan-out sends at the rate it is allowed instead of learning it from 429s;
//!   a token limit whose header says nothing remains pauses the pool until its reset;
//! - **per-model limits of your own** (`[rate_limits.models."PREFIX"]`: requests a minute,
//!   concurrency) apply before the provider's.
//!
//! A pause is announced on the event stream (`rate limited, continuing in N s`), which the views
//! show. `[rate_limits] adaptive = false` turns the pool-wide behaviour off (each call then
//! retries on its own, as before); configured per-model limits still apply.

use crate::config::{Config, ModelLimits};
use crate::events::{Event, Events, LogLevel};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// The longest pause a 429 or a header can impose at once. Why 5 min: the Messages API's
/// request and token limits refill within a minute; a longer wait is a usage limit, which the
/// backend reports as one (and `--wait-on-limit` handles).
const MAX_PAUSE: Duration = Duration::from_secs(300);

/// The pool-wide state of a run's calls.
pub(crate) struct Throttle {
    adaptive: bool,
    /// The run's `--concurrency`: the window never grows past it.
    concurrency: f64,
    config: Arc<Config>,
    events: Events,
    state: Mutex<State>,
    changed: Notify,
}

struct State {
    /// Requests allowed in flight (AIMD); at least 1.
    window: f64,
    in_flight: usize,
    /// Nothing is sent before this (a 429's `retry-after`, a limit that says none remain).
    paused_until: Option<Instant>,
    lanes: HashMap<String, Lane>,
}

/// One model's own limits: configured ones, and the provider's as its headers tell them.
#[derive(Default)]
struct Lane {
    in_flight: usize,
    /// Our configured concurrency for this model.
    concurrency: Option<usize>,
    /// The configured requests-per-minute bucket.
    configured: Option<Bucket>,
    /// The bucket that mirrors the provider's (from its headers).
    provider: Option<Bucket>,
}

/// A token bucket: `capacity` requests, refilled at `rate` a second.
struct Bucket {
    capacity: f64,
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn per_minute(n: f64, now: Instant) -> Bucket {
        Bucket {
            capacity: n,
            rate: n / 60.0,
            tokens: n,
            at: now,
        }
    }
    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + dt * self.rate).min(self.capacity);
        self.at = now;
    }
    /// How long until one token is there (zero: now).
    fn wait(&mut self, now: Instant) -> Duration {
        self.refill(now);
        if self.tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(((1.0 - self.tokens) / self.rate).min(MAX_PAUSE.as_secs_f64()))
        }
    }
}

/// A request in flight: hold it for the length of the HTTP exchange. Dropped, its slot frees.
pub(crate) struct Permit {
    throttle: Arc<Throttle>,
    model: String,
}

impl Drop for Permit {
    fn drop(&mut self) {
        {
            let mut s = self.throttle.lock();
            s.in_flight = s.in_flight.saturating_sub(1);
            if let Some(lane) = s.lanes.get_mut(&self.model) {
                lane.in_flight = lane.in_flight.saturating_sub(1);
            }
        }
        self.throttle.changed.notify_waiters();
    }
}

/// What the provider said of its limits, from one response's headers.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Limits {
    /// `anthropic-ratelimit-requests-limit`: requests a minute.
    pub requests_limit: Option<f64>,
    /// `anthropic-ratelimit-requests-remaining`.
    pub requests_remaining: Option<f64>,
    /// The longest wait an exhausted token limit names, from its `-reset`.
    pub exhausted_for: Option<Duration>,
}

impl Limits {
    /// Reads the `anthropic-ratelimit-*` headers, or OpenAI's `x-ratelimit-*` (OpenAI, vLLM
    /// behind a gateway, OpenRouter; `get` looks a header up by name).
    pub(crate) fn from_headers(get: impl Fn(&str) -> Option<String>) -> Limits {
        let num = |name: &str| get(name).and_then(|v| v.trim().parse::<f64>().ok());
        let mut exhausted_for = None;
        // Requests are paced by the bucket; a token limit that says none remain pauses the pool.
        for (remaining, reset) in [
            (
                "anthropic-ratelimit-tokens-remaining",
                "anthropic-ratelimit-tokens-reset",
            ),
            (
                "anthropic-ratelimit-input-tokens-remaining",
                "anthropic-ratelimit-input-tokens-reset",
            ),
            (
                "anthropic-ratelimit-output-tokens-remaining",
                "anthropic-ratelimit-output-tokens-reset",
            ),
        ] {
            if num(remaining) == Some(0.0)
                && let Some(reset) = get(reset)
                && let Ok(at) = humantime::parse_rfc3339_weak(reset.trim())
            {
                let wait = at
                    .duration_since(std::time::SystemTime::now())
                    .unwrap_or_default();
                exhausted_for = Some(exhausted_for.map_or(wait, |w: Duration| w.max(wait)));
            }
        }
        // OpenAI's: `x-ratelimit-remaining-tokens: 0` with `x-ratelimit-reset-tokens: 6m0s`
        // (a duration, not a time).
        if num("x-ratelimit-remaining-tokens") == Some(0.0)
            && let Some(wait) = get("x-ratelimit-reset-tokens").and_then(|r| openai_duration(&r))
        {
            exhausted_for = Some(exhausted_for.map_or(wait, |w: Duration| w.max(wait)));
        }
        Limits {
            requests_limit: num("anthropic-ratelimit-requests-limit")
                .or_else(|| num("x-ratelimit-limit-requests"))
                .filter(|n| *n >= 1.0),
            requests_remaining: num("anthropic-ratelimit-requests-remaining")
                .or_else(|| num("x-ratelimit-remaining-requests")),
            exhausted_for,
        }
    }
}

/// An OpenAI reset header's duration: `6m0s`, `1.5s`, `20ms`, `1h2m3s`.
fn openai_duration(text: &str) -> Option<Duration> {
    let mut total = 0.0;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let n: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        total += n * match &rest[..unit] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit..];
    }
    Some(Duration::from_secs_f64(total))
}

impl std::fmt::Debug for Throttle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.lock();
        f.debug_struct("Throttle")
            .field("window", &s.window)
            .field("in_flight", &s.in_flight)
            .finish_non_exhaustive()
    }
}

impl Throttle {
    pub(crate) fn new(config: Arc<Config>, concurrency: usize, events: Events) -> Arc<Throttle> {
        let concurrency = concurrency.max(1) as f64;
        Arc::new(Throttle {
            adaptive: config.rate_limits.adaptive.unwrap_or(true),
            concurrency,
            config,
            events,
            state: Mutex::new(State {
                window: concurrency,
                in_flight: 0,
                paused_until: None,
                lanes: HashMap::new(),
            }),
            changed: Notify::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lane<'a>(&self, lanes: &'a mut HashMap<String, Lane>, model: &str) -> &'a mut Lane {
        // Looked up on every request: allocate the key only the first time a model is seen.
        if !lanes.contains_key(model) {
            lanes.insert(model.to_string(), self.new_lane(model));
        }
        lanes.get_mut(model).expect("inserted above")
    }

    fn new_lane(&self, model: &str) -> Lane {
        let ModelLimits {
            requests_per_minute,
            concurrency,
        } = self.config.model_limits(model);
        Lane {
            concurrency: concurrency.map(usize::from),
            configured: requests_per_minute
                .map(|n| Bucket::per_minute(f64::from(n), Instant::now())),
            ..Lane::default()
        }
    }

    /// Waits until a request for `model` may be sent: the pool is not paused, the window and
    /// the model's concurrency have room, and its buckets a token.
    pub(crate) async fn acquire(self: &Arc<Self>, model: &str) -> Permit {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let wait = {
                let mut s = self.lock();
                let now = Instant::now();
                let window = s.window;
                let pool_full = s.in_flight as f64 >= window.floor().max(1.0);
                let paused = s.paused_until.filter(|t| *t > now);
                let lane = self.lane(&mut s.lanes, model);
                let lane_full = lane.concurrency.is_some_and(|c| lane.in_flight >= c);
                let bucket_wait = [lane.configured.as_mut(), lane.provider.as_mut()]
                    .into_iter()
                    .flatten()
                    .map(|b| b.wait(now))
                    .max()
                    .unwrap_or_default();
                if let Some(until) = paused {
                    Some(Some(until - now))
                } else if pool_full || lane_full {
                    Some(None) // until a permit is returned
                } else if !bucket_wait.is_zero() {
                    Some(Some(bucket_wait))
                } else {
                    for b in [lane.configured.as_mut(), lane.provider.as_mut()]
                        .into_iter()
                        .flatten()
                    {
                        b.tokens -= 1.0;
                    }
                    lane.in_flight += 1;
                    s.in_flight += 1;
                    None
                }
            };
            match wait {
                None => {
                    return Permit {
                        throttle: self.clone(),
                        model: model.to_string(),
                    };
                }
                Some(None) => notified.await,
                Some(Some(d)) => {
                    tokio::select! {
                        () = tokio::time::sleep(d) => {}
                        () = &mut notified => {}
                    }
                }
            }
        }
    }

    /// A response came back: what its headers say of the limits, and (`ok`) whether it was an
    /// answer, which widens the window.
    pub(crate) fn observe(&self, permit: &Permit, limits: &Limits, ok: bool) {
        if !self.adaptive {
            return;
        }
        let pause = {
            let mut s = self.lock();
            let now = Instant::now();
            if ok {
                s.window = (s.window + 1.0 / s.window).min(self.concurrency);
            }
            let lane = self.lane(&mut s.lanes, &permit.model);
            if let Some(limit) = limits.requests_limit {
                let b = lane
                    .provider
                    .get_or_insert_with(|| Bucket::per_minute(limit, now));
                b.capacity = limit;
                b.rate = limit / 60.0;
                b.refill(now);
                if let Some(remaining) = limits.requests_remaining {
                    // Requests sent since this one was counted are already taken from ours.
                    b.tokens = b.tokens.min(remaining);
                }
            }
            limits.exhausted_for
        };
        if let Some(wait) = pause.filter(|w| !w.is_zero()) {
            self.pause(
                wait,
                "the provider's rate-limit headers say none remain",
                false,
            );
        }
        self.changed.notify_waiters();
    }

    /// The provider refused a request for its rate limit (a 429) and said to wait `after`.
    pub(crate) fn limited(&self, after: Option<Duration>) {
        if !self.adaptive {
            return;
        }
        let wait = after.unwrap_or(Duration::from_secs(1));
        self.pause(wait, "429 from the provider", true);
    }

    fn pause(&self, wait: Duration, why: &str, halve: bool) {
        let wait = wait.min(MAX_PAUSE);
        let (announce, window) = {
            let mut s = self.lock();
            let until = Instant::now() + wait;
            let before = s.window;
            if halve {
                s.window = (s.window / 2.0).max(1.0);
            }
            // Announce a new pause, not every 429 of a burst that is already waiting.
            let announce = s
                .paused_until
                .is_none_or(|t| t + Duration::from_millis(250) < until);
            s.paused_until = Some(s.paused_until.map_or(until, |t| t.max(until)));
            (announce, (before, s.window))
        };
        if announce {
            let secs = wait.as_secs_f64().ceil().max(1.0);
            let detail = format!(
                "rate limited ({why}): nothing is sent by the whole pool for {secs:.0} s, then concurrency ramps back up (now {:.0}, was {:.0})",
                window.1.floor(),
                window.0.floor()
            );
            self.events.emit(Event::Log {
                level: LogLevel::Warn,
                text: format!("rate limited, continuing in {secs:.0} s ({why})"),
            });
            self.events.emit(Event::Control {
                action: "rate-limit".into(),
                agent: None,
                by: "wfhost".into(),
                detail: Some(detail),
                wait_ms: Some(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX)),
            });
        }
        self.changed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle(concurrency: usize, toml: &str) -> Arc<Throttle> {
        let config: Config = toml::from_str(toml).unwrap();
        Throttle::new(Arc::new(config), concurrency, Events::none())
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_pauses_everyone_and_halves_the_window() {
        let t = throttle(8, "");
        let p = t.acquire("m").await;
        t.limited(Some(Duration::from_secs(3)));
        assert_eq!(t.lock().window, 4.0);
        drop(p);
        let start = tokio::time::Instant::now();
        let _p = t.acquire("m").await;
        assert!(
            start.elapsed() >= Duration::from_secs(3),
            "{:?}",
            start.elapsed()
        );
        // Answers ramp it back up: one slot per window's worth.
        for _ in 0..4 {
            t.observe(&_p, &Limits::default(), true);
        }
        assert!((t.lock().window - 5.0).abs() < 0.2, "{}", t.lock().window);
    }

    #[tokio::test(start_paused = true)]
    async fn the_window_bounds_requests_in_flight() {
        let t = throttle(2, "");
        let a = t.acquire("m").await;
        let _b = t.acquire("m").await;
        let third = tokio::time::timeout(Duration::from_secs(5), t.acquire("m")).await;
        assert!(
            third.is_err(),
            "a third request went out with a window of 2"
        );
        drop(a);
        let third = tokio::time::timeout(Duration::from_secs(5), t.acquire("m")).await;
        assert!(third.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn configured_requests_per_minute_pace_a_model() {
        let t = throttle(
            16,
            "[rate_limits.models.\"claude-haiku\"]\nrequests_per_minute = 60\n",
        );
        let start = tokio::time::Instant::now();
        for _ in 0..62 {
            drop(t.acquire("claude-haiku-4-5").await);
        }
        // 60 at once (the minute's burst), then one a second.
        let took = start.elapsed().as_secs_f64();
        assert!((1.9..2.2).contains(&took), "{took}");
        // Another model is not paced.
        let start = tokio::time::Instant::now();
        for _ in 0..100 {
            drop(t.acquire("claude-sonnet-4-5").await);
        }
        assert!(start.elapsed() < Duration::from_millis(10));
    }

    #[tokio::test(start_paused = true)]
    async fn provider_headers_become_a_bucket() {
        let t = throttle(16, "");
        let p = t.acquire("m").await;
        t.observe(
            &p,
            &Limits {
                requests_limit: Some(120.0),
                requests_remaining: Some(0.0),
                exhausted_for: None,
            },
            true,
        );
        drop(p);
        let start = tokio::time::Instant::now();
        drop(t.acquire("m").await);
        // 120 a minute: the next token in half a second.
        let took = start.elapsed().as_secs_f64();
        assert!((0.45..0.6).contains(&took), "{took}");
    }

    #[test]
    fn headers_parse() {
        let reset = humantime::format_rfc3339_seconds(
            std::time::SystemTime::now() + Duration::from_secs(30),
        )
        .to_string();
        let h = |name: &str| match name {
            "anthropic-ratelimit-requests-limit" => Some("50".to_string()),
            "anthropic-ratelimit-requests-remaining" => Some("0".to_string()),
            "anthropic-ratelimit-input-tokens-remaining" => Some("0".to_string()),
            "anthropic-ratelimit-input-tokens-reset" => Some(reset.clone()),
            _ => None,
        };
        let l = Limits::from_headers(h);
        assert_eq!(l.requests_limit, Some(50.0));
        assert_eq!(l.requests_remaining, Some(0.0));
        let w = l.exhausted_for.unwrap().as_secs();
        assert!((28..=30).contains(&w), "{w}");
    }

    #[test]
    fn openai_headers_parse() {
        let h = |name: &str| match name {
            "x-ratelimit-limit-requests" => Some("500".to_string()),
            "x-ratelimit-remaining-requests" => Some("499".to_string()),
            "x-ratelimit-remaining-tokens" => Some("0".to_string()),
            "x-ratelimit-reset-tokens" => Some("1m30.5s".to_string()),
            _ => None,
        };
        let l = Limits::from_headers(h);
        assert_eq!(l.requests_limit, Some(500.0));
        assert_eq!(l.requests_remaining, Some(499.0));
        assert_eq!(l.exhausted_for, Some(Duration::from_secs_f64(90.5)));
        assert_eq!(openai_duration("20ms"), Some(Duration::from_millis(20)));
        assert_eq!(openai_duration("6m0s"), Some(Duration::from_secs(360)));
        assert_eq!(openai_duration("soon"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn not_adaptive_means_no_pool_pause() {
        let t = throttle(8, "[rate_limits]\nadaptive = false\n");
        t.limited(Some(Duration::from_secs(30)));
        let start = tokio::time::Instant::now();
        drop(t.acquire("m").await);
        assert!(start.elapsed() < Duration::from_millis(10));
        assert_eq!(t.lock().window, 8.0);
    }
}
