//! Probes (DESIGN §6). `check` runs one bounded attempt of an exec, http, tcp or file probe;
//! log probes are event-driven: the output drain reports lines and the sequencer matches
//! them. `policy` turns results into verdicts and decides when to probe next; `runner` is
//! the one probe loop of readiness and liveness; `spec` parses the probes `razar probe` runs
//! from the command line. Every attempt is bounded by the
//! probe's timeout.

pub mod policy;
pub mod runner;
pub mod spec;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::time::{Instant, timeout};

use crate::config::ProbeKind;
use crate::supervise::{reaper, terminate};

/// Longest probe output kept (state, status, failure context).
pub const MAX_OUTPUT: usize = 2048;

/// The result of one probe attempt.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub ok: bool,
    /// What the probe saw: command output, HTTP status, connect error…
    pub output: String,
    pub duration: Duration,
}

/// Where an exec probe runs: the component's env and working directory.
#[derive(Debug, Clone, Default)]
pub struct ExecContext {
    pub env: BTreeMap<String, String>,
    pub working_dir: Option<PathBuf>,
}

/// Runs one attempt of `kind`, never longer than `limit` (plus the time to kill an exec
/// probe's group).
pub async fn check(kind: &ProbeKind, limit: Duration, http: &reqwest::Client, ctx: &ExecContext) -> Outcome {
    let started = Instant::now();
    let (ok, output) = match kind {
        ProbeKind::Exec(argv) => exec(argv, limit, ctx).await,
        ProbeKind::Http { url, status, body } => http_get(http, url, *status, body.as_deref(), limit).await,
        ProbeKind::Tcp(addr) => tcp(addr, limit).await,
        ProbeKind::File(path) => match timeout(limit, tokio::fs::try_exists(path)).await {
            Ok(Ok(true)) => (true, format!("{} exists", path.display())),
            Ok(Ok(false)) => (false, format!("{} does not exist", path.display())),
            Ok(Err(e)) => (false, format!("{}: {e}", path.display())),
            Err(_) => (false, format!("timed out after {limit:?}")),
        },
        ProbeKind::Log(re) => (false, format!("waiting for a line matching /{}/", re.as_str())),
    };
    Outcome { ok, output: truncate(output), duration: started.elapsed() }
}

fn truncate(mut s: String) -> String {
    if s.len() > MAX_OUTPUT {
        let mut cut = s.len() - MAX_OUTPUT;
        while !s.is_char_boundary(cut) {
            cut += 1;
        }
        s = format!("…{}", &s[cut..]);
    }
    s
}

/// Runs `argv` in its own process group with `ctx`; at `limit` the whole group is killed.
/// Returns success and the combined output.
pub async fn exec(argv: &[String], limit: Duration, ctx: &ExecContext) -> (bool, String) {
    let mut cmd = crate::supervise::spawn::command(&argv[0]);
    cmd.args(&argv[1..])
        .envs(&ctx.env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(dir) = &ctx.working_dir {
        cmd.current_dir(dir);
    }
    let mut child = match crate::supervise::reaper::spawn(&mut cmd) {
        Ok(c) => c,
        Err(e) => return (false, format!("cannot run {:?}: {e}", argv[0])),
    };
    let pgid = child.id().map(|p| p as i32);
    // A probe cancelled mid-run (the component became ready, was restarted or stopped) takes
    // its whole group with it, not just the direct child.
    let mut guard = crate::supervise::GroupGuard::new(child.id());
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let run = async {
        // Kept bounded: a probe that floods its output cannot grow razar's memory.
        let cap = (MAX_OUTPUT * 2) as u64;
        let mut out = Vec::new();
        let mut err = Vec::new();
        let (status, _, _) = tokio::join!(
            reaper::wait(&mut child),
            drain_capped(stdout, cap, &mut out),
            drain_capped(stderr, cap, &mut err)
        );
        out.extend_from_slice(&err);
        (status, out)
    };
    let result = timeout(limit, run).await;
    if result.is_ok() {
        guard.disarm();
    }
    match result {
        Ok((Ok(status), out)) => {
            let text = String::from_utf8_lossy(&out).trim().to_owned();
            let text = if text.is_empty() { status.to_string() } else { format!("{status}: {text}") };
            (status.success(), text)
        }
        Ok((Err(e), _)) => (false, format!("waiting for the probe failed: {e}")),
        Err(_) => {
            // The probe and anything it started go, not just the direct child.
            // Reaped while the group is waited on: the killed leader stays a zombie member of
            // its group until waited for, which would hold `kill_group` for its full bound.
            match pgid {
                Some(pgid) => drop(tokio::join!(terminate::kill_group(pgid), reaper::wait(&mut child))),
                None => drop(reaper::wait(&mut child).await),
            }
            guard.disarm();
            (false, format!("timed out after {limit:?}; process group killed"))
        }
    }
}

/// Keeps the first `cap` bytes of `pipe` in `out` and discards the rest until EOF.
async fn drain_capped(mut pipe: impl tokio::io::AsyncRead + Unpin, cap: u64, out: &mut Vec<u8>) {
    let _ = (&mut pipe).take(cap).read_to_end(out).await;
    let _ = tokio::io::copy(&mut pipe, &mut tokio::io::sink()).await;
}

/// Most body bytes an http probe reads: its `body` substring must appear within them. A
/// health endpoint that streams forever (or a huge page) costs at most this much memory.
pub const HTTP_BODY_CAP: usize = 64 * 1024;

async fn http_get(
    client: &reqwest::Client,
    url: &str,
    (lo, hi): (u16, u16),
    want: Option<&str>,
    limit: Duration,
) -> (bool, String) {
    let request = async {
        let mut resp = client.get(url).timeout(limit).send().await?;
        let status = resp.status().as_u16();
        let found = match want {
            Some(w) if (lo..=hi).contains(&status) => Some(body_contains(&mut resp, w.as_bytes()).await?),
            _ => None,
        };
        Ok::<_, reqwest::Error>((status, found))
    };
    match timeout(limit, request).await {
        Err(_) => (false, format!("timed out after {limit:?}")),
        // reqwest's errors may quote the URL, userinfo and query included.
        Ok(Err(e)) => (false, crate::redact::url_in(&describe_reqwest(&e), url)),
        Ok(Ok((status, found))) => {
            if !(lo..=hi).contains(&status) {
                (false, format!("HTTP {status} (want {lo}-{hi})"))
            } else if let (Some(w), Some(false)) = (want, found) {
                (false, format!("HTTP {status} but the first {} KiB of the body lack {w:?}", HTTP_BODY_CAP / 1024))
            } else {
                (true, format!("HTTP {status}"))
            }
        }
    }
}

/// Reads the body chunk by chunk until `want` shows up, the body ends, or
/// [`HTTP_BODY_CAP`] bytes have been read (the connection is then dropped, not drained).
async fn body_contains(resp: &mut reqwest::Response, want: &[u8]) -> Result<bool, reqwest::Error> {
    let mut seen: Vec<u8> = Vec::new();
    while seen.len() < HTTP_BODY_CAP {
        let Some(chunk) = resp.chunk().await? else { break };
        let take = chunk.len().min(HTTP_BODY_CAP - seen.len());
        // Only the tail that could still start a match is searched again.
        let from = seen.len().saturating_sub(want.len().saturating_sub(1));
        seen.extend_from_slice(&chunk[..take]);
        if contains(&seen[from..], want) {
            return Ok(true);
        }
    }
    Ok(contains(&seen, want))
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

fn describe_reqwest(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".into();
    }
    let mut msg = String::new();
    let mut src: Option<&dyn std::error::Error> = Some(e);
    while let Some(s) = src {
        msg = s.to_string();
        src = s.source();
    }
    let lower = msg.to_lowercase();
    if lower.contains("connection refused") { "connection refused".into() } else { msg }
}

async fn tcp(addr: &str, limit: Duration) -> (bool, String) {
    match timeout(limit, tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(_)) => (true, format!("connected to {addr}")),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => (false, "connection refused".into()),
        Ok(Err(e)) => (false, e.to_string()),
        Err(_) => (false, format!("timed out after {limit:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> ExecContext {
        ExecContext::default()
    }

    #[tokio::test]
    async fn exec_passes_on_zero_and_keeps_output() {
        let client = reqwest::Client::new();
        let o = check(
            &ProbeKind::Exec(vec!["sh".into(), "-c".into(), "echo hi; exit 0".into()]),
            Duration::from_secs(5),
            &client,
            &ctx(),
        )
        .await;
        assert!(o.ok);
        assert!(o.output.contains("hi"), "{}", o.output);
        let o = check(
            &ProbeKind::Exec(vec!["sh".into(), "-c".into(), "echo nope >&2; exit 3".into()]),
            Duration::from_secs(5),
            &client,
            &ctx(),
        )
        .await;
        assert!(!o.ok);
        assert!(o.output.contains("nope") && o.output.contains('3'), "{}", o.output);
    }

    #[tokio::test]
    async fn exec_timeout_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let script = format!("sleep 30 & echo $! > {}; wait", pidfile.display());
        let client = reqwest::Client::new();
        let o = check(
            &ProbeKind::Exec(vec!["sh".into(), "-c".into(), script]),
            Duration::from_millis(300),
            &client,
            &ctx(),
        )
        .await;
        assert!(!o.ok);
        assert!(o.output.contains("timed out"), "{}", o.output);
        assert!(o.duration < Duration::from_secs(4), "a hung probe took {:?} past its 300 ms timeout", o.duration);
        let pid: u32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
        assert!(!crate::supervise::procfs::alive(pid), "grandchild sleep survived the probe timeout");
    }

    #[tokio::test]
    async fn tcp_and_http_report_refusal_and_success() {
        let client = reqwest::Client::new();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let ok = check(&ProbeKind::Tcp(addr.to_string()), Duration::from_secs(1), &client, &ctx()).await;
        assert!(ok.ok, "{}", ok.output);
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 4\r\n\r\nbusy").await;
            }
        });
        let url = format!("http://{addr}/healthz");
        let o =
            check(&ProbeKind::Http { url, status: (200, 399), body: None }, Duration::from_secs(2), &client, &ctx())
                .await;
        assert!(!o.ok);
        assert!(o.output.contains("503"), "{}", o.output);
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let o = check(&ProbeKind::Tcp(closed.to_string()), Duration::from_secs(1), &client, &ctx()).await;
        assert_eq!(o.output, "connection refused");
    }

    /// A loopback server that answers 200 and then streams `chunk` forever.
    async fn endless_server(chunk: &'static [u8]) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    let _ = s.read(&mut buf).await;
                    let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\n").await;
                    while s.write_all(chunk).await.is_ok() {}
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn an_endless_body_is_read_only_up_to_the_cap() {
        static FILLER: [u8; 16 * 1024] = [b'x'; 16 * 1024];
        let addr = endless_server(&FILLER).await;
        let client = reqwest::Client::new();
        let url = format!("http://{addr}/");
        let started = std::time::Instant::now();
        let limit = Duration::from_secs(20);
        let o =
            check(&ProbeKind::Http { url, status: (200, 299), body: Some("OK".into()) }, limit, &client, &ctx()).await;
        assert!(!o.ok);
        assert!(o.output.contains("first 64 KiB of the body lack"), "{}", o.output);
        assert!(started.elapsed() < Duration::from_secs(10), "the probe read on for {:?}", started.elapsed());
    }

    #[tokio::test]
    async fn a_body_match_across_chunks_within_the_cap_passes() {
        let addr = endless_server(b"...stat").await;
        // "stat" + "..." never forms "status": the marker is found only across chunk borders.
        let client = reqwest::Client::new();
        let url = format!("http://{addr}/");
        let o = check(
            &ProbeKind::Http { url, status: (200, 299), body: Some("stat...st".into()) },
            Duration::from_secs(10),
            &client,
            &ctx(),
        )
        .await;
        assert!(o.ok, "{}", o.output);
        assert!(contains(b"abc", b"") && contains(b"abc", b"bc") && !contains(b"ab", b"abc"));
    }
}
