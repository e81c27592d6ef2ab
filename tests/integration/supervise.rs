//! Supervision after `RAZAR ready.` through the real binary: restarts with backoff, the
//! restart budget and quarantine, crash safety (kill -9 of razar), `--resume`, daemonizing
//! grandchildren, and Python layers.

use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};

use crate::harness::{Razar, group_alive, wait_until};

fn events(r: &Razar, event: &str, component: &str) -> Vec<Value> {
    r.jsonl("logs/razar.log").into_iter().filter(|e| e["event"] == event && e["component"] == component).collect()
}

fn signal(child: &std::process::Child, sig: Signal) {
    kill(Pid::from_raw(child.id() as i32), sig).unwrap();
}

fn wait_phase(r: &Razar, phase: &str) {
    wait_until(&format!("phase {phase}"), Duration::from_secs(30), || {
        (r.phase().as_deref() == Some(phase)).then_some(())
    });
}

fn alive(pid: i64) -> bool {
    razar::supervise::procfs::alive(pid as u32)
}

/// CPU time (user + system) of a process in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / 100.0
}

#[test]
fn a_killed_component_restarts_with_growing_delays_then_is_quarantined_with_its_dependents_blocked() {
    let r = Razar::new();
    r.config(json!({"components": [
        {"name": "flaky", "command": "echo ready; exec sleep 60", "health_check": {"log": "^ready$"},
         "restart": {"backoff": {"initial": "100ms", "max": "2s"}, "max_restarts": 3, "window": "1m"}},
        {"name": "client", "command": "echo ready; exec sleep 60", "depends_on": ["flaky"], "health_check": {"log": "^ready$"}},
        {"name": "bystander", "command": "echo ready; exec sleep 60", "health_check": {"log": "^ready$"}}
    ]}));
    let mut boot = r.spawn(&["boot"]);
    wait_phase(&r, "ready");
    // Kill it after every time it comes back, until razar gives up on it.
    let mut killed = Vec::new();
    wait_until("flaky to be quarantined", Duration::from_secs(30), || {
        let c = r.component_state("flaky");
        if c["state"] == "quarantined" {
            return Some(());
        }
        if c["state"] == "healthy"
            && let Some(pid) = c["pid"].as_i64()
            && !killed.contains(&pid)
        {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
            killed.push(pid);
        }
        None
    });
    let delays: Vec<f64> =
        events(&r, "restart", "flaky").iter().map(|e| e["details"]["delay_seconds"].as_f64().unwrap()).collect();
    assert_eq!(delays.len(), 3, "max_restarts 3: {delays:?}");
    for (d, base) in delays.iter().zip([0.1, 0.2, 0.4]) {
        assert!(*d >= base && *d <= base * 1.1 + 1e-9, "delay {d} not within jitter of {base}: {delays:?}");
    }
    assert!(events(&r, "restart", "flaky")[0]["details"]["error"].as_str().unwrap().contains("SIGKILL"));
    let entry = r.json("quarantine/flaky.json");
    assert!(entry["reason"].as_str().unwrap().contains("restart budget exhausted"), "{entry}");
    assert!(r.read("docs/quarantine_log.md").contains("| flaky | quarantined |"));
    wait_until("client to be blocked", Duration::from_secs(10), || {
        (r.component_state("client")["state"] == "blocked").then_some(())
    });
    assert_eq!(r.component_state("client")["blocked_by"], json!(["flaky"]));
    assert_eq!(r.component_state("bystander")["state"], "healthy");
    let alert = wait_until("a quarantine alert", Duration::from_secs(5), || {
        std::fs::read_dir(r.path("monitoring/alerts")).ok()?.flatten().find_map(|e| {
            let v: Value = serde_json::from_str(&std::fs::read_to_string(e.path()).ok()?).ok()?;
            v["message"].as_str()?.contains("flaky quarantined").then_some(v)
        })
    });
    assert_eq!(alert["severity"], "critical");
    signal(&boot, Signal::SIGTERM);
    assert_eq!(boot.wait().unwrap().code(), Some(143));
}

#[test]
fn a_crash_loop_costs_razar_little_cpu() {
    let r = Razar::new();
    r.config(json!({"components": [
        {"name": "crasher", "command": "echo ready; exit 1", "health_check": {"log": "^ready$"},
         "restart": {"backoff": {"initial": "50ms", "max": "500ms"}, "max_restarts": 1000, "window": "10m"}}
    ]}));
    let mut boot = r.spawn(&["boot"]);
    wait_phase(&r, "ready");
    let start_cpu = cpu_seconds(boot.id());
    let started = Instant::now();
    wait_until("20 s of crash loop", Duration::from_secs(30), || {
        (started.elapsed() >= Duration::from_secs(20)).then_some(())
    });
    let used = cpu_seconds(boot.id()) - start_cpu;
    let restarts = events(&r, "restart", "crasher").len();
    assert!(restarts >= 20, "the loop must really have run: {restarts} restarts");
    assert!(used < 1.0, "razar used {used:.2}s CPU over a 20 s crash loop ({restarts} restarts)");
    signal(&boot, Signal::SIGTERM);
    boot.wait().unwrap();
}

#[test]
fn after_razar_is_killed_the_next_boot_clears_its_leftovers_first() {
    let r = Razar::new();
    r.config(json!({"components": [
        {"name": "web", "command": "echo ready; exec sleep 60", "health_check": {"log": "^ready$"}},
        {"name": "forker", "command": "sleep 60 & echo ready; wait", "health_check": {"log": "^ready$"}}
    ]}));
    let mut first = r.spawn(&["boot"]);
    wait_phase(&r, "ready");
    let old: Vec<i64> = ["web", "forker"].iter().map(|c| r.component_state(c)["pgid"].as_i64().unwrap()).collect();
    signal(&first, Signal::SIGKILL);
    first.wait().unwrap();
    assert!(old.iter().all(|&g| group_alive(g as i32)), "components outlive a SIGKILLed razar until the next boot");
    let mut second = r.spawn(&["boot"]);
    wait_until("the second boot to be ready", Duration::from_secs(30), || {
        let s = r.json("logs/razar_state.json");
        (s["phase"] == "ready" && s["razar_pid"] == second.id()).then_some(())
    });
    for g in &old {
        assert!(!group_alive(*g as i32), "group {g} from the first boot survived");
    }
    for c in ["web", "forker"] {
        let state = r.component_state(c);
        assert_eq!(state["state"], "healthy");
        assert_eq!(state["attempts"], 1, "{c} started cleanly on its first attempt");
    }
    signal(&second, Signal::SIGTERM);
    second.wait().unwrap();
}

#[test]
fn resume_after_kill_keeps_live_healthy_components_and_starts_the_rest() {
    let r = Razar::new();
    r.config(json!({"components": [
        {"name": "db", "command": "echo ready; exec sleep 60", "health_check": {"log": "^ready$"}},
        {"name": "cache", "command": "echo ready; exec sleep 60", "health_check": {"log": "^ready$"}},
        {"name": "api", "command": "echo ready; exec sleep 60", "depends_on": ["db", "cache"], "health_check": {"log": "^ready$"}}
    ]}));
    let mut first = r.spawn(&["boot"]);
    wait_phase(&r, "ready");
    let pid = |c: &str| r.component_state(c)["pid"].as_i64().unwrap();
    let (db, cache, api) = (pid("db"), pid("cache"), pid("api"));
    signal(&first, Signal::SIGKILL);
    first.wait().unwrap();
    // One component dies while no razar watches: resume must start it again.
    kill(Pid::from_raw(cache as i32), Signal::SIGKILL).unwrap();
    wait_until("cache to die", Duration::from_secs(5), || (!alive(cache)).then_some(()));
    let mut second = r.spawn(&["boot", "--resume"]);
    wait_until("the resumed boot to be ready", Duration::from_secs(30), || {
        let s = r.json("logs/razar_state.json");
        (s["phase"] == "ready" && s["razar_pid"] == second.id()).then_some(())
    });
    assert_eq!(pid("db"), db, "db was adopted, not restarted");
    assert_eq!(pid("api"), api, "api was adopted, not restarted");
    assert_ne!(pid("cache"), cache, "cache was started again");
    assert!(alive(db) && alive(api));
    assert_eq!(events(&r, "adopt", "db").len(), 1);
    // The adopted ones' output went to the dead boot's pipe: status says so.
    assert_eq!(r.component_state("db")["output"], "detached");
    assert!(r.component_state("cache").get("output").is_none(), "a relaunched component's output is captured");
    let table = r.run(&["status"]);
    table.expect_code(0);
    let db_row = table.stdout.lines().find(|l| l.starts_with("db ")).unwrap();
    assert!(db_row.contains("healthy (output detached)"), "{}", table.stdout);
    signal(&second, Signal::SIGTERM);
    assert_eq!(second.wait().unwrap().code(), Some(143));
    assert!(!alive(db) && !alive(api), "adopted components are stopped at shutdown too");
}

#[test]
fn a_daemonizing_grandchild_is_stopped_at_shutdown() {
    let r = Razar::new();
    // The grandchild leaves the component's group and session (setsid) and its parent exits,
    // so only razar as subreaper can still find it.
    r.config(json!({"components": [
        {"name": "daemonizer", "command": "setsid sh -c 'sleep 60 & echo $! > daemon.pid'; echo ready; exec sleep 60",
         "health_check": {"log": "^ready$"}}
    ]}));
    let mut boot = r.spawn(&["boot"]);
    wait_phase(&r, "ready");
    let daemon: i64 = wait_until("the daemon pid", Duration::from_secs(5), || r.read("daemon.pid").trim().parse().ok());
    assert!(alive(daemon));
    signal(&boot, Signal::SIGTERM);
    boot.wait().unwrap();
    assert!(!alive(daemon), "the daemonized grandchild outlived razar");
}

#[test]
fn a_layer_is_built_once_then_skipped_and_the_component_imports_its_package() {
    if std::env::var_os("RAZAR_TEST_OFFLINE").is_some() {
        eprintln!("RAZAR_TEST_OFFLINE set: skipping the pip install test");
        return;
    }
    let r = Razar::new();
    r.write("razar_env.yaml", "layers:\n  tools:\n    - six\n");
    r.config(json!({"components": [
        {"name": "uses-six", "kind": "task", "layer": "tools",
         "command": ["python3", "-c", "import os, six; print('six', six.__version__, os.environ['VIRTUAL_ENV'])"]}
    ]}));
    r.run(&["boot"]).expect_code(0);
    let out = r.read("logs/components/uses-six.log");
    assert!(out.contains("six ") && out.contains(".razar_venv/tools"), "{out}");
    let stamp = r.path(".razar_venv/tools/.razar-stamp");
    let first = std::fs::metadata(&stamp).unwrap().modified().unwrap();
    let second_run = r.run(&["boot"]);
    second_run.expect_code(0);
    assert_eq!(std::fs::metadata(&stamp).unwrap().modified().unwrap(), first, "the layer was rebuilt");
    assert_eq!(r.component_state("uses-six")["state"], "completed");
}

#[test]
fn a_layer_that_fails_to_install_fails_its_components_with_pips_output() {
    if std::env::var_os("RAZAR_TEST_OFFLINE").is_some() {
        return;
    }
    let r = Razar::new();
    r.write("razar_env.yaml", "layers:\n  broken:\n    - razar-no-such-package-xyz\n");
    r.config(json!({"components": [
        {"name": "needs-broken", "kind": "task", "layer": "broken", "command": "true"},
        {"name": "fine", "kind": "task", "command": "true"}
    ]}));
    r.run(&["boot", "--keep-going"]).expect_code(1);
    let c = r.component_state("needs-broken");
    assert_eq!(c["state"], "quarantined");
    assert!(c["last_error"].as_str().unwrap().contains("razar-no-such-package-xyz"), "{c}");
    assert!(events(&r, "retry", "needs-broken").is_empty(), "a broken layer is not retried");
    assert!(events(&r, "launch", "needs-broken").iter().all(|e| e["status"] != "start"), "nothing was spawned");
    assert_eq!(r.component_state("fine")["state"], "completed");
}

/// Spawns an unrelated process group whose leader backgrounds a member and exits: the group
/// lives on under the leader's id. Returns (group id, member pid).
fn orphaned_group(dir: &std::path::Path) -> (i32, u32) {
    use std::os::unix::process::CommandExt;
    let pidfile = dir.join("member.pid");
    let mut leader = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("sleep 60 & echo $! > {}", pidfile.display()))
        .process_group(0)
        .spawn()
        .unwrap();
    let pgid = leader.id() as i32;
    leader.wait().unwrap();
    let member = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    (pgid, member)
}

#[test]
fn a_stale_record_never_kills_an_unrelated_process_group() {
    use std::os::unix::process::CommandExt;
    let r = Razar::new();
    r.config(json!({"components": [
        {"name": "web", "command": "echo ready; exec sleep 60", "health_check": {"log": "^ready$"}}
    ]}));
    let host = razar::supervise::procfs::host_boot_id().expect("host boot id");
    // 1. A group whose leader exited: the record's pid == pgid, but nothing proves it is ours.
    let scratch = tempfile::tempdir().unwrap();
    let (orphan_pgid, orphan_member) = orphaned_group(scratch.path());
    // 2. A live leader with the recorded start time, but recorded under another host boot.
    let mut other = std::process::Command::new("sleep").arg("60").process_group(0).spawn().unwrap();
    let other_pid = other.id();
    let other_start = razar::supervise::procfs::start_time(other_pid).unwrap();
    // 3. The same live leader in the launch journal of this host boot, with a wrong start time.
    r.write(
        "logs/razar_state.json",
        &json!({"version": 1, "phase": "ready", "host_boot_id": "00000000-0000-0000-0000-000000000000",
        "components": [
            {"id": "web", "state": "healthy", "pid": other_pid, "pgid": other_pid, "start_time": other_start},
            {"id": "api", "state": "healthy", "pid": orphan_pgid, "pgid": orphan_pgid, "start_time": 1}
        ]})
        .to_string(),
    );
    r.write(
        ".razar/launched.jsonl",
        &format!(
            "{}\n",
            json!({"component": "web", "pid": other_pid, "pgid": other_pid, "start_time": other_start + 7,
                   "host_boot_id": host})
        ),
    );
    let boot = r.spawn(&["boot"]);
    wait_until("the boot to be ready", Duration::from_secs(30), || {
        let s = r.json("logs/razar_state.json");
        (s["phase"] == "ready" && s["razar_pid"] == boot.id()).then_some(())
    });
    assert!(alive(orphan_member as i64), "the member of an unrelated group whose leader exited was killed");
    assert!(group_alive(orphan_pgid));
    assert!(alive(other_pid as i64), "an unrelated process recorded under another host boot was killed");
    let state = r.json("logs/razar_state.json");
    assert_eq!(state["host_boot_id"], host.as_str(), "the boot records the host boot id");
    let journal = r.jsonl(".razar/launched.jsonl");
    assert!(journal.iter().all(|l| l["host_boot_id"] == host.as_str()), "{journal:?}");
    signal(&boot, Signal::SIGTERM);
    let out = boot.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "process group {orphan_pgid} recorded by a previous boot is still alive but left alone"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("earlier host boot"), "{stderr}");
    let _ = nix::sys::signal::killpg(Pid::from_raw(orphan_pgid), Signal::SIGKILL);
    let _ = other.kill();
    let _ = other.wait();
}
