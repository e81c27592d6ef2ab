//! JSON Schemas of razar's files, generated from the Rust types. `schemas/*.schema.json` are
//! this module's output, checked for drift in CI (`scripts/check-schemas`).

use serde_json::Value;

/// `(name, schema)` for every file razar reads or writes with a schema.
pub fn all() -> Vec<(&'static str, Value)> {
    vec![
        ("boot_config", to_value(schemars::schema_for!(crate::config::raw::RawConfig))),
        ("razar_env", to_value(schemars::schema_for!(crate::config::raw::RawEnv))),
        ("razar_state", to_value(schemars::schema_for!(crate::state::StateFile))),
        ("razar_ai_agents", to_value(schemars::schema_for!(crate::roster::raw::RawRoster))),
    ]
}

fn to_value(schema: schemars::schema::RootSchema) -> Value {
    serde_json::to_value(schema).expect("schemas serialize")
}
