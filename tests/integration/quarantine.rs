//! `razar quarantine list | show | add | release` through the real binary.

use serde_json::{Value, json};

use crate::harness::Razar;

const HEADER: &str = "| Timestamp (UTC) | Component | Action | Details |";

fn stack() -> Razar {
    let r = Razar::new();
    r.config(json!({"components": [
        {"name": "db", "command": "run-db", "env": {"DB_TOKEN": "s3cret"}},
        {"name": "web", "command": ["serve", "--port", "8000"], "depends_on": ["db"],
         "health_check": {"tcp": "127.0.0.1:8000"}}
    ]}));
    r
}

/// Table rows of the Markdown log (lines after the header and delimiter rows).
fn log_rows(r: &Razar) -> Vec<String> {
    r.read("docs/quarantine_log.md").lines().filter(|l| l.starts_with("| 2")).map(str::to_owned).collect()
}

#[test]
fn add_show_list_release_round_trip() {
    let r = stack();
    let out = r.run(&["quarantine", "list"]);
    out.expect_code(0);
    assert!(out.stdout.contains("no component is quarantined"), "{}", out.stdout);
    let out = r.run(&["quarantine", "list", "--json"]);
    out.expect_code(0);
    assert_eq!(serde_json::from_str::<Value>(&out.stdout).unwrap(), json!([]));

    let out = r.run(&["quarantine", "add", "web", "--reason", "probe | failed\nafter `deploy`"]);
    out.expect_code(0);
    assert!(out.stdout.contains("quarantined `web`"), "{}", out.stdout);

    let entry = r.json("quarantine/web.json");
    assert_eq!(entry["name"], "web");
    assert_eq!(entry["reason"], "probe | failed\nafter `deploy`");
    assert_eq!(entry["source"], "operator");
    assert_eq!(entry["attempts"], 0);
    assert_eq!(entry["patches_applied"], json!([]));
    assert_eq!(entry["command"], json!(["serve", "--port", "8000"]));
    assert_eq!(entry["kind"], "service");
    assert_eq!(entry["depends_on"], json!(["db"]));
    assert!(entry["quarantined_at"].as_str().unwrap().ends_with('Z'));
    assert!(entry["quarantined_at_epoch"].as_f64().unwrap() > 1.0e9);

    let out = r.run(&["quarantine", "show", "web", "--json"]);
    out.expect_code(0);
    assert_eq!(serde_json::from_str::<Value>(&out.stdout).unwrap(), entry);
    let out = r.run(&["quarantine", "show", "web"]);
    out.expect_code(0);
    assert!(out.stdout.contains("component:       web"), "{}", out.stdout);
    assert!(out.stdout.contains("source:          operator"), "{}", out.stdout);
    assert!(out.stdout.contains("depends on:      db"), "{}", out.stdout);

    r.run(&["quarantine", "add", "db", "--reason", "disk full"]).expect_code(0);
    assert!(!r.read("quarantine/db.json").contains("s3cret"), "env is never copied into the ledger");
    let out = r.run(&["quarantine", "list"]);
    out.expect_code(0);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", out.stdout);
    assert!(lines[0].starts_with("COMPONENT") && lines[0].contains("REASON"), "{}", out.stdout);
    assert!(lines[1].starts_with("db ") && lines[1].ends_with("disk full"), "{}", out.stdout);
    assert!(lines[2].starts_with("web") && lines[2].ends_with("probe | failed / after `deploy`"), "{}", out.stdout);
    let listed: Vec<Value> = serde_json::from_str(&r.run(&["quarantine", "list", "--json"]).stdout).unwrap();
    assert_eq!(listed.iter().map(|e| e["name"].as_str().unwrap()).collect::<Vec<_>>(), ["db", "web"]);

    let out = r.run(&["quarantine", "release", "web", "--note", "fixed | redeployed"]);
    out.expect_code(0);
    assert!(out.stdout.contains("released `web`"), "{}", out.stdout);
    assert!(!r.path("quarantine/web.json").exists());
    assert!(r.path("quarantine/db.json").exists());

    let log = r.read("docs/quarantine_log.md");
    assert!(log.starts_with("# Quarantine Log\n"), "{log}");
    assert_eq!(log.matches(HEADER).count(), 1, "{log}");
    let rows = log_rows(&r);
    assert_eq!(rows.len(), 3, "{log}");
    assert!(rows[0].ends_with("| web | quarantined | operator: probe \\| failed<br>after \\`deploy\\` |"), "{log}");
    assert!(rows[1].ends_with("| db | quarantined | operator: disk full |"), "{log}");
    assert!(rows[2].ends_with("| web | released | fixed \\| redeployed |"), "{log}");
    for row in &rows {
        // `| YYYY-MM-DD HH:MM:SS | …`
        let ts: Vec<char> = row[2..21].chars().collect();
        let shape: String = ts.iter().map(|c| if c.is_ascii_digit() { 'd' } else { *c }).collect();
        assert_eq!(shape, "dddd-dd-dd dd:dd:dd", "{row}");
        assert_eq!(&row[21..24], " | ", "{row}");
    }
}

#[test]
fn unknown_component_is_refused_with_a_hint_and_nothing_is_written() {
    let r = stack();
    let out = r.run(&["quarantine", "add", "webb", "--reason", "x"]);
    out.expect_code(2);
    assert!(out.stderr.contains("unknown component `webb`"), "{}", out.stderr);
    assert!(out.stderr.contains("did you mean `web`?"), "{}", out.stderr);
    assert!(out.stderr.contains("components: db, web"), "{}", out.stderr);
    assert!(out.stdout.is_empty());
    assert!(!r.path("quarantine").exists());
    assert!(!r.path("docs").exists());

    for bad in ["../etc", "a/b", ""] {
        let out = r.run(&["quarantine", "add", bad, "--reason", "x"]);
        out.expect_code(2);
        assert!(out.stderr.contains("is not a valid component name"), "{bad}: {}", out.stderr);
    }
    let out = r.run(&["quarantine", "add", "web", "--reason", "  "]);
    out.expect_code(2);
    assert!(out.stderr.contains("--reason"), "{}", out.stderr);
    let out = r.run(&["quarantine", "add", "web", "--reason", "x", "--config", "config/missing.json"]);
    out.expect_code(2);
    assert!(out.stderr.contains("config/missing.json"), "{}", out.stderr);
    assert!(!r.path("quarantine").exists());
    assert!(!r.path("docs").exists());
}

#[test]
fn without_a_config_any_valid_name_is_accepted_with_a_warning() {
    let r = Razar::new();
    let out = r.run(&["quarantine", "add", "legacy_worker", "--reason", "manual hold"]);
    out.expect_code(0);
    assert!(out.stderr.contains("cannot check that `legacy_worker` is a component"), "{}", out.stderr);
    let entry = r.json("quarantine/legacy_worker.json");
    assert_eq!(entry["source"], "operator");
    assert!(entry.get("command").is_none(), "{entry}");

    // An explicit config is checked even when the default one is missing.
    r.write("other.yaml", "components:\n- {name: api, command: x}\n");
    r.run(&["quarantine", "add", "api", "--reason", "r", "--config", "other.yaml"]).expect_code(0);
    assert_eq!(r.json("quarantine/api.json")["command"], "x");
    r.run(&["quarantine", "add", "apj", "--reason", "r", "--config", "other.yaml"]).expect_code(2);
}

#[test]
fn release_show_and_re_add_have_clear_errors() {
    let r = stack();
    let out = r.run(&["quarantine", "release", "web"]);
    out.expect_code(2);
    assert!(out.stderr.contains("`web` is not quarantined"), "{}", out.stderr);
    assert!(!r.path("docs").exists(), "nothing logged");
    let out = r.run(&["quarantine", "show", "web"]);
    out.expect_code(2);
    assert!(out.stderr.contains("`web` is not quarantined"), "{}", out.stderr);

    r.run(&["quarantine", "add", "web", "--reason", "first"]).expect_code(0);
    let before = r.read("quarantine/web.json");
    let out = r.run(&["quarantine", "add", "web", "--reason", "second"]);
    out.expect_code(2);
    assert!(out.stderr.contains("already quarantined") && out.stderr.contains("first"), "{}", out.stderr);
    assert_eq!(r.read("quarantine/web.json"), before);
    r.run(&["quarantine", "release", "web"]).expect_code(0);
    r.run(&["quarantine", "release", "web"]).expect_code(2);
    assert_eq!(log_rows(&r).len(), 2);
}

#[test]
fn upstream_log_and_entries_are_continued_not_replaced() {
    let Some(log) = crate::testutil::upstream(
        "quarantine::upstream_log_and_entries_are_continued_not_replaced",
        "docs/quarantine_log.md",
    ) else {
        return;
    };
    let upstream = std::fs::read_to_string(log).unwrap();
    let r = stack();
    r.write("docs/quarantine_log.md", &upstream);
    r.write(
        "quarantine/boot_orchestrator.json",
        r#"{"name": "boot_orchestrator", "reason": "dependency: circular import", "attempts": 1, "patches_applied": []}"#,
    );
    r.write("quarantine/broken.json", "{\"name\": ");

    let out = r.run(&["quarantine", "list", "--json"]);
    out.expect_code(0);
    let listed: Vec<Value> = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(listed.len(), 1, "{}", out.stdout);
    assert_eq!(listed[0]["name"], "boot_orchestrator");
    assert_eq!(listed[0]["source"], "razar");
    assert!(out.stderr.contains("quarantine/broken.json"), "the unreadable entry is reported: {}", out.stderr);
    assert!(out.stderr.contains("`broken` stays quarantined"), "{}", out.stderr);
    assert_eq!(r.read("quarantine/broken.json"), "{\"name\": ", "a read-only command moves nothing");

    r.run(&["quarantine", "release", "boot_orchestrator", "--note", "imports refactored"]).expect_code(0);
    r.run(&["quarantine", "add", "db", "--reason", "disk full"]).expect_code(0);
    let log = r.read("docs/quarantine_log.md");
    assert!(log.starts_with(&upstream), "the upstream text is kept as it is");
    let added: Vec<&str> = log[upstream.len()..].lines().collect();
    assert_eq!(added.len(), 4, "{log}");
    assert_eq!(added[0], HEADER, "a header before the first row only");
    assert_eq!(added[1], "| --- | --- | --- | --- |");
    assert!(added[2].ends_with("| boot_orchestrator | released | imports refactored |"), "{log}");
    assert!(r.path("quarantine/broken.json").exists(), "still there after other ledger changes");
    assert!(added[3].ends_with("| db | quarantined | operator: disk full |"), "{log}");
}

#[test]
fn release_forgives_the_cumulative_failures_so_the_next_boot_launches_it() {
    let r = Razar::new();
    r.config(json!({"components": [{"name": "flaky", "kind": "task", "command": "true"}]}));
    r.write(
        "logs/razar_boot_history.json",
        &json!({"history": [], "component_failures": {"flaky": 5, "other": 2}}).to_string(),
    );
    // Over the failure limit: quarantined before launch, which this boot reports as a failure.
    r.run(&["boot"]).expect_code(1);
    assert_eq!(r.component_state("flaky")["state"], "quarantined");
    assert!(r.path("quarantine/flaky.json").exists());
    r.run(&["quarantine", "release", "flaky", "--note", "fixed"]).expect_code(0);
    assert_eq!(r.json("logs/razar_boot_history.json")["component_failures"], json!({"other": 2}));
    r.run(&["boot"]).expect_code(0);
    assert_eq!(r.component_state("flaky")["state"], "completed");
}

#[test]
fn an_unparseable_entry_keeps_its_component_out_of_the_boot_and_is_reported_not_moved() {
    let r = Razar::new();
    r.config(serde_json::json!({"components": [
        {"name": "web", "command": "echo ready; exec sleep 60", "health_check": {"log": "^ready$"}},
        {"name": "db", "command": "echo ready; exec sleep 60", "health_check": {"log": "^ready$"}}
    ]}));
    r.write("quarantine/web.json", "{\"name\": \"web\", \"reason\": tru");
    let list = r.run(&["quarantine", "list"]);
    list.expect_code(0);
    assert!(list.stdout.contains("web") && list.stdout.contains("UNREADABLE ENTRY"), "{}", list.stdout);
    let validate = r.run(&["validate"]);
    validate.expect_code(0);
    assert!(
        validate.stderr.contains("quarantine/web.json") && validate.stderr.contains("stays quarantined"),
        "{}",
        validate.stderr
    );
    r.run(&["quarantine", "show", "web"]).expect_code(2);
    assert_eq!(r.read("quarantine/web.json"), "{\"name\": \"web\", \"reason\": tru", "read-only commands move nothing");
    let mut boot = r.spawn(&["boot"]);
    crate::harness::wait_until("ready", std::time::Duration::from_secs(30), || {
        (r.phase().as_deref() == Some("ready")).then_some(())
    });
    assert_eq!(r.component_state("web")["state"], "quarantined", "an unreadable entry keeps the component out");
    assert_eq!(r.component_state("db")["state"], "healthy");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(boot.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    boot.wait().unwrap();
    assert!(r.path("quarantine/web.json").exists(), "the boot moves nothing either");
    r.run(&["quarantine", "release", "web"]).expect_code(0);
    assert!(!r.path("quarantine/web.json").exists());
}
