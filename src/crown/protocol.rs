//! The messages exchanged with the Crown (DESIGN §8): the reply razar accepts, parsed leniently
//! where the upstream servers differ (`ack` as a string or a boolean, missing lists are empty),
//! strictly where a wrong type would make the reply meaningless.
//!
//! The brief itself is an open JSON object (operators add fields with `--brief`), so it is a
//! `serde_json::Value` built by [`super::brief::build_brief`]; [`Brief`] names its fixed part.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The fixed part of a mission brief; `--brief` fields are merged on top of it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Brief {
    /// Component name → position in the launch order (0 first).
    pub priority_map: BTreeMap<String, usize>,
    /// Component name → its state in the last state file (`pending` when unknown).
    pub current_status: BTreeMap<String, String>,
    pub open_issues: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mission: Option<String>,
}

/// `ack` as sent by the Crown: upstream servers send a string (`"CROWN-ACK"`) or a boolean.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ack {
    Text(String),
    Flag(bool),
}

impl Ack {
    /// The acknowledgement to record, or `None` when the Crown declined the brief (`false`,
    /// an empty string, or a negative word such as `"nack"`).
    pub fn acknowledgement(&self) -> Option<String> {
        const NEGATIVE: &[&str] = &["false", "no", "nack", "reject", "rejected", "denied", "error", "fail", "failed"];
        match self {
            Ack::Flag(true) => Some("ack".to_owned()),
            Ack::Flag(false) => None,
            Ack::Text(s) => {
                let t = s.trim();
                (!t.is_empty() && !NEGATIVE.iter().any(|n| t.eq_ignore_ascii_case(n))).then(|| t.to_owned())
            }
        }
    }
}

impl<'de> Deserialize<'de> for Ack {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct AckVisitor;
        impl Visitor<'_> for AckVisitor {
            type Value = Ack;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a boolean")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Ack, E> {
                Ok(Ack::Flag(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Ack, E> {
                Ok(Ack::Text(v.to_owned()))
            }
        }
        d.deserialize_any(AckVisitor)
    }
}

/// One `downtime` entry: the named component is not launched this boot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DowntimeEntry {
    #[serde(default, deserialize_with = "null_as_default")]
    pub description: String,
    /// A unified diff to run through the repair pipeline before launching.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    /// Commands that verify the diff; a single string is one command.
    #[serde(default, deserialize_with = "one_or_many", skip_serializing_if = "Vec::is_empty")]
    pub tests: Vec<String>,
}

/// A downtime entry as sent: an object, or just its description.
#[derive(Debug, Clone)]
struct WireDowntime(DowntimeEntry);

impl<'de> Deserialize<'de> for WireDowntime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(description) => Ok(WireDowntime(DowntimeEntry { description, ..Default::default() })),
            Value::Null => Ok(WireDowntime(DowntimeEntry::default())),
            v @ Value::Object(_) => serde_json::from_value(v).map(WireDowntime).map_err(de::Error::custom),
            other => Err(de::Error::custom(format!(
                "a downtime entry must be an object {{description, diff?, tests?}}, not {}",
                json_kind(&other)
            ))),
        }
    }
}

/// The Crown's reply to a mission brief.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// `None`: the reply had no `ack` field.
    pub ack: Option<Ack>,
    pub capabilities: Vec<String>,
    /// Raw component name (not yet checked against the config) → entry.
    pub downtime: BTreeMap<String, DowntimeEntry>,
    pub crown_version: Option<String>,
}

#[derive(Deserialize)]
struct WireReply {
    #[serde(default)]
    ack: Option<Ack>,
    #[serde(default, deserialize_with = "null_as_default")]
    capabilities: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    downtime: BTreeMap<String, WireDowntime>,
    #[serde(default, deserialize_with = "scalar_string")]
    crown_version: Option<String>,
}

/// The reply object had a field of the wrong type.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct MalformedReply(pub String);

impl Reply {
    /// Parses a reply object. Unknown fields are ignored (the Crown may send more).
    pub fn from_object(obj: &Map<String, Value>) -> Result<Reply, MalformedReply> {
        let wire: WireReply =
            serde_json::from_value(Value::Object(obj.clone())).map_err(|e| MalformedReply(e.to_string()))?;
        Ok(Reply {
            ack: wire.ack,
            capabilities: wire.capabilities,
            downtime: wire.downtime.into_iter().map(|(k, v)| (k, v.0)).collect(),
            crown_version: wire.crown_version,
        })
    }
}

/// `"object"`, `"array"`, … for messages about a JSON value of the wrong kind.
pub fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(Vec::new()),
        Value::String(s) => Ok(vec![s]),
        Value::Array(items) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                other => Err(de::Error::custom(format!("tests must be strings, not {}", json_kind(&other)))),
            })
            .collect(),
        other => {
            Err(de::Error::custom(format!("tests must be a string or a list of strings, not {}", json_kind(&other))))
        }
    }
}

fn scalar_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s)),
        Value::Number(n) => Ok(Some(n.to_string())),
        other => Err(de::Error::custom(format!("crown_version must be a string, not {}", json_kind(&other)))),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(v: Value) -> Result<Reply, MalformedReply> {
        Reply::from_object(v.as_object().unwrap())
    }

    #[test]
    fn ack_is_a_string_or_a_boolean() {
        let r = parse(json!({"ack": "CROWN-ACK", "capabilities": ["GLM-4.1V"]})).unwrap();
        assert_eq!(r.ack.unwrap().acknowledgement().as_deref(), Some("CROWN-ACK"));
        let r = parse(json!({"ack": true})).unwrap();
        assert_eq!(r.ack.unwrap().acknowledgement().as_deref(), Some("ack"));
        for declined in [json!(false), json!(""), json!("NACK"), json!(" rejected ")] {
            let r = parse(json!({"ack": declined})).unwrap();
            assert_eq!(r.ack.unwrap().acknowledgement(), None);
        }
        assert!(parse(json!({"ack": 1})).unwrap_err().0.contains("a string or a boolean"));
    }

    #[test]
    fn missing_lists_are_empty_and_unknown_fields_ignored() {
        let r = parse(json!({"ack": "ok", "extra": {"x": 1}, "capabilities": null})).unwrap();
        assert!(r.capabilities.is_empty());
        assert!(r.downtime.is_empty());
        assert_eq!(r.crown_version, None);
        let r = parse(json!({})).unwrap();
        assert_eq!(r.ack, None);
    }

    #[test]
    fn downtime_entries_parse_leniently() {
        let r = parse(json!({
            "ack": "ok",
            "crown_version": 2,
            "downtime": {
                "a": {"description": "patching", "diff": "--- a\n+++ b\n", "tests": "pytest -q"},
                "b": "maintenance",
                "c": {"tests": ["x", "y"]},
            }
        }))
        .unwrap();
        assert_eq!(r.crown_version.as_deref(), Some("2"));
        assert_eq!(r.downtime["a"].tests, vec!["pytest -q"]);
        assert_eq!(r.downtime["a"].diff.as_deref(), Some("--- a\n+++ b\n"));
        assert_eq!(r.downtime["b"].description, "maintenance");
        assert_eq!(r.downtime["c"].tests, vec!["x", "y"]);
        assert_eq!(r.downtime["c"].description, "");
    }

    #[test]
    fn wrong_types_are_malformed() {
        assert!(parse(json!({"ack": "ok", "capabilities": "GLM4V"})).is_err());
        assert!(parse(json!({"ack": "ok", "capabilities": [1]})).is_err());
        assert!(parse(json!({"ack": "ok", "downtime": []})).is_err());
        assert!(parse(json!({"ack": "ok", "downtime": {"a": 5}})).unwrap_err().0.contains("a number"));
        assert!(parse(json!({"ack": "ok", "crown_version": {}})).is_err());
    }
}
