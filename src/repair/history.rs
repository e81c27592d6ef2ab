//! The two repair journals: `logs/patch_history.jsonl` (one `applied` or `reverted` record per
//! patch, what rollback reads) and `logs/razar_ai_patches.json` (one record per suggestion,
//! verification and promotion, for people). Both are appended with locked one-line writes.
//!
//! The upstream system wrote `razar_ai_patches.json` as one JSON array; [`read_patch_log`]
//! reads either form so an inherited file stays readable.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::clock;
use crate::fsutil::{self, FsError};

/// One file of an applied patch: `sha256_before` is `None` for a file the patch created,
/// `sha256_after` is `None` for a file it deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    pub path: String,
    pub sha256_before: Option<String>,
    pub sha256_after: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Applied,
    Reverted,
}

/// A record of `logs/patch_history.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryRecord {
    pub patch_id: String,
    pub component: String,
    pub files: Vec<FileRecord>,
    pub agent: String,
    pub status: Status,
    #[serde(default)]
    pub summary: String,
    pub timestamp: f64,
    pub timestamp_iso: String,
}

impl HistoryRecord {
    pub fn new(
        patch_id: &str,
        component: &str,
        files: Vec<FileRecord>,
        agent: &str,
        status: Status,
        summary: &str,
    ) -> Self {
        let now = clock::epoch();
        HistoryRecord {
            patch_id: patch_id.into(),
            component: component.into(),
            files,
            agent: agent.into(),
            status,
            summary: summary.into(),
            timestamp: now,
            timestamp_iso: clock::iso(now),
        }
    }
}

pub fn append_history(path: &Path, record: &HistoryRecord) -> Result<(), FsError> {
    fsutil::append_jsonl(path, record)
}

pub fn read_history(path: &Path) -> Result<Vec<HistoryRecord>, FsError> {
    fsutil::read_jsonl(path)
}

/// A patch's latest state, per patch id, in the order patches were first applied.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchState {
    pub applied: HistoryRecord,
    pub reverted: bool,
}

/// Folds the history into one entry per patch of `component` (all components when `None`).
pub fn patches(history: &[HistoryRecord], component: Option<&str>) -> Vec<PatchState> {
    let mut order: Vec<String> = Vec::new();
    let mut by_id: BTreeMap<String, PatchState> = BTreeMap::new();
    for r in history.iter().filter(|r| component.is_none_or(|c| r.component == c)) {
        match r.status {
            Status::Applied => {
                if !by_id.contains_key(&r.patch_id) {
                    order.push(r.patch_id.clone());
                }
                by_id.insert(r.patch_id.clone(), PatchState { applied: r.clone(), reverted: false });
            }
            Status::Reverted => {
                if let Some(p) = by_id.get_mut(&r.patch_id) {
                    p.reverted = true;
                }
            }
        }
    }
    order.into_iter().filter_map(|id| by_id.remove(&id)).collect()
}

/// One line per patch for people (`razar status`, `razar quarantine show`): component, id,
/// applied or reverted, agent, when, summary and files. Newest last; at most `limit` lines.
pub fn describe(states: &[PatchState], limit: usize) -> Vec<String> {
    let skip = states.len().saturating_sub(limit);
    states[skip..]
        .iter()
        .map(|p| {
            let a = &p.applied;
            let files: Vec<&str> = a.files.iter().map(|f| f.path.as_str()).collect();
            let summary =
                if a.summary.is_empty() { "no summary".to_owned() } else { crate::text::one_line(&a.summary, 80) };
            format!(
                "{}  {}  {}  by {}  {}  {}  ({})",
                crate::text::one_line(&a.component, 60),
                crate::text::one_line(&a.patch_id, 60),
                if p.reverted { "reverted" } else { "applied" },
                crate::text::one_line(&a.agent, 40),
                crate::text::one_line(&a.timestamp_iso, 40),
                summary,
                crate::text::one_line(&files.join(", "), 120)
            )
        })
        .collect()
}

/// A record of `logs/razar_ai_patches.json`. `event` is `suggestion`, `verification`,
/// `promotion`, `rejection`, `revert` or `recovery`; upstream records carry only
/// `component`, `diff` and `tests`, hence the defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatchLogRecord {
    pub component: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The diff (suggestions) or a one-line summary.
    #[serde(default)]
    pub diff: String,
    #[serde(default)]
    pub tests: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_iso: Option<String>,
}

impl PatchLogRecord {
    pub fn event(component: &str, patch_id: &str, event: &str, agent: &str, status: &str) -> Self {
        let now = clock::epoch();
        PatchLogRecord {
            component: component.into(),
            patch_id: Some(patch_id.into()),
            event: Some(event.into()),
            agent: Some(agent.into()),
            status: Some(status.into()),
            diff: String::new(),
            tests: String::new(),
            detail: None,
            timestamp: Some(now),
            timestamp_iso: Some(clock::iso(now)),
        }
    }
}

pub fn append_patch_log(path: &Path, record: &PatchLogRecord) -> Result<(), FsError> {
    fsutil::append_jsonl(path, record)
}

/// Reads `razar_ai_patches.json` as JSONL, or as the upstream JSON array; a file holding an
/// array followed by JSONL lines (razar appending to an inherited file) yields both.
pub fn read_patch_log(path: &Path) -> Result<Vec<PatchLogRecord>, FsError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(FsError::new("reading", path, e)),
    };
    let mut stream = serde_json::Deserializer::from_str(&text).into_iter::<serde_json::Value>();
    let mut out = Vec::new();
    while let Some(Ok(value)) = stream.next() {
        match value {
            serde_json::Value::Array(items) => {
                out.extend(items.into_iter().filter_map(|v| serde_json::from_value(v).ok()));
            }
            v => out.extend(serde_json::from_value(v).ok()),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_applied_and_reverted_per_component() {
        let f = |id: &str, c: &str, s| HistoryRecord::new(id, c, vec![], "glm", s, "fix");
        let h = vec![
            f("p1", "api", Status::Applied),
            f("p2", "web", Status::Applied),
            f("p3", "api", Status::Applied),
            f("p1", "api", Status::Reverted),
        ];
        let api = patches(&h, Some("api"));
        assert_eq!(
            api.iter().map(|p| (p.applied.patch_id.as_str(), p.reverted)).collect::<Vec<_>>(),
            [("p1", true), ("p3", false)]
        );
        assert_eq!(patches(&h, None).len(), 3);
    }

    #[test]
    fn describes_patches_for_people_newest_last() {
        let files = vec![FileRecord { path: "svc/a.sh".into(), sha256_before: None, sha256_after: None }];
        let h = vec![
            HistoryRecord::new("p1", "api", files.clone(), "glm", Status::Applied, "first"),
            HistoryRecord::new("p2", "api", files, "glm", Status::Applied, "fix\nthe sum"),
            HistoryRecord::new("p1", "api", vec![], "operator", Status::Reverted, ""),
        ];
        let lines = describe(&patches(&h, None), 1);
        assert_eq!(lines.len(), 1);
        assert!(lines[0].starts_with("api  p2  applied  by glm  "), "{}", lines[0]);
        assert!(lines[0].ends_with("(svc/a.sh)") && !lines[0].contains('\n'), "{}", lines[0]);
        assert!(describe(&patches(&h, None), 5)[0].contains("p1  reverted"));
    }

    #[test]
    fn history_round_trips_through_the_file() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("logs/patch_history.jsonl");
        let files = vec![FileRecord { path: "svc/a".into(), sha256_before: Some("aa".into()), sha256_after: None }];
        let rec = HistoryRecord::new("p1", "api", files, "glm", Status::Applied, "fix a");
        append_history(&path, &rec).unwrap();
        let line: serde_json::Value = serde_json::from_str(std::fs::read_to_string(&path).unwrap().trim()).unwrap();
        assert_eq!(line["status"], "applied");
        assert_eq!(line["files"][0]["sha256_before"], "aa");
        assert!(line["timestamp_iso"].as_str().unwrap().ends_with('Z'));
        // serde_json may read a float back one ulp off: compare the timestamp with a tolerance.
        let mut back = read_history(&path).unwrap();
        assert_eq!(back.len(), 1);
        assert!((back[0].timestamp - rec.timestamp).abs() < 1e-3);
        back[0].timestamp = rec.timestamp;
        assert_eq!(back, vec![rec]);
    }

    #[test]
    fn reads_the_upstream_array_and_razar_lines_after_it() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("razar_ai_patches.json");
        std::fs::write(&path, "[{\"component\":\"docs\",\"diff\":\"d\",\"tests\":\"t\"}]\n").unwrap();
        append_patch_log(&path, &PatchLogRecord::event("api", "p1", "promotion", "glm", "success")).unwrap();
        let all = read_patch_log(&path).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].component, "docs");
        assert_eq!(all[1].event.as_deref(), Some("promotion"));
    }

    #[test]
    fn reads_the_upstream_patches_log() {
        let Some(path) =
            crate::testutil::upstream("repair::reads_the_upstream_patches_log", "logs/razar_ai_patches.json")
        else {
            return;
        };
        let all = read_patch_log(&path).unwrap();
        assert!(!all.is_empty());
        assert!(all.iter().all(|r| !r.component.is_empty() && !r.diff.is_empty()));
    }
}
