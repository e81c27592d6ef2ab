//! When the ladder climbs (DESIGN §9.3), as pure functions over the invocation journal, and
//! the one write it makes: `active` in the roster, changed in place.
//!
//! The active agent handles every round. After `RAZAR_RSTAR_THRESHOLD` (default 9; 0 turns
//! escalation off) consecutive rounds of a component with that agent that brought no patch,
//! `active` moves to the next agent of the chain. There is no wrap-around past the last one.
//! A round that brought a patch ends the run of failures.

use std::path::Path;

use serde_json::Value;

use crate::fsutil::{self, FsError};

/// Rounds without a patch before the ladder climbs, when `RAZAR_RSTAR_THRESHOLD` is unset.
pub const DEFAULT_THRESHOLD: u32 = 9;

/// The threshold from the variable's value: a number (0 disables escalation), else the default.
pub fn threshold(value: Option<&str>) -> u32 {
    value.and_then(|v| v.trim().parse().ok()).unwrap_or(DEFAULT_THRESHOLD)
}

/// Consecutive `attempt` rounds of `agent` without a patch at the end of `records` (one
/// component's journal records, oldest first). Another agent's round, or a round that brought
/// a patch, ends the run.
pub fn failed_run(records: &[Value], agent: &str) -> u32 {
    let mut n = 0;
    for r in records.iter().rev().filter(|r| r.get("event").and_then(Value::as_str) == Some("attempt")) {
        let same_agent = r.get("agent").and_then(Value::as_str) == Some(agent);
        let failed = r.get("status").and_then(Value::as_str) == Some("failure");
        if !(same_agent && failed) {
            break;
        }
        n += 1;
    }
    n
}

/// Escalations of one component at which an alert is raised, when
/// `RAZAR_ESCALATION_WARNING_THRESHOLD` is unset (DESIGN §7).
pub const DEFAULT_WARNING_THRESHOLD: u32 = 3;

/// True when `escalations` of one component reached the warning threshold (`0`: never).
pub fn warn_of_escalations(escalations: u32, threshold: u32) -> bool {
    threshold > 0 && escalations >= threshold
}

/// The index of the agent to escalate to from `current` of `count` agents, after a run of
/// `failed` rounds: `None` to stay (below the threshold, escalation off, or the last agent).
pub fn next_agent(current: usize, count: usize, failed: u32, threshold: u32) -> Option<usize> {
    (threshold > 0 && failed >= threshold && current + 1 < count).then_some(current + 1)
}

#[derive(Debug, thiserror::Error)]
pub enum RosterWriteError {
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error("{}: not a JSON object; `active` was not changed", .0.display())]
    NotAnObject(std::path::PathBuf),
}

/// Sets the roster's top-level `active` to `name`, atomically, leaving every other byte of
/// the file as it was (key order, spacing, unknown keys).
pub fn set_active(file: &Path, name: &str) -> Result<(), RosterWriteError> {
    let text = std::fs::read_to_string(file).map_err(|e| FsError::new("reading", file, e))?;
    let before: Value = serde_json::from_str(&text).map_err(|_| RosterWriteError::NotAnObject(file.to_path_buf()))?;
    if !before.is_object() {
        return Err(RosterWriteError::NotAnObject(file.to_path_buf()));
    }
    let quoted = Value::String(name.to_owned()).to_string();
    let edited = replace_active(&text, &quoted).filter(|t| same_but_active(&before, t, name)).unwrap_or_else(|| {
        // The value could not be edited in place (e.g. `active` is not a string): write the
        // document again, with every key kept.
        let mut v = before.clone();
        v["active"] = Value::String(name.to_owned());
        serde_json::to_string_pretty(&v).unwrap_or_default() + "\n"
    });
    fsutil::atomic_write(file, edited.as_bytes(), 0o600)?;
    Ok(())
}

/// `text` with the string value of its top-level `"active"` replaced by `quoted`, or with
/// `"active"` inserted first when there is none; `None` when neither can be done in place.
fn replace_active(text: &str, quoted: &str) -> Option<String> {
    let re = regex::Regex::new(r#""active"\s*:\s*"(?:[^"\\]|\\.)*""#).ok()?;
    if let Some(m) = re.find(text) {
        let head = &m.as_str()[..m.as_str().find(':')? + 1];
        let spacing = if m.as_str()[head.len()..].starts_with(' ') { " " } else { "" };
        return Some(format!("{}{head}{spacing}{quoted}{}", &text[..m.start()], &text[m.end()..]));
    }
    if text.contains("\"active\"") {
        return None;
    }
    let open = text.find('{')?;
    let indent = text[open + 1..].find('"').map(|i| &text[open + 1..open + 1 + i]).unwrap_or("\n  ");
    Some(format!("{}{{{indent}\"active\": {quoted},{}", &text[..open], &text[open + 1..]))
}

/// True when `edited` parses to `before` with only `active` set to `name`.
fn same_but_active(before: &Value, edited: &str, name: &str) -> bool {
    let Ok(after) = serde_json::from_str::<Value>(edited) else { return false };
    let mut want = before.clone();
    want["active"] = Value::String(name.to_owned());
    after == want && after.as_object().is_some()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn thresholds_and_runs() {
        assert_eq!(threshold(None), 9);
        assert_eq!(threshold(Some("2")), 2);
        assert_eq!(threshold(Some("0")), 0);
        assert_eq!(threshold(Some("many")), 9);
        let rec = |agent: &str, status: &str| json!({"event": "attempt", "agent": agent, "status": status});
        let records = [
            rec("a", "failure"),
            rec("a", "success"),
            rec("a", "failure"),
            json!({"event": "escalation"}),
            rec("a", "failure"),
        ];
        assert_eq!(failed_run(&records, "a"), 2, "a success ends the run; other events do not count");
        assert_eq!(failed_run(&records, "b"), 0);
        assert_eq!(failed_run(&[rec("b", "failure"), rec("a", "failure")], "a"), 1, "another agent's round ends it");
        assert!(!warn_of_escalations(2, 3) && warn_of_escalations(3, 3) && !warn_of_escalations(9, 0));
    }

    #[test]
    fn the_ladder_climbs_at_the_threshold_and_never_wraps() {
        let rows = [
            // (current, count, failed, threshold, next)
            (0, 3, 1, 2, None),
            (0, 3, 2, 2, Some(1)),
            (1, 3, 3, 2, Some(2)),
            (2, 3, 5, 2, None),
            (0, 3, 50, 0, None),
            (0, 1, 9, 9, None),
        ];
        for (current, count, failed, threshold, want) in rows {
            assert_eq!(next_agent(current, count, failed, threshold), want, "{current} {count} {failed} {threshold}");
        }
    }

    #[test]
    fn active_changes_in_place_and_nothing_else_does() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("roster.json");
        let text =
            "{\n    \"zeta\": 1,\n    \"active\": \"a\",\n    \"agents\": [{\"name\": \"a\"}, {\"name\": \"b\"}]\n}\n";
        std::fs::write(&file, text).unwrap();
        set_active(&file, "b").unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), text.replace("\"active\": \"a\"", "\"active\": \"b\""));

        let text = "{\"agents\": [{\"name\": \"a\"}], \"x\": {\"active\": 3}}";
        std::fs::write(&file, text).unwrap();
        set_active(&file, "a").unwrap();
        let after: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        assert_eq!(after, json!({"active": "a", "agents": [{"name": "a"}], "x": {"active": 3}}));

        std::fs::write(&file, "[1]").unwrap();
        assert!(set_active(&file, "a").is_err());
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "[1]", "nothing written");
    }
}
