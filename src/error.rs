//! The top-level error and its exit code. Module errors are wrapped here; `run` prints the
//! message once and exits with `exit_code()`.

use crate::exit;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Config(#[from] crate::config::Invalid),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Fs(#[from] crate::fsutil::FsError),
    #[error("another razar boot (pid {pid}) holds {}; stop it first or use a different --root", path.display())]
    Locked { pid: String, path: std::path::PathBuf },
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
            Error::Locked { .. } => exit::LOCKED,
            Error::Fs(_) | Error::Internal(_) => exit::INTERNAL,
            Error::Crown(e) => e.exit_code(),
            Error::CapabilityMissing { .. } => exit::CAPABILITY_MISSING,
            Error::Control(e) => e.exit_code(),
            Error::Exit(code) => *code,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
