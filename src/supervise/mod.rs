//! Child processes: spawning each component in its own process group with its output drained
//! to a rotated log (`child`), and stopping a whole group in order (`terminate`).

pub mod child;
pub mod leftovers;
pub mod output;
pub mod procfs;
pub mod reaper;
pub mod terminate;
