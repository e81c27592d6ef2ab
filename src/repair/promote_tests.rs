use super::*;

fn setup() -> (tempfile::TempDir, RepairPaths) {
    let d = tempfile::tempdir().unwrap();
    let paths = RepairPaths::new(d.path());
    fs::create_dir_all(d.path().join("svc")).unwrap();
    fs::write(d.path().join("svc/a.txt"), "old a\n").unwrap();
    fs::write(d.path().join("svc/gone.txt"), "old gone\n").unwrap();
    (d, paths)
}

fn patched() -> Vec<Patched> {
    vec![
        Patched { rel: "svc/a.txt".into(), after: Some(b"new a\n".to_vec()) },
        Patched { rel: "svc/gone.txt".into(), after: None },
        Patched { rel: "svc/made.txt".into(), after: Some(b"made\n".to_vec()) },
    ]
}

#[test]
fn promote_backs_up_replaces_and_records_then_revert_restores() {
    let (d, paths) = setup();
    let files = promote(&paths, "p1", "api", "glm", "fix a", &patched()).unwrap();
    let root = d.path();
    assert_eq!(fs::read_to_string(root.join("svc/a.txt")).unwrap(), "new a\n");
    assert!(!root.join("svc/gone.txt").exists());
    assert_eq!(fs::read_to_string(root.join("svc/made.txt")).unwrap(), "made\n");
    assert_eq!(fs::read_to_string(paths.backup("p1").join("files/svc/a.txt")).unwrap(), "old a\n");
    assert_eq!(files[0].sha256_before.as_deref(), Some(sha256(b"old a\n").as_str()));
    assert_eq!(files[2].sha256_before, None);
    assert_eq!(files[1].sha256_after, None);
    assert!(!paths.promotion("p1").exists(), "the journal is gone once the promotion finished");
    let history = history::read_history(&paths.history()).unwrap();
    assert_eq!((history.len(), history[0].status), (1, Status::Applied));

    revert(&paths, "p1", "operator", "razar rollback").unwrap();
    assert_eq!(fs::read_to_string(root.join("svc/a.txt")).unwrap(), "old a\n");
    assert_eq!(fs::read_to_string(root.join("svc/gone.txt")).unwrap(), "old gone\n");
    assert!(!root.join("svc/made.txt").exists());
    let history = history::read_history(&paths.history()).unwrap();
    assert_eq!(history[1].status, Status::Reverted);
}

#[test]
fn revert_refuses_after_a_hand_edit_and_changes_nothing() {
    let (d, paths) = setup();
    promote(&paths, "p1", "api", "glm", "fix a", &patched()).unwrap();
    fs::write(d.path().join("svc/made.txt"), "edited by hand\n").unwrap();
    let err = revert(&paths, "p1", "operator", "x").unwrap_err().to_string();
    assert!(err.contains("svc/made.txt changed since razar wrote it"), "{err}");
    assert_eq!(fs::read_to_string(d.path().join("svc/a.txt")).unwrap(), "new a\n");
    assert_eq!(history::read_history(&paths.history()).unwrap().len(), 1);
}

#[test]
fn recover_after_an_interrupted_promotion_restores_all_old_files() {
    let (d, paths) = setup();
    promote(&paths, "p1", "api", "glm", "fix a", &patched()).unwrap();
    // Simulate a crash after the first file was replaced: the journal is back, history has no
    // `applied` for this id, one file is new and the others old.
    fs::write(paths.history(), "").unwrap();
    fs::write(d.path().join("svc/gone.txt"), "old gone\n").unwrap();
    fs::remove_file(d.path().join("svc/made.txt")).unwrap();
    begin(&paths, "p1", Action::Promote).unwrap();
    assert_eq!(recover(&paths).unwrap(), vec!["p1".to_string()]);
    assert_eq!(fs::read_to_string(d.path().join("svc/a.txt")).unwrap(), "old a\n");
    assert_eq!(fs::read_to_string(d.path().join("svc/gone.txt")).unwrap(), "old gone\n");
    assert!(!d.path().join("svc/made.txt").exists());
    assert!(!paths.promotion("p1").exists());
    assert!(history::read_history(&paths.history()).unwrap().is_empty(), "nothing was applied, nothing to revert");
    assert!(recover(&paths).unwrap().is_empty(), "recovery is idempotent");
}

#[test]
fn recover_after_applied_was_written_records_the_revert() {
    let (d, paths) = setup();
    promote(&paths, "p1", "api", "glm", "fix a", &patched()).unwrap();
    begin(&paths, "p1", Action::Promote).unwrap();
    recover(&paths).unwrap();
    assert_eq!(fs::read_to_string(d.path().join("svc/a.txt")).unwrap(), "old a\n");
    let h = history::read_history(&paths.history()).unwrap();
    assert_eq!(h.iter().map(|r| r.status).collect::<Vec<_>>(), [Status::Applied, Status::Reverted]);
}
