//! Command-line flags exactly as the user typed them (clap types only; `app.rs` resolves them).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "razar",
    version,
    about = "Boots a stack of local services, proves each healthy and keeps it healthy.",
    after_help = crate::exit::help_text(),
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// Root directory; every relative path resolves against it.
    #[arg(long, global = true, env = "RAZAR_ROOT", default_value = ".")]
    pub root: PathBuf,
    /// More output (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Less output: warnings and errors only.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Format of the log lines on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Boot the stack, prove each component healthy, then supervise it in the foreground.
    Boot(BootArgs),
    /// One Crown handshake, standalone: prints the acknowledgement and capabilities.
    Handshake(HandshakeArgs),
    /// List, show, add or release quarantined components (quarantine/, docs/quarantine_log.md).
    Quarantine(QuarantineArgs),
    /// Live state of the running boot (else the last state file); can wait until it is ready.
    Status(StatusArgs),
    /// Validate the config, razar_env.yaml and the agent roster; every problem names file,
    /// field and fix.
    Validate(ValidateArgs),
    /// Check the agent roster (config/razar_ai_agents.json): endpoints, credentials, reachability.
    Agents(AgentsArgs),
    /// Print the JSON Schemas of razar's files (all, or the one named).
    Schema(SchemaArgs),
    /// Classify a failure log as dependency, external or logic, and print the remediation.
    Analyze(AnalyzeArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(CompletionsArgs),
    /// Print razar's man page (roff) to stdout.
    Man,
    /// Restart components of the running boot (stop, then start at once).
    #[command(after_help = OPERATE_EXIT_CODES)]
    Restart(OperateArgs),
    /// Stop components of the running boot; they stay stopped until `razar start`.
    #[command(after_help = OPERATE_EXIT_CODES)]
    Stop(OperateArgs),
    /// Start stopped, failed or blocked components of the running boot.
    #[command(after_help = OPERATE_EXIT_CODES)]
    Start(OperateArgs),
    /// Undo the repair pipeline's patches of a component (newest first) and restore the roster
    /// snapshot; refuses, changing nothing, when a file changed since razar wrote it.
    #[command(after_help = ROLLBACK_EXIT_CODES)]
    Rollback(RollbackArgs),
    /// One repair round outside boot: the component's failure context to the roster's active
    /// agent; its patch verified in a sandbox and promoted (`--dry-run`: only printed).
    #[command(after_help = HANDOVER_EXIT_CODES)]
    Handover(HandoverArgs),
    /// Run one probe (tcp://, http(s)://, exec:, file:, or a component's probe by name) once,
    /// or with --wait until it passes; exit 0 when it passes.
    #[command(after_help = PROBE_EXIT_CODES)]
    Probe(ProbeArgs),
    /// Write the stack as systemd units or Kubernetes manifests; what cannot be expressed is
    /// listed on stderr and as comments in the output.
    #[command(after_help = EXPORT_EXIT_CODES)]
    Export(ExportArgs),
}

const PROBE_EXIT_CODES: &str = "Exit codes: 0 the probe passed; 8 it did not pass (with --wait: not \
                                within --timeout); 2 bad SPEC or flag, unknown component, a component \
                                without that probe, or a log probe (only a running boot can match \
                                one). See docs/export.md.";

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// tcp://HOST:PORT, http://URL or https://URL, exec:COMMAND (run by `sh -c`), file:PATH
    /// (relative to --root), or the name of a component of the config (its health_check).
    #[arg(value_name = "SPEC")]
    pub spec: String,
    /// Probe until it passes (success_threshold times in a row), polling fast at first and
    /// then every --period; give up after --timeout.
    #[arg(long)]
    pub wait: bool,
    /// Without --wait: the bound on the one attempt (default: the probe's timeout, 1 s). With
    /// --wait: the bound on the whole wait (default: the component's ready budget, else 60 s;
    /// 0: no bound).
    #[arg(long, value_name = "D", value_parser = crate::config::duration::parse)]
    pub timeout: Option<std::time::Duration>,
    /// Accepted HTTP status or range, e.g. 200-399 (the default) or 204.
    #[arg(long, value_name = "RANGE")]
    pub status: Option<String>,
    /// A substring the HTTP body must contain (first 64 KiB).
    #[arg(long, value_name = "TEXT")]
    pub body: Option<String>,
    /// With --wait: the bound on each attempt (default: the probe's timeout, 1 s).
    #[arg(long, value_name = "D", value_parser = crate::config::duration::parse)]
    pub attempt_timeout: Option<std::time::Duration>,
    /// With --wait: the longest pause between attempts (default: the probe's period, 10 s).
    #[arg(long, value_name = "D", value_parser = crate::config::duration::parse)]
    pub period: Option<std::time::Duration>,
    /// With --wait: wait this long before the first attempt (default: the probe's
    /// initial_delay, 0).
    #[arg(long, value_name = "D", value_parser = crate::config::duration::parse)]
    pub initial_delay: Option<std::time::Duration>,
    /// With --wait: the first pause between attempts, doubling up to --period (default: the
    /// probe's start_interval, 10 ms).
    #[arg(long, value_name = "D", value_parser = crate::config::duration::parse)]
    pub start_interval: Option<std::time::Duration>,
    /// With --wait: passes in a row needed (default: the probe's success_threshold, 1).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub success_threshold: Option<u32>,
    /// A component SPEC means its liveness probe instead of its health_check.
    #[arg(long)]
    pub liveness: bool,
    /// The boot config a component SPEC is looked up in (default config/boot_config.json).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

const EXPORT_EXIT_CODES: &str = "Exit codes: 0 exported (what cannot be expressed is listed on stderr \
                                 and in the output); 2 invalid config, bad flag, or --out holds a \
                                 file the export would replace (pass --force to replace it); 70 a \
                                 file could not be written. See docs/export.md.";

/// The engine `razar export` writes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// One systemd unit per component and a .target for the stack.
    Systemd,
    /// Kubernetes Deployments, Jobs and Services in one multi-document YAML file.
    K8s,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The engine to write for.
    #[arg(long, value_enum)]
    pub format: ExportFormat,
    /// Stack config (JSON or YAML; default config/boot_config.json).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Write the files into this directory (created if missing) instead of to stdout.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Replace files that already exist in --out (each is named on stderr); without it, an
    /// existing file makes the export fail before anything is written.
    #[arg(long, requires = "out")]
    pub force: bool,
    /// Name of the stack: unit and label prefix (default: the config's `mission`, else "razar").
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// The razar binary the readiness gates run: an absolute path on the systemd host
    /// (default /usr/local/bin/razar), or the command in the image for k8s (default razar).
    #[arg(long, value_name = "PATH")]
    pub razar: Option<String>,
    /// k8s: the container image every component runs in; it must hold the stack's files and
    /// razar.
    #[arg(long, value_name = "IMAGE", default_value = "razar-stack:latest")]
    pub image: String,
}

const HANDOVER_EXIT_CODES: &str = "Exit codes: 0 patch verified and promoted (--dry-run: suggestion \
                                    received); 12 the agent offered no patch; 13 agent error; 14 the \
                                    patch was rejected or failed the component's tests (nothing changed); \
                                    2 usage. See docs/agents.md and docs/repair.md.";

#[derive(Debug, Args)]
pub struct HandoverArgs {
    /// The failing component.
    #[arg(value_name = "COMPONENT")]
    pub component: String,
    /// The error to report to the agent.
    #[arg(long, value_name = "MSG")]
    pub error: Option<String>,
    /// Ask this roster agent instead of the active one.
    #[arg(long, value_name = "NAME", conflicts_with = "use_opencode")]
    pub agent: Option<String>,
    /// Ask the local `opencode` CLI (in a sandbox copy of the sources) instead of the roster's
    /// agents; no roster is needed.
    #[arg(long)]
    pub use_opencode: bool,
    /// A file whose text is added to the failure context (first 64 KiB).
    #[arg(long, value_name = "F")]
    pub context: Option<PathBuf>,
    /// Print and save the suggestion, change no file. Without it the patch goes through the
    /// repair pipeline (paths, sandbox, the component's tests, promotion) and a running boot
    /// restarts the component.
    #[arg(long)]
    pub dry_run: bool,
    /// One JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// The boot config (default config/boot_config.json under the root).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

const ROLLBACK_EXIT_CODES: &str = "Exit codes: 0 done (also: nothing to revert); 2 --patch names no \
                                   applied patch of the component; 10 refused: a file changed since \
                                   razar wrote it or a backup is missing (nothing changed). See docs/repair.md.";

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The component whose patches to revert.
    #[arg(value_name = "COMPONENT")]
    pub component: String,
    /// Only restore config/razar_ai_agents.json from config/razar_ai_agents.bak.
    #[arg(long, conflicts_with = "patch")]
    pub config_only: bool,
    /// Revert only this patch (its id from `razar status` or logs/patch_history.jsonl).
    #[arg(long, value_name = "ID")]
    pub patch: Option<String>,
    /// List what would be reverted and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// One JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

const OPERATE_EXIT_CODES: &str = "Exit codes: 0 every request accepted (with --wait: every component \
                                  reached its goal); 2 a request was refused (unknown or quarantined \
                                  component, boot shutting down); 6 --wait gave up (failed, quarantined, \
                                  blocked, boot ended, timeout); 7 no boot is running on this root. \
                                  See docs/control.md.";

/// The operator verb of `razar restart|stop|start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Restart,
    Stop,
    Start,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Restart => "restart",
            Verb::Stop => "stop",
            Verb::Start => "start",
        }
    }

    /// What `--wait` waits for.
    pub fn goal(self) -> &'static str {
        match self {
            Verb::Restart | Verb::Start => "ready",
            Verb::Stop => "stopped",
        }
    }
}

#[derive(Debug, Args)]
pub struct OperateArgs {
    /// Component names, acted on in this order.
    #[arg(value_name = "COMPONENT", required = true)]
    pub components: Vec<String>,
    /// Return only when every component is ready again (restart, start) or stopped with no
    /// process left (stop); exit 6 if one fails, is quarantined or blocked, or the boot ends.
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits: seconds, or a duration such as "90s" or "2m".
    #[arg(long, value_name = "D", default_value = "120", requires = "wait",
          value_parser = crate::config::duration::parse)]
    pub timeout: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct BootArgs {
    /// Stack config (JSON or YAML).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Name of this run (recorded in state and history).
    #[arg(long)]
    pub mission: Option<String>,
    /// Local attempts after the first before a component fails.
    #[arg(long, default_value_t = 3)]
    pub retries: u32,
    /// Keep booting past a failed component: only its dependents are blocked.
    #[arg(long)]
    pub keep_going: bool,
    /// Components started at once (default: unlimited).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// JSON file of extra mission-brief fields for the Crown handshake.
    #[arg(long, value_name = "F")]
    pub brief: Option<PathBuf>,
    /// Stop after the Crown handshake: exit 0 on acknowledgement (or offline, with a warning).
    #[arg(long)]
    pub handshake_only: bool,
    /// Fail (exit 5) unless the Crown reports this capability (repeatable).
    #[arg(long = "require-capability", value_name = "CAP")]
    pub require_capability: Vec<String>,
    /// Cumulative failures across runs at which a component is quarantined before launch
    /// (0 disables).
    #[arg(long, default_value_t = 3)]
    pub failure_limit: u32,
    /// Repair rounds through the agent ladder (config/razar_ai_agents.json) for a component
    /// out of local attempts or restart budget, before it is quarantined (0: none).
    #[arg(long, default_value_t = 3)]
    pub remote_attempts: u32,
    /// Keep handing a failing component to the repair agents, with backoff, until a patch
    /// heals it or razar is stopped.
    #[arg(long)]
    pub long_task: bool,
    /// Keep components of the last boot that are still alive and healthy; start the rest.
    #[arg(long)]
    pub resume: bool,
    /// Do not start the Prometheus exporter.
    #[arg(long)]
    pub no_metrics: bool,
}

#[derive(Debug, Args)]
pub struct HandshakeArgs {
    /// JSON file of extra mission-brief fields (merged over the computed ones).
    #[arg(value_name = "BRIEF")]
    pub brief: Option<PathBuf>,
    /// Crown WebSocket URL (ws:// or wss://); overrides crown.url and CROWN_WS_URL.
    #[arg(long)]
    pub url: Option<String>,
    /// Stack config (JSON or YAML); without it, config/boot_config.json if it exists.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Fail (exit 5) unless the Crown reports this capability (repeatable).
    #[arg(long = "require-capability", value_name = "CAP")]
    pub require_capability: Vec<String>,
    /// Print the outcome as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print the state object as JSON on stdout (with --watch: one line per refresh).
    #[arg(long)]
    pub json: bool,
    /// Redraw every second until Ctrl-C or until the boot has ended.
    #[arg(long, conflicts_with = "wait_ready")]
    pub watch: bool,
    /// Wait until the running boot is ready (exit 0); exit 6 if it halts, stops, goes away or
    /// the timeout passes. Waits for a boot to start if none is running yet.
    #[arg(long)]
    pub wait_ready: bool,
    /// How long --wait-ready waits: seconds, or a duration such as "90s" or "2m".
    #[arg(long, value_name = "S", default_value = "60", requires = "wait_ready",
          value_parser = crate::config::duration::parse)]
    pub timeout: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct QuarantineArgs {
    #[command(subcommand)]
    pub command: QuarantineCommand,
}

#[derive(Debug, Subcommand)]
pub enum QuarantineCommand {
    /// List the quarantined components.
    List(QuarantineListArgs),
    /// Show one component's quarantine entry.
    Show(QuarantineShowArgs),
    /// Quarantine a component: razar does not start it until it is released.
    Add(QuarantineAddArgs),
    /// Release a quarantined component so it can start again.
    Release(QuarantineReleaseArgs),
}

#[derive(Debug, Args)]
pub struct QuarantineListArgs {
    /// Print the entries as a JSON array on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct QuarantineShowArgs {
    /// Component name.
    pub component: String,
    /// Print the entry as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct QuarantineAddArgs {
    /// Component name; must be a component of the config when the config loads.
    pub component: String,
    /// Why it is quarantined (recorded in the entry and the log).
    #[arg(long)]
    pub reason: String,
    /// Stack config to check the name against (default config/boot_config.json).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct QuarantineReleaseArgs {
    /// Component name.
    pub component: String,
    /// Note recorded with the `released` row of the log.
    #[arg(long)]
    pub note: Option<String>,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Stack config (JSON or YAML).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct AgentsArgs {
    #[command(subcommand)]
    pub command: AgentsCommand,
}

#[derive(Debug, Subcommand)]
pub enum AgentsCommand {
    /// Resolve every agent's protocol, endpoint and credential source and report each problem;
    /// never prints a secret.
    #[command(after_help = "Exit codes: 0 every agent resolves (and, with --include-remote, \
                            answers as expected); 2 the roster is missing or invalid, an agent \
                            has a problem, or a probe failed (unreachable, credentials rejected, \
                            unexpected answer). See docs/agents.md.")]
    Check(AgentsCheckArgs),
}

#[derive(Debug, Args)]
pub struct AgentsCheckArgs {
    /// Also probe each resolvable agent, 5 s at most each: GET {endpoint}/models (openai-chat,
    /// vllm-completions), HEAD {endpoint} (patch-service, kimicho), a TCP connect (crown) or
    /// `opencode --version`. 401/403 is reported as "credentials rejected".
    #[arg(long)]
    pub include_remote: bool,
    /// Print a JSON array with one object per agent on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// One schema: boot_config, razar_env, razar_state or razar_ai_agents.
    pub name: Option<String>,
}

#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// The failure log (e.g. logs/components/NAME.log).
    #[arg(value_name = "LOGFILE")]
    pub logfile: PathBuf,
    /// Print the verdict as a JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to generate for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}
