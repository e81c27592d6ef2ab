//! The repair pipeline (DESIGN §9.5): a suggested patch reaches the real tree only after the
//! component's own tests pass on it in a sandbox, and every promoted patch can be undone.
//!
//! Entry points, for the boot and `razar handover`:
//! - [`verify_and_promote`]: parse → check paths → sandbox copy → apply → tests → backup →
//!   promote under a journal → `applied`. Returns an [`Outcome`]; a rejected or failing patch
//!   changes nothing outside `.razar/sandbox/` and the two logs.
//! - [`revert`]: restore one patch's originals (refusing when a file changed since), `reverted`.
//! - [`recover`]: undo whatever a crash interrupted; `razar boot` calls it before launching.
//! - [`rollback::plan`]: a component's applied patches, newest first, for `razar rollback`.
//!
//! Files (relative to the root): `.razar/sandbox/<patch_id>/` (0700), `.razar/backups/<patch_id>/`
//! (`manifest.json` + `files/`), `.razar/promotions/<patch_id>.json` (the promotion journal),
//! `logs/patch_history.jsonl`, `logs/razar_ai_patches.json`. docs/repair.md says why.

pub mod history;
pub mod patch;
pub mod paths;
pub mod promote;
pub mod rollback;
pub mod sandbox;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use history::FileRecord;
pub use promote::PromoteError;

use crate::config::Component;
use crate::fsutil::FsError;
use history::PatchLogRecord;

/// Where the repair files of one root live.
#[derive(Debug, Clone)]
pub struct RepairPaths {
    pub root: PathBuf,
}

impl RepairPaths {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        RepairPaths { root: root.into() }
    }
    pub fn sandbox(&self, patch_id: &str) -> PathBuf {
        self.root.join(".razar/sandbox").join(patch_id)
    }
    pub fn backup(&self, patch_id: &str) -> PathBuf {
        self.root.join(".razar/backups").join(patch_id)
    }
    pub fn promotions(&self) -> PathBuf {
        self.root.join(".razar/promotions")
    }
    pub fn promotion(&self, patch_id: &str) -> PathBuf {
        self.promotions().join(format!("{patch_id}.json"))
    }
    /// Held (an exclusive `flock`) while files of the tree are promoted, reverted or recovered,
    /// so a rollback waits for a promotion in progress rather than interleaving with it.
    pub fn lock_file(&self) -> PathBuf {
        self.root.join(".razar/repair.lock")
    }
    pub fn history(&self) -> PathBuf {
        self.root.join("logs/patch_history.jsonl")
    }
    pub fn patch_log(&self) -> PathBuf {
        self.root.join("logs/razar_ai_patches.json")
    }
}

/// The repair lock, released when dropped.
#[derive(Debug)]
pub struct RepairLock(#[expect(dead_code, reason = "held for its lock only")] std::fs::File);

/// Takes the repair lock of the root, waiting for another holder.
pub fn lock(paths: &RepairPaths) -> Result<RepairLock, FsError> {
    let path = paths.lock_file();
    crate::fsutil::ensure_dir(path.parent().unwrap_or(&paths.root))?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| FsError::new("opening", &path, e))?;
    file.lock().map_err(|e| FsError::new("locking", &path, e))?;
    Ok(RepairLock(file))
}

/// Undoes whatever a crash interrupted (see [`promote`]); call it before the first change of a
/// run. Returns the patch ids recovered.
pub fn recover(paths: &RepairPaths) -> Result<Vec<String>, FsError> {
    let _lock = lock(paths)?;
    promote::recover(paths)
}

/// Restores one promoted patch's originals, refusing (changing nothing) when a file changed
/// since razar wrote it; appends `reverted` with `why`.
pub fn revert(paths: &RepairPaths, patch_id: &str, agent: &str, why: &str) -> Result<promote::Manifest, PromoteError> {
    let _lock = lock(paths)?;
    promote::revert(paths, patch_id, agent, why)
}

/// How a suggested patch ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Unparseable, or a path it may not touch: nothing was written.
    Rejected { patch_id: String, reason: String },
    /// Applied in the sandbox, but the component's tests failed (or it did not apply).
    TestsFailed { patch_id: String, output: String },
    /// Promoted into the tree; `applied` is in the history.
    Promoted { patch_id: String, files: Vec<FileRecord> },
}

/// What the pipeline needs besides the patch.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub component: &'a Component,
    pub patch: &'a str,
    /// Who suggested it (an agent name from the roster, or `operator`).
    pub agent: &'a str,
    /// A one-line description for the logs and `razar status`.
    pub summary: &'a str,
    /// Per test command.
    pub test_timeout: Duration,
}

/// A fresh patch id: milliseconds since the epoch and a hash of the patch, sortable and unique.
pub fn patch_id(component: &str, patch: &str) -> String {
    let hash = promote::sha256(format!("{component}\n{patch}").as_bytes());
    format!("{}-{}", crate::clock::epoch_millis(), &hash[..8])
}

/// Runs the whole pipeline for one patch. I/O errors of razar's own files are `Err`; every
/// verdict about the patch is an [`Outcome`], journaled to `logs/razar_ai_patches.json`.
pub fn verify_and_promote(root: &Path, req: &Request<'_>) -> Result<Outcome, FsError> {
    let paths = RepairPaths::new(root);
    let name = req.component.name.to_string();
    let id = patch_id(&name, req.patch);
    let log = |event: &str, status: &str, detail: Option<String>, diff: String| {
        let mut rec = PatchLogRecord::event(&name, &id, event, req.agent, status);
        rec.detail = detail;
        rec.diff = diff;
        rec.tests = req.component.tests.iter().map(ToString::to_string).collect::<Vec<_>>().join(" && ");
        history::append_patch_log(&paths.patch_log(), &rec)
    };
    log(
        "suggestion",
        "received",
        Some(req.summary.to_owned()),
        req.patch.chars().take(patch::MAX_PATCH_BYTES).collect(),
    )?;
    let rejected = |reason: String| -> Result<Outcome, FsError> {
        log("rejection", "rejected", Some(reason.clone()), String::new())?;
        Ok(Outcome::Rejected { patch_id: id.clone(), reason })
    };
    let files = match patch::parse(req.patch) {
        Ok(f) => f,
        Err(e) => return rejected(e.to_string()),
    };
    for f in &files {
        for p in f.paths() {
            if let Err(reason) = paths::check(root, &req.component.sources, p) {
                return rejected(reason);
            }
        }
    }
    if req.component.tests.is_empty() {
        return rejected(format!("component {name} has no `tests`: a patch cannot be verified"));
    }
    let sandbox = paths.sandbox(&id);
    let verdict = (|| -> Result<Result<Vec<sandbox::Patched>, String>, FsError> {
        let dir = |e| FsError::new("preparing sandbox", &sandbox, e);
        crate::fsutil::ensure_private_dir(&root.join(".razar/sandbox"))?;
        sandbox::copy_sources(root, &req.component.sources, &sandbox).map_err(dir)?;
        let patched = match sandbox::apply(&sandbox, &files) {
            Ok(p) => p,
            Err(e) => return Ok(Err(format!("the patch does not apply: {e}"))),
        };
        let cwd =
            req.component.working_dir.strip_prefix(root).map_or_else(|_| sandbox.clone(), |rel| sandbox.join(rel));
        crate::fsutil::ensure_dir(&cwd)?;
        let env: Vec<(String, String)> = req.component.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let out = paths.root.join(".razar/sandbox").join(format!("{id}.tests.log"));
        Ok(match sandbox::run_tests(&req.component.tests, &cwd, &env, req.test_timeout, &out) {
            sandbox::TestVerdict::Passed => Ok(patched),
            sandbox::TestVerdict::Failed { output } => Err(output),
        })
    })()?;
    let patched = match verdict {
        Ok(p) => p,
        Err(output) => {
            log("verification", "failure", Some(output.clone()), String::new())?;
            return Ok(Outcome::TestsFailed { patch_id: id, output });
        }
    };
    log("verification", "success", None, String::new())?;
    // The tests took time: check again that no path now leads through a new symlink.
    for p in &patched {
        if let Err(reason) = paths::check(root, &req.component.sources, &p.rel) {
            return rejected(reason);
        }
    }
    let files = {
        let _lock = lock(&paths)?;
        promote::promote(&paths, &id, &name, req.agent, req.summary, &patched)?
    };
    log("promotion", "applied", Some(req.summary.to_owned()), String::new())?;
    let _ = std::fs::remove_dir_all(&sandbox);
    Ok(Outcome::Promoted { patch_id: id, files })
}

#[cfg(test)]
#[path = "pipeline_tests.rs"]
mod tests;
