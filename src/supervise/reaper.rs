//! razar as child subreaper: processes that daemonize away from a component (double fork,
//! `setsid`) are re-parented to razar instead of init, so they can be reaped and, at
//! shutdown, stopped too.
//!
//! Reaping orphans must never steal the exit status of a child that a
//! `tokio::process::Child` is waiting for. So every direct child razar spawns goes through
//! [`spawn`], which records its PID in a process-wide set while holding the lock across the
//! fork; the reaper takes the same lock and reaps only children not in the set. The set is
//! process-wide for the same reason SIGCHLD is: the kernel has one child list per process.

use std::collections::HashSet;
use std::process::ExitStatus;
use std::sync::{Mutex, MutexGuard, OnceLock};

use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

fn tracked() -> MutexGuard<'static, HashSet<u32>> {
    static TRACKED: OnceLock<Mutex<HashSet<u32>>> = OnceLock::new();
    TRACKED.get_or_init(Default::default).lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Makes razar the reaper of every orphan descended from it (Linux `PR_SET_CHILD_SUBREAPER`).
pub fn become_subreaper() -> std::io::Result<()> {
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes one integer argument and touches no memory.
    let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    if rc == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

/// Spawns `cmd` and records the child as one that its `Child` handle will reap.
pub fn spawn(cmd: &mut tokio::process::Command) -> std::io::Result<tokio::process::Child> {
    let mut set = tracked();
    let child = cmd.spawn()?;
    if let Some(pid) = child.id() {
        set.insert(pid);
    }
    Ok(child)
}

/// [`spawn`] for a child waited on from blocking code: the caller waits through the returned
/// handle, then calls [`forget`] with its PID.
pub fn spawn_blocking(cmd: &mut std::process::Command) -> std::io::Result<std::process::Child> {
    let mut set = tracked();
    let child = cmd.spawn()?;
    set.insert(child.id());
    Ok(child)
}

/// Waits for a child started with [`spawn`] and forgets it.
pub async fn wait(child: &mut tokio::process::Child) -> std::io::Result<ExitStatus> {
    let pid = child.id();
    let status = child.wait().await;
    if let Some(pid) = pid {
        tracked().remove(&pid);
    }
    status
}

/// Stops treating `pid` as owned by a `Child` handle (its handle was dropped unwaited).
pub fn forget(pid: u32) {
    tracked().remove(&pid);
}

/// Direct children of razar (any thread) that no `Child` handle owns: orphans re-parented here.
pub fn orphans() -> Vec<u32> {
    let set = tracked();
    let mut out = Vec::new();
    for pid in children() {
        if !set.contains(&pid) {
            out.push(pid);
        }
    }
    out
}

fn children() -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return out };
    for task in tasks.flatten() {
        if let Ok(text) = std::fs::read_to_string(task.path().join("children")) {
            out.extend(text.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
        }
    }
    out
}

/// Reaps every exited orphan; returns how many.
pub fn reap_orphans() -> usize {
    let set = tracked();
    let mut reaped = 0;
    for pid in children() {
        if set.contains(&pid) {
            continue;
        }
        if let Ok(status) = waitpid(Pid::from_raw(pid as i32), Some(WaitPidFlag::WNOHANG))
            && !matches!(status, WaitStatus::StillAlive)
        {
            reaped += 1;
        }
    }
    reaped
}

/// Reaps orphans on every SIGCHLD for the life of the runtime.
pub fn spawn_reaper_task() -> std::io::Result<()> {
    let mut sigchld = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::child())?;
    tokio::spawn(async move {
        while sigchld.recv().await.is_some() {
            reap_orphans();
        }
    });
    Ok(())
}
