use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::ladder::tests::{reply, serve};

const CANARY: &str = "canary-2c8e41f0-round-token";
const DIFF: &str = "--- a/svc/app.py\n+++ b/svc/app.py\n@@ -1 +1 @@\n-print(1/0)\n+print(1)\n";

struct Root {
    _dir: tempfile::TempDir,
    root: PathBuf,
    sources: Vec<PathBuf>,
}

fn root() -> Root {
    let dir = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(dir.path()).unwrap();
    std::fs::create_dir_all(root.join("svc")).unwrap();
    std::fs::write(root.join("svc/app.py"), "print(1/0)\n").unwrap();
    std::fs::write(root.join("secret.txt"), "not for agents").unwrap();
    let sources = vec![root.join("svc")];
    Root { _dir: dir, root, sources }
}

fn chat(protocol: Protocol, endpoint: &Endpoint, secret: &Secret) -> Outcome {
    chat_with(protocol, endpoint, secret, None)
}

fn chat_with(protocol: Protocol, endpoint: &Endpoint, secret: &Secret, metrics: Option<&Metrics>) -> Outcome {
    let r = root();
    let spec = Spec {
        label: "fixer".into(),
        protocol,
        endpoint: Some(endpoint),
        secret: Some(secret),
        model: Some("m".into()),
        timeout: Duration::from_secs(10),
    };
    let target = Target { root: &r.root, component: "api", sources: &r.sources };
    let ctx = json!({"component": "api", "error": "ZeroDivisionError"});
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(run(&spec, &target, &ctx, metrics))
}

fn endpoint(url: &str) -> Endpoint {
    Endpoint::new(reqwest::Url::parse(&format!("{url}/v1")).unwrap(), None)
}

fn tool_calls(calls: Value) -> String {
    json!({"choices": [{"message": {"role": "assistant", "content": null, "tool_calls": calls}}]}).to_string()
}

fn read_call(id: &str, path: &str) -> Value {
    json!({"id": id, "type": "function", "function": {"name": "read_file", "arguments": json!({"path": path}).to_string()}})
}

fn submit() -> String {
    tool_calls(json!([{"id": "s", "type": "function", "function": {"name": "submit_patch",
        "arguments": json!({"patch": DIFF, "summary": "no division"}).to_string()}}]))
}

/// The JSON body of a recorded request.
fn body(request: &str) -> Value {
    serde_json::from_str(request.split_once("\r\n\r\n").unwrap().1).unwrap()
}

#[test]
fn read_file_is_answered_and_the_loop_ends_with_the_submitted_patch() {
    let first = tool_calls(json!([read_call("r1", "svc/app.py"), read_call("r2", "secret.txt")]));
    let server = serve(vec![reply("200 OK", "", &first), reply("200 OK", "", &submit())]);
    let secret = Secret::new(CANARY).unwrap();
    let out = chat(Protocol::OpenaiChat, &endpoint(&server.url), &secret);
    let s = out.result.unwrap();
    assert_eq!((s.patch.as_str(), s.summary.as_deref()), (DIFF, Some("no division")));
    assert_eq!((out.exchanges, out.reads.as_slice()), (2, &["svc/app.py".to_string(), "secret.txt".to_string()][..]));

    let requests = server.requests.lock().unwrap();
    assert_eq!(requests.len(), 2);
    for r in requests.iter() {
        let lower = r.to_ascii_lowercase();
        assert!(lower.starts_with("post /v1/chat/completions "), "{r}");
        assert!(lower.contains(&format!("authorization: bearer {CANARY}")));
    }
    let (one, two) = (body(&requests[0]), body(&requests[1]));
    let tools: Vec<&str> =
        one["tools"].as_array().unwrap().iter().map(|t| t["function"]["name"].as_str().unwrap()).collect();
    assert_eq!(tools, ["submit_patch", "read_file"]);
    let messages = two["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 5, "system, user, the assistant's calls and one answer per call");
    assert_eq!(&messages[..2], one["messages"].as_array().unwrap().as_slice(), "the conversation so far is kept");
    assert_eq!(messages[2]["role"], "assistant");
    assert_eq!(messages[2]["tool_calls"][0]["id"], "r1");
    assert_eq!(
        (messages[3]["role"].as_str(), messages[3]["tool_call_id"].as_str(), messages[3]["content"].as_str()),
        (Some("tool"), Some("r1"), Some("print(1/0)\n"))
    );
    let refused = messages[4]["content"].as_str().unwrap();
    assert!(refused.starts_with("error: ") && refused.contains("not under the component's `sources`"), "{refused}");
    assert!(!two.to_string().contains("not for agents"), "a file outside the sources never leaves");
    assert_eq!((two["model"].as_str(), two["tools"].clone()), (Some("m"), one["tools"].clone()));
}

#[test]
fn the_tool_loop_is_bounded_in_rounds() {
    let again = tool_calls(json!([read_call("r", "svc/app.py")]));
    let canned = (0..=MAX_TOOL_ROUNDS + 2).map(|_| reply("200 OK", "", &again)).collect();
    let server = serve(canned);
    let secret = Secret::new(CANARY).unwrap();
    let out = chat(Protocol::OpenaiChat, &endpoint(&server.url), &secret);
    match out.result {
        Err(Failure::Agent(AgentError::NoPatch(why))) => {
            assert_eq!(why, format!("still calling read_file after {MAX_TOOL_ROUNDS} answered tool rounds"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(out.exchanges, MAX_TOOL_ROUNDS + 1);
    assert_eq!(server.requests.lock().unwrap().len() as u32, MAX_TOOL_ROUNDS + 1);
}

#[test]
fn a_submit_patch_next_to_a_read_ends_the_loop_at_once() {
    let both = tool_calls(json!([read_call("r", "svc/app.py"), {"id": "s", "type": "function", "function": {
        "name": "submit_patch", "arguments": json!({"patch": DIFF}).to_string()}}]));
    let server = serve(vec![reply("200 OK", "", &both)]);
    let out = chat(Protocol::OpenaiChat, &endpoint(&server.url), &Secret::new(CANARY).unwrap());
    assert_eq!(out.result.unwrap().patch, DIFF);
    assert_eq!(out.exchanges, 1);
}

#[test]
fn other_http_protocols_make_one_request() {
    let vllm = json!({"choices": [{"text": format!("```diff\n{DIFF}```")}]}).to_string();
    let server = serve(vec![reply("200 OK", "", &vllm)]);
    let out = chat(Protocol::VllmCompletions, &endpoint(&server.url), &Secret::new(CANARY).unwrap());
    assert_eq!((out.result.unwrap().patch.as_str(), out.exchanges), (DIFF, 1));
    assert!(server.requests.lock().unwrap()[0].starts_with("POST /v1/completions "));
}

fn sample(rendered: &str, series: &str) -> Option<f64> {
    rendered.lines().find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
}

#[test]
fn rounds_move_the_agent_call_and_failure_series() {
    let metrics = Metrics::new();
    let secret = Secret::new(CANARY).unwrap();
    let ok = serve(vec![reply("200 OK", "", &submit())]);
    chat_with(Protocol::OpenaiChat, &endpoint(&ok.url), &secret, Some(&metrics)).result.unwrap();
    let failing = serve(vec![reply("500 Internal Server Error", "", ""), reply("503 Service Unavailable", "", "")]);
    let out = chat_with(Protocol::OpenaiChat, &endpoint(&failing.url), &secret, Some(&metrics));
    assert_eq!((out.retries, out.result.unwrap_err()), (1, Failure::Transport("HTTP 503 (after 1 retry)".into())));
    let text = metrics.render();
    assert_eq!(sample(&text, "razar_agent_call_duration_seconds_count{agent=\"fixer\"}"), Some(2.0), "{text}");
    assert_eq!(sample(&text, "razar_ai_invocation_failure_total{component=\"api\"}"), Some(1.0));
    // An unverified suggestion is not a success yet, and a transport retry is not a round.
    assert_eq!(sample(&text, "razar_ai_invocation_success_total{component=\"api\"}"), None);
    assert_eq!(sample(&text, "razar_ai_invocation_retries_total{component=\"api\"}"), None);
    assert!(!text.contains(CANARY));
}

/// A loopback Crown: records the upgrade's `Authorization` header and the frame, answers `reply`.
async fn crown_server(reply: String) -> (String, tokio::task::JoinHandle<(Option<String>, Value)>) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/crown", listener.local_addr().unwrap());
    let handle = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let auth = std::sync::Arc::new(std::sync::Mutex::new(None));
        let seen = std::sync::Arc::clone(&auth);
        #[expect(clippy::result_large_err, reason = "the signature of tungstenite's accept callback")]
        let callback = move |req: &Request, resp: Response| {
            *seen.lock().unwrap() =
                req.headers().get("authorization").map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
            Ok(resp)
        };
        let mut ws = tokio_tungstenite::accept_hdr_async(stream, callback).await.unwrap();
        let frame = loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => break serde_json::from_str(t.as_str()).unwrap(),
                Some(Ok(_)) => continue,
                other => panic!("no frame: {other:?}"),
            }
        };
        ws.send(Message::text(reply)).await.unwrap();
        while let Some(Ok(_)) = ws.next().await {}
        let auth = auth.lock().unwrap().clone();
        (auth, frame)
    });
    (url, handle)
}

fn crown_round(reply: Value) -> (Outcome, Option<String>, Value) {
    let r = root();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let (url, server) = crown_server(reply.to_string()).await;
        let endpoint = Endpoint::new(reqwest::Url::parse(&url).unwrap(), None);
        let secret = Secret::new(CANARY).unwrap();
        let spec = Spec {
            label: "crown".into(),
            protocol: Protocol::Crown,
            endpoint: Some(&endpoint),
            secret: Some(&secret),
            model: None,
            timeout: Duration::from_secs(10),
        };
        let target = Target { root: &r.root, component: "api", sources: &r.sources };
        let ctx = json!({"component": "api", "error": "ZeroDivisionError", "log_tail": ["Traceback", "boom"],
            "config": {"name": "api"}, "history": []});
        let out = run(&spec, &target, &ctx, None).await;
        let (auth, frame) = tokio::time::timeout(Duration::from_secs(10), server).await.unwrap().unwrap();
        (out, auth, frame)
    })
}

#[test]
fn crown_sends_a_repair_frame_and_reads_the_diff() {
    let (out, auth, frame) = crown_round(json!({"diff": DIFF, "summary": "guard the division"}));
    let s = out.result.unwrap();
    assert_eq!((s.patch.as_str(), s.summary.as_deref()), (DIFF, Some("guard the division")));
    assert_eq!(auth, Some(format!("Bearer {CANARY}")));
    assert_eq!(frame["type"], "repair");
    assert_eq!(frame["component"], "api");
    assert_eq!(frame["stack_trace"], "ZeroDivisionError\n\nlast log lines:\nTraceback\nboom");
    assert_eq!(frame["config_summary"], json!({"name": "api"}));
    assert_eq!(frame["history"], json!([]));
}

#[test]
fn a_crown_reply_without_a_patch_is_no_patch() {
    let (out, _, _) = crown_round(json!({"summary": "cannot help"}));
    assert!(matches!(out.result, Err(Failure::Agent(AgentError::NoPatch(_)))), "{:?}", out.result);
}

#[test]
fn an_unreachable_crown_is_a_transport_failure_naming_the_roster_url() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = reqwest::Url::parse(&format!("ws://127.0.0.1:{port}/crown?key=hidden")).unwrap();
    let endpoint = Endpoint::new(url, Some("${CROWN_REPAIR_URL}"));
    let r = root();
    let spec = Spec {
        label: "crown".into(),
        protocol: Protocol::Crown,
        endpoint: Some(&endpoint),
        secret: None,
        model: None,
        timeout: Duration::from_secs(5),
    };
    let target = Target { root: &r.root, component: "api", sources: &r.sources };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let out = rt.block_on(run(&spec, &target, &json!({"component": "api"}), None));
    let Err(Failure::Transport(detail)) = out.result else { panic!("{:?}", out.result) };
    assert!(detail.contains("${CROWN_REPAIR_URL}") && detail.contains("refused"), "{detail}");
    assert!(!detail.contains("hidden") && !detail.contains(&port.to_string()), "{detail}");
}
