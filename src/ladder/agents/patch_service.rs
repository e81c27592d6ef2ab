//! `patch-service` (DESIGN §9.2, the upstream contract): `POST {endpoint}` with the failure
//! context JSON itself (`{component, error, history, …}`) plus `auth_token`; the reply is
//! `{patch, summary?, tests?}` or a list of them (the first with a patch is taken).

use serde_json::Value;

use super::{Agent, AgentError, Settings, Suggestion, from_arguments};

/// The upstream patch-service protocol.
pub struct PatchService;

impl Agent for PatchService {
    fn path(&self) -> &'static str {
        ""
    }

    fn request(&self, _settings: &Settings, context: &Value) -> Value {
        context.clone()
    }

    fn token_in_body(&self) -> bool {
        true
    }

    fn suggest(&self, body: &[u8]) -> Result<Suggestion, AgentError> {
        match super::json(body)? {
            Value::Array(items) => {
                let mut last = AgentError::NoPatch("an empty list of suggestions".into());
                for item in &items {
                    match from_arguments(item) {
                        Ok(s) => return Ok(s),
                        Err(e) => last = e,
                    }
                }
                Err(last)
            }
            obj @ Value::Object(_) => from_arguments(&obj),
            other => Err(AgentError::BadReply(format!("expected an object or a list, found {}", kind(&other)))),
        }
    }
}

fn kind(v: &Value) -> &'static str {
    crate::config::load::type_name(v)
}
