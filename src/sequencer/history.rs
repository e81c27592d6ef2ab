//! `logs/razar_boot_history.json`: one record per run, the best sequence so far, and the
//! cumulative failure count per component (reset by a success, so counts decay).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::fsutil::{self, FsError};

/// Runs kept in the file; older ones are dropped.
pub const MAX_RUNS: usize = 100;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct History {
    #[serde(default)]
    pub history: Vec<Run>,
    #[serde(default)]
    pub best_sequence: Option<BestSequence>,
    #[serde(default)]
    pub component_failures: BTreeMap<String, u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run {
    pub timestamp: f64,
    #[serde(default)]
    pub timestamp_iso: Option<String>,
    #[serde(default)]
    pub mission: Option<String>,
    #[serde(default)]
    pub boot_id: Option<String>,
    pub components: Vec<RunComponent>,
    pub success_rate: f64,
    pub total_time: f64,
    pub first_attempt_successes: u32,
    pub retry_total: u32,
    #[serde(default)]
    pub component_total: u32,
    #[serde(default)]
    pub component_successes: u32,
    #[serde(default)]
    pub component_failures: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunComponent {
    pub name: String,
    pub attempts: u32,
    pub success: bool,
    #[serde(default)]
    pub ready_seconds: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BestSequence {
    pub components: Vec<String>,
    pub success_rate: f64,
    pub total_time: f64,
    pub timestamp: f64,
}

impl Run {
    /// Builds a run record from per-component outcomes (only components that were attempted).
    pub fn new(timestamp: f64, components: Vec<RunComponent>, total_time: f64) -> Self {
        let total = components.len() as u32;
        let ok = components.iter().filter(|c| c.success).count() as u32;
        Run {
            timestamp,
            timestamp_iso: Some(crate::clock::iso(timestamp)),
            mission: None,
            boot_id: None,
            success_rate: if total == 0 { 1.0 } else { f64::from(ok) / f64::from(total) },
            total_time,
            first_attempt_successes: components.iter().filter(|c| c.success && c.attempts == 1).count() as u32,
            retry_total: components.iter().map(|c| c.attempts.saturating_sub(1)).sum(),
            component_total: total,
            component_successes: ok,
            component_failures: total - ok,
            components,
        }
    }
}

impl History {
    pub fn load(path: &Path) -> Result<Self, FsError> {
        Ok(fsutil::read_json_or_quarantine(path)?.unwrap_or_default())
    }

    pub fn save(&self, path: &Path) -> Result<(), FsError> {
        fsutil::write_json(path, self)
    }

    /// Load, change and save under an exclusive lock (`<file>.lock` beside it), so a boot
    /// recording its run and `razar quarantine release` resetting a count never lose each
    /// other's update.
    pub fn update(path: &Path, change: impl FnOnce(&mut History)) -> Result<(), FsError> {
        let mut lock_path = path.as_os_str().to_owned();
        lock_path.push(".lock");
        let lock_path = std::path::PathBuf::from(lock_path);
        if let Some(dir) = lock_path.parent() {
            fsutil::ensure_dir(dir)?;
        }
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| FsError::new("opening", &lock_path, e))?;
        lock.lock().map_err(|e| FsError::new("locking", &lock_path, e))?;
        let mut history = History::load(path)?;
        change(&mut history);
        history.save(path)
    }

    /// Adds a run: updates cumulative failures (a success resets the count) and the best
    /// sequence (highest success rate, then shortest time).
    pub fn record(&mut self, run: Run) {
        for c in &run.components {
            if c.success {
                self.component_failures.remove(&c.name);
            } else {
                *self.component_failures.entry(c.name.clone()).or_default() += 1;
            }
        }
        let better = match &self.best_sequence {
            None => true,
            Some(b) => {
                run.success_rate > b.success_rate
                    || (run.success_rate == b.success_rate && run.total_time < b.total_time)
            }
        };
        if better && !run.components.is_empty() {
            self.best_sequence = Some(BestSequence {
                components: run.components.iter().map(|c| c.name.clone()).collect(),
                success_rate: run.success_rate,
                total_time: run.total_time,
                timestamp: run.timestamp,
            });
        }
        self.history.push(run);
        let excess = self.history.len().saturating_sub(MAX_RUNS);
        self.history.drain(..excess);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comp(name: &str, attempts: u32, success: bool) -> RunComponent {
        RunComponent { name: name.into(), attempts, success, ready_seconds: None }
    }

    #[test]
    fn upstream_history_loads_and_failures_decay() {
        let Some(p) = crate::testutil::upstream(
            "sequencer::history::upstream_history_loads_and_failures_decay",
            "logs/razar_boot_history.json",
        ) else {
            return;
        };
        let mut h = History::load(&p).unwrap();
        assert_eq!(h.history.len(), 2);
        h.record(Run::new(1.0, vec![comp("a", 4, false), comp("b", 2, true)], 3.0));
        h.record(Run::new(2.0, vec![comp("a", 4, false)], 3.0));
        assert_eq!(h.component_failures["a"], 2);
        h.record(Run::new(3.0, vec![comp("a", 1, true)], 1.0));
        assert!(!h.component_failures.contains_key("a"), "a success resets the count");
        let last = h.history.last().unwrap();
        assert_eq!((last.first_attempt_successes, last.retry_total), (1, 0));
        let run = Run::new(0.0, vec![comp("a", 4, false), comp("b", 2, true), comp("c", 1, true)], 1.0);
        assert_eq!((run.retry_total, run.first_attempt_successes, run.component_failures), (4, 1, 1));
    }
}
