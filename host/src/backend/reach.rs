//! Why a request did not reach an API: the connection was refused, the host has no address,
//! its TLS certificate is not trusted — or something passing. The first two stop a run after
//! their retries and the third at once (`AgentError::stops_run`), said once with the URL, the
//! cause and what to change, rather than once per agent as `client error (Connect)`.

use std::error::Error;

/// What kept a request from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reach {
    /// Nothing listens there (yet): worth retrying, then the run stops (75).
    Refused,
    /// The host name has no address: retried (DNS can be passing trouble), then the run stops.
    NoHost,
    /// The server's certificate is not trusted, and will not be until the configuration
    /// changes: not retried, the run stops (2). The text says which problem.
    Certificate(String),
    /// Anything else (a reset, a timeout, a broken stream): retried as before.
    Other,
}

/// A request that did not get an answer: what happened, and its class.
#[derive(Debug, Clone)]
pub(crate) struct SendError {
    pub detail: String,
    pub reach: Reach,
}

impl SendError {
    pub(crate) fn other(detail: impl std::fmt::Display) -> SendError {
        SendError {
            detail: detail.to_string(),
            reach: Reach::Other,
        }
    }

    /// From an error and its causes (hyper's, rustls', std's).
    pub(crate) fn from_error(e: &(dyn Error + 'static)) -> SendError {
        SendError {
            detail: chain(e),
            reach: classify(e),
        }
    }

    /// The message an agent fails with: the URL, the cause, and for a failure the user must
    /// fix, what to change.
    pub(crate) fn message(&self, url: &str, settings: &str) -> String {
        match &self.reach {
            Reach::Refused => format!(
                "cannot connect to `{url}`: connection refused (nothing listens there)\nhint: start the server, or point {settings} at the right host and port"
            ),
            Reach::NoHost => format!(
                "cannot connect to `{url}`: the host name has no address ({})\nhint: check the host name in {settings}",
                self.detail
            ),
            Reach::Certificate(problem) => format!(
                "cannot connect to `{url}`: its TLS certificate is not trusted: {problem}\nhint: trust the server's CA with `SSL_CERT_FILE=ca.pem` (or add it to the system's trust store), or check {settings}"
            ),
            Reach::Other => format!("connection error with `{url}`: {}", self.detail),
        }
    }
}

/// The error and its causes in one line, the repeats dropped (hyper's wrappers say
/// `client error (Connect)` above the cause that matters).
fn chain(e: &(dyn Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    walk(e, &mut |cause| {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        false
    });
    parts.join(": ")
}

fn classify(e: &(dyn Error + 'static)) -> Reach {
    let mut reach = Reach::Other;
    walk(e, &mut |cause| {
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            reach = Reach::Refused;
            return true;
        }
        if let Some(rustls::Error::InvalidCertificate(c)) = cause.downcast_ref::<rustls::Error>() {
            reach = Reach::Certificate(certificate_problem(c));
            return true;
        }
        let text = cause.to_string();
        if text.contains("failed to lookup address")
            || text.contains("Name or service not known")
            || text.contains("dns error")
        {
            reach = Reach::NoHost;
            return true;
        }
        false
    });
    reach
}

/// Visits an error and every cause below it, the inner error of an `io::Error` too (its
/// `source()` skips it); stops when `f` says so.
fn walk(e: &(dyn Error + 'static), f: &mut dyn FnMut(&(dyn Error + 'static)) -> bool) {
    let mut next = Some(e);
    let mut depth = 0;
    while let Some(cause) = next {
        if f(cause) || depth > 16 {
            return;
        }
        depth += 1;
        next = match cause
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn Error + 'static)),
            None => cause.source(),
        };
    }
}

fn certificate_problem(c: &rustls::CertificateError) -> String {
    use rustls::CertificateError as C;
    match c {
        C::UnknownIssuer => {
            "it is signed by an unknown issuer (a private CA, or self-signed)".into()
        }
        C::Expired | C::ExpiredContext { .. } => "it has expired".into(),
        C::NotValidYet | C::NotValidYetContext { .. } => {
            "it is not valid yet (check the clock)".into()
        }
        C::NotValidForName | C::NotValidForNameContext { .. } => {
            "it is not valid for this host name".into()
        }
        C::Revoked => "it has been revoked".into(),
        C::BadSignature => "its signature is bad".into(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_connection_inside_wrappers_is_found() {
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let wrapped = std::io::Error::other(io);
        let e = SendError::from_error(&wrapped);
        assert_eq!(e.reach, Reach::Refused);
        let m = e.message("http://127.0.0.1:9/v1/messages", "`messages.base_url`");
        assert!(
            m.starts_with("cannot connect to `http://127.0.0.1:9/v1/messages`: connection refused"),
            "{m}"
        );
    }

    #[test]
    fn an_untrusted_certificate_says_which_problem() {
        let tls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let e = SendError::from_error(&std::io::Error::other(tls));
        assert!(
            matches!(&e.reach, Reach::Certificate(p) if p.contains("unknown issuer")),
            "{e:?}"
        );
        assert!(
            e.message("https://x", "`messages.base_url`")
                .contains("SSL_CERT_FILE")
        );
    }
}
