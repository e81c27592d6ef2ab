//! Boot sequencing: the pure plan (`plan`), pure retry/backoff rules (`backoff`), every
//! decision of a boot as a pure state machine (`machine`), and the dispatcher, the async
//! shell that feeds the machine events and carries out its actions; `admission` decides, as
//! pure functions, what a boot holds back and adopts, and `takeover` does the process work
//! before the machine runs.

pub mod admission;
pub mod backoff;
pub mod dispatcher;
pub mod heal;
pub mod history;
pub mod machine;
pub mod plan;
pub mod takeover;
