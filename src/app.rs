//! Flags → tracing → runtime → command. Errors are printed here, once.

use std::ffi::OsString;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command, LogFormat, Verb};
use crate::error::Error;
use crate::exit;
use crate::paths::Paths;
use crate::progress::{Board, BoardWriter};
use std::sync::Arc;

/// Parses `args`, runs the command, prints any error once and returns the exit code.
pub fn main(args: impl IntoIterator<Item = OsString>) -> u8 {
    // Before any thread exists: razar's own service manager variables never reach a child.
    crate::sdnotify::take_from_env();
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { exit::CONFIG } else { exit::SUCCESS };
        }
    };
    let board = live_board(&cli);
    let json_logs = cli.global.log_format == LogFormat::Json;
    init_tracing(&cli, board.clone());
    let paths = Paths::new(absolute(&cli.global.root));
    if matches!(cli.command, Command::Boot(_)) {
        crate::supervise::prepare_for_many_children();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            crate::errln!("razar: cannot start the async runtime: {e}");
            return exit::INTERNAL;
        }
    };
    let result = runtime.block_on(dispatch(cli, paths, board));
    // Component tasks are done by now; anything left (a stuck DNS lookup) must not hold exit.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    // Journal records still queued are written before exit (bounded: a stuck disk must not
    // hold the exit either).
    crate::journal::writer::flush(std::time::Duration::from_secs(5));
    match result {
        Ok(code) => code,
        Err(Error::Exit(code)) => code,
        Err(e) => {
            let message = e.to_string();
            if json_logs {
                tracing::error!(exit_code = e.exit_code(), "{}", message.trim_end());
            } else {
                crate::errln!("razar: {}", message.trim_end());
            }
            e.exit_code()
        }
    }
}

async fn dispatch(cli: Cli, paths: Paths, board: Option<Arc<Board>>) -> Result<u8, Error> {
    use crate::commands;
    match cli.command {
        Command::Boot(args) => commands::boot::run(&paths, &cli.global, args, board).await,
        Command::Handshake(args) => commands::handshake::run(&paths, args).await,
        Command::Quarantine(args) => commands::quarantine::run(&paths, args).await,
        Command::Status(args) => commands::status::run(&paths, args).await,
        Command::Validate(args) => commands::validate::run(&paths, args),
        Command::Agents(args) => commands::agents::run(&paths, args).await,
        Command::Schema(args) => commands::schema::run(args),
        Command::Analyze(args) => commands::analyze::run(&paths, args),
        Command::Completions(args) => commands::completions::run(args),
        Command::Man => commands::man::run(),
        Command::Restart(args) => commands::operate::run(&paths, Verb::Restart, args).await,
        Command::Stop(args) => commands::operate::run(&paths, Verb::Stop, args).await,
        Command::Start(args) => commands::operate::run(&paths, Verb::Start, args).await,
        Command::Rollback(args) => commands::rollback::run(&paths, args).await,
        Command::Handover(args) => commands::handover::run(&paths, args).await,
        Command::Probe(args) => commands::probe::run(&paths, args).await,
        Command::Export(args) => commands::export::run(&paths, args),
    }
}

fn absolute(root: &std::path::Path) -> std::path::PathBuf {
    std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf())
}

/// `razar boot` on a terminal with text logs shows a live board of the boot instead of a
/// scrolling line per step (those stay in `logs/razar.log`; `-v` brings them back).
fn live_board(cli: &Cli) -> Option<Arc<Board>> {
    let wanted = matches!(cli.command, Command::Boot(_))
        && cli.global.log_format == LogFormat::Text
        && !cli.global.quiet
        && cli.global.verbose == 0
        && std::env::var_os("RAZAR_LOG").is_none();
    if wanted { Board::for_stderr() } else { None }
}

fn init_tracing(cli: &Cli, board: Option<Arc<Board>>) {
    let default = match (cli.global.quiet, cli.global.verbose, board.is_some()) {
        (true, _, _) | (false, 0, true) => "warn",
        (false, 0, false) => "info",
        (false, 1, _) => "debug",
        (false, _, _) => "trace",
    };
    let filter = EnvFilter::try_from_env("RAZAR_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    // A write to a closed or broken stderr is dropped silently: reporting it would write to the
    // same stderr, and nothing about a log line is worth ending supervision for.
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false).log_internal_errors(false);
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = match (cli.global.log_format, board) {
        (LogFormat::Json, _) => builder.json().flatten_event(true).with_writer(std::io::stderr).try_init(),
        (LogFormat::Text, Some(board)) => builder.with_ansi(ansi).with_writer(BoardWriter(board)).try_init(),
        (LogFormat::Text, None) => builder.with_ansi(ansi).with_writer(std::io::stderr).try_init(),
    };
}
