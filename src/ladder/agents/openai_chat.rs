//! `openai-chat` (DESIGN §9.2): `POST {endpoint}/chat/completions` with a system prompt, the
//! failure context and the `submit_patch` and `read_file` tools. The patch comes from a
//! `submit_patch` tool call (`arguments` is a JSON string) or, failing that, a fenced diff in
//! `message.content`. A reply that instead calls `read_file` gets the file (the tool loop,
//! [`crate::ladder::tools`]): razar appends the assistant message and one `tool` message per
//! call and asks again.

use serde_json::{Value, json};

use super::{Agent, AgentError, SYSTEM_PROMPT, Settings, Suggestion, fenced_diff, from_arguments, prose_before_fence};
use crate::ladder::tools::{MAX_CALLS_PER_ROUND, MAX_TOOL_ROUNDS, READ_FILE, Tools, read_file_parameters};

/// The OpenAI chat-completions protocol.
pub struct OpenaiChat;

impl Agent for OpenaiChat {
    fn path(&self) -> &'static str {
        "chat/completions"
    }

    fn request(&self, settings: &Settings, context: &Value) -> Value {
        json!({
            "model": settings.model,
            "messages": [
                {"role": "system", "content": system_prompt()},
                {"role": "user", "content": context.to_string()},
            ],
            "tools": [{
                "type": "function",
                "function": {
                    "name": "submit_patch",
                    "description": "Submit a unified diff that fixes the failing component.",
                    "parameters": super::submit_patch_parameters(),
                }
            }, {
                "type": "function",
                "function": {
                    "name": READ_FILE,
                    "description": "Read one file under the component's `sources` in full (up to 64 KiB).",
                    "parameters": read_file_parameters(),
                }
            }],
            "temperature": settings.temperature,
            "max_tokens": settings.max_tokens,
        })
    }

    fn follow_up(&self, request: &Value, reply: &[u8], tools: &mut Tools) -> Option<Value> {
        let reply: Value = serde_json::from_slice(reply).ok()?;
        let message = reply.pointer("/choices/0/message")?;
        let calls = message.get("tool_calls")?.as_array()?;
        let name = |c: &Value| c.pointer("/function/name").and_then(Value::as_str).map(str::to_owned);
        if !calls.iter().any(|c| name(c).as_deref() == Some(READ_FILE)) {
            return None;
        }
        if self.suggest(&serde_json::to_vec(&reply).ok()?).is_ok() {
            // A usable patch alongside a read: the patch wins, the round is over.
            return None;
        }
        // Every call gets an id (servers match answers to calls by it).
        let calls: Vec<Value> = calls
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut c = c.clone();
                if c.get("id").and_then(Value::as_str).is_none_or(str::is_empty)
                    && let Some(obj) = c.as_object_mut()
                {
                    obj.insert("id".into(), Value::String(format!("razar_call_{i}")));
                }
                c
            })
            .collect();
        let mut next = request.clone();
        let messages = next.get_mut("messages")?.as_array_mut()?;
        messages.push(json!({
            "role": "assistant",
            "content": message.get("content").cloned().unwrap_or(Value::Null),
            "tool_calls": calls,
        }));
        for (i, call) in calls.iter().enumerate() {
            let called = name(call).unwrap_or_default();
            let arguments = call.pointer("/function/arguments").cloned().unwrap_or(Value::Null);
            let answer = if i >= MAX_CALLS_PER_ROUND {
                format!("error: at most {MAX_CALLS_PER_ROUND} tool calls are answered per reply")
            } else if called == "submit_patch" {
                let reason = submit_error(&arguments);
                format!("error: the patch was not accepted ({reason}); call submit_patch again")
            } else {
                tools.call(&called, &arguments)
            };
            messages.push(json!({"role": "tool", "tool_call_id": call["id"], "content": answer}));
        }
        Some(next)
    }

    fn suggest(&self, body: &[u8]) -> Result<Suggestion, AgentError> {
        let reply = super::json(body)?;
        let message = reply
            .pointer("/choices/0/message")
            .ok_or_else(|| AgentError::BadReply("no `choices[0].message`".into()))?;
        let mut last_err = None;
        if let Some(Value::Array(calls)) = message.get("tool_calls") {
            for call in calls {
                let Some(function) = call.get("function") else { continue };
                if function.get("name").and_then(Value::as_str) != Some("submit_patch") {
                    continue;
                }
                let args = match function.get("arguments") {
                    Some(Value::String(text)) => match serde_json::from_str::<Value>(text) {
                        Ok(v) => v,
                        Err(e) => {
                            last_err = Some(AgentError::BadReply(format!("submit_patch arguments are not JSON ({e})")));
                            continue;
                        }
                    },
                    Some(obj @ Value::Object(_)) => obj.clone(),
                    _ => continue,
                };
                match from_arguments(&args) {
                    Ok(s) => return Ok(s),
                    Err(e) => last_err = Some(e),
                }
            }
        }
        let content = message.get("content").and_then(Value::as_str).unwrap_or_default();
        if let Some(patch) = fenced_diff(content) {
            return Ok(Suggestion { patch, summary: prose_before_fence(content), tests: Vec::new() });
        }
        Err(last_err.unwrap_or_else(|| {
            AgentError::NoPatch("neither a submit_patch call nor a fenced diff in the reply".into())
        }))
    }
}

/// The system prompt: the shared instructions and the `read_file` tool with its bound.
pub fn system_prompt() -> String {
    format!(
        "{SYSTEM_PROMPT} When a file's content in the context is truncated or you need it in full, call \
         read_file with its path (only files under `sources`; at most {MAX_TOOL_ROUNDS} replies may call it, \
         then submit)."
    )
}

/// Why `submit_patch` arguments were not usable.
fn submit_error(arguments: &Value) -> String {
    let args = match arguments {
        Value::String(text) => match serde_json::from_str::<Value>(text) {
            Ok(v) => v,
            Err(e) => return format!("arguments are not JSON: {e}"),
        },
        other => other.clone(),
    };
    match from_arguments(&args) {
        Ok(_) => "no reason".into(),
        Err(e) => e.to_string(),
    }
}
