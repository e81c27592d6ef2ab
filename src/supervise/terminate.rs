//! Stopping a process group: the component's `stop` command, then its signal to the whole
//! group, then SIGKILL after `grace`, then waiting until the group is verified empty.
//!
//! The group leader is reaped by its owner's wait task; members that daemonized are reaped by
//! whoever their parent is (razar, as subreaper, or init). Emptiness is checked with
//! `kill(-pgid, 0)` on a short bounded interval: a group offers nothing to block on.

use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::time::{Instant, sleep};

use super::procfs::group_exists;

/// How the stop went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopOutcome {
    /// The group was already gone.
    AlreadyGone,
    /// The group left after the stop command or the signal.
    Exited,
    /// SIGKILL was needed.
    Killed,
    /// Members remained even after SIGKILL (e.g. in uninterruptible sleep).
    Stuck,
}

/// Sends `signal` to the group, waits up to `grace`, then SIGKILLs it and waits until empty
/// (bounded by 5 s more).
pub async fn stop_group(pgid: i32, signal: Signal, grace: Duration) -> StopOutcome {
    if !group_exists(pgid) {
        return StopOutcome::AlreadyGone;
    }
    let _ = killpg(Pid::from_raw(pgid), signal);
    // Processes stopped with SIGSTOP would never see the signal.
    let _ = killpg(Pid::from_raw(pgid), Signal::SIGCONT);
    if wait_empty(pgid, grace).await {
        return StopOutcome::Exited;
    }
    kill_group(pgid).await
}

/// SIGKILLs the group now and waits (bounded) until it is empty.
pub async fn kill_group(pgid: i32) -> StopOutcome {
    if !group_exists(pgid) {
        return StopOutcome::AlreadyGone;
    }
    let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
    if wait_empty(pgid, Duration::from_secs(5)).await { StopOutcome::Killed } else { StopOutcome::Stuck }
}

/// True once the group is empty; false if `limit` passes first.
pub async fn wait_empty(pgid: i32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut step = Duration::from_millis(1);
    loop {
        if !group_exists(pgid) {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        sleep(step.min(deadline - now)).await;
        step = (step * 2).min(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spawn_group(script: &str) -> std::process::Child {
        use std::os::unix::process::CommandExt;
        std::process::Command::new("sh").args(["-c", script]).process_group(0).spawn().unwrap()
    }

    #[tokio::test]
    async fn a_term_ignoring_group_is_killed_after_grace() {
        let mut child = spawn_group("trap '' TERM; sleep 30 & wait");
        let pgid = child.id() as i32;
        let reaper = std::thread::spawn(move || child.wait());
        // Give sh time to install the trap so the test exercises the SIGKILL path.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let outcome = stop_group(pgid, Signal::SIGTERM, Duration::from_millis(200)).await;
        assert_eq!(outcome, StopOutcome::Killed);
        assert!(!group_exists(pgid));
        reaper.join().unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_cooperative_group_exits_on_term() {
        let mut child = spawn_group("sleep 30");
        let pgid = child.id() as i32;
        let reaper = std::thread::spawn(move || child.wait());
        let outcome = stop_group(pgid, Signal::SIGTERM, Duration::from_secs(5)).await;
        assert_eq!(outcome, StopOutcome::Exited);
        reaper.join().unwrap().unwrap();
    }
}
