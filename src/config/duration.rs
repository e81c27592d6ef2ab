//! Durations as operators write them: `"250ms"`, `"10s"`, `"2m"`, `"1h"`, or a number of seconds.

use std::fmt;
use std::time::Duration;

use schemars::JsonSchema;
use schemars::r#gen::SchemaGenerator;
use schemars::schema::{InstanceType, Schema, SchemaObject, SingleOrVec, StringValidation};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A validated, non-negative duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct DurationSpec(pub Duration);

const EXPECTED: &str = "a duration such as \"250ms\", \"10s\", \"2m\", \"1h\" or a number of seconds";

/// Parses `"250ms"`, `"1.5s"`, `"2m"`, `"1h"`, or a bare number of seconds.
pub fn parse(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num.parse().map_err(|_| format!("bad duration {text:?}: expected {EXPECTED}"))?;
    let secs = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        other => return Err(format!("bad duration {text:?}: unknown unit {other:?} (use ms, s, m or h)")),
    };
    from_secs(secs).ok_or_else(|| format!("bad duration {text:?}: expected {EXPECTED}"))
}

fn from_secs(secs: f64) -> Option<Duration> {
    (secs.is_finite() && (0.0..=31_536_000.0).contains(&secs)).then(|| Duration::from_secs_f64(secs))
}

impl<'de> Deserialize<'de> for DurationSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = DurationSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(EXPECTED)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<DurationSpec, E> {
                parse(v).map(DurationSpec).map_err(E::custom)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<DurationSpec, E> {
                from_secs(v)
                    .map(DurationSpec)
                    .ok_or_else(|| E::custom(format!("bad duration {v}: expected {EXPECTED}")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<DurationSpec, E> {
                self.visit_f64(v as f64)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<DurationSpec, E> {
                self.visit_f64(v as f64)
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for DurationSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.0.as_secs_f64())
    }
}

impl JsonSchema for DurationSpec {
    fn schema_name() -> String {
        "Duration".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        SchemaObject {
            instance_type: Some(SingleOrVec::Vec(vec![InstanceType::String, InstanceType::Number])),
            string: Some(Box::new(StringValidation {
                pattern: Some(r"^\s*[0-9]+(\.[0-9]+)?\s*(ms|s|m|h)?\s*$".into()),
                ..Default::default()
            })),
            metadata: Some(Box::new(schemars::schema::Metadata {
                description: Some(
                    "A duration: a string with a unit (\"250ms\", \"10s\", \"2m\", \"1h\") or a number of seconds."
                        .into(),
                ),
                ..Default::default()
            })),
            ..Default::default()
        }
        .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit_and_rejects_garbage() {
        let cases = [
            ("250ms", Some(250)),
            ("10s", Some(10_000)),
            ("1.5s", Some(1_500)),
            ("2m", Some(120_000)),
            ("1h", Some(3_600_000)),
            ("3", Some(3_000)),
            ("", None),
            ("ten", None),
            ("5x", None),
            ("-1s", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text).ok().map(|d| d.as_millis() as u64), want, "{text}");
        }
    }
}
