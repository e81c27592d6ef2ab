//! Property tests over hostile input: the Crown reply parser and the config loader must turn
//! any bytes into a value or an error — never a panic, a hang or unbounded work.
//!
//! The normal test run tries a modest number of cases; `scripts/fuzz` runs the same properties
//! with `RAZAR_FUZZ_CASES` raised, for a bounded time.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestRunner};
use serde_json::{Map, Value};

use crate::config::{self, Env};
use crate::crown::capability;
use crate::crown::client::parse_reply;
use crate::crown::protocol::Reply;

/// Cases per property: `RAZAR_FUZZ_CASES`, else 64.
fn cases() -> u32 {
    std::env::var("RAZAR_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64)
}

fn runner() -> TestRunner {
    TestRunner::new(RunnerConfig { cases: cases(), failure_persistence: None, ..RunnerConfig::default() })
}

/// Words the parsers give meaning to, so generated input reaches past the first check.
const WORDS: &[&str] = &[
    "ack",
    "capabilities",
    "downtime",
    "description",
    "diff",
    "tests",
    "crown_version",
    "GLM-4.1V",
    "glm4v",
    "GLM4V_OFFLINE",
    "nack",
    "false",
    "true",
    "components",
    "name",
    "command",
    "depends_on",
    "health_check",
    "restart",
    "shutdown",
    "env",
    "working_dir",
    "kind",
    "priority",
    "ready_timeout",
    "enabled",
    "layer",
    "stop",
    "liveness",
    "http",
    "tcp",
    "exec",
    "log",
    "file",
    "status",
    "body",
    "period",
    "timeout",
    "policy",
    "backoff",
    "initial",
    "max",
    "signal",
    "grace",
    "condition",
    "window",
    "max_restarts",
    "crown",
    "url",
    "metrics",
    "textfile",
    "jobs",
    "mission",
    "on_failure",
    "1s",
    "0",
    "-1",
    "10m",
    "5x",
    "SIGTERM",
    "SIGFOO",
    "on-failure",
    "../x",
    "/abs",
    "a",
    "b",
    "a b",
    "${HOME}",
    "${",
    "[",
    "(",
    "*",
    "http://127.0.0.1:1/",
    "ws://h",
    "127.0.0.1:9",
    "200-299",
    "always",
    "never",
    "task",
    "service",
    "healthy",
    "completed",
    "",
];

fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(WORDS).prop_map(str::to_owned),
        1 => "\\PC{0,12}",
    ]
}

/// JSON values a few levels deep built from meaningful words and edge numbers.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        prop_oneof![Just(0i64), Just(-1), Just(1), Just(i64::MAX), Just(i64::MIN), any::<i64>()].prop_map(Value::from),
        prop_oneof![Just(0.5f64), Just(1e308), Just(-0.0)].prop_map(Value::from),
        word().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec((word(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<String, Value>>())),
        ]
    })
}

/// A text: a generated document, the same document cut short or with a byte flipped, or noise.
fn text(doc: impl Strategy<Value = Value>) -> impl Strategy<Value = String> {
    (doc, any::<prop::sample::Index>(), 0u8..4, any::<u8>(), "\\PC{0,64}").prop_map(|(v, at, how, byte, noise)| {
        let s = v.to_string();
        let cut = at.index(s.len() + 1);
        let cut = (0..=cut).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0);
        match how {
            0 => s,
            1 => s[..cut].to_owned(),
            2 => {
                let mut b = s.into_bytes();
                if !b.is_empty() {
                    let i = cut.min(b.len() - 1);
                    b[i] = byte;
                }
                String::from_utf8_lossy(&b).into_owned()
            }
            _ => noise,
        }
    })
}

/// What a Crown reply may look like: an object with the reply's fields filled at random.
fn crown_reply() -> impl Strategy<Value = Value> {
    (json(), json(), json(), json(), proptest::collection::vec((word(), json()), 0..4)).prop_map(
        |(ack, caps, down, version, extra)| {
            let mut m = Map::new();
            m.insert("ack".into(), ack);
            m.insert("capabilities".into(), caps);
            m.insert("downtime".into(), down);
            m.insert("crown_version".into(), version);
            m.extend(extra);
            Value::Object(m)
        },
    )
}

#[test]
fn the_crown_reply_parser_never_panics() {
    runner()
        .run(&text(prop_oneof![crown_reply(), json()]), |reply| {
            if let Ok(obj) = parse_reply(&reply, "ws://127.0.0.1:1/")
                && let Ok(r) = Reply::from_object(&obj)
            {
                let _ = r.ack.as_ref().map(super::crown::protocol::Ack::acknowledgement);
                let _ = capability::glm4v_present(&r.capabilities);
                for c in &r.capabilities {
                    let _ = capability::normalize(c);
                }
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn deeply_nested_crown_replies_are_errors_not_crashes() {
    for depth in [100, 1_000, 100_000] {
        let reply = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        assert!(parse_reply(&reply, "ws://h/").is_err(), "depth {depth}");
        let reply = format!("{{\"ack\":{}1{}}}", "{\"a\":".repeat(depth), "}".repeat(depth));
        let _ = parse_reply(&reply, "ws://h/").map(|o| Reply::from_object(&o));
    }
}

struct NoEnv;

impl Env for NoEnv {
    fn var(&self, _: &str) -> Option<String> {
        None
    }
}

/// A config document: components whose fields come from the real vocabulary.
fn config_doc() -> impl Strategy<Value = Value> {
    let component = proptest::collection::vec((word(), json()), 0..8).prop_map(|kv| {
        let mut m: Map<String, Value> = kv.into_iter().collect();
        m.entry("name").or_insert_with(|| Value::String("a".into()));
        Value::Object(m)
    });
    (proptest::collection::vec(component, 0..5), proptest::collection::vec((word(), json()), 0..4)).prop_map(
        |(components, top)| {
            let mut m: Map<String, Value> = top.into_iter().collect();
            m.insert("components".into(), Value::Array(components));
            Value::Object(m)
        },
    )
}

#[test]
fn the_config_loader_never_panics_on_json_or_yaml() {
    let dir = tempfile::tempdir().unwrap();
    let json_file = dir.path().join("boot_config.json");
    let yaml_file = dir.path().join("boot_config.yaml");
    runner()
        .run(&(text(config_doc()), config_doc()), |(raw, doc)| {
            std::fs::write(&json_file, &raw).unwrap();
            let started = Instant::now();
            if let Err(invalid) = config::load(&json_file, dir.path(), &NoEnv) {
                prop_assert!(invalid.0.iter().all(|d| !d.message.is_empty()), "an empty diagnostic");
            }
            let yaml = serde_norway::to_string(&doc).unwrap();
            std::fs::write(&yaml_file, &yaml).unwrap();
            let _ = config::load(&yaml_file, dir.path(), &NoEnv);
            std::fs::write(&yaml_file, &raw).unwrap();
            let _ = config::load(&yaml_file, dir.path(), &NoEnv);
            prop_assert!(started.elapsed() < Duration::from_secs(5), "one case took {:?}", started.elapsed());
            Ok(())
        })
        .unwrap();
}
