//! The signals that end a boot: SIGINT, SIGTERM and SIGHUP, watched from the start of a boot
//! so that none of them kills razar with the stack half started. A `none` source never
//! delivers one (tests that drive a dispatcher without a terminal or a process to signal).

use nix::sys::signal::Signal;
use tokio::signal::unix::{SignalKind, signal};

pub struct Signals {
    watched: Option<Watched>,
}

struct Watched {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    /// The terminal went away: the stack must not be left running without its supervisor.
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    /// Watches the process's SIGINT, SIGTERM and SIGHUP.
    pub fn new() -> std::io::Result<Self> {
        let watched = Watched {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
        };
        Ok(Signals { watched: Some(watched) })
    }

    /// A source that never delivers a signal.
    pub fn none() -> Self {
        Signals { watched: None }
    }

    /// The next SIGINT, SIGTERM or SIGHUP.
    pub async fn recv(&mut self) -> Signal {
        let Some(w) = &mut self.watched else { return std::future::pending().await };
        tokio::select! {
            _ = w.int.recv() => Signal::SIGINT,
            _ = w.term.recv() => Signal::SIGTERM,
            _ = w.hup.recv() => Signal::SIGHUP,
        }
    }
}
