use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use super::*;
use crate::config::load::{NoEnv, load};

const BUGGY: &str = "#!/bin/sh\necho $((2 + 3))\n";
const FIX: &str =
    "--- a/svc/calc.sh\n+++ b/svc/calc.sh\n@@ -1,2 +1,2 @@\n #!/bin/sh\n-echo $((2 + 3))\n+echo $((2 + 2))\n";
const BREAK: &str =
    "--- a/svc/calc.sh\n+++ b/svc/calc.sh\n@@ -1,2 +1,2 @@\n #!/bin/sh\n-echo $((2 + 3))\n+echo $((2 + 9))\n";

/// A root with a component `calc` whose own test catches its bug (it prints 5, not 4).
fn setup() -> (tempfile::TempDir, std::sync::Arc<Component>) {
    let d = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(d.path()).unwrap();
    fs::create_dir_all(root.join("svc")).unwrap();
    fs::create_dir_all(root.join("config")).unwrap();
    fs::write(root.join("svc/calc.sh"), BUGGY).unwrap();
    fs::write(root.join("svc/test.sh"), "[ \"$(sh calc.sh)\" = 4 ]\n").unwrap();
    fs::write(root.join("outside.txt"), "keep\n").unwrap();
    let config = serde_json::json!({"components": [{
        "name": "calc", "command": "sh calc.sh", "kind": "task", "working_dir": "svc",
        "sources": ["svc"], "tests": ["sh test.sh"]
    }]});
    fs::write(root.join("config/boot_config.json"), config.to_string()).unwrap();
    let cfg = load(&root.join("config/boot_config.json"), &root, &NoEnv).unwrap();
    let c = cfg.components[0].clone();
    (d, c)
}

fn request<'a>(c: &'a Component, patch: &'a str) -> Request<'a> {
    Request { component: c, patch, agent: "glm", summary: "fix the sum", test_timeout: Duration::from_secs(20) }
}

/// Every file under `root` with its bytes, except the sandboxes and the patch log (the
/// rejection record), which are the only things a rejected or failing patch may write.
fn tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            if rel.starts_with(".razar/sandbox") || rel == "logs/razar_ai_patches.json" {
                continue;
            }
            let meta = fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
                stack.push(p);
            } else {
                out.insert(rel, fs::read(&p).unwrap_or_default());
            }
        }
    }
    out
}

#[test]
fn a_correct_patch_is_verified_promoted_and_revertible() {
    let (d, c) = setup();
    let root = fs::canonicalize(d.path()).unwrap();
    let outcome = verify_and_promote(&root, &request(&c, FIX)).unwrap();
    let Outcome::Promoted { patch_id, files } = outcome else { panic!("{outcome:?}") };
    assert_eq!(fs::read_to_string(root.join("svc/calc.sh")).unwrap(), "#!/bin/sh\necho $((2 + 2))\n");
    let paths = RepairPaths::new(&root);
    assert_eq!(fs::read_to_string(paths.backup(&patch_id).join("files/svc/calc.sh")).unwrap(), BUGGY);
    assert_eq!(files[0].sha256_before.as_deref(), Some(promote::sha256(BUGGY.as_bytes()).as_str()));
    let h = history::read_history(&paths.history()).unwrap();
    assert_eq!((h[0].status, h[0].agent.as_str(), h[0].component.as_str()), (history::Status::Applied, "glm", "calc"));
    let events: Vec<_> =
        history::read_patch_log(&paths.patch_log()).unwrap().into_iter().filter_map(|r| r.event).collect();
    assert_eq!(events, ["suggestion", "verification", "promotion"]);
    assert!(!paths.sandbox(&patch_id).exists(), "the sandbox is removed after promotion");

    revert(&paths, &patch_id, "operator", "test").unwrap();
    assert_eq!(fs::read_to_string(root.join("svc/calc.sh")).unwrap(), BUGGY);
}

#[test]
fn a_patch_whose_tests_fail_is_never_promoted() {
    let (d, c) = setup();
    let root = fs::canonicalize(d.path()).unwrap();
    let before = tree(&root);
    let outcome = verify_and_promote(&root, &request(&c, BREAK)).unwrap();
    assert!(matches!(outcome, Outcome::TestsFailed { .. }), "{outcome:?}");
    assert_eq!(tree(&root), before);
    assert!(history::read_history(&RepairPaths::new(&root).history()).unwrap().is_empty());
}

#[test]
fn patches_leaving_sources_are_rejected_and_nothing_changes() {
    let (d, c) = setup();
    let root = fs::canonicalize(d.path()).unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    symlink(elsewhere.path(), root.join("svc/escape")).unwrap();
    let mk = |path: &str| format!("--- /dev/null\n+++ {path}\n@@ -0,0 +1 @@\n+pwned\n");
    let cases = [
        (mk("../x"), "`..`"),
        (mk("/etc/x"), "absolute"),
        (mk("svc/escape/x"), "symlink outside"),
        (mk("outside.txt"), "not under"),
        ("garbage".to_string(), "no file changes"),
    ];
    for (patch, want) in cases {
        let before = tree(&root);
        let outcome = verify_and_promote(&root, &request(&c, &patch)).unwrap();
        match outcome {
            Outcome::Rejected { reason, .. } => assert!(reason.contains(want), "{patch}: {reason}"),
            other => panic!("{patch}: {other:?}"),
        }
        assert_eq!(tree(&root), before, "{patch}");
        assert_eq!(fs::read_dir(elsewhere.path()).unwrap().count(), 0);
    }
    assert!(!root.join(".razar/sandbox").exists(), "rejected before any sandbox");
    let log = history::read_patch_log(&RepairPaths::new(&root).patch_log()).unwrap();
    assert_eq!(log.iter().filter(|r| r.event.as_deref() == Some("rejection")).count(), 5);
}
