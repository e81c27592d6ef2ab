//! The escalation ladder's repair agents (DESIGN §9): what each protocol sends and how its
//! reply becomes a suggestion (`agents`), how an agent is called over HTTP (`transport`), and
//! the failure context and invocation journal of a round (`context`), and when the ladder
//! climbs to the next agent (`policy`).

pub mod agents;
pub mod context;
pub mod policy;
pub mod transport;

#[cfg(test)]
pub(crate) mod tests;
