//! The escalation ladder's repair agents (DESIGN §9): the request each protocol sends and how
//! its reply becomes a [`agents::Suggestion`].
//!
//! Only the pure half lives here so far: request bodies and reply parsers. Nothing here does
//! I/O, and no parser panics on any input.

pub mod agents;
pub mod transport;

#[cfg(test)]
pub(crate) mod tests;
