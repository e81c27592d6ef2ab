//! razar boots a stack of local services on one host, proves each healthy with probes, and
//! keeps it healthy, journaling every decision.
//!
//! Layers (dependencies point down): `commands` → `sequencer` → `probe` / `supervise` /
//! `journal` / `state` → `config` / `fsutil` / `clock`. `run` is the whole binary.

// Every write to stdout/stderr goes through `outln!`/`errln!`: `println!` panics on EPIPE.
#![cfg_attr(not(test), deny(clippy::print_stdout, clippy::print_stderr))]

/// `println!` that never panics: a closed or broken stdout (EPIPE, EIO) is ignored, so a dead
/// pager never ends razar or orphans its stack.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        let _ = ::std::writeln!(::std::io::stdout().lock(), $($arg)*);
    }};
}

/// `eprintln!` that never panics (see [`outln!`]).
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        let _ = ::std::writeln!(::std::io::stderr().lock(), $($arg)*);
    }};
}

pub mod alerts;
pub mod analyze;
pub mod app;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod control;
pub mod crown;
pub mod error;
pub mod exit;
pub mod export;
pub mod fsutil;
#[cfg(test)]
mod fuzz;
pub mod journal;
pub mod ladder;
pub mod layers;
pub mod metrics;
pub mod paths;
pub mod probe;
pub mod progress;
pub mod quarantine;
pub mod redact;
pub mod repair;
pub mod roster;
pub mod schema;
pub mod sdnotify;
pub mod sequencer;
pub mod state;
pub mod supervise;
#[cfg(test)]
mod testutil;
pub mod text;

use std::ffi::OsString;
use std::process::ExitCode;

/// Runs razar with `args` (argv including the program name) and returns its exit code.
pub fn run(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    ExitCode::from(app::main(args))
}
