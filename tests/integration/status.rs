//! `razar status` through the real binary: no state, the last state file, a live boot, and
//! `--wait-ready`.

use std::io::{BufRead, BufReader};
use std::process::Child;
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Razar, wait_until};

/// A `razar boot` that is sent SIGTERM and reaped however the test ends.
struct Boot(Child);

impl Boot {
    fn terminate(mut self) -> Option<i32> {
        let _ =
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.0.id() as i32), nix::sys::signal::Signal::SIGTERM);
        self.0.wait().ok().and_then(|s| s.code())
    }
}

impl Drop for Boot {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.0.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = self.0.wait();
        }
    }
}

fn component<'a>(state: &'a Value, id: &str) -> &'a Value {
    state["components"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["id"] == id))
        .unwrap_or_else(|| panic!("{id} not in {state:#}"))
}

#[test]
fn status_without_a_state_file_exits_2() {
    let r = Razar::new();
    let out = r.run(&["status"]);
    out.expect_code(2);
    assert!(out.stderr.contains("no state file"), "{}", out.stderr);
    assert!(out.stderr.contains("run `razar boot` first"), "{}", out.stderr);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    r.run(&["status", "--json"]).expect_code(2);
}

#[test]
fn status_after_a_finished_boot_shows_the_last_state_file() {
    let r = Razar::new();
    r.config(json!({"components": [
        {"name": "first", "kind": "task", "command": "true"},
        {"name": "second", "kind": "task", "command": "true", "depends_on": ["first"]}
    ]}));
    r.run(&["boot"]).expect_code(0);

    let out = r.run(&["status"]);
    out.expect_code(0);
    assert!(out.stderr.contains("no boot running on this root; showing the last state file from"), "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines[0].starts_with("phase: stopped"), "{}", out.stdout);
    assert!(lines[0].contains("boot_id: "), "{}", out.stdout);
    let head: Vec<&str> = lines[1].split("  ").filter(|s| !s.is_empty()).map(str::trim).collect();
    assert_eq!(head, ["COMPONENT", "STATE", "PID", "READY", "RESTARTS", "LAST PROBE", "BLOCKED BY / WAITING"]);
    for name in ["first", "second"] {
        let row = lines.iter().find(|l| l.split_whitespace().next() == Some(name));
        let row = row.unwrap_or_else(|| panic!("no row for {name}:\n{}", out.stdout));
        assert_eq!(row.split_whitespace().nth(1), Some("completed"), "{row}");
    }

    let out = r.run(&["status", "--json"]);
    out.expect_code(0);
    let state: Value = serde_json::from_str(&out.stdout).expect("--json prints one JSON document");
    assert_eq!(state, r.json("logs/razar_state.json"), "--json prints the state object as it is");
    assert_eq!(state["phase"], "stopped");
    let ids: Vec<&str> = state["components"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["first", "second"]);
}

#[test]
fn watch_without_a_boot_draws_the_last_state_once_and_ends() {
    let r = Razar::new();
    r.write(
        "logs/razar_state.json",
        &json!({"phase": "halted", "boot_id": "old", "components": [{"id": "db", "state": "failed"}]}).to_string(),
    );
    let out = r.run(&["status", "--watch"]);
    out.expect_code(0);
    assert!(!out.stdout.contains('\u{1b}'), "no screen control when stdout is not a terminal");
    assert!(out.stdout.starts_with("phase: halted  boot_id: old\n"), "{}", out.stdout);
    assert_eq!(out.stdout.matches("COMPONENT").count(), 1, "{}", out.stdout);
}

#[test]
fn a_corrupt_state_file_is_reported_and_left_in_place() {
    let r = Razar::new();
    r.write("logs/razar_state.json", "{\"phase\": ");
    let out = r.run(&["status"]);
    out.expect_code(70);
    assert!(out.stderr.contains("logs/razar_state.json: not valid JSON"), "{}", out.stderr);
    assert_eq!(r.read("logs/razar_state.json"), "{\"phase\": ", "status only reads");
}

#[test]
fn timeout_needs_wait_ready_and_wait_ready_without_a_boot_times_out() {
    let r = Razar::new();
    r.run(&["status", "--timeout", "5"]).expect_code(2);
    r.run(&["status", "--watch", "--wait-ready"]).expect_code(2);
    // An earlier boot's state file is not taken for the boot being waited for.
    r.write("logs/razar_state.json", &json!({"phase": "halted", "boot_id": "old", "components": []}).to_string());
    let out = r.run(&["status", "--wait-ready", "--timeout", "300ms"]);
    out.expect_code(6);
    assert!(out.stderr.contains("timed out after 0.3s waiting for a boot to start on this root"), "{}", out.stderr);
}

#[test]
fn status_against_a_running_boot() {
    let r = Razar::new();
    r.config(json!({"components": [
        {"name": "svc", "command": "echo ready; exec sleep 60", "health_check": {"log": "ready"}}
    ]}));
    let boot = Boot(r.spawn(&["boot"]));
    let out = r.run(&["status", "--wait-ready", "--timeout", "30"]);
    out.expect_code(0);
    assert!(out.stderr.contains("is ready"), "{}", out.stderr);

    let out = r.run(&["status", "--json"]);
    out.expect_code(0);
    assert!(out.stderr.is_empty(), "a live status says nothing on stderr: {}", out.stderr);
    let state: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(state["phase"], "ready");
    let svc = component(&state, "svc");
    assert_eq!(svc["state"], "healthy", "{svc}");
    assert!(svc["pid"].as_u64().is_some_and(|p| p > 0), "{svc}");

    let out = r.run(&["status"]);
    out.expect_code(0);
    let row = out.stdout.lines().find(|l| l.starts_with("svc ")).unwrap_or_else(|| panic!("{}", out.stdout));
    assert!(row.contains("healthy") && row.contains("pass"), "{row}");

    assert_eq!(boot.terminate(), Some(143));
    assert!(!r.path(".razar/control.sock").exists(), "the boot removes its socket at exit");
    let out = r.run(&["status"]);
    out.expect_code(0);
    assert!(out.stderr.contains("no boot running on this root"), "{}", out.stderr);
}

#[test]
fn wait_ready_fails_when_the_boot_halts() {
    let r = Razar::new();
    r.config(json!({"components": [
        {"name": "broken", "kind": "task", "command": "echo boom >&2; exit 1"}
    ]}));
    // The waiter starts first; its debug line says it is waiting before the boot is started.
    let mut waiter = r.spawn(&["-v", "status", "--wait-ready", "--timeout", "30"]);
    let mut stderr = BufReader::new(waiter.stderr.take().unwrap());
    let mut seen = String::new();
    wait_until("status to start waiting", Duration::from_secs(10), || {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() > 0 {
            seen.push_str(&line);
        }
        seen.contains("waiting up to 30s").then_some(())
    });
    let boot = Boot(r.spawn(&["boot", "--retries", "0"]));
    let status = waiter.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    seen.push_str(&rest);
    assert_eq!(status.code(), Some(6), "{seen}");
    assert!(seen.contains("halted"), "the message says the boot halted:\n{seen}");
    drop(boot);
}

#[test]
fn quarantine_changes_are_sent_to_a_running_boot() {
    let r = Razar::new();
    // `other` keeps the boot running while svc is quarantined.
    r.config(json!({"components": [
        {"name": "svc", "command": "echo ready; exec sleep 60", "health_check": {"log": "ready"}},
        {"name": "other", "command": "echo ready; exec sleep 60", "health_check": {"log": "ready"}}
    ]}));
    // No boot: the ledger changes and nothing is said about notifying.
    let out = r.run(&["quarantine", "add", "svc", "--reason", "flaky"]);
    out.expect_code(0);
    assert!(!out.stderr.contains("notified") && !out.stderr.contains("not told"), "{}", out.stderr);
    r.run(&["quarantine", "release", "svc"]).expect_code(0);

    let boot = Boot(r.spawn(&["boot"]));
    r.run(&["status", "--wait-ready", "--timeout", "30"]).expect_code(0);
    let live = |r: &Razar| -> Value { serde_json::from_str(&r.run(&["status", "--json"]).stdout).unwrap() };
    let old_pid = component(&live(&r), "svc")["pid"].as_u64().unwrap() as u32;
    let added = std::time::Instant::now();
    let out = r.run(&["quarantine", "add", "svc", "--reason", "flaky"]);
    out.expect_code(0);
    assert!(out.stderr.contains("running boot notified"), "{}", out.stderr);
    // The process is gone within 2 s of the command.
    wait_until("svc's process to stop", Duration::from_secs(2).saturating_sub(added.elapsed()), || {
        (!razar::supervise::procfs::alive(old_pid)).then_some(())
    });
    wait_until("svc to be quarantined", Duration::from_secs(20), || {
        (component(&live(&r), "svc")["state"] == "quarantined").then_some(())
    });
    let out = r.run(&["quarantine", "release", "svc"]);
    out.expect_code(0);
    assert!(out.stderr.contains("running boot notified"), "{}", out.stderr);
    wait_until("svc to be healthy again", Duration::from_secs(20), || {
        (component(&live(&r), "svc")["state"] == "healthy").then_some(())
    });
    assert_ne!(component(&live(&r), "svc")["pid"].as_u64().unwrap() as u32, old_pid, "a fresh process");
    assert_eq!(boot.terminate(), Some(143));
}

#[test]
fn wait_ready_against_the_demo_stack() {
    let r = Razar::new();
    let demo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    // The demo's port, moved to a free one so the test never clashes with a running demo.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port().to_string();
    for f in ["boot_config.json", "worker.sh", "www/healthz.txt"] {
        let text = std::fs::read_to_string(demo.join(f)).unwrap().replace("8765", &port);
        r.write(&format!("config/{f}"), &text);
    }
    let boot = Boot(r.spawn(&["boot"]));
    let out = r.run(&["status", "--wait-ready", "--timeout", "60"]);
    out.expect_code(0);
    let state: Value = serde_json::from_str(&r.run(&["status", "--json"]).stdout).unwrap();
    assert_eq!(state["phase"], "ready");
    for (c, want) in [("migrate", "completed"), ("api", "healthy"), ("worker", "healthy"), ("report", "completed")] {
        assert_eq!(component(&state, c)["state"], want, "{c}");
    }
    assert!(r.read("logs/components/report.log").contains("ok"));
    assert_eq!(boot.terminate(), Some(143));
}
