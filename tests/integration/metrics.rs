//! `/metrics` of a running boot: every family of DESIGN §11 is there from the first scrape,
//! with zero-valued series for the configured components and the roster's agents.

use std::io::{Read, Write};
use std::time::Duration;

use serde_json::json;

use crate::harness::{Razar, wait_until};

/// GET `url` (http://host:port/path) with a plain HTTP/1.0 request; the body.
pub(crate) fn get(url: &str) -> String {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut s = std::net::TcpStream::connect(host).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET /{path} HTTP/1.0\r\nHost: {host}\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.split_once("\r\n\r\n").unwrap().1.to_owned()
}

#[test]
fn labelled_families_have_zero_series_from_startup() {
    let r = Razar::new();
    r.config(json!({"components": [
        {"name": "svc", "command": "echo ready; exec sleep 60", "health_check": {"log": "^ready$"},
         "liveness": {"exec": ["true"], "period": "1h", "initial_delay": "1h"}},
    ]}));
    r.write(
        "config/razar_ai_agents.json",
        r#"{"agents": [{"name": "fixer", "endpoint": "http://127.0.0.1:9/v1", "protocol": "patch-service"}]}"#,
    );
    let mut child = r.spawn(&["boot"]);
    let url = wait_until("ready with a metrics url", Duration::from_secs(20), || {
        (r.phase().as_deref() == Some("ready")).then(|| r.json("logs/razar_state.json")["metrics_url"].clone())
    });
    let text = get(url.as_str().unwrap());
    for want in [
        r#"razar_component_restarts_total{component="svc",reason="exited"} 0"#,
        r#"razar_component_restarts_total{component="svc",reason="operator"} 0"#,
        r#"razar_escalations_total{agent="fixer",component="svc"} 0"#,
        r#"razar_agent_call_duration_seconds_count{agent="fixer"} 0"#,
        r#"razar_probe_failures_total{component="svc",kind="log"} 0"#,
        r#"razar_probe_failures_total{component="svc",kind="exec"} 0"#,
        r#"razar_ai_invocation_failure_total{component="svc"} 0"#,
        r#"razar_component_up{component="svc"} 1"#,
    ] {
        assert!(text.lines().any(|l| l == want), "{want} missing:\n{text}");
    }
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(143));
}
