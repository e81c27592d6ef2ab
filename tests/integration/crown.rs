//! `razar handshake` through the real binary against an in-process Crown: a tokio-tungstenite
//! server on 127.0.0.1:0 that records the upgrade headers and the frame it receives.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};

use crate::harness::{Razar, Run};

/// What the test Crown does after it has read the brief.
#[derive(Clone)]
pub(crate) enum Behavior {
    /// Sends this text frame, then waits for the close.
    Reply(String),
    /// Never answers.
    Silent,
    /// Sends a close frame instead of a reply.
    CloseFrame,
    /// Drops the TCP connection without a close handshake.
    Drop,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Seen {
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) frame: Option<String>,
}

pub(crate) struct Crown {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Crown {
    pub(crate) fn start(behavior: Behavior) -> Crown {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&seen);
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                while let Ok((stream, _)) = listener.accept().await {
                    tokio::spawn(serve(stream, behavior.clone(), Arc::clone(&record)));
                }
            });
        });
        Crown { port, seen }
    }

    pub(crate) fn reply(v: Value) -> Crown {
        Crown::start(Behavior::Reply(v.to_string()))
    }

    pub(crate) fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/crown", self.port)
    }

    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The brief the Crown received on its only connection.
    fn brief(&self) -> Value {
        let seen = self.seen();
        assert_eq!(seen.len(), 1, "one connection expected: {seen:?}");
        serde_json::from_str(seen[0].frame.as_deref().expect("a frame")).unwrap()
    }
}

async fn serve(stream: tokio::net::TcpStream, behavior: Behavior, record: Arc<Mutex<Vec<Seen>>>) {
    let headers = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&headers);
    #[expect(clippy::result_large_err, reason = "the signature of tungstenite's accept callback")]
    let callback = move |req: &Request, resp: Response| {
        *sink.lock().unwrap() = req
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        Ok(resp)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else { return };
    let idx = {
        let mut r = record.lock().unwrap();
        r.push(Seen { headers: headers.lock().unwrap().clone(), frame: None });
        r.len() - 1
    };
    let frame = loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => break t.as_str().to_owned(),
            Some(Ok(_)) => continue,
            _ => return,
        }
    };
    record.lock().unwrap()[idx].frame = Some(frame);
    match behavior {
        Behavior::Reply(text) => {
            let _ = ws.send(Message::text(text)).await;
            while let Some(Ok(_)) = ws.next().await {}
        }
        Behavior::Silent => tokio::time::sleep(Duration::from_secs(60)).await,
        Behavior::CloseFrame => {
            let _ = ws.close(None).await;
            while let Some(Ok(_)) = ws.next().await {}
        }
        Behavior::Drop => drop(ws),
    }
}

/// A root with a two-component config whose Crown settings are `crown`.
pub(crate) fn root_with(crown: Value) -> Razar {
    let r = Razar::new();
    r.config(json!({
        "mission": "demo",
        "components": [
            {"name": "alpha", "command": ["true"]},
            {"name": "beta", "command": "echo hi", "priority": 1},
        ],
        "crown": crown,
    }));
    r
}

fn archive_names(r: &Razar) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(r.path("logs/mission_briefs"))
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

/// The archived brief timestamps (`<ts>.json`).
fn brief_files(r: &Razar) -> Vec<String> {
    archive_names(r).into_iter().filter(|n| n.trim_end_matches(".json").bytes().all(|b| b.is_ascii_digit())).collect()
}

#[track_caller]
fn expect_crown_failure(run: &Run, needle: &str) {
    run.expect_code(3);
    assert!(run.stderr.contains(needle), "stderr should say {needle:?}:\n{}", run.stderr);
    assert!(run.stdout.is_empty(), "nothing on stdout for a failure: {}", run.stdout);
}

#[test]
fn acknowledged_handshake_prints_archives_and_logs() {
    let crown =
        Crown::reply(json!({"ack": "CROWN-ACK", "capabilities": ["GLM-4.1V", "code-review"], "crown_version": "1.2"}));
    let mut r = root_with(json!({"url": crown.url()}));
    r.env("CROWN_IDENTITY_FINGERPRINT", r#"{"id":"crown-7"}"#);
    r.write("extra.json", r#"{"note": "from the operator"}"#);
    let out = r.run(&["handshake", "extra.json"]);
    out.expect_code(0);
    assert!(out.stdout.contains("acknowledgement: CROWN-ACK"), "{}", out.stdout);
    assert!(out.stdout.contains("capabilities: GLM-4.1V, code-review"), "{}", out.stdout);

    let brief = crown.brief();
    assert_eq!(brief["priority_map"], json!({"beta": 0, "alpha": 1}));
    assert_eq!(brief["current_status"], json!({"alpha": "pending", "beta": "pending"}));
    assert_eq!(brief["open_issues"], json!([]));
    assert_eq!(brief["mission"], "demo");
    assert_eq!(brief["note"], "from the operator");
    assert_eq!(r.json("logs/mission_brief.json"), brief);

    let names = archive_names(&r);
    assert_eq!(names.len(), 2, "{names:?}");
    let ts = names[0].trim_end_matches(".json").to_owned();
    assert_eq!(names[1], format!("{ts}_response.json"));
    assert_eq!(r.json(&format!("logs/mission_briefs/{ts}.json")), brief);
    assert_eq!(r.json(&format!("logs/mission_briefs/{ts}_response.json"))["ack"], "CROWN-ACK");

    let log = r.jsonl("logs/razar.log");
    let hs = log.iter().find(|e| e["event"] == "handshake").expect("handshake event");
    assert_eq!(hs["status"], "ack");
    assert_eq!(hs["details"]["crown_version"], "1.2");
    assert!(hs["timestamp"].is_f64() && hs["timestamp_iso"].as_str().unwrap().ends_with('Z'));
    assert!(!log.iter().any(|e| e["event"] == "model_launch"), "GLM present: nothing launched");

    let dialogues = r.jsonl("logs/razar_crown_dialogues.json");
    assert_eq!(dialogues.len(), 1);
    assert_eq!(dialogues[0]["request"], brief);
    assert_eq!(dialogues[0]["response"]["capabilities"], json!(["GLM-4.1V", "code-review"]));
    assert_eq!(dialogues[0]["identity_fingerprint"], json!({"id": "crown-7"}));
    let interactions = r.jsonl("logs/interaction_log.jsonl");
    assert_eq!(interactions[0]["initiator"], "RAZAR");
    assert!(interactions[0]["response_summary"].as_str().unwrap().contains("CROWN-ACK"));
    assert_eq!(r.json("logs/razar_state.json")["handshake"]["acknowledgement"], "CROWN-ACK", "the outcome is recorded");
}

#[test]
fn json_output_and_identity_file_fingerprint() {
    let crown = Crown::reply(json!({"ack": true, "capabilities": ["glm4v"]}));
    let r = root_with(json!({"url": crown.url()}));
    r.write("data/identity.json", "{\"who\": \"razar\"}");
    let out = r.run(&["handshake", "--json"]);
    out.expect_code(0);
    let v: Value = serde_json::from_str(&out.stdout).expect("stdout is only JSON");
    assert_eq!(v["acknowledgement"], "ack");
    assert_eq!(v["offline"], false);
    assert_eq!(v["glm4v_present"], true);
    assert_eq!(v["identity_fingerprint"]["sha256"].as_str().unwrap().len(), 64);
    assert!(v["identity_fingerprint"]["mtime"].is_f64());
}

#[test]
fn refused_connection_is_reported_as_such() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let r = root_with(json!({"url": format!("ws://127.0.0.1:{port}/")}));
    let out = r.run(&["handshake"]);
    expect_crown_failure(&out, "refused the connection or is unreachable");
    let log = r.jsonl("logs/razar.log");
    assert_eq!(log.last().unwrap()["status"], "error");
    assert_eq!(log.last().unwrap()["details"]["kind"], "unreachable");
    assert_eq!(brief_files(&r).len(), 1, "the brief is archived before sending");
}

#[test]
fn silent_crown_times_out() {
    let crown = Crown::start(Behavior::Silent);
    let r = root_with(json!({"url": crown.url(), "timeout": "500ms"}));
    let started = std::time::Instant::now();
    let out = r.run(&["handshake"]);
    expect_crown_failure(&out, "timed out: no reply within 500ms (waiting for the reply)");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(crown.seen()[0].frame.is_some(), "the brief was sent");
}

#[test]
fn close_before_reply_is_reported_as_such() {
    for behavior in [Behavior::CloseFrame, Behavior::Drop] {
        let crown = Crown::start(behavior);
        let r = root_with(json!({"url": crown.url()}));
        let out = r.run(&["handshake"]);
        expect_crown_failure(&out, "closed the connection before replying");
        assert_eq!(r.jsonl("logs/razar.log").last().unwrap()["details"]["kind"], "closed");
    }
}

#[test]
fn non_json_and_non_object_replies_are_rejected() {
    let crown = Crown::start(Behavior::Reply("hello, razar".into()));
    let r = root_with(json!({"url": crown.url()}));
    expect_crown_failure(&r.run(&["handshake"]), "not JSON");
    assert!(archive_names(&r).iter().all(|n| !n.contains("response")), "no response archived");

    let crown = Crown::start(Behavior::Reply("[\"ack\"]".into()));
    let r = root_with(json!({"url": crown.url()}));
    expect_crown_failure(&r.run(&["handshake"]), "replied with JSON that is an array, not an object");

    let crown = Crown::reply(json!({"ack": false}));
    let r = root_with(json!({"url": crown.url()}));
    expect_crown_failure(&r.run(&["handshake"]), "did not acknowledge the brief");
    let dialogues = r.jsonl("logs/razar_crown_dialogues.json");
    assert_eq!(dialogues[0]["response"], json!({"ack": false}));
    assert!(dialogues[0]["error"].as_str().unwrap().contains("did not acknowledge"));
}

#[test]
fn oversized_reply_is_reported_as_such() {
    let crown = Crown::reply(json!({"ack": "ok", "capabilities": ["x".repeat(2000)]}));
    let r = root_with(json!({"url": crown.url(), "max_reply_bytes": 256}));
    expect_crown_failure(&r.run(&["handshake"]), "larger than the 256-byte limit");
    assert_eq!(r.jsonl("logs/razar.log").last().unwrap()["details"]["kind"], "oversized");
}

#[test]
fn wss_to_a_plain_server_is_a_tls_failure() {
    let crown = Crown::start(Behavior::Silent);
    let r = root_with(json!({"url": format!("wss://127.0.0.1:{}/", crown.port), "timeout": "5s"}));
    expect_crown_failure(&r.run(&["handshake"]), "tls with crown at wss://127.0.0.1");
}

#[test]
fn downtime_names_are_checked_against_the_config() {
    let crown = Crown::reply(json!({
        "ack": "ok",
        "capabilities": ["GLM4V"],
        "downtime": {
            "alpha": {"description": "patching", "diff": "--- a/x\n+++ b/x\n", "tests": ["pytest -q"]},
            "../../evil": {"description": "path traversal"},
            "ghost": "not configured",
        }
    }));
    let r = root_with(json!({"url": crown.url()}));
    let out = r.run(&["handshake", "--json"]);
    out.expect_code(0);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        v["downtime"],
        json!({"alpha": {"description": "patching", "diff": "--- a/x\n+++ b/x\n", "tests": ["pytest -q"]}})
    );
    assert_eq!(v["rejected_downtime"], json!(["../../evil", "ghost"]));
    assert!(out.stderr.contains("not in the config"), "{}", out.stderr);
    let hs = r.jsonl("logs/razar.log").into_iter().find(|e| e["event"] == "handshake").unwrap();
    assert_eq!(hs["details"]["downtime"], json!(["alpha"]));
    assert_eq!(hs["details"]["rejected_downtime"], json!(["\"../../evil\"", "\"ghost\""]));
    assert!(!r.root().parent().unwrap().join("evil").exists());
}

pub(crate) fn launcher(r: &Razar, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    r.write("launch_glm.sh", &format!("#!/bin/sh\n{body}\n"));
    std::fs::set_permissions(r.path("launch_glm.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn glm4v_missing_runs_the_model_launcher() {
    let crown = Crown::reply(json!({"ack": "ok", "capabilities": ["code-review"]}));
    let r = root_with(json!({"url": crown.url(), "model_launcher": "launch_glm.sh"}));
    launcher(&r, "touch launched.marker; echo model up");
    let out = r.run(&["handshake", "--json"]);
    out.expect_code(0);
    assert!(r.path("launched.marker").exists(), "the launcher ran in the root");
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["launched_models"], json!(["GLM-4.1V"]));
    assert_eq!(v["glm4v_present"], false);
    let ts = v["archive_ts"].as_i64().unwrap();
    let rec = r.json(&format!("logs/mission_briefs/{ts}_glm4v_launch.json"));
    assert_eq!(rec["status"], "launched");
    assert_eq!(rec["stdout"], "model up\n");
    let ev = r.jsonl("logs/razar.log").into_iter().find(|e| e["event"] == "model_launch").expect("model_launch event");
    assert_eq!(ev["status"], "launched");
}

#[test]
fn glm4v_present_launches_nothing() {
    let crown = Crown::reply(json!({"ack": "ok", "capabilities": ["GLM-4.1V"]}));
    let r = root_with(json!({"url": crown.url(), "model_launcher": "launch_glm.sh"}));
    launcher(&r, "touch launched.marker");
    r.run(&["handshake"]).expect_code(0);
    assert!(!r.path("launched.marker").exists());
    assert!(archive_names(&r).iter().all(|n| !n.ends_with("_glm4v_launch.json")));
}

#[test]
fn glm4v_missing_without_a_launcher_records_nothing_launched() {
    let crown = Crown::reply(json!({"ack": "ok"}));
    let r = root_with(json!({"url": crown.url()}));
    let out = r.run(&["handshake", "--json"]);
    out.expect_code(0);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["launched_models"], json!([]));
    assert_eq!(v["model_launch"]["status"], "not_configured");
}

#[test]
fn offline_mode_without_a_url() {
    let r = Razar::new();
    let out = r.run(&["handshake"]);
    out.expect_code(0);
    assert!(out.stdout.contains("acknowledgement: offline"), "{}", out.stdout);
    assert!(out.stdout.contains("capabilities: GLM4V_OFFLINE"), "{}", out.stdout);
    assert!(out.stderr.contains("offline"), "a warning on stderr: {}", out.stderr);
    let hs = r.jsonl("logs/razar.log").into_iter().find(|e| e["event"] == "handshake").unwrap();
    assert_eq!(hs["status"], "offline");
    assert_eq!(r.json("logs/mission_brief.json")["priority_map"], json!({}));
    assert_eq!(brief_files(&r).len(), 1);
}

#[test]
fn required_capability_missing_exits_5() {
    let crown = Crown::reply(json!({"ack": "ok", "capabilities": ["GLM-4.1V"]}));
    let r = root_with(json!({"url": crown.url(), "required_capabilities": ["glm4v"]}));
    let out = r.run(&["handshake", "--require-capability", "vision"]);
    out.expect_code(5);
    assert!(out.stderr.contains("required crown capability missing: vision"), "{}", out.stderr);
    r.run(&["handshake", "--require-capability", "GLM4V_OFFLINE"]).expect_code(0);
}

#[test]
fn usage_errors_exit_2() {
    let r = Razar::new();
    r.run(&["handshake", "--url", "http://127.0.0.1:1/"]).expect_code(2);
    r.run(&["handshake", "missing.json"]).expect_code(2);
    r.write("list.json", "[1]");
    r.run(&["handshake", "list.json"]).expect_code(2);
    r.run(&["handshake", "--config", "config/nope.json"]).expect_code(2);
    assert!(!r.path("logs").exists(), "nothing written on a usage error");
}

#[test]
fn rotation_keeps_twenty_brief_pairs() {
    let r = Razar::new();
    for ts in 1000..1021 {
        r.write(&format!("logs/mission_briefs/{ts}.json"), "{}");
        r.write(&format!("logs/mission_briefs/{ts}_response.json"), "{}");
    }
    r.write("logs/mission_briefs/1000_glm4v_launch.json", "{}");
    r.write("logs/mission_briefs/notes.txt", "kept");
    r.run(&["handshake"]).expect_code(0);
    let names = archive_names(&r);
    let briefs = brief_files(&r);
    assert_eq!(briefs.len(), 20, "{names:?}");
    for gone in ["1000.json", "1000_response.json", "1000_glm4v_launch.json", "1001.json", "1001_response.json"] {
        assert!(!names.iter().any(|n| n == gone), "{gone} should be rotated out: {names:?}");
    }
    assert!(names.iter().any(|n| n == "1002_response.json"));
    assert!(names.iter().any(|n| n == "notes.txt"));
}

#[test]
fn canary_token_is_sent_as_a_header_and_never_written() {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let canary = format!("canary-{}-{nanos}", std::process::id());
    let crown = Crown::reply(json!({"ack": "ok", "capabilities": ["code-review"]}));
    let mut r = root_with(json!({"url": crown.url(), "model_launcher": "launch_glm.sh"}));
    // A launcher that would print the token if it could see it.
    launcher(&r, "echo \"token=$CROWN_TOKEN\"; env >&2");
    r.env("CROWN_TOKEN", &canary);
    let ok = r.run(&["-vv", "handshake", "--json"]);
    ok.expect_code(0);

    let seen = crown.seen();
    let auth: Vec<&str> = seen[0]
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(auth, vec![format!("Bearer {canary}")]);

    // A failing run (refused) must not leak it either.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    r.write(
        "other.json",
        &json!({"components": [], "crown": {"url": format!("ws://127.0.0.1:{port}/?x=1")}}).to_string(),
    );
    let failed = r.run(&["-vv", "handshake", "--config", "other.json"]);
    failed.expect_code(3);

    for run in [&ok, &failed] {
        assert!(!run.stdout.contains(&canary) && !run.stderr.contains(&canary), "canary in razar's output");
    }
    assert_no_canary(r.root(), &canary);
}

fn assert_no_canary(dir: &Path, canary: &str) {
    let mut checked = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let bytes = std::fs::read(&p).unwrap();
                assert!(!String::from_utf8_lossy(&bytes).contains(canary), "canary found in {}", p.display());
                checked += 1;
            }
        }
    }
    assert!(checked >= 8, "expected the handshake's files to be checked, saw {checked}");
}

#[test]
fn failed_handshake_keeps_existing_files_intact() {
    let crown = Crown::start(Behavior::Reply("not json".into()));
    let r = root_with(json!({"url": crown.url()}));
    let state = json!({"version": 1, "phase": "ready", "components": [{"id": "alpha", "state": "healthy"}]});
    r.write("logs/razar_state.json", &serde_json::to_string_pretty(&state).unwrap());
    r.write("logs/razar.log", "{\"event\":\"earlier\",\"component\":\"x\",\"status\":\"ok\",\"timestamp\":1.0}\n");
    r.write("logs/razar_crown_dialogues.json", "{\"request\":{},\"response\":{}}\n");
    r.write("logs/interaction_log.jsonl", "{\"initiator\":\"operator\"}\n");
    r.write("logs/mission_briefs/5.json", "{\"old\": true}\n");
    r.write("logs/mission_briefs/5_response.json", "{\"ack\": \"old\"}\n");
    let before = r.snapshot("logs");

    expect_crown_failure(&r.run(&["handshake"]), "not JSON");
    assert_eq!(crown.brief()["current_status"]["alpha"], "healthy", "state read for the brief");
    let after = r.snapshot("logs");
    for (path, old) in &before {
        let new = &after.iter().find(|(p, _)| p == path).unwrap_or_else(|| panic!("{} lost", path.display())).1;
        if path.ends_with("razar_state.json") || path.to_string_lossy().contains("mission_briefs/5") {
            assert_eq!(new, old, "{} changed", path.display());
        } else {
            assert!(new.starts_with(old), "{} was not only appended to", path.display());
        }
    }
}

// ----- the handshake inside `razar boot` ------------------------------------------------------

fn events_of(r: &Razar, event: &str) -> Vec<Value> {
    r.jsonl("logs/razar.log").into_iter().filter(|e| e["event"] == event).collect()
}

#[test]
fn boot_records_the_handshake_and_skips_components_in_downtime() {
    let crown = Crown::reply(json!({
        "ack": "CROWN-ACK", "capabilities": ["GLM-4.1V"], "crown_version": "2.0",
        "downtime": {"beta": {"description": "disk swap", "diff": "--- a\n+++ b\n"}, "../etc": {"description": "x"}}
    }));
    let r = root_with(json!({"url": crown.url()}));
    r.run(&["boot"]).expect_code(0);
    let state = r.json("logs/razar_state.json");
    assert_eq!(state["handshake"]["acknowledgement"], "CROWN-ACK");
    assert_eq!(state["handshake"]["crown_version"], "2.0");
    assert_eq!(state["capabilities"], json!(["GLM-4.1V"]));
    assert_eq!(state["glm4v_present"], true);
    assert!(state["downtime"]["beta"].is_object());
    assert!(state["downtime"].get("../etc").is_none(), "unknown names never reach the state");
    assert_eq!(r.component_state("beta")["state"], "downtime");
    assert!(r.component_state("beta")["last_error"].as_str().unwrap().contains("disk swap"));
    assert_eq!(r.component_state("alpha")["state"], "completed");
    let launched: Vec<Value> = events_of(&r, "launch");
    assert!(launched.iter().all(|e| e["component"] != "beta"), "a component in downtime was launched");
    assert_eq!(crown.brief()["current_status"], json!({"alpha": "pending", "beta": "pending"}));
}

#[test]
fn boot_aborts_before_any_launch_when_the_crown_fails_and_keeps_the_state() {
    let crown = Crown::start(Behavior::Silent);
    let r = root_with(json!({"url": crown.url(), "timeout": "500ms"}));
    r.write("logs/razar_state.json", "{\"phase\": \"stopped\", \"mission\": \"earlier\"}\n");
    let before = r.read("logs/razar_state.json");
    let out = r.run(&["boot"]);
    out.expect_code(3);
    assert!(out.stderr.contains("timed out"), "{}", out.stderr);
    assert!(events_of(&r, "launch").is_empty(), "a component started despite the failed handshake");
    assert!(!r.path("logs/components").exists());
    assert_eq!(r.read("logs/razar_state.json"), before, "the state file was changed");
}

#[test]
fn handshake_only_gates_ci_jobs() {
    let crown = Crown::reply(json!({"ack": "ok", "capabilities": ["GLM-4.1V", "review"]}));
    let r = root_with(json!({"url": crown.url()}));
    let out = r.run(&["boot", "--handshake-only", "--require-capability", "review"]);
    out.expect_code(0);
    assert!(out.stdout.contains("acknowledgement: ok"), "{}", out.stdout);
    assert!(events_of(&r, "launch").is_empty(), "--handshake-only launched a component");
    let out = r.run(&["boot", "--handshake-only", "--require-capability", "vision"]);
    out.expect_code(5);
    assert!(out.stderr.contains("vision"), "{}", out.stderr);

    let offline = root_with(json!({}));
    let out = offline.run(&["boot", "--handshake-only"]);
    out.expect_code(0);
    assert!(out.stderr.contains("offline"), "{}", out.stderr);
    assert!(out.stdout.contains("capabilities: GLM4V_OFFLINE"), "{}", out.stdout);
}

#[test]
fn a_signal_during_the_handshake_stops_razar_before_any_launch() {
    let crown = Crown::start(Behavior::Silent);
    let r = root_with(json!({"url": crown.url(), "timeout": "30s"}));
    let mut child = r.spawn(&["boot"]);
    crate::harness::wait_until("the brief to be sent", Duration::from_secs(10), || {
        crown.seen().iter().any(|s| s.frame.is_some()).then_some(())
    });
    let sent = std::time::Instant::now();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(143));
    assert!(sent.elapsed() < Duration::from_secs(5), "razar waited for the Crown instead of stopping");
    assert!(events_of(&r, "launch").is_empty());
}

#[test]
fn a_downtime_diff_that_verifies_is_promoted_and_its_component_launches() {
    let broken = "import sys\nx = 1 / 0\n";
    let fix = "--- a/svc/app.py\n+++ b/svc/app.py\n@@ -1,2 +1,2 @@\n import sys\n-x = 1 / 0\n+x = 1\n";
    let still_broken = "--- a/svc/app.py\n+++ b/svc/app.py\n@@ -1,2 +1,2 @@\n import sys\n-x = 1 / 0\n+x = 2 / 0\n";
    for (diff, launched) in [(fix, true), (still_broken, false)] {
        let crown = Crown::reply(json!({"ack": "CROWN-ACK", "capabilities": [],
            "downtime": {"api": {"description": "hotfix", "diff": diff, "tests": "python3 app.py"}}}));
        let r = Razar::new();
        r.write("svc/app.py", broken);
        r.config(json!({"components": [{"name": "api", "kind": "task", "command": "python3 app.py",
            "working_dir": "svc", "sources": ["svc"]}], "crown": {"url": crown.url()}}));
        let out = r.run(&["boot"]);
        let history = r.jsonl("logs/patch_history.jsonl");
        if launched {
            out.expect_code(0);
            assert_eq!(r.component_state("api")["state"], "completed", "{}", out.stderr);
            assert_eq!(r.read("svc/app.py"), "import sys\nx = 1\n");
            assert_eq!(history.len(), 1);
            assert_eq!(history[0]["agent"], "crown");
        } else {
            out.expect_code(0);
            assert_eq!(r.component_state("api")["state"], "downtime");
            let why = r.component_state("api")["last_error"].as_str().unwrap().to_owned();
            assert!(why.contains("hotfix") && why.contains("its diff failed its tests"), "{why}");
            assert_eq!(r.read("svc/app.py"), broken, "a diff that fails its tests changes nothing");
            assert!(history.is_empty());
        }
    }
}
