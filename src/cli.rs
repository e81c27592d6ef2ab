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
    /// Validate the config (and razar_env.yaml); every problem names file, field and fix.
    Validate(ValidateArgs),
    /// Print the JSON Schemas of razar's files (all, or the one named).
    Schema(SchemaArgs),
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
