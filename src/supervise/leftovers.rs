//! Leftovers of a boot that died (SIGKILL, OOM, power loss): component process groups
//! recorded in its state file are terminated before anything new starts, so no service runs
//! twice and no port clashes.
//!
//! A recorded group is ours when its leader is alive with the recorded start time, or when
//! the leader is gone but the group still has members: Linux never hands out a PID that is
//! still in use as a process-group id, so such a group cannot belong to someone else.

use std::time::Duration;

use nix::sys::signal::Signal;

use super::procfs;
use super::terminate;
use crate::state::StateFile;

/// Terminates every live group recorded in `state`; returns the names of components stopped.
pub async fn reap(state: &StateFile, grace: Duration) -> Vec<String> {
    let mut stopped = Vec::new();
    let mut tasks = Vec::new();
    for c in &state.components {
        let (Some(pid), Some(pgid)) = (c.pid, c.pgid) else { continue };
        if !ours(pid, pgid, c.start_time) {
            continue;
        }
        tracing::warn!("{}: process group {pgid} left by a previous boot; terminating it", c.id);
        stopped.push(c.id.clone());
        tasks.push(tokio::spawn(terminate::stop_group(pgid, Signal::SIGTERM, grace)));
    }
    for t in tasks {
        let _ = t.await;
    }
    stopped
}

fn ours(pid: u32, pgid: i32, start_time: Option<u64>) -> bool {
    if !procfs::group_exists(pgid) {
        return false;
    }
    if procfs::alive(pid) {
        return match start_time {
            Some(start) => procfs::start_time(pid) == Some(start) && procfs::pgid(pid) == Some(pgid),
            None => false,
        };
    }
    // The leader is gone: the group id cannot have been reused while members remain.
    pid as i32 == pgid
}
