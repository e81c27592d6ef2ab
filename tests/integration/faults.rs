//! Faults around razar itself: broken output streams, hostile locks, torn and truncated files,
//! unwritable and full disks, concurrent writers. Each test is a row of docs/RELIABILITY.md.

use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;

use crate::harness::{Razar, group_alive, wait_until};

fn signal(child: &std::process::Child, sig: Signal) {
    kill(Pid::from_raw(child.id() as i32), sig).unwrap();
}

fn wait_phase(r: &Razar, phase: &str) {
    wait_until(&format!("phase {phase}"), Duration::from_secs(30), || {
        (r.phase().as_deref() == Some(phase)).then_some(())
    });
}

/// Waits (bounded) for `child` to exit and returns its exit code (128 + signal if killed).
fn wait_exit(child: &mut std::process::Child, timeout: Duration) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    let status = wait_until("razar to exit", timeout, || child.try_wait().unwrap());
    status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

#[test]
fn a_closed_stderr_and_stdout_never_end_razar_and_sigterm_still_stops_the_stack() {
    let r = Razar::new();
    r.config(json!({"components": [
        {"name": "web", "command": "echo ready; exec sleep 60", "health_check": {"log": "^ready$"}}
    ]}));
    // -vv: every step writes a log line to the broken stderr.
    let mut boot = r.spawn(&["-vv", "boot"]);
    drop(boot.stderr.take());
    drop(boot.stdout.take());
    wait_phase(&r, "ready");
    let pgid = r.component_state("web")["pgid"].as_i64().unwrap() as i32;
    signal(&boot, Signal::SIGTERM);
    let code = wait_exit(&mut boot, Duration::from_secs(30));
    assert_ne!(code, 101, "razar panicked on a broken stderr");
    assert_eq!(code, 143, "SIGTERM ends a boot with 128 + 15");
    assert_eq!(r.phase().as_deref(), Some("stopped"));
    assert!(!group_alive(pgid), "the component outlived razar");
}
