//! One module per subcommand: glue between flags, config and the layers below. No domain
//! rules live here.

pub mod boot;
pub mod schema;
pub mod validate;
