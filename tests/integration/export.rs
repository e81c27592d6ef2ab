//! `razar export` through the real binary: golden files of the demo stack per format, the
//! engines' own validator (`systemd-analyze verify`), the exported readiness gates
//! (`ExecStartPost=`, initContainer, exec probes) run against live loopback services, `--out`
//! refusing to replace files without `--force`, secrets kept out, and the upstream configs.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::harness::{Razar, Run};
use crate::probe::{closed_port, serve};

const ROOT: &str = "/srv/stack";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_razar")
}

/// `razar --root /srv/stack export …` with a fixed PATH, so the output is the same on every
/// machine with Debian's /usr/bin/sh and /usr/bin/python3.
fn export_demo(format: &str) -> Run {
    let config = repo().join("config/boot_config.json");
    let out = Command::new(bin())
        .args(["--root", ROOT, "export", "--format", format, "--config"])
        .arg(&config)
        .env("PATH", "/usr/bin:/bin")
        .env_remove("RAZAR_ROOT")
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Compares `actual` with the golden file; `RAZAR_UPDATE_GOLDEN=1` rewrites it instead.
fn golden(name: &str, actual: &str) {
    let path = repo().join("tests/fixtures/export").join(name);
    if std::env::var_os("RAZAR_UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if expected != actual {
        let diff = diffy::create_patch(&expected, actual);
        panic!("{} differs from the export (RAZAR_UPDATE_GOLDEN=1 rewrites it):\n{diff}", path.display());
    }
}

/// Every note on stderr also appears as a comment in the output, and there is at least one.
fn notes_match_comments(run: &Run, engine: &str) {
    let prefix = format!("razar: export: not expressible in {engine}: ");
    let notes: Vec<&str> = run.stderr.lines().filter_map(|l| l.strip_prefix(prefix.as_str())).collect();
    assert!(!notes.is_empty(), "no notes on stderr:\n{}", run.stderr);
    for n in notes {
        assert!(run.stdout.contains(&format!("#   {n}")), "note not in the output: {n}");
    }
}

#[test]
fn systemd_export_of_the_demo_stack_matches_its_golden_file() {
    let run = export_demo("systemd");
    run.expect_code(0);
    golden("boot_config.systemd", &run.stdout);
    notes_match_comments(&run, "systemd");
    // The log probe of `worker` cannot gate a unit: said on stderr, not dropped.
    assert!(run.stderr.contains("worker: health_check: a log probe"), "{}", run.stderr);
}

#[test]
fn k8s_export_of_the_demo_stack_matches_its_golden_file() {
    let run = export_demo("k8s");
    run.expect_code(0);
    golden("boot_config.k8s.yaml", &run.stdout);
    notes_match_comments(&run, "Kubernetes");
    assert!(run.stderr.contains("report: depends_on.worker: no gate on worker"), "{}", run.stderr);
}

/// Splits a systemd command line into its words as the unit parser does: double and single
/// quotes, C escapes, `$$` and `%%`.
fn systemd_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(&first) = chars.peek() else { break };
        let mut w = String::new();
        if first == '"' || first == '\'' {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    c if c == first => break,
                    '\\' => match chars.next() {
                        Some('n') => w.push('\n'),
                        Some('t') => w.push('\t'),
                        Some(o) => w.push(o),
                        None => {}
                    },
                    c => w.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                chars.next();
                w.push(c);
            }
        }
        words.push(w.replace("$$", "$").replace("%%", "%"));
    }
    words
}

fn unit_value<'a>(unit: &'a str, key: &str) -> &'a str {
    unit.lines().find_map(|l| l.strip_prefix(&format!("{key}="))).unwrap_or_else(|| panic!("no {key}= in\n{unit}"))
}

/// A service `web` on a live port with an http probe, and `client` depending on it.
fn web_stack(r: &Razar, port: u16) {
    r.config(json!({"mission": "gate", "components": [
        {"name": "web", "command": ["sleep", "60"],
         "health_check": {"http": format!("http://127.0.0.1:{port}/healthz"), "body": "ok", "period": "2s"}},
        {"name": "client", "command": ["sleep", "60"], "depends_on": ["web"],
         "health_check": {"exec": ["sh", "-c", "test -n \"$RAZAR_COMPONENT\""]}}
    ]}));
}

#[test]
fn the_exported_exec_start_post_gate_passes_against_a_live_service_and_the_units_verify() {
    let r = Razar::new();
    let server = serve(2, "ok");
    web_stack(&r, server.port);
    let out = r.run(&["export", "--format", "systemd", "--out", "units", "--razar", bin()]);
    out.expect_code(0);
    let unit = r.read("units/gate-web.service");
    assert!(unit.contains("Type=exec"), "{unit}");
    let client = r.read("units/gate-client.service");
    assert!(client.contains("Requires=gate-web.service") && client.contains("After=gate-web.service"), "{client}");

    // The gate, run as systemd would run it (in WorkingDirectory), waits out two 503s.
    let argv = systemd_words(unit_value(&unit, "ExecStartPost"));
    assert_eq!(&argv[..2], [bin(), "probe"]);
    assert!(argv.contains(&"--wait".to_owned()), "{argv:?}");
    let gate = Command::new(&argv[0]).args(&argv[1..]).current_dir(unit_value(&unit, "WorkingDirectory")).output();
    let gate = gate.unwrap();
    assert!(
        gate.status.success(),
        "the exported ExecStartPost failed against a live service: {argv:?}\n{}",
        String::from_utf8_lossy(&gate.stderr)
    );
    assert_eq!(server.hits.load(std::sync::atomic::Ordering::SeqCst), 3, "two 503s, then the 200");
    // The same gate against a service that is down fails.
    let mut dead: Vec<String> =
        argv.iter().map(|w| w.replace(&server.port.to_string(), &closed_port().to_string())).collect();
    let t = dead.iter().position(|w| w == "--timeout").unwrap();
    dead[t + 1] = "500ms".into();
    let code = Command::new(&dead[0]).args(&dead[1..]).output().unwrap().status.code();
    assert_eq!(code, Some(8), "a gate on a dead service must fail: {dead:?}");

    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .args(["gate-web.service", "gate-client.service", "gate.target"])
        .current_dir(r.path("units"))
        .output()
        .expect("systemd-analyze (Debian package systemd; scripts/install-test-deps installs it)");
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "systemd-analyze verify rejected the export:\n{}",
        String::from_utf8_lossy(&verify.stderr)
    );
}

#[test]
fn the_exported_init_container_and_probes_pass_against_a_live_service() {
    let r = Razar::new();
    let server = serve(2, "ok");
    web_stack(&r, server.port);
    let out = r.run(&["export", "--format", "k8s", "--razar", bin()]);
    out.expect_code(0);
    let docs: Vec<Value> = out
        .stdout
        .split("\n---\n")
        .skip(1)
        .map(|d| serde_norway::from_str(d).unwrap_or_else(|e| panic!("{e}:\n{d}")))
        .collect();
    let find = |kind: &str, name: &str| {
        docs.iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name}"))
    };
    let svc = find("Service", "web");
    assert_eq!(svc["spec"]["ports"][0]["port"], json!(server.port));
    let client = find("Deployment", "client");
    let init = &client["spec"]["template"]["spec"]["initContainers"][0];
    let cmd: Vec<String> = serde_json::from_value(init["command"].clone()).unwrap();
    let service_url = format!("http://web:{}/healthz", server.port);
    assert_eq!(&cmd[..3], [bin(), "probe", service_url.as_str()], "the gate asks web's Service");
    assert!(cmd.contains(&"--wait".to_owned()) && cmd.contains(&"ok".to_owned()), "{cmd:?}");
    // Cluster DNS resolves the Service name `web`; on this host it is the loopback address.
    let here: Vec<String> = cmd.iter().map(|w| w.replace("http://web:", "http://127.0.0.1:")).collect();
    let gate = Command::new(&here[0]).args(&here[1..]).current_dir(r.root()).output().unwrap();
    assert!(
        gate.status.success(),
        "the exported initContainer command failed against a live service: {here:?}\n{}",
        String::from_utf8_lossy(&gate.stderr)
    );
    assert_eq!(server.hits.load(std::sync::atomic::Ordering::SeqCst), 3, "two 503s, then the 200");

    // web's readiness probe (status/body need razar probe) and client's exec probe pass too.
    let web = find("Deployment", "web");
    let container = &web["spec"]["template"]["spec"]["containers"][0];
    let probe: Vec<String> = serde_json::from_value(container["readinessProbe"]["exec"]["command"].clone()).unwrap();
    let status = Command::new(&probe[0]).args(&probe[1..]).output().unwrap().status;
    assert!(status.success(), "{probe:?}");
    assert_eq!(container["readinessProbe"]["periodSeconds"], json!(2));
    let c = &client["spec"]["template"]["spec"]["containers"][0];
    let probe: Vec<String> = serde_json::from_value(c["readinessProbe"]["exec"]["command"].clone()).unwrap();
    let status = Command::new(&probe[0]).args(&probe[1..]).env("RAZAR_COMPONENT", "client").output().unwrap().status;
    assert!(status.success(), "{probe:?}");
}

#[test]
fn out_refuses_to_replace_a_file_without_force_and_names_it_with_force() {
    let r = Razar::new();
    r.config(json!({"mission": "m", "components": [{"name": "a", "command": ["true"]}]}));
    r.write("units/m-a.service", "mine\n");
    let before = r.snapshot("units");
    let out = r.run(&["export", "--format", "systemd", "--out", "units", "--razar", bin()]);
    out.expect_code(2);
    assert!(out.stderr.contains("already holds m-a.service") && out.stderr.contains("--force"), "{}", out.stderr);
    assert_eq!(r.snapshot("units"), before, "a refused export wrote nothing");
    let out = r.run(&["export", "--format", "systemd", "--out", "units", "--razar", bin(), "--force"]);
    out.expect_code(0);
    assert!(out.stderr.contains("replaced") && out.stderr.contains("m-a.service"), "{}", out.stderr);
    assert!(out.stdout.contains("wrote") && out.stdout.contains("m.target"), "{}", out.stdout);
    assert!(r.read("units/m-a.service").contains("Type=oneshot"));
    let out = r.run(&["export", "--format", "systemd", "--razar", "razar"]);
    out.expect_code(2);
    assert!(out.stderr.contains("absolute path"), "{}", out.stderr);
}

#[test]
fn secrets_in_env_are_never_written() {
    let r = Razar::new();
    r.config(json!({"components": [{"name": "a", "command": ["true"],
        "env": {"CROWN_TOKEN": "s3cr3t-one", "DB_PASSWORD": "s3cr3t-two", "MODE": "fast"}}]}));
    for format in ["systemd", "k8s"] {
        let out = r.run(&["export", "--format", format, "--razar", bin()]);
        out.expect_code(0);
        assert!(!out.stdout.contains("s3cr3t") && !out.stderr.contains("s3cr3t"), "{format} leaked a secret");
        assert!(out.stdout.contains("MODE"), "{format} dropped a plain variable");
        assert!(out.stderr.contains("a: env.DB_PASSWORD: looks like a secret"), "{}", out.stderr);
    }
    let out = r.run(&["export", "--format", "k8s"]);
    assert!(out.stdout.contains("secretKeyRef"), "{}", out.stdout);
}

fn verify_dir(dir: &Path) {
    let files: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    let out = Command::new("systemd-analyze").arg("verify").args(&files).current_dir(dir).output().unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify rejected {}:\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_upstream_configs_export_and_their_units_verify() {
    let Some(seeds) = crate::testutil::upstream("export::the_upstream_configs_export_and_their_units_verify", "")
    else {
        return;
    };
    let r = Razar::new();
    r.write("config/boot_config.json", &std::fs::read_to_string(seeds.join("razar/boot_config.json")).unwrap());
    r.write("config/razar_config.yaml", &std::fs::read_to_string(seeds.join("config/razar_config.yaml")).unwrap());
    for (config, dir) in [("config/boot_config.json", "json"), ("config/razar_config.yaml", "yaml")] {
        let out = r.run(&["export", "--format", "systemd", "--config", config, "--out", dir, "--razar", bin()]);
        out.expect_code(0);
        verify_dir(&r.path(dir));
        let out = r.run(&["export", "--format", "k8s", "--config", config]);
        out.expect_code(0);
        assert!(out.stdout.contains("kind: "), "{}", out.stdout);
    }
    // Priority tiers become After= chains: tier 3 waits for tier 2, which waits for tier 1.
    let audio = r.read("yaml/razar-audio_device.service");
    for tier2 in ["chat_gateway", "crown_llm", "vision_adapter"] {
        assert!(audio.contains(&format!("After=razar-{tier2}.service")), "{audio}");
    }
    assert!(!audio.contains("After=razar-memory_store.service"), "only the tier just below: {audio}");
    let vision = r.read("yaml/razar-vision_adapter.service");
    assert!(vision.contains("After=razar-memory_store.service") && vision.contains("ExecStop="), "{vision}");
}

/// `razar --root /srv/stack export` of the field-by-field fixture.
fn export_full(format: &str, dir: &Path) -> Run {
    let config = repo().join("tests/fixtures/export/full.json");
    let out = Command::new(bin())
        .args(["--root", ROOT, "export", "--format", format, "--razar", bin(), "--out"])
        .arg(dir)
        .arg("--config")
        .arg(&config)
        .env_remove("RAZAR_ROOT")
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn each_field_of_the_fixture_lands_where_docs_export_md_says() {
    let dir = tempfile::tempdir().unwrap();
    export_full("systemd", &dir.path().join("s")).expect_code(0);
    let unit = |n: &str| std::fs::read_to_string(dir.path().join("s").join(format!("full-stack-{n}.service"))).unwrap();
    let api = unit("Web_API");
    for line in [
        "Requires=full-stack-db.service",
        "Requires=full-stack-schema.service",
        "Wants=full-stack-cache.service",
        "Environment=\"PERCENT=100%%\"",
        "Environment=\"HOME_DIR=$HOME\"",
        "TimeoutStartSec=50s",
    ] {
        assert!(api.lines().any(|l| l == line), "no {line} in\n{api}");
    }
    assert_eq!(api.matches("After=full-stack-cache.service").count(), 1, "{api}");
    assert!(api.contains("--status 200-204 --wait --timeout 45s --success-threshold 2"), "{api}");
    assert!(!api.contains("never-written"), "a secret reached a unit");
    let db = unit("db");
    for line in ["KillSignal=SIGINT", "TimeoutStopSec=20s", "Restart=always", "RestartSec=2s", "StartLimitBurst=4"] {
        assert!(db.lines().any(|l| l == line), "no {line} in\n{db}");
    }
    assert!(db.contains("StartLimitIntervalSec=300s") && db.contains("ExecStop=/"), "{db}");
    assert!(db.contains("--attempt-timeout 500ms --period 2s"), "{db}");
    let schema = unit("schema");
    assert!(schema.contains("Restart=no") && !schema.contains("StartLimitBurst"), "{schema}");
    let cache = unit("cache");
    assert!(cache.contains("WorkingDirectory=/srv/stack/svc/cache"), "{cache}");
    assert!(cache.contains("probe file:/srv/stack/run/cache.ready --wait"), "{cache}");
    let target = std::fs::read_to_string(dir.path().join("s/full-stack.target")).unwrap();
    assert!(!target.contains("nightly"), "a disabled component is not pulled in: {target}");

    let run = export_full("k8s", &dir.path().join("k"));
    run.expect_code(0);
    let text = std::fs::read_to_string(dir.path().join("k/full-stack.yaml")).unwrap();
    let docs: Vec<Value> = text.split("\n---\n").skip(1).map(|d| serde_norway::from_str(d).unwrap()).collect();
    let get =
        |kind: &str, name: &str| docs.iter().find(|d| d["kind"] == kind && d["metadata"]["name"] == name).unwrap();
    let api = get("Deployment", "web-api");
    let init: Vec<String> =
        serde_json::from_value(api["spec"]["template"]["spec"]["initContainers"][0]["command"].clone()).unwrap();
    assert_eq!(init[2..], ["tcp://db:5432", "--wait", "--timeout", "90s"], "{init:?}");
    assert_eq!(api["spec"]["template"]["spec"]["initContainers"].as_array().unwrap().len(), 1, "only db can be gated");
    let container = &api["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["livenessProbe"]["httpGet"], json!({"path": "/live", "port": 8080, "scheme": "HTTP"}));
    assert_eq!(container["readinessProbe"]["successThreshold"], json!(2));
    // 45 s ready budget at 1 s startup polling.
    assert_eq!(container["startupProbe"]["failureThreshold"], json!(45));
    let secret = container["env"].as_array().unwrap().iter().find(|e| e["name"] == "API_TOKEN").unwrap();
    assert_eq!(secret["valueFrom"]["secretKeyRef"], json!({"name": "full-stack-secrets", "key": "API_TOKEN"}));
    let db = get("Deployment", "db");
    assert_eq!(db["spec"]["template"]["spec"]["terminationGracePeriodSeconds"], json!(30), "20 s grace + 10 s stop");
    assert_eq!(get("Service", "db")["spec"]["ports"][0]["port"], json!(5432));
    assert_eq!(get("Job", "schema")["spec"]["backoffLimit"], json!(0));
    assert_eq!(get("Job", "schema")["spec"]["template"]["spec"]["restartPolicy"], json!("Never"));
    assert_eq!(get("Job", "nightly")["spec"]["suspend"], json!(true));
    for note in [
        "db: shutdown.signal:",
        "db: health_check.timeout: 500ms rounded up to 1 s",
        "Web_API: priority: tier 3",
        "Web_API: depends_on.schema: a pod cannot wait for a Job",
        "Web_API: depends_on.cache: condition `started`",
    ] {
        assert!(run.stderr.contains(note), "no note {note:?} in\n{}", run.stderr);
        assert!(text.contains(note), "note {note:?} not in the manifest's comments");
    }
}
