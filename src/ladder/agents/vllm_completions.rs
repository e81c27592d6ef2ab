//! `vllm-completions` (DESIGN §9.2): `POST {endpoint}/completions` with a text prompt and the
//! special tokens kept. The patch comes from a `<tool_call>{json}</tool_call>` block or a
//! fenced diff in `choices[0].text`.

use serde_json::{Value, json};

use super::{Agent, AgentError, SYSTEM_PROMPT, Settings, Suggestion, fenced_diff, from_arguments, prose_before_fence};

/// The vLLM text-completions protocol.
pub struct VllmCompletions;

/// The prompt: instructions, the tool's schema, the failure context.
pub fn prompt(context: &Value) -> String {
    format!(
        "{SYSTEM_PROMPT}\n\nTo submit, write <tool_call>{{\"name\": \"submit_patch\", \"arguments\": \
         {{\"patch\": \"...\", \"summary\": \"...\", \"tests\": [\"...\"]}}}}</tool_call>.\n\
         Tool parameters: {}\n\nFailure context:\n{context}\n",
        super::submit_patch_parameters()
    )
}

impl Agent for VllmCompletions {
    fn path(&self) -> &'static str {
        "completions"
    }

    fn request(&self, settings: &Settings, context: &Value) -> Value {
        json!({
            "model": settings.model,
            "prompt": prompt(context),
            "temperature": settings.temperature,
            "max_tokens": settings.max_tokens,
            "skip_special_tokens": false,
            "include_stop_str_in_output": true,
        })
    }

    fn suggest(&self, body: &[u8]) -> Result<Suggestion, AgentError> {
        let reply = super::json(body)?;
        let text = reply
            .pointer("/choices/0/text")
            .and_then(Value::as_str)
            .ok_or_else(|| AgentError::BadReply("no `choices[0].text`".into()))?;
        let mut last_err = None;
        let mut rest = text;
        while let Some(start) = rest.find("<tool_call>") {
            let after = &rest[start + "<tool_call>".len()..];
            let end = after.find("</tool_call>").unwrap_or(after.len());
            match serde_json::from_str::<Value>(after[..end].trim()) {
                Ok(call) => {
                    let name = call.get("name").and_then(Value::as_str).unwrap_or("submit_patch");
                    if name == "submit_patch" {
                        let args = match call.get("arguments") {
                            Some(Value::String(s)) => serde_json::from_str(s).unwrap_or(Value::Null),
                            Some(v) => v.clone(),
                            None => call.clone(),
                        };
                        match from_arguments(&args) {
                            Ok(s) => return Ok(s),
                            Err(e) => last_err = Some(e),
                        }
                    }
                }
                Err(e) => last_err = Some(AgentError::BadReply(format!("<tool_call> is not JSON ({e})"))),
            }
            rest = after.get(end..).unwrap_or_default();
            if rest.is_empty() {
                break;
            }
        }
        if let Some(patch) = fenced_diff(text) {
            return Ok(Suggestion { patch, summary: prose_before_fence(text), tests: Vec::new() });
        }
        Err(last_err
            .unwrap_or_else(|| AgentError::NoPatch("neither a <tool_call> block nor a fenced diff in the text".into())))
    }
}
