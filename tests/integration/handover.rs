//! `razar handover --dry-run` against loopback agent servers that record every request.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::Razar;

pub(crate) const CANARY: &str = "canary-5b1e7c93-handover-token";
pub(crate) const DIFF: &str = "--- a/svc/app.py\n+++ b/svc/app.py\n@@ -1 +1 @@\n-print(1/0)\n+print(1)\n";

/// What the server does with each connection, in order (the last one repeats).
#[derive(Clone)]
pub(crate) enum Answer {
    Json(u16, Value),
    Hang,
    /// These bytes as the whole reply.
    Raw(String),
    /// `200` declaring and streaming this many bytes of JSON-ish filler.
    Huge(usize),
}

pub(crate) struct Agent {
    pub(crate) url: String,
    pub(crate) requests: Arc<Mutex<Vec<(String, Value)>>>,
    /// Bytes the `Huge` answer got into the socket before the client stopped reading.
    written: Arc<AtomicUsize>,
}

pub(crate) fn agent(answers: Vec<Answer>) -> Agent {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let requests = Arc::new(Mutex::new(Vec::new()));
    let written = Arc::new(AtomicUsize::new(0));
    let (seen, count) = (Arc::clone(&requests), Arc::clone(&written));
    std::thread::spawn(move || {
        let mut held: Vec<TcpStream> = Vec::new();
        for i in 0.. {
            let Ok((stream, _)) = listener.accept() else { return };
            let answer = answers[i.min(answers.len() - 1)].clone();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let (mut head, mut length) = (String::new(), 0usize);
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                head.push_str(&line);
            }
            let mut body = vec![0u8; length];
            let _ = reader.read_exact(&mut body);
            seen.lock().unwrap().push((head, serde_json::from_slice(&body).unwrap_or(Value::Null)));
            let mut s = stream;
            match answer {
                Answer::Json(status, v) => {
                    let b = v.to_string();
                    let _ = write!(
                        s,
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{b}",
                        b.len()
                    );
                }
                Answer::Hang => held.push(s),
                Answer::Raw(bytes) => {
                    let _ = s.write_all(bytes.as_bytes());
                }
                Answer::Huge(n) => {
                    let _ = write!(s, "HTTP/1.1 200 OK\r\ncontent-length: {n}\r\nconnection: close\r\n\r\n");
                    let chunk = vec![b' '; 64 * 1024];
                    let mut sent = 0;
                    while sent < n {
                        match s.write(&chunk) {
                            Ok(k) if k > 0 => sent += k,
                            _ => break,
                        }
                        count.store(sent, Ordering::SeqCst);
                    }
                }
            }
        }
    });
    Agent { url, requests, written }
}

pub(crate) fn root(agent_url: &str, protocol: &str, timeout: u64) -> Razar {
    let mut r = Razar::new();
    r.env("FIXER_API_KEY", CANARY);
    r.write("svc/app.py", "print(1/0)\n");
    r.write("logs/components/api.log", &(1..=60).map(|i| format!("log line {i}\n")).collect::<String>());
    r.config(
        json!({"components": [{"name": "api", "command": "python3 app.py", "working_dir": "svc", "sources": ["svc"]}]}),
    );
    let roster = json!({"agents": [{"name": "fixer", "endpoint": agent_url, "protocol": protocol, "model": "m", "timeout": timeout}]});
    r.write("config/razar_ai_agents.json", &roster.to_string());
    r
}

pub(crate) fn tool_call_reply() -> Value {
    let args = json!({"patch": DIFF, "summary": "stop dividing by zero"}).to_string();
    json!({"choices": [{"message": {"role": "assistant", "content": null, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "submit_patch", "arguments": args}}]}}]})
}

/// Nothing razar wrote under the root, nor its output, holds the canary.
pub(crate) fn assert_no_canary(r: &Razar, out: &crate::harness::Run) {
    assert!(!out.stdout.contains(CANARY) && !out.stderr.contains(CANARY));
    let files = r.snapshot("");
    assert!(files.iter().any(|(p, _)| p.ends_with("razar_ai_invocations.json")), "the snapshot covers logs/");
    for (path, bytes) in files {
        assert!(!String::from_utf8_lossy(&bytes).contains(CANARY), "{} holds the canary", path.display());
    }
}

pub(crate) fn journal(r: &Razar) -> Vec<Value> {
    r.jsonl("logs/razar_ai_invocations.json")
}

#[test]
fn every_protocol_and_reply_form_yields_the_same_diff() {
    let fenced = json!({"choices": [{"message": {"content": format!("Cause: 1/0.\n```diff\n{DIFF}```")}}]});
    let vllm = json!({"choices": [{"text": format!("<tool_call>{}</tool_call>", json!({"name": "submit_patch", "arguments": {"patch": DIFF}}))}]});
    for (protocol, reply, path) in [
        ("openai-chat", tool_call_reply(), "POST /v1/chat/completions "),
        ("openai-chat", fenced, "POST /v1/chat/completions "),
        ("vllm-completions", vllm, "POST /v1/completions "),
        ("patch-service", json!([{"summary": "no patch here"}, {"patch": DIFF, "summary": "fix"}]), "POST /v1 "),
        ("kimicho", json!({"text": DIFF}), "POST /v1 "),
    ] {
        let server = agent(vec![Answer::Json(200, reply)]);
        let r = root(&server.url, protocol, 10);
        let before = r.read("svc/app.py");
        let out = r.run(&["handover", "api", "--dry-run", "--error", "ZeroDivisionError", "--json"]);
        out.expect_code(0);
        let printed: Value = serde_json::from_str(out.stdout.trim()).unwrap();
        assert_eq!((printed["agent"].as_str(), printed["patch"].as_str()), (Some("fixer"), Some(DIFF)), "{protocol}");
        assert_eq!(r.read("svc/app.py"), before, "no source file changes");
        let saved = r.path(printed["saved"].as_str().unwrap());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&saved).unwrap().permissions().mode() & 0o777, 0o600);
        let requests = server.requests.lock().unwrap();
        assert_eq!(requests.len(), 1);
        let (head, body) = &requests[0];
        assert!(head.starts_with(path), "{head}");
        let lower = head.to_ascii_lowercase();
        assert!(
            lower.contains(&format!("authorization: bearer {CANARY}"))
                && lower.contains(&format!("x-api-key: {CANARY}"))
        );
        // Only the upstream patch-service contract carries the token in the body too.
        assert_eq!(body.get("auth_token").and_then(Value::as_str), (protocol == "patch-service").then_some(CANARY));
        let sent = body.to_string();
        for needle in ["print(1/0)", "log line 60", "log line 11", "ZeroDivisionError"] {
            assert!(sent.contains(needle), "{protocol}: request lacks {needle}");
        }
        assert!(!sent.contains("log line 10\\n") && !sent.contains("\"log line 10\""), "only the last 50 lines");
        let rounds = journal(&r);
        assert_eq!(rounds.len(), 1);
        assert_eq!(
            (rounds[0]["status"].as_str(), rounds[0]["event"].as_str(), rounds[0]["agent"].as_str()),
            (Some("success"), Some("attempt"), Some("fixer"))
        );
        assert_no_canary(&r, &out);
    }
}

#[test]
fn text_output_shows_agent_summary_and_diff() {
    let server = agent(vec![Answer::Json(200, tool_call_reply())]);
    let r = root(&server.url, "openai-chat", 10);
    let out = r.run(&["handover", "api", "--dry-run"]);
    out.expect_code(0);
    assert!(
        out.stdout.contains("agent: fixer") && out.stdout.contains("summary: stop dividing by zero"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains(DIFF.trim_end()));
}

#[test]
fn a_500_twice_is_an_agent_error_after_exactly_two_requests() {
    let server = agent(vec![Answer::Json(500, json!({}))]);
    let r = root(&server.url, "openai-chat", 10);
    let out = r.run(&["handover", "api", "--dry-run"]);
    out.expect_code(13);
    assert!(out.stderr.contains("HTTP 500"), "{}", out.stderr);
    assert_eq!(server.requests.lock().unwrap().len(), 2);
    assert_eq!(journal(&r)[0]["status"], "failure");
    assert_no_canary(&r, &out);
}

#[test]
fn a_reply_without_patch_exits_12() {
    let server = agent(vec![Answer::Json(200, json!({"choices": [{"message": {"content": "no idea"}}]}))]);
    let r = root(&server.url, "openai-chat", 10);
    r.run(&["handover", "api", "--dry-run"]).expect_code(12);
    assert_eq!(journal(&r)[0]["patched"], false);
}

#[test]
fn a_silent_agent_is_an_agent_error_within_its_timeout() {
    let server = agent(vec![Answer::Hang]);
    let r = root(&server.url, "openai-chat", 1);
    let started = Instant::now();
    let out = r.run(&["handover", "api", "--dry-run"]);
    out.expect_code(13);
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    assert!(out.stderr.contains("no complete reply within 1 s"), "{}", out.stderr);
}

#[test]
fn a_50_mb_body_is_refused_while_reading() {
    let server = agent(vec![Answer::Huge(50 * 1024 * 1024)]);
    let r = root(&server.url, "openai-chat", 30);
    let out = r.run(&["handover", "api", "--dry-run"]);
    out.expect_code(13);
    assert!(out.stderr.contains("reply larger than 4194304 bytes"), "{}", out.stderr);
    // razar refused on the declared length and stopped reading: the server got far less than
    // the 50 MB into the socket (kernel buffers only).
    let written = server.written.load(Ordering::SeqCst);
    assert!(written < 20 * 1024 * 1024, "{written} bytes were taken from the agent");
}

#[test]
fn usage_errors_exit_2() {
    let server = agent(vec![Answer::Json(200, tool_call_reply())]);
    let mut r = root(&server.url, "openai-chat", 10);
    r.run(&["handover", "nope", "--dry-run"]).expect_code(2);
    r.run(&["handover", "api", "--dry-run", "--agent", "ghost"]).expect_code(2);
    r.env("FIXER_API_KEY", "");
    let out = r.run(&["handover", "api", "--dry-run"]);
    out.expect_code(2);
    assert!(out.stderr.contains("FIXER_API_KEY"), "{}", out.stderr);
    assert!(server.requests.lock().unwrap().is_empty(), "no usage error reaches the agent");
}

/// The vLLM, Ollama and llama.cpp examples of docs/agents.md resolve as written.
#[test]
fn the_documented_openai_compatible_examples_resolve() {
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/agents.md")).unwrap();
    let section = docs.split("## Pointing razar at any OpenAI-compatible server").nth(1).unwrap();
    let section = section.split("\n## ").next().unwrap();
    let examples: Vec<&str> = section.split("```json\n").skip(1).map(|b| b.split("```").next().unwrap()).collect();
    assert_eq!(examples.len(), 3);
    for example in examples {
        let mut r = Razar::new();
        for var in ["LOCAL_VLLM_API_KEY", "OLLAMA_API_KEY", "LLAMACPP_API_KEY"] {
            r.env(var, "unused");
        }
        r.write("config/razar_ai_agents.json", example);
        let out = r.run(&["agents", "check", "--json"]);
        out.expect_code(0);
        assert!(out.stdout.contains("openai-chat"), "{}", out.stdout);
    }
}

#[test]
fn garbage_and_a_redirect_elsewhere_are_agent_errors_journaled_as_failures() {
    let garbage = "HTTP/1.1 200 OK\r\ncontent-length: 9\r\nconnection: close\r\n\r\n<html>!!!".to_string();
    let redirect =
        "HTTP/1.1 307 Temporary Redirect\r\nlocation: http://localhost:9/steal\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            .to_string();
    for (answer, says) in [(garbage, "not JSON"), (redirect, "redirect to another host refused")] {
        let server = agent(vec![Answer::Raw(answer)]);
        let r = root(&server.url, "openai-chat", 10);
        let out = r.run(&["handover", "api", "--dry-run"]);
        out.expect_code(13);
        assert!(out.stderr.contains(says), "{}", out.stderr);
        assert_eq!(server.requests.lock().unwrap().len(), 1);
        assert_eq!(journal(&r)[0]["status"], "failure");
        assert!(!r.path("logs/suggestions").exists(), "no suggestion saved");
        assert_no_canary(&r, &out);
    }
}

#[test]
fn a_context_file_reaches_the_agent() {
    let server = agent(vec![Answer::Json(200, tool_call_reply())]);
    let r = root(&server.url, "openai-chat", 10);
    r.write("notes.txt", "the database moved to port 5433");
    r.run(&["handover", "api", "--dry-run", "--context", "notes.txt"]).expect_code(0);
    let (_, body) = &server.requests.lock().unwrap()[0];
    assert!(body.to_string().contains("the database moved to port 5433"));
    r.run(&["handover", "api", "--dry-run", "--context", "missing.txt"]).expect_code(2);
}

#[test]
fn the_ladder_climbs_after_the_threshold_and_stops_at_the_last_agent() {
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://127.0.0.1:{}/v1", l.local_addr().unwrap().port())
    };
    let mut r = root(&closed, "openai-chat", 2);
    // Keys, spacing and an unknown top-level key that must survive byte for byte.
    let roster = format!(
        "{{\n  \"note\": \"kept as written\",\n  \"active\": \"a\",\n  \"agents\": [\n    \
         {{\"name\": \"a\", \"endpoint\": \"{closed}\", \"protocol\": \"openai-chat\", \"timeout\": 2}},\n    \
         {{\"name\": \"b\", \"endpoint\": \"{closed}\", \"protocol\": \"openai-chat\", \"timeout\": 2}},\n    \
         {{\"name\": \"c\", \"endpoint\": \"{closed}\", \"protocol\": \"openai-chat\", \"timeout\": 2}}\n  ]\n}}\n"
    );
    r.write("config/razar_ai_agents.json", &roster);
    for var in ["A_API_KEY", "B_API_KEY", "C_API_KEY"] {
        r.env(var, CANARY);
    }
    r.env("RAZAR_RSTAR_THRESHOLD", "2");
    r.env("RAZAR_ESCALATION_WARNING_THRESHOLD", "2");
    let mut actives = Vec::new();
    for _ in 0..7 {
        r.run(&["handover", "api", "--dry-run"]).expect_code(13);
        actives.push(r.json("config/razar_ai_agents.json")["active"].as_str().unwrap().to_owned());
    }
    let records = journal(&r);
    let rounds: Vec<&str> =
        records.iter().filter(|e| e["event"] == "attempt").map(|e| e["agent"].as_str().unwrap()).collect();
    assert_eq!(rounds, ["a", "a", "b", "b", "c", "c", "c"]);
    let climbs: Vec<(&str, &str)> = records
        .iter()
        .filter(|e| e["event"] == "escalation")
        .map(|e| (e["agent_original"].as_str().unwrap(), e["agent"].as_str().unwrap()))
        .collect();
    assert_eq!(climbs, [("a", "b"), ("b", "c")], "no wrap-around past the last agent");
    assert_eq!(actives, ["a", "b", "b", "c", "c", "c", "c"]);
    // The second escalation reached the warning threshold: one alert.
    let alerts: Vec<Value> = std::fs::read_dir(r.path("monitoring/alerts"))
        .unwrap()
        .map(|e| serde_json::from_str(&std::fs::read_to_string(e.unwrap().path()).unwrap()).unwrap())
        .collect();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["severity"], "warning");
    assert_eq!(alerts[0]["context"]["escalations"], 2);
    assert_eq!(r.read("config/razar_ai_agents.json"), roster.replace("\"active\": \"a\"", "\"active\": \"c\""));
}
