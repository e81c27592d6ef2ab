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

fn events(r: &Razar, file: &str, event: &str, component: &str) -> usize {
    r.jsonl(file).into_iter().filter(|e| e["event"] == event && e["component"] == component).count()
}

fn restartable() -> serde_json::Value {
    json!({"components": [
        {"name": "web", "command": "echo ready; exec sleep 60", "health_check": {"log": "^ready$"},
         "restart": {"backoff": {"initial": "50ms", "max": "100ms"}, "max_restarts": 100, "window": "10m"}}
    ]})
}

fn kill_component(r: &Razar, component: &str) -> i64 {
    let pid = r.component_state(component)["pid"].as_i64().unwrap();
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
    pid
}

fn wait_restarted(r: &Razar, component: &str, old_pid: i64, timeout: Duration) {
    wait_until(&format!("{component} back healthy"), timeout, || {
        let c = r.component_state(component);
        (c["state"] == "healthy" && c["pid"].as_i64() != Some(old_pid)).then_some(())
    });
}

#[test]
fn a_lock_held_on_the_journal_by_another_process_delays_neither_restarts_nor_sigterm() {
    let r = Razar::new();
    r.config(restartable());
    let mut boot = r.spawn(&["boot"]);
    wait_phase(&r, "ready");
    // Another process holds the journal's lock for as long as this test runs.
    let hostile = std::fs::File::open(r.path("logs/razar.log")).unwrap();
    hostile.lock().unwrap();
    let started = Instant::now();
    let old = kill_component(&r, "web");
    wait_restarted(&r, "web", old, Duration::from_secs(5));
    let restart = started.elapsed();
    let pgid = r.component_state("web")["pgid"].as_i64().unwrap() as i32;
    let started = Instant::now();
    signal(&boot, Signal::SIGTERM);
    assert_eq!(wait_exit(&mut boot, Duration::from_secs(10)), 143);
    let stop = started.elapsed();
    assert!(restart < Duration::from_secs(3), "restart took {restart:?} under a held journal lock");
    assert!(stop < Duration::from_secs(5), "SIGTERM handling took {stop:?} under a held journal lock");
    assert!(!group_alive(pgid));
    assert!(events(&r, "logs/razar.log", "restart", "web") >= 1, "the restart was journaled despite the lock");
    drop(hostile);
}

#[test]
fn after_the_journal_is_rotated_razar_writes_a_new_one_and_sigusr1_does_not_end_it() {
    let r = Razar::new();
    r.config(restartable());
    let mut boot = r.spawn(&["boot"]);
    wait_phase(&r, "ready");
    std::fs::rename(r.path("logs/razar.log"), r.path("logs/razar.log.1")).unwrap();
    let old = kill_component(&r, "web");
    wait_restarted(&r, "web", old, Duration::from_secs(10));
    wait_until("the restart in the new razar.log", Duration::from_secs(10), || {
        (events(&r, "logs/razar.log", "restart", "web") >= 1).then_some(())
    });
    assert_eq!(events(&r, "logs/razar.log.1", "restart", "web"), 0, "nothing more goes to the rotated file");
    // logrotate's `postrotate kill -USR1`: a reopen, not an exit.
    std::fs::rename(r.path("logs/razar.log"), r.path("logs/razar.log.2")).unwrap();
    signal(&boot, Signal::SIGUSR1);
    let old = kill_component(&r, "web");
    wait_restarted(&r, "web", old, Duration::from_secs(10));
    assert!(boot.try_wait().unwrap().is_none(), "SIGUSR1 ended razar");
    signal(&boot, Signal::SIGTERM);
    assert_eq!(wait_exit(&mut boot, Duration::from_secs(10)), 143);
    assert!(events(&r, "logs/razar.log", "restart", "web") >= 1, "records after the second rotation in a new file");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(r.path("logs/razar.log")).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn a_deeply_nested_or_huge_config_is_refused_fast_naming_the_file_and_the_limit() {
    let r = Razar::new();
    r.write("config/deep.yaml", &"[".repeat(200 * 1024));
    r.write("config/deep.json", &"[".repeat(200 * 1024));
    r.write("config/huge.json", &" ".repeat(5 * 1024 * 1024));
    for (file, limit) in
        [("config/deep.yaml", "64 levels"), ("config/deep.json", "64 levels"), ("config/huge.json", "4 MiB")]
    {
        let started = Instant::now();
        let out = r.run(&["validate", "--config", file]);
        let took = started.elapsed();
        out.expect_code(2);
        assert!(out.stderr.contains(file) && out.stderr.contains(limit), "{file}: {}", out.stderr);
        assert!(took < Duration::from_secs(2), "{file} took {took:?}");
    }
}

#[test]
fn paths_outside_the_root_are_refused_naming_the_field_unless_absolute_and_allowed() {
    let r = Razar::new();
    let outside = tempfile::tempdir().unwrap();
    let out_dir = outside.path().to_str().unwrap().to_owned();
    r.config(json!({
        "metrics": {"textfile": "../x.prom"},
        "components": [
            {"name": "web", "command": "sleep 60", "working_dir": "../elsewhere",
             "health_check": {"file": format!("{out_dir}/ready")}},
            {"name": "db", "command": "sleep 60", "health_check": {"log": "^ready$"},
             "liveness": {"file": "data/../../../etc/passwd"}}
        ]
    }));
    let out = r.run(&["validate"]);
    out.expect_code(2);
    for field in [
        "metrics.textfile",
        "components[0].working_dir",
        "components[0].health_check.file",
        "components[1].liveness.file",
    ] {
        assert!(out.stderr.contains(field), "{field} not named:\n{}", out.stderr);
    }
    assert!(out.stderr.contains("allow_outside_root"), "{}", out.stderr);
    // An absolute path under an allowed directory is accepted; `..` never is.
    r.config(json!({
        "allow_outside_root": [out_dir],
        "metrics": {"textfile": format!("{out_dir}/boot.prom")},
        "components": [
            {"name": "web", "command": "sleep 60", "working_dir": "sub/dir",
             "health_check": {"file": format!("{out_dir}/ready")}}
        ]
    }));
    r.run(&["validate"]).expect_code(0);
}

#[test]
fn an_unwritable_logs_directory_is_a_clear_error_before_anything_starts() {
    let r = Razar::new();
    r.config(json!({"components": [
        {"name": "web", "command": "touch started; echo ready; exec sleep 60", "health_check": {"log": "^ready$"}}
    ]}));
    // A file where `logs/` should be: not writable even for root.
    r.write("logs", "not a directory");
    let out = r.run(&["boot"]);
    out.expect_code(70);
    assert!(out.stderr.contains("cannot write to directory") && out.stderr.contains("logs"), "{}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    assert!(!r.path("started").exists(), "nothing was launched");
    assert_eq!(r.read("logs"), "not a directory", "nothing on disk was touched");
}

#[test]
fn a_truncated_state_file_is_moved_aside_and_the_boot_goes_on() {
    let r = Razar::new();
    r.config(json!({"components": [
        {"name": "web", "command": "echo ready; exec sleep 60", "health_check": {"log": "^ready$"}}
    ]}));
    r.write("logs/razar_state.json", "{\"version\": 1, \"phase\": \"rea");
    let mut boot = r.spawn(&["boot"]);
    wait_phase(&r, "ready");
    signal(&boot, Signal::SIGTERM);
    assert_eq!(wait_exit(&mut boot, Duration::from_secs(10)), 143);
    let aside: Vec<String> = std::fs::read_dir(r.path("logs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("razar_state.json.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "the truncated file is kept for inspection");
    assert_eq!(std::fs::read_to_string(r.path("logs").join(&aside[0])).unwrap(), "{\"version\": 1, \"phase\": \"rea");
}

/// Set by [`jsonl_appends_from_four_processes_never_tear_a_line`] in the processes it starts.
const APPEND_CHILD: &str = "RAZAR_TEST_APPEND_CHILD";
const APPENDS: usize = 2000;

/// Not a test on its own: one of the four writers of the test below (ignored unless run by it).
#[test]
#[ignore = "run by jsonl_appends_from_four_processes_never_tear_a_line"]
fn jsonl_append_child() {
    let Ok(spec) = std::env::var(APPEND_CHILD) else { return };
    let (path, writer) = spec.split_once('|').unwrap();
    let journal = razar::fsutil::Appender::new(path);
    let pad = "x".repeat(300);
    for n in 0..APPENDS {
        // Alternate the two write paths razar has: the kept-open appender and the one-shot.
        let record = json!({"writer": writer, "n": n, "pad": pad});
        if n % 2 == 0 {
            journal.append(&record).unwrap();
        } else {
            razar::fsutil::append_jsonl(std::path::Path::new(path), &record).unwrap();
        }
    }
}

#[test]
fn jsonl_appends_from_four_processes_never_tear_a_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("logs/razar.log");
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..4)
        .map(|w| {
            std::process::Command::new(&exe)
                .args(["--exact", "faults::jsonl_append_child", "--ignored", "--quiet"])
                .env(APPEND_CHILD, format!("{}|{w}", path.display()))
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(wait_until("a writer to finish", Duration::from_secs(60), || c.try_wait().unwrap()).success());
    }
    let text = std::fs::read_to_string(&path).unwrap();
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    for (i, line) in text.lines().enumerate() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("line {i} torn ({e}): {line:.80}"));
        *seen.entry(v["writer"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    assert_eq!(seen.values().copied().collect::<Vec<_>>(), vec![APPENDS; 4], "every record of every writer, whole");
}

#[test]
fn a_full_disk_fails_a_journal_write_cleanly_and_the_next_write_after_space_returns_is_whole() {
    if !is_root() {
        eprintln!("skipped (not root): a full disk is simulated with a small tmpfs, which needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(dir.path())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipped (cannot mount a tmpfs here): a full disk is simulated with a small tmpfs");
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(dir.path().to_path_buf());
    let path = dir.path().join("razar.log");
    let journal = razar::fsutil::Appender::new(&path);
    journal.append(&json!({"n": 0})).unwrap();
    // Fill the file system.
    let filler = dir.path().join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let chunk = vec![0u8; 4096];
    while std::io::Write::write_all(&mut f, &chunk).is_ok() {}
    drop(f);
    let pad = "y".repeat(8192);
    let err = journal.append(&json!({"n": 1, "pad": pad})).unwrap_err();
    assert!(err.to_string().contains("razar.log"), "the error names the file: {err}");
    std::fs::remove_file(&filler).unwrap();
    journal.append(&json!({"n": 2})).unwrap();
    let recs: Vec<serde_json::Value> = razar::fsutil::read_jsonl(&path).unwrap();
    let ns: Vec<i64> = recs.iter().map(|r| r["n"].as_i64().unwrap()).collect();
    assert_eq!(ns, vec![0, 2], "the failed record is absent or torn-and-skipped; the next one is whole");
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(2) == Some("0")))
        .unwrap_or(false)
}

#[test]
fn a_command_printing_to_a_closed_stdout_does_not_panic() {
    let r = Razar::new();
    r.config(json!({"components": [{"name": "web", "command": "sleep 60"}]}));
    for args in [&["schema"][..], &["validate"][..], &["quarantine", "list"][..]] {
        let mut child = r.spawn(args);
        drop(child.stdout.take());
        let code = wait_exit(&mut child, Duration::from_secs(30));
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(code, 0, "{args:?}: {stderr}");
    }
}
