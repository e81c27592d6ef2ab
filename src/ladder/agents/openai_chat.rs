//! `openai-chat` (DESIGN §9.2): `POST {endpoint}/chat/completions` with a system prompt, the
//! failure context and the `submit_patch` tool. The patch comes from a `submit_patch` tool call
//! (`arguments` is a JSON string) or, failing that, a fenced diff in `message.content`.

use serde_json::{Value, json};

use super::{Agent, AgentError, SYSTEM_PROMPT, Settings, Suggestion, fenced_diff, from_arguments, prose_before_fence};

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
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": context.to_string()},
            ],
            "tools": [{
                "type": "function",
                "function": {
                    "name": "submit_patch",
                    "description": "Submit a unified diff that fixes the failing component.",
                    "parameters": super::submit_patch_parameters(),
                }
            }],
            "temperature": settings.temperature,
            "max_tokens": settings.max_tokens,
        })
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
