//! Boot sequencing: the pure plan (`plan`), pure retry/backoff rules (`backoff`), and the
//! dispatcher that owns run state and drives components through their lifecycle.

pub mod backoff;
pub mod dispatcher;
pub mod history;
pub mod plan;
