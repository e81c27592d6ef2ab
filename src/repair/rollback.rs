//! Rolling a component back: which applied patches to revert (newest first), a check of every
//! file before the first one is touched, then the reverts.
//!
//! Patches of one component may touch the same file one after another; reverting newest first
//! walks the file back through its recorded hashes. [`check_chain`] replays that walk over the
//! current hashes, so a hand edit anywhere refuses the whole rollback before anything changes.

use std::collections::BTreeMap;

use super::RepairPaths;
use super::history::{self, PatchState};
use super::promote::{self, Manifest, PromoteError};
use crate::fsutil::FsError;

/// The patches of `component` still applied, newest first; only `patch` when given.
pub fn plan(paths: &RepairPaths, component: &str, patch: Option<&str>) -> Result<Vec<PatchState>, FsError> {
    let history = history::read_history(&paths.history())?;
    let mut open: Vec<PatchState> = history::patches(&history, Some(component))
        .into_iter()
        .filter(|p| !p.reverted && patch.is_none_or(|id| p.applied.patch_id == id))
        .collect();
    open.reverse();
    Ok(open)
}

/// Checks that reverting `manifests` in order (newest first) finds every file as razar left
/// it: `current` maps a path to its hash now (`None`: absent). Pure.
pub fn check_chain(manifests: &[Manifest], current: &BTreeMap<String, Option<String>>) -> Result<(), PromoteError> {
    let mut state = current.clone();
    for m in manifests {
        for f in &m.files {
            let found = state.get(&f.path).cloned().flatten();
            if found != f.sha256_after {
                return Err(PromoteError::changed(&f.path, &f.sha256_after, &found));
            }
            state.insert(f.path.clone(), f.sha256_before.clone());
        }
    }
    Ok(())
}

/// Under the repair lock: recovers interrupted operations, then reverts the patches
/// [`plan`] names (newest first) after checking all of them; on a refusal nothing changed.
/// Returns what was reverted.
pub fn execute(
    paths: &RepairPaths,
    component: &str,
    patch: Option<&str>,
    agent: &str,
) -> Result<Vec<PatchState>, PromoteError> {
    let _lock = super::lock(paths)?;
    // Recovery first: it may itself revert a patch whose promotion was interrupted.
    promote::recover(paths)?;
    let plan = plan(paths, component, patch)?;
    let manifests =
        plan.iter().map(|p| promote::manifest(paths, &p.applied.patch_id)).collect::<Result<Vec<_>, _>>()?;
    let mut current = BTreeMap::new();
    for f in manifests.iter().flat_map(|m| &m.files) {
        current.insert(f.path.clone(), promote::file_sha256(&paths.root.join(&f.path))?);
    }
    check_chain(&manifests, &current)?;
    for m in &manifests {
        promote::revert(paths, &m.patch_id, agent, "razar rollback")?;
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repair::FileRecord;

    fn manifest(id: &str, path: &str, before: Option<&str>, after: Option<&str>) -> Manifest {
        Manifest {
            version: 1,
            patch_id: id.into(),
            component: "api".into(),
            agent: "glm".into(),
            summary: String::new(),
            files: vec![FileRecord {
                path: path.into(),
                sha256_before: before.map(Into::into),
                sha256_after: after.map(Into::into),
            }],
        }
    }

    #[test]
    fn a_patch_whose_promotion_was_interrupted_after_applied_is_recovered_not_refused() {
        let d = tempfile::tempdir().unwrap();
        let paths = RepairPaths::new(d.path());
        std::fs::create_dir_all(d.path().join("svc")).unwrap();
        std::fs::write(d.path().join("svc/a"), "old\n").unwrap();
        let patched = [crate::repair::sandbox::Patched { rel: "svc/a".into(), after: Some(b"new\n".to_vec()) }];
        promote::promote(&paths, "p1", "api", "glm", "", &patched).unwrap();
        // A crash between the `applied` record and the journal's removal.
        promote::begin(&paths, "p1", promote::Action::Promote).unwrap();
        assert_eq!(plan(&paths, "api", None).unwrap().len(), 1);
        let reverted = execute(&paths, "api", None, "operator").unwrap();
        assert!(reverted.is_empty(), "recovery already reverted it");
        assert_eq!(std::fs::read_to_string(d.path().join("svc/a")).unwrap(), "old\n");
        let statuses: Vec<_> = history::read_history(&paths.history()).unwrap().into_iter().map(|r| r.status).collect();
        assert_eq!(statuses, [history::Status::Applied, history::Status::Reverted]);
    }

    #[test]
    fn a_chain_of_patches_on_one_file_checks_against_each_step() {
        let newest_first = [manifest("p2", "a", Some("h1"), Some("h2")), manifest("p1", "a", Some("h0"), Some("h1"))];
        let now = BTreeMap::from([("a".to_string(), Some("h2".to_string()))]);
        check_chain(&newest_first, &now).unwrap();
        let edited = BTreeMap::from([("a".to_string(), Some("hX".to_string()))]);
        let err = check_chain(&newest_first, &edited).unwrap_err().to_string();
        assert!(err.contains("a changed since razar wrote it") && err.contains("hX"), "{err}");
    }

    #[test]
    fn a_created_file_must_still_exist_and_a_deleted_one_must_still_be_absent() {
        let created = [manifest("p1", "new", None, Some("h1"))];
        let gone = BTreeMap::from([("new".to_string(), None)]);
        assert!(check_chain(&created, &gone).is_err());
        let deleted = [manifest("p1", "old", Some("h0"), None)];
        let old_gone = BTreeMap::from([("old".to_string(), None)]);
        assert!(check_chain(&deleted, &old_gone).is_ok());
        let back = BTreeMap::from([("old".to_string(), Some("h0".to_string()))]);
        assert!(check_chain(&deleted, &back).is_err());
    }
}
