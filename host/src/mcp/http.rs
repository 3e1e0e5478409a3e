//! `wfhost mcp --http`: MCP as streamable HTTP on loopback. Every other local user can
//! connect to a loopback port, so the server holds up against one without the token: headers
//! must arrive in time, silent connections are closed, connections and sessions are capped,
//! sessions expire, the token is compared in constant time, and a browser page of another
//! origin is refused (DNS rebinding). Running out of file descriptors is waited out, not fatal.

use super::Server;
use crate::config::Config;
use http_body_util::BodyExt as _;
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Why 10 s: a client on this machine sends a request's headers in milliseconds; one that
/// trickles them holds a connection for nothing.
pub(crate) const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Why 60 s: a live connection is never that quiet — an open event stream carries a ping every
/// 15 s (rmcp's `sse_keep_alive`) — so a connection with no byte either way for a minute is
/// abandoned, or held open on purpose.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Why 64: an MCP client holds one or two connections (its requests and its event stream);
/// 64 serves a few dozen clients, and stays far below the process's file descriptors, so a
/// flood of connections cannot take the server down with it.
pub(crate) const MAX_CONNECTIONS: usize = 64;
/// Why 32: a session is a client that said `initialize`; a person's coding agents are a
/// handful. Past this, `initialize` is answered 503 until a session ends or expires.
pub(crate) const MAX_SESSIONS: usize = 32;
/// Why 5 minutes: a session nobody used for that long is gone (its client reconnects with a
/// new `initialize`); its memory comes back.
pub(crate) const SESSION_IDLE: Duration = Duration::from_secs(300);

/// The first wait after a failed `accept` (EMFILE…), doubled up to a second.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// A connection's stream that notes when a byte last went either way.
struct Watched<S> {
    inner: S,
    since: Instant,
    /// Milliseconds after `since` of the last byte read or written (0: none yet).
    last: Arc<AtomicU64>,
}

impl<S> Watched<S> {
    fn touch(&self) {
        let ms = u64::try_from(self.since.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        self.last.store(ms, Ordering::Relaxed);
    }
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Watched<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.touch();
        }
        polled
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, std::task::Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        polled
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, std::convert::Infallible>;

fn plain(status: u16, text: &'static str) -> hyper::Response<Body> {
    hyper::Response::builder()
        .status(status)
        .header(hyper::header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(http_body_util::Full::new(Bytes::from_static(text.as_bytes())).boxed_unsync())
        .expect("a valid response")
}

/// What every request must pass before rmcp sees it.
struct Gate {
    /// blake3 of `Bearer TOKEN`: compared as hashes, in constant time (`blake3::Hash`'s `==`).
    expected: blake3::Hash,
    /// The origins a browser page may call from: this server's own.
    origins: Vec<String>,
    sessions: Arc<LocalSessionManager>,
}

impl Gate {
    async fn check(
        &self,
        req: &hyper::Request<hyper::body::Incoming>,
    ) -> Option<hyper::Response<Body>> {
        // A page of another origin (DNS rebinding, a site open in the browser) is refused
        // before anything else; clients that are not browsers send no Origin.
        if let Some(origin) = req.headers().get(hyper::header::ORIGIN) {
            let allowed = origin
                .to_str()
                .is_ok_and(|o| self.origins.iter().any(|a| a.eq_ignore_ascii_case(o)));
            if !allowed {
                return Some(plain(
                    403,
                    "wfhost mcp: requests from a web page of another origin are refused\n",
                ));
            }
        }
        let authorized = req
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .is_some_and(|v| blake3::hash(v.as_bytes()) == self.expected);
        if !authorized {
            let mut r = plain(
                401,
                "wfhost mcp: a bearer token is required (Authorization: Bearer TOKEN)\n",
            );
            r.headers_mut().insert(
                hyper::header::WWW_AUTHENTICATE,
                hyper::header::HeaderValue::from_static("Bearer"),
            );
            return Some(r);
        }
        // A request without a session starts one (`initialize`): capped.
        let new_session =
            req.method() == hyper::Method::POST && !req.headers().contains_key("mcp-session-id");
        if new_session && self.sessions.sessions.read().await.len() >= MAX_SESSIONS {
            return Some(plain(
                503,
                "wfhost mcp: too many open sessions (32); end one (DELETE /mcp with its mcp-session-id) or wait 5 minutes for idle ones to expire\n",
            ));
        }
        None
    }
}

/// Serves MCP as streamable HTTP on `addr` (loopback only) at `/mcp`, each request carrying
/// `Authorization: Bearer TOKEN`; others get 401. The token is `$WFHOST_MCP_TOKEN`, or a fresh
/// random one printed on stderr.
pub(crate) async fn serve(
    cwd: PathBuf,
    config: Config,
    addr: std::net::SocketAddr,
) -> anyhow::Result<()> {
    if !addr.ip().is_loopback() {
        anyhow::bail!(
            crate::ExitError::usage(format!("`--http {addr}` is not a loopback address"))
                .hint("wfhost mcp serves this machine only: use 127.0.0.1:PORT or [::1]:PORT (put a proxy with TLS and auth in front to reach it from elsewhere)")
        );
    }
    let token = token()?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let port = local.port();
    let mut sessions = LocalSessionManager::default();
    sessions.session_config.keep_alive = Some(SESSION_IDLE);
    let sessions = Arc::new(sessions);
    let service = TowerToHyperService::new(StreamableHttpService::new(
        move || Ok(Server::new(cwd.clone(), config.clone())),
        sessions.clone(),
        StreamableHttpServerConfig::default(),
    ));
    let gate = Arc::new(Gate {
        expected: blake3::hash(format!("Bearer {token}").as_bytes()),
        origins: ["127.0.0.1", "localhost", "[::1]"]
            .iter()
            .flat_map(|h| [format!("http://{h}:{port}"), format!("https://{h}:{port}")])
            .collect(),
        sessions,
    });
    eprintln!("wfhost mcp: serving streamable HTTP on http://{local}/mcp");
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut backoff = ACCEPT_BACKOFF;
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => {
                backoff = ACCEPT_BACKOFF;
                stream
            }
            Err(e) => {
                tracing::debug!(error = %e, "mcp --http: accept failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tokio::spawn(refuse_busy(stream));
            continue;
        };
        let (service, gate) = (service.clone(), gate.clone());
        tokio::spawn(async move {
            serve_connection(stream, service, gate).await;
            drop(slot);
        });
    }
}

/// Over the connection cap: a 503 and the connection closed, at once.
async fn refuse_busy(mut stream: tokio::net::TcpStream) {
    use tokio::io::AsyncWriteExt as _;
    let text = "wfhost mcp: too many connections (64); try again when others close\n";
    let reply = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
        text.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(reply.as_bytes())).await;
}

type Service = TowerToHyperService<StreamableHttpService<Server, LocalSessionManager>>;

async fn serve_connection(stream: tokio::net::TcpStream, service: Service, gate: Arc<Gate>) {
    let last = Arc::new(AtomicU64::new(0));
    let since = Instant::now();
    let io = TokioIo::new(Watched {
        inner: stream,
        since,
        last: last.clone(),
    });
    let guarded = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let (service, gate) = (service.clone(), gate.clone());
        async move {
            use hyper::service::Service as _;
            if let Some(refused) = gate.check(&req).await {
                return Ok::<_, std::convert::Infallible>(refused);
            }
            service
                .call(req)
                .await
                .map(|r| r.map(|b| b.map_err(|never| match never {}).boxed_unsync()))
        }
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    let conn = builder.serve_connection(io, guarded);
    tokio::pin!(conn);
    loop {
        tokio::select! {
            _ = &mut conn => return,
            () = tokio::time::sleep(Duration::from_secs(2)) => {
                let last = last.load(Ordering::Relaxed);
                let quiet = since.elapsed().saturating_sub(Duration::from_millis(last));
                // A connection that never sent a byte gets the headers' time, not a minute
                // (hyper's header timer starts at the first byte).
                let limit = if last == 0 { HEADER_TIMEOUT } else { IDLE_TIMEOUT };
                if quiet > limit {
                    // Dropping the connection closes its socket.
                    return;
                }
            }
        }
    }
}

/// `$WFHOST_MCP_TOKEN` (16 characters at least), or a fresh random token, printed.
fn token() -> anyhow::Result<String> {
    match std::env::var("WFHOST_MCP_TOKEN") {
        Ok(t) if t.len() >= 16 => Ok(t),
        Ok(_) => anyhow::bail!(
            crate::ExitError::usage("$WFHOST_MCP_TOKEN is shorter than 16 characters")
                .hint("use a long random token, or unset it and wfhost makes one")
        ),
        Err(_) => {
            let random = crate::random_key()
                .map_err(|e| anyhow::anyhow!("cannot read /dev/urandom for a token: {e}"))?;
            let t = blake3::hash(&random).to_hex()[..32].to_string();
            eprintln!("wfhost mcp: bearer token {t} (set $WFHOST_MCP_TOKEN to choose it)");
            Ok(t)
        }
    }
}
