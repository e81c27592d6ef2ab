//! Serde mirror of the config files, exactly as operators write them. Every struct denies
//! unknown fields; the JSON Schemas in `schemas/` are generated from these types. Nothing
//! outside `config/` sees them: `resolve` turns them into the validated types of `resolved.rs`.
//!
//! Shape-dependent fields (`command`, `health_check`, `depends_on`) use hand-written visitors
//! rather than `#[serde(untagged)]` so a wrong shape gets an error naming what is allowed.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use schemars::r#gen::SchemaGenerator;
use schemars::schema::Schema;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

use super::duration::DurationSpec;

/// A stack: its components and the run-wide settings.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "razar boot config")]
pub struct RawConfig {
    /// The components of the stack, in tie-breaking order.
    pub components: Option<Vec<RawComponent>>,
    /// Name of the run, recorded in state, briefs and history.
    pub mission: Option<String>,
    /// Crown server settings.
    pub crown: Option<RawCrown>,
    /// Prometheus exporter settings.
    pub metrics: Option<RawMetrics>,
    /// Components started at once (default: unlimited).
    pub jobs: Option<usize>,
    /// What a component failure does to the boot.
    pub on_failure: Option<OnFailure>,
    /// Absolute directories outside the root that `metrics.textfile`, `working_dir` and file
    /// probes may name (default: none; every such path stays inside the root).
    pub allow_outside_root: Option<Vec<String>>,
    /// Legacy (`razar_config.yaml`): accepted and ignored.
    pub chakra: Option<String>,
    /// `false`: a failing component is quarantined right after its local attempts, without
    /// repair rounds (default true; the agents themselves are `config/razar_ai_agents.json`).
    pub enable_ai_handover: Option<bool>,
    /// Legacy (`razar_config.yaml`): accepted and ignored; see `enable_ai_handover`.
    pub ai_agent: Option<serde_json::Value>,
    /// Legacy (`razar_config.yaml`): accepted and ignored; dependencies are per component
    /// (`depends_on`).
    pub dependencies: Option<Vec<serde_json::Value>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// Stop the whole stack in reverse order and exit 1.
    #[default]
    Halt,
    /// Block only the failed component's dependents.
    Continue,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCrown {
    /// `ws://` or `wss://` URL; `CROWN_WS_URL` overrides it. Unset: offline mode.
    pub url: Option<String>,
    /// Connect + reply timeout (default 10 s).
    pub timeout: Option<DurationSpec>,
    /// Largest reply accepted, in bytes (default 1 MiB).
    pub max_reply_bytes: Option<usize>,
    /// Program run when no GLM-4.1V capability is online.
    pub model_launcher: Option<String>,
    /// Capabilities the Crown must report (as `--require-capability`).
    pub required_capabilities: Option<Vec<String>>,
    /// Allow a non-loopback `ws://` URL.
    pub allow_insecure: Option<bool>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    /// `false` turns the exporter off.
    pub enabled: Option<bool>,
    /// Port (default 9360, `RAZAR_METRICS_PORT`); 0 picks a free one.
    pub port: Option<u16>,
    /// Bind address (default 127.0.0.1).
    pub address: Option<String>,
    /// Textfile path (default `monitoring/boot_metrics.prom`).
    pub textfile: Option<String>,
}

/// One component. Only `name` and `command` are required.
#[derive(Debug, Default, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawComponent {
    /// Unique name, `[A-Za-z0-9_.-]+`.
    pub name: Option<String>,
    /// argv list, or a shell string run with `sh -c`.
    pub command: Option<CommandSpec>,
    /// `service` (long-running, needs a probe) or `task` (ready when it exits 0).
    pub kind: Option<Kind>,
    /// Tier: a component waits for every component with a lower value.
    pub priority: Option<i64>,
    /// Dependencies: list of names (condition `healthy`) or map name → edge.
    pub depends_on: Option<DependsOnSpec>,
    /// Extra environment variables.
    pub env: Option<BTreeMap<String, String>>,
    /// Working directory (relative to the root).
    pub working_dir: Option<String>,
    /// A `razar_env.yaml` layer whose venv the component runs in.
    pub layer: Option<String>,
    /// Readiness probe: argv (exec) or a probe object.
    pub health_check: Option<ProbeSpec>,
    /// Liveness probe, run after readiness.
    pub liveness: Option<ProbeSpec>,
    /// Restart policy after readiness.
    pub restart: Option<RawRestart>,
    /// How the component is stopped.
    pub shutdown: Option<RawShutdown>,
    /// Longest time from launch to ready.
    pub ready_timeout: Option<DurationSpec>,
    /// `false` leaves the component out of the boot.
    pub enabled: Option<bool>,
    /// Commands that verify a patch to this component.
    pub tests: Option<Vec<CommandSpec>>,
    /// Paths an agent may patch.
    pub sources: Option<Vec<String>>,
    /// Shell command (or argv) run before the component is signalled.
    pub stop: Option<CommandSpec>,
    /// Legacy (`razar_config.yaml`): accepted and ignored; quarantine follows the restart budget.
    pub quarantine_on_fail: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Service,
    Task,
}

#[derive(Debug, Default, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRestart {
    pub policy: Option<RestartPolicyKind>,
    pub backoff: Option<RawBackoff>,
    pub max_restarts: Option<u32>,
    pub window: Option<DurationSpec>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum RestartPolicyKind {
    #[serde(rename = "never")]
    Never,
    #[serde(rename = "on-failure")]
    OnFailure,
    #[serde(rename = "always")]
    Always,
}

#[derive(Debug, Default, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawBackoff {
    pub initial: Option<DurationSpec>,
    pub max: Option<DurationSpec>,
    pub multiplier: Option<f64>,
    /// Fraction of the delay added at random, 0.0–1.0 (default 0.1).
    pub jitter: Option<f64>,
}

#[derive(Debug, Default, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawShutdown {
    /// Signal name sent to the process group (default `SIGTERM`).
    pub signal: Option<String>,
    /// Time between the signal and SIGKILL (default 10 s).
    pub grace: Option<DurationSpec>,
}

/// A probe object: exactly one kind key plus optional timing parameters.
#[derive(Debug, Default, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawProbe {
    pub exec: Option<Vec<String>>,
    pub http: Option<String>,
    /// Accepted status range for `http`, e.g. `"200-399"` or `"204"` (default 200-399).
    pub status: Option<StatusSpec>,
    /// Substring the `http` body must contain.
    pub body: Option<String>,
    pub tcp: Option<String>,
    pub log: Option<String>,
    pub file: Option<String>,
    pub initial_delay: Option<DurationSpec>,
    pub period: Option<DurationSpec>,
    pub timeout: Option<DurationSpec>,
    pub success_threshold: Option<u32>,
    pub failure_threshold: Option<u32>,
    pub start_interval: Option<DurationSpec>,
}

/// `"200-399"`, `"204"` or `204`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusSpec(pub u16, pub u16);

/// `command`, `stop` and `tests[]`: argv list or shell string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandSpec {
    Argv(Vec<String>),
    Shell(String),
}

/// `health_check` / `liveness`: a bare argv list (exec probe) or a probe object.
#[derive(Debug, Clone)]
pub enum ProbeSpec {
    Argv(Vec<String>),
    Object(Box<RawProbe>),
}

/// `depends_on`: list of names or map name → edge.
#[derive(Debug, Clone)]
pub enum DependsOnSpec {
    Names(Vec<String>),
    Edges(Vec<(String, RawEdge)>),
}

#[derive(Debug, Default, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawEdge {
    pub condition: Option<Condition>,
    /// How long to wait for the condition before the dependent fails.
    pub timeout: Option<DurationSpec>,
    /// Restart this dependent whenever the dependency comes back from a restart.
    pub restart: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    Started,
    Healthy,
    CompletedSuccessfully,
}

struct StringsVisitor;

impl<'de> Visitor<'de> for StringsVisitor {
    type Value = Vec<String>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of strings")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
        let mut out = Vec::new();
        while let Some(s) = seq.next_element::<String>()? {
            out.push(s);
        }
        Ok(out)
    }
}

impl<'de> Deserialize<'de> for CommandSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CommandSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a command: an argv list of strings or a shell string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<CommandSpec, E> {
                Ok(CommandSpec::Shell(v.to_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<CommandSpec, A::Error> {
                StringsVisitor.visit_seq(seq).map(CommandSpec::Argv)
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for ProbeSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ProbeSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a probe: an argv list (exec) or an object with one of exec, http, tcp, log, file")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<ProbeSpec, A::Error> {
                StringsVisitor.visit_seq(seq).map(ProbeSpec::Argv)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ProbeSpec, A::Error> {
                RawProbe::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|p| ProbeSpec::Object(Box::new(p)))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for DependsOnSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = DependsOnSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of component names, or a map name → {condition, timeout}")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<DependsOnSpec, A::Error> {
                StringsVisitor.visit_seq(seq).map(DependsOnSpec::Names)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<DependsOnSpec, A::Error> {
                let mut edges = Vec::new();
                while let Some((name, edge)) = map.next_entry::<String, Option<RawEdge>>()? {
                    edges.push((name, edge.unwrap_or_default()));
                }
                Ok(DependsOnSpec::Edges(edges))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for StatusSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = StatusSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an HTTP status or range such as \"200-399\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<StatusSpec, E> {
                let code = u16::try_from(v).ok().filter(|c| (100..=599).contains(c));
                code.map(|c| StatusSpec(c, c)).ok_or_else(|| E::custom(format!("bad HTTP status {v}: use 100-599")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<StatusSpec, E> {
                self.visit_u64(u64::try_from(v).unwrap_or(0))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StatusSpec, E> {
                let bad = || E::custom(format!("bad HTTP status range {v:?}: use \"200-399\" or \"204\""));
                let (lo, hi) = v.split_once('-').unwrap_or((v, v));
                let lo: u16 = lo.trim().parse().map_err(|_| bad())?;
                let hi: u16 = hi.trim().parse().map_err(|_| bad())?;
                if !(100..=599).contains(&lo) || !(lo..=599).contains(&hi) {
                    return Err(bad());
                }
                Ok(StatusSpec(lo, hi))
            }
        }
        d.deserialize_any(V)
    }
}

fn schema_from(value: serde_json::Value) -> Schema {
    serde_json::from_value(value).expect("hand-written schema is valid")
}

impl JsonSchema for CommandSpec {
    fn schema_name() -> String {
        "Command".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        schema_from(serde_json::json!({
            "description": "An argv list (run directly) or a shell string (run with sh -c).",
            "oneOf": [
                {"type": "array", "items": {"type": "string"}, "minItems": 1},
                {"type": "string", "minLength": 1}
            ]
        }))
    }
}

impl JsonSchema for ProbeSpec {
    fn schema_name() -> String {
        "ProbeSpec".into()
    }
    fn json_schema(g: &mut SchemaGenerator) -> Schema {
        let object = serde_json::to_value(g.subschema_for::<RawProbe>()).expect("schema serializes");
        schema_from(serde_json::json!({
            "description": "A bare argv list (exec probe) or a probe object.",
            "oneOf": [{"type": "array", "items": {"type": "string"}, "minItems": 1}, object]
        }))
    }
}

impl JsonSchema for DependsOnSpec {
    fn schema_name() -> String {
        "DependsOn".into()
    }
    fn json_schema(g: &mut SchemaGenerator) -> Schema {
        let edge = serde_json::to_value(g.subschema_for::<RawEdge>()).expect("schema serializes");
        schema_from(serde_json::json!({
            "description": "Names (condition healthy) or a map name → {condition, timeout}.",
            "oneOf": [
                {"type": "array", "items": {"type": "string"}},
                {"type": "object", "additionalProperties": {"anyOf": [edge, {"type": "null"}]}}
            ]
        }))
    }
}

impl JsonSchema for StatusSpec {
    fn schema_name() -> String {
        "StatusRange".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        schema_from(serde_json::json!({
            "oneOf": [
                {"type": "integer", "minimum": 100, "maximum": 599},
                {"type": "string", "pattern": "^[1-5][0-9]{2}(-[1-5][0-9]{2})?$"}
            ]
        }))
    }
}

/// `razar_env.yaml`: pip requirements per layer.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "razar_env.yaml")]
pub struct RawEnv {
    pub layers: BTreeMap<String, Vec<String>>,
}
