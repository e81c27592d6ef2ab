//! One module per subcommand: glue between flags, config and the layers below. No domain
//! rules live here.

pub mod agents;
pub mod analyze;
pub mod boot;
pub mod completions;
pub mod export;
pub mod handover;
pub mod handshake;
pub mod man;
pub mod operate;
pub mod probe;
pub mod quarantine;
pub mod rollback;
pub mod schema;
pub mod status;
pub mod validate;
