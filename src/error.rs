//! The top-level error of the commands and its exit code. It sits at the top of the layers
//! (`app` and `commands` use it; no module below them does): module errors are wrapped here,
//! and `run` prints the message once and exits with `exit_code()`.

use crate::exit;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Config(#[from] crate::config::Invalid),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Fs(#[from] crate::fsutil::FsError),
    #[error("{0}")]
    Locked(#[from] crate::state::lock::LockError),
    #[error("{0}")]
    Internal(String),
    #[error("{0}")]
    Metrics(#[from] crate::metrics::MetricsError),
    #[error("{0}")]
    Crown(#[from] crate::crown::HandshakeError),
    #[error(
        "required crown capabilit{} missing: {}; the crown reported: [{}]",
        if missing.len() == 1 { "y" } else { "ies" },
        missing.join(", "),
        offered.join(", ")
    )]
    CapabilityMissing { missing: Vec<String>, offered: Vec<String> },
    #[error("{0}")]
    Control(#[from] crate::control::ClientError),
    /// A command that has already reported its outcome and only needs its exit code.
    #[error("")]
    Exit(u8),
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config(_) | Error::Usage(_) | Error::Metrics(_) => exit::CONFIG,
            Error::Locked(crate::state::lock::LockError::Held { .. }) => exit::LOCKED,
            Error::Locked(crate::state::lock::LockError::Fs(_)) => exit::INTERNAL,
            Error::Fs(_) | Error::Internal(_) => exit::INTERNAL,
            Error::Crown(e) => e.exit_code(),
            Error::CapabilityMissing { .. } => exit::CAPABILITY_MISSING,
            Error::Control(e) => e.exit_code(),
            Error::Exit(code) => *code,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
