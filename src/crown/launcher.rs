//! Running `crown.model_launcher` when the Crown reports no GLM-4.1V capability.
//!
//! The launcher runs in its own process group with a timeout; at the timeout the whole group is
//! stopped (SIGTERM, then SIGKILL after [`LAUNCHER_GRACE`]). If razar is interrupted while the
//! launcher runs (a signal during the handshake drops this future), the whole group is killed,
//! not only the launcher. A launcher that exits on time may leave a model server running in the
//! background in its group: that is its job, so nothing is killed then; the group is recorded
//! ([`LaunchRecord::left_running`]) and `razar boot` stops it when the boot ends
//! ([`LauncherGroup`]). Its output is captured up to a cap; the pipes
//! keep being drained after it exits so a background child writing to them never blocks or
//! dies of SIGPIPE, but razar waits for that output only briefly. `CROWN_TOKEN` is removed from
//! the launcher's environment and redacted from its captured output.

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::Signal;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::time::Instant;

/// Default time a launcher may take.
pub const DEFAULT_LAUNCH_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes of each output stream kept.
const OUTPUT_CAP: usize = 64 * 1024;
/// How long a timed-out (or, at the end of a boot, left-running) launcher group has between
/// SIGTERM and SIGKILL.
pub const LAUNCHER_GRACE: Duration = Duration::from_secs(2);
/// How long to wait for the output after the launcher has exited.
const OUTPUT_GRACE: Duration = Duration::from_millis(300);

/// What happened when the launcher ran (or why it did not).
#[derive(Debug, Clone, Serialize)]
pub struct LaunchRecord {
    pub model: &'static str,
    /// The launcher path; `None` when none is configured.
    pub launcher: Option<String>,
    /// `launched` (exit 0), `failed`, `timeout`, `spawn_error` or `not_configured`.
    pub status: &'static str,
    pub launched: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    pub duration_seconds: f64,
    pub stdout: String,
    pub stderr: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The launcher's process group, when members of it (a model server it started) still ran
    /// after it exited.
    #[serde(skip)]
    pub left_running: Option<i32>,
}

impl LaunchRecord {
    /// The record when no launcher is configured: nothing was launched.
    pub fn not_configured(model: &'static str) -> Self {
        LaunchRecord {
            model,
            launcher: None,
            status: "not_configured",
            launched: false,
            exit_code: None,
            signal: None,
            duration_seconds: 0.0,
            stdout: String::new(),
            stderr: String::new(),
            error: Some("no crown.model_launcher configured and no crown_model_launcher.sh in the root".into()),
            left_running: None,
        }
    }
}

/// Runs `launcher` in `cwd` with `timeout`. `secret` (the Crown token) is redacted from output.
pub async fn run_launcher(
    model: &'static str,
    launcher: &Path,
    cwd: &Path,
    timeout: Duration,
    secret: Option<&str>,
) -> LaunchRecord {
    let started = Instant::now();
    let mut record = LaunchRecord {
        launcher: Some(launcher.display().to_string()),
        status: "spawn_error",
        error: None,
        ..LaunchRecord::not_configured(model)
    };
    let mut cmd = crate::supervise::spawn::command(launcher);
    cmd.current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match crate::supervise::reaper::spawn(&mut cmd) {
        Ok(c) => c,
        Err(e) => {
            record.error = Some(format!("cannot start {}: {e}", launcher.display()));
            return record;
        }
    };
    let pgid = child.id().and_then(|p| i32::try_from(p).ok());
    // Armed until the launcher is reaped: dropping this future kills the whole group.
    let mut guard = crate::supervise::GroupGuard::new(child.id());
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());

    match tokio::time::timeout(timeout, crate::supervise::reaper::wait(&mut child)).await {
        Ok(Ok(status)) => {
            use std::os::unix::process::ExitStatusExt;
            record.exit_code = status.code();
            record.signal = status.signal();
            record.launched = status.success();
            record.status = if status.success() { "launched" } else { "failed" };
            guard.disarm();
            record.left_running = pgid.filter(|&g| crate::supervise::procfs::group_exists(g));
        }
        Ok(Err(e)) => {
            guard.disarm();
            record.status = "failed";
            record.error = Some(format!("waiting for {}: {e}", launcher.display()));
        }
        Err(_) => {
            if let Some(pgid) = pgid {
                let stop = crate::supervise::terminate::stop_group(pgid, Signal::SIGTERM, LAUNCHER_GRACE);
                // The leader, reaped by its handle, stays a zombie member until waited for.
                let _ = tokio::join!(stop, crate::supervise::reaper::wait(&mut child));
            } else {
                let _ = crate::supervise::reaper::wait(&mut child).await;
            }
            guard.disarm();
            record.status = "timeout";
            record.error = Some(format!("still running after {timeout:?}; its process group was stopped"));
        }
    }
    record.duration_seconds = started.elapsed().as_secs_f64();
    let grace = Instant::now() + OUTPUT_GRACE;
    record.stdout = redact(&collected(&out, grace).await, secret);
    record.stderr = redact(&collected(&err, grace).await, secret);
    record
}

/// A launcher's process group left running (a model server), stopped when dropped: SIGTERM,
/// up to [`LAUNCHER_GRACE`], then SIGKILL. The group is signalled only while one of its members
/// is a child of razar (re-parented to razar as subreaper), which proves the group id was not
/// reused by an unrelated process after the launcher's group emptied.
#[derive(Debug)]
pub struct LauncherGroup {
    pgid: Option<i32>,
}

impl LauncherGroup {
    pub fn new(pgid: Option<i32>) -> Self {
        LauncherGroup { pgid }
    }

    /// Leaves the group running (one-shot commands whose job is to launch it).
    pub fn release(mut self) {
        self.pgid = None;
    }

    fn still_ours(pgid: i32) -> bool {
        use crate::supervise::{procfs, reaper};
        procfs::group_exists(pgid) && reaper::orphans().into_iter().any(|p| procfs::pgid(p) == Some(pgid))
    }
}

impl Drop for LauncherGroup {
    fn drop(&mut self) {
        let Some(pgid) = self.pgid.take().filter(|&g| Self::still_ours(g)) else { return };
        tracing::info!("stopping the model launcher's process group {pgid}");
        let pg = nix::unistd::Pid::from_raw(pgid);
        let _ = nix::sys::signal::killpg(pg, Signal::SIGTERM);
        let _ = nix::sys::signal::killpg(pg, Signal::SIGCONT);
        // Drop cannot await: a short bounded poll, at the very end of a boot.
        let deadline = std::time::Instant::now() + LAUNCHER_GRACE;
        while std::time::Instant::now() < deadline && Self::still_ours(pgid) {
            crate::supervise::reaper::reap_orphans();
            std::thread::sleep(Duration::from_millis(10));
        }
        if Self::still_ours(pgid) {
            let _ = nix::sys::signal::killpg(pg, Signal::SIGKILL);
        }
        crate::supervise::reaper::reap_orphans();
    }
}

type Captured = (Arc<Mutex<Vec<u8>>>, tokio::task::JoinHandle<()>);

/// Reads `stream` to its end in a background task, keeping the first [`OUTPUT_CAP`] bytes.
fn drain<R: AsyncRead + Unpin + Send + 'static>(stream: Option<R>) -> Option<Captured> {
    let mut stream = stream?;
    let buf = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&buf);
    let task = tokio::spawn(async move {
        let mut chunk = [0u8; 8192];
        while let Ok(n) = stream.read(&mut chunk).await {
            if n == 0 {
                break;
            }
            let mut b = sink.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let room = OUTPUT_CAP.saturating_sub(b.len());
            b.extend_from_slice(&chunk[..n.min(room)]);
        }
    });
    Some((buf, task))
}

/// What `captured` holds once its stream ended or `until` passed.
async fn collected(captured: &Option<Captured>, until: Instant) -> String {
    let Some((buf, task)) = captured else { return String::new() };
    let wait = async {
        while !task.is_finished() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let _ = tokio::time::timeout_at(until, wait).await;
    let b = buf.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    String::from_utf8_lossy(&b).into_owned()
}

fn redact(text: &str, secret: Option<&str>) -> String {
    match secret {
        Some(s) if !s.is_empty() => text.replace(s, "***"),
        _ => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn script(dir: &Path, body: &str) -> std::path::PathBuf {
        let p = dir.join("launch.sh");
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
    }

    #[test]
    fn success_captures_output_and_redacts_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let p = script(dir.path(), "echo started tok123; echo oops >&2; pwd");
        let r = rt().block_on(run_launcher("GLM-4.1V", &p, dir.path(), Duration::from_secs(10), Some("tok123")));
        assert!(r.launched, "{r:?}");
        assert_eq!(r.status, "launched");
        assert!(r.stdout.starts_with("started ***\n"), "{:?}", r.stdout);
        assert_eq!(r.stderr, "oops\n");
    }

    #[test]
    fn failure_and_missing_program() {
        let dir = tempfile::tempdir().unwrap();
        let p = script(dir.path(), "exit 4");
        let r = rt().block_on(run_launcher("GLM-4.1V", &p, dir.path(), Duration::from_secs(10), None));
        assert!(!r.launched);
        assert_eq!((r.status, r.exit_code), ("failed", Some(4)));
        let r =
            rt().block_on(run_launcher("GLM-4.1V", &dir.path().join("nope"), dir.path(), Duration::from_secs(1), None));
        assert_eq!(r.status, "spawn_error");
        assert!(r.error.unwrap().contains("cannot start"));
    }

    #[test]
    fn timeout_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("grandchild.pid");
        let p = script(dir.path(), &format!("sleep 30 & echo $! > {}; wait", pidfile.display()));
        let r = rt().block_on(run_launcher("GLM-4.1V", &p, dir.path(), Duration::from_millis(300), None));
        assert_eq!(r.status, "timeout");
        assert!(r.duration_seconds < 5.0);
        let pid: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
        // The grandchild was SIGKILLed with the group: gone, or a zombie awaiting its reaper.
        let alive = |pid: i32| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.rsplit(')').next().is_some_and(|rest| !rest.trim_start().starts_with('Z')))
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while alive(pid) {
            assert!(std::time::Instant::now() < deadline, "grandchild {pid} survived the timeout");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn background_child_holding_the_pipe_does_not_block() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("bg.pid");
        let p = script(dir.path(), &format!("echo up; sleep 30 & echo $! > {}", pidfile.display()));
        let started = std::time::Instant::now();
        let r = rt().block_on(run_launcher("GLM-4.1V", &p, dir.path(), Duration::from_secs(10), None));
        assert!(r.launched);
        assert_eq!(r.stdout, "up\n");
        assert!(started.elapsed() < Duration::from_secs(5));
        let pid: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    }
}
