//! Reading, parsing and validating config files. Every problem in a file is collected and
//! reported at once, each naming the file, the field path and what is allowed.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::raw::{self, CommandSpec, DependsOnSpec, ProbeSpec, RawComponent, RawConfig, RawEnv};
use super::resolved::*;

/// One validation problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    /// Field path such as `components[3].depends_on[0]`; empty for the whole file.
    pub field: String,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(f, "{}: {}: {}", self.file.display(), self.field, self.message)
        }
    }
}

/// Every problem found in the config files.
#[derive(Debug, thiserror::Error)]
pub struct Invalid(pub Vec<Diagnostic>);

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let n = self.0.len();
        writeln!(f, "{n} problem{} in the config:", if n == 1 { "" } else { "s" })?;
        for d in &self.0 {
            writeln!(f, "  {d}")?;
        }
        Ok(())
    }
}

struct Diags<'a> {
    file: &'a Path,
    list: Vec<Diagnostic>,
    /// Log-probe regexes compiled so far: a thousand components usually share a handful.
    regexes: HashMap<String, std::sync::Arc<regex::Regex>>,
}

impl Diags<'_> {
    fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.list.push(Diagnostic { file: self.file.to_path_buf(), field: field.into(), message: message.into() });
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") }
}

/// Property names of a config struct, from its generated schema (one source of truth).
fn known_fields<T: JsonSchema>() -> Vec<String> {
    let schema = schemars::schema_for!(T);
    schema.schema.object.map(|o| o.properties.keys().cloned().collect()).unwrap_or_default()
}

/// Levenshtein distance, for did-you-mean hints.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(row[j + 1] + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// The closest candidate within a small edit distance.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (distance(&word.to_lowercase(), &c.to_lowercase()), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn hint(word: &str, candidates: &[String]) -> String {
    match did_you_mean(word, candidates.iter().map(String::as_str)) {
        Some(s) => format!("; did you mean `{s}`?"),
        None => String::new(),
    }
}

/// Adds a did-you-mean to serde's "unknown field/variant `x`, expected one of `a`, `b`".
pub fn explain_serde(msg: &str) -> String {
    let msg = msg.split(" at line ").next().unwrap_or(msg).to_owned();
    let unknown = msg.strip_prefix("unknown field `").or_else(|| msg.strip_prefix("unknown variant `"));
    if let Some(rest) = unknown {
        let word = rest.split('`').next().unwrap_or_default();
        let candidates: Vec<String> = msg
            .split("expected ")
            .nth(1)
            .unwrap_or_default()
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect();
        return format!("{msg}{}", hint(word, &candidates));
    }
    msg
}

/// Parses a JSON object into `T` field by field so every bad field is reported, not just the
/// first. Unknown keys are reported with a did-you-mean and dropped.
fn parse_object<T: DeserializeOwned + Default>(value: &Value, known: &[String], path: &str, diags: &mut Diags) -> T {
    let Some(obj) = value.as_object() else {
        diags.push(path, format!("expected an object, found {}", type_name(value)));
        return T::default();
    };
    let mut known_part = Map::new();
    for (key, v) in obj {
        if known.iter().any(|k| k == key) {
            known_part.insert(key.clone(), v.clone());
        } else {
            diags.push(join(path, key), format!("unknown field `{key}`{}", hint(key, known)));
        }
    }
    // The common case, a valid object, costs one deserialization; only a failing one is taken
    // apart key by key so that every bad field is reported, not just the first.
    if let Ok(parsed) = serde_json::from_value::<T>(Value::Object(known_part.clone())) {
        return parsed;
    }
    let mut good = Map::new();
    for (key, v) in known_part {
        let single = Value::Object(Map::from_iter([(key.clone(), v.clone())]));
        match serde_json::from_value::<T>(single) {
            Ok(_) => {
                good.insert(key, v);
            }
            Err(e) => diags.push(join(path, &key), explain_serde(&e.to_string())),
        }
    }
    serde_json::from_value(Value::Object(good)).unwrap_or_default()
}

/// How a JSON value's type is named in messages.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Reads a JSON or YAML file (by extension) into a JSON value.
pub fn read_document(file: &Path) -> Result<Value, Diagnostic> {
    let diag = |message: String| Diagnostic { file: file.to_path_buf(), field: String::new(), message };
    let text = super::limits::read_capped(file).map_err(|e| {
        diag(if e.kind() == std::io::ErrorKind::FileTooLarge {
            format!("{e}; razar refuses it before parsing")
        } else {
            format!("cannot read the file ({e}); check the path or pass --config")
        })
    })?;
    let yaml = matches!(file.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"));
    super::limits::check_depth(&text, yaml).map_err(diag)?;
    if yaml {
        serde_norway::from_str::<Value>(&text).map_err(|e| diag(format!("malformed YAML: {e}")))
    } else {
        serde_json::from_str::<Value>(&text).map_err(|e| diag(format!("malformed JSON: {e}")))
    }
}

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
    let components = resolve_components(&raw_components, root, &layers, &mut diags);
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
        components,
        layers: used,
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

fn load_layers(
    env_file: &Path,
    components: &[(usize, RawComponent)],
    diags: &mut Diags,
) -> BTreeMap<String, Vec<String>> {
    let wanted = components.iter().any(|(_, c)| c.layer.is_some());
    if !env_file.exists() {
        if wanted {
            for (i, c) in components {
                if let Some(layer) = &c.layer {
                    diags.push(
                        format!("components[{i}].layer"),
                        format!("layer `{layer}` needs {} with `layers: {{{layer}: [...]}}`", env_file.display()),
                    );
                }
            }
        }
        return BTreeMap::new();
    }
    let doc = match read_document(env_file) {
        Ok(d) => d,
        Err(d) => {
            diags.list.push(d);
            return BTreeMap::new();
        }
    };
    let mut env_diags = Diags { file: env_file, list: Vec::new(), regexes: HashMap::new() };
    let raw: RawEnv = parse_object(&doc, &known_fields::<RawEnv>(), "", &mut env_diags);
    if doc.get("layers").is_none() {
        env_diags.push("layers", "missing: give `layers: {name: [pip requirement, ...]}`");
    }
    for (name, reqs) in &raw.layers {
        if ComponentName::new(name).is_err() {
            env_diags.push(format!("layers.{name}"), "layer names use A-Z a-z 0-9 _ . - only");
        }
        if reqs.iter().any(|r| r.trim().is_empty() || r.trim_start().starts_with('-')) {
            env_diags.push(format!("layers.{name}"), "requirements must be non-empty and not pip options");
        }
    }
    diags.list.extend(env_diags.list);
    let names: Vec<String> = raw.layers.keys().cloned().collect();
    for (i, c) in components {
        if let Some(layer) = &c.layer
            && !raw.layers.contains_key(layer)
        {
            diags.push(
                format!("components[{i}].layer"),
                format!("unknown layer `{layer}` (not in {}){}", env_file.display(), hint(layer, &names)),
            );
        }
    }
    raw.layers
}

fn resolve_components(
    raws: &[(usize, RawComponent)],
    root: &Path,
    layers: &BTreeMap<String, Vec<String>>,
    diags: &mut Diags,
) -> Vec<std::sync::Arc<Component>> {
    let _ = layers;
    let mut by_name: HashMap<String, usize> = HashMap::new();
    let mut names: Vec<Option<ComponentName>> = Vec::with_capacity(raws.len());
    for (i, raw) in raws {
        let path = format!("components[{i}].name");
        let name = match &raw.name {
            None => {
                diags.push(&path, "missing: every component needs a unique `name`");
                None
            }
            Some(n) => match ComponentName::new(n) {
                Err(e) => {
                    diags.push(&path, e);
                    None
                }
                Ok(name) => {
                    if let Some(first) = by_name.get(n) {
                        diags.push(
                            &path,
                            format!("duplicate name `{n}` (first used by components[{first}]); names must be unique"),
                        );
                    } else {
                        by_name.insert(n.clone(), *i);
                    }
                    Some(name)
                }
            },
        };
        names.push(name);
    }
    let all_names: Vec<String> = by_name.keys().cloned().collect();

    let mut out = Vec::with_capacity(raws.len());
    let mut dep_index: Vec<Vec<usize>> = Vec::with_capacity(raws.len());
    for ((i, raw), name) in raws.iter().zip(names) {
        let at = |field: &str| format!("components[{i}].{field}");
        let command = match &raw.command {
            None => {
                diags.push(at("command"), "missing: give an argv list or a shell string");
                None
            }
            Some(spec) => resolve_command(spec, &at("command"), diags),
        };
        let health_check = raw.health_check.as_ref().and_then(|p| resolve_probe(p, &at("health_check"), root, diags));
        let liveness = raw.liveness.as_ref().and_then(|p| resolve_probe(p, &at("liveness"), root, diags));
        let kind = match raw.kind {
            Some(raw::Kind::Service) => {
                if raw.health_check.is_none() {
                    diags.push(
                        at("health_check"),
                        "a `kind: service` needs a probe: add `health_check` (argv or {http|tcp|log|file|exec: ...}), or use `kind: task`",
                    );
                }
                Kind::Service
            }
            Some(raw::Kind::Task) => Kind::Task,
            None if raw.health_check.is_some() => Kind::Service,
            None => Kind::Task,
        };
        if kind == Kind::Task && raw.liveness.is_some() && raw.health_check.is_none() {
            diags.push(
                at("liveness"),
                "a component without a readiness probe is a task and gets no liveness probe: add `health_check` or remove `liveness`",
            );
        }
        let mut deps = Vec::new();
        let mut idx = Vec::new();
        let edges: Vec<(String, raw::RawEdge)> = match &raw.depends_on {
            None => Vec::new(),
            Some(DependsOnSpec::Names(v)) => v.iter().map(|n| (n.clone(), raw::RawEdge::default())).collect(),
            Some(DependsOnSpec::Edges(v)) => v.clone(),
        };
        for (j, (dep, edge)) in edges.into_iter().enumerate() {
            let field = match &raw.depends_on {
                Some(DependsOnSpec::Edges(_)) => format!("components[{i}].depends_on.{dep}"),
                _ => format!("components[{i}].depends_on[{j}]"),
            };
            match by_name.get(&dep) {
                None => diags.push(field, format!("unknown component `{dep}`{}", hint(&dep, &all_names))),
                Some(&k) if k == *i => diags.push(field, "a component cannot depend on itself"),
                Some(&k) => {
                    if let Ok(n) = ComponentName::new(&dep) {
                        idx.push(k);
                        deps.push(Dependency {
                            name: n,
                            condition: edge.condition.unwrap_or(Condition::Healthy),
                            timeout: edge.timeout.map(|d| d.0),
                            restart: edge.restart.unwrap_or(false),
                        });
                    }
                }
            }
        }
        dep_index.push(idx);
        let mut env = BTreeMap::new();
        for (k, v) in raw.env.clone().unwrap_or_default() {
            if k.is_empty() || k.contains('=') || k.contains('\0') || v.contains('\0') {
                diags.push(at(&format!("env.{k}")), "environment names must be non-empty without `=` or NUL");
            } else {
                env.insert(k, v);
            }
        }
        let restart = resolve_restart(raw.restart.clone().unwrap_or_default(), &at("restart"), diags);
        let shutdown = resolve_shutdown(raw.shutdown.clone().unwrap_or_default(), &at("shutdown.signal"), diags);
        let tests = raw
            .tests
            .iter()
            .flatten()
            .enumerate()
            .filter_map(|(t, spec)| resolve_command(spec, &at(&format!("tests[{t}]")), diags))
            .collect();
        let stop = raw.stop.as_ref().and_then(|s| resolve_command(s, &at("stop"), diags));
        let mut sources = Vec::new();
        for (s, src) in raw.sources.iter().flatten().enumerate() {
            let p = Path::new(src);
            if src.is_empty() || p.is_absolute() || p.components().any(|c| matches!(c, std::path::Component::ParentDir))
            {
                diags.push(
                    at(&format!("sources[{s}]")),
                    format!("{src:?}: sources are relative paths inside the root, without `..`"),
                );
            } else {
                sources.push(root.join(p));
            }
        }
        if let (Some(name), Some(command)) = (name, command) {
            out.push(std::sync::Arc::new(Component {
                name,
                index: *i,
                command,
                kind,
                priority: raw.priority,
                depends_on: deps,
                env,
                working_dir: raw.working_dir.as_ref().map_or_else(|| root.to_path_buf(), |w| root.join(w)),
                layer: raw.layer.clone(),
                health_check,
                liveness,
                restart,
                shutdown,
                ready_timeout: raw.ready_timeout.map(|d| d.0),
                enabled: raw.enabled.unwrap_or(true),
                tests,
                sources,
                stop,
            }));
        }
    }
    if diags.list.is_empty() {
        let priority: Vec<Option<i64>> = raws.iter().map(|(_, c)| c.priority).collect();
        let graph = super::graph::WaitGraph::new(&dep_index, &priority);
        if let Some(cycle) = graph.find_cycle() {
            let names: Vec<&str> = out.iter().map(|c| c.name.as_str()).collect();
            let text: Vec<String> = cycle.iter().map(|&v| graph.describe(v, &names)).collect();
            diags.push(
                "components",
                format!("dependency cycle: {}; remove one `depends_on` edge or change a `priority`", text.join(" → ")),
            );
        }
    }
    out
}

fn resolve_command(spec: &CommandSpec, path: &str, diags: &mut Diags) -> Option<Command> {
    match spec {
        CommandSpec::Argv(v) if v.is_empty() || v[0].is_empty() => {
            diags.push(path, "empty argv: the first element is the program to run");
            None
        }
        CommandSpec::Shell(s) if s.trim().is_empty() => {
            diags.push(path, "empty shell command");
            None
        }
        CommandSpec::Argv(v) => Some(Command::Argv(v.clone())),
        CommandSpec::Shell(s) => Some(Command::Shell(s.clone())),
    }
}

fn resolve_probe(spec: &ProbeSpec, path: &str, root: &Path, diags: &mut Diags) -> Option<Probe> {
    let p = match spec {
        ProbeSpec::Argv(argv) => raw::RawProbe { exec: Some(argv.clone()), ..Default::default() },
        ProbeSpec::Object(p) => (**p).clone(),
    };
    let kinds = [
        ("exec", p.exec.is_some()),
        ("http", p.http.is_some()),
        ("tcp", p.tcp.is_some()),
        ("log", p.log.is_some()),
        ("file", p.file.is_some()),
    ];
    let present: Vec<&str> = kinds.iter().filter(|(_, on)| *on).map(|(k, _)| *k).collect();
    if present.len() != 1 {
        diags.push(
            path,
            format!(
                "a probe has exactly one kind key (exec, http, tcp, log or file); found {}",
                if present.is_empty() { "none".to_owned() } else { present.join(", ") }
            ),
        );
        return None;
    }
    if p.http.is_none() && (p.status.is_some() || p.body.is_some()) {
        diags.push(path, "`status` and `body` apply to http probes only");
    }
    let kind = if let Some(argv) = p.exec {
        if argv.is_empty() || argv[0].is_empty() {
            diags.push(join(path, "exec"), "empty argv: the first element is the program to run");
            return None;
        }
        ProbeKind::Exec(argv)
    } else if let Some(url) = p.http {
        if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() < 10 {
            diags.push(join(path, "http"), format!("{:?} is not an http:// or https:// URL", crate::redact::url(&url)));
            return None;
        }
        let status = p.status.map_or((200, 399), |s| (s.0, s.1));
        ProbeKind::Http { url, status, body: p.body }
    } else if let Some(addr) = p.tcp {
        match addr.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => ProbeKind::Tcp(addr),
            _ => {
                diags.push(join(path, "tcp"), format!("{addr:?} is not host:port (e.g. \"127.0.0.1:5432\")"));
                return None;
            }
        }
    } else if let Some(re) = p.log {
        let compiled = match diags.regexes.get(&re) {
            Some(r) => Ok(r.clone()),
            None => regex::Regex::new(&re).map(std::sync::Arc::new),
        };
        match compiled {
            Ok(r) => {
                diags.regexes.insert(re, r.clone());
                ProbeKind::Log(r)
            }
            Err(e) => {
                diags.push(join(path, "log"), format!("invalid regex: {e}"));
                return None;
            }
        }
    } else {
        let f = p.file.unwrap_or_default();
        if f.is_empty() {
            diags.push(join(path, "file"), "empty path");
            return None;
        }
        ProbeKind::File(root.join(f))
    };
    for (field, v) in [("success_threshold", p.success_threshold), ("failure_threshold", p.failure_threshold)] {
        if v == Some(0) {
            diags.push(join(path, field), "must be at least 1");
        }
    }
    let period = p.period.map_or(Duration::from_secs(10), |d| d.0);
    let timeout = p.timeout.map_or(Duration::from_secs(1), |d| d.0);
    for (field, v) in [("period", period), ("timeout", timeout)] {
        if v.is_zero() {
            diags.push(join(path, field), "must be greater than 0");
        }
    }
    Some(Probe {
        kind,
        initial_delay: p.initial_delay.map_or(Duration::ZERO, |d| d.0),
        period,
        timeout,
        success_threshold: p.success_threshold.unwrap_or(1).max(1),
        failure_threshold: p.failure_threshold.unwrap_or(3).max(1),
        start_interval: p.start_interval.map_or(Duration::from_millis(100), |d| d.0).max(Duration::from_millis(1)),
    })
}

fn resolve_restart(raw: raw::RawRestart, path: &str, diags: &mut Diags) -> Restart {
    let d = Restart::default();
    let b = raw.backoff.unwrap_or_default();
    let r = Restart {
        policy: match raw.policy {
            None => d.policy,
            Some(raw::RestartPolicyKind::Never) => RestartPolicy::Never,
            Some(raw::RestartPolicyKind::OnFailure) => RestartPolicy::OnFailure,
            Some(raw::RestartPolicyKind::Always) => RestartPolicy::Always,
        },
        initial: b.initial.map_or(d.initial, |x| x.0),
        max: b.max.map_or(d.max, |x| x.0),
        multiplier: b.multiplier.unwrap_or(d.multiplier),
        jitter: b.jitter.unwrap_or(d.jitter),
        max_restarts: raw.max_restarts.unwrap_or(d.max_restarts),
        window: raw.window.map_or(d.window, |x| x.0),
    };
    if !(1.0..=100.0).contains(&r.multiplier) {
        diags.push(format!("{path}.backoff.multiplier"), "must be between 1.0 and 100.0");
    }
    if !(0.0..=1.0).contains(&r.jitter) {
        diags.push(format!("{path}.backoff.jitter"), "must be between 0.0 and 1.0 (a fraction of the delay)");
    }
    if r.max < r.initial {
        diags.push(format!("{path}.backoff.max"), "must be at least `initial`");
    }
    r
}

/// Signal names accepted by `shutdown.signal`.
pub const SIGNALS: &[&str] = &["SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGKILL"];

fn resolve_shutdown(raw: raw::RawShutdown, path: &str, diags: &mut Diags) -> Shutdown {
    let d = Shutdown::default();
    let signal = match raw.signal {
        None => d.signal,
        Some(name) => {
            let upper = name.to_ascii_uppercase();
            let full = if upper.starts_with("SIG") { upper } else { format!("SIG{upper}") };
            match full.parse::<nix::sys::signal::Signal>() {
                Ok(s) if SIGNALS.contains(&full.as_str()) => s,
                _ => {
                    diags.push(path, format!("unknown signal {name:?}; use one of {}", SIGNALS.join(", ")));
                    d.signal
                }
            }
        }
    };
    Shutdown { signal, grace: raw.grace.map_or(d.grace, |g| g.0) }
}

fn resolve_crown(raw: raw::RawCrown, root: &Path, env: &dyn Env, diags: &mut Diags) -> CrownConfig {
    let from_env = env.var("CROWN_WS_URL");
    let field = if from_env.is_some() { "crown.url (CROWN_WS_URL in the environment)" } else { "crown.url" };
    let url = from_env.or(raw.url);
    let allow_insecure = raw.allow_insecure.unwrap_or(false);
    if let Some(u) = &url
        && let Err(e) = check_ws_url(u, allow_insecure)
    {
        diags.push(field, e);
    }
    let launcher = match raw.model_launcher {
        Some(l) => Some(root.join(l)),
        None => Some(root.join("crown_model_launcher.sh")).filter(|p| p.exists()),
    };
    CrownConfig {
        url,
        timeout: raw.timeout.map_or(Duration::from_secs(10), |d| d.0),
        max_reply_bytes: raw.max_reply_bytes.unwrap_or(1 << 20),
        model_launcher: launcher,
        required_capabilities: raw.required_capabilities.unwrap_or_default(),
        allow_insecure,
    }
}

/// `ws://` must stay on loopback unless the operator opts in; `wss://` may go anywhere.
pub fn check_ws_url(url: &str, allow_insecure: bool) -> Result<(), String> {
    let shown = crate::redact::url(url);
    let rest = if let Some(r) = url.strip_prefix("wss://") {
        r
    } else if let Some(r) = url.strip_prefix("ws://") {
        let host = host_of(r);
        if !allow_insecure && !is_loopback(host) {
            return Err(format!(
                "{shown:?} is plain ws:// to a non-loopback host; use wss:// or set crown.allow_insecure: true"
            ));
        }
        r
    } else {
        return Err(format!("{shown:?} is not a ws:// or wss:// URL"));
    };
    if host_of(rest).is_empty() {
        return Err(format!("{shown:?} has no host"));
    }
    Ok(())
}

fn host_of(after_scheme: &str) -> &str {
    let authority = after_scheme.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority.rsplit('@').next().unwrap_or_default();
    if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        authority.split(':').next().unwrap_or_default()
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn resolve_metrics(raw: raw::RawMetrics, root: &Path, diags: &mut Diags) -> MetricsConfig {
    let address = match raw.address {
        None => IpAddr::V4(Ipv4Addr::LOCALHOST),
        Some(a) => a.parse().unwrap_or_else(|_| {
            diags.push("metrics.address", format!("{a:?} is not an IP address (e.g. 127.0.0.1 or 0.0.0.0)"));
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        }),
    };
    MetricsConfig {
        enabled: raw.enabled.unwrap_or(true),
        port: raw.port,
        address,
        textfile: root.join(raw.textfile.unwrap_or_else(|| "monitoring/boot_metrics.prom".into())),
    }
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
