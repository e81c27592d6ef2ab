//! razar as a `Type=notify` service: the datagrams it sends to `$NOTIFY_SOCKET`.

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{Razar, wait_until};

/// Receives datagrams until one satisfies `done` (returned last) or `limit` passes (panics).
fn recv_until(sock: &UnixDatagram, what: &str, limit: Duration, done: impl Fn(&str) -> bool) -> Vec<String> {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no {what} within {limit:?}; got {got:?}");
        sock.set_read_timeout(Some(left)).unwrap();
        if let Ok(n) = sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            let hit = done(&msg);
            got.push(msg);
            if hit {
                return got;
            }
        }
    }
}

fn drain(sock: &UnixDatagram) -> Vec<String> {
    sock.set_nonblocking(true).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = sock.recv(&mut buf) {
        got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    sock.set_nonblocking(false).unwrap();
    got
}

fn has(msgs: &[String], line: &str) -> bool {
    msgs.iter().any(|m| m.lines().any(|l| l == line))
}

#[test]
fn razar_sends_ready_only_once_the_last_component_is_ready_then_stopping_and_watchdog_pings() {
    let mut r = Razar::new();
    let path = r.path("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    let release = r.path("release");
    r.env("NOTIFY_SOCKET", path.to_str().unwrap()).env("WATCHDOG_USEC", "200000");
    r.config(json!({"components": [
        {"name": "first", "command": "echo ready; exec sleep 60", "health_check": {"log": "^ready$"}},
        {"name": "last", "depends_on": ["first"],
         "command": format!("while [ ! -e '{}' ]; do sleep 0.05; done; echo ready; exec sleep 60", release.display()),
         "health_check": {"log": "^ready$"}}
    ]}));
    let child = r.spawn(&["boot"]);
    let started = Instant::now();
    let early = recv_until(&sock, "WATCHDOG=1", Duration::from_secs(1), |m| m.lines().any(|l| l == "WATCHDOG=1"));
    assert!(started.elapsed() < Duration::from_secs(1));
    wait_until("first healthy, last waiting", Duration::from_secs(20), || {
        (r.component_state("first")["state"] == "healthy" && r.component_state("last")["state"] == "starting")
            .then_some(())
    });
    let mut before = early;
    before.extend(drain(&sock));
    assert!(!has(&before, "READY=1"), "READY=1 before the last component was ready: {before:?}");
    assert!(before.iter().any(|m| m.lines().any(|l| l.starts_with("STATUS="))), "no STATUS= while booting: {before:?}");
    std::fs::write(&release, "").unwrap();
    let after = recv_until(&sock, "READY=1", Duration::from_secs(20), |m| m.lines().any(|l| l == "READY=1"));
    assert_eq!(r.component_state("last")["state"], "healthy");
    assert!(after.last().unwrap().lines().any(|l| l.starts_with("STATUS=ready")), "{after:?}");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    recv_until(&sock, "STOPPING=1", Duration::from_secs(20), |m| m.lines().any(|l| l == "STOPPING=1"));
    child.wait_with_output().unwrap();
}
