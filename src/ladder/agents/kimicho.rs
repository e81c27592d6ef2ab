//! `kimicho` (DESIGN §9.2): `POST {endpoint}` with `{prompt}`; the reply `{text}` holds the
//! diff, in a fenced block or as the whole text.

use serde_json::{Value, json};

use super::{Agent, AgentError, SYSTEM_PROMPT, Settings, Suggestion, fenced_diff, prose_before_fence};

/// The Kimi-cho prompt-in, text-out protocol.
pub struct Kimicho;

impl Agent for Kimicho {
    fn path(&self) -> &'static str {
        ""
    }

    fn request(&self, _settings: &Settings, context: &Value) -> Value {
        json!({"prompt": format!("{SYSTEM_PROMPT}\n\nFailure context:\n{context}\n")})
    }

    fn suggest(&self, body: &[u8]) -> Result<Suggestion, AgentError> {
        let reply = super::json(body)?;
        let text = reply.get("text").and_then(Value::as_str).ok_or_else(|| AgentError::BadReply("no `text`".into()))?;
        if let Some(patch) = fenced_diff(text) {
            return Ok(Suggestion { patch, summary: prose_before_fence(text), tests: Vec::new() });
        }
        let bare = text.trim();
        if bare.starts_with("--- ") || bare.starts_with("diff ") {
            return Ok(Suggestion { patch: format!("{bare}\n"), summary: None, tests: Vec::new() });
        }
        Err(AgentError::NoPatch("the text holds no diff".into()))
    }
}
