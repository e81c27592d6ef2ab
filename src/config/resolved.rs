//! Validated configuration: what the rest of razar sees. Every value here has passed the
//! checks in `load.rs`; durations are `Duration`, names are `ComponentName`, the dependency
//! graph (with priority tiers) is acyclic and every edge points at a known component.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;
use serde::Serialize;

pub use super::raw::{Condition, OnFailure};

/// A component name: `[A-Za-z0-9_.-]+`, never `.` or `..`, so it is safe in a path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct ComponentName(String);

impl ComponentName {
    /// Validates a name for use in paths and metrics labels.
    pub fn new(name: &str) -> Result<Self, String> {
        let ok = !name.is_empty()
            && name.len() <= 128
            && name != "."
            && name != ".."
            && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if ok {
            Ok(ComponentName(name.to_owned()))
        } else {
            Err(format!(
                "{name:?} is not a valid component name: use 1-128 of the characters A-Z a-z 0-9 _ . - (not \".\" or \"..\")"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ComponentName {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The whole validated stack.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was loaded from.
    pub source: PathBuf,
    pub mission: Option<String>,
    pub crown: CrownConfig,
    pub metrics: MetricsConfig,
    pub jobs: Option<usize>,
    pub on_failure: OnFailure,
    /// `enable_ai_handover` (default true): failing components go to the repair agents.
    pub ai_handover: bool,
    /// Components in file order (the tie-break order). `enabled: false` ones are kept with
    /// `enabled` false so status can show them.
    pub components: Vec<std::sync::Arc<Component>>,
    /// Layers from `razar_env.yaml` used by some component: name → requirements.
    pub layers: BTreeMap<String, Vec<String>>,
    /// Who waits for whom, by index, as validated (no cycle).
    pub graph: Graph,
}

/// The checked wait-for graph of the components, by index into `Config::components`.
#[derive(Debug, Clone, Default)]
pub struct Graph {
    /// `deps[i][e]`: the component that edge `e` of `components[i].depends_on` names.
    pub deps: Vec<Vec<usize>>,
    /// Members of each priority tier, ascending priority.
    pub tiers: Vec<Vec<usize>>,
    /// `tier[i]`: the tier of component `i`, if it has a priority.
    pub tier: Vec<Option<usize>>,
}

impl Config {
    pub fn component(&self, name: &str) -> Option<&Component> {
        self.components.iter().find(|c| c.name.as_str() == name).map(|c| &**c)
    }
}

#[derive(Debug, Clone, Default)]
pub struct CrownConfig {
    pub url: Option<String>,
    pub timeout: Duration,
    pub max_reply_bytes: usize,
    pub model_launcher: Option<PathBuf>,
    pub required_capabilities: Vec<String>,
    pub allow_insecure: bool,
}

#[derive(Debug, Clone)]
pub struct MetricsConfig {
    pub enabled: bool,
    /// `None`: take `RAZAR_METRICS_PORT` or 9360 at start.
    pub port: Option<u16>,
    pub address: IpAddr,
    pub textfile: PathBuf,
}

#[derive(Debug, Clone)]
pub struct Component {
    pub name: ComponentName,
    /// Position in the file; breaks ties between components ready at the same time.
    pub index: usize,
    pub command: Command,
    pub kind: Kind,
    pub priority: Option<i64>,
    pub depends_on: Vec<Dependency>,
    pub env: BTreeMap<String, String>,
    /// Where the component runs: `working_dir` under the root, else the root itself.
    pub working_dir: PathBuf,
    pub layer: Option<String>,
    pub health_check: Option<Probe>,
    pub liveness: Option<Probe>,
    pub restart: Restart,
    pub shutdown: Shutdown,
    pub ready_timeout: Option<Duration>,
    pub enabled: bool,
    pub tests: Vec<Command>,
    pub sources: Vec<PathBuf>,
    pub stop: Option<Command>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Long-running; ready when its probe passes.
    Service,
    /// Runs to completion; ready when it exits 0.
    Task,
}

/// What to run: an argv, or a shell string for `sh -c`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Argv(Vec<String>),
    Shell(String),
}

impl Command {
    /// The argv actually executed.
    pub fn argv(&self) -> Vec<String> {
        match self {
            Command::Argv(v) => v.clone(),
            Command::Shell(s) => vec!["sh".into(), "-c".into(), s.clone()],
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Command::Argv(v) => f.write_str(&v.join(" ")),
            Command::Shell(s) => f.write_str(s),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Dependency {
    pub name: ComponentName,
    pub condition: Condition,
    /// How long the dependent waits for the condition; `None`: as long as it takes.
    pub timeout: Option<Duration>,
    /// Restart the dependent when the dependency comes back from a restart.
    pub restart: bool,
}

#[derive(Debug, Clone)]
pub struct Probe {
    pub kind: ProbeKind,
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
    pub start_interval: Duration,
}

#[derive(Debug, Clone)]
pub enum ProbeKind {
    Exec(Vec<String>),
    Http {
        url: String,
        status: (u16, u16),
        body: Option<String>,
    },
    Tcp(String),
    /// Shared: a clone of a `Regex` carries its own match cache, a thousand of them add up.
    Log(Arc<Regex>),
    File(PathBuf),
}

impl ProbeKind {
    pub fn name(&self) -> &'static str {
        match self {
            ProbeKind::Exec(_) => "exec",
            ProbeKind::Http { .. } => "http",
            ProbeKind::Tcp(_) => "tcp",
            ProbeKind::Log(_) => "log",
            ProbeKind::File(_) => "file",
        }
    }
}

impl fmt::Display for ProbeKind {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            ProbeKind::Exec(argv) => write!(f, "exec {}", argv.join(" ")),
            ProbeKind::Http { url, .. } => write!(f, "http {}", crate::redact::url(url)),
            ProbeKind::Tcp(addr) => write!(f, "tcp {addr}"),
            ProbeKind::Log(re) => write!(f, "log /{}/", re.as_str()),
            ProbeKind::File(p) => write!(f, "file {}", p.display()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    Never,
    OnFailure,
    Always,
}

#[derive(Debug, Clone)]
pub struct Restart {
    pub policy: RestartPolicy,
    pub initial: Duration,
    pub max: Duration,
    pub multiplier: f64,
    pub jitter: f64,
    pub max_restarts: u32,
    pub window: Duration,
}

impl Default for Restart {
    fn default() -> Self {
        Restart {
            policy: RestartPolicy::OnFailure,
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            multiplier: 2.0,
            jitter: 0.1,
            max_restarts: 5,
            window: Duration::from_secs(600),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Shutdown {
    pub signal: nix::sys::signal::Signal,
    pub grace: Duration,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown { signal: nix::sys::signal::Signal::SIGTERM, grace: Duration::from_secs(10) }
    }
}
