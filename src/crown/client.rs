//! The WebSocket exchange with the Crown: one text frame out, one reply in, then a clean close.
//!
//! Invariants:
//! - one deadline covers TCP connect, TLS, the upgrade, sending the brief and the reply;
//! - the reply is capped at `max_reply_bytes` by tungstenite itself (message and frame limits),
//!   so an oversized reply is never buffered whole and is reported as oversized;
//! - the bearer token travels only in the `Authorization` header (marked sensitive); it is
//!   never part of the URL, an error message or a log line ([`Token`]'s `Debug` prints `***`);
//! - each way the exchange can fail is its own [`CrownError`] variant, so the operator is told
//!   which one happened.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::ServerName;
use serde_json::{Map, Value};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::{CapacityError, ProtocolError, UrlError};
use tokio_tungstenite::tungstenite::http::{HeaderValue, header};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, client_async_with_config};

use super::protocol::json_kind;

/// How long the close handshake may take once the reply is in; a slow close never fails a
/// handshake that already has its reply.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// Characters of an unparseable reply quoted in the error.
const EXCERPT_CHARS: usize = 80;

/// A bearer token. `Debug` prints `***`; the value leaves only through [`Token::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// `None` for an empty or blank value.
    pub fn new(value: impl Into<String>) -> Option<Token> {
        let v = value.into();
        (!v.trim().is_empty()).then_some(Token(v))
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("***")
    }
}

/// Settings of one exchange.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Connect + reply deadline.
    pub timeout: Duration,
    pub max_reply_bytes: usize,
    pub token: Option<Token>,
    /// PEM file of extra CA certificates trusted for `wss://` (`RAZAR_CROWN_CA`).
    pub ca_file: Option<PathBuf>,
}

/// Why an exchange failed. Messages name the URL with any credentials stripped.
#[derive(Debug, thiserror::Error)]
pub enum CrownError {
    #[error("bad crown url {url}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("CROWN_TOKEN cannot be sent: it contains characters not allowed in an HTTP header")]
    BadToken,
    #[error("crown at {url} refused the connection or is unreachable: {source}")]
    Unreachable {
        url: String,
        #[source]
        source: std::io::Error,
    },
    #[error("crown at {url} timed out: no reply within {} ({stage})", humanize(*timeout))]
    TimedOut { url: String, timeout: Duration, stage: &'static str },
    #[error("crown at {url} closed the connection before replying{}", detail_suffix(detail))]
    ClosedBeforeReply { url: String, detail: String },
    #[error("crown at {url} replied with something that is not JSON ({reason}); reply begins {excerpt:?}")]
    NotJson { url: String, reason: String, excerpt: String },
    #[error("crown at {url} replied with JSON that is {kind}, not an object")]
    NotObject { url: String, kind: &'static str },
    #[error("crown at {url} sent a reply larger than the {limit}-byte limit (crown.max_reply_bytes)")]
    Oversized { url: String, limit: usize },
    #[error("tls with crown at {url} failed: {detail}")]
    Tls { url: String, detail: String },
    #[error("cannot use the CA file {} (RAZAR_CROWN_CA): {reason}", path.display())]
    CaFile { path: PathBuf, reason: String },
    #[error("crown at {url} rejected the websocket upgrade with HTTP {status}")]
    Rejected { url: String, status: u16 },
    #[error("websocket protocol error with crown at {url}: {detail}")]
    Protocol { url: String, detail: String },
}

impl CrownError {
    /// A stable short name, for journals and the `result` metrics label.
    pub fn kind(&self) -> &'static str {
        match self {
            CrownError::BadUrl { .. } => "bad_url",
            CrownError::BadToken => "bad_token",
            CrownError::Unreachable { .. } => "unreachable",
            CrownError::TimedOut { .. } => "timeout",
            CrownError::ClosedBeforeReply { .. } => "closed",
            CrownError::NotJson { .. } => "not_json",
            CrownError::NotObject { .. } => "not_object",
            CrownError::Oversized { .. } => "oversized",
            CrownError::Tls { .. } | CrownError::CaFile { .. } => "tls",
            CrownError::Rejected { .. } => "rejected",
            CrownError::Protocol { .. } => "protocol",
        }
    }
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() { String::new() } else { format!(" ({detail})") }
}

fn humanize(d: Duration) -> String {
    if d.subsec_millis() == 0 { format!("{}s", d.as_secs()) } else { format!("{}ms", d.as_millis()) }
}

/// `url` as messages and logs show it ([`crate::redact::url`]).
pub fn redact_url(url: &str) -> String {
    crate::redact::url(url)
}

/// Sends `request` as one text frame to the Crown at `url` and returns its reply object.
pub async fn exchange(url: &str, request: &str, opts: &ClientOptions) -> Result<Map<String, Value>, CrownError> {
    let shown = redact_url(url);
    let deadline = Instant::now() + opts.timeout;
    let mut req = url.into_client_request().map_err(|e| CrownError::BadUrl {
        url: shown.clone(),
        reason: crate::redact::url_in(&lowercase_first(&e.to_string()), url),
    })?;
    let uri = req.uri().clone();
    let tls = match uri.scheme_str() {
        Some("wss") => true,
        Some("ws") => false,
        _ => return Err(CrownError::BadUrl { url: shown, reason: "use a ws:// or wss:// URL".into() }),
    };
    let host = uri.host().map(|h| h.trim_start_matches('[').trim_end_matches(']').to_owned()).unwrap_or_default();
    if host.is_empty() {
        return Err(CrownError::BadUrl { url: shown, reason: "no host".into() });
    }
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    if let Some(token) = &opts.token {
        let mut value =
            HeaderValue::from_str(&format!("Bearer {}", token.expose())).map_err(|_| CrownError::BadToken)?;
        value.set_sensitive(true);
        req.headers_mut().insert(header::AUTHORIZATION, value);
    }
    let tls_config = if tls { Some(tls_config(opts.ca_file.as_deref())?) } else { None };
    let config = WebSocketConfig::default()
        .max_message_size(Some(opts.max_reply_bytes))
        .max_frame_size(Some(opts.max_reply_bytes));

    let timed_out = |stage| CrownError::TimedOut { url: shown.clone(), timeout: opts.timeout, stage };
    let socket = timeout_at(deadline, TcpStream::connect((host.as_str(), port)))
        .await
        .map_err(|_| timed_out("connecting"))?
        .map_err(|source| CrownError::Unreachable { url: shown.clone(), source })?;
    let _ = socket.set_nodelay(true);
    // TLS is done here rather than inside tokio-tungstenite so that a failed TLS handshake is
    // reported as such and not as a connection closed during the upgrade.
    let stream = match tls_config {
        None => MaybeTlsStream::Plain(socket),
        Some(cfg) => {
            let name = ServerName::try_from(host.as_str()).map(|n| n.to_owned()).map_err(|_| CrownError::BadUrl {
                url: shown.clone(),
                reason: "the host is not a valid tls server name".into(),
            })?;
            let tls_stream = timeout_at(deadline, TlsConnector::from(cfg).connect(name, socket))
                .await
                .map_err(|_| timed_out("tls handshake"))?
                .map_err(|e| tls_failure(e, &shown))?;
            MaybeTlsStream::Rustls(tls_stream)
        }
    };
    let (mut ws, _response) = timeout_at(deadline, client_async_with_config(req, stream, Some(config)))
        .await
        .map_err(|_| timed_out("websocket upgrade"))?
        .map_err(|e| classify(e, &shown, opts.max_reply_bytes))?;

    timeout_at(deadline, ws.send(Message::text(request)))
        .await
        .map_err(|_| timed_out("sending the brief"))?
        .map_err(|e| classify(e, &shown, opts.max_reply_bytes))?;

    let text = timeout_at(deadline, async {
        loop {
            match ws.next().await {
                None => return Err(CrownError::ClosedBeforeReply { url: shown.clone(), detail: String::new() }),
                Some(Err(e)) => return Err(classify(e, &shown, opts.max_reply_bytes)),
                Some(Ok(Message::Text(t))) => return Ok(t.as_str().to_owned()),
                Some(Ok(Message::Binary(b))) => {
                    return String::from_utf8(b.to_vec()).map_err(|_| CrownError::NotJson {
                        url: shown.clone(),
                        reason: "binary frame that is not UTF-8".into(),
                        excerpt: String::new(),
                    });
                }
                Some(Ok(Message::Close(frame))) => {
                    let detail = frame.map(|f| format!("close code {}", u16::from(f.code))).unwrap_or_default();
                    return Err(CrownError::ClosedBeforeReply { url: shown.clone(), detail });
                }
                // Pings are answered by tungstenite on the next read; nothing else counts.
                Some(Ok(_)) => continue,
            }
        }
    })
    .await
    .map_err(|_| timed_out("waiting for the reply"))??;

    // Clean close: send ours, read until the peer's close (or give up after a short grace).
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        let _ = ws.close(None).await;
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;

    parse_reply(&text, &shown)
}

/// The reply text → its JSON object.
pub fn parse_reply(text: &str, url: &str) -> Result<Map<String, Value>, CrownError> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(other) => Err(CrownError::NotObject { url: url.to_owned(), kind: json_kind(&other) }),
        Err(e) => Err(CrownError::NotJson {
            url: url.to_owned(),
            reason: e.to_string(),
            excerpt: text.chars().take(EXCERPT_CHARS).collect(),
        }),
    }
}

/// A failed TLS handshake, with the rustls reason when there is one.
fn tls_failure(e: std::io::Error, url: &str) -> CrownError {
    let detail = match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(tls) => tls.to_string(),
        None if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            "the server closed the connection during the tls handshake (is it serving plain ws://?)".into()
        }
        None => e.to_string(),
    };
    CrownError::Tls { url: url.to_owned(), detail }
}

/// Maps a tungstenite error to what the operator needs to hear.
fn classify(e: WsError, url: &str, limit: usize) -> CrownError {
    let url = url.to_owned();
    match e {
        WsError::Capacity(CapacityError::MessageTooLong { .. }) => CrownError::Oversized { url, limit },
        WsError::Capacity(other) => CrownError::Protocol { url, detail: lowercase_first(&other.to_string()) },
        WsError::Tls(t) => CrownError::Tls { url, detail: lowercase_first(&t.to_string()) },
        WsError::Io(io) => {
            // tokio-rustls reports handshake failures (bad certificate, unknown CA) as
            // `InvalidData` I/O errors wrapping the rustls error.
            if let Some(tls) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                CrownError::Tls { url, detail: tls.to_string() }
            } else {
                CrownError::ClosedBeforeReply { url, detail: io.to_string() }
            }
        }
        WsError::ConnectionClosed | WsError::AlreadyClosed => {
            CrownError::ClosedBeforeReply { url, detail: String::new() }
        }
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
            CrownError::ClosedBeforeReply { url, detail: "reset without a close handshake".into() }
        }
        WsError::Protocol(ProtocolError::HandshakeIncomplete) => {
            CrownError::ClosedBeforeReply { url, detail: "during the websocket upgrade".into() }
        }
        WsError::Protocol(p) => CrownError::Protocol { url, detail: lowercase_first(&p.to_string()) },
        WsError::Http(resp) => CrownError::Rejected { url, status: resp.status().as_u16() },
        WsError::HttpFormat(h) => CrownError::Protocol { url, detail: h.to_string() },
        WsError::Url(UrlError::TlsFeatureNotEnabled) => {
            CrownError::BadUrl { url, reason: "tls support is not built in".into() }
        }
        WsError::Url(u) => CrownError::BadUrl { url, reason: lowercase_first(&u.to_string()) },
        WsError::Utf8 => CrownError::NotJson { url, reason: "text frame is not UTF-8".into(), excerpt: String::new() },
        other => CrownError::Protocol { url, detail: lowercase_first(&other.to_string()) },
    }
}

fn lowercase_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The rustls client config: the webpki roots plus every certificate in `ca_file`.
fn tls_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, CrownError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let ca_err = |reason: String| CrownError::CaFile { path: path.to_path_buf(), reason };
        let pem = std::fs::read(path).map_err(|e| ca_err(e.to_string()))?;
        let certs: Vec<_> = rustls_pemfile::certs(&mut pem.as_slice())
            .collect::<Result<_, _>>()
            .map_err(|e| ca_err(format!("not a PEM certificate file: {e}")))?;
        if certs.is_empty() {
            return Err(ca_err("no PEM certificates in it".into()));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| ca_err(format!("unusable certificate: {e}")))?;
        }
    }
    // An explicit provider: whether a process-wide default is installed depends on which other
    // crates enabled which rustls features.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| CrownError::Tls { url: String::new(), detail: e.to_string() })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_debug_is_redacted() {
        let t = Token::new("s3cret").unwrap();
        assert_eq!(format!("{t:?}"), "***");
        let opts =
            ClientOptions { timeout: Duration::from_secs(1), max_reply_bytes: 10, token: Some(t), ca_file: None };
        assert!(!format!("{opts:?}").contains("s3cret"));
        assert!(Token::new("  ").is_none());
    }

    #[test]
    fn urls_lose_credentials_and_queries() {
        assert_eq!(redact_url("wss://u:p@crown.example:8443/ws?token=x"), "wss://***@crown.example:8443/ws?…");
        assert_eq!(redact_url("ws://127.0.0.1:9/"), "ws://127.0.0.1:9/");
        assert_eq!(redact_url("ws://h"), "ws://h");
    }

    #[test]
    fn replies_are_classified() {
        assert!(parse_reply(r#"{"ack":"ok"}"#, "u").is_ok());
        assert_eq!(parse_reply("[1]", "u").unwrap_err().kind(), "not_object");
        assert_eq!(parse_reply("\"ack\"", "u").unwrap_err().kind(), "not_object");
        let e = parse_reply("hello crown", "u").unwrap_err();
        assert_eq!(e.kind(), "not_json");
        assert!(e.to_string().contains("\"hello crown\""), "{e}");
    }

    #[test]
    fn bad_urls_are_reported() {
        let opts = ClientOptions { timeout: Duration::from_secs(1), max_reply_bytes: 10, token: None, ca_file: None };
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let e = rt.block_on(exchange("http://127.0.0.1:1/", "{}", &opts)).unwrap_err();
        assert_eq!(e.kind(), "bad_url", "{e}");
        let e = rt.block_on(exchange("not a url", "{}", &opts)).unwrap_err();
        assert_eq!(e.kind(), "bad_url", "{e}");
    }

    #[test]
    fn missing_ca_file_is_a_tls_error() {
        let e = tls_config(Some(Path::new("/nonexistent/ca.pem"))).unwrap_err();
        assert_eq!(e.kind(), "tls");
        assert!(e.to_string().contains("RAZAR_CROWN_CA"));
    }
}
