//! `razar probe` through the real binary against live loopback listeners: every SPEC form,
//! a component's probe by name, `--wait` riding out failures, and the bound of `--timeout`.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::Razar;

/// A loopback HTTP server: answers `503 busy` to its first `fail_first` requests, then
/// `200` with `body`. Counts the requests it answered.
pub(crate) struct Http {
    pub port: u16,
    pub hits: Arc<AtomicUsize>,
}

pub(crate) fn serve(fail_first: usize, body: &'static str) -> Http {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            let n = counter.fetch_add(1, Ordering::SeqCst);
            let (status, text) = if n < fail_first { ("503 Service Unavailable", "busy") } else { ("200 OK", body) };
            let _ = write!(
                s,
                "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
                text.len()
            );
        }
    });
    Http { port, hits }
}

/// A port nothing listens on (bound, then released).
pub(crate) fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn tcp_passes_against_a_live_listener_and_fails_with_code_8_against_a_closed_port() {
    let r = Razar::new();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let out = r.run(&["probe", &format!("tcp://127.0.0.1:{port}")]);
    out.expect_code(0);
    assert!(
        out.stdout.contains("passed") && out.stdout.contains(&format!("connected to 127.0.0.1:{port}")),
        "{}",
        out.stdout
    );
    drop(listener);
    let out = r.run(&["probe", &format!("tcp://127.0.0.1:{}", closed_port())]);
    out.expect_code(8);
    assert!(out.stderr.contains("connection refused"), "{}", out.stderr);
    assert!(out.stdout.is_empty(), "a failure prints nothing on stdout: {}", out.stdout);
}

#[test]
fn http_checks_status_and_body_against_a_live_server() {
    let r = Razar::new();
    let server = serve(0, "all ok here");
    let url = format!("http://127.0.0.1:{}/healthz", server.port);
    r.run(&["probe", &url]).expect_code(0);
    r.run(&["probe", &url, "--body", "ok here"]).expect_code(0);
    let out = r.run(&["probe", &url, "--body", "nope"]);
    out.expect_code(8);
    assert!(out.stderr.contains("lack \"nope\""), "{}", out.stderr);
    let out = r.run(&["probe", &url, "--status", "204"]);
    out.expect_code(8);
    assert!(out.stderr.contains("HTTP 200 (want 204-204)"), "{}", out.stderr);
    let out = r.run(&["probe", &url, "--status", "99-x"]);
    out.expect_code(2);
    assert!(out.stderr.contains("--status"), "{}", out.stderr);
}

#[test]
fn wait_rides_out_failures_until_the_service_is_ready() {
    let r = Razar::new();
    // Three 503s first: a single probe fails, --wait keeps probing until the 200.
    let server = serve(3, "ok");
    let url = format!("http://127.0.0.1:{}/", server.port);
    r.run(&["probe", &url]).expect_code(8);
    let out = r.run(&["probe", &url, "--body", "ok", "--wait", "--timeout", "30s"]);
    out.expect_code(0);
    assert_eq!(
        server.hits.load(Ordering::SeqCst),
        4,
        "one failed probe alone, two failed and one passing under --wait"
    );
    assert!(out.stdout.contains("3 attempts"), "{}", out.stdout);
}

#[test]
fn wait_gives_up_at_its_timeout_with_code_8() {
    let r = Razar::new();
    let started = Instant::now();
    let out = r.run(&["probe", &format!("tcp://127.0.0.1:{}", closed_port()), "--wait", "--timeout", "700ms"]);
    out.expect_code(8);
    assert!(out.stderr.contains("did not pass within 700ms"), "{}", out.stderr);
    assert!(started.elapsed() < Duration::from_secs(10), "--timeout 700ms took {:?}", started.elapsed());
}

#[test]
fn exec_and_file_specs_run_in_the_root() {
    let r = Razar::new();
    r.write("run/ready", "");
    r.run(&["probe", "file:run/ready"]).expect_code(0);
    r.run(&["probe", "file:run/absent"]).expect_code(8);
    r.run(&["probe", "exec:test -e run/ready"]).expect_code(0);
    let out = r.run(&["probe", "exec:echo not yet >&2; exit 3"]);
    out.expect_code(8);
    assert!(out.stderr.contains("not yet"), "{}", out.stderr);
}

#[test]
fn a_component_probe_runs_by_name_from_the_config() {
    let r = Razar::new();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    r.config(json!({"components": [
        {"name": "db", "command": ["sleep", "1"], "health_check": {"tcp": format!("127.0.0.1:{port}")},
         "liveness": {"exec": ["sh", "-c", "test \"$ROLE\" = primary"]}, "env": {"ROLE": "primary"}},
        {"name": "tail", "command": ["sleep", "1"], "health_check": {"log": "ready"}},
        {"name": "once", "command": ["true"]}
    ]}));
    let out = r.run(&["probe", "db"]);
    out.expect_code(0);
    assert!(out.stdout.contains("db (health_check: tcp 127.0.0.1:"), "{}", out.stdout);
    // The liveness exec probe sees the component's env, as under a boot.
    r.run(&["probe", "db", "--liveness"]).expect_code(0);
    let out = r.run(&["probe", "tail"]);
    out.expect_code(2);
    assert!(out.stderr.contains("log probe"), "{}", out.stderr);
    let out = r.run(&["probe", "once"]);
    out.expect_code(2);
    assert!(out.stderr.contains("no `health_check` probe") && out.stderr.contains("task"), "{}", out.stderr);
    let out = r.run(&["probe", "nosuch"]);
    out.expect_code(2);
    assert!(out.stderr.contains("components: db, tail, once"), "{}", out.stderr);
    let out = r.run(&["probe", "udp://127.0.0.1:1"]);
    out.expect_code(2);
    assert!(out.stderr.contains("unknown probe scheme"), "{}", out.stderr);
}
