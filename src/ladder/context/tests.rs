use std::fs;

use super::*;
use crate::config::load::{NoEnv, load};

fn setup() -> (tempfile::TempDir, Paths, std::sync::Arc<Component>) {
    let d = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(d.path()).unwrap();
    fs::create_dir_all(root.join("svc/lib")).unwrap();
    fs::create_dir_all(root.join("config")).unwrap();
    fs::create_dir_all(root.join("logs/components")).unwrap();
    fs::write(root.join("svc/app.py"), "print(1/0)\n").unwrap();
    fs::write(root.join("svc/lib/big.txt"), "y".repeat(100 * 1024)).unwrap();
    let config = json!({"components": [{
        "name": "api", "command": "python3 app.py", "working_dir": "svc", "sources": ["svc"],
        "env": {"DB_PASSWORD": "hunter2-secret"}
    }]});
    fs::write(root.join("config/boot_config.json"), config.to_string()).unwrap();
    let cfg = load(&root.join("config/boot_config.json"), &root, &NoEnv).unwrap();
    let log: String = (1..=80).map(|i| format!("line {i}\n")).collect();
    fs::write(root.join("logs/components/api.log"), log).unwrap();
    let state = json!({"components": [{"id": "api", "state": "failed", "last_error": "exited with status 1",
        "probe": {"kind": "http", "last_result": "fail", "last_output": "HTTP 503"}}]});
    fs::write(root.join("logs/razar_state.json"), state.to_string()).unwrap();
    let c = cfg.components[0].clone();
    (d, Paths::new(root), c)
}

fn record<'a>(component: &'a str, attempt: u32) -> Invocation<'a> {
    Invocation {
        component,
        attempt,
        error: "boom",
        patched: false,
        status: "failure",
        event: "attempt",
        agent: "a",
        retries: None,
        timestamp: 1.0,
        timestamp_iso: "1970-01-01T00:00:01Z".into(),
    }
}

#[test]
fn context_holds_error_state_log_tail_config_and_sources() {
    let (_d, paths, c) = setup();
    for i in 1..=7 {
        journal(&paths, &record("api", i)).unwrap();
        journal(&paths, &record("other", i)).unwrap();
    }
    let ctx = build_failure_context(&paths, &c, "boom");
    assert_eq!(ctx["error"], "boom");
    assert_eq!(ctx["exit_status"], "exited with status 1");
    assert_eq!(ctx["last_probe_output"], "HTTP 503");
    let history = ctx["history"].as_array().unwrap();
    assert_eq!(history.iter().map(|r| r["attempt"].as_u64().unwrap()).collect::<Vec<_>>(), [3, 4, 5, 6, 7]);
    assert!(history.iter().all(|r| r["component"] == "api"));
    let tail = ctx["log_tail"].as_array().unwrap();
    assert_eq!((tail.len(), tail[0].as_str(), tail[49].as_str()), (50, Some("line 31"), Some("line 80")));
    assert_eq!(ctx["config"]["env"]["DB_PASSWORD"], "***");
    assert!(!ctx.to_string().contains("hunter2-secret"));
    let sources = ctx["sources"].as_array().unwrap();
    let app = sources.iter().find(|s| s["path"] == "svc/app.py").unwrap();
    assert_eq!((app["content"].as_str(), app["truncated"].as_bool()), (Some("print(1/0)\n"), Some(false)));
    let big = sources.iter().find(|s| s["path"] == "svc/lib/big.txt").unwrap();
    assert_eq!(big["content"].as_str().unwrap().len() as u64, SOURCE_FILE_CAP);
    assert_eq!(big["truncated"], true);
    assert_eq!(attempts(&paths, "api"), 7);
}

#[test]
fn context_without_state_log_or_journal_is_still_built() {
    let (_d, paths, c) = setup();
    fs::remove_file(paths.state()).unwrap();
    fs::remove_file(paths.component_log(&c.name)).unwrap();
    let ctx = build_failure_context(&paths, &c, "boom");
    assert_eq!(
        (ctx["exit_status"].clone(), ctx["log_tail"].clone(), ctx["history"].clone()),
        (Value::Null, json!([]), json!([]))
    );
}

#[test]
fn sources_share_one_total_cap() {
    let (_d, paths, c) = setup();
    for i in 0..6 {
        fs::write(paths.join(format!("svc/f{i}.txt")), "z".repeat(60 * 1024)).unwrap();
    }
    let ctx = build_failure_context(&paths, &c, "boom");
    let total: usize = ctx["sources"].as_array().unwrap().iter().map(|s| s["content"].as_str().unwrap().len()).sum();
    assert_eq!(total as u64, SOURCES_CAP);
}
