//! How every HTTP repair agent is called (DESIGN §9.2): one rustls client, `Authorization:
//! Bearer` and `X-API-Key` when a credential exists, a per-agent timeout over the whole call
//! (connect, send, read), at most one retry on a connect error, 429 or 5xx, a reply size cap
//! enforced while reading, and no redirect to another host.
//!
//! Replies may be gzip-encoded (razar sends `Accept-Encoding: gzip`): they are decompressed as
//! they are read, and the cap counts decompressed bytes, so a gzip bomb is refused once its
//! output passes the cap, without ever being held whole.
//!
//! No error message built here holds the URL (its query may carry a secret) or the credential.

use std::fmt;
use std::time::Duration;

use reqwest::StatusCode;

use crate::roster::Secret;
use crate::roster::remote::auth_headers;

/// Largest reply body read from an agent, after decompression.
pub const MAX_REPLY: usize = 4 * 1024 * 1024;

/// Same-host redirects followed before giving up.
const MAX_REDIRECTS: usize = 5;

/// A successful reply (2xx), its body read in full.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
    /// Retries spent (0 or 1).
    pub retries: u32,
}

/// Why a call produced no usable reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportError {
    pub detail: String,
    pub retries: u32,
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.detail)?;
        if self.retries > 0 {
            write!(f, " (after {} retry)", self.retries)?;
        }
        Ok(())
    }
}

/// The client agents are called with.
pub struct Transport {
    direct: reqwest::Client,
    proxied: reqwest::Client,
    max_reply: usize,
}

/// One attempt's failure, and whether it may be retried (and after how long).
enum Attempt {
    Retry(String, Option<Duration>),
    Fail(String),
}

impl Transport {
    pub fn new() -> Result<Transport, String> {
        Self::with_cap(MAX_REPLY)
    }

    /// A transport with another reply cap (tests).
    pub fn with_cap(max_reply: usize) -> Result<Transport, String> {
        let build = |proxy: bool| {
            let b = reqwest::Client::builder()
                .user_agent(concat!("razar/", env!("CARGO_PKG_VERSION")))
                .redirect(same_host_redirects());
            let b = if proxy { b } else { b.no_proxy() };
            b.build().map_err(|e| format!("cannot build the HTTP client: {e}"))
        };
        Ok(Transport { direct: build(false)?, proxied: build(true)?, max_reply })
    }

    /// POSTs `body` as JSON to `url`, each attempt bounded by `timeout`.
    pub async fn post_json(
        &self,
        url: reqwest::Url,
        secret: Option<&Secret>,
        body: &serde_json::Value,
        timeout: Duration,
    ) -> Result<Reply, TransportError> {
        let headers = auth_headers(secret).map_err(|detail| TransportError { detail, retries: 0 })?;
        let loopback = url.host_str().is_some_and(is_loopback);
        let client = if loopback { &self.direct } else { &self.proxied };
        let mut retries = 0;
        loop {
            let request = client.post(url.clone()).headers(headers.clone()).json(body);
            let attempt = tokio::time::timeout(timeout, self.attempt(request)).await;
            let failure = match attempt {
                Ok(Ok((status, body))) => return Ok(Reply { status, body, retries }),
                Ok(Err(a)) => a,
                Err(_) => Attempt::Fail(format!("no complete reply within {} s", timeout.as_secs_f64())),
            };
            match failure {
                Attempt::Retry(detail, wait) if retries == 0 => {
                    let wait = wait.unwrap_or(Duration::ZERO);
                    if wait > timeout {
                        let detail = format!("{detail}; Retry-After exceeds the {} s timeout", timeout.as_secs_f64());
                        return Err(TransportError { detail, retries });
                    }
                    tokio::time::sleep(wait).await;
                    retries += 1;
                }
                Attempt::Retry(detail, _) | Attempt::Fail(detail) => return Err(TransportError { detail, retries }),
            }
        }
    }

    async fn attempt(&self, request: reqwest::RequestBuilder) -> Result<(u16, Vec<u8>), Attempt> {
        let mut response = request.send().await.map_err(|e| {
            let detail = describe(&e);
            if e.is_connect() { Attempt::Retry(detail, None) } else { Attempt::Fail(detail) }
        })?;
        let status = response.status();
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            let wait = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            return Err(Attempt::Retry(format!("HTTP {}", status.as_u16()), wait));
        }
        if status.is_redirection() {
            return Err(Attempt::Fail(format!("HTTP {}: redirect not followed", status.as_u16())));
        }
        if !status.is_success() {
            return Err(Attempt::Fail(format!("HTTP {}", status.as_u16())));
        }
        if response.content_length().is_some_and(|n| n > self.max_reply as u64) {
            return Err(Attempt::Fail(self.too_large()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| Attempt::Fail(describe(&e)))? {
            if body.len() + chunk.len() > self.max_reply {
                return Err(Attempt::Fail(self.too_large()));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status.as_u16(), body))
    }

    fn too_large(&self) -> String {
        format!("reply larger than {} bytes", self.max_reply)
    }
}

/// Follow redirects within the same scheme, host and port only.
fn same_host_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let first = attempt.previous().first().cloned();
        let same = first.as_ref().is_some_and(|f| {
            f.scheme() == attempt.url().scheme()
                && f.host_str() == attempt.url().host_str()
                && f.port_or_known_default() == attempt.url().port_or_known_default()
        });
        if !same {
            attempt.error("redirect to another host refused")
        } else if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error("too many redirects")
        } else {
            attempt.follow()
        }
    })
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The innermost cause: the outer messages repeat the URL.
fn describe(e: &reqwest::Error) -> String {
    if e.is_redirect() {
        return "redirect to another host refused".into();
    }
    let mut msg = e.to_string();
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = src {
        msg = s.to_string();
        src = s.source();
    }
    if e.is_connect() && msg.to_lowercase().contains("connection refused") {
        "connection refused".into()
    } else if msg.contains("://") {
        "request failed".into()
    } else {
        msg
    }
}

#[cfg(test)]
mod tests;
