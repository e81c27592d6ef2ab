//! Alerts (DESIGN §7): one JSON file per alert under `monitoring/alerts/`, plus a POST of the
//! same JSON to `RAZAR_ALERT_WEBHOOK` when it is set.
//!
//! Invariants: an alert file is `razar_<ms>.json`, written to a temp file, fsynced and then
//! hard-linked into place, which fails instead of replacing an existing file; a taken name
//! bumps the millisecond until a free one is found, so no alert ever overwrites another, even
//! across processes. The webhook gets at most [`WEBHOOK_TIMEOUT`] (connect to response);
//! its failures are warnings, never errors. The webhook URL is never logged whole: it often
//! carries a secret (userinfo, query, or the path itself as in Slack's hooks), so only its
//! scheme, host and port are shown.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::clock;
use crate::fsutil::{self, FsError};
use crate::paths::Paths;

/// The environment variable holding the webhook URL.
pub const WEBHOOK_ENV: &str = "RAZAR_ALERT_WEBHOOK";
/// The longest a webhook POST may take, connect to response.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);

/// How bad it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// One alert, as written to its file and POSTed to the webhook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub message: String,
    pub severity: Severity,
    /// Epoch seconds.
    pub timestamp: f64,
    /// UTC ISO-8601 with `Z`.
    pub timestamp_iso: String,
    /// Free-form details (component, error, …). The caller keeps secrets out of it.
    pub context: Value,
}

/// Raises alerts for one root. Cheap to clone; clones share the HTTP client.
#[derive(Clone)]
pub struct Alerts {
    dir: PathBuf,
    webhook: Option<Webhook>,
    client: reqwest::Client,
}

#[derive(Clone)]
struct Webhook {
    url: reqwest::Url,
    /// What logs may show of the URL.
    shown: String,
}

impl fmt::Debug for Alerts {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.debug_struct("Alerts")
            .field("dir", &self.dir)
            .field("webhook", &self.webhook.as_ref().map(|w| &w.shown))
            .finish_non_exhaustive()
    }
}

/// `RAZAR_ALERT_WEBHOOK` from the process environment (unset or blank: none).
pub fn webhook_from_env() -> Option<String> {
    std::env::var(WEBHOOK_ENV).ok().filter(|v| !v.trim().is_empty())
}

impl Alerts {
    /// Alerts written under `paths`; `webhook` (usually [`webhook_from_env`]) is POSTed to when
    /// set. A webhook that is not an `http(s)://` URL is reported once and ignored.
    pub fn new(paths: &Paths, webhook: Option<String>, client: reqwest::Client) -> Self {
        let webhook = webhook.filter(|w| !w.trim().is_empty()).and_then(|raw| match reqwest::Url::parse(raw.trim()) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => {
                Some(Webhook { shown: shown_url(&url), url })
            }
            Ok(url) => {
                tracing::warn!(url = %shown_url(&url), "{WEBHOOK_ENV} is not an http(s) URL with a host; webhook disabled");
                None
            }
            // The unparsable value is not shown: it may be a secret pasted in the wrong place.
            Err(e) => {
                tracing::warn!(error = %e, "{WEBHOOK_ENV} is not a valid URL; webhook disabled");
                None
            }
        });
        Alerts { dir: paths.alerts(), webhook, client }
    }

    /// The webhook as logs show it (scheme, host, port), if one is set.
    pub fn webhook(&self) -> Option<&str> {
        self.webhook.as_ref().map(|w| w.shown.as_str())
    }

    /// Writes the alert file and, when a webhook is set, POSTs the alert to it, waiting at
    /// most [`WEBHOOK_TIMEOUT`] for it. A caller that must not wait that long spawns this on
    /// a task (`Alerts` is `Clone`). Webhook failures are logged, never returned; the webhook
    /// is tried even when the file cannot be written, whose error is then returned.
    pub async fn raise(
        &self,
        message: impl Into<String>,
        severity: Severity,
        context: Value,
    ) -> Result<PathBuf, FsError> {
        let now = clock::epoch();
        let alert =
            Alert { message: message.into(), severity, timestamp: now, timestamp_iso: clock::iso(now), context };
        let written = self.write(&alert, (now * 1000.0).floor() as i64);
        match &written {
            Ok(path) => {
                tracing::info!(severity = alert.severity.as_str(), file = %path.display(), "alert: {}", alert.message);
            }
            Err(e) => tracing::warn!(error = %e, "alert file not written: {}", alert.message),
        }
        if let Some(webhook) = &self.webhook {
            self.post(webhook, &alert).await;
        }
        written
    }

    fn write(&self, alert: &Alert, millis: i64) -> Result<PathBuf, FsError> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        fsutil::ensure_dir(&self.dir)?;
        let mut bytes = serde_json::to_vec_pretty(alert)
            .map_err(|e| FsError::new("serializing", &self.dir, io::Error::other(e)))?;
        bytes.push(b'\n');
        let tmp =
            self.dir.join(format!(".razar_alert.tmp-{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed)));
        let result = write_tmp(&tmp, &bytes)
            .map_err(|e| FsError::new("writing", &tmp, e))
            .and_then(|()| link_new(&tmp, &self.dir, millis));
        let _ = fs::remove_file(&tmp);
        result
    }

    async fn post(&self, webhook: &Webhook, alert: &Alert) {
        let send = self.client.post(webhook.url.clone()).timeout(WEBHOOK_TIMEOUT).json(alert).send();
        // reqwest's timeout covers the request; the outer one also bounds name resolution.
        match tokio::time::timeout(WEBHOOK_TIMEOUT, send).await {
            Ok(Ok(resp)) if resp.status().is_success() => {
                tracing::debug!(url = %webhook.shown, status = %resp.status(), "alert webhook delivered");
            }
            Ok(Ok(resp)) => {
                tracing::warn!(url = %webhook.shown, status = %resp.status(), "alert webhook refused the alert");
            }
            Ok(Err(e)) => {
                tracing::warn!(url = %webhook.shown, error = %error_chain(&e.without_url()), "alert webhook failed");
            }
            Err(_) => {
                tracing::warn!(url = %webhook.shown, timeout = ?WEBHOOK_TIMEOUT, "alert webhook timed out");
            }
        }
    }
}

fn write_tmp(tmp: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = OpenOptions::new().write(true).create_new(true).mode(crate::fsutil::PRIVATE_FILE).open(tmp)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Links `tmp` to the first free `razar_<ms>.json` from `millis` on and returns that path.
fn link_new(tmp: &Path, dir: &Path, mut millis: i64) -> Result<PathBuf, FsError> {
    loop {
        let target = dir.join(format!("razar_{millis}.json"));
        match fs::hard_link(tmp, &target) {
            Ok(()) => {
                // The new name is durable only once the directory entry is.
                File::open(dir).and_then(|d| d.sync_all()).map_err(|e| FsError::new("syncing", dir, e))?;
                return Ok(target);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => millis += 1,
            Err(e) => return Err(FsError::new("writing", &target, e)),
        }
    }
}

/// `scheme://host[:port]`, plus `/…` when the URL has a path: nothing that may be a secret.
fn shown_url(url: &reqwest::Url) -> String {
    let mut shown = format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default());
    if let Some(port) = url.port() {
        shown.push_str(&format!(":{port}"));
    }
    if !matches!(url.path(), "" | "/") || url.query().is_some() {
        shown.push_str("/…");
    }
    shown
}

/// An error with its causes, `a: b: c`.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// A one-request HTTP server on loopback: answers 200 and hands back the request head
    /// and body.
    async fn stub() -> (String, tokio::task::JoinHandle<(String, Vec<u8>)>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            let head_end = loop {
                let mut chunk = [0u8; 4096];
                let n = sock.read(&mut chunk).await.unwrap();
                assert!(n > 0, "connection closed before the request head ended");
                buf.extend_from_slice(&chunk[..n]);
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break i + 4;
                }
            };
            let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
            let len: usize = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
                .expect("content-length");
            while buf.len() < head_end + len {
                let mut chunk = [0u8; 4096];
                let n = sock.read(&mut chunk).await.unwrap();
                assert!(n > 0, "connection closed before the body ended");
                buf.extend_from_slice(&chunk[..n]);
            }
            sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await.unwrap();
            (head, buf[head_end..head_end + len].to_vec())
        });
        (format!("http://{addr}"), task)
    }

    /// Captures this thread's tracing output.
    fn capture() -> (Arc<Mutex<Vec<u8>>>, tracing::subscriber::DefaultGuard) {
        #[derive(Clone)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl Write for Buf {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = Buf(buf.clone());
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .finish();
        (buf, tracing::subscriber::set_default(subscriber))
    }

    #[tokio::test]
    async fn alert_file_has_every_field_and_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let alerts = Alerts::new(&Paths::new(dir.path()), None, reqwest::Client::new());
        let context = serde_json::json!({"component": "web", "attempts": 4});
        let first = alerts.raise("web quarantined", Severity::Critical, context.clone()).await.unwrap();
        let name = first.file_name().unwrap().to_str().unwrap().to_owned();
        assert!(name.starts_with("razar_") && name.ends_with(".json"), "{name}");
        let alert: Value = serde_json::from_str(&fs::read_to_string(&first).unwrap()).unwrap();
        assert_eq!(alert["message"], "web quarantined");
        assert_eq!(alert["severity"], "critical");
        assert_eq!(alert["context"], context);
        assert!(alert["timestamp"].as_f64().unwrap() > 1.0e9);
        assert!(alert["timestamp_iso"].as_str().unwrap().ends_with('Z'));
        let ms: i64 = name["razar_".len()..name.len() - ".json".len()].parse().unwrap();
        assert_eq!(ms, (alert["timestamp"].as_f64().unwrap() * 1000.0).floor() as i64);

        // Same millisecond, twice: both kept, under consecutive names.
        let a =
            alerts.write(&Alert { message: "a".into(), ..serde_json::from_value(alert.clone()).unwrap() }, 5).unwrap();
        let b = alerts.write(&Alert { message: "b".into(), ..serde_json::from_value(alert).unwrap() }, 5).unwrap();
        assert_eq!(a.file_name().unwrap(), "razar_5.json");
        assert_eq!(b.file_name().unwrap(), "razar_6.json");
        let names: Vec<String> = fs::read_dir(dir.path().join("monitoring/alerts"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 3, "no temp file left: {names:?}");
    }

    #[tokio::test]
    async fn webhook_receives_the_same_json() {
        let dir = tempfile::tempdir().unwrap();
        let (url, server) = stub().await;
        let alerts = Alerts::new(&Paths::new(dir.path()), Some(format!("{url}/hook/s3cret")), reqwest::Client::new());
        assert_eq!(alerts.webhook(), Some(format!("{url}/…").as_str()));
        let path = alerts.raise("boot halted", Severity::Warning, serde_json::json!({"k": "v"})).await.unwrap();
        let (head, body) = server.await.unwrap();
        assert!(head.starts_with("POST /hook/s3cret HTTP/1.1\r\n"), "{head}");
        assert!(head.to_ascii_lowercase().contains("content-type: application/json"), "{head}");
        let posted: Alert = serde_json::from_slice(&body).unwrap();
        let written: Alert = serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap();
        assert_eq!(posted, written);
        assert_eq!(posted.severity, Severity::Warning);
    }

    #[tokio::test]
    async fn unreachable_webhook_only_logs_without_its_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let (logs, _guard) = capture();
        let webhook = format!("http://user:pa55@127.0.0.1:{port}/hooks/T0/s3cret?token=t0ken");
        let alerts = Alerts::new(&Paths::new(dir.path()), Some(webhook), reqwest::Client::new());
        let started = std::time::Instant::now();
        let path = alerts.raise("probe failed", Severity::Info, Value::Null).await.unwrap();
        assert!(started.elapsed() < WEBHOOK_TIMEOUT + Duration::from_secs(1));
        assert!(path.exists());
        let logs = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
        assert!(logs.contains("alert webhook failed"), "{logs}");
        assert!(logs.contains(&format!("http://127.0.0.1:{port}/…")), "{logs}");
        for secret in ["pa55", "s3cret", "t0ken", "user:"] {
            assert!(!logs.contains(secret), "{secret} leaked: {logs}");
        }
    }

    #[test]
    fn non_http_webhooks_are_disabled_and_not_echoed() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(dir.path());
        for bad in ["not a url s3cret", "ftp://host/s3cret", "  "] {
            let alerts = Alerts::new(&paths, Some(bad.into()), reqwest::Client::new());
            assert!(alerts.webhook().is_none(), "{bad}");
            assert!(!format!("{alerts:?}").contains("s3cret"));
        }
    }
}
