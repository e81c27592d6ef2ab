//! Healing at boot and `razar handover` applying patches, against loopback agent servers: a
//! broken component healed by a verified patch and rolled back; a relaunch that fails after
//! promotion reverted; an unhealable component quarantined with the roster restored and the
//! halt alert written; patches that touch what they may not, rejected with nothing changed.

use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};

use crate::handover::{Answer, CANARY, agent};
use crate::harness::{Razar, wait_until};

const BROKEN: &str = "import sys\nx = 1 / 0\nif len(sys.argv) > 1 and sys.argv[1] == \"run-fails\":\n    sys.exit(3)\n";
const FIX: &str = "--- a/svc/app.py\n+++ b/svc/app.py\n@@ -1,2 +1,2 @@\n import sys\n-x = 1 / 0\n+x = 1\n";

fn patch_reply(diff: &str) -> Value {
    let args = json!({"patch": diff, "summary": "stop dividing by zero"}).to_string();
    json!({"choices": [{"message": {"role": "assistant", "content": null, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "submit_patch", "arguments": args}}]}}]})
}

fn no_patch_reply() -> Value {
    json!({"choices": [{"message": {"role": "assistant", "content": "I cannot see the cause."}}]})
}

/// A stack of one task, `api`, whose `svc/app.py` divides by zero; its test runs the script.
fn root(agent_url: &str, command: &str) -> Razar {
    let mut r = Razar::new();
    r.env("FIXER_API_KEY", CANARY);
    r.write("svc/app.py", BROKEN);
    r.config(json!({"components": [{"name": "api", "kind": "task", "command": command, "working_dir": "svc",
        "sources": ["svc"], "tests": ["python3 app.py"]}]}));
    let roster = json!({"agents": [{"name": "fixer", "endpoint": agent_url, "protocol": "openai-chat", "model": "m"}]});
    r.write("config/razar_ai_agents.json", &roster.to_string());
    r
}

fn history(r: &Razar) -> Vec<String> {
    r.jsonl("logs/patch_history.jsonl").iter().filter_map(|h| h["status"].as_str().map(str::to_owned)).collect()
}

fn mission(r: &Razar, event: &str) -> Vec<String> {
    r.jsonl("logs/razar.log")
        .iter()
        .filter(|e| e["event"] == event)
        .filter_map(|e| e["status"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn a_broken_component_is_healed_at_boot_by_a_verified_patch_and_rolled_back() {
    let server = agent(vec![Answer::Json(200, patch_reply(FIX))]);
    let r = root(&server.url, "python3 app.py");
    let out = r.run(&["boot", "--retries", "0", "--remote-attempts", "1"]);
    out.expect_code(0);
    assert_eq!(r.component_state("api")["state"], "completed", "{}", out.stderr);
    assert_eq!(r.read("svc/app.py"), BROKEN.replace("x = 1 / 0", "x = 1"), "the patch was promoted");
    assert_eq!(history(&r), ["applied"]);
    assert_eq!(mission(&r, "heal"), ["round", "promoted", "healed"]);
    assert_eq!(server.requests.lock().unwrap().len(), 1, "one round");
    crate::handover::assert_no_canary(&r, &out);

    let back = r.run(&["rollback", "api"]);
    back.expect_code(0);
    assert_eq!(r.read("svc/app.py"), BROKEN, "rollback restores the original bytes");
    assert_eq!(history(&r), ["applied", "reverted"]);
}

#[test]
fn a_relaunch_that_fails_after_promotion_is_reverted() {
    // The test passes on the patched file, but the component's real run still fails.
    let server = agent(vec![Answer::Json(200, patch_reply(FIX))]);
    let r = root(&server.url, "python3 app.py run-fails");
    let out = r.run(&["boot", "--retries", "0", "--remote-attempts", "1"]);
    out.expect_code(1);
    assert_eq!(r.read("svc/app.py"), BROKEN, "the promoted patch was reverted");
    assert_eq!(history(&r), ["applied", "reverted"]);
    assert_eq!(mission(&r, "heal"), ["round", "promoted", "reverted"]);
    assert_eq!(r.component_state("api")["state"], "quarantined");
}

#[test]
fn an_unhealable_component_is_quarantined_the_roster_restored_and_the_halt_alert_written() {
    let server = agent(vec![Answer::Json(200, no_patch_reply())]);
    let r = root(&server.url, "python3 app.py");
    // Two agents and an escalation after one empty round: the boot moves `active`, the halt
    // puts the roster back.
    let roster = json!({"agents": [
        {"name": "fixer", "endpoint": server.url, "protocol": "openai-chat", "model": "m"},
        {"name": "second", "endpoint": server.url, "protocol": "openai-chat", "model": "m"}]});
    r.write("config/razar_ai_agents.json", &roster.to_string());
    let before = r.read("config/razar_ai_agents.json");
    let mut r = r;
    r.env("SECOND_API_KEY", CANARY);
    r.env("RAZAR_RSTAR_THRESHOLD", "1");
    let out = r.run(&["boot", "--retries", "0", "--remote-attempts", "2"]);
    out.expect_code(1);
    assert_eq!(server.requests.lock().unwrap().len(), 2, "two rounds");
    let journal = r.jsonl("logs/razar_ai_invocations.json");
    assert!(journal.iter().any(|j| j["event"] == "escalation"), "the ladder climbed during the boot");
    assert_eq!(r.component_state("api")["state"], "quarantined");
    assert!(r.path("quarantine/api.json").exists());
    assert_eq!(r.read("config/razar_ai_agents.json"), before, "the roster equals its snapshot");
    assert_eq!(r.read("config/razar_ai_agents.bak"), before);
    let alerts = r.snapshot("monitoring/alerts");
    assert!(alerts.iter().any(|(_, b)| {
        String::from_utf8_lossy(b).contains("Boot sequence halted; configuration rolled back to safe defaults")
    }));
    assert_eq!(r.read("svc/app.py"), BROKEN);
    crate::handover::assert_no_canary(&r, &out);
}

#[test]
fn patches_outside_the_sources_or_failing_their_tests_change_nothing() {
    let outside = "--- a/../outside.txt\n+++ b/../outside.txt\n@@ -0,0 +1 @@\n+owned\n";
    let etc = "--- a/svc/etc/x\n+++ b/svc/etc/x\n@@ -0,0 +1 @@\n+owned\n";
    let other = "--- a/notes.txt\n+++ b/notes.txt\n@@ -1 +1 @@\n-mine\n+owned\n";
    let still_broken = "--- a/svc/app.py\n+++ b/svc/app.py\n@@ -1,2 +1,2 @@\n import sys\n-x = 1 / 0\n+x = 1 / 0.0\n";
    for diff in [outside, etc, other, still_broken] {
        let server = agent(vec![Answer::Json(200, patch_reply(diff))]);
        let r = root(&server.url, "python3 app.py");
        r.write("notes.txt", "mine\n");
        std::os::unix::fs::symlink("/etc", r.path("svc/etc")).unwrap();
        let tree = |r: &Razar| {
            let mut files = r.snapshot("svc");
            files.sort();
            (files, r.read("notes.txt"))
        };
        let before = tree(&r);
        let out = r.run(&["handover", "api", "--error", "ZeroDivisionError"]);
        out.expect_code(14);
        assert!(out.stderr.contains("nothing changed"), "{}", out.stderr);
        assert_eq!(tree(&r), before, "{diff}");
        assert!(!r.path("../outside.txt").exists() && !r.path("outside.txt").exists());
        assert!(!std::path::Path::new("/etc/x").exists());
    }
}

#[test]
fn handover_promotes_a_verified_patch_and_asks_a_running_boot_to_restart() {
    let server = agent(vec![Answer::Json(200, patch_reply(FIX))]);
    let r = root(&server.url, "python3 app.py");
    let out = r.run(&["handover", "api", "--error", "ZeroDivisionError", "--json"]);
    out.expect_code(0);
    let v: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(v["verdict"], "promoted", "{v}");
    assert_eq!(v["restart"], "no boot is running: the next boot runs it");
    assert_eq!(r.read("svc/app.py"), BROKEN.replace("x = 1 / 0", "x = 1"));
    assert_eq!(history(&r), ["applied"]);
    r.run(&["boot"]).expect_code(0);
    assert_eq!(r.component_state("api")["state"], "completed");
}

#[test]
fn a_healed_service_moves_the_ai_series_of_a_running_boot() {
    let serve = "import sys, time\nx = 1 / 0\nprint(\"ready\", flush=True)\nif sys.argv[1:] == [\"serve\"]:\n    time.sleep(60)\n";
    let fix = "--- a/svc/app.py\n+++ b/svc/app.py\n@@ -1,2 +1,2 @@\n import sys, time\n-x = 1 / 0\n+x = 1\n";
    let server = agent(vec![Answer::Json(200, patch_reply(fix))]);
    let r = root(&server.url, "python3 app.py serve");
    r.write("svc/app.py", serve);
    r.config(json!({"components": [{"name": "api", "command": "python3 app.py serve", "working_dir": "svc",
        "sources": ["svc"], "tests": ["python3 app.py"], "health_check": {"log": "^ready$"}}]}));
    let mut child = r.spawn(&["boot", "--retries", "0", "--remote-attempts", "1"]);
    let url = wait_until("ready with a metrics url", Duration::from_secs(30), || {
        (r.phase().as_deref() == Some("ready")).then(|| r.json("logs/razar_state.json")["metrics_url"].clone())
    });
    assert_eq!(r.component_state("api")["state"], "healthy");
    let text = crate::metrics::get(url.as_str().unwrap());
    for want in [
        r#"razar_ai_invocation_success_total{component="api"} 1"#,
        r#"razar_ai_invocation_failure_total{component="api"} 0"#,
        r#"razar_ai_invocation_retries_total{component="api"} 0"#,
        r#"razar_component_restarts_total{component="api",reason="patched"} 1"#,
        r#"razar_ai_retry_duration_seconds_count{component="api"} 1"#,
        r#"razar_agent_call_duration_seconds_count{agent="fixer"} 1"#,
    ] {
        assert!(text.lines().any(|l| l == want), "{want} missing:\n{text}");
    }
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(143));
}

#[test]
fn a_patch_failing_its_tests_is_never_promoted_and_the_next_round_heals() {
    let still_broken = "--- a/svc/app.py\n+++ b/svc/app.py\n@@ -1,2 +1,2 @@\n import sys\n-x = 1 / 0\n+x = 2 / 0\n";
    let server = agent(vec![Answer::Json(200, patch_reply(still_broken)), Answer::Json(200, patch_reply(FIX))]);
    let r = root(&server.url, "python3 app.py");
    r.run(&["boot", "--retries", "0", "--remote-attempts", "2"]).expect_code(0);
    assert_eq!(server.requests.lock().unwrap().len(), 2, "two rounds");
    assert_eq!(mission(&r, "heal"), ["round", "not_healed", "round", "promoted", "healed"]);
    assert_eq!(history(&r), ["applied"], "only the second patch reached the tree");
    assert_eq!(r.read("svc/app.py"), BROKEN.replace("x = 1 / 0", "x = 1"));
}

#[test]
fn an_agent_without_its_credential_is_skipped_and_the_ladder_moves_on() {
    let server = agent(vec![Answer::Json(200, patch_reply(FIX))]);
    let r = root(&server.url, "python3 app.py");
    let roster = json!({"agents": [
        {"name": "nokey", "endpoint": server.url, "protocol": "openai-chat", "model": "m"},
        {"name": "fixer", "endpoint": server.url, "protocol": "openai-chat", "model": "m"}]});
    r.write("config/razar_ai_agents.json", &roster.to_string());
    let out = r.run(&["boot", "--retries", "0", "--remote-attempts", "2"]);
    out.expect_code(0);
    assert_eq!(server.requests.lock().unwrap().len(), 1, "nokey's turn sent nothing");
    let journal = r.jsonl("logs/razar_ai_invocations.json");
    let events: Vec<(&str, &str)> =
        journal.iter().map(|j| (j["event"].as_str().unwrap(), j["agent"].as_str().unwrap_or(""))).collect();
    assert_eq!(events[0], ("attempt", "nokey"));
    assert!(journal[0]["error"].as_str().unwrap().contains("NOKEY_API_KEY"), "{}", journal[0]);
    assert_eq!(events[1].0, "escalation");
    assert_eq!(events[2], ("attempt", "fixer"));
    assert_eq!(r.component_state("api")["state"], "completed");
    assert!(r.read("config/razar_ai_agents.json").contains("\"active\""), "active moved to fixer");
}
