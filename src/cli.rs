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
    /// Validate the config (and razar_env.yaml); every problem names file, field and fix.
    Validate(ValidateArgs),
    /// Print the JSON Schemas of razar's files (all, or the one named).
    Schema(SchemaArgs),
    /// Classify a failure log as dependency, external or logic, and print the remediation.
    Analyze(AnalyzeArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(CompletionsArgs),
    /// Print razar's man page (roff) to stdout.
    Man,
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
pub struct SchemaArgs {
    /// One schema: boot_config, razar_env or razar_state.
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
