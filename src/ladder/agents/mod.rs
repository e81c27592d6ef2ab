//! One module per protocol behind [`Agent`]: build the request body from the failure context,
//! turn the reply body into a [`Suggestion`]. A new protocol is one new file.

pub mod crown;
pub mod kimicho;
pub mod openai_chat;
pub mod opencode;
pub mod patch_service;
pub mod vllm_completions;

use std::fmt;

use serde_json::Value;

use crate::ladder::tools::Tools;

/// What an agent proposes: a unified diff, with an optional summary and the tests it suggests.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Suggestion {
    pub patch: String,
    pub summary: Option<String>,
    pub tests: Vec<String>,
}

/// Why a round produced no suggestion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentError {
    /// The agent answered well-formed but offered no patch.
    NoPatch(String),
    /// The reply was not what the protocol promises (not JSON, missing fields).
    BadReply(String),
}

impl fmt::Display for AgentError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            AgentError::NoPatch(why) => write!(f, "the agent offered no patch: {why}"),
            AgentError::BadReply(why) => write!(f, "the agent's reply is unusable: {why}"),
        }
    }
}

/// Model settings a request carries.
#[derive(Debug, Clone)]
pub struct Settings {
    pub model: String,
    pub temperature: f64,
    pub max_tokens: u32,
}

/// A protocol: where to POST, what to send, how to read the answer.
pub trait Agent: Sync {
    /// The path joined to the endpoint (`chat/completions`); empty: the endpoint itself.
    fn path(&self) -> &'static str;
    /// True when the credential also travels in the body as `auth_token` (the upstream
    /// patch-service contract), besides the headers every agent gets.
    fn token_in_body(&self) -> bool {
        false
    }
    /// The request body for one round over `context` (the failure context JSON).
    fn request(&self, settings: &Settings, context: &Value) -> Value;
    /// The suggestion in a reply body.
    fn suggest(&self, body: &[u8]) -> Result<Suggestion, AgentError>;
    /// The tool loop: when `reply` (to `request`) asks for tools razar answers, the next
    /// request, `request` with the reply and `tools`' answers appended. `None`: `reply` is
    /// final and [`Agent::suggest`] reads it. The caller bounds the rounds
    /// ([`crate::ladder::tools::MAX_TOOL_ROUNDS`]).
    fn follow_up(&self, _request: &Value, _reply: &[u8], _tools: &mut Tools) -> Option<Value> {
        None
    }
}

/// The instructions every chat-style agent gets before the failure context.
pub const SYSTEM_PROMPT: &str = "You repair a failing service component managed by razar. \
You receive the failure context as JSON: the error, exit status, last log lines, last probe \
output, the component's configuration and the contents of the source files you may change. \
Answer with one unified diff (paths relative to the component's root, only files listed in \
`sources`) through the submit_patch tool, or, if tools are unavailable, in a ```diff fenced block.";

/// The `submit_patch` tool's argument schema.
pub fn submit_patch_parameters() -> Value {
    serde_json::json!({
        "type": "object",
        "required": ["patch"],
        "properties": {
            "patch": {"type": "string", "description": "A unified diff of the fix."},
            "summary": {"type": "string", "description": "One or two sentences on the cause and the fix."},
            "tests": {"type": "array", "items": {"type": "string"}, "description": "Commands that show the fix works."}
        }
    })
}

/// A suggestion from `submit_patch` arguments (`{patch, summary?, tests?}`).
pub fn from_arguments(args: &Value) -> Result<Suggestion, AgentError> {
    let patch = args.get("patch").and_then(Value::as_str).map(str::trim).unwrap_or_default();
    if patch.is_empty() {
        return Err(AgentError::NoPatch("submit_patch carried no `patch`".into()));
    }
    let summary = args.get("summary").and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty());
    let tests = match args.get("tests") {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        Some(Value::String(one)) => vec![one.clone()],
        _ => Vec::new(),
    };
    Ok(Suggestion { patch: with_newline(patch), summary: summary.map(str::to_string), tests })
}

/// The first ```diff (or ```patch) fenced block in `text`, if any.
pub fn fenced_diff(text: &str) -> Option<String> {
    let mut rest = text;
    while let Some(start) = rest.find("```") {
        let after = &rest[start + 3..];
        let line_end = after.find('\n')?;
        let lang = after[..line_end].trim();
        let body = &after[line_end + 1..];
        let end = body.find("```").unwrap_or(body.len());
        let block = body[..end].trim_end();
        let looks_like_diff = block.contains("\n+++ ") || block.starts_with("--- ") || block.starts_with("diff ");
        if (lang == "diff" || lang == "patch" || (lang.is_empty() && looks_like_diff)) && !block.trim().is_empty() {
            return Some(with_newline(block));
        }
        if end == body.len() {
            return None;
        }
        rest = &body[end + 3..];
    }
    None
}

/// A fenced diff's surrounding prose, as a summary: the text before the fence, trimmed.
pub fn prose_before_fence(text: &str) -> Option<String> {
    let before = text.split("```").next().unwrap_or_default().trim();
    (!before.is_empty()).then(|| before.chars().take(2000).collect())
}

fn with_newline(patch: &str) -> String {
    let mut p = patch.to_string();
    if !p.ends_with('\n') {
        p.push('\n');
    }
    p
}

/// Parse a reply body as JSON.
pub fn json(body: &[u8]) -> Result<Value, AgentError> {
    serde_json::from_slice(body).map_err(|e| AgentError::BadReply(format!("not JSON ({e})")))
}

#[cfg(test)]
mod tests;
