//! The `/metrics` endpoint: a minimal HTTP/1.1 server on a tokio `TcpListener`.
//!
//! One request per connection (`Connection: close`), one task per connection. A request head
//! is bounded in size ([`MAX_REQUEST_BYTES`]) and in time ([`READ_TIMEOUT`]), the response
//! write in time ([`WRITE_TIMEOUT`]), and at most [`MAX_CONNECTIONS`] connections are served
//! at once (further ones are closed on accept), so a slow or hostile client costs a bounded
//! amount. Dropping the [`Exporter::serve`] future closes the listener and aborts every
//! connection task with it.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use super::Metrics;
use crate::config::{Env, MetricsConfig};

/// Port used when neither `metrics.port` nor [`PORT_ENV`] is set.
pub const DEFAULT_PORT: u16 = 9360;
/// Environment variable naming the exporter's port.
pub const PORT_ENV: &str = "RAZAR_METRICS_PORT";
/// Largest accepted request head (request line and headers).
pub const MAX_REQUEST_BYTES: usize = 8 * 1024;
/// Time a client has to send its request head.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Time a client has to take the response.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 64;

/// Content type of the Prometheus text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error(
        "metrics port {port} on {address} is already in use; set {PORT_ENV} or `metrics.port` in the config to a free port (0 picks one), or turn the exporter off with `metrics.enabled: false`"
    )]
    PortInUse { address: IpAddr, port: u16 },
    #[error(
        "cannot bind the metrics exporter to {addr}: {source}; change {PORT_ENV} / `metrics.port` or `metrics.address`"
    )]
    Bind {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("{PORT_ENV}={value:?} is not a port number: use 0-65535 (0 picks a free port)")]
    BadPortEnv { value: String },
}

/// The address to listen on: `metrics.address` with the port from `metrics.port`, else
/// [`PORT_ENV`], else [`DEFAULT_PORT`].
pub fn resolve_addr(cfg: &MetricsConfig, env: &dyn Env) -> Result<SocketAddr, MetricsError> {
    let port = match (cfg.port, env.var(PORT_ENV)) {
        (Some(port), _) => port,
        (None, Some(value)) => value.trim().parse().map_err(|_| MetricsError::BadPortEnv { value })?,
        (None, None) => DEFAULT_PORT,
    };
    Ok(SocketAddr::new(cfg.address, port))
}

/// A bound, not yet serving, exporter.
#[derive(Debug)]
pub struct Exporter {
    listener: TcpListener,
    addr: SocketAddr,
}

impl Exporter {
    /// Binds `addr` (port 0 picks a free port). A taken port is [`MetricsError::PortInUse`].
    pub async fn bind(addr: SocketAddr) -> Result<Exporter, MetricsError> {
        let listener = TcpListener::bind(addr).await.map_err(|source| match source.kind() {
            io::ErrorKind::AddrInUse => MetricsError::PortInUse { address: addr.ip(), port: addr.port() },
            _ => MetricsError::Bind { addr, source },
        })?;
        let addr = listener.local_addr().map_err(|source| MetricsError::Bind { addr, source })?;
        Ok(Exporter { listener, addr })
    }

    /// The bound address (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>/metrics`, for the state file and the start-up line.
    pub fn url(&self) -> String {
        format!("http://{}/metrics", self.addr)
    }

    /// Serves `metrics` until the future is dropped (spawn it; abort the task to stop).
    pub async fn serve(self, metrics: Metrics) {
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) if connections.len() < MAX_CONNECTIONS => {
                        connections.spawn(handle(stream, metrics.clone(), READ_TIMEOUT));
                    }
                    Ok((stream, peer)) => {
                        tracing::debug!(%peer, "metrics exporter busy; connection closed");
                        drop(stream);
                    }
                    Err(err) => {
                        // EMFILE and friends: back off instead of spinning on accept.
                        tracing::warn!(%err, "metrics exporter accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
    }
}

async fn handle(mut stream: TcpStream, metrics: Metrics, read_timeout: Duration) {
    let response = match tokio::time::timeout(read_timeout, read_head(&mut stream)).await {
        Ok(Ok(Some(head))) => route(&head, &metrics),
        Ok(Ok(None) | Err(Head::Io)) => return,
        Ok(Err(Head::TooLarge)) => Response::text(431, "Request Header Fields Too Large", "request too large\n"),
        Ok(Err(Head::Malformed)) => Response::text(400, "Bad Request", "bad request\n"),
        Err(_) => Response::text(408, "Request Timeout", "request timeout\n"),
    };
    let write = async {
        stream.write_all(&response.to_bytes()).await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(WRITE_TIMEOUT, write).await;
}

enum Head {
    TooLarge,
    Malformed,
    Io,
}

/// Reads up to the blank line ending the request head. `None`: the client closed without
/// sending anything.
async fn read_head(stream: &mut TcpStream) -> Result<Option<String>, Head> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await.map_err(|_| Head::Io)?;
        if n == 0 {
            return if buf.is_empty() { Ok(None) } else { Err(Head::Malformed) };
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = head_end(&buf) {
            buf.truncate(end);
            return String::from_utf8(buf).map(Some).map_err(|_| Head::Malformed);
        }
        if buf.len() >= MAX_REQUEST_BYTES {
            return Err(Head::TooLarge);
        }
    }
}

fn head_end(buf: &[u8]) -> Option<usize> {
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n");
    // Bare-LF clients (printf into nc) are tolerated.
    let lf = buf.windows(2).position(|w| w == b"\n\n");
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The response to one request head.
fn route(head: &str, metrics: &Metrics) -> Response {
    let line = head.lines().next().unwrap_or_default();
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Response::text(400, "Bad Request", "bad request\n");
    };
    if !version.starts_with("HTTP/1.") {
        return Response::text(505, "HTTP Version Not Supported", "only HTTP/1.x is served\n");
    }
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    if path != "/metrics" {
        return Response::text(404, "Not Found", "not found: razar serves /metrics\n");
    }
    match method {
        "GET" | "HEAD" => Response {
            content_type: CONTENT_TYPE,
            head_only: method == "HEAD",
            ..Response::text(200, "OK", &metrics.render())
        },
        _ => Response { allow: true, ..Response::text(405, "Method Not Allowed", "use GET\n") },
    }
}

struct Response {
    status: u16,
    reason: &'static str,
    content_type: &'static str,
    body: Vec<u8>,
    /// HEAD: the headers of the GET response, no body.
    head_only: bool,
    /// Add `Allow: GET, HEAD` (405).
    allow: bool,
}

impl Response {
    fn text(status: u16, reason: &'static str, body: &str) -> Self {
        Response {
            status,
            reason,
            content_type: "text/plain; charset=utf-8",
            body: body.as_bytes().to_vec(),
            head_only: false,
            allow: false,
        }
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.status,
            self.reason,
            self.content_type,
            self.body.len()
        );
        if self.allow {
            out.push_str("Allow: GET, HEAD\r\n");
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        if !self.head_only {
            bytes.extend_from_slice(&self.body);
        }
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics_config(port: Option<u16>) -> MetricsConfig {
        MetricsConfig {
            enabled: true,
            port,
            address: IpAddr::from([127, 0, 0, 1]),
            textfile: "monitoring/boot_metrics.prom".into(),
        }
    }

    struct FakeEnv(Option<&'static str>);
    impl Env for FakeEnv {
        fn var(&self, name: &str) -> Option<String> {
            assert_eq!(name, PORT_ENV);
            self.0.map(str::to_owned)
        }
    }

    #[test]
    fn port_comes_from_config_then_env_then_default() {
        let cases: &[(Option<u16>, Option<&'static str>, u16)] =
            &[(Some(1234), Some("999"), 1234), (None, Some("999"), 999), (None, Some(" 0 "), 0), (None, None, 9360)];
        for &(cfg, env, want) in cases {
            let addr = resolve_addr(&metrics_config(cfg), &FakeEnv(env)).unwrap();
            assert_eq!(addr, SocketAddr::from(([127, 0, 0, 1], want)), "config {cfg:?} env {env:?}");
        }
        let err = resolve_addr(&metrics_config(None), &FakeEnv(Some("http"))).unwrap_err();
        assert!(err.to_string().contains("RAZAR_METRICS_PORT=\"http\" is not a port number"), "{err}");
    }

    #[test]
    fn head_end_accepts_crlf_and_bare_lf() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), Some(23));
        assert_eq!(head_end(b"GET / HTTP/1.0\n\n"), Some(14));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
    }

    /// Sends `request` to `addr` and returns the whole response (the server closes).
    async fn exchange(addr: SocketAddr, request: &[u8]) -> String {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(request).await.unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out)).await.unwrap().unwrap();
        String::from_utf8(out).unwrap()
    }

    async fn serving() -> (SocketAddr, tokio::task::JoinHandle<()>) {
        let exporter = Exporter::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.unwrap();
        let addr = exporter.local_addr();
        assert_ne!(addr.port(), 0, "port 0 resolves to the real port");
        assert_eq!(exporter.url(), format!("http://127.0.0.1:{}/metrics", addr.port()));
        let metrics = Metrics::new();
        metrics.register_component("alpha");
        metrics.component_up("alpha", true);
        (addr, tokio::spawn(exporter.serve(metrics)))
    }

    #[tokio::test]
    async fn serves_metrics_over_http() {
        let (addr, server) = serving().await;
        let resp = exchange(addr, b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n").await;
        let (head, body) = resp.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(head.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8"), "{head}");
        assert!(head.contains(&format!("Content-Length: {}", body.len())), "{head}");
        assert!(body.contains("razar_component_up{component=\"alpha\"} 1\n"), "{body}");
        assert!(body.contains("razar_ai_invocation_retries_total{component=\"alpha\"} 0\n"), "{body}");

        let resp = exchange(addr, b"GET /nothing HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
        assert!(resp.starts_with("HTTP/1.1 404 Not Found\r\n"), "{resp}");

        let mut big = b"GET /metrics HTTP/1.1\r\nX-Filler: ".to_vec();
        big.resize(MAX_REQUEST_BYTES + 100, b'a');
        let resp = exchange(addr, &big).await;
        assert!(resp.starts_with("HTTP/1.1 431 "), "{resp}");

        // The server keeps serving after each of these.
        let resp = exchange(addr, b"GET /metrics HTTP/1.0\n\n").await;
        assert!(resp.starts_with("HTTP/1.1 200 OK\r\n"), "{resp}");
        server.abort();
    }

    #[tokio::test]
    async fn a_silent_client_gets_a_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut client = TcpStream::connect(addr).await.unwrap();
        let (server_side, _) = listener.accept().await.unwrap();
        let started = std::time::Instant::now();
        handle(server_side, Metrics::new(), Duration::from_millis(50)).await;
        let mut out = String::new();
        client.read_to_string(&mut out).await.unwrap();
        assert!(out.starts_with("HTTP/1.1 408 "), "{out}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn a_taken_port_names_the_port_and_how_to_change_it() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let err = Exporter::bind(addr).await.unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, MetricsError::PortInUse { port, .. } if port == addr.port()), "{err:?}");
        assert!(msg.contains(&format!("metrics port {} on 127.0.0.1 is already in use", addr.port())), "{msg}");
        assert!(msg.contains("RAZAR_METRICS_PORT") && msg.contains("`metrics.port`"), "{msg}");
    }

    #[test]
    fn routes_by_method_and_path() {
        let m = Metrics::new();
        let cases = [
            ("GET /metrics HTTP/1.1", 200),
            ("GET /metrics?x=1 HTTP/1.0", 200),
            ("HEAD /metrics HTTP/1.1", 200),
            ("POST /metrics HTTP/1.1", 405),
            ("GET / HTTP/1.1", 404),
            ("GET /metricsx HTTP/1.1", 404),
            ("GET /metrics HTTP/2", 505),
            ("GET /metrics", 400),
            ("", 400),
        ];
        for (line, status) in cases {
            assert_eq!(route(&format!("{line}\r\nHost: x"), &m).status, status, "{line:?}");
        }
        let head = route("HEAD /metrics HTTP/1.1", &m).to_bytes();
        let text = String::from_utf8(head).unwrap();
        assert!(text.ends_with("\r\n\r\n"), "HEAD has no body: {text}");
        assert!(!text.contains("Content-Length: 0\r\n"), "HEAD keeps the GET length: {text}");
    }
}
