use std::collections::BTreeSet;
use std::time::Duration;

use super::*;

/// Every series of DESIGN §11 with its type.
const CONTRACT: &[(&str, &str)] = &[
    ("razar_ai_invocation_success_total", "counter"),
    ("razar_ai_invocation_failure_total", "counter"),
    ("razar_ai_invocation_retries_total", "counter"),
    ("razar_ai_retry_duration_seconds", "histogram"),
    ("razar_agent_call_duration_seconds", "histogram"),
    ("razar_boot_success_rate", "gauge"),
    ("razar_boot_total_time_seconds", "gauge"),
    ("razar_boot_components", "gauge"),
    ("razar_boot_components_succeeded", "gauge"),
    ("razar_boot_components_failed", "gauge"),
    ("razar_boot_retries", "gauge"),
    ("razar_boot_first_attempt_successes", "gauge"),
    ("razar_component_up", "gauge"),
    ("razar_component_ready_seconds", "gauge"),
    ("razar_component_restarts_total", "counter"),
    ("razar_probe_duration_seconds", "histogram"),
    ("razar_probe_failures_total", "counter"),
    ("razar_quarantined_components", "gauge"),
    ("razar_journal_dropped_records_total", "counter"),
    ("razar_escalations_total", "counter"),
    ("razar_crown_handshake_total", "counter"),
];

/// A registry with one event of every kind, as a running boot would have it.
fn busy() -> Metrics {
    let m = Metrics::new();
    for c in ["alpha", "beta"] {
        m.register_component(c);
    }
    m.register_agent("kimi2");
    m.component_up("alpha", true);
    m.component_ready("alpha", Duration::from_millis(1500));
    m.restart("beta", RestartReason::Liveness);
    m.probe_observed("http", Duration::from_millis(12), true, "alpha");
    m.probe_observed("tcp", Duration::from_millis(3), false, "beta");
    m.ai_invocation("beta", false);
    m.ai_invocation("beta", true);
    m.ai_retry("beta");
    m.ai_retry_duration("beta", Duration::from_secs(42));
    m.agent_call("kimi2", Duration::from_millis(800));
    m.escalation("beta", "airstar");
    m.crown_handshake(HandshakeResult::Offline);
    m.quarantined(1);
    m.boot_summary(&BootSummary {
        components: 2,
        succeeded: 1,
        failed: 1,
        retries: 3,
        first_attempt_successes: 1,
        total_time: Duration::from_millis(2250),
        success_rate: 0.5,
    });
    m
}

/// Metric names of the sample lines of an exposition (`name{…} value` → `name`).
fn sample_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_owned())
        .collect()
}

#[test]
fn every_contract_series_has_help_and_type() {
    let text = busy().render();
    for (name, kind) in CONTRACT {
        assert!(text.contains(&format!("\n# TYPE {name} {kind}\n")), "{name} {kind} missing:\n{text}");
        let help = text.lines().find(|l| l.starts_with(&format!("# HELP {name} "))).unwrap_or_default();
        assert!(help.len() > format!("# HELP {name} ").len() + 20, "{name} needs a meaningful HELP: {help:?}");
    }
    let families: BTreeSet<&str> =
        text.lines().filter_map(|l| l.strip_prefix("# TYPE ")).map(|l| l.split(' ').next().unwrap()).collect();
    let contract: BTreeSet<&str> = CONTRACT.iter().map(|(n, _)| *n).collect();
    assert_eq!(families, contract, "no series beyond the contract");
}

#[test]
fn events_render_with_their_labels() {
    let text = busy().render();
    for line in [
        "razar_component_up{component=\"alpha\"} 1",
        "razar_component_up{component=\"beta\"} 0",
        "razar_component_ready_seconds{component=\"alpha\"} 1.5",
        "razar_component_restarts_total{component=\"beta\",reason=\"liveness\"} 1",
        "razar_probe_failures_total{component=\"beta\",kind=\"tcp\"} 1",
        "razar_probe_duration_seconds_count{kind=\"http\"} 1",
        "razar_ai_invocation_success_total{component=\"beta\"} 1",
        "razar_ai_invocation_failure_total{component=\"beta\"} 1",
        "razar_ai_invocation_retries_total{component=\"beta\"} 1",
        "razar_ai_retry_duration_seconds_sum{component=\"beta\"} 42",
        "razar_agent_call_duration_seconds_sum{agent=\"kimi2\"} 0.8",
        "razar_escalations_total{agent=\"airstar\",component=\"beta\"} 1",
        "razar_crown_handshake_total{result=\"offline\"} 1",
        "razar_crown_handshake_total{result=\"failed\"} 0",
        "razar_quarantined_components 1",
        "razar_boot_success_rate 0.5",
        "razar_boot_total_time_seconds 2.25",
        "razar_boot_components 2",
        "razar_boot_components_succeeded 1",
        "razar_boot_components_failed 1",
        "razar_boot_retries 3",
        "razar_boot_first_attempt_successes 1",
    ] {
        assert!(text.lines().any(|l| l == line), "{line:?} missing:\n{text}");
    }
}

/// Metric names the upstream alert rules use, with histogram suffixes kept.
fn alert_rule_series(rules: &std::path::Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(rules).unwrap_or_else(|e| panic!("{}: {e}", rules.display()));
    let doc: serde_json::Value = serde_norway::from_str(&text).unwrap();
    let re = regex::Regex::new(r"\brazar_[a-z_]+").unwrap();
    let groups = doc["groups"].as_array().unwrap();
    let exprs = groups.iter().flat_map(|g| g["rules"].as_array().unwrap()).map(|r| r["expr"].as_str().unwrap());
    exprs.flat_map(|e| re.find_iter(e).map(|m| m.as_str().to_owned()).collect::<Vec<_>>()).collect()
}

#[test]
fn alert_rule_series_exist_from_registration_on() {
    let m = Metrics::new();
    m.register_component("alpha");
    let text = m.render();
    let present = sample_names(&text);
    let Some(rules) = crate::testutil::upstream(
        "metrics::alert_rule_series_exist_from_registration_on",
        "monitoring/alerts/razar_failover.yml",
    ) else {
        return;
    };
    let wanted = alert_rule_series(&rules);
    assert!(wanted.len() >= 4, "rules parsed: {wanted:?}");
    for name in &wanted {
        assert!(present.contains(name), "{name} (used by the alert rules) missing before any event:\n{text}");
    }
    assert!(text.contains("razar_ai_invocation_success_total{component=\"alpha\"} 0\n"), "{text}");
    assert!(text.contains("razar_component_up{component=\"alpha\"} 0\n"), "{text}");
}

#[test]
fn registration_is_idempotent_and_keeps_counts() {
    let m = Metrics::new();
    m.register_component("alpha");
    m.ai_retry("alpha");
    m.register_component("alpha");
    assert!(m.render().contains("razar_ai_invocation_retries_total{component=\"alpha\"} 1\n"));
}

#[test]
fn boot_render_holds_only_the_boot_gauges() {
    let text = busy().render_boot();
    let names = sample_names(&text);
    let boot: BTreeSet<String> =
        CONTRACT.iter().filter(|(n, _)| n.starts_with(BOOT_PREFIX)).map(|(n, _)| (*n).to_owned()).collect();
    assert_eq!(names, boot);
    assert!(text.lines().all(|l| l.is_empty() || l.starts_with('#') || l.starts_with(BOOT_PREFIX)), "{text}");
}

#[test]
fn each_metrics_owns_its_registry() {
    let a = Metrics::new();
    let b = Metrics::new();
    a.quarantined(4);
    assert!(a.render().contains("razar_quarantined_components 4\n"));
    assert!(b.render().contains("razar_quarantined_components 0\n"));
    assert!(prometheus::gather().is_empty(), "nothing goes to the global default registry");
}

#[test]
fn textfile_is_written_whole_with_mode_0600() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("monitoring/boot_metrics.prom");
    let m = busy();
    textfile::write(&path, &m).unwrap();
    m.boot_summary(&BootSummary { components: 7, ..BootSummary::default() });
    textfile::write(&path, &m).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("razar_boot_components 7\n"), "{text}");
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    let entries: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
    assert_eq!(entries.len(), 1, "no temp file left behind");
}

/// Writes a populated exposition to `$RAZAR_METRICS_DUMP` for `promtool check metrics`
/// (scripts/interop/prometheus.sh).
#[test]
#[ignore = "writes a file for scripts/interop/prometheus.sh"]
fn dump_for_promtool() {
    let path = std::env::var_os("RAZAR_METRICS_DUMP").expect("set RAZAR_METRICS_DUMP to the output path");
    std::fs::write(&path, busy().render()).unwrap();
    eprintln!("wrote {}", std::path::Path::new(&path).display());
}

#[test]
fn every_family_has_zero_series_for_the_stack_before_any_event() {
    let m = Metrics::new();
    m.register_stack(&StackLabels {
        components: vec![("api", vec!["http", "tcp"]), ("job", vec![])],
        agents: vec!["kimi2", "rstar"],
    });
    let text = m.render();
    for (name, kind) in CONTRACT {
        assert!(text.contains(&format!("# HELP {name} ")), "{name}: no HELP\n{text}");
        assert!(text.contains(&format!("# TYPE {name} {kind}\n")), "{name}: no TYPE {kind}\n{text}");
    }
    for want in [
        r#"razar_component_restarts_total{component="api",reason="exited"} 0"#,
        r#"razar_component_restarts_total{component="job",reason="operator"} 0"#,
        r#"razar_component_restarts_total{component="job",reason="patched"} 0"#,
        r#"razar_escalations_total{agent="rstar",component="api"} 0"#,
        r#"razar_escalations_total{agent="kimi2",component="job"} 0"#,
        r#"razar_agent_call_duration_seconds_count{agent="kimi2"} 0"#,
        r#"razar_agent_call_duration_seconds_count{agent="rstar"} 0"#,
        r#"razar_probe_failures_total{component="api",kind="http"} 0"#,
        r#"razar_probe_failures_total{component="api",kind="tcp"} 0"#,
        r#"razar_component_ready_seconds{component="job"} 0"#,
        r#"razar_component_up{component="api"} 0"#,
        r#"razar_ai_invocation_retries_total{component="job"} 0"#,
    ] {
        assert!(text.lines().any(|l| l == want), "{want} missing:\n{text}");
    }
    assert!(!text.contains(r#"component="job",kind="#), "a probe kind the component does not have");
}
