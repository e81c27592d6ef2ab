//! The control socket's wire format: one JSON request line in, one JSON response line out,
//! then the connection closes. Versioned by the `v` field (absent = 1).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A request to the running boot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// The live state snapshot (the same object as `logs/razar_state.json`).
    Status,
    /// Stop the component (if running) and start it again now.
    Restart { component: String },
    /// Stop the component and keep it stopped until `start`.
    Stop { component: String },
    /// Start a stopped, failed or blocked component.
    Start { component: String },
    /// Re-read `quarantine/`: stop newly quarantined components, start released ones.
    QuarantineReload,
}

/// The answer to one request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    /// Human-readable outcome or error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// For `status`: the state snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<Value>,
}

impl Response {
    pub fn ok(message: impl Into<String>) -> Self {
        Response { ok: true, message: Some(message.into()), state: None }
    }

    pub fn error(message: impl Into<String>) -> Self {
        Response { ok: false, message: Some(message.into()), state: None }
    }

    pub fn state(state: Value) -> Self {
        Response { ok: true, message: None, state: Some(state) }
    }
}

/// A request on its way to the dispatcher, with where to send the answer.
#[derive(Debug)]
pub struct Envelope {
    pub request: Request,
    pub reply: tokio::sync::oneshot::Sender<Response>,
}
