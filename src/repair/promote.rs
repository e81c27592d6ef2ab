//! Promotion and its undo: backups with their SHA-256, file-by-file atomic replacement under a
//! promotion journal, revert from the backups, and recovery of an interrupted promotion.
//!
//! Crash safety: the backups and their manifest are durable before the journal
//! `.razar/promotions/<patch_id>.json` is written, and the journal is durable before the first
//! file is replaced. Each file is replaced atomically (temp, fsync, rename, fsync of the
//! directory), so at any instant every file holds either its old or its new bytes. The journal
//! is removed only after the `applied` (or `reverted`) record is appended. A journal found at
//! start-up therefore means an operation that did not finish; [`recover`] puts every file of
//! it back to its old bytes from the backups (and records `reverted` if `applied` had already
//! been written), which leaves all-old files and a history that says so.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::RepairPaths;
use super::history::{self, FileRecord, HistoryRecord, PatchLogRecord, Status};
use super::sandbox::Patched;
use crate::fsutil::{self, FsError};

/// Test-only: milliseconds to pause before each file is promoted, so a test can kill razar in
/// the middle of a promotion. Never set it in production.
pub const TEST_DELAY_ENV: &str = "RAZAR_TEST_PROMOTE_DELAY_MS";

/// What a backup holds: the patch's files with their hashes, written as `manifest.json`
/// beside the original bytes (`files/<path>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    pub patch_id: String,
    pub component: String,
    pub agent: String,
    pub summary: String,
    pub files: Vec<FileRecord>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Action {
    Promote,
    Revert,
}

/// The promotion journal: an operation on a patch's files that has begun and not finished.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Journal {
    version: u32,
    patch_id: String,
    action: Action,
}

#[derive(Debug, thiserror::Error)]
pub enum PromoteError {
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error("{path} changed since razar wrote it (expected sha256 {expected}, found {found}); nothing was reverted")]
    Changed { path: String, expected: String, found: String },
    #[error("no backup of patch {0} under .razar/backups (cannot revert it)")]
    NoBackup(String),
}

impl PromoteError {
    /// `path` holds `found` (a SHA-256, `None`: no file) where razar wrote `expected`.
    pub fn changed(path: &str, expected: &Option<String>, found: &Option<String>) -> Self {
        let show = |h: &Option<String>| h.clone().unwrap_or_else(|| "(no file)".into());
        PromoteError::Changed { path: path.to_owned(), expected: show(expected), found: show(found) }
    }
}

/// The SHA-256 of `bytes` in lowercase hex.
pub fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA-256 of the file at `path`, `None` when it does not exist.
pub fn file_sha256(path: &Path) -> Result<Option<String>, FsError> {
    match fs::read(path) {
        Ok(b) => Ok(Some(sha256(&b))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(FsError::new("reading", path, e)),
    }
}

fn mode_of(path: &Path) -> Option<u32> {
    fs::metadata(path).ok().map(|m| m.permissions().mode() & 0o7777)
}

/// Backs up the originals of `patched`, writes the journal, replaces the files one by one,
/// appends `applied`, then removes the journal. Returns the files as recorded.
pub fn promote(
    paths: &RepairPaths,
    patch_id: &str,
    component: &str,
    agent: &str,
    summary: &str,
    patched: &[Patched],
) -> Result<Vec<FileRecord>, FsError> {
    let backup = paths.backup(patch_id);
    fsutil::ensure_private_dir(&backup)?;
    let mut files = Vec::new();
    for p in patched {
        let live = paths.root.join(&p.rel);
        let before = match fs::read(&live) {
            Ok(b) => Some(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(FsError::new("reading", &live, e)),
        };
        if let Some(bytes) = &before {
            fsutil::atomic_write(&backup.join("files").join(&p.rel), bytes, mode_of(&live).unwrap_or(0o644))?;
        }
        files.push(FileRecord {
            path: p.rel.to_string_lossy().into_owned(),
            sha256_before: before.as_deref().map(sha256),
            sha256_after: p.after.as_deref().map(sha256),
        });
    }
    let manifest = Manifest {
        version: 1,
        patch_id: patch_id.into(),
        component: component.into(),
        agent: agent.into(),
        summary: summary.into(),
        files: files.clone(),
    };
    fsutil::write_json(&backup.join("manifest.json"), &manifest)?;
    begin(paths, patch_id, Action::Promote)?;
    let delay = std::env::var(TEST_DELAY_ENV).ok().and_then(|v| v.parse::<u64>().ok());
    for p in patched {
        if let Some(ms) = delay {
            std::thread::sleep(Duration::from_millis(ms));
        }
        let live = paths.root.join(&p.rel);
        match &p.after {
            Some(bytes) => fsutil::atomic_write(&live, bytes, mode_of(&live).unwrap_or(0o644))?,
            None => remove_durably(&live)?,
        }
    }
    history::append_history(
        &paths.history(),
        &HistoryRecord::new(patch_id, component, files.clone(), agent, Status::Applied, summary),
    )?;
    finish(paths, patch_id)?;
    Ok(files)
}

/// Reads a patch's backup manifest.
pub fn manifest(paths: &RepairPaths, patch_id: &str) -> Result<Manifest, PromoteError> {
    let path = paths.backup(patch_id).join("manifest.json");
    let text = fs::read_to_string(&path).map_err(|_| PromoteError::NoBackup(patch_id.into()))?;
    serde_json::from_str(&text).map_err(|_| PromoteError::NoBackup(patch_id.into()))
}

/// Checks that every file of the patch still holds what razar wrote; the first that does not
/// is the error, naming the file.
pub fn check_unchanged(paths: &RepairPaths, manifest: &Manifest) -> Result<(), PromoteError> {
    for f in &manifest.files {
        let found = file_sha256(&paths.root.join(&f.path))?;
        if found != f.sha256_after {
            return Err(PromoteError::changed(&f.path, &f.sha256_after, &found));
        }
    }
    Ok(())
}

/// Restores a promoted patch's originals after checking every file is as razar left it
/// (refusing, and changing nothing, otherwise), then appends `reverted`.
pub fn revert(paths: &RepairPaths, patch_id: &str, agent: &str, why: &str) -> Result<Manifest, PromoteError> {
    let manifest = manifest(paths, patch_id)?;
    check_unchanged(paths, &manifest)?;
    begin(paths, patch_id, Action::Revert)?;
    restore(paths, &manifest)?;
    history::append_history(
        &paths.history(),
        &HistoryRecord::new(patch_id, &manifest.component, manifest.files.clone(), agent, Status::Reverted, why),
    )?;
    finish(paths, patch_id)?;
    Ok(manifest)
}

fn restore(paths: &RepairPaths, manifest: &Manifest) -> Result<(), FsError> {
    let backup = paths.backup(&manifest.patch_id).join("files");
    for f in &manifest.files {
        let live = paths.root.join(&f.path);
        if f.sha256_before.is_some() {
            let saved = backup.join(&f.path);
            let bytes = fs::read(&saved).map_err(|e| FsError::new("reading backup", &saved, e))?;
            fsutil::atomic_write(&live, &bytes, mode_of(&saved).unwrap_or(0o644))?;
        } else {
            remove_durably(&live)?;
        }
    }
    Ok(())
}

/// Finishes every operation a crash interrupted: each journaled patch gets its old files back
/// (see the module docs). Returns the patch ids recovered. Safe to call at any start.
pub fn recover(paths: &RepairPaths) -> Result<Vec<String>, FsError> {
    let dir = paths.promotions();
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(FsError::new("listing", &dir, e)),
    };
    let mut journals: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    journals.sort();
    let mut recovered = Vec::new();
    for path in journals {
        let Some(journal) = fs::read_to_string(&path).ok().and_then(|t| serde_json::from_str::<Journal>(&t).ok())
        else {
            // Journals are written atomically, so an unreadable one is not razar's: set it aside.
            fsutil::move_aside(&path)?;
            continue;
        };
        let id = journal.patch_id;
        // No manifest: the journal is only written after it, so nothing was replaced.
        if let Ok(m) = manifest(paths, &id) {
            restore(paths, &m)?;
            let history = history::read_history(&paths.history())?;
            let open = history::patches(&history, Some(&m.component))
                .into_iter()
                .any(|p| p.applied.patch_id == id && !p.reverted);
            if open {
                let why = "an interrupted operation was undone at start-up";
                history::append_history(
                    &paths.history(),
                    &HistoryRecord::new(&id, &m.component, m.files.clone(), "razar", Status::Reverted, why),
                )?;
            }
            let mut rec = PatchLogRecord::event(&m.component, &id, "recovery", "razar", "restored");
            rec.detail =
                Some(format!("interrupted {:?}; the original files were restored", journal.action).to_lowercase());
            history::append_patch_log(&paths.patch_log(), &rec)?;
        }
        finish(paths, &id)?;
        recovered.push(id);
    }
    Ok(recovered)
}

/// Writes the journal of an operation on `patch_id` that is about to change files.
pub(crate) fn begin(paths: &RepairPaths, patch_id: &str, action: Action) -> Result<(), FsError> {
    fsutil::ensure_private_dir(&paths.promotions())?;
    fsutil::write_json(&paths.promotion(patch_id), &Journal { version: 1, patch_id: patch_id.into(), action })
}

fn finish(paths: &RepairPaths, patch_id: &str) -> Result<(), FsError> {
    remove_durably(&paths.promotion(patch_id))
}

fn remove_durably(path: &Path) -> Result<(), FsError> {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(FsError::new("removing", path, e)),
    }
    if let Some(dir) = path.parent() {
        fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| FsError::new("syncing", dir, e))?;
    }
    Ok(())
}

#[cfg(test)]
#[path = "promote_tests.rs"]
mod tests;
