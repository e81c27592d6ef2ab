//! razar boots a stack of local services on one host, proves each healthy with probes, and
//! keeps it healthy, journaling every decision.
//!
//! Layers (dependencies point down): `commands` → `sequencer` → `probe` / `supervise` /
//! `journal` / `state` → `config` / `fsutil` / `clock`. `run` is the whole binary.

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
pub mod fsutil;
#[cfg(test)]
mod fuzz;
pub mod journal;
pub mod layers;
pub mod metrics;
pub mod paths;
pub mod probe;
pub mod progress;
pub mod quarantine;
pub mod redact;
pub mod roster;
pub mod schema;
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
