//! The HTTP side of the API backends (`messages`, `openai`): one transport per backend — a
//! shared HTTP/2 connection for `https://` servers that speak h2 (`backend::http2`), hyper's
//! pooled HTTP/1.1 client otherwise — TLS with the system's roots (`SSL_CERT_FILE`,
//! `SSL_CERT_DIR`), and what both do with an answer that is not one: which statuses are
//! retried (429 after `retry-after`, 5xx and broken connections with backoff), which are not
//! (400, 401, 403, 404, 413, a spend-limit 429), and the pool-wide throttle fed by the
//! provider's rate-limit headers.

use super::AgentError;
use super::reach::{Reach, SendError};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// How a backend's calls reach its server.
pub(crate) struct Transport {
    /// `https://`: the shared HTTP/2 connection (unless the server does not speak h2).
    http2: Option<super::http2::Http2>,
    /// `http://`, or a server without h2: hyper's pooled HTTP/1.1 client.
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    /// Set once a response has come back over `client`.
    connected: AtomicBool,
    /// Held by `client`'s first request until its response begins: an HTTP/1.1 pool opens a
    /// connection per request in flight, so a fan-out would otherwise open sixteen before it
    /// heard from the server once, and send sixteen requests into a 429 or a refused key.
    first: tokio::sync::Mutex<()>,
}

impl Transport {
    /// A transport for the server of `uri`.
    pub(crate) fn new(uri: &http::Uri) -> anyhow::Result<Transport> {
        let mut roots = rustls::RootCertStore::empty();
        // The system's trust store; honours SSL_CERT_FILE / SSL_CERT_DIR.
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let http2 = {
            let mut h2_tls = tls.clone();
            h2_tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
            super::http2::Http2::new(uri, Arc::new(h2_tls))
        };
        // TCP_NODELAY: a request over TLS + HTTP/2 goes out as two writes (HEADERS, DATA);
        // with Nagle's algorithm and the server's delayed ACK the second waits ~40 ms, on every
        // call (1000 instant agents: 2.8 s with it on, 93 ms with it off). `enforce_http(false)`
        // lets the TLS layer above hand it `https://` URIs.
        let mut tcp = HttpConnector::new();
        tcp.set_nodelay(true);
        tcp.enforce_http(false);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(tcp);
        Ok(Transport {
            http2,
            client: Client::builder(TokioExecutor::new()).build(https),
            connected: AtomicBool::new(false),
            first: tokio::sync::Mutex::new(()),
        })
    }

    /// POSTs `body` to the API: over the shared HTTP/2 connection, or through hyper's client
    /// (`http://`, or a server without h2).
    pub(crate) async fn send(
        &self,
        uri: &http::Uri,
        headers: &http::HeaderMap,
        body: &Bytes,
    ) -> Result<http::Response<Answer>, SendError> {
        self.request(&http::Method::POST, uri, headers, body).await
    }

    /// A request of any method (`GET` with an empty body: a batch's status, its results).
    pub(crate) async fn request(
        &self,
        method: &http::Method,
        uri: &http::Uri,
        headers: &http::HeaderMap,
        body: &Bytes,
    ) -> Result<http::Response<Answer>, SendError> {
        if let Some(h2) = &self.http2 {
            match h2.send(method, uri, headers, body).await {
                Ok(response) => return Ok(response.map(Answer::Http2)),
                Err(Err(e)) => return Err(e),
                Err(Ok(super::http2::NotHttp2)) => {}
            }
        }
        let mut request = hyper::Request::new(Full::new(body.clone()));
        *request.method_mut() = method.clone();
        *request.uri_mut() = uri.clone();
        *request.headers_mut() = headers.clone();
        let response = self.client.request(request);
        let response = if self.connected.load(Ordering::Acquire) {
            response.await
        } else {
            self.first_request(response).await
        };
        Ok(response
            .map_err(|e| SendError::from_error(&e))?
            .map(Answer::Hyper))
    }

    /// A request sent before the server was heard from over `client` (see `first`): one at a
    /// time, until an answer begins or `FIRST_ANSWER` passes without one. A refused key, a 429
    /// or a refused connection comes back within milliseconds; a server still silent after that
    /// has taken the request and is working on it (a proxy, a local model that answers when
    /// done), and the rest of the first wave need not wait for its answer — holding them until
    /// it came made 8 agents of 1 s take 8 s over HTTP/1.1.
    async fn first_request<F, T, E>(&self, response: F) -> Result<T, E>
    where
        F: std::future::Future<Output = Result<T, E>>,
    {
        const FIRST_ANSWER: Duration = Duration::from_millis(250);
        let first = self.first.lock().await;
        if self.connected.load(Ordering::Acquire) {
            drop(first);
            return response.await;
        }
        tokio::pin!(response);
        tokio::select! {
            r = &mut response => {
                if r.is_ok() {
                    self.connected.store(true, Ordering::Release);
                }
                r
            }
            () = tokio::time::sleep(FIRST_ANSWER) => {
                self.connected.store(true, Ordering::Release);
                drop(first);
                response.await
            }
        }
    }
}

/// A request that reached no server: retried, unless the configuration must change first
/// (a certificate); a refused or unknown host stops the run once its retries are spent.
/// `url` and `settings` name the endpoint and where it is set, for the message.
pub(crate) fn unsent(e: &SendError, url: &str, settings: &str) -> Failure {
    let error = AgentError {
        usage_limit: false,
        stops_run: !matches!(e.reach, Reach::Other),
        resets_in: None,
        message: e.message(url, settings),
        transient: !matches!(e.reach, Reach::Certificate(_)),
    };
    if error.transient {
        Failure::Retry { error, after: None }
    } else {
        Failure::Fatal(error)
    }
}

/// The pool's rate-limit state around one request: waits for its turn (paused after a 429,
/// paced by the provider's headers), then feeds the answer's headers back.
pub(crate) struct Throttled {
    throttle: Option<Arc<crate::scheduler::throttle::Throttle>>,
    permit: Option<crate::scheduler::throttle::Permit>,
}

impl Throttled {
    pub(crate) async fn acquire(model: &str) -> Throttled {
        let throttle = super::throttle();
        let permit = match &throttle {
            Some(t) => Some(t.acquire(model).await),
            None => None,
        };
        Throttled { throttle, permit }
    }

    /// What an answer's status and headers say of the provider's limits.
    pub(crate) fn observe(&self, response: &http::Response<Answer>) {
        if let (Some(t), Some(p)) = (&self.throttle, &self.permit) {
            let headers = response.headers();
            let limits = crate::scheduler::throttle::Limits::from_headers(|name| {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            });
            t.observe(p, &limits, response.status().is_success());
        }
    }

    /// An answer that is an error status, as the failure it is (a 429 pauses the whole pool).
    pub(crate) async fn refused(&self, response: http::Response<Answer>) -> Failure {
        let status = response.status();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map(|s| Duration::from_secs_f64(s.clamp(0.0, 300.0)));
        let bytes = response.into_body().collect().await;
        let detail: Value = serde_json::from_slice(&bytes).unwrap_or_default();
        let message = detail["error"]["message"].as_str().map_or_else(
            || String::from_utf8_lossy(&bytes).trim().to_string(),
            str::to_owned,
        );
        let failure = classify(status.as_u16(), &message, retry_after);
        if let (Some(t), Failure::Retry { .. }) = (&self.throttle, &failure)
            && status.as_u16() == 429
        {
            // Everyone waits, not only this call.
            t.limited(retry_after);
        }
        failure
    }
}

/// How many times, and for how long, one model call is tried.
pub(crate) struct Retries<'a> {
    pub max_attempts: u32,
    /// The whole call's bound, waits included.
    pub timeout: Duration,
    /// Each attempt's.
    pub attempt_timeout: Duration,
    /// The config keys of the two timeouts, for the messages (`messages.timeout`, …).
    pub settings: (&'static str, &'static str),
    /// Counts the retries (the report's backend stats).
    pub counter: &'a AtomicU64,
}

impl Retries<'_> {
    /// `attempt` until it answers, fails for good or its attempts are spent; bounded by
    /// `timeout` (retries and waits included, as documented; each attempt by
    /// `attempt_timeout`).
    pub(crate) async fn run<T, F, Fut>(&self, mut attempt: F) -> Result<T, AgentError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, Failure>>,
    {
        let (whole, each) = self.settings;
        let attempts = async {
            let mut n = 1;
            loop {
                let one = attempt();
                // An attempt bound no tighter than the whole call's (the default) is the outer
                // timeout's to enforce: no second timer per call.
                let outcome = if self.attempt_timeout >= self.timeout {
                    one.await
                } else {
                    tokio::time::timeout(self.attempt_timeout, one)
                        .await
                        .unwrap_or_else(|_| {
                            Err(Failure::Retry {
                                error: transient(format!(
                                    "no complete answer within {} ({each})",
                                    humantime::format_duration(self.attempt_timeout)
                                )),
                                after: None,
                            })
                        })
                };
                match outcome {
                    Ok(answer) => return Ok(answer),
                    Err(Failure::Fatal(e)) => return Err(e),
                    Err(Failure::Retry { error, .. }) if n >= self.max_attempts => {
                        return Err(AgentError {
                            stops_run: error.stops_run,
                            // Before the hint, when the message has one.
                            ..transient(match error.message.split_once("\nhint: ") {
                                Some((what, hint)) => {
                                    format!("{what} (gave up after {n} attempts)\nhint: {hint}")
                                }
                                None => format!("{} (gave up after {n} attempts)", error.message),
                            })
                        });
                    }
                    Err(Failure::Retry { after, .. }) => {
                        self.counter.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(after.unwrap_or_else(|| backoff(n))).await;
                        n += 1;
                    }
                }
            }
        };
        tokio::time::timeout(self.timeout, attempts)
            .await
            .unwrap_or_else(|_| {
                Err(transient(format!(
                    "no complete answer within {}, retries included ({whole})",
                    humantime::format_duration(self.timeout)
                )))
            })
    }
}

/// A failure worth another call later (the scheduler's retry, a resume).
pub(crate) fn transient(message: String) -> AgentError {
    AgentError {
        usage_limit: false,
        stops_run: false,
        resets_in: None,
        message,
        transient: true,
    }
}

/// How one attempt ended, when it did not produce a reply.
pub(crate) enum Failure {
    /// Worth another attempt, after `after` when the server said so.
    Retry {
        error: AgentError,
        after: Option<Duration>,
    },
    Fatal(AgentError),
}

pub(crate) fn api_error(
    status: impl std::fmt::Display,
    message: &str,
    transient: bool,
) -> AgentError {
    AgentError {
        usage_limit: false,
        stops_run: false,
        resets_in: None,
        message: format!("API Error: {status} {message}"),
        transient,
    }
}

/// What to do with an HTTP error status.
pub(crate) fn classify(status: u16, message: &str, retry_after: Option<Duration>) -> Failure {
    let lower = message.to_lowercase();
    match status {
        429 if ["spend", "credit", "billing", "quota", "usage limit"]
            .iter()
            .any(|w| lower.contains(w)) =>
        {
            Failure::Fatal(AgentError {
                usage_limit: true,
                stops_run: false,
                resets_in: retry_after,
                ..api_error(status, message, false)
            })
        }
        429 => Failure::Retry {
            error: api_error(status, message, true),
            after: retry_after,
        },
        500 | 502 | 503 | 504 | 529 => Failure::Retry {
            error: api_error(status, message, true),
            after: retry_after,
        },
        s if s >= 500 => Failure::Retry {
            error: api_error(status, message, true),
            after: retry_after,
        },
        _ => Failure::Fatal(api_error(status, message, false)),
    }
}

/// A response's body, from either transport.
pub(crate) enum Answer {
    Http2(h2::RecvStream),
    Hyper(hyper::body::Incoming),
}

impl Answer {
    /// The next piece of the body (`None`: it ended).
    pub(crate) async fn chunk(&mut self) -> Option<Result<Bytes, String>> {
        match self {
            Answer::Http2(body) => super::http2::next_chunk(body)
                .await
                .map(|c| c.map_err(|e| e.to_string())),
            Answer::Hyper(body) => loop {
                match body.frame().await? {
                    Ok(frame) => {
                        if let Ok(data) = frame.into_data() {
                            break Some(Ok(data));
                        }
                    }
                    Err(e) => break Some(Err(e.to_string())),
                }
            },
        }
    }

    /// The whole (short) body of an error answer; what arrived when it breaks off.
    pub(crate) async fn collect(mut self) -> Vec<u8> {
        let mut all = Vec::new();
        while let Some(Ok(chunk)) = self.chunk().await {
            all.extend_from_slice(&chunk);
        }
        all
    }
}

/// Exponential backoff with jitter: 0.5 s, 1 s, 2 s, 4 s, 8 s, 8 s … each scaled by a random
/// factor in [0.5, 1] so that a fan-out hit by one 529 does not retry in lockstep.
pub(crate) fn backoff(attempt: u32) -> Duration {
    let base = 0.5 * 2f64.powi(attempt.saturating_sub(1).min(4).cast_signed());
    Duration::from_secs_f64(base.min(8.0) * (0.5 + fastrand::f64() / 2.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_classification() {
        let retried = |s, m: &str| matches!(classify(s, m, None), Failure::Retry { .. });
        for s in [429, 500, 502, 503, 504, 529] {
            assert!(retried(s, "busy"), "{s}");
        }
        for s in [400, 401, 403, 404, 413] {
            assert!(!retried(s, "no"), "{s}");
        }
        assert!(!retried(429, "You have reached your spend limit"));
    }

    #[test]
    fn backoff_grows_to_8s_with_jitter() {
        for (attempt, max) in [(1, 0.5), (2, 1.0), (3, 2.0), (5, 8.0), (9, 8.0)] {
            let d = backoff(attempt).as_secs_f64();
            assert!(d >= max / 2.0 && d <= max, "attempt {attempt}: {d}");
        }
    }
}
