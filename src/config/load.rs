//! Reading, parsing and validating config files. Every problem in a file is collected and
//! reported at once, each naming the file, the field path and what is allowed.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde_json::Value;

pub use super::component::SIGNALS;
use super::component::*;
use super::diagnostics::*;
pub use super::diagnostics::{Diagnostic, Invalid, did_you_mean, explain_serde, type_name};
pub use super::document::read_document;
use super::document::*;
use super::raw::{RawComponent, RawConfig};
use super::resolved::*;
pub use super::sections::check_ws_url;
use super::sections::*;

/// Environment lookups the config resolution depends on, so tests can pass their own.
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

/// Loads and validates `file`; `root` resolves relative paths and holds `razar_env.yaml`.
pub fn load(file: &Path, root: &Path, env: &dyn Env) -> Result<Config, Invalid> {
    let doc = read_document(file).map_err(|d| Invalid(vec![d]))?;
    let mut diags = Diags { file, list: Vec::new(), regexes: HashMap::new() };
    // `components` is checked element by element below, so each problem is reported once
    // against the element's own path.
    let mut top = doc.clone();
    if let Some(obj) = top.as_object_mut()
        && obj.contains_key("components")
    {
        obj.insert("components".into(), Value::Array(Vec::new()));
    }
    let raw: RawConfig = parse_object(&top, &known_fields::<RawConfig>(), "", &mut diags);

    let component_fields = known_fields::<RawComponent>();
    let raw_components: Vec<(usize, RawComponent)> = match doc.get("components") {
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| (i, parse_object(v, &component_fields, &format!("components[{i}]"), &mut diags)))
            .collect(),
        Some(other) => {
            diags.push("components", format!("expected a list of components, found {}", type_name(other)));
            Vec::new()
        }
        None => {
            diags.push("components", "missing: list the stack's components under `components`");
            Vec::new()
        }
    };
    drop(raw.components);

    let env_file = root.join("razar_env.yaml");
    let layers = load_layers(&env_file, &raw_components, &mut diags);
    let (components, graph) = resolve_components(&raw_components, root, &layers, &mut diags);
    let crown = resolve_crown(raw.crown.unwrap_or_default(), root, env, &mut diags);
    let metrics = resolve_metrics(raw.metrics.unwrap_or_default(), root, &mut diags);
    if raw.jobs == Some(0) {
        diags.push("jobs", "must be at least 1 (omit it for no limit)");
    }
    let used: BTreeMap<String, Vec<String>> = layers
        .into_iter()
        .filter(|(name, _)| components.iter().any(|c| c.enabled && c.layer.as_deref() == Some(name)))
        .collect();
    let cfg = Config {
        source: file.to_path_buf(),
        mission: raw.mission,
        crown,
        metrics,
        jobs: raw.jobs,
        on_failure: raw.on_failure.unwrap_or_default(),
        ai_handover: raw.enable_ai_handover.unwrap_or(true),
        components,
        layers: used,
        graph,
    };
    for (field, message) in
        super::confine::check_config(&cfg, root, raw.allow_outside_root.as_deref().unwrap_or_default())
    {
        diags.push(field, message);
    }
    let mut list = diags.list;
    if !list.is_empty() {
        list.sort_by(|a, b| a.file.cmp(&b.file));
        return Err(Invalid(list));
    }
    Ok(cfg)
}

/// An empty environment, for tests that must not depend on the developer's shell.
#[cfg(test)]
pub(crate) struct NoEnv;

#[cfg(test)]
impl Env for NoEnv {
    fn var(&self, _: &str) -> Option<String> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn load_text(name: &str, text: &str) -> Result<Config, Invalid> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(name);
        std::fs::write(&file, text).unwrap();
        load(&file, dir.path(), &NoEnv)
    }

    fn problems(name: &str, text: &str) -> Vec<String> {
        load_text(name, text).unwrap_err().0.iter().map(|d| format!("{}: {}", d.field, d.message)).collect()
    }

    #[test]
    fn seed_configs_load_unchanged() {
        let Some(root) = crate::testutil::upstream("config::load::seed_configs_load_unchanged", "") else { return };
        let json = load(&root.join("razar/boot_config.json"), &root, &NoEnv).unwrap();
        assert_eq!(json.components.len(), 2);
        assert_eq!(json.components[0].kind, Kind::Service);
        let yaml = load(&root.join("config/razar_config.yaml"), &root, &NoEnv).unwrap();
        assert_eq!(yaml.components.len(), 7);
        assert!(yaml.components.iter().all(|c| c.kind == Kind::Task));
        assert_eq!(yaml.components[3].stop, Some(Command::Shell("echo 'stopping vision_adapter'".into())));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let got = problems(
            "c.json",
            r#"{"components": [
                {"name": "a", "command": ["x"], "depends_on": ["nope"], "helth_check": ["y"]},
                {"name": "a/b", "command": []},
                {"name": "a", "command": "x", "kind": "service"},
                {"name": "d", "command": "x", "ready_timeout": "5x"}
            ]}"#,
        );
        let text = got.join("\n");
        for want in [
            "components[0].depends_on[0]: unknown component `nope`",
            "components[0].helth_check: unknown field `helth_check`; did you mean `health_check`?",
            "components[1].name: \"a/b\" is not a valid component name",
            "components[1].command: empty argv",
            "components[2].name: duplicate name `a`",
            "components[2].health_check: a `kind: service` needs a probe",
            "components[3].ready_timeout: bad duration \"5x\"",
        ] {
            assert!(text.contains(want), "missing {want:?} in:\n{text}");
        }
    }

    #[test]
    fn each_problem_is_reported_once_at_its_own_path() {
        let got = problems("c.json", r#"{"components": [{"name": "a", "command": "x", "jobs": 1}]}"#);
        assert_eq!(got, vec!["components[0].jobs: unknown field `jobs`".to_owned()]);
        let got = problems("c.json", r#"{"components": {"a": 1}}"#);
        assert_eq!(got, vec!["components: expected a list of components, found an object".to_owned()]);
        let got = problems(
            "c.json",
            r#"{"components": [{"name": "a", "command": "x", "liveness": {"tcp": "127.0.0.1:1"}}]}"#,
        );
        assert!(got[0].starts_with("components[0].liveness: a component without a readiness probe"), "{got:?}");
    }

    #[test]
    fn nested_unknown_fields_get_a_hint() {
        let got = problems(
            "c.json",
            r#"{"components": [{"name": "a", "command": "x", "health_check": {"tcp": "127.0.0.1:1", "perod": "1s"}}]}"#,
        );
        assert!(got[0].contains("did you mean `period`?"), "{got:?}");
    }

    #[test]
    fn cycles_print_the_whole_cycle() {
        let got = problems(
            "c.yaml",
            "components:\n- {name: a, command: x, depends_on: [c]}\n- {name: b, command: x, depends_on: [a]}\n- {name: c, command: x, depends_on: [b]}\n",
        );
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].starts_with("components: dependency cycle: "), "{got:?}");
        assert_eq!(got[0].matches(" → ").count(), 3, "{got:?}");
    }

    #[test]
    fn malformed_documents_name_the_syntax_error() {
        let got = load_text("c.json", "{\"components\": [}").unwrap_err();
        assert!(got.0[0].message.starts_with("malformed JSON"), "{got}");
        let got = load_text("c.yaml", "components: [\n  - a: b: c").unwrap_err();
        assert!(got.0[0].message.starts_with("malformed YAML"), "{got}");
    }

    #[test]
    fn probe_objects_resolve_with_defaults() {
        let c = load_text(
            "c.json",
            r#"{"components": [{"name": "web", "command": "x", "health_check": {"http": "http://127.0.0.1:8000/", "status": "200-299", "period": "5s"}}]}"#,
        )
        .unwrap();
        let p = c.components[0].health_check.as_ref().unwrap();
        assert!(matches!(&p.kind, ProbeKind::Http { status: (200, 299), .. }));
        assert_eq!(p.period, Duration::from_secs(5));
        assert_eq!(p.timeout, Duration::from_secs(1));
        assert_eq!(p.failure_threshold, 3);
    }

    #[test]
    fn probe_urls_are_shown_without_credentials() {
        let kind = ProbeKind::Http { url: "https://u:p@h/".into(), status: (200, 399), body: None };
        assert_eq!(kind.to_string(), "http https://***@h/");
    }

    #[test]
    fn plain_ws_off_loopback_is_refused() {
        assert!(check_ws_url("ws://127.0.0.1:9/x", false).is_ok());
        assert!(check_ws_url("ws://crown.example:9/x", false).is_err());
        assert!(check_ws_url("ws://crown.example:9/x", true).is_ok());
        assert!(check_ws_url("wss://crown.example/x", false).is_ok());
        assert!(check_ws_url("http://x", true).is_err());
    }
}
