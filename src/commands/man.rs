//! `razar man`: prints razar's man page (roff) generated from the flags.

use std::io::Write;

use clap::CommandFactory;

use crate::cli::Cli;
use crate::error::{Error, Result};
use crate::exit;

pub fn run() -> Result<u8> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut page)
        .map_err(|e| Error::Internal(format!("rendering the man page: {e}")))?;
    let mut out = std::io::stdout().lock();
    // A closed pipe (`razar man | head`) is the reader's choice, not an error worth a message.
    let _ = out.write_all(&page).and_then(|()| out.flush());
    Ok(exit::SUCCESS)
}
