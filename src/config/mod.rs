//! Stack configuration: the serde mirror of the files (`raw`), validation (`load`), the
//! validated types everything else uses (`resolved`) and the wait-for graph (`graph`).

pub mod confine;
pub mod duration;
pub mod graph;
pub mod limits;
pub mod load;
pub mod raw;
pub mod resolved;

pub use load::{Diagnostic, Env, Invalid, ProcessEnv, load};
pub use resolved::*;
