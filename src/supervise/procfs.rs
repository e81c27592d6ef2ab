//! What `/proc` says about a process: its start time (so a recycled PID is never mistaken for
//! ours) and whether a process group still has members.

use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;

/// Start time of `pid` in clock ticks since boot (`/proc/<pid>/stat` field 22).
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and ')': fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Process group of `pid` (`/proc/<pid>/stat` field 5).
pub fn pgid(pid: u32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(2)?.parse().ok()
}

/// The host's boot id (`/proc/sys/kernel/random/boot_id`): PIDs and start times recorded
/// under another boot id name other processes.
pub fn host_boot_id() -> Option<String> {
    let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let id = id.trim();
    (!id.is_empty()).then(|| id.to_owned())
}

/// True while process `pid` exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    let state = stat.rfind(')').and_then(|i| stat[i + 2..].chars().next());
    !matches!(state, None | Some('Z' | 'X'))
}

/// True while process group `pgid` has a member (zombies count until reaped).
pub fn group_exists(pgid: i32) -> bool {
    pgid > 1 && !matches!(kill(Pid::from_raw(-pgid), None), Err(Errno::ESRCH))
}

/// True while `pid` is alive and started at `start_time`: the same process, not a PID reuse.
pub fn same_process(pid: u32, start: u64) -> bool {
    alive(pid) && start_time(pid) == Some(start)
}

/// Resolves when process `pid` exits, whoever its parent is (a pidfd becomes readable at exit).
pub async fn wait_exit(pid: u32) -> std::io::Result<()> {
    use std::os::fd::{FromRawFd, OwnedFd};
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        // Already gone: nothing to wait for.
        return if e.raw_os_error() == Some(libc::ESRCH) { Ok(()) } else { Err(e) };
    }
    // SAFETY: `fd` is a fresh descriptor owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    // SAFETY: the AsyncFd owns `fd`, so it stays open for as long as it is registered.
    let fd = unsafe { tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE)? };
    let _ready = fd.readable().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_process() {
        let me = std::process::id();
        assert!(start_time(me).is_some());
        assert!(alive(me));
        assert!(same_process(me, start_time(me).unwrap()));
        assert!(!same_process(me, start_time(me).unwrap() + 1));
        assert!(group_exists(pgid(me).unwrap()));
    }

    #[tokio::test]
    async fn wait_exit_resolves_for_a_process_that_is_not_our_child_too() {
        let mut child = std::process::Command::new("sleep").arg("0.2").spawn().unwrap();
        let pid = child.id();
        let waiter = tokio::spawn(wait_exit(pid));
        // Reap on another thread so the exit is observed through the pidfd, not wait().
        std::thread::spawn(move || child.wait()).join().unwrap().unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter).await.unwrap().unwrap().unwrap();
        assert!(wait_exit(pid).await.is_ok(), "an already-gone pid resolves at once");
    }
}
