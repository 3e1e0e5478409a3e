//! One HTTP/2 connection to an HTTPS API, shared by every call: the `messages` backend's
//! transport when the server speaks h2 (api.anthropic.com does; `messages` falls back to
//! hyper's pooled client for plain `http://` and for servers that answer ALPN with HTTP/1.1).
//!
//! Why not hyper's client here: it hands each request to the connection's task through a
//! channel, spawns a task per request to await the response and answers the caller through a
//! second channel: three tasks and as many wake-ups per call. Here the calling task sends on
//! the shared connection and awaits its own response; only the connection itself runs as a
//! task. bench/README.md ("The messages backend against the mock") has the numbers.
//!
//! The connection is opened by the first call (the others wait for it rather than opening their
//! own) and opened again by the next call after it ends (the server's GOAWAY, an idle close, a
//! network error). A call whose request never left (the connection was already closing) is sent
//! once more on a fresh connection; anything else is the caller's to retry.

use super::reach::SendError;
use bytes::Bytes;
use h2::client::SendRequest;
use http::{HeaderMap, HeaderValue, Method, Request, Response, Uri};
use std::sync::{Arc, Mutex};

/// The settings hyper's client uses, so that moving off it changes nothing on the wire: wide
/// receive windows (an answer never waits on a WINDOW_UPDATE), 16 KiB frames and header lists.
const STREAM_WINDOW: u32 = 2 * 1024 * 1024;
const CONNECTION_WINDOW: u32 = 5 * 1024 * 1024;
const MAX_HEADER_LIST: u32 = 16 * 1024;

/// The open connection's sender and its number (a closed connection clears only itself).
type Slot = Mutex<Option<(u64, SendRequest<Bytes>)>>;

type Connection =
    h2::client::Connection<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, Bytes>;

/// The server answered ALPN with something other than `h2`: use an HTTP/1.1 client instead.
#[derive(Debug)]
pub(crate) struct NotHttp2;

pub(crate) struct Http2 {
    tls: tokio_rustls::TlsConnector,
    server_name: rustls::pki_types::ServerName<'static>,
    host: String,
    port: u16,
    current: Arc<Slot>,
    /// Held while a connection is being opened: one at a time.
    connecting: tokio::sync::Mutex<u64>,
    /// The server answered ALPN without h2: no call tries again.
    without_h2: std::sync::atomic::AtomicBool,
}

impl Http2 {
    /// For `https://` URLs (`None` otherwise). `tls` must offer `h2` in its ALPN protocols.
    pub(crate) fn new(uri: &Uri, tls: Arc<rustls::ClientConfig>) -> Option<Http2> {
        if uri.scheme_str() != Some("https") {
            return None;
        }
        let host = uri.host()?.trim_start_matches('[').trim_end_matches(']');
        let server_name = rustls::pki_types::ServerName::try_from(host.to_string()).ok()?;
        Some(Http2 {
            tls: tokio_rustls::TlsConnector::from(tls),
            server_name,
            host: host.to_string(),
            port: uri.port_u16().unwrap_or(443),
            current: Arc::default(),
            connecting: tokio::sync::Mutex::new(0),
            without_h2: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Sends a request with `body` and waits for the response's head. `Err(Ok(NotHttp2))`: the
    /// server does not speak h2 (nothing was sent; every later call gets it at once).
    pub(crate) async fn send(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> Result<Response<h2::RecvStream>, Result<NotHttp2, SendError>> {
        let mut fresh = false;
        loop {
            let (number, sender) = self.sender(fresh).await?;
            let mut request = Request::new(());
            *request.method_mut() = method.clone();
            *request.uri_mut() = uri.clone();
            *request.headers_mut() = headers.clone();
            request
                .headers_mut()
                .insert(http::header::CONTENT_LENGTH, HeaderValue::from(body.len()));
            let sent = async {
                let mut sender = sender.ready().await?;
                let (response, mut stream) = sender.send_request(request, body.is_empty())?;
                if !body.is_empty() {
                    stream.send_data(body.clone(), true)?;
                }
                Ok::<_, h2::Error>(response)
            }
            .await;
            let response = match sent {
                Ok(r) => r,
                // The connection is going or gone and the request did not leave: once more on
                // a new one.
                Err(_) if !fresh => {
                    self.forget(number);
                    fresh = true;
                    continue;
                }
                Err(e) => {
                    self.forget(number);
                    return Err(Err(SendError::other(e)));
                }
            };
            return match response.await {
                Ok(r) => Ok(r),
                // Not looked at by the server: refused, or past the last stream its graceful
                // GOAWAY said it would answer (a connection closing raced the request). After
                // an error GOAWAY the request may have been read: the caller's retry decides.
                Err(e)
                    if !fresh
                        && (e.reason() == Some(h2::Reason::REFUSED_STREAM)
                            || (e.is_go_away()
                                && e.is_remote()
                                && e.reason() == Some(h2::Reason::NO_ERROR))) =>
                {
                    self.forget(number);
                    fresh = true;
                    continue;
                }
                Err(e) => {
                    if e.is_go_away() || e.is_io() {
                        self.forget(number);
                    }
                    Err(Err(SendError::other(e)))
                }
            };
        }
    }

    /// The open connection, or a new one (`fresh`: not the one just found closing).
    async fn sender(
        &self,
        fresh: bool,
    ) -> Result<(u64, SendRequest<Bytes>), Result<NotHttp2, SendError>> {
        if !fresh && let Some(s) = self.open() {
            return Ok(s);
        }
        if self.without_h2.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(Ok(NotHttp2));
        }
        let mut opened = self.connecting.lock().await;
        // Someone else opened one while this call waited, or found the server without h2.
        if let Some(s) = self.open() {
            return Ok(s);
        }
        if self.without_h2.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(Ok(NotHttp2));
        }
        let (sender, connection) = match self.connect().await {
            Err(Ok(NotHttp2)) => {
                self.without_h2
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                return Err(Ok(NotHttp2));
            }
            other => other?,
        };
        *opened += 1;
        let number = *opened;
        *self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((number, sender.clone()));
        let current = self.current.clone();
        tokio::spawn(async move {
            let _ = connection.await;
            forget(&current, number);
        });
        Ok((number, sender))
    }

    fn open(&self) -> Option<(u64, SendRequest<Bytes>)> {
        self.current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn forget(&self, number: u64) {
        forget(&self.current, number);
    }

    async fn connect(
        &self,
    ) -> Result<(SendRequest<Bytes>, Connection), Result<NotHttp2, SendError>> {
        let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| Err(SendError::from_error(&e)))?;
        // TCP_NODELAY: a request goes out as two writes (HEADERS, DATA); with Nagle's algorithm
        // and the server's delayed ACK the second waits ~40 ms, on every call.
        tcp.set_nodelay(true)
            .map_err(|e| Err(SendError::other(e)))?;
        let tls = self
            .tls
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|e| Err(SendError::from_error(&e)))?;
        if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
            tracing::debug!(host = %self.host, port = self.port, "the server does not offer HTTP/2: HTTP/1.1");
            return Err(Ok(NotHttp2));
        }
        tracing::debug!(host = %self.host, port = self.port, "HTTP/2 connection opened");
        h2::client::Builder::new()
            .initial_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .max_header_list_size(MAX_HEADER_LIST)
            .enable_push(false)
            .handshake(tls)
            .await
            .map_err(|e| Err(SendError::other(format!("HTTP/2 with {}: {e}", self.host))))
    }
}

fn forget(current: &Slot, number: u64) {
    let mut current = current
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if current.as_ref().is_some_and(|(n, _)| *n == number) {
        *current = None;
    }
}

/// The next chunk of a response body, its flow-control credit given back at once (the body is
/// read as it comes, so the window only guards against a peer that sends faster than that).
pub(crate) async fn next_chunk(body: &mut h2::RecvStream) -> Option<Result<Bytes, h2::Error>> {
    let chunk = body.data().await?;
    if let Ok(bytes) = &chunk {
        let _ = body.flow_control().release_capacity(bytes.len());
    }
    Some(chunk)
}
