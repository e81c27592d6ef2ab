//! Leftovers of a boot that died (SIGKILL, OOM, power loss): component process groups it
//! recorded are terminated before anything new starts, so no service runs twice and no port
//! clashes.
//!
//! Two records name them: the state file (written at most every 50 ms) and the launch journal
//! `.razar/launched.jsonl` (one line per spawn, appended before the spawn is reported), which
//! covers processes started after the last state write.
//!
//! A recorded group is ours when its leader is alive with the recorded start time, or when
//! the leader is gone but the group still has members: Linux never hands out a PID that is
//! still in use as a process-group id, so such a group cannot belong to someone else.

use std::path::Path;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};

use super::procfs;
use super::terminate;
use crate::fsutil::{self, FsError};
use crate::state::StateFile;

/// One process group a boot started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Launched {
    pub component: String,
    pub pid: u32,
    pub pgid: i32,
    pub start_time: Option<u64>,
}

/// Appends a launch to the journal.
pub fn record(journal: &fsutil::Appender, launched: &Launched) -> Result<(), FsError> {
    journal.append(launched)
}

/// Starts a fresh journal for a new boot.
pub fn reset(journal: &Path) -> Result<(), FsError> {
    fsutil::atomic_write(journal, b"", 0o600)
}

/// Every group recorded by the last boot: its state file plus its launch journal.
pub fn recorded(state: Option<&StateFile>, journal: &Path) -> Result<Vec<Launched>, FsError> {
    let mut out: Vec<Launched> = state
        .into_iter()
        .flat_map(|s| &s.components)
        .filter_map(|c| {
            Some(Launched { component: c.id.clone(), pid: c.pid?, pgid: c.pgid?, start_time: c.start_time })
        })
        .collect();
    for l in fsutil::read_jsonl::<Launched>(journal)? {
        if !out.iter().any(|o| o.pid == l.pid && o.start_time == l.start_time) {
            out.push(l);
        }
    }
    Ok(out)
}

/// Terminates every live group in `groups` that is still ours, each with the signal and
/// grace `stop_with` gives for its component; returns the components stopped.
pub async fn reap(groups: &[Launched], stop_with: impl Fn(&str) -> (Signal, Duration)) -> Vec<String> {
    let mut stopped = Vec::new();
    let mut tasks = Vec::new();
    for g in groups {
        if !ours(g.pid, g.pgid, g.start_time) {
            continue;
        }
        let (signal, grace) = stop_with(&g.component);
        tracing::warn!("{}: process group {} left by a previous boot; terminating it", g.component, g.pgid);
        stopped.push(g.component.clone());
        tasks.push(tokio::spawn(terminate::stop_group(g.pgid, signal, grace)));
    }
    for t in tasks {
        let _ = t.await;
    }
    stopped.sort();
    stopped.dedup();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_entries_add_to_the_state_without_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join("launched.jsonl");
        let a = Launched { component: "a".into(), pid: 10, pgid: 10, start_time: Some(5) };
        let b = Launched { component: "b".into(), pid: 11, pgid: 11, start_time: Some(6) };
        let appender = fsutil::Appender::new(&journal);
        record(&appender, &a).unwrap();
        record(&appender, &b).unwrap();
        let mut state = StateFile::default();
        state.components.push(crate::state::ComponentState {
            pid: Some(10),
            pgid: Some(10),
            start_time: Some(5),
            ..crate::state::ComponentState::new("a", crate::state::ComponentStatus::Healthy)
        });
        assert_eq!(recorded(Some(&state), &journal).unwrap(), vec![a, b]);
        reset(&journal).unwrap();
        assert!(recorded(None, &journal).unwrap().is_empty());
    }

    #[test]
    fn a_recycled_pid_is_not_ours() {
        let me = std::process::id();
        let start = procfs::start_time(me).unwrap();
        let group = procfs::pgid(me).unwrap();
        assert!(!ours(me, group, Some(start + 1)), "different start time: a different process");
        assert!(!ours(me, group, None), "no start time recorded: never assume");
    }
}
