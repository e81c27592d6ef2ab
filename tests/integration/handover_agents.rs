//! `razar handover --dry-run` with the tool loop, the `crown` protocol and the `opencode` CLI
//! (`--use-opencode`, a fake `opencode` script on `PATH`).

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::crown::Crown;
use crate::handover::{Answer, CANARY, DIFF, agent, assert_no_canary, journal, root, tool_call_reply};
use crate::harness::{Razar, group_alive, wait_until};

#[test]
fn an_agent_that_reads_a_file_first_yields_the_same_diff() {
    let read = json!({"choices": [{"message": {"role": "assistant", "content": null, "tool_calls": [
        {"id": "r1", "type": "function", "function": {"name": "read_file", "arguments": "{\"path\": \"svc/app.py\"}"}}]}}]});
    let server = agent(vec![Answer::Json(200, read), Answer::Json(200, tool_call_reply())]);
    let r = root(&server.url, "openai-chat", 10);
    let out = r.run(&["handover", "api", "--dry-run", "--json"]);
    out.expect_code(0);
    let printed: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(printed["patch"].as_str(), Some(DIFF));
    assert_eq!((printed["exchanges"].clone(), printed["reads"].clone()), (json!(2), json!(["svc/app.py"])));
    let requests = server.requests.lock().unwrap();
    assert_eq!(requests.len(), 2);
    for (head, _) in requests.iter() {
        assert!(head.starts_with("POST /v1/chat/completions "), "{head}");
        assert!(head.to_ascii_lowercase().contains(&format!("authorization: bearer {CANARY}")));
    }
    let messages = requests[1].1["messages"].as_array().unwrap().clone();
    let answer = messages.last().unwrap();
    assert_eq!(
        (answer["role"].as_str(), answer["tool_call_id"].as_str(), answer["content"].as_str()),
        (Some("tool"), Some("r1"), Some("print(1/0)\n"))
    );
    let rounds = journal(&r);
    assert_eq!(rounds.len(), 1, "the tool loop is one round: {rounds:?}");
    assert_eq!(rounds[0]["status"], "success");
    assert_no_canary(&r, &out);
}

#[test]
fn crown_answers_a_repair_frame() {
    let crown = Crown::reply(json!({"diff": DIFF, "summary": "guard the division"}));
    let mut r = root("http://127.0.0.1:9/unused", "openai-chat", 10);
    r.write(
        "config/razar_ai_agents.json",
        &json!({"agents": [{"name": "crown", "endpoint": crown.url()}]}).to_string(),
    );
    r.env("CROWN_API_KEY", CANARY);
    let out = r.run(&["handover", "api", "--dry-run", "--error", "ZeroDivisionError", "--json"]);
    out.expect_code(0);
    let printed: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!((printed["agent"].as_str(), printed["patch"].as_str()), (Some("crown"), Some(DIFF)));
    let seen = crown.seen();
    assert_eq!(seen.len(), 1);
    let auth = seen[0].headers.iter().find(|(k, _)| k == "authorization").map(|(_, v)| v.clone());
    assert_eq!(auth, Some(format!("Bearer {CANARY}")));
    let frame: Value = serde_json::from_str(seen[0].frame.as_deref().unwrap()).unwrap();
    assert_eq!((frame["type"].as_str(), frame["component"].as_str()), (Some("repair"), Some("api")));
    let trace = frame["stack_trace"].as_str().unwrap();
    assert!(trace.starts_with("ZeroDivisionError") && trace.contains("log line 60"), "{trace}");
    assert_eq!(frame["config_summary"]["name"], "api");
    assert_eq!(journal(&r)[0]["agent"], "crown");
    assert_no_canary(&r, &out);
}

/// A root whose `PATH` starts with a directory holding `opencode`, a shell script with `body`.
/// The script sees `OPENCODE_OUT`, a directory outside the root to leave evidence in.
fn opencode_root(body: &str) -> (Razar, tempfile::TempDir) {
    let mut r = root("http://127.0.0.1:9/unused", "openai-chat", 10);
    let bin = tempfile::tempdir().unwrap();
    let script = bin.path().join("opencode");
    std::fs::write(&script, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.path().display(), std::env::var("PATH").unwrap_or_default());
    r.env("PATH", &path);
    r.env("OPENCODE_OUT", &bin.path().display().to_string());
    // Secrets razar knows of: none may reach the CLI.
    r.env("KIMI2_API_KEY", CANARY);
    r.env("CROWN_TOKEN", CANARY);
    (r, bin)
}

fn evidence(bin: &tempfile::TempDir, name: &str) -> String {
    std::fs::read_to_string(bin.path().join(name)).unwrap_or_default()
}

#[test]
fn opencode_edits_a_sandbox_copy_and_its_diff_is_the_suggestion() {
    let (r, bin) = opencode_root(
        "printf '%s\\n' \"$@\" > \"$OPENCODE_OUT/args\"; env > \"$OPENCODE_OUT/env\"; pwd > \"$OPENCODE_OUT/pwd\"\n\
         sed -i 's|print(1/0)|print(1)|' svc/app.py\n\
         echo '{\"type\":\"text\",\"part\":{\"text\":\"Stopped dividing by zero.\"}}'",
    );
    let before = r.read("svc/app.py");
    let out = r.run(&["handover", "api", "--dry-run", "--use-opencode", "--error", "ZeroDivisionError", "--json"]);
    out.expect_code(0);
    let printed: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(printed["patch"].as_str(), Some(DIFF), "{}", out.stdout);
    assert_eq!(printed["summary"].as_str(), Some("Stopped dividing by zero."));
    assert_eq!(printed["agent"].as_str(), Some("opencode"));
    assert_eq!(r.read("svc/app.py"), before, "the real source is untouched");

    let args = evidence(&bin, "args");
    assert!(args.starts_with("run\n--format\njson\n"), "{args}");
    assert!(args.contains("ZeroDivisionError") && args.contains("svc/app.py"), "{args}");
    let env = evidence(&bin, "env");
    assert!(env.contains("OPENCODE_OUT=") && !env.contains(CANARY), "the CLI inherits no secret:\n{env}");
    let pwd = PathBuf::from(evidence(&bin, "pwd").trim());
    let sandboxes = std::fs::canonicalize(r.path(".razar/sandbox")).unwrap();
    assert!(pwd.starts_with(&sandboxes), "{} runs in a sandbox", pwd.display());
    assert!(!pwd.exists(), "the sandbox is removed after the round");
    assert_eq!(journal(&r)[0]["agent"], "opencode");
    assert_no_canary(&r, &out);
}

#[test]
fn opencode_without_a_change_offers_no_patch_and_a_failing_cli_is_an_agent_error() {
    let (r, _bin) = opencode_root("echo '{\"type\":\"text\",\"part\":{\"text\":\"Nothing to fix.\"}}'");
    let out = r.run(&["handover", "api", "--dry-run", "--use-opencode"]);
    out.expect_code(12);
    assert!(
        out.stderr.contains("opencode changed no file") && out.stderr.contains("Nothing to fix."),
        "{}",
        out.stderr
    );

    let (r, _bin) = opencode_root("echo 'provider not configured' >&2; exit 3");
    let out = r.run(&["handover", "api", "--dry-run", "--use-opencode"]);
    out.expect_code(13);
    assert!(out.stderr.contains("`opencode run` exited with 3: provider not configured"), "{}", out.stderr);
    assert_eq!(journal(&r)[0]["status"], "failure");

    let mut r = root("http://127.0.0.1:9/unused", "openai-chat", 10);
    r.env("PATH", "/nonexistent");
    let out = r.run(&["handover", "api", "--dry-run", "--use-opencode"]);
    out.expect_code(13);
    assert!(out.stderr.contains("`opencode` not found on PATH"), "{}", out.stderr);
}

#[test]
fn a_hung_opencode_is_killed_with_its_group_at_the_roster_timeout() {
    let (r, bin) = opencode_root(
        "printf '%s\\n' \"$@\" > \"$OPENCODE_OUT/args\"; echo $$ > \"$OPENCODE_OUT/pgid\"; sleep 60 & wait",
    );
    let roster = json!({"agents": [{"name": "opencode", "timeout": 1, "model": "local/coder"}]});
    r.write("config/razar_ai_agents.json", &roster.to_string());
    let started = Instant::now();
    let out = r.run(&["handover", "api", "--dry-run", "--use-opencode"]);
    out.expect_code(13);
    assert!(started.elapsed() < Duration::from_secs(15), "{:?}", started.elapsed());
    assert!(out.stderr.contains("did not finish within 1 s and was killed"), "{}", out.stderr);
    assert!(evidence(&bin, "args").starts_with("run\n--model\nlocal/coder\n--format\njson\n"), "the roster's model");
    let pgid: i32 = evidence(&bin, "pgid").trim().parse().unwrap();
    // Killed members may linger as zombies until init reaps them; none may still run.
    wait_until("the CLI's process group to be gone", Duration::from_secs(10), || {
        (!group_alive(pgid) || running_in_group(pgid).is_empty()).then_some(())
    });
}

/// Processes of group `pgid` that are not zombies (from /proc).
fn running_in_group(pgid: i32) -> Vec<i32> {
    let mut running = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // Fields after the command's closing parenthesis: state, ppid, pgrp, …
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { continue };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.get(2).and_then(|g| g.parse::<i32>().ok()) == Some(pgid) && fields.first() != Some(&"Z") {
            running.push(pid);
        }
    }
    running
}

#[test]
fn use_opencode_needs_no_roster_and_excludes_agent() {
    let (r, _bin) = opencode_root("sed -i 's|print(1/0)|print(1)|' svc/app.py");
    std::fs::remove_file(r.path("config/razar_ai_agents.json")).unwrap();
    r.run(&["handover", "api", "--dry-run", "--use-opencode"]).expect_code(0);
    let out = r.run(&["handover", "api", "--dry-run", "--use-opencode", "--agent", "fixer"]);
    out.expect_code(2);
    assert!(out.stderr.contains("cannot be used with"), "{}", out.stderr);
}
