//! No child razar starts inherits a secret razar knows of (DESIGN §12): the Crown token, the
//! alert webhook, and the agent credentials of the roster; a component's own `env` may pass one.

use serde_json::json;

use crate::harness::Razar;

const CANARY: &str = "canary-5e1f-secret";

#[test]
fn components_and_probes_get_no_secret_unless_their_config_passes_it() {
    let mut r = Razar::new();
    r.config(json!({"components": [
        // A service that ends once its probe has recorded what it saw (then it is `completed`).
        {"name": "plain", "command": "env > plain.env; while [ ! -s probe.env ]; do sleep 0.02; done",
         "health_check": {"exec": ["sh", "-c", "env > probe.tmp && mv probe.tmp probe.env"], "start_interval": "20ms"}},
        {"name": "explicit", "kind": "task", "command": "env > explicit.env", "env": {"KIMI2_API_KEY": "passed-on-purpose"}}
    ]}));
    r.write(
        "config/razar_ai_agents.json",
        &json!({"agents": [
            {"name": "demo_agent", "endpoint": "http://127.0.0.1:9/v1", "protocol": "patch-service"},
            {"name": "other", "endpoint": "http://127.0.0.1:9/v1", "protocol": "patch-service",
             "auth": {"type": "bearer", "token": "${OTHER_SECRET_SOURCE}"}}
        ]})
        .to_string(),
    );
    for var in ["CROWN_TOKEN", "RAZAR_ALERT_WEBHOOK", "KIMI2_API_KEY", "DEMO_AGENT_TOKEN", "OTHER_SECRET_SOURCE"] {
        r.env(var, &format!("{CANARY}-{var}"));
    }
    r.env("UNRELATED_SETTING", "kept");
    r.run(&["boot", "--no-metrics"]).expect_code(0);
    for file in ["plain.env", "probe.env", "explicit.env"] {
        let seen = r.read(file);
        assert!(!seen.contains(CANARY), "{file} got a secret:\n{seen}");
        assert!(seen.contains("UNRELATED_SETTING=kept"), "{file} lost an ordinary variable:\n{seen}");
    }
    assert!(r.read("explicit.env").contains("KIMI2_API_KEY=passed-on-purpose"));
}
