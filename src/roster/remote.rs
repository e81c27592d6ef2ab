//! Bounded reachability probes of resolved agents (`razar agents check --include-remote`).
//! Each probe makes one request and never takes longer than its limit:
//!
//! - `openai-chat`, `vllm-completions`: `GET {endpoint}/models`; 2xx is reachable.
//! - `patch-service`, `kimicho`: `HEAD {endpoint}`; any HTTP answer is reachable.
//! - `crown`: a TCP connect to the endpoint's host and port (no WebSocket upgrade).
//! - `opencode`: `opencode --version` from `PATH`.
//!
//! HTTP probes carry the agent's credential exactly as repair requests will
//! (`Authorization: Bearer <token>`, `X-API-Key: <token>`), so a 401 or 403 is reported as
//! "credentials rejected". Redirects are not followed: the credential goes to the configured
//! host only. No detail returned here contains the credential.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue};
use tokio::time::{Instant, timeout};

use super::{Agent, Endpoint, Protocol, Secret};

/// Longest a single probe may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// What a probe found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The agent answered as expected.
    Reachable,
    /// No answer: refused, unresolvable, timed out, TLS failure, or the program is missing.
    Unreachable,
    /// The agent answered 401 or 403 to the credential.
    CredentialsRejected,
    /// The agent answered, but not as its protocol should (e.g. `GET /models` → 404 or 500).
    Unhealthy,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Reachable => "reachable",
            Outcome::Unreachable => "unreachable",
            Outcome::CredentialsRejected => "credentials rejected",
            Outcome::Unhealthy => "unhealthy",
        }
    }

    /// The machine-readable name (`--json`).
    pub fn code(self) -> &'static str {
        match self {
            Outcome::CredentialsRejected => "credentials_rejected",
            other => other.as_str(),
        }
    }
}

/// The result of one probe.
#[derive(Debug, Clone)]
pub struct Report {
    pub outcome: Outcome,
    /// What was seen: `HTTP 200 from GET /models`, `connection refused`…
    pub detail: String,
    pub latency: Duration,
}

/// The HTTP clients probes use: loopback endpoints bypass any proxy in the environment, other
/// endpoints honour it.
pub struct Http {
    direct: reqwest::Client,
    proxied: reqwest::Client,
}

impl Http {
    pub fn new() -> Result<Http, String> {
        let build = |proxy: bool| {
            let b = reqwest::Client::builder()
                .user_agent(concat!("razar/", env!("CARGO_PKG_VERSION")))
                .redirect(reqwest::redirect::Policy::none());
            let b = if proxy { b } else { b.no_proxy() };
            b.build().map_err(|e| format!("cannot build the HTTP client: {e}"))
        };
        Ok(Http { direct: build(false)?, proxied: build(true)? })
    }

    fn for_endpoint(&self, endpoint: &Endpoint) -> &reqwest::Client {
        if endpoint.is_loopback() { &self.direct } else { &self.proxied }
    }
}

/// Probes `agent`, bounded by `limit`. The agent must be usable (no problems).
pub async fn probe(agent: &Agent, http: &Http, limit: Duration) -> Report {
    let started = Instant::now();
    let secret = agent.credential.as_ref().ok().and_then(Option::as_ref).map(|c| &c.secret);
    let (outcome, detail) = match (agent.protocol, &agent.endpoint) {
        (Some(Protocol::Opencode), _) => opencode(limit).await,
        (Some(Protocol::Crown), Some(e)) => tcp(e, limit).await,
        (Some(Protocol::OpenaiChat | Protocol::VllmCompletions), Some(e)) => {
            http_probe(http.for_endpoint(e), reqwest::Method::GET, e.join("models"), "GET /models", secret, limit, true)
                .await
        }
        (Some(Protocol::PatchService | Protocol::Kimicho), Some(e)) => {
            http_probe(http.for_endpoint(e), reqwest::Method::HEAD, e.url().clone(), "HEAD", secret, limit, false).await
        }
        _ => (Outcome::Unreachable, "not probed: the agent has no usable endpoint".to_owned()),
    };
    // Defence in depth: no detail is built from the request, but none may carry the secret.
    // (A secret of a few characters would match ordinary words; such a secret is no secret.)
    let detail = match secret {
        Some(s) if s.expose().len() >= 4 => detail.replace(s.expose(), "***"),
        _ => detail,
    };
    Report { outcome, detail, latency: started.elapsed() }
}

/// The headers every HTTP agent request carries when a credential exists.
pub fn auth_headers(secret: Option<&Secret>) -> Result<HeaderMap, String> {
    let mut headers = HeaderMap::new();
    if let Some(s) = secret {
        let invalid = |_| "the credential holds characters an HTTP header cannot carry".to_owned();
        let mut bearer = HeaderValue::from_str(&format!("Bearer {}", s.expose())).map_err(invalid)?;
        bearer.set_sensitive(true);
        let mut key = HeaderValue::from_str(s.expose()).map_err(invalid)?;
        key.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, bearer);
        headers.insert("x-api-key", key);
    }
    Ok(headers)
}

async fn http_probe(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: reqwest::Url,
    what: &str,
    secret: Option<&Secret>,
    limit: Duration,
    want_success: bool,
) -> (Outcome, String) {
    let headers = match auth_headers(secret) {
        Ok(h) => h,
        Err(e) => return (Outcome::Unreachable, format!("not probed: {e}")),
    };
    let request = client.request(method, url).headers(headers).timeout(limit).send();
    match timeout(limit, request).await {
        Err(_) => (Outcome::Unreachable, format!("timed out after {}", secs(limit))),
        Ok(Err(e)) => (Outcome::Unreachable, describe_reqwest(&e, limit)),
        Ok(Ok(resp)) => {
            let status = resp.status();
            let detail = format!("HTTP {} from {what}", status.as_u16());
            if matches!(status.as_u16(), 401 | 403) {
                (Outcome::CredentialsRejected, detail)
            } else if want_success && !status.is_success() {
                (Outcome::Unhealthy, detail)
            } else {
                (Outcome::Reachable, detail)
            }
        }
    }
}

async fn tcp(endpoint: &Endpoint, limit: Duration) -> (Outcome, String) {
    let url = endpoint.url();
    let host = url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_owned();
    let Some(port) = url.port_or_known_default() else {
        return (Outcome::Unreachable, "not probed: the endpoint has no port".into());
    };
    match timeout(limit, tokio::net::TcpStream::connect((host.as_str(), port))).await {
        Ok(Ok(_)) => (Outcome::Reachable, format!("TCP connect to port {port}")),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            (Outcome::Unreachable, "connection refused".into())
        }
        Ok(Err(e)) => (Outcome::Unreachable, e.to_string()),
        Err(_) => (Outcome::Unreachable, format!("timed out after {}", secs(limit))),
    }
}

async fn opencode(limit: Duration) -> (Outcome, String) {
    let mut cmd = crate::supervise::spawn::command("opencode");
    cmd.arg("--version")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let child = match crate::supervise::reaper::spawn(&mut cmd) {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return (Outcome::Unreachable, "`opencode` not found on PATH".into());
        }
        Err(e) => return (Outcome::Unreachable, format!("cannot run `opencode`: {e}")),
    };
    // `kill_on_drop` ends the child if the deadline drops the future.
    match timeout(limit, child.wait_with_output()).await {
        Err(_) => (Outcome::Unreachable, format!("`opencode --version` timed out after {}", secs(limit))),
        Ok(Err(e)) => (Outcome::Unreachable, format!("`opencode --version` failed: {e}")),
        Ok(Ok(out)) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            let version = text.lines().next().unwrap_or_default().trim();
            (
                Outcome::Reachable,
                format!("opencode {}", if version.is_empty() { "(no version printed)" } else { version }),
            )
        }
        Ok(Ok(out)) => (Outcome::Unreachable, format!("`opencode --version` exited with {}", out.status)),
    }
}

fn describe_reqwest(e: &reqwest::Error, limit: Duration) -> String {
    if e.is_timeout() {
        return format!("timed out after {}", secs(limit));
    }
    // The outermost message repeats the URL (which may hold a query secret); the innermost
    // says what went wrong.
    let mut msg = String::new();
    let mut src: Option<&dyn std::error::Error> = Some(e);
    while let Some(s) = src {
        msg = s.to_string();
        src = s.source();
    }
    if msg.to_lowercase().contains("connection refused") { "connection refused".into() } else { msg }
}

fn secs(d: Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use serde_json::json;

    use super::*;
    use crate::roster::tests::MapEnv;

    /// A one-shot HTTP server answering `status`; returns its address and the request text.
    fn server(status: u16) -> (String, std::thread::JoinHandle<String>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let handle = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap();
            let reply = format!("HTTP/1.1 {status} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{{}}");
            s.write_all(reply.as_bytes()).unwrap();
            String::from_utf8_lossy(&buf[..n]).into_owned()
        });
        (addr, handle)
    }

    fn agent(entry: serde_json::Value, env: &[(&str, &str)]) -> Agent {
        let r = crate::roster::resolve(std::path::Path::new("r.json"), &json!({"agents": [entry]}), &MapEnv::of(env));
        let a = r.agents.into_iter().next().unwrap();
        assert!(a.is_usable(), "{:?}", a.problems);
        a
    }

    #[tokio::test]
    async fn openai_chat_gets_models_with_both_auth_headers() {
        let (addr, req) = server(200);
        let a =
            agent(json!({"name": "kimi2", "endpoint": format!("http://{addr}/v1")}), &[("KIMI2_API_KEY", "canary-9")]);
        let r = probe(&a, &Http::new().unwrap(), PROBE_TIMEOUT).await;
        assert_eq!(r.outcome, Outcome::Reachable, "{}", r.detail);
        let req = req.join().unwrap().to_lowercase();
        assert!(req.starts_with("get /v1/models "), "{req}");
        assert!(req.contains("authorization: bearer canary-9"), "{req}");
        assert!(req.contains("x-api-key: canary-9"), "{req}");
    }

    #[tokio::test]
    async fn a_401_is_credentials_rejected_and_a_404_on_models_is_unhealthy() {
        let (addr, _req) = server(401);
        let a = agent(json!({"name": "p", "endpoint": format!("http://{addr}/")}), &[("P_TOKEN", "t")]);
        let r = probe(&a, &Http::new().unwrap(), PROBE_TIMEOUT).await;
        assert_eq!((r.outcome, r.detail.as_str()), (Outcome::CredentialsRejected, "HTTP 401 from HEAD"));
        let (addr, _req) = server(404);
        let a = agent(json!({"name": "rstar", "endpoint": format!("http://{addr}/v1")}), &[("RSTAR_API_KEY", "t")]);
        let r = probe(&a, &Http::new().unwrap(), PROBE_TIMEOUT).await;
        assert_eq!(r.outcome, Outcome::Unhealthy, "{}", r.detail);
        let (addr, _req) = server(405);
        let a = agent(json!({"name": "p", "endpoint": format!("http://{addr}/")}), &[("P_TOKEN", "t")]);
        let r = probe(&a, &Http::new().unwrap(), PROBE_TIMEOUT).await;
        assert_eq!(r.outcome, Outcome::Reachable, "any answer but 401/403 is reachable for a patch service");
    }

    #[tokio::test]
    async fn refused_connections_are_unreachable() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let a = agent(json!({"name": "p", "endpoint": format!("http://{closed}/")}), &[("P_TOKEN", "t")]);
        let r = probe(&a, &Http::new().unwrap(), PROBE_TIMEOUT).await;
        assert_eq!((r.outcome, r.detail.as_str()), (Outcome::Unreachable, "connection refused"));
        let a = agent(json!({"name": "crown", "endpoint": format!("ws://{closed}/")}), &[]);
        let r = probe(&a, &Http::new().unwrap(), PROBE_TIMEOUT).await;
        assert_eq!(r.outcome, Outcome::Unreachable);
        let open = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let a = agent(json!({"name": "crown", "endpoint": format!("ws://{}/", open.local_addr().unwrap())}), &[]);
        let r = probe(&a, &Http::new().unwrap(), PROBE_TIMEOUT).await;
        assert_eq!(r.outcome, Outcome::Reachable, "{}", r.detail);
    }

    #[test]
    fn auth_headers_are_sensitive_and_reject_unsendable_secrets() {
        let s = Secret::new("tok").unwrap();
        let h = auth_headers(Some(&s)).unwrap();
        assert_eq!(h["authorization"], "Bearer tok");
        assert_eq!(h["x-api-key"], "tok");
        assert!(h["authorization"].is_sensitive());
        assert!(!format!("{h:?}").contains("tok"));
        assert!(auth_headers(Some(&Secret::new("a\u{7}b").unwrap())).is_err());
        assert!(auth_headers(None).unwrap().is_empty());
    }
}
