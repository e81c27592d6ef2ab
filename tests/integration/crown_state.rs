//! The handshake's outcome in `logs/razar_state.json` after `razar handshake` and
//! `razar boot --handshake-only` (DESIGN §5.6, §8): the handshake fields replaced, every other
//! field of the previous state kept; a failed handshake leaves the file's bytes as they were.

use serde_json::{Map, Value, json};

use crate::crown::{Behavior, Crown, launcher, root_with};
use crate::harness::Razar;

/// Top-level fields a handshake writes; everything else belongs to the last boot.
const HANDSHAKE_FIELDS: &[&str] = &["handshake", "capabilities", "downtime", "glm4v_present", "launched_models"];

/// A state as a finished boot leaves it, with a field from a newer razar.
fn previous_state() -> Value {
    json!({
        "version": 1,
        "mission": "earlier",
        "phase": "stopped",
        "boot_id": "1-2",
        "capabilities": ["old"],
        "components": [{"id": "alpha", "state": "completed", "attempts": 1, "restarts": 0}],
        "events": [{"event": "ready", "component": "alpha"}],
        "from_a_newer_razar": {"kept": true},
    })
}

fn write_previous(r: &Razar) -> String {
    let text = serde_json::to_string_pretty(&previous_state()).unwrap();
    r.write("logs/razar_state.json", &text);
    text
}

/// Asserts the state keeps every non-handshake field of [`previous_state`] and returns the
/// handshake fields.
#[track_caller]
fn handshake_fields(r: &Razar) -> Map<String, Value> {
    let state = r.json("logs/razar_state.json");
    let state = state.as_object().unwrap();
    for (k, v) in previous_state().as_object().unwrap() {
        if !HANDSHAKE_FIELDS.contains(&k.as_str()) {
            assert_eq!(&state[k], v, "{k} changed");
        }
    }
    state.iter().filter(|(k, _)| HANDSHAKE_FIELDS.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect()
}

#[track_caller]
fn assert_block(block: &Value, ack: &str, caps: Value, url: Option<&str>) {
    let mut keys: Vec<&str> = block.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut want = vec!["acknowledgement", "capabilities", "downtime", "timestamp", "url"];
    if block.get("crown_version").is_some() {
        want.push("crown_version");
        want.sort_unstable();
    }
    assert_eq!(keys, want, "{block}");
    assert_eq!(block["acknowledgement"], ack);
    assert_eq!(block["capabilities"], caps);
    assert!(block["timestamp"].as_f64().unwrap() > 1.7e9, "{block}");
    assert_eq!(block["url"], json!(url));
}

#[test]
fn acknowledged_handshake_is_recorded_with_the_previous_boot_kept() {
    let crown =
        Crown::reply(json!({"ack": "CROWN-ACK", "capabilities": ["GLM-4.1V", "review"], "crown_version": "2.1"}));
    // A query string (here a secret) never reaches the state file.
    let r = root_with(json!({"url": format!("{}?token=canary-q", crown.url())}));
    write_previous(&r);
    r.run(&["handshake"]).expect_code(0);
    let got = handshake_fields(&r);
    assert_block(&got["handshake"], "CROWN-ACK", json!(["GLM-4.1V", "review"]), Some(&crown.url()));
    assert_eq!(got["handshake"]["crown_version"], "2.1");
    assert_eq!(got["capabilities"], json!(["GLM-4.1V", "review"]));
    assert_eq!(got["downtime"], json!({}));
    assert_eq!(got["glm4v_present"], true);
    assert_eq!(got["launched_models"], json!([]));
    assert!(!r.read("logs/razar_state.json").contains("canary-q"));
}

#[test]
fn offline_handshake_is_recorded_as_offline() {
    let r = root_with(json!({}));
    write_previous(&r);
    r.run(&["boot", "--handshake-only"]).expect_code(0);
    let got = handshake_fields(&r);
    assert_block(&got["handshake"], "offline", json!(["GLM4V_OFFLINE"]), None);
    assert_eq!(got["capabilities"], json!(["GLM4V_OFFLINE"]));
    assert_eq!(got["glm4v_present"], true);
}

#[test]
fn crown_without_glm4v_records_the_launched_model() {
    let crown = Crown::reply(json!({"ack": "ok", "capabilities": ["review"]}));
    let r = root_with(json!({"url": crown.url(), "model_launcher": "launch_glm.sh"}));
    launcher(&r, "echo run >> launches.txt");
    write_previous(&r);
    r.run(&["boot", "--handshake-only"]).expect_code(0);
    assert_eq!(r.read("launches.txt"), "run\n", "the launcher ran once");
    let got = handshake_fields(&r);
    assert_block(&got["handshake"], "ok", json!(["review"]), Some(&crown.url()));
    assert_eq!(got["glm4v_present"], false);
    assert_eq!(got["launched_models"], json!(["GLM-4.1V"]));
}

#[test]
fn downtime_for_one_component_is_recorded() {
    let crown = Crown::reply(json!({
        "ack": "ok", "capabilities": ["GLM-4.1V"],
        "downtime": {"beta": {"description": "disk swap"}, "ghost": {"description": "not configured"}}
    }));
    let r = root_with(json!({"url": crown.url()}));
    write_previous(&r);
    r.run(&["handshake"]).expect_code(0);
    let got = handshake_fields(&r);
    assert_eq!(got["downtime"], json!({"beta": {"description": "disk swap"}}));
    assert_eq!(got["handshake"]["downtime"], got["downtime"]);
}

#[test]
fn without_a_state_file_a_handshake_state_is_written() {
    let crown = Crown::reply(json!({"ack": "ok", "capabilities": ["GLM-4.1V"]}));
    let r = root_with(json!({"url": crown.url()}));
    r.run(&["handshake"]).expect_code(0);
    let state = r.json("logs/razar_state.json");
    assert_eq!(state["phase"], "handshake");
    assert_eq!(state["components"], json!([]));
    assert_block(&state["handshake"], "ok", json!(["GLM-4.1V"]), Some(&crown.url()));
    let out = r.run(&["status", "--json"]);
    out.expect_code(0);
}

#[test]
fn a_missing_required_capability_still_records_what_the_crown_offered() {
    let crown = Crown::reply(json!({"ack": "ok", "capabilities": ["GLM-4.1V"]}));
    let r = root_with(json!({"url": crown.url()}));
    write_previous(&r);
    r.run(&["boot", "--handshake-only", "--require-capability", "vision"]).expect_code(5);
    assert_eq!(handshake_fields(&r)["capabilities"], json!(["GLM-4.1V"]));
}

#[test]
fn every_failed_handshake_leaves_the_state_bytes_as_they_were() {
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("ws://127.0.0.1:{}/", l.local_addr().unwrap().port())
    };
    let cases: Vec<(&str, Option<Crown>, Value)> = vec![
        ("not JSON", Some(Crown::start(Behavior::Reply("hello".into()))), json!({})),
        ("not an object", Some(Crown::start(Behavior::Reply("[1]".into()))), json!({})),
        ("closed", Some(Crown::start(Behavior::CloseFrame)), json!({})),
        (
            "oversized",
            Some(Crown::reply(json!({"ack": "ok", "pad": "x".repeat(4000)}))),
            json!({"max_reply_bytes": 256}),
        ),
        ("refused", None, json!({"url": refused})),
        ("silent", Some(Crown::start(Behavior::Silent)), json!({"timeout": "300ms"})),
    ];
    for (case, crown, mut settings) in cases {
        if let Some(c) = &crown {
            settings["url"] = json!(c.url());
        }
        for args in [&["handshake"][..], &["boot", "--handshake-only"][..]] {
            let r = root_with(settings.clone());
            let before = write_previous(&r);
            r.run(args).expect_code(3);
            assert_eq!(r.read("logs/razar_state.json"), before, "{case}: `razar {}` changed the state", args.join(" "));
        }
    }
}

#[test]
fn a_running_boot_keeps_the_state_file_to_itself() {
    let r = Razar::new();
    r.config(json!({"components": [{"name": "svc", "command": "echo ready; exec sleep 30", "health_check": {"log": "ready"}}]}));
    let mut child = r.spawn(&["boot", "--no-metrics"]);
    crate::harness::wait_until("ready", std::time::Duration::from_secs(20), || {
        (r.phase().as_deref() == Some("ready")).then_some(())
    });
    let before = r.read("logs/razar_state.json");
    let out = r.run(&["handshake"]);
    out.expect_code(0);
    assert!(out.stderr.contains("owns logs/razar_state.json"), "{}", out.stderr);
    assert_eq!(r.read("logs/razar_state.json"), before, "the running boot's state was rewritten");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(143));
}
