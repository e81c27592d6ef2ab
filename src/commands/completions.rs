//! `razar completions SHELL`: prints a shell completion script generated from the flags.

use std::io::Write;

use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs};
use crate::error::Result;
use crate::exit;

pub fn run(args: CompletionsArgs) -> Result<u8> {
    let mut command = Cli::command();
    let name = command.get_name().to_owned();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, name, &mut script);
    let mut out = std::io::stdout().lock();
    // A closed pipe (`razar completions bash | head`) is the reader's choice, not an error.
    let _ = out.write_all(&script).and_then(|()| out.flush());
    Ok(exit::SUCCESS)
}
