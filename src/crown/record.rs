//! Persisting a completed handshake into `logs/razar_state.json` (DESIGN §5.6, §8) for
//! `razar handshake` and `razar boot --handshake-only`, which launch nothing and so never
//! write a whole new state: the handshake's fields are replaced in the previous state, every
//! other field (the last boot's components, unknown keys from newer versions) stays as it was.
//! A full boot builds its own state and takes [`HandshakeOutcome::state_json`] directly.

use std::path::Path;

use serde_json::{Map, Value, json};

use super::HandshakeOutcome;
use crate::fsutil::{self, FsError};
use crate::state::STATE_VERSION;

/// Writes `outcome` into the state file at `path`, atomically. Without a state file (or with
/// a corrupt one, which is moved aside with a warning first) a new one is written with phase
/// `handshake` and no components.
pub fn record_in_state(path: &Path, outcome: &HandshakeOutcome) -> Result<(), FsError> {
    let previous: Option<Value> = fsutil::read_json_or_quarantine(path)?;
    let mut state = match previous {
        Some(Value::Object(map)) => map,
        Some(_) => {
            let aside = fsutil::move_aside(path)?;
            tracing::warn!(path = %path.display(), moved_to = %aside.display(),
                "state file is not a JSON object; moved aside");
            fresh()
        }
        None => fresh(),
    };
    merge(&mut state, outcome);
    fsutil::write_json(path, &Value::Object(state))
}

/// A state with nothing but the handshake to say.
fn fresh() -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("version".into(), json!(STATE_VERSION));
    m.insert("phase".into(), json!("handshake"));
    m.insert("components".into(), json!([]));
    m
}

fn merge(state: &mut Map<String, Value>, outcome: &HandshakeOutcome) {
    state.insert("handshake".into(), outcome.state_json());
    state.insert("capabilities".into(), json!(outcome.capabilities));
    state.insert("downtime".into(), outcome.downtime_json());
    state.insert("glm4v_present".into(), json!(outcome.glm4v_present));
    state.insert("launched_models".into(), json!(outcome.launched_models));
}
