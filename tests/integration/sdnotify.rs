//! razar as a `Type=notify` service: what its service manager hears on `NOTIFY_SOCKET`.

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{Razar, wait_until};

/// Every datagram that arrives within `within`, stopping early once one contains `until`.
fn receive(sock: &UnixDatagram, within: Duration, until: &str) -> Vec<String> {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while let Some(left) = deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) {
        sock.set_read_timeout(Some(left)).unwrap();
        match sock.recv(&mut buf) {
            Ok(n) => {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                let done = msg.lines().any(|l| l == until);
                got.push(msg);
                if done {
                    break;
                }
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => break,
            Err(e) => panic!("receiving from the notify socket: {e}"),
        }
    }
    got
}

fn has(msgs: &[String], line: &str) -> bool {
    msgs.iter().any(|m| m.lines().any(|l| l == line))
}

fn ready_event(r: &Razar, component: &str) -> bool {
    r.jsonl("logs/razar.log").iter().any(|e| e["event"] == "ready" && e["component"] == component)
}

#[test]
fn ready_only_after_the_last_component_then_watchdog_and_stopping_on_sigterm() {
    let mut r = Razar::new();
    let sock_path = r.path("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    r.env("NOTIFY_SOCKET", sock_path.to_str().unwrap());
    r.env("WATCHDOG_USEC", "200000");
    r.config(json!({"components": [
        {"name": "first", "command": "env > first.env; echo up; exec sleep 60", "health_check": {"log": "^up$"}},
        {"name": "last", "command": "while [ ! -f go ]; do sleep 0.05; done; echo up; exec sleep 60",
         "depends_on": ["first"], "health_check": {"log": "^up$"}, "ready_timeout": "60s"}
    ]}));
    let mut child = r.spawn(&["boot"]);
    wait_until("first to be ready", Duration::from_secs(30), || ready_event(&r, "first").then_some(()));
    // The stack is not ready while `last` waits: the manager hears the watchdog, never READY=1.
    let before = receive(&sock, Duration::from_millis(600), "READY=1");
    assert!(!has(&before, "READY=1"), "READY=1 before the last component was ready: {before:?}");
    assert!(has(&before, "WATCHDOG=1"), "no WATCHDOG=1 in 600 ms with WATCHDOG_USEC=200000: {before:?}");
    assert!(
        before.iter().any(|m| m.lines().any(|l| l.starts_with("STATUS=booting: 2 components: "))),
        "no STATUS line with the counts while booting: {before:?}"
    );
    assert!(!ready_event(&r, "last"));
    r.write("go", "");
    let after = receive(&sock, Duration::from_secs(30), "READY=1");
    assert!(has(&after, "READY=1"), "no READY=1 after every component was ready: {after:?}");
    assert!(ready_event(&r, "last"), "READY=1 sent before `last` was ready");
    assert!(after.iter().any(|m| m.contains("STATUS=2 components")), "no STATUS with counts: {after:?}");
    // Children never inherit razar's own service manager variables.
    let env = r.read("first.env");
    for key in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] {
        assert!(!env.lines().any(|l| l.starts_with(&format!("{key}="))), "{key} reached a component");
    }
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let stop = receive(&sock, Duration::from_secs(30), "STOPPING=1");
    assert!(has(&stop, "STOPPING=1"), "no STOPPING=1 after SIGTERM: {stop:?}");
    wait_until("razar to exit", Duration::from_secs(30), || child.try_wait().unwrap());
}

#[test]
fn the_example_unit_passes_systemd_analyze_verify() {
    // The shipped example names /usr/local/bin/razar; verify a copy that points at this build.
    let unit = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/razar.service")).unwrap();
    assert!(unit.contains("Type=notify") && unit.contains("NotifyAccess=main"));
    let unit = unit.replace("/usr/local/bin/razar", env!("CARGO_BIN_EXE_razar"));
    let r = Razar::new();
    r.write("razar.service", &unit);
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(r.path("razar.service"))
        .output()
        .expect("systemd-analyze (Debian package systemd; scripts/install-test-deps installs it)");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify rejected docs/razar.service:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
