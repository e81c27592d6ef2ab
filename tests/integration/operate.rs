//! `razar restart|stop|start` through the real binary against a running boot.

use std::process::Child;
use std::time::Duration;

use serde_json::json;

use crate::harness::{Razar, group_alive, wait_until};

fn sigterm(child: &mut Child) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(143));
}

/// A running boot of `svc` (ready on its log line) and `once` (fails when started again).
fn running() -> (Razar, Child) {
    let r = Razar::new();
    r.config(json!({"components": [
        {"name": "svc", "command": "echo ready; exec sleep 60", "health_check": {"log": "^ready$"}},
        {"name": "once", "command": "if [ -e started ]; then exit 3; fi; touch started; echo up; exec sleep 60",
         "health_check": {"log": "^up$"}, "restart": {"policy": "never"}}
    ]}));
    let child = r.spawn(&["boot", "--no-metrics", "--retries", "0"]);
    wait_until("ready", Duration::from_secs(20), || (r.phase().as_deref() == Some("ready")).then_some(()));
    (r, child)
}

fn pid(r: &Razar, name: &str) -> Option<i64> {
    r.component_state(name)["pid"].as_i64()
}

/// The component as the running boot reports it now (the state file may lag a little).
fn live(r: &Razar, name: &str) -> serde_json::Value {
    let out = r.run(&["status", "--json"]);
    out.expect_code(0);
    let state: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    state["components"].as_array().unwrap().iter().find(|c| c["id"] == name).unwrap().clone()
}

#[test]
fn without_a_running_boot_each_verb_says_so_with_its_own_code() {
    let r = Razar::new();
    for verb in ["restart", "stop", "start"] {
        let out = r.run(&[verb, "api", "--wait"]);
        out.expect_code(7);
        assert!(out.stderr.contains("no razar boot is running on"), "{}", out.stderr);
        assert!(!out.stderr.contains("socket"), "no socket jargon: {}", out.stderr);
    }
}

#[test]
fn restart_stop_and_start_with_wait() {
    let (r, mut child) = running();
    let first = pid(&r, "svc").unwrap();
    let first_pgid = r.component_state("svc")["pgid"].as_i64().unwrap() as i32;

    let out = r.run(&["restart", "svc", "--wait"]);
    out.expect_code(0);
    assert!(out.stderr.contains("svc is ready"), "{}", out.stderr);
    let c = live(&r, "svc");
    assert_eq!(c["state"], "healthy");
    assert_ne!(c["pid"].as_i64().unwrap(), first, "a new process");
    assert!(!group_alive(first_pgid), "the old group is gone");

    let pgid = c["pgid"].as_i64().unwrap() as i32;
    let out = r.run(&["stop", "svc", "--wait"]);
    out.expect_code(0);
    assert!(out.stderr.contains("svc is stopped"), "{}", out.stderr);
    assert!(!group_alive(pgid), "stop --wait returned before the group was gone");
    assert_eq!(live(&r, "svc")["state"], "stopped");

    r.run(&["start", "svc", "--wait"]).expect_code(0);
    assert_eq!(live(&r, "svc")["state"], "healthy");
    sigterm(&mut child);
}

#[test]
fn refusals_and_failures_have_their_own_codes() {
    let (r, mut child) = running();
    let out = r.run(&["restart", "svx"]);
    out.expect_code(2);
    assert!(out.stderr.contains("did you mean `svc`"), "{}", out.stderr);

    // `once` cannot start a second time: --wait reports that it failed.
    let out = r.run(&["restart", "once", "--wait", "--timeout", "20s"]);
    out.expect_code(6);
    assert!(out.stderr.contains("once is failed"), "{}", out.stderr);

    // Without --wait the request is only accepted.
    let out = r.run(&["restart", "svc"]);
    out.expect_code(0);
    assert!(out.stderr.contains("restarting svc"), "{}", out.stderr);
    sigterm(&mut child);
}

#[test]
fn the_verbs_are_in_completions_and_the_man_page() {
    let r = Razar::new();
    let out = r.run(&["completions", "bash"]);
    out.expect_code(0);
    let man = r.run(&["man"]);
    man.expect_code(0);
    for verb in ["restart", "stop", "start"] {
        assert!(out.stdout.contains(&format!("razar,{verb})")), "{verb} missing from completions");
        assert!(man.stdout.contains(&format!("razar\\-{verb}(1)")), "{verb} missing from the man page");
    }
}

#[test]
fn a_boot_whose_components_an_operator_stopped_or_quarantined_keeps_running() {
    let r = Razar::new();
    r.config(json!({"components": [
        {"name": "svc", "command": "echo ready; exec sleep 60", "health_check": {"log": "^ready$"}},
        {"name": "job", "kind": "task", "command": "true"}
    ]}));
    let mut child = r.spawn(&["boot", "--no-metrics"]);
    wait_until("ready", Duration::from_secs(20), || (r.phase().as_deref() == Some("ready")).then_some(()));

    // `job` ended on its own; quarantining the last running component leaves nothing running.
    r.run(&["quarantine", "add", "svc", "--reason", "maintenance"]).expect_code(0);
    wait_until("svc stopped", Duration::from_secs(10), || (live(&r, "svc")["pid"].is_null()).then_some(()));
    assert!(child.try_wait().unwrap().is_none(), "the boot ended with svc quarantined by the operator");
    r.run(&["quarantine", "release", "svc"]).expect_code(0);
    wait_until("svc ready again", Duration::from_secs(10), || (live(&r, "svc")["state"] == "healthy").then_some(()));

    // The same after an operator stop: the boot waits to be told to start it.
    r.run(&["stop", "svc", "--wait"]).expect_code(0);
    assert!(child.try_wait().unwrap().is_none(), "the boot ended with svc stopped by the operator");
    r.run(&["start", "svc", "--wait"]).expect_code(0);
    sigterm(&mut child);
}
