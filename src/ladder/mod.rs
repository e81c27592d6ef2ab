//! The escalation ladder's repair agents (DESIGN §9): what each protocol sends and how its
//! reply becomes a suggestion (`agents`), how an agent is called over HTTP (`transport`), and
//! the failure context and invocation journal of a round (`context`), one round with one agent
//! (`round`) and the tools it answers (`tools`), the change set of a sandbox (`treediff`), and
//! when the ladder climbs to the next agent (`policy`).

pub mod agents;
pub mod context;
pub mod policy;
pub mod round;
pub mod tools;
pub mod transport;
pub mod treediff;

#[cfg(test)]
pub(crate) mod tests;
