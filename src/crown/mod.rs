//! The Crown handshake (DESIGN §8): a mission brief out over WebSocket, the Crown's
//! acknowledgement, capabilities and downtime back.
//!
//! - [`protocol`]: the reply and brief types (pure).
//! - [`client`]: the WebSocket exchange and its distinct failure kinds.
//! - [`brief`]: building the brief and the `logs/mission_briefs/` archive with rotation.
//! - [`capability`]: capability-name normalisation and the required check (pure).
//! - [`launcher`]: running `crown.model_launcher` when GLM-4.1V is missing.
//! - `session`: the whole flow, [`handshake`], and its [`HandshakeOutcome`].
//! - [`record`]: the outcome merged into an existing state file (no launch follows).
//!
//! Invariants: the brief is on disk before it is sent; the bearer token never leaves the
//! `Authorization` header; Crown-supplied component names are used only after matching a
//! configured name; files already on disk are only ever replaced atomically or appended to, so
//! a failed handshake loses nothing. The state file is the caller's to write, after a handshake
//! that completed.

pub mod brief;
pub mod capability;
pub mod client;
pub mod launcher;
pub mod protocol;
pub mod record;
mod session;

pub use brief::build_brief;
pub use client::{CrownError, Token};
pub use session::{
    CrownEnv, HandshakeError, HandshakeOutcome, OFFLINE_ACK, handshake, identity_fingerprint, validate_downtime,
};
