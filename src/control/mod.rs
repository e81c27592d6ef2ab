//! The control socket `.razar/control.sock`: how `razar status`, `razar quarantine` and other
//! commands talk to a running boot.
//!
//! `protocol` is the wire format, `server` accepts connections and forwards each request to
//! the dispatcher as an [`Envelope`], `client` sends one request and reads the answer. The
//! server never touches run state: the dispatcher, which owns it, answers every envelope.
//! Only razar's own user (and root) may talk to the socket; `.razar/` is mode 0700 and the
//! socket 0600, and the server checks each peer's credentials as well. `docs/control.md`
//! describes the protocol and its limits.

pub mod client;
pub mod protocol;
pub mod server;
pub mod sockpath;

pub use client::{ClientError, request};
pub use protocol::{Envelope, Request, Response};
pub use server::{ControlServer, bind, socket_cleanup};

#[cfg(test)]
mod tests;
