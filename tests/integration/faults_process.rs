//! Faults around supervision through the real binary: hostile probe targets, stale records,
//! long root paths, a launcher that leaves children behind.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;

use crate::harness::{Razar, wait_until};

/// Peak resident memory of a process in KiB (`VmHWM`).
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// A loopback HTTP server answering every request with 200 and a body that never ends.
/// Returns its address and a counter of bytes it managed to send.
fn endless_http_server() -> (std::net::SocketAddr, std::sync::Arc<std::sync::atomic::AtomicU64>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = sent.clone();
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { return };
            let counter = counter.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf);
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\n");
                let chunk = vec![b'x'; 256 * 1024];
                while s.write_all(&chunk).is_ok() {
                    counter.fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed);
                }
            });
        }
    });
    (addr, sent)
}

#[test]
fn an_http_probe_against_an_endless_body_completes_and_razars_memory_stays_bounded() {
    let (addr, _sent) = endless_http_server();
    let r = Razar::new();
    r.config(json!({"components": [
        {"name": "stream", "command": "exec sleep 60",
         "health_check": {"http": format!("http://{addr}/"), "body": "never-there", "timeout": "3s",
                          "start_interval": "100ms", "period": "200ms"},
         "ready_timeout": "4s", "restart": {"policy": "never"}}
    ]}));
    let boot = r.spawn(&["boot", "--retries", "0"]);
    let pid = boot.id();
    // Every probe attempt must end on the cap, not on its 3 s timeout.
    let results = wait_until("three probe results", Duration::from_secs(30), || {
        let s: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(r.path("logs/razar_state.json")).ok()?).ok()?;
        let out = s["components"][0]["probe"]["last_output"].as_str()?.to_owned();
        out.contains("lack").then_some(out)
    });
    assert!(results.contains("first 64 KiB of the body lack \"never-there\""), "{results}");
    let peak = peak_rss_kib(pid);
    let started = Instant::now();
    let run = wait_output(boot);
    eprintln!("peak RSS while probing: {peak} KiB; halted {:?} later", started.elapsed());
    assert!(peak < 200 * 1024, "razar peaked at {peak} KiB while probing an endless body");
    assert!(!run.contains("timed out after 3s"), "a probe ran into its timeout instead of the cap: {run}");
}

/// Waits (bounded) for a spawned razar to finish and returns its stderr.
fn wait_output(mut child: std::process::Child) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_root_with_a_150_character_path_boots_and_status_answers_live() {
    let r = Razar::with_root_len(150);
    assert!(r.path(".razar/control.sock").as_os_str().len() > 108, "the socket path must exceed sun_path");
    r.config(json!({"components": [
        {"name": "svc", "command": "echo ready; exec sleep 60", "health_check": {"log": "ready"}}
    ]}));
    let mut boot = r.spawn(&["boot"]);
    let out = r.run(&["status", "--wait-ready", "--timeout", "30"]);
    out.expect_code(0);
    let out = r.run(&["status", "--json"]);
    out.expect_code(0);
    assert!(out.stderr.is_empty(), "a live status says nothing on stderr: {}", out.stderr);
    let state: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(state["phase"], "ready");
    assert!(r.path(".razar/control.sock").exists(), "the socket is at its long path");
    // `quarantine` reaches the live boot through the same client.
    let q = r.run(&["quarantine", "add", "svc", "--reason", "maintenance"]);
    q.expect_code(0);
    assert!(q.stderr.contains("running boot notified"), "{}", q.stderr);
    wait_until("svc to be stopped as quarantined", Duration::from_secs(20), || {
        let s: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(r.path("logs/razar_state.json")).ok()?).ok()?;
        (s["components"][0]["state"] == "quarantined").then_some(())
    });
    kill(Pid::from_raw(boot.id() as i32), Signal::SIGTERM).unwrap();
    let code = boot.wait().unwrap().code();
    assert_eq!(code, Some(143));
    assert!(!r.path(".razar/control.sock").exists(), "the boot removes its socket at exit");
}

/// A root whose Crown answers without GLM-4.1V, so `launch_glm.sh` (with `body`) runs, and one
/// long-running component.
fn root_with_launcher(crown: &crate::crown::Crown, body: &str) -> Razar {
    let r = Razar::new();
    r.config(json!({
        "components": [{"name": "svc", "command": "echo ready; exec sleep 60", "health_check": {"log": "ready"}}],
        "crown": {"url": crown.url(), "model_launcher": "launch_glm.sh"},
    }));
    crate::crown::launcher(&r, body);
    r
}

fn pid_in(r: &Razar, file: &str) -> u32 {
    wait_until(file, Duration::from_secs(20), || std::fs::read_to_string(r.path(file)).ok()?.trim().parse().ok())
}

fn gone(pid: u32) -> bool {
    !razar::supervise::procfs::alive(pid)
}

#[test]
fn sigterm_while_the_model_launcher_runs_stops_its_background_child_too() {
    let crown = crate::crown::Crown::reply(json!({"ack": "ok", "capabilities": ["code-review"]}));
    // A slow launcher: it starts a helper in the background, then keeps working.
    let r = root_with_launcher(&crown, "sleep 60 & echo $! > bg.pid; sleep 60");
    let boot = r.spawn(&["boot"]);
    let bg = pid_in(&r, "bg.pid");
    kill(Pid::from_raw(boot.id() as i32), Signal::SIGTERM).unwrap();
    wait_output(boot);
    wait_until("the launcher's background child to stop", Duration::from_secs(5), || gone(bg).then_some(()));
}

#[test]
fn a_model_server_left_by_the_launcher_is_stopped_at_shutdown_with_its_own_children() {
    let crown = crate::crown::Crown::reply(json!({"ack": "ok", "capabilities": ["code-review"]}));
    // The launcher exits at once, leaving a "server" that has a child of its own.
    let r = root_with_launcher(&crown, "sh -c 'sleep 60 & echo $! > worker.pid; sleep 60' & echo $! > server.pid");
    let boot = r.spawn(&["boot"]);
    let (server, worker) = (pid_in(&r, "server.pid"), pid_in(&r, "worker.pid"));
    wait_until("ready", Duration::from_secs(30), || (r.phase().as_deref() == Some("ready")).then_some(()));
    assert!(!gone(server) && !gone(worker), "the model server runs while the boot does");
    let launch = r.jsonl("logs/razar.log").into_iter().find(|e| e["event"] == "model_launch").unwrap();
    assert_eq!(launch["status"], "launched");
    kill(Pid::from_raw(boot.id() as i32), Signal::SIGTERM).unwrap();
    wait_output(boot);
    wait_until("the model server and its child to stop", Duration::from_secs(5), || {
        (gone(server) && gone(worker)).then_some(())
    });
}

/// Every file under the root that razar wrote (the operator's `config/` excluded), with the
/// captured output, must be free of `needle` (case-insensitive: URL parsers lowercase hosts).
#[track_caller]
fn assert_nowhere(r: &Razar, outputs: &[&crate::harness::Run], needle: &str) {
    let needle = needle.to_lowercase();
    for run in outputs {
        assert!(!run.stdout.to_lowercase().contains(&needle), "stdout leaks {needle}:\n{}", run.stdout);
        assert!(!run.stderr.to_lowercase().contains(&needle), "stderr leaks {needle}:\n{}", run.stderr);
    }
    for (path, bytes) in r.snapshot("") {
        if path.starts_with(r.path("config")) {
            continue;
        }
        let text = String::from_utf8_lossy(&bytes).to_lowercase();
        assert!(!text.contains(&needle), "{} leaks {needle}", path.display());
    }
}

#[test]
fn crown_urls_with_credentials_are_redacted_in_every_message_and_file() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let cases = [
        // Refused by the config check (plain ws:// off loopback).
        ("ws://canaryuser:canarypw@crown.example:9/x?token=canaryq".to_owned(), 2),
        // Accepted, then the connection is refused.
        (format!("ws://canaryuser:canarypw@127.0.0.1:{closed}/x?token=canaryq"), 3),
    ];
    for (url, code) in cases {
        let mut r = Razar::new();
        r.config(json!({"components": [{"name": "a", "command": "true"}]}));
        r.env("CROWN_WS_URL", &url);
        let runs = [r.run(&["validate"]), r.run(&["handshake"]), r.run(&["boot"])];
        runs[2].expect_code(code);
        assert!(runs[2].stderr.contains("***@"), "the message still says where: {}", runs[2].stderr);
        for needle in ["canarypw", "canaryq", "canaryuser"] {
            assert_nowhere(&r, &runs.iter().collect::<Vec<_>>(), needle);
        }
    }
}

#[test]
fn an_agent_endpoint_from_a_variable_never_prints_its_value() {
    for value in ["ftp://canaryhost/x", "https://canaryhost:99999/x", "http://canaryhost.example/x", "canaryplain"] {
        let mut r = Razar::new();
        r.config(json!({"components": [{"name": "a", "command": "true"}]}));
        r.write(
            "config/razar_ai_agents.json",
            &json!({"active": "kimi", "agents": [{"name": "kimi", "protocol": "openai-chat", "endpoint": "${AGENT_URL}", "model": "m"}]})
                .to_string(),
        );
        r.env("AGENT_URL", value);
        let runs = [r.run(&["validate"]), r.run(&["agents", "check"]), r.run(&["agents", "check", "--json"])];
        assert_ne!(runs[0].code, 0, "{value}: a bad endpoint fails validate");
        assert!(runs[0].stderr.contains("\"${AGENT_URL}\" (after expansion)"), "{}", runs[0].stderr);
        assert_nowhere(&r, &runs.iter().collect::<Vec<_>>(), "canary");
    }
}

#[test]
fn an_http_probe_url_with_credentials_is_redacted_in_state_and_logs() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let r = Razar::new();
    r.config(json!({"components": [
        {"name": "web", "command": "exec sleep 30", "ready_timeout": "1s", "restart": {"policy": "never"},
         "health_check": {"http": format!("http://canaryuser:canarypw@127.0.0.1:{closed}/h?token=canaryq")}}
    ]}));
    let run = r.run(&["boot", "--retries", "0"]);
    assert_ne!(run.code, 0);
    let status = r.run(&["status", "--json"]);
    for needle in ["canarypw", "canaryq", "canaryuser"] {
        assert_nowhere(&r, &[&run, &status], needle);
    }
}

/// PIDs listed in `file` (one per launch) that are alive now.
fn live_pids(r: &Razar, file: &str) -> Vec<u32> {
    std::fs::read_to_string(r.path(file))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .filter(|&p| !gone(p))
        .collect()
}

#[track_caller]
fn assert_one_copy_each(r: &Razar) {
    for c in ["a", "b"] {
        let live = live_pids(r, &format!("{c}.pids"));
        assert_eq!(live.len(), 1, "{c}: exactly one live copy expected, found {live:?}");
    }
}

fn wait_ready_by(r: &Razar, boot: &std::process::Child) {
    let pid = boot.id();
    wait_until("the boot to be ready", Duration::from_secs(30), || {
        let s: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(r.path("logs/razar_state.json")).ok()?).ok()?;
        (s["phase"] == "ready" && s["razar_pid"] == pid).then_some(())
    });
}

fn sigkill(mut boot: std::process::Child) {
    kill(Pid::from_raw(boot.id() as i32), Signal::SIGKILL).unwrap();
    boot.wait().unwrap();
}

#[test]
fn sigkill_mid_boot_and_after_ready_then_boot_and_resume_leave_no_duplicate_and_no_orphan() {
    let r = Razar::new();
    // `b` becomes ready only once the file `go` exists, so a boot can be caught half way.
    r.config(json!({"components": [
        {"name": "a", "command": "echo $$ >> a.pids; echo ready; exec sleep 60", "health_check": {"log": "^ready$"}},
        {"name": "b", "command": "echo $$ >> b.pids; exec sleep 60", "depends_on": ["a"],
         "health_check": {"file": "go", "start_interval": "20ms", "period": "50ms"}, "ready_timeout": "1m"}
    ]}));
    // 1. SIGKILL while `b` is still starting.
    let first = r.spawn(&["boot"]);
    // Launched and recorded: a SIGKILL between a spawn and its launch record is the one
    // window a later boot cannot see into (docs/RELIABILITY.md).
    wait_until("b to be launched and recorded", Duration::from_secs(30), || {
        let recorded = std::fs::read_to_string(r.path(".razar/launched.jsonl")).unwrap_or_default();
        (live_pids(&r, "b.pids").len() == 1 && recorded.contains("\"component\":\"b\"")).then_some(())
    });
    assert_eq!(r.phase().as_deref(), Some("launching"));
    sigkill(first);
    assert_one_copy_each(&r);
    // 2. A plain boot stops the dead boot's groups first, then starts one copy of each.
    std::fs::write(r.path("go"), "").unwrap();
    let second = r.spawn(&["boot"]);
    wait_ready_by(&r, &second);
    assert_one_copy_each(&r);
    // 3. SIGKILL after ready, then --resume adopts both: still one copy each, the same ones.
    let before: Vec<Vec<u32>> = ["a.pids", "b.pids"].iter().map(|f| live_pids(&r, f)).collect();
    sigkill(second);
    let third = r.spawn(&["boot", "--resume"]);
    wait_ready_by(&r, &third);
    assert_one_copy_each(&r);
    let after: Vec<Vec<u32>> = ["a.pids", "b.pids"].iter().map(|f| live_pids(&r, f)).collect();
    assert_eq!(before, after, "the resumed boot adopted the running components");
    // 4. SIGKILL mid-boot again, then --resume: nothing healthy to adopt for `b`, no duplicate.
    sigkill(third);
    std::fs::remove_file(r.path("go")).unwrap();
    let b_old = live_pids(&r, "b.pids");
    kill(Pid::from_raw(b_old[0] as i32), Signal::SIGKILL).unwrap();
    let fourth = r.spawn(&["boot", "--resume"]);
    // Relaunched and recorded, as in step 1.
    wait_until("b to be relaunched and recorded", Duration::from_secs(30), || {
        let live = live_pids(&r, "b.pids");
        let recorded = std::fs::read_to_string(r.path(".razar/launched.jsonl")).unwrap_or_default();
        (live.len() == 1 && live != b_old && recorded.contains(&format!("\"pid\":{}", live[0]))).then_some(())
    });
    sigkill(fourth);
    std::fs::write(r.path("go"), "").unwrap();
    let fifth = r.spawn(&["boot", "--resume"]);
    wait_ready_by(&r, &fifth);
    assert_one_copy_each(&r);
    // 5. A clean stop leaves nothing.
    let all: Vec<u32> = ["a.pids", "b.pids"].iter().flat_map(|f| live_pids(&r, f)).collect();
    kill(Pid::from_raw(fifth.id() as i32), Signal::SIGTERM).unwrap();
    wait_output(fifth);
    for p in all {
        assert!(gone(p), "{p} outlived the final shutdown");
    }
}

#[test]
fn a_double_forked_daemon_without_setsid_is_reaped_and_stopped() {
    let r = Razar::new();
    // The subshell exits at once: its `sleep` is re-parented to razar (subreaper), still in the
    // component's process group.
    r.config(json!({"components": [
        {"name": "forker", "command": "(sleep 60 & echo $! > daemon.pid); (sleep 60 & echo $! > second.pid); echo ready; exec sleep 60",
         "health_check": {"log": "^ready$"}}
    ]}));
    let boot = r.spawn(&["boot"]);
    wait_ready_by(&r, &boot);
    let daemon = pid_in(&r, "daemon.pid");
    let second = pid_in(&r, "second.pid");
    let ppid = |pid: u32| -> Option<u32> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat[stat.rfind(')')? + 2..].split_whitespace().nth(1)?.parse().ok()
    };
    assert_eq!(ppid(daemon), Some(boot.id()), "the daemon was re-parented to razar");
    // One daemon dies while razar runs: razar reaps it (no zombie left behind).
    kill(Pid::from_raw(daemon as i32), Signal::SIGKILL).unwrap();
    wait_until("the dead daemon to be reaped", Duration::from_secs(5), || {
        std::fs::metadata(format!("/proc/{daemon}")).is_err().then_some(())
    });
    kill(Pid::from_raw(boot.id() as i32), Signal::SIGTERM).unwrap();
    wait_output(boot);
    assert!(gone(second), "the other daemon outlived razar's shutdown");
}

#[test]
fn a_hung_probe_is_cut_at_its_timeout_and_leaves_nothing_behind() {
    // An http target that accepts and never answers, and an exec probe that never ends.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let r = Razar::new();
    r.config(json!({"components": [
        {"name": "exec", "command": "exec sleep 60", "restart": {"policy": "never"}, "ready_timeout": "2s",
         "health_check": {"exec": ["sh", "-c", "echo $$ >> probe.pids; exec sleep 60"], "timeout": "200ms"}},
        {"name": "http", "command": "exec sleep 60", "restart": {"policy": "never"}, "ready_timeout": "2s",
         "health_check": {"http": format!("http://{addr}/"), "timeout": "200ms"}}
    ]}));
    let started = Instant::now();
    let run = r.run(&["boot", "--retries", "0", "--keep-going"]);
    assert_ne!(run.code, 0, "neither component can become ready");
    assert!(started.elapsed() < Duration::from_secs(20), "the boot took {:?}", started.elapsed());
    for c in ["exec", "http"] {
        let out = r.component_state(c)["probe"]["last_output"].as_str().unwrap_or_default().to_owned();
        assert!(out.contains("timed out"), "{c}: {out}");
    }
    let probes = std::fs::read_to_string(r.path("probe.pids")).unwrap();
    assert!(probes.lines().count() >= 2, "the exec probe ran several times: {probes}");
    for p in probes.lines().filter_map(|l| l.trim().parse::<u32>().ok()) {
        assert!(gone(p), "hung probe {p} outlived its timeout");
    }
    drop(silent);
}

#[test]
fn a_crown_url_with_credentials_is_redacted_after_a_successful_handshake_too() {
    let crown = crate::crown::Crown::reply(json!({"ack": "ok", "capabilities": ["GLM-4.1V"]}));
    let url = crown.url().replace("ws://", "ws://canaryuser:canarypw@") + "?token=canaryq";
    let mut r = Razar::new();
    r.config(json!({"components": [{"name": "a", "command": "true"}]}));
    r.env("CROWN_WS_URL", &url);
    let runs = [r.run(&["handshake", "--json"]), r.run(&["boot"]), r.run(&["status", "--json"])];
    runs[1].expect_code(0);
    let state = r.json("logs/razar_state.json");
    assert_eq!(state["handshake"]["acknowledgement"], "ok", "{state:#}");
    for needle in ["canarypw", "canaryq", "canaryuser"] {
        assert_nowhere(&r, &runs.iter().collect::<Vec<_>>(), needle);
    }
}

#[test]
fn a_component_printing_a_gigabyte_keeps_razars_memory_flat_and_its_log_capped() {
    let r = Razar::new();
    // 1 GiB of output in 64 KiB lines, then the ready line; the log probe sees every line.
    r.config(json!({"components": [
        {"name": "chatty", "command": "head -c 1073741824 /dev/zero | tr '\\0' 'x' | fold -w 65536; echo; echo ready; exec sleep 60",
         "health_check": {"log": "^ready$"}, "ready_timeout": "5m"}
    ]}));
    let mut boot = r.spawn(&["boot", "--no-metrics"]);
    wait_until("ready after a gigabyte", Duration::from_secs(300), || {
        (r.phase().as_deref() == Some("ready")).then_some(())
    });
    let peak = peak_rss_kib(boot.id());
    eprintln!("razar peak RSS after draining 1 GiB: {peak} KiB");
    assert!(peak < 64 * 1024, "razar's peak RSS grew to {peak} KiB while draining 1 GiB");
    let total: u64 = ["", ".1", ".2", ".3"]
        .iter()
        .filter_map(|s| std::fs::metadata(r.path(&format!("logs/components/chatty.log{s}"))).ok())
        .map(|m| m.len())
        .sum();
    assert!(total <= 4 * 10 * 1024 * 1024 + 70_000, "the component log is not capped: {total} bytes kept");
    assert!(!r.path("logs/components/chatty.log.4").exists());
    kill(Pid::from_raw(boot.id() as i32), Signal::SIGTERM).unwrap();
    assert_eq!(boot.wait().unwrap().code(), Some(143));
}
