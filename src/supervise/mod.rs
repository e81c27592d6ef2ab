//! Child processes: spawning each component in its own process group with its output drained
//! to a rotated log (`child`), and stopping a whole group in order (`terminate`).

pub mod child;
pub mod leftovers;
pub mod output;
pub mod procfs;
pub mod reaper;
pub mod secrets;
pub mod signals;
pub mod spawn;
pub mod terminate;

/// Descriptors reserved up front for a boot: enough for a thousand components (a pipe and a
/// pidfd each) without the descriptor table growing under load.
const RESERVED_DESCRIPTORS: u64 = 4096;

/// Prepares the process to hold many children, before the async runtime starts its threads:
/// raises the open-files soft limit to the hard limit, and grows the descriptor table once.
/// Growing it later, with several threads running, waits for an RCU grace period at every
/// doubling — tens of milliseconds spread over a large boot.
pub fn prepare_for_many_children() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else { return };
    let limit = if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() { hard } else { soft };
    if soft < hard && limit == soft {
        tracing::warn!("cannot raise the open-files limit from {soft} to {hard}");
    }
    let top = RESERVED_DESCRIPTORS.min(limit).saturating_sub(1);
    // SAFETY: F_DUPFD_CLOEXEC duplicates stdin to the lowest free descriptor >= `top` (growing
    // the table to hold it); the duplicate is closed at once and nothing else refers to it.
    unsafe {
        let fd = libc::fcntl(0, libc::F_DUPFD_CLOEXEC, top as libc::c_int);
        if fd >= 0 {
            libc::close(fd);
        }
    }
}

/// Kills a child's whole process group if dropped while armed: for work that may be
/// cancelled half way (an exec probe whose component became ready or was stopped).
pub struct GroupGuard {
    pid: Option<u32>,
}

impl GroupGuard {
    pub fn new(pid: Option<u32>) -> Self {
        GroupGuard { pid }
    }

    /// The child finished (and was reaped) normally.
    pub fn disarm(&mut self) {
        self.pid = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.pid.take() {
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL);
            // Nobody will wait for it through its handle now: the orphan reaper may.
            reaper::forget(pid);
        }
    }
}
