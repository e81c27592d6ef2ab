//! The state snapshot `logs/razar_state.json` (DESIGN §5.6): one valid JSON object, replaced
//! atomically on every change. The dispatcher owns the live copy; `StateStore` only persists.

pub mod launched;
pub mod lock;

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::fsutil::{self, FsError};

/// Format version of the state file; bump on incompatible changes and keep old fixtures loading.
pub const STATE_VERSION: u32 = 1;
/// Newest events kept in the state file.
pub const MAX_EVENTS: usize = 200;

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "razar_state.json")]
pub struct StateFile {
    #[serde(default)]
    pub version: u32,
    #[serde(default)]
    pub mission: Option<String>,
    /// ISO-8601 start of the last boot.
    #[serde(default)]
    pub last_boot: Option<String>,
    #[serde(default)]
    pub boot_id: Option<String>,
    /// The host's `/proc/sys/kernel/random/boot_id` during this boot: the PIDs and start times
    /// recorded here mean nothing on another host boot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_boot_id: Option<String>,
    #[serde(default)]
    pub razar_pid: Option<u32>,
    /// Start time of the razar process (clock ticks since boot), so a recycled PID is not
    /// taken for a live razar.
    #[serde(default)]
    pub razar_start_time: Option<u64>,
    #[serde(default)]
    pub phase: Option<Phase>,
    #[serde(default)]
    pub last_component: Option<String>,
    #[serde(default)]
    pub handshake: Option<Value>,
    #[serde(default)]
    pub capabilities: Vec<String>,
    #[serde(default)]
    pub downtime: Value,
    #[serde(default)]
    pub launched_models: Vec<String>,
    #[serde(default)]
    pub glm4v_present: Option<bool>,
    #[serde(default)]
    pub metrics_url: Option<String>,
    #[serde(default)]
    pub components: Vec<ComponentState>,
    #[serde(default)]
    pub quarantine: Vec<String>,
    #[serde(default)]
    pub events: Vec<Event>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Handshake,
    Launching,
    Ready,
    Stopping,
    Stopped,
    Halted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ComponentStatus {
    Pending,
    Starting,
    Healthy,
    Unhealthy,
    Backoff,
    /// Out of local attempts (or restart budget): repair agents are at work on it.
    Healing,
    Completed,
    Failed,
    Blocked,
    Quarantined,
    Stopped,
    Downtime,
    Disabled,
}

impl ComponentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ComponentStatus::Pending => "pending",
            ComponentStatus::Starting => "starting",
            ComponentStatus::Healthy => "healthy",
            ComponentStatus::Unhealthy => "unhealthy",
            ComponentStatus::Backoff => "backoff",
            ComponentStatus::Healing => "healing",
            ComponentStatus::Completed => "completed",
            ComponentStatus::Failed => "failed",
            ComponentStatus::Blocked => "blocked",
            ComponentStatus::Quarantined => "quarantined",
            ComponentStatus::Stopped => "stopped",
            ComponentStatus::Downtime => "downtime",
            ComponentStatus::Disabled => "disabled",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ComponentState {
    pub id: String,
    pub state: ComponentStatus,
    #[serde(default)]
    pub pid: Option<u32>,
    #[serde(default)]
    pub pgid: Option<i32>,
    /// Process start time (clock ticks since boot, `/proc/<pid>/stat` field 22), so a
    /// recycled PID is never mistaken for the component.
    #[serde(default)]
    pub start_time: Option<u64>,
    #[serde(default)]
    pub attempts: u32,
    #[serde(default)]
    pub restarts: u32,
    /// ISO-8601 time the component became ready.
    #[serde(default)]
    pub ready_at: Option<String>,
    /// Seconds from first launch to ready.
    #[serde(default)]
    pub ready_seconds: Option<f64>,
    #[serde(default)]
    pub last_error: Option<String>,
    /// The readiness probe (`health_check`) and its last result.
    #[serde(default)]
    pub probe: Option<ProbeState>,
    /// The liveness probe and its last result, once the component is ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liveness: Option<ProbeState>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocked_by: Vec<String>,
    /// Dependencies (condition `healthy`) that are restarting right now.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependency_restarting: Vec<String>,
    /// What the component is waiting for, while it waits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_for: Option<String>,
    /// Set when the component's output is not captured (see [`Output`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Output>,
}

/// Where a running component's output goes, when not to its log as usual.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Output {
    /// Adopted by `razar boot --resume`: its stdout and stderr were a pipe to the boot that
    /// died, which no process can re-open, so nothing it prints reaches
    /// `logs/components/<name>.log` and a log probe cannot see it. Relaunching it captures its
    /// output again.
    Detached,
}

impl ComponentState {
    /// A component in `state` with nothing else known yet.
    pub fn new(id: impl Into<String>, state: ComponentStatus) -> Self {
        ComponentState {
            id: id.into(),
            state,
            pid: None,
            pgid: None,
            start_time: None,
            attempts: 0,
            restarts: 0,
            ready_at: None,
            ready_seconds: None,
            last_error: None,
            probe: None,
            liveness: None,
            blocked_by: Vec::new(),
            dependency_restarting: Vec::new(),
            waiting_for: None,
            output: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ProbeState {
    pub kind: String,
    /// `pass` or `fail`.
    #[serde(default)]
    pub last_result: Option<String>,
    #[serde(default)]
    pub last_output: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Event {
    #[serde(default)]
    pub timestamp: f64,
    #[serde(default)]
    pub event: String,
    #[serde(default)]
    pub component: Option<String>,
    #[serde(default)]
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
}

/// Persists snapshots atomically.
#[derive(Debug, Clone)]
pub struct StateStore {
    path: PathBuf,
}

impl StateStore {
    pub fn new(path: PathBuf) -> Self {
        StateStore { path }
    }

    /// The last snapshot; a corrupt file is moved aside (with a warning) and `None` returned.
    pub fn load(&self) -> Result<Option<StateFile>, FsError> {
        fsutil::read_json_or_quarantine(&self.path)
    }

    pub fn save(&self, state: &StateFile) -> Result<(), FsError> {
        fsutil::write_json(&self.path, state)
    }

    /// Replaces the snapshot atomically without the fsyncs: for the many writes while a large
    /// stack changes; phase changes and the final state use [`StateStore::save`].
    pub fn save_fast(&self, state: &StateFile) -> Result<(), FsError> {
        fsutil::write_json_fast(&self.path, state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_state_file_loads() {
        // The upstream committed state (events with `step`, a `probes` map) must not be
        // treated as corrupt: unknown fields are ignored, missing ones default.
        let Some(path) = crate::testutil::upstream("state::upstream_state_file_loads", "logs/razar_state.json") else {
            return;
        };
        let text = std::fs::read_to_string(path).unwrap();
        let s: StateFile = serde_json::from_str(&text).unwrap();
        assert!(s.components.is_empty());
        assert_eq!(s.events.len(), 3);
        assert_eq!(s.events[0].component.as_deref(), Some("bad_service"));
    }
}
