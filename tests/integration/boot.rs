//! `razar boot` through the real binary: ordering, parallelism, retries, halting, blocking,
//! bad input, signals and the root lock.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Razar, group_alive, wait_until};

/// The upstream system's file `rel`, or `None` (the test is skipped) when absent.
fn upstream(test: &str, rel: &str) -> Option<String> {
    crate::testutil::upstream(test, rel).map(|p| std::fs::read_to_string(p).unwrap())
}

/// Mission-log records of `event` for `component`.
fn events(r: &Razar, event: &str, component: &str) -> Vec<Value> {
    r.jsonl("logs/razar.log").into_iter().filter(|e| e["event"] == event && e["component"] == component).collect()
}

fn ts(e: &Value) -> f64 {
    e["timestamp"].as_f64().unwrap()
}

fn first_ts(r: &Razar, event: &str, component: &str) -> f64 {
    let all = events(r, event, component);
    assert!(!all.is_empty(), "no {event} event for {component}");
    ts(&all[0])
}

/// Every pid razar launched, from the mission log.
fn launched_pids(r: &Razar) -> Vec<i32> {
    r.jsonl("logs/razar.log")
        .iter()
        .filter(|e| e["event"] == "launch" && e["status"] == "start")
        .map(|e| e["details"]["pid"].as_i64().unwrap() as i32)
        .collect()
}

#[test]
fn seed_boot_config_boots_and_exits_when_everything_completed() {
    let Some(seed) =
        upstream("boot::seed_boot_config_boots_and_exits_when_everything_completed", "razar/boot_config.json")
    else {
        return;
    };
    let r = Razar::new();
    r.write("config/boot_config.json", &seed);
    let out = r.run(&["boot"]);
    out.expect_code(0);
    assert!(out.stderr.contains("RAZAR ready."), "{}", out.stderr);
    for name in ["basic_service", "complex_service"] {
        let c = r.component_state(name);
        assert_eq!(c["state"], "completed", "{c}");
        assert_eq!(c["attempts"], 1);
        assert!(r.read(&format!("logs/components/{name}.log")).contains("service running"));
    }
    let state = r.json("logs/razar_state.json");
    assert_eq!(state["phase"], "stopped");
    let history = r.json("logs/razar_boot_history.json");
    assert_eq!(history["history"][0]["success_rate"], 1.0);
    assert_eq!(history["best_sequence"]["components"], json!(["basic_service", "complex_service"]));
}

#[test]
fn seed_yaml_boots_in_priority_order() {
    let Some(seed) = upstream("boot::seed_yaml_boots_in_priority_order", "config/razar_config.yaml") else {
        return;
    };
    let r = Razar::new();
    r.write("config/razar_config.yaml", &seed);
    r.run(&["boot", "--config", "config/razar_config.yaml"]).expect_code(0);
    let tiers: &[&[&str]] = &[
        &["memory_store"],
        &["chat_gateway", "crown_llm", "vision_adapter"],
        &["audio_device"],
        &["avatar"],
        &["video"],
    ];
    for pair in tiers.windows(2) {
        let lower_ready = pair[0].iter().map(|c| first_ts(&r, "ready", c)).fold(f64::MIN, f64::max);
        for c in pair[1] {
            assert!(first_ts(&r, "launch", c) >= lower_ready, "{c} launched before tier {:?} was ready", pair[0]);
        }
    }
    for c in ["memory_store", "video"] {
        assert_eq!(r.component_state(c)["state"], "completed");
    }
}

#[test]
fn a_three_level_dag_starts_level_by_level_with_siblings_in_parallel() {
    let r = Razar::new();
    // Each component needs ~300 ms to become ready, so siblings started one after another
    // could not both launch before the first is ready.
    let svc = |name: &str, deps: Value| {
        json!({"name": name, "command": "sleep 0.3; echo up; exec sleep 30", "depends_on": deps,
               "health_check": {"log": "^up$"}})
    };
    r.config(json!({"components": [
        svc("a1", json!([])), svc("a2", json!([])),
        svc("b1", json!(["a1", "a2"])), svc("b2", json!(["a1", "a2"])),
        svc("c1", json!(["b1", "b2"])), svc("c2", json!(["b1", "b2"])),
        {"name": "done", "kind": "task", "command": "true", "depends_on": ["c1", "c2"]}
    ]}));
    let mut child = r.spawn(&["boot"]);
    wait_until("the stack to be ready", Duration::from_secs(30), || {
        (r.jsonl("logs/razar.log").iter().any(|e| e["event"] == "boot" && e["status"] == "ready")).then_some(())
    });
    for (level, prev) in [(["b1", "b2"], ["a1", "a2"]), (["c1", "c2"], ["b1", "b2"])] {
        let prev_ready = prev.iter().map(|c| first_ts(&r, "ready", c)).fold(f64::MIN, f64::max);
        for c in level {
            assert!(first_ts(&r, "launch", c) >= prev_ready, "{c} started before {prev:?} were ready");
        }
    }
    for pair in [["a1", "a2"], ["b1", "b2"], ["c1", "c2"]] {
        let first_ready = pair.iter().map(|c| first_ts(&r, "ready", c)).fold(f64::MAX, f64::min);
        for c in pair {
            assert!(first_ts(&r, "launch", c) < first_ready, "siblings {pair:?} did not start in parallel");
        }
    }
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(143));
}

#[test]
fn a_probe_that_never_passes_is_retried_with_backoff_then_halts_the_boot() {
    let r = Razar::new();
    r.config(json!({"components": [
        {"name": "db", "command": "exec sleep 60", "health_check": {"tcp": "127.0.0.1:1", "period": "100ms"}, "ready_timeout": "300ms"},
        {"name": "steady", "command": "exec sleep 60", "health_check": {"file": "config/boot_config.json"}},
        {"name": "api", "command": "exec sleep 60", "depends_on": ["db"], "health_check": {"file": "config/boot_config.json"}}
    ]}));
    let out = r.run(&["boot", "--retries", "2"]);
    out.expect_code(1);
    let launches = events(&r, "launch", "db");
    assert_eq!(launches.len(), 3, "--retries 2 means 3 attempts");
    let delays: Vec<f64> =
        events(&r, "retry", "db").iter().map(|e| e["details"]["delay_seconds"].as_f64().unwrap()).collect();
    assert_eq!(delays, vec![1.0, 2.0], "backoff min(2^(n-1), 60) s");
    // Attempt n+1 starts no earlier than the ready timeout plus the backoff after attempt n.
    for (n, pair) in launches.windows(2).enumerate() {
        assert!(ts(&pair[1]) - ts(&pair[0]) >= 0.3 + delays[n] - 0.05, "attempts {n} and {} too close", n + 1);
    }
    // Out of local attempts with no repair agent to ask: quarantined, and the boot halts.
    assert_eq!(r.component_state("db")["state"], "quarantined");
    assert!(r.path("quarantine/db.json").exists(), "the quarantine ledger has db");
    assert!(r.component_state("db")["last_error"].as_str().unwrap().contains("connection refused"));
    assert_eq!(r.json("logs/razar_state.json")["phase"], "halted");
    let alerts = r.snapshot("monitoring/alerts");
    assert!(
        alerts.iter().any(|(_, b)| String::from_utf8_lossy(b)
            .contains("Boot sequence halted; configuration rolled back to safe defaults")),
        "the halt alert is written"
    );
    assert!(events(&r, "launch", "api").is_empty(), "a dependent of the failed component started");
    for pid in launched_pids(&r) {
        assert!(!group_alive(pid), "process group {pid} outlived the halted boot");
    }
    let history = r.json("logs/razar_boot_history.json");
    assert_eq!(history["component_failures"]["db"], 1);
}

#[test]
fn keep_going_blocks_only_the_dependents() {
    let r = Razar::new();
    r.config(json!({"components": [
        {"name": "broken", "kind": "task", "command": "echo boom >&2; exit 3"},
        {"name": "needs-broken", "kind": "task", "command": "true", "depends_on": ["broken"]},
        {"name": "transitive", "kind": "task", "command": "true", "depends_on": ["needs-broken"]},
        {"name": "independent", "kind": "task", "command": "true"}
    ]}));
    let out = r.run(&["boot", "--retries", "0", "--keep-going"]);
    out.expect_code(1);
    assert_eq!(r.component_state("broken")["state"], "quarantined");
    assert!(r.component_state("broken")["last_error"].as_str().unwrap().contains("exited with status 3"));
    assert_eq!(r.component_state("needs-broken")["state"], "blocked");
    assert_eq!(r.component_state("needs-broken")["blocked_by"], json!(["broken"]));
    assert_eq!(r.component_state("transitive")["state"], "blocked");
    assert_eq!(r.component_state("transitive")["blocked_by"], json!(["needs-broken"]));
    assert_eq!(r.component_state("independent")["state"], "completed");
    assert!(r.read("logs/components/broken.log").contains("boom"));
    let failures = &r.json("logs/razar_boot_history.json")["component_failures"];
    assert_eq!(failures, &json!({"broken": 1}), "blocked components did not fail themselves");
}

#[test]
fn components_run_in_the_root_whatever_razars_working_directory() {
    let r = Razar::new();
    r.write("scripts/hello.sh", "pwd > where.txt\n");
    r.config(json!({"components": [{"name": "rel", "kind": "task", "command": ["sh", "scripts/hello.sh"]}]}));
    let out = r.command(&["boot"]).current_dir("/").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(r.read("where.txt").trim(), r.root().canonicalize().unwrap().to_str().unwrap());
}

#[test]
fn a_task_with_a_probe_is_healthy_while_it_runs_and_completes_on_exit_0() {
    let r = Razar::new();
    r.config(json!({"components": [
        {"name": "job", "kind": "task", "command": "echo started; sleep 0.5; echo done", "health_check": {"log": "^started$"}},
        {"name": "after", "kind": "task", "command": "true", "depends_on": {"job": {"condition": "completed_successfully"}}}
    ]}));
    r.run(&["boot"]).expect_code(0);
    let ready = first_ts(&r, "ready", "job");
    let complete = first_ts(&r, "complete", "job");
    assert!(complete > ready, "the task completed only when it exited");
    assert!(first_ts(&r, "launch", "after") >= complete, "completed_successfully waited for the exit");
    assert_eq!(events(&r, "ready", "job")[0]["status"], "healthy");
}

#[test]
fn bad_configs_exit_2_naming_file_and_field_and_leave_logs_untouched() {
    let cases: &[(&str, &str, &str)] = &[
        ("boot_config.json", "{\"components\": [", "malformed JSON"),
        ("boot_config.yaml", "components:\n  - name: [unclosed", "malformed YAML"),
        (
            "boot_config.json",
            r#"{"components": [{"name": "a", "command": "x", "helth_check": ["true"]}]}"#,
            "components[0].helth_check: unknown field",
        ),
        (
            "boot_config.json",
            r#"{"components": [{"name": "a", "command": "x", "kind": "service"}]}"#,
            "components[0].health_check: a `kind: service` needs a probe",
        ),
        (
            "boot_config.json",
            r#"{"components": [{"name": "a", "command": "x", "depends_on": ["ghost"]}]}"#,
            "components[0].depends_on[0]: unknown component `ghost`",
        ),
        (
            "boot_config.json",
            r#"{"components": [{"name": "a", "command": "x", "depends_on": ["b"]}, {"name": "b", "command": "x", "depends_on": ["a"]}]}"#,
            "dependency cycle: ",
        ),
        (
            "boot_config.json",
            r#"{"components": [{"name": "a", "command": "x", "ready_timeout": "soon"}]}"#,
            "components[0].ready_timeout: bad duration",
        ),
        (
            "boot_config.json",
            r#"{"components": [{"name": "a", "command": "x"}, {"name": "a", "command": "y"}]}"#,
            "components[1].name: duplicate name `a`",
        ),
        (
            "boot_config.json",
            r#"{"components": [{"name": "a/b", "command": "x"}]}"#,
            "components[0].name: \"a/b\" is not a valid component name",
        ),
    ];
    for (file, text, want) in cases {
        let r = Razar::new();
        r.write("logs/razar_state.json", "{\"phase\": \"stopped\"}\n");
        r.write("logs/razar.log", "{\"event\": \"earlier\"}\n");
        r.write(&format!("config/{file}"), text);
        let before = r.snapshot("logs");
        let out = r.run(&["boot", "--config", &format!("config/{file}")]);
        out.expect_code(2);
        assert!(out.stderr.contains(&format!("config/{file}")), "{file}: message must name the file:\n{}", out.stderr);
        assert!(out.stderr.contains(want), "{file}: expected {want:?} in:\n{}", out.stderr);
        assert_eq!(r.snapshot("logs"), before, "{want}: files under logs/ changed");
        assert!(!r.path(".razar/boot.lock").exists() || !r.path("logs/components").exists());
    }
}

#[test]
fn sigterm_during_boot_stops_every_group_and_kills_a_term_ignorer() {
    let r = Razar::new();
    r.config(json!({"components": [
        {"name": "stubborn", "command": "trap '' TERM; echo started; while :; do sleep 0.1; done",
         "health_check": {"log": "^started$"}, "shutdown": {"grace": "500ms"}},
        {"name": "forked", "command": "sleep 60 & sleep 60 & echo up; wait", "health_check": {"log": "^up$"}},
        {"name": "never-ready", "command": "exec sleep 60", "depends_on": ["stubborn"],
         "health_check": {"tcp": "127.0.0.1:1"}, "ready_timeout": "60s"}
    ]}));
    let mut child = r.spawn(&["boot"]);
    // Still booting: never-ready is starting and will not be ready for a minute.
    wait_until("never-ready to start", Duration::from_secs(20), || {
        (!events(&r, "launch", "never-ready").is_empty()).then_some(())
    });
    let pids = launched_pids(&r);
    assert_eq!(pids.len(), 3);
    let sent = std::time::Instant::now();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = child.wait().unwrap();
    assert!(sent.elapsed() < Duration::from_millis(500 + 1000 + 500), "shutdown took {:?}", sent.elapsed());
    assert_eq!(status.code(), Some(143));
    for pid in pids {
        assert!(!group_alive(pid), "process group {pid} survived razar");
    }
    let stops: Vec<Value> = events(&r, "stop", "stubborn");
    assert_eq!(stops[0]["status"], "killed", "the TERM-ignoring component needed SIGKILL");
    assert_eq!(r.json("logs/razar_state.json")["phase"], "stopped");
}

#[test]
fn sigint_after_ready_stops_in_reverse_dependency_order() {
    let r = Razar::new();
    r.config(json!({"components": [
        {"name": "db", "command": "echo ready; exec sleep 60", "health_check": {"log": "ready"}},
        {"name": "api", "command": "echo ready; exec sleep 60", "depends_on": ["db"], "health_check": {"log": "ready"}},
        {"name": "web", "command": "echo ready; exec sleep 60", "depends_on": ["api"], "health_check": {"log": "ready"},
         "stop": "echo web-stop-hook > web.stopped"}
    ]}));
    let mut child = r.spawn(&["boot"]);
    wait_until("RAZAR ready", Duration::from_secs(20), || (r.phase().as_deref() == Some("ready")).then_some(()));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGINT).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(130));
    let stop = |c: &str| first_ts(&r, "stop", c);
    assert!(stop("web") <= stop("api") && stop("api") <= stop("db"), "stop order web → api → db");
    assert_eq!(r.read("web.stopped").trim(), "web-stop-hook", "the stop command ran");
    for c in ["db", "api", "web"] {
        assert_eq!(r.component_state(c)["state"], "stopped");
    }
}

#[test]
fn a_second_boot_on_the_same_root_names_the_lock_holder() {
    let r = Razar::new();
    r.config(json!({"components": [{"name": "svc", "command": "echo ready; exec sleep 60", "health_check": {"log": "ready"}}]}));
    let mut first = r.spawn(&["boot"]);
    wait_until("the first boot to be ready", Duration::from_secs(20), || {
        (r.phase().as_deref() == Some("ready")).then_some(())
    });
    let out = r.run(&["boot"]);
    out.expect_code(4);
    assert!(out.stderr.contains(&format!("pid {}", first.id())), "{}", out.stderr);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(first.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    first.wait().unwrap();
}

#[test]
fn a_chatty_component_never_stalls_and_its_log_rotates() {
    let r = Razar::new();
    // ~40 MB as fast as the pipe takes it; the task only completes if razar keeps draining.
    r.config(json!({"components": [
        {"name": "chatty", "kind": "task", "command": ["python3", "-c", "import sys\nb = b'x' * 65535 + b'\\n'\nfor _ in range(640): sys.stdout.buffer.write(b)\n"]}
    ]}));
    r.run(&["boot"]).expect_code(0);
    let main = std::fs::metadata(r.path("logs/components/chatty.log")).unwrap().len();
    assert!(main <= 10 * 1024 * 1024, "log not rotated: {main} bytes");
    assert!(r.path("logs/components/chatty.log.1").exists());
    assert!(r.path("logs/components/chatty.log.3").exists());
    assert!(!r.path("logs/components/chatty.log.4").exists());
}

#[test]
fn json_log_format_writes_only_json_lines_to_stderr() {
    let r = Razar::new();
    r.write("config/boot_config.json", include_str!("../fixtures/upstream-format/boot_config.json"));
    let out = r.run(&["--log-format", "json", "boot", "--no-metrics"]);
    out.expect_code(0);
    let lines: Vec<Value> =
        out.stderr.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect();
    assert!(lines.iter().any(|l| l["message"] == "RAZAR ready."), "{}", out.stderr);
    assert!(lines.iter().any(|l| l["message"].as_str().unwrap_or("").starts_with("basic_service: starting")));
}

#[test]
fn a_hangup_stops_the_stack_instead_of_orphaning_it() {
    let r = Razar::new();
    r.config(json!({"components": [{"name": "svc", "command": "echo ready; exec sleep 60", "health_check": {"log": "ready"}}]}));
    let mut child = r.spawn(&["boot"]);
    wait_until("ready", Duration::from_secs(20), || (r.phase().as_deref() == Some("ready")).then_some(()));
    let pgid = r.component_state("svc")["pgid"].as_i64().unwrap() as i32;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGHUP).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(129));
    assert!(!group_alive(pgid));
}

#[test]
fn jobs_limits_how_many_components_start_at_once() {
    let r = Razar::new();
    let comps: Vec<Value> =
        (0..5).map(|i| json!({"name": format!("t{i}"), "kind": "task", "command": "sleep 0.3"})).collect();
    r.config(json!({"components": comps}));
    r.run(&["boot", "--jobs", "2"]).expect_code(0);
    let spans: Vec<(f64, f64)> =
        (0..5).map(|i| (first_ts(&r, "launch", &format!("t{i}")), first_ts(&r, "ready", &format!("t{i}")))).collect();
    let overlap = |t: f64| spans.iter().filter(|(a, b)| *a <= t && t < *b).count();
    let most = spans.iter().map(|(a, _)| overlap(*a)).max().unwrap();
    assert_eq!(most, 2, "at most --jobs 2 running at once, and the limit was used: {spans:?}");
}

#[test]
fn a_dependency_timeout_fails_the_dependent_with_a_clear_reason() {
    let r = Razar::new();
    r.config(json!({"components": [
        {"name": "slow", "command": "exec sleep 60", "health_check": {"tcp": "127.0.0.1:1"}, "ready_timeout": "3s"},
        {"name": "impatient", "kind": "task", "command": "true", "depends_on": {"slow": {"condition": "healthy", "timeout": "300ms"}}}
    ]}));
    r.run(&["boot", "--keep-going", "--retries", "0"]).expect_code(1);
    let c = r.component_state("impatient");
    assert_eq!(c["state"], "failed");
    assert!(c["last_error"].as_str().unwrap().contains("slow did not reach"), "{c}");
    assert!(first_ts(&r, "failure", "impatient") < first_ts(&r, "failure", "slow"), "the edge timeout fired first");
}

#[test]
fn a_restart_edge_restarts_the_dependent_when_its_dependency_comes_back() {
    let r = Razar::new();
    r.config(json!({"components": [
        {"name": "db", "command": "echo ready; exec sleep 60", "health_check": {"log": "^ready$"},
         "restart": {"backoff": {"initial": "1s"}}},
        {"name": "api", "command": "echo ready; exec sleep 60", "health_check": {"log": "^ready$"},
         "depends_on": {"db": {"condition": "healthy", "restart": true}}},
        {"name": "plain", "command": "echo ready; exec sleep 60", "health_check": {"log": "^ready$"}, "depends_on": ["db"]}
    ]}));
    let mut child = r.spawn(&["boot"]);
    wait_until("ready", Duration::from_secs(20), || (r.phase().as_deref() == Some("ready")).then_some(()));
    let api_pid = r.component_state("api")["pid"].as_i64().unwrap();
    let plain_pid = r.component_state("plain")["pid"].as_i64().unwrap();
    let db_pid = r.component_state("db")["pid"].as_i64().unwrap();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(db_pid as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
    // While db is down, its dependents are told (the state shows it).
    wait_until("plain to see db restarting", Duration::from_secs(5), || {
        (r.component_state("plain")["dependency_restarting"] == json!(["db"])).then_some(())
    });
    wait_until("api to be restarted", Duration::from_secs(20), || {
        let api = r.component_state("api");
        (api["state"] == "healthy" && api["pid"].as_i64() != Some(api_pid)).then_some(())
    });
    let restart = &events(&r, "restart", "api")[0];
    assert_eq!(restart["details"]["reason"], "dependency restarted");
    assert_eq!(r.component_state("plain")["pid"].as_i64(), Some(plain_pid), "no restart edge: left running");
    assert!(r.component_state("plain").get("dependency_restarting").is_none(), "cleared once db is back");
    assert!(events(&r, "restart", "plain").is_empty());
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    child.wait().unwrap();
}

#[test]
fn output_from_a_starting_service_triggers_a_probe_at_once() {
    let r = Razar::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    r.write(
        "srv.py",
        &format!(
            "import socket, time\ntime.sleep(0.3)\ns = socket.socket()\ns.bind(('127.0.0.1', {port}))\ns.listen(8)\n\
             print('bound', time.time(), flush=True)\nwhile True:\n    c, _ = s.accept()\n    c.close()\n"
        ),
    );
    // Polling alone would look at 0 s and then not again before 2 s.
    r.config(json!({"components": [
        {"name": "srv", "command": ["python3", "-u", "srv.py"],
         "health_check": {"tcp": format!("127.0.0.1:{port}"), "start_interval": "2s", "period": "10s"}}
    ]}));
    let mut child = r.spawn(&["boot"]);
    wait_until("ready", Duration::from_secs(20), || (r.phase().as_deref() == Some("ready")).then_some(()));
    let bound: f64 = r
        .read("logs/components/srv.log")
        .lines()
        .find_map(|l| l.strip_prefix("bound ").and_then(|t| t.trim().parse().ok()))
        .expect("the server's bind line");
    let detected = first_ts(&r, "ready", "srv") - bound;
    assert!(detected < 0.5, "detected {detected:.3}s after the bind: the output did not trigger a probe");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    child.wait().unwrap();
}

#[test]
fn the_crown_token_never_reaches_components_probes_or_state() {
    let mut r = Razar::new();
    let canary = "canary-token-7f3a9c";
    r.env("CROWN_TOKEN", canary);
    r.config(json!({"components": [
        {"name": "dump", "command": "env; echo ready; exec sleep 60",
         "health_check": {"exec": ["sh", "-c", "env > probe-env.txt"]}},
        {"name": "waiter", "kind": "task", "command": "true", "depends_on": ["dump"]}
    ]}));
    let child = r.spawn(&["boot"]);
    wait_until("ready", Duration::from_secs(20), || (r.phase().as_deref() == Some("ready")).then_some(()));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(r.read("probe-env.txt").contains("RAZAR_COMPONENT=dump"), "the probe ran with the component's env");
    for (path, bytes) in r.snapshot("") {
        assert!(!String::from_utf8_lossy(&bytes).contains(canary), "the token reached {}", path.display());
    }
    assert!(!String::from_utf8_lossy(&out.stderr).contains(canary));
}

#[test]
fn razar_own_environment_is_not_inherited_but_a_component_env_may_set_it() {
    let mut r = Razar::new();
    let sock = r.path("no-such-notify.sock");
    r.env("CROWN_TOKEN", "canary-token-inherit-1")
        .env("RAZAR_ALERT_WEBHOOK", "http://127.0.0.1:9/canary-hook")
        .env("NOTIFY_SOCKET", sock.to_str().unwrap())
        .env("WATCHDOG_USEC", "60000000");
    r.config(json!({"components": [
        {"name": "dump", "command": "env > comp-env.txt; echo ready; exec sleep 60",
         "env": {"WATCHDOG_USEC": "explicit-123"},
         "health_check": {"exec": ["sh", "-c", "env > probe-env.txt"]}}
    ]}));
    let child = r.spawn(&["boot"]);
    wait_until("ready", Duration::from_secs(20), || (r.phase().as_deref() == Some("ready")).then_some(()));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    child.wait_with_output().unwrap();
    for file in ["comp-env.txt", "probe-env.txt"] {
        let env = r.read(file);
        assert!(env.contains("RAZAR_COMPONENT=dump"), "{file} holds the child's environment");
        for name in ["CROWN_TOKEN=", "RAZAR_ALERT_WEBHOOK=", "NOTIFY_SOCKET=", "WATCHDOG_PID="] {
            assert!(!env.lines().any(|l| l.starts_with(name)), "{file}: {name} was inherited");
        }
        assert!(env.lines().any(|l| l == "WATCHDOG_USEC=explicit-123"), "{file}: the config's own env is kept");
    }
}
