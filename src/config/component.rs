//! Resolving one component's raw fields (command, probes, restart, shutdown, dependencies)
//! into validated types, collecting every problem.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use super::diagnostics::*;
use super::raw::{self, CommandSpec, DependsOnSpec, ProbeSpec, RawComponent};
use super::resolved::*;

pub(super) fn resolve_components(
    raws: &[(usize, RawComponent)],
    root: &Path,
    layers: &BTreeMap<String, Vec<String>>,
    diags: &mut Diags,
) -> (Vec<std::sync::Arc<Component>>, Graph) {
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
    let mut checked = Graph::default();
    if diags.list.is_empty() {
        let priority: Vec<Option<i64>> = raws.iter().map(|(_, c)| c.priority).collect();
        let graph = super::graph::WaitGraph::new(&dep_index, &priority);
        checked.tier = priority.iter().map(|p| p.and_then(|p| graph.tiers.binary_search(&p).ok())).collect();
        checked.tiers = vec![Vec::new(); graph.tiers.len()];
        for (i, k) in checked.tier.iter().enumerate() {
            if let Some(k) = k {
                checked.tiers[*k].push(i);
            }
        }
        checked.deps = dep_index;
        if let Some(cycle) = graph.find_cycle() {
            let names: Vec<&str> = out.iter().map(|c| c.name.as_str()).collect();
            let text: Vec<String> = cycle.iter().map(|&v| graph.describe(v, &names)).collect();
            diags.push(
                "components",
                format!("dependency cycle: {}; remove one `depends_on` edge or change a `priority`", text.join(" → ")),
            );
        }
    }
    (out, checked)
}

pub(super) fn resolve_command(spec: &CommandSpec, path: &str, diags: &mut Diags) -> Option<Command> {
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

/// How often a starting component's probe runs by default (within the stack-wide budget of
/// `probe::runner`).
pub const DEFAULT_START_INTERVAL: Duration = Duration::from_millis(10);

pub(super) fn resolve_probe(spec: &ProbeSpec, path: &str, root: &Path, diags: &mut Diags) -> Option<Probe> {
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
        start_interval: p.start_interval.map_or(DEFAULT_START_INTERVAL, |d| d.0).max(Duration::from_millis(1)),
    })
}

pub(super) fn resolve_restart(raw: raw::RawRestart, path: &str, diags: &mut Diags) -> Restart {
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

pub(super) fn resolve_shutdown(raw: raw::RawShutdown, path: &str, diags: &mut Diags) -> Shutdown {
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
