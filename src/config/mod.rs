//! Stack configuration: the serde mirror of the files (`raw`), validation (`load`, the entry
//! point, over `document` parsing, `component` and `sections` resolvers, and `diagnostics`,
//! the wording of every problem), the validated types everything else uses (`resolved`), the
//! input limits (`limits`), path confinement (`confine`) and the wait-for graph (`graph`).

mod component;
pub mod confine;
mod diagnostics;
mod document;
pub mod duration;
pub mod graph;
pub mod limits;
pub mod load;
pub mod raw;
pub mod resolved;
mod sections;

pub use component::DEFAULT_START_INTERVAL;
pub use load::{Diagnostic, Env, Invalid, ProcessEnv, load};
pub use resolved::*;
