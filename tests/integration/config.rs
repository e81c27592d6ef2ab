//! `razar validate` and `razar schema` through the real binary.

use serde_json::json;

use crate::harness::Razar;

#[test]
fn validate_accepts_both_seed_shapes() {
    let Some(seeds) = crate::testutil::upstream("config::validate_accepts_both_seed_shapes", "") else {
        return;
    };
    let r = Razar::new();
    r.write("config/boot_config.json", &std::fs::read_to_string(seeds.join("razar/boot_config.json")).unwrap());
    r.write("config/razar_config.yaml", &std::fs::read_to_string(seeds.join("config/razar_config.yaml")).unwrap());
    r.run(&["validate"]).expect_code(0);
    let out = r.run(&["validate", "--config", "config/razar_config.yaml"]);
    out.expect_code(0);
    assert!(out.stdout.contains("7 components"), "{}", out.stdout);
}

#[test]
fn validate_reports_every_problem_with_file_and_field() {
    let r = Razar::new();
    r.config(json!({"components": [
        {"name": "a", "command": ["true"], "depends_on": ["b"]},
        {"name": "b", "command": ["true"], "depends_on": ["a"], "enabeld": true}
    ]}));
    let out = r.run(&["validate"]);
    out.expect_code(2);
    assert!(
        out.stderr.contains(
            "config/boot_config.json: components[1].enabeld: unknown field `enabeld`; did you mean `enabled`?"
        ),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty(), "errors go to stderr only");
}

#[test]
fn schema_prints_every_schema_and_rejects_unknown_names() {
    let r = Razar::new();
    let out = r.run(&["schema"]);
    out.expect_code(0);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    for name in ["boot_config", "razar_env", "razar_state"] {
        assert!(v[name]["properties"].is_object(), "{name} schema missing");
    }
    let out = r.run(&["schema", "nope"]);
    out.expect_code(2);
    assert!(out.stderr.contains("boot_config"), "{}", out.stderr);
}
