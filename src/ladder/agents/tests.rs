use serde_json::{Value, json};

use super::openai_chat::OpenaiChat;
use super::vllm_completions::VllmCompletions;
use super::*;

const DIFF: &str = "--- a/app.py\n+++ b/app.py\n@@ -1 +1 @@\n-print(1/0)\n+print(1)\n";

fn settings() -> Settings {
    Settings { model: "m".into(), temperature: 0.2, max_tokens: 4096 }
}

fn ctx() -> Value {
    json!({"component": "api", "error": "boom"})
}

#[test]
fn openai_patch_from_a_submit_patch_tool_call() {
    let args = json!({"patch": DIFF, "summary": "divide by one", "tests": ["pytest"]}).to_string();
    let reply = json!({"choices": [{"message": {"role": "assistant", "content": null, "tool_calls": [
        {"id": "1", "type": "function", "function": {"name": "submit_patch", "arguments": args}}]}}]});
    let s = OpenaiChat.suggest(reply.to_string().as_bytes()).unwrap();
    assert_eq!(
        s,
        Suggestion { patch: DIFF.into(), summary: Some("divide by one".into()), tests: vec!["pytest".into()] }
    );
}

#[test]
fn openai_patch_from_a_fenced_diff_in_content() {
    let content = format!("The division fails.\n```diff\n{DIFF}```\nDone.");
    let reply = json!({"choices": [{"message": {"role": "assistant", "content": content}}]});
    let s = OpenaiChat.suggest(reply.to_string().as_bytes()).unwrap();
    assert_eq!(s.patch, DIFF);
    assert_eq!(s.summary.as_deref(), Some("The division fails."));
}

#[test]
fn openai_without_patch_is_no_patch_and_garbage_is_bad_reply() {
    let reply = json!({"choices": [{"message": {"content": "I cannot help."}}]});
    assert!(matches!(OpenaiChat.suggest(reply.to_string().as_bytes()), Err(AgentError::NoPatch(_))));
    assert!(matches!(OpenaiChat.suggest(b"<html>"), Err(AgentError::BadReply(_))));
    assert!(matches!(OpenaiChat.suggest(b"{}"), Err(AgentError::BadReply(_))));
}

#[test]
fn vllm_patch_from_tool_call_block_or_fenced_diff() {
    let call = json!({"name": "submit_patch", "arguments": {"patch": DIFF, "summary": "fix"}});
    let text = format!("<think>hm</think><tool_call>{call}</tool_call><|im_end|>");
    let s = VllmCompletions.suggest(json!({"choices": [{"text": text}]}).to_string().as_bytes()).unwrap();
    assert_eq!((s.patch.as_str(), s.summary.as_deref()), (DIFF, Some("fix")));
    let text = format!("```diff\n{DIFF}```");
    let s = VllmCompletions.suggest(json!({"choices": [{"text": text}]}).to_string().as_bytes()).unwrap();
    assert_eq!(s.patch, DIFF);
    let none = json!({"choices": [{"text": "<answer>42</answer>"}]});
    assert!(matches!(VllmCompletions.suggest(none.to_string().as_bytes()), Err(AgentError::NoPatch(_))));
}

#[test]
fn requests_carry_the_documented_fields() {
    let r = OpenaiChat.request(&settings(), &ctx());
    assert_eq!(r["messages"][0]["role"], "system");
    assert_eq!(r["messages"][1]["content"].as_str().unwrap(), ctx().to_string());
    assert_eq!(r["tools"][0]["function"]["name"], "submit_patch");
    assert_eq!(r["tools"][0]["function"]["parameters"]["required"], json!(["patch"]));
    let r = VllmCompletions.request(&settings(), &ctx());
    assert!(r["prompt"].as_str().unwrap().contains(&ctx().to_string()));
    assert_eq!(
        (r["skip_special_tokens"].clone(), r["include_stop_str_in_output"].clone()),
        (json!(false), json!(true))
    );
}

/// Every top-level key of the upstream request (and the JSON type of its value, where the
/// upstream and razar agree on one) is present in razar's request.
fn assert_same_shape(name: &str, ours: &Value, upstream: &Value, differing_types: &[&str]) {
    let (Some(ours), Some(theirs)) = (ours.as_object(), upstream.as_object()) else { panic!("{name}: not objects") };
    for (key, value) in theirs {
        let mine = ours.get(key).unwrap_or_else(|| panic!("{name}: razar's request lacks `{key}`"));
        if !differing_types.contains(&key.as_str()) {
            assert_eq!(kind(mine), kind(value), "{name}: `{key}` has another JSON type");
        }
    }
    for key in ours.keys() {
        assert!(theirs.contains_key(key), "{name}: razar sends `{key}`, which the upstream request lacks");
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[test]
fn request_shapes_match_the_upstream_fixtures() {
    let test = "ladder::agents::request_shapes_match_the_upstream_fixtures";
    let Some(dir) = crate::testutil::upstream(test, "tests/integration/remote_agents") else { return };
    let read = |f: &str| -> Value { serde_json::from_str(&std::fs::read_to_string(dir.join(f)).unwrap()).unwrap() };
    let kimi = read("kimi_k2_completion.json");
    let ours = OpenaiChat.request(&settings(), &ctx());
    assert_same_shape("openai-chat", &ours, &kimi["request"], &[]);
    let tool = &kimi["request"]["tools"][0];
    assert_eq!(kind(&ours["tools"][0]["function"]["parameters"]), kind(&tool["function"]["parameters"]));
    assert_eq!(ours["tools"][0]["type"], tool["type"]);
    // The upstream rStar request sends token ids; razar sends text, which vLLM also accepts.
    let rstar = read("rstar_completion.json");
    assert_same_shape(
        "vllm-completions",
        &VllmCompletions.request(&settings(), &ctx()),
        &rstar["request"],
        &["prompt"],
    );
}

/// Random bytes and mangled replies never panic either parser.
#[test]
fn parsers_never_panic_on_garbage() {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let pieces: [&[u8]; 14] = [
        b"{",
        b"}",
        b"\"",
        b"```",
        b"```diff\n",
        b"<tool_call>",
        b"</tool_call>",
        b"choices",
        b"[",
        b"]",
        b"\xff\xfe",
        b"\n",
        b"message",
        "é".as_bytes(),
    ];
    for _ in 0..3000 {
        let mut body = Vec::new();
        for _ in 0..(next() % 24) {
            if next() % 3 == 0 {
                body.push(next() as u8);
            } else {
                body.extend_from_slice(pieces[(next() % pieces.len() as u64) as usize]);
            }
        }
        let _ = OpenaiChat.suggest(&body);
        let _ = VllmCompletions.suggest(&body);
        let _ = super::patch_service::PatchService.suggest(&body);
        let _ = super::kimicho::Kimicho.suggest(&body);
        if let Ok(text) = std::str::from_utf8(&body) {
            let _ = fenced_diff(text);
            let wrapped =
                json!({"choices": [{"text": text, "message": {"content": text}}], "text": text, "patch": text})
                    .to_string();
            let _ = OpenaiChat.suggest(wrapped.as_bytes());
            let _ = VllmCompletions.suggest(wrapped.as_bytes());
            let _ = super::patch_service::PatchService.suggest(wrapped.as_bytes());
            let _ = super::kimicho::Kimicho.suggest(wrapped.as_bytes());
        }
    }
}
