//! Serde mirror of `config/razar_ai_agents.json`, exactly as operators write it. Every struct
//! denies unknown fields; `schemas/razar_ai_agents.schema.json` is generated from these types.
//! Nothing outside `roster/` sees them: `resolve` turns them into [`super::Agent`]s.

use std::fmt;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::config::duration::DurationSpec;

/// The agent roster: the repair agents in escalation order.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "razar agent roster")]
pub struct RawRoster {
    /// Name of the agent that handles the next repair round (default: the first agent).
    /// Matched case-insensitively.
    pub active: Option<String>,
    /// The agents; array order is the escalation chain.
    pub agents: Option<Vec<RawAgent>>,
}

/// One repair agent.
#[derive(Default, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAgent {
    /// Unique name (case-insensitive). Also picks the credential variables
    /// (`<NAME>_API_KEY`, `<NAME>_TOKEN`) and, without `protocol`, the protocol.
    pub name: Option<String>,
    /// `http(s)://` URL (`ws(s)://` for the `crown` protocol; unused by `opencode`).
    /// `${VAR}` expands from the environment.
    pub endpoint: Option<String>,
    /// Credential settings. An environment variable overrides the value in the file.
    pub auth: Option<RawAuth>,
    /// Wire protocol; inferred from the name when absent.
    pub protocol: Option<Protocol>,
    /// Model name sent to `openai-chat` and `vllm-completions` servers.
    pub model: Option<String>,
    /// Per-request timeout (default 60 s).
    pub timeout: Option<DurationSpec>,
    /// Allow a plain `http://` (or `ws://`) endpoint on a non-loopback host.
    pub allow_insecure: Option<bool>,
}

/// How the agent authenticates. Whatever the type, HTTP agents receive the credential as
/// `Authorization: Bearer <token>` and `X-API-Key: <token>`.
#[derive(Default, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    /// `bearer` (the secret is `token`) or `api_key` (the secret is `key`).
    #[serde(rename = "type")]
    pub kind: Option<AuthType>,
    /// Secret for `type: bearer`. Prefer `"${VAR}"` or the agent's environment variable to a
    /// literal value.
    pub token: Option<String>,
    /// Secret for `type: api_key`. Prefer `"${VAR}"` or the agent's environment variable to a
    /// literal value.
    pub key: Option<String>,
}

// Hand-written `Debug`s: an endpoint's userinfo and query, and `token` / `key`, may be secrets.
impl fmt::Debug for RawAgent {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.debug_struct("RawAgent")
            .field("name", &self.name)
            .field("endpoint", &self.endpoint.as_deref().map(super::redact_url_text))
            .field("auth", &self.auth)
            .field("protocol", &self.protocol)
            .field("model", &self.model)
            .field("timeout", &self.timeout)
            .field("allow_insecure", &self.allow_insecure)
            .finish()
    }
}

impl fmt::Debug for RawAuth {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let hide = |v: &Option<String>| v.as_ref().map(|_| "***");
        f.debug_struct("RawAuth")
            .field("type", &self.kind)
            .field("token", &hide(&self.token))
            .field("key", &hide(&self.key))
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthType {
    Bearer,
    ApiKey,
}

impl AuthType {
    /// The field of `auth` that holds the secret for this type.
    pub fn field(self) -> &'static str {
        match self {
            AuthType::Bearer => "token",
            AuthType::ApiKey => "key",
        }
    }
}

/// The wire protocol an agent speaks; without `protocol`, inferred from the agent's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// OpenAI-compatible `POST {endpoint}/chat/completions` (Kimi K2, AirStar, vLLM, Ollama…).
    OpenaiChat,
    /// vLLM `POST {endpoint}/completions` with a text prompt (rStar).
    VllmCompletions,
    /// The upstream patch service: POST the failure context, reply `{patch}`.
    PatchService,
    /// A `repair` frame on the Crown WebSocket.
    Crown,
    /// `POST {prompt}` to Kimi-cho, reply `{text}`.
    Kimicho,
    /// The local `opencode` CLI in a sandbox copy.
    Opencode,
}

impl Protocol {
    pub const ALL: [Protocol; 6] = [
        Protocol::OpenaiChat,
        Protocol::VllmCompletions,
        Protocol::PatchService,
        Protocol::Crown,
        Protocol::Kimicho,
        Protocol::Opencode,
    ];

    /// The name as written in the roster.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::OpenaiChat => "openai-chat",
            Protocol::VllmCompletions => "vllm-completions",
            Protocol::PatchService => "patch-service",
            Protocol::Crown => "crown",
            Protocol::Kimicho => "kimicho",
            Protocol::Opencode => "opencode",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_secrets_and_url_credentials() {
        let agent: RawAgent = serde_json::from_value(serde_json::json!({
            "name": "demo",
            "endpoint": "https://user:pw-canary@h.example/v1?key=q-canary",
            "auth": {"type": "bearer", "token": "tok-canary", "key": "key-canary"}
        }))
        .unwrap();
        let text = format!("{agent:?}");
        assert!(!text.contains("canary"), "{text}");
        assert!(text.contains("https://***@h.example/v1?…"), "{text}");
    }
}
