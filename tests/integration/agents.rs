//! `razar agents check` and the roster part of `razar validate`, through the real binary.
//! Agents are loopback servers bound to port 0 that record what they receive. Every test with
//! a secret uses a canary value and checks it never reaches razar's stdout or stderr.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::harness::{Razar, Run};

/// Variables the roster reads that must not leak in from the developer's shell.
const AGENT_VARS: &[&str] = &[
    "KIMI2_API_KEY",
    "KIMI2_ENDPOINT",
    "AIRSTAR_API_KEY",
    "AIRSTAR_ENDPOINT",
    "RSTAR_API_KEY",
    "RSTAR_ENDPOINT",
    "DEMO_AGENT_API_KEY",
    "DEMO_AGENT_TOKEN",
    "BACKUP_AGENT_API_KEY",
    "BACKUP_AGENT_TOKEN",
    "GUARDED_API_KEY",
    "GUARDED_TOKEN",
    "KIMI_K2_URL",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
];

const CANARY: &str = "canary-7c1d0e5f-token";

/// A roster in the upstream shape: two agents with file credentials, three from `${VAR}`s.
const LADDER_ROSTER: &str = include_str!("../fixtures/upstream-format/razar_ai_agents.json");

/// Runs razar with the agent variables scrubbed and `env` set.
fn run(r: &Razar, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = r.command(args);
    for k in AGENT_VARS {
        cmd.env_remove(k);
    }
    cmd.envs(env.iter().copied());
    let out = cmd.output().expect("run razar");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[track_caller]
fn assert_no_canary(out: &Run) {
    assert!(!out.stdout.contains(CANARY), "canary on stdout:\n{}", out.stdout);
    assert!(!out.stderr.contains(CANARY), "canary on stderr:\n{}", out.stderr);
}

fn by_name<'a>(items: &'a Value, name: &str) -> &'a Value {
    items.as_array().unwrap().iter().find(|a| a["name"] == name).unwrap_or_else(|| panic!("{name} in {items:#}"))
}

/// A loopback agent: answers 200 to `GET …/models`, 401 to anything under `/reject`, 200
/// otherwise, and records each request's head.
struct Agent {
    addr: String,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Agent {
    fn start() -> Agent {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { continue };
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&head).into_owned();
                let path = text.split_whitespace().nth(1).unwrap_or_default().to_owned();
                seen.lock().unwrap().push(text);
                let (status, body) = if path.starts_with("/reject") {
                    ("401 Unauthorized", r#"{"error":"bad key"}"#)
                } else {
                    ("200 OK", r#"{"object":"list","data":[]}"#)
                };
                let reply = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(reply.as_bytes());
            }
        });
        Agent { addr, requests }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

#[test]
fn an_upstream_shaped_roster_without_env_reports_each_agent_and_its_variables() {
    let r = Razar::new();
    r.write("config/razar_ai_agents.json", LADDER_ROSTER);
    let out = run(&r, &["agents", "check"], &[]);
    out.expect_code(2);
    for want in [
        "agents[2].endpoint: environment variable KIMI2_ENDPOINT is not set (agent kimi2)",
        "agents[2].auth: Environment variable KIMI2_API_KEY is required for agent kimi2",
        "agents[3].auth: Environment variable AIRSTAR_API_KEY is required for agent airstar",
        "agents[4].endpoint: environment variable RSTAR_ENDPOINT is not set (agent rstar)",
        "agents[4].auth: Environment variable RSTAR_API_KEY is required for agent rstar",
    ] {
        assert!(out.stdout.contains(want), "missing {want:?} in:\n{}", out.stdout);
    }
    let lines: Vec<&str> = out.stdout.lines().filter(|l| !l.starts_with("    ")).collect();
    assert_eq!(lines.len(), 5, "one line per agent:\n{}", out.stdout);
    assert!(lines[0].starts_with("* demo_agent") && lines[0].contains("file auth.token") && lines[0].ends_with("ok"));
    assert!(lines[2].contains("kimi2") && lines[2].contains("missing") && lines[2].ends_with("2 problems"));
    assert!(out.stderr.contains("3 of 5 agents"), "{}", out.stderr);

    let out = run(&r, &["agents", "check", "--json"], &[]);
    out.expect_code(2);
    let items: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(items.as_array().unwrap().len(), 5);
    let demo = by_name(&items, "demo_agent");
    assert_eq!(demo["ok"], true);
    assert_eq!(demo["active"], true);
    assert_eq!(demo["credential"]["source"], "file");
    assert!(demo["warnings"][0].as_str().unwrap().contains("secrets belong in the environment"));
    let rstar = by_name(&items, "rstar");
    assert_eq!(rstar["ok"], false);
    assert_eq!(rstar["protocol"], "vllm-completions");
    assert_eq!(rstar["credential"]["source"], "missing");
    let fields: Vec<&str> =
        rstar["problems"].as_array().unwrap().iter().map(|p| p["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["agents[4].endpoint", "agents[4].auth"]);
    assert_eq!(rstar["remote"], Value::Null);
}

#[test]
fn an_upstream_shaped_roster_with_env_resolves_and_never_prints_the_secrets() {
    let r = Razar::new();
    r.write("config/razar_ai_agents.json", LADDER_ROSTER);
    let env = [
        ("KIMI2_ENDPOINT", "http://127.0.0.1:9/v1"),
        ("AIRSTAR_ENDPOINT", "http://localhost:9/v1?key=canary-7c1d0e5f-token"),
        ("RSTAR_ENDPOINT", "https://user:canary-7c1d0e5f-token@rstar.example/v1"),
        ("KIMI2_API_KEY", CANARY),
        ("AIRSTAR_API_KEY", CANARY),
        ("RSTAR_API_KEY", CANARY),
        ("DEMO_AGENT_API_KEY", CANARY),
    ];
    let out = run(&r, &["agents", "check"], &env);
    out.expect_code(0);
    assert_no_canary(&out);
    assert!(out.stdout.contains("env DEMO_AGENT_API_KEY"), "the env value overrides the file:\n{}", out.stdout);
    // Endpoints built from `${VAR}` are shown as written, never expanded (DESIGN §12).
    assert!(out.stdout.contains(" ${AIRSTAR_ENDPOINT} "), "shown unexpanded:\n{}", out.stdout);
    assert!(out.stdout.contains(" ${RSTAR_ENDPOINT} "), "shown unexpanded:\n{}", out.stdout);
    assert!(!out.stdout.contains("rstar.example"), "an expanded value was printed:\n{}", out.stdout);

    let out = run(&r, &["agents", "check", "--json"], &env);
    out.expect_code(0);
    assert_no_canary(&out);
    let items: Value = serde_json::from_str(&out.stdout).unwrap();
    assert!(items.as_array().unwrap().iter().all(|a| a["ok"] == true), "{items:#}");
    assert_eq!(
        by_name(&items, "kimi2")["credential"],
        json!({"source": "env", "variable": "KIMI2_API_KEY", "field": null})
    );

    r.config(json!({"components": [{"name": "a", "command": ["true"]}]}));
    let out = run(&r, &["-v", "validate"], &env);
    out.expect_code(0);
    assert_no_canary(&out);
    assert!(out.stdout.contains("config/razar_ai_agents.json: ok (5 agents, active demo_agent)"), "{}", out.stdout);
}

#[test]
fn include_remote_probes_with_the_credential_and_reports_rejection() {
    let agent = Agent::start();
    let r = Razar::new();
    r.write(
        "config/razar_ai_agents.json",
        &json!({"active": "KIMI2", "agents": [
            {
                "name": "kimi2",
                "endpoint": format!("http://{}/v1", agent.addr),
                "auth": {"type": "bearer", "token": "${KIMI2_API_KEY}"}
            },
            {
                "name": "guarded",
                "endpoint": format!("http://{}/reject", agent.addr),
                "auth": {"type": "api_key", "key": "${GUARDED_SECRET}"}
            }
        ]})
        .to_string(),
    );
    let env = [("KIMI2_API_KEY", CANARY), ("GUARDED_SECRET", CANARY)];
    // At the most verbose log level too: the HTTP stack's own tracing must not carry the token.
    let out = run(&r, &["-vvv", "agents", "check", "--include-remote"], &env);
    out.expect_code(2);
    assert_no_canary(&out);
    let kimi = out.stdout.lines().find(|l| l.contains("kimi2")).unwrap();
    assert!(kimi.starts_with("* ") && kimi.contains("reachable (HTTP 200 from GET /models,"), "{}", out.stdout);
    let guarded = out.stdout.lines().find(|l| l.contains("guarded")).unwrap();
    assert!(guarded.contains("env GUARDED_SECRET"), "{guarded}");
    assert!(guarded.contains("credentials rejected (HTTP 401 from HEAD,"), "{guarded}");
    assert!(out.stderr.contains("1 agent failed the remote probe"), "{}", out.stderr);

    let requests = agent.requests();
    let models = requests.iter().find(|r| r.starts_with("GET /v1/models ")).expect("GET /v1/models");
    let lower = models.to_lowercase();
    assert!(lower.contains(&format!("authorization: bearer {CANARY}")), "{models}");
    assert!(lower.contains(&format!("x-api-key: {CANARY}")), "{models}");
    let head = requests.iter().find(|r| r.starts_with("HEAD /reject ")).expect("HEAD /reject");
    assert!(head.to_lowercase().contains(&format!("x-api-key: {CANARY}")), "{head}");

    let out = run(&r, &["agents", "check", "--include-remote", "--json"], &env);
    out.expect_code(2);
    assert_no_canary(&out);
    let items: Value = serde_json::from_str(&out.stdout).unwrap();
    let kimi = by_name(&items, "kimi2");
    assert_eq!(kimi["remote"]["outcome"], "reachable");
    assert!(kimi["remote"]["latency_ms"].is_u64());
    assert_eq!(by_name(&items, "guarded")["remote"]["outcome"], "credentials_rejected");
    assert_eq!(by_name(&items, "guarded")["ok"], false);
}

#[test]
fn include_remote_passes_when_every_agent_answers_and_skips_broken_ones() {
    let agent = Agent::start();
    let bin = tempfile::tempdir().unwrap();
    let fake = bin.path().join("opencode");
    std::fs::write(&fake, "#!/bin/sh\necho 9.9.9\n").unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let crown = TcpListener::bind("127.0.0.1:0").unwrap();
    let r = Razar::new();
    let roster = json!({"agents": [
        {
            "name": "rstar",
            "endpoint": format!("http://{}/v1", agent.addr),
            "auth": {"type": "bearer", "token": "${RSTAR_API_KEY}"}
        },
        {"name": "crown", "endpoint": format!("ws://{}/", crown.local_addr().unwrap())},
        {"name": "opencode"}
    ]});
    r.write("config/razar_ai_agents.json", &roster.to_string());
    let path = format!("{}:{}", bin.path().display(), std::env::var("PATH").unwrap_or_default());
    let env = [("RSTAR_API_KEY", CANARY), ("PATH", path.as_str())];
    let out = run(&r, &["agents", "check", "--include-remote", "--json"], &env);
    out.expect_code(0);
    assert_no_canary(&out);
    let items: Value = serde_json::from_str(&out.stdout).unwrap();
    for a in items.as_array().unwrap() {
        assert_eq!(a["remote"]["outcome"], "reachable", "{a:#}");
    }
    assert_eq!(by_name(&items, "opencode")["remote"]["detail"], "opencode 9.9.9");
    assert_eq!(by_name(&items, "crown")["credential"]["source"], "none");

    let mut broken = roster.clone();
    broken["agents"][0]["auth"]["token"] = json!("${UNSET_FOR_TEST}");
    r.write("config/razar_ai_agents.json", &broken.to_string());
    let out = run(&r, &["agents", "check", "--include-remote", "--json"], &[("PATH", path.as_str())]);
    out.expect_code(2);
    let items: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(by_name(&items, "rstar")["remote"]["outcome"], "skipped");
    assert_eq!(by_name(&items, "crown")["remote"]["outcome"], "reachable");
}

#[test]
fn a_missing_roster_is_a_config_error() {
    let r = Razar::new();
    let out = run(&r, &["agents", "check"], &[]);
    out.expect_code(2);
    assert!(out.stderr.contains("config/razar_ai_agents.json: not found"), "{}", out.stderr);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
}

#[test]
fn validate_reports_roster_problems_with_file_and_field() {
    let r = Razar::new();
    r.config(json!({"components": [{"name": "a", "command": ["true"]}]}));
    r.write(
        "config/razar_ai_agents.json",
        &json!({"active": "kimi3", "agents": [
            {"name": "demo", "endpoint": "https://example.com/api", "auth": {"type": "bearer", "token": "${DEMO_SECRET}"}},
            {"name": "backup", "endpoint": "http://backup.example/api", "auth": {"type": "bearr", "key": CANARY}}
        ]})
        .to_string(),
    );
    let out = run(&r, &["validate"], &[("DEMO_SECRET", CANARY)]);
    out.expect_code(2);
    assert_no_canary(&out);
    for want in [
        "config/razar_ai_agents.json: agents[1].auth.type: unknown variant `bearr`",
        "config/razar_ai_agents.json: agents[1].endpoint: \"http://backup.example/api\" is plain http://",
        "config/razar_ai_agents.json: active: `kimi3` names no agent",
    ] {
        assert!(out.stderr.contains(want), "missing {want:?} in:\n{}", out.stderr);
    }
    assert!(out.stdout.is_empty(), "errors go to stderr only");

    r.write(
        "config/razar_ai_agents.json",
        &json!({"agents": [{"name": "demo", "endpoint": "https://example.com/api", "auth": {"type": "bearer", "token": CANARY}}]})
            .to_string(),
    );
    let out = run(&r, &["validate"], &[]);
    out.expect_code(0);
    assert_no_canary(&out);
    assert!(out.stdout.contains("config/razar_ai_agents.json: ok (1 agent, active demo)"), "{}", out.stdout);
    assert!(out.stderr.contains("secrets belong in the environment"), "{}", out.stderr);
}

#[test]
fn schema_includes_the_roster() {
    let r = Razar::new();
    let out = run(&r, &["schema", "razar_ai_agents"], &[]);
    out.expect_code(0);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert!(v["properties"]["agents"].is_object(), "{v:#}");
    assert_eq!(v["additionalProperties"], false);
}
