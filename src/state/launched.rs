//! The records of launched process groups a dead boot may have left running: the state file
//! (written at most every 50 ms) and the launch journal `.razar/launched.jsonl` (one line per
//! spawn, appended before the spawn is reported), which covers processes started after the last
//! state write. Each record carries the host's boot id so a record from before a reboot is never
//! matched against the PIDs of this one.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::StateFile;
use crate::fsutil::{self, FsError};

/// One process group a boot started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Launched {
    pub component: String,
    pub pid: u32,
    pub pgid: i32,
    pub start_time: Option<u64>,
    /// `/proc/sys/kernel/random/boot_id` when the group was launched; absent in records
    /// written before razar recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_boot_id: Option<String>,
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
        .flat_map(|s| s.components.iter().map(move |c| (s, c)))
        .filter_map(|(s, c)| {
            Some(Launched {
                component: c.id.clone(),
                pid: c.pid?,
                pgid: c.pgid?,
                start_time: c.start_time,
                host_boot_id: s.host_boot_id.clone(),
            })
        })
        .collect();
    for l in fsutil::read_jsonl::<Launched>(journal)? {
        if !out.iter().any(|o| o.pid == l.pid && o.start_time == l.start_time) {
            out.push(l);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{ComponentState, ComponentStatus};

    fn launched(component: &str, pid: u32, start: u64) -> Launched {
        Launched {
            component: component.into(),
            pid,
            pgid: pid as i32,
            start_time: Some(start),
            host_boot_id: Some("b-1".into()),
        }
    }

    #[test]
    fn journal_entries_add_to_the_state_without_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join("launched.jsonl");
        let (a, b) = (launched("a", 10, 5), launched("b", 11, 6));
        let appender = fsutil::Appender::new(&journal);
        record(&appender, &a).unwrap();
        record(&appender, &b).unwrap();
        let mut state = StateFile { host_boot_id: Some("b-1".into()), ..StateFile::default() };
        state.components.push(ComponentState {
            pid: Some(10),
            pgid: Some(10),
            start_time: Some(5),
            ..ComponentState::new("a", ComponentStatus::Healthy)
        });
        assert_eq!(recorded(Some(&state), &journal).unwrap(), vec![a, b]);
        reset(&journal).unwrap();
        assert!(recorded(None, &journal).unwrap().is_empty());
    }

    #[test]
    fn a_record_without_a_host_boot_id_still_loads() {
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join("launched.jsonl");
        std::fs::write(&journal, "{\"component\":\"a\",\"pid\":7,\"pgid\":7,\"start_time\":3}\n").unwrap();
        let got = recorded(None, &journal).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].host_boot_id, None);
    }
}
