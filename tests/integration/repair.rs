//! `razar rollback` against patches promoted by the repair pipeline (`razar::repair`, driven in
//! the test process: no command promotes a patch on its own), including after razar was killed
//! in the middle of a promotion.

use std::path::Path;
use std::time::Duration;

use serde_json::json;

use crate::harness::{Razar, wait_until};
use razar::repair::{self, Outcome, Request};

const BUGGY: &str = "#!/bin/sh\necho $((2 + 3))\n";
const FIXED: &str = "#!/bin/sh\necho $((2 + 2))\n";
const FIX: &str =
    "--- a/svc/calc.sh\n+++ b/svc/calc.sh\n@@ -1,2 +1,2 @@\n #!/bin/sh\n-echo $((2 + 3))\n+echo $((2 + 2))\n";
/// Touches three files, so a promotion killed after the first leaves a mix to recover.
const THREE: &str = "--- a/svc/a.txt\n+++ b/svc/a.txt\n@@ -1 +1 @@\n-old a\n+new a\n\
--- a/svc/b.txt\n+++ b/svc/b.txt\n@@ -1 +1 @@\n-old b\n+new b\n\
--- a/svc/c.txt\n+++ b/svc/c.txt\n@@ -1 +1 @@\n-old c\n+new c\n";

/// A root whose component `calc` has a bug its own test catches (it prints 5, not 4).
fn setup() -> Razar {
    let r = Razar::new();
    r.config(json!({"components": [{
        "name": "calc", "kind": "task", "command": "sh calc.sh", "working_dir": "svc",
        "sources": ["svc"], "tests": ["sh test.sh"]
    }]}));
    r.write("svc/calc.sh", BUGGY);
    r.write("svc/test.sh", "[ \"$(sh calc.sh)\" = 4 ]\n");
    for f in ["a", "b", "c"] {
        r.write(&format!("svc/{f}.txt"), &format!("old {f}\n"));
    }
    r
}

fn promote(root: &Path, patch: &str) -> Outcome {
    let config =
        razar::config::load::load(&root.join("config/boot_config.json"), root, &razar::config::load::ProcessEnv)
            .expect("config");
    let req = Request {
        component: &config.components[0],
        patch,
        agent: "glm-test",
        summary: "fix the sum",
        test_timeout: Duration::from_secs(30),
    };
    repair::verify_and_promote(root, &req).expect("pipeline")
}

fn statuses(r: &Razar) -> Vec<String> {
    r.jsonl("logs/patch_history.jsonl").iter().map(|v| v["status"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn rollback_restores_the_original_bytes_and_the_roster_and_records_reverted() {
    let r = setup();
    let Outcome::Promoted { patch_id, .. } = promote(r.root(), FIX) else { panic!("not promoted") };
    assert_eq!(r.read("svc/calc.sh"), FIXED);
    assert_eq!(statuses(&r), ["applied"]);
    assert_eq!(r.read(&format!(".razar/backups/{patch_id}/files/svc/calc.sh")), BUGGY);
    r.write("config/razar_ai_agents.bak", "{\"active\": \"safe\"}\n");
    r.write("config/razar_ai_agents.json", "{\"active\": \"escalated\"}\n");

    let before = r.snapshot("");
    let dry = r.run(&["rollback", "calc", "--dry-run", "--json"]);
    dry.expect_code(0);
    let plan: serde_json::Value = serde_json::from_str(dry.stdout.trim()).unwrap();
    assert_eq!(plan["dry_run"], true);
    assert_eq!(plan["patches"][0]["patch_id"], patch_id.as_str());
    assert_eq!(plan["patches"][0]["agent"], "glm-test");
    assert_eq!(plan["roster_restored"], true);
    assert_eq!(r.snapshot(""), before, "--dry-run changed nothing");

    let run = r.run(&["rollback", "calc", "--json"]);
    run.expect_code(0);
    let out: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(out["restart"], "no boot running");
    assert_eq!(r.read("svc/calc.sh"), BUGGY);
    assert_eq!(statuses(&r), ["applied", "reverted"]);
    assert_eq!(r.read("config/razar_ai_agents.json"), "{\"active\": \"safe\"}\n");

    // Nothing left to revert: a second rollback says so and succeeds.
    let again = r.run(&["rollback", "calc"]);
    again.expect_code(0);
    assert!(again.stdout.contains("no applied patches"), "{}", again.stdout);
    r.run(&["rollback", "calc", "--patch", &patch_id]).expect_code(2);
}

#[test]
fn a_failing_patch_is_never_promoted_and_leaves_nothing_to_roll_back() {
    let r = setup();
    let before = r.snapshot("svc");
    let broken = FIX.replace("2 + 2", "2 + 9");
    assert!(matches!(promote(r.root(), &broken), Outcome::TestsFailed { .. }));
    assert_eq!(r.snapshot("svc"), before);
    let run = r.run(&["rollback", "calc", "--json"]);
    run.expect_code(0);
    let out: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(out["patches"], json!([]));
}

#[test]
fn rollback_after_a_hand_edit_refuses_and_changes_nothing() {
    let r = setup();
    assert!(matches!(promote(r.root(), FIX), Outcome::Promoted { .. }));
    r.write("svc/calc.sh", "#!/bin/sh\necho 4 # edited by hand\n");
    let before = r.snapshot("");
    let run = r.run(&["rollback", "calc"]);
    run.expect_code(10);
    assert!(run.stderr.contains("svc/calc.sh changed since razar wrote it"), "{}", run.stderr);
    assert_eq!(r.snapshot(""), before, "a refused rollback changed nothing");
}

/// Runs in a child process of `killed_mid_promotion_…`: promotes THREE slowly until killed.
#[test]
#[ignore = "run as a child process by killed_mid_promotion_then_boot_recovers_and_rollback_restores_the_originals"]
fn promote_slowly_in_child() {
    let Some(root) = std::env::var_os("RAZAR_TEST_REPAIR_ROOT") else { return };
    promote(Path::new(&root), THREE);
}

#[test]
fn killed_mid_promotion_then_boot_recovers_and_rollback_restores_the_originals() {
    let r = setup();
    assert!(matches!(promote(r.root(), FIX), Outcome::Promoted { .. }));
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "repair::promote_slowly_in_child", "--ignored", "--test-threads=1"])
        .env("RAZAR_TEST_REPAIR_ROOT", r.root())
        .env(repair::promote::TEST_DELAY_ENV, "400")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once the first file is new and the others still old.
    wait_until("the first file promoted", Duration::from_secs(60), || (r.read("svc/a.txt") == "new a\n").then_some(()));
    child.kill().unwrap();
    child.wait().unwrap();
    let files = || ["a", "b", "c"].map(|f| r.read(&format!("svc/{f}.txt")));
    assert_eq!(files(), ["new a\n", "old b\n", "old c\n"], "killed in the middle");

    // The next boot recovers before it launches anything.
    let boot = r.run(&["boot", "--no-metrics"]);
    boot.expect_code(0);
    assert!(boot.stderr.contains("restored the original files of interrupted patch"), "{}", boot.stderr);
    assert!(!r.path(".razar/promotions").read_dir().unwrap().any(|_| true), "the journal is replayed and gone");
    let after = files();
    assert!(
        after == ["old a\n", "old b\n", "old c\n"] || after == ["new a\n", "new b\n", "new c\n"],
        "a mix after recovery: {after:?}"
    );
    r.run(&["rollback", "calc"]).expect_code(0);
    assert_eq!(files(), ["old a\n", "old b\n", "old c\n"]);
    assert_eq!(r.read("svc/calc.sh"), BUGGY);
    assert_eq!(statuses(&r).last().map(String::as_str), Some("reverted"));
}

#[test]
fn status_and_quarantine_show_list_the_components_patches() {
    let r = setup();
    let Outcome::Promoted { patch_id, .. } = promote(r.root(), FIX) else { panic!("not promoted") };
    r.run(&["boot", "--no-metrics"]).expect_code(0);
    let status = r.run(&["status"]);
    status.expect_code(0);
    let line = status.stdout.lines().find(|l| l.contains(&patch_id)).unwrap_or_else(|| panic!("{}", status.stdout));
    assert!(line.contains("calc") && line.contains("applied  by glm-test") && line.contains("fix the sum"), "{line}");
    assert!(line.contains("svc/calc.sh"), "{line}");

    r.run(&["quarantine", "add", "calc", "--reason", "suspect patch"]).expect_code(0);
    r.run(&["rollback", "calc"]).expect_code(0);
    let show = r.run(&["quarantine", "show", "calc"]);
    show.expect_code(0);
    assert!(show.stdout.contains("patch history"), "{}", show.stdout);
    let line = show.stdout.lines().find(|l| l.contains(&patch_id)).unwrap_or_else(|| panic!("{}", show.stdout));
    assert!(line.contains("reverted  by glm-test"), "{line}");
}

#[test]
fn config_only_restores_just_the_roster_and_patch_picks_one_patch() {
    let r = setup();
    let Outcome::Promoted { patch_id: first, .. } = promote(r.root(), FIX) else { panic!("not promoted") };
    let Outcome::Promoted { patch_id: second, .. } = promote(r.root(), THREE) else { panic!("not promoted") };
    r.write("config/razar_ai_agents.bak", "{\"active\": \"safe\"}\n");
    r.write("config/razar_ai_agents.json", "{\"active\": \"escalated\"}\n");

    r.run(&["rollback", "calc", "--config-only"]).expect_code(0);
    assert_eq!(r.read("config/razar_ai_agents.json"), "{\"active\": \"safe\"}\n");
    assert_eq!(r.read("svc/calc.sh"), FIXED, "--config-only reverts no patch");
    assert_eq!(statuses(&r), ["applied", "applied"]);

    // The older patch alone: the newer one stays.
    r.run(&["rollback", "calc", "--patch", &first]).expect_code(0);
    assert_eq!(r.read("svc/calc.sh"), BUGGY);
    assert_eq!(r.read("svc/a.txt"), "new a\n");
    let history = r.jsonl("logs/patch_history.jsonl");
    assert_eq!(
        (history[2]["patch_id"].as_str(), history[2]["status"].as_str()),
        (Some(first.as_str()), Some("reverted"))
    );
    r.run(&["rollback", "calc"]).expect_code(0);
    assert_eq!(r.read("svc/a.txt"), "old a\n");
    assert_eq!(r.jsonl("logs/patch_history.jsonl")[3]["patch_id"], second.as_str());
}

#[test]
fn rollback_restarts_the_component_of_a_running_boot() {
    let r = Razar::new();
    r.config(json!({"components": [{
        "name": "web", "command": "echo ready $(cat version.txt); exec sleep 60", "working_dir": "svc",
        "health_check": {"log": "^ready"}, "sources": ["svc"], "tests": ["grep -q . version.txt"]
    }]}));
    r.write("svc/version.txt", "v1\n");
    let mut boot = r.spawn(&["boot", "--no-metrics"]);
    wait_until("ready", Duration::from_secs(20), || (r.phase().as_deref() == Some("ready")).then_some(()));
    let pid = r.component_state("web")["pid"].as_i64();
    let bump = "--- a/svc/version.txt\n+++ b/svc/version.txt\n@@ -1 +1 @@\n-v1\n+v2\n";
    assert!(matches!(promote(r.root(), bump), Outcome::Promoted { .. }));

    let run = r.run(&["rollback", "web", "--json"]);
    run.expect_code(0);
    let out: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(out["restart"], "restart requested");
    assert_eq!(r.read("svc/version.txt"), "v1\n");
    wait_until("web restarted", Duration::from_secs(20), || {
        let c = r.component_state("web");
        (c["state"] == "healthy" && c["pid"].as_i64() != pid).then_some(())
    });
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(boot.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    assert_eq!(boot.wait().unwrap().code(), Some(143));
}
