//! The mission brief and its archive under `logs/mission_briefs/`.
//!
//! Archive invariants:
//! - a brief is archived as `<ts>.json` (epoch milliseconds) before it is sent; its reply as
//!   `<ts>_response.json` and a model launch as `<ts>_glm4v_launch.json`, same `<ts>`;
//! - an archived brief never overwrites another: the name is claimed with a hard link, which
//!   fails if the name exists, and the timestamp is bumped by one millisecond until it is free;
//! - rotation keeps at most [`KEEP_BRIEFS`] briefs; only brief files count, and a removed
//!   brief takes its response and launch files with it. The brief just written is never removed.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::protocol::Brief;
use crate::clock;
use crate::config::Config;
use crate::fsutil::{self, FsError};
use crate::state::StateFile;

/// Brief/response pairs kept in `logs/mission_briefs/`.
pub const KEEP_BRIEFS: usize = 20;
/// Attempts at finding a free archive name before giving up (each bumps one millisecond).
const NAME_ATTEMPTS: i64 = 1000;

/// Builds the brief (DESIGN §8).
///
/// - `priority_map`: every enabled component → its position when sorted by `priority`
///   (lower first), components without a priority after all prioritised ones, ties and the
///   unprioritised in file order. A hint for the Crown, not the exact launch plan (which also
///   follows `depends_on`).
/// - `current_status`: every component → its state in `last_state`, else `pending`
///   (`disabled` for a disabled component the state does not mention).
/// - `open_issues`, `mission` as given (`mission` falls back to the config's).
/// - `extra` (the `--brief` file) is merged last: the operator's fields win.
pub fn build_brief(
    config: &Config,
    last_state: Option<&StateFile>,
    open_issues: Vec<Value>,
    mission: Option<&str>,
    extra: Option<Map<String, Value>>,
) -> Value {
    let mut order: Vec<_> = config.components.iter().filter(|c| c.enabled).collect();
    order.sort_by_key(|c| (c.priority.is_none(), c.priority.unwrap_or(0), c.index));
    let priority_map = order.iter().enumerate().map(|(i, c)| (c.name.to_string(), i)).collect();

    let known: BTreeMap<&str, &str> = last_state
        .map(|s| s.components.iter().map(|c| (c.id.as_str(), c.state.as_str())).collect())
        .unwrap_or_default();
    let current_status = config
        .components
        .iter()
        .map(|c| {
            let fallback = if c.enabled { "pending" } else { "disabled" };
            (c.name.to_string(), known.get(c.name.as_str()).copied().unwrap_or(fallback).to_owned())
        })
        .collect();

    let brief = Brief {
        priority_map,
        current_status,
        open_issues,
        mission: mission.map(str::to_owned).or_else(|| config.mission.clone()),
    };
    let mut value = serde_json::to_value(brief).unwrap_or_else(|_| Value::Object(Map::new()));
    if let (Value::Object(obj), Some(extra)) = (&mut value, extra) {
        obj.extend(extra);
    }
    value
}

/// The archive file names of one brief.
pub fn brief_name(ts: i64) -> String {
    format!("{ts}.json")
}
pub fn response_name(ts: i64) -> String {
    format!("{ts}_response.json")
}
pub fn launch_name(ts: i64) -> String {
    format!("{ts}_glm4v_launch.json")
}

/// The timestamp of an archived brief file name (`<digits>.json`), else `None`.
fn brief_ts(name: &str) -> Option<i64> {
    let digits = name.strip_suffix(".json")?;
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then(|| digits.parse().ok()).flatten()
}

/// File names to delete so that at most `keep` briefs remain, oldest first, never touching
/// the brief `protect`. Pure: `names` is the directory listing.
pub fn rotation_victims<'a>(names: impl IntoIterator<Item = &'a str>, keep: usize, protect: i64) -> Vec<String> {
    let mut briefs: Vec<i64> = names.into_iter().filter_map(brief_ts).collect();
    briefs.sort_unstable();
    briefs.dedup();
    let excess = briefs.len().saturating_sub(keep);
    briefs
        .into_iter()
        .filter(|ts| *ts != protect)
        .take(excess)
        .flat_map(|ts| [brief_name(ts), response_name(ts), launch_name(ts)])
        .collect()
}

/// Writes the current brief to `logs/mission_brief.json` (atomically) and archives it under a
/// fresh `<ts>.json` in `dir`; then rotates the archive. Returns the timestamp.
pub fn write_and_archive(current: &Path, dir: &Path, brief: &Value) -> Result<i64, FsError> {
    fsutil::write_json(current, brief)?;
    let ts = archive_new(dir, brief)?;
    rotate(dir, ts);
    Ok(ts)
}

/// Writes `value` as `<ts>.json` in `dir` under a timestamp no file of the archive uses yet.
fn archive_new(dir: &Path, value: &Value) -> Result<i64, FsError> {
    fsutil::ensure_dir(dir)?;
    let mut bytes =
        serde_json::to_vec_pretty(value).map_err(|e| FsError::new("serializing", dir, io::Error::other(e)))?;
    bytes.push(b'\n');
    let tmp = dir.join(format!(".brief.tmp-{}", std::process::id()));
    let write_tmp = || -> io::Result<()> {
        let mut f =
            OpenOptions::new().write(true).create(true).truncate(true).mode(crate::fsutil::PRIVATE_FILE).open(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()
    };
    write_tmp().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        FsError::new("writing", &tmp, e)
    })?;
    let start = clock::epoch_millis();
    let mut result = Err(FsError::new("archiving to", dir, io::Error::other("no free name")));
    for ts in start..start + NAME_ATTEMPTS {
        if [response_name(ts), launch_name(ts)].iter().any(|n| dir.join(n).exists()) {
            continue;
        }
        let target = dir.join(brief_name(ts));
        // `link` fails when the name exists: the claim is atomic even against another razar.
        match fs::hard_link(&tmp, &target) {
            Ok(()) => {
                result = Ok(ts);
                break;
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                result = Err(FsError::new("archiving", &target, e));
                break;
            }
        }
    }
    let _ = fs::remove_file(&tmp);
    if result.is_ok() {
        let _ = File::open(dir).and_then(|d| d.sync_all());
    }
    result
}

/// Deletes the oldest briefs beyond [`KEEP_BRIEFS`]; failures are warnings.
fn rotate(dir: &Path, protect: i64) {
    let names: Vec<String> = match fs::read_dir(dir) {
        Ok(entries) => entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect(),
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot list the brief archive for rotation");
            return;
        }
    };
    for victim in rotation_victims(names.iter().map(String::as_str), KEEP_BRIEFS, protect) {
        let path: PathBuf = dir.join(&victim);
        match fs::remove_file(&path) {
            Ok(()) => tracing::debug!(file = %path.display(), "rotated out of the brief archive"),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(file = %path.display(), error = %e, "cannot remove an old brief"),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn rotation_removes_oldest_briefs_with_their_files() {
        let mut names: Vec<String> = (1..=22).map(brief_name).collect();
        names.extend((1..=22).map(response_name));
        names.extend([launch_name(1), "notes.txt".into(), ".brief.tmp-1".into(), "7_other.json".into()]);
        let victims = rotation_victims(names.iter().map(String::as_str), 20, 22);
        assert_eq!(
            victims,
            vec![brief_name(1), response_name(1), launch_name(1), brief_name(2), response_name(2), launch_name(2)]
        );
    }

    #[test]
    fn rotation_counts_only_briefs_and_spares_the_current_one() {
        let names: Vec<String> = (1..=20).map(response_name).chain((1..=20).map(brief_name)).collect();
        assert!(rotation_victims(names.iter().map(String::as_str), 20, 20).is_empty());
        // A clock that went backwards: the newest write has the smallest name but is kept.
        let names: Vec<String> = (1..=21).map(brief_name).collect();
        assert_eq!(
            rotation_victims(names.iter().map(String::as_str), 20, 1),
            vec![brief_name(2), response_name(2), launch_name(2)]
        );
    }

    #[test]
    fn archive_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let a = archive_new(dir.path(), &json!({"n": 1})).unwrap();
        let b = archive_new(dir.path(), &json!({"n": 2})).unwrap();
        assert_ne!(a, b);
        let first: Value = serde_json::from_slice(&fs::read(dir.path().join(brief_name(a))).unwrap()).unwrap();
        assert_eq!(first["n"], 1);
        // A response whose brief is gone still reserves its timestamp.
        let next = clock::epoch_millis();
        for ts in next..next + 5 {
            fs::write(dir.path().join(response_name(ts)), "{}").unwrap();
        }
        let c = archive_new(dir.path(), &json!({"n": 3})).unwrap();
        assert!(c >= next + 5, "{c} reused a taken timestamp");
        let leftovers =
            fs::read_dir(dir.path()).unwrap().flatten().filter(|e| e.file_name().to_string_lossy().starts_with('.'));
        assert_eq!(leftovers.count(), 0);
    }
}
