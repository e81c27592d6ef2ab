//! Every decision of a boot, as a pure state machine.
//!
//! [`Machine::step`] takes one [`Event`] (a child exited, a probe answered, a timer fired, an
//! operator asked, a signal arrived) and the current time, changes the components' states and
//! returns the [`Action`]s the dispatcher must carry out: launch, stop, watch, arm a timer,
//! journal, alert, count. It reads no clock, touches no process or file and knows nothing of
//! tokio, so each rule of `docs/boot.md` is a row of a table test (`machine/tests.rs`) and
//! random event sequences are checked for the invariants (`machine/properties.rs`).
//!
//! A component's lifecycle is its [`Life`]: the data a state needs lives in its variant (the
//! probe tracker of a start, the liveness tracker of a healthy service, who blocks a blocked
//! one). Its process group is a separate [`Group`], because a group outlives the state that
//! launched it: a failed start is `unhealthy` while its group is still being stopped.
//!
//! The rules are grouped by job, one file each: `boot` (scheduling, tiers, launches, starts,
//! stops), `supervision` (restarts, budgets, liveness, quarantine, blocking) and `operator`
//! (requests, the quarantine ledger, signals and shutdown order).

use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::Value;
use tracing::Level;

use super::backoff::Jitter;
use super::plan::Plan;
use crate::alerts::Severity;
use crate::config::Config;
use crate::metrics::RestartReason;
use crate::state::ComponentState;
use crate::supervise::terminate::StopOutcome;

mod boot;
mod heal;
mod operator;
mod supervision;
mod unit;

pub use unit::{Group, Healing, Life, Proc, Start, Supervised, Unit, Wait};

#[cfg(test)]
mod properties;
#[cfg(test)]
mod table;
#[cfg(test)]
mod tests;

/// The time of an event: monotonic since the boot began (for every delay and window) and the
/// wall clock (for the timestamps the state file shows).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Now {
    pub mono: Duration,
    pub epoch: f64,
}

/// The boot's options that rules depend on.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Local attempts after the first, before a component that never came up fails.
    pub retries: u32,
    /// `--keep-going`: a failure never halts the boot.
    pub keep_going: bool,
    /// `--jobs`: most components starting at once.
    pub jobs: Option<usize>,
    /// Seed of the restart jitter.
    pub seed: u64,
    /// Repair rounds through the agent ladder after the local attempts or the restart budget
    /// run out (`--remote-attempts`); 0 when no agent can be asked (empty roster, handover
    /// disabled): the component is then quarantined at once.
    pub heal_rounds: u32,
    /// `--long-task`: keep handing over, with backoff, until healed or interrupted.
    pub long_task: bool,
}

/// Something that happened, for [`Machine::step`].
#[derive(Debug, Clone)]
pub enum Event {
    /// The boot begins: arm the dependency timeouts, launch what may launch.
    Begin,
    /// A component left running by an earlier boot is taken over (`--resume`).
    Adopt {
        idx: usize,
        pid: u32,
        pgid: i32,
        start_time: u64,
        ready_at: Option<String>,
    },
    /// The process of a [`Action::Launch`] runs.
    Launched {
        idx: usize,
        generation: u64,
        pid: u32,
        pgid: i32,
        start_time: Option<u64>,
    },
    /// A [`Action::Launch`] was not carried out: the stack is stopping.
    LaunchDropped {
        idx: usize,
        generation: u64,
    },
    /// The process of a [`Action::Launch`] could not be started. `lasting`: it fails the same
    /// way every time (its layer is broken), so local retries are pointless.
    LaunchFailed {
        idx: usize,
        generation: u64,
        error: String,
        lasting: bool,
    },
    /// The main process ended; `group_alive`: processes it left remain in its group.
    Exited {
        idx: usize,
        generation: u64,
        ok: bool,
        text: String,
        group_alive: bool,
    },
    /// One probe result.
    Probe {
        idx: usize,
        generation: u64,
        role: Role,
        result: ProbeResult,
    },
    /// A line of output while a log probe listens; `None` when the output ended.
    Output {
        idx: usize,
        generation: u64,
        line: Option<String>,
    },
    /// A group the dispatcher was asked to stop is verified gone (or stuck).
    Stopped {
        idx: usize,
        generation: u64,
        outcome: StopOutcome,
    },
    Timer(Timer),
    Signal(Signal),
    /// An operator request from the control socket; answered by one [`Action::Reply`].
    Operator {
        op: Op,
        component: String,
    },
    /// The names in the quarantine ledger now (`razar quarantine add|release`).
    Ledger(std::collections::BTreeSet<String>),
    /// A repair round of [`Action::Heal`] ended.
    Healed {
        idx: usize,
        round: u32,
        outcome: HealOutcome,
    },
}

/// How a repair round ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealOutcome {
    /// A patch passed the component's tests in the sandbox and was promoted.
    Promoted { patch_id: String, agent: String },
    /// No verified patch: no suggestion, a rejected path, failing tests, an agent error.
    NotHealed { reason: String },
}

/// Which probe a result belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Readiness,
    Liveness,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProbeResult {
    pub ok: bool,
    pub output: String,
    pub duration: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Restart,
    Stop,
    Start,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Timer {
    ReadyDeadline {
        idx: usize,
        generation: u64,
    },
    /// The main process exited non-zero while a log probe waited: how long the output may
    /// take to drain before the exit decides.
    ExitSettle {
        idx: usize,
        generation: u64,
    },
    Backoff {
        idx: usize,
        generation: u64,
    },
    /// The next repair round of a `--long-task` component may start.
    HealRound {
        idx: usize,
        round: u32,
    },
    DependencyTimeout {
        idx: usize,
        edge: usize,
    },
}

/// What the dispatcher must do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Start the component's process (attempt `attempt`); answer with `Launched` or
    /// `LaunchFailed`.
    Launch {
        idx: usize,
        generation: u64,
        attempt: u32,
    },
    /// Run the component's readiness probe (a polled one) or listen to its output (a log
    /// probe) for this attempt.
    Watch {
        idx: usize,
        generation: u64,
        role: Role,
    },
    /// Stop every probe and output listener of the component.
    Unwatch {
        idx: usize,
    },
    /// Stop the group (the `stop` command first when asked), then answer with `Stopped`.
    Stop {
        idx: usize,
        generation: u64,
        pgid: i32,
        grace: Duration,
        run_stop_command: bool,
    },
    /// SIGKILL a group at once (a second signal during shutdown).
    Kill {
        pgid: i32,
    },
    /// Fire `timer` at `at` (monotonic, since the boot began).
    Arm {
        at: Duration,
        timer: Timer,
    },
    /// A mission-log record (and an event of the state file).
    Journal {
        event: &'static str,
        component: String,
        status: String,
        details: Option<Value>,
    },
    Log {
        level: Level,
        message: String,
    },
    Alert {
        message: String,
        severity: Severity,
        context: Value,
    },
    Metric(Metric),
    /// Record a quarantine decided by this boot: ledger entry with a diagnosis, alert, journal.
    Quarantine {
        idx: usize,
        reason: String,
        attempts: u32,
    },
    /// Run repair round `round` for the component (ladder, agent, sandbox, tests, promotion);
    /// answer with `Healed`.
    Heal {
        idx: usize,
        round: u32,
        error: String,
    },
    /// Stop a repair round under way (shutdown, operator).
    CancelHeal {
        idx: usize,
    },
    /// Restore the originals of a promoted patch whose relaunch failed; append `reverted`.
    Revert {
        idx: usize,
        patch_id: String,
        why: String,
    },
    /// The boot halted: put the agent roster back as it was before this boot changed it.
    RestoreRoster,
    /// Every component has settled: `RAZAR ready.`
    Ready,
    /// The stack is being stopped, for this reason.
    ShuttingDown(End),
    /// The answer to an [`Event::Operator`] request.
    Reply(Result<String, String>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Metric {
    Up {
        component: String,
        up: bool,
    },
    Ready {
        component: String,
        after: Duration,
    },
    Restart {
        component: String,
        reason: RestartReason,
    },
    Probe {
        component: String,
        kind: &'static str,
        duration: Duration,
        ok: bool,
    },
    Quarantined(usize),
    /// A repair round after the first for one failure.
    HealRetry {
        component: String,
    },
    /// The repair of one failure ended (healed or given up) after this long.
    HealLoop {
        component: String,
        took: Duration,
    },
}

/// How a boot ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Every component ended for good; `failed` of them failed.
    Finished { failed: usize },
    /// A component failed with `on_failure: halt`; the stack was stopped.
    Halted,
    /// SIGINT, SIGTERM or SIGHUP; the stack was stopped.
    Signalled(Signal),
}

/// What to do once a unit's process group is verified gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterStop {
    Nothing,
    /// Local retry during boot, after `min(2^(n-1), 60)` s.
    Retry,
    /// The last local attempt failed.
    Fail,
    /// Supervised restart after this delay.
    Restart(Duration),
    /// Restart budget exhausted: the component is quarantined.
    Quarantine,
}

/// The run state of one boot.
pub struct Machine {
    cfg: Arc<Config>,
    plan: Plan,
    settings: Settings,
    units: Vec<Unit>,
    /// [`Event::Begin`] has come: launches may start.
    begun: bool,
    shutdown: Option<End>,
    kill_now: bool,
    ready_announced: bool,
    jitter: Jitter,
    now: Now,
    out: Vec<Action>,
    /// Scheduling's memory: per component, an edge it was last seen waiting on, and which
    /// components were dead (see `boot::schedule`).
    witness: Vec<Option<usize>>,
    dead: Vec<bool>,
}

impl Machine {
    pub fn new(cfg: Arc<Config>, settings: Settings) -> Self {
        let units = cfg.components.iter().map(|c| Unit::new(c.clone())).collect();
        Machine {
            plan: Plan::new(&cfg),
            jitter: Jitter::new(settings.seed),
            cfg,
            settings,
            units,
            begun: false,
            shutdown: None,
            kill_now: false,
            ready_announced: false,
            now: Now { mono: Duration::ZERO, epoch: 0.0 },
            out: Vec::new(),
            witness: Vec::new(),
            dead: Vec::new(),
        }
    }

    /// Applies one event at `now`; returns what must be done, in order.
    pub fn step(&mut self, event: Event, now: Now) -> Vec<Action> {
        self.now = now;
        match event {
            Event::Begin => self.begin(),
            Event::Adopt { idx, pid, pgid, start_time, ready_at } => self.adopt(idx, pid, pgid, start_time, ready_at),
            Event::Launched { idx, generation, pid, pgid, start_time } => {
                self.launched(idx, generation, Proc { pid, pgid, start_time, exited: false, detached: false });
            }
            Event::LaunchDropped { idx, generation } => self.launch_dropped(idx, generation),
            Event::LaunchFailed { idx, generation, error, lasting } => {
                self.launch_failed(idx, generation, error, lasting);
            }
            Event::Exited { idx, generation, ok, text, group_alive } => {
                self.on_exit(idx, generation, ok, text, group_alive);
            }
            Event::Probe { idx, generation, role: Role::Readiness, result } => self.on_probe(idx, generation, result),
            Event::Probe { idx, generation, role: Role::Liveness, result } => self.on_liveness(idx, generation, result),
            Event::Output { idx, generation, line } => self.on_output(idx, generation, line),
            Event::Stopped { idx, generation, outcome } => self.on_stopped(idx, generation, outcome),
            Event::Timer(timer) => self.on_timer(timer),
            Event::Signal(sig) => self.on_signal(sig),
            Event::Operator { op, component } => self.on_operator(op, &component),
            Event::Ledger(names) => self.on_ledger(&names),
            Event::Healed { idx, round, outcome } => self.on_healed(idx, round, outcome),
        }
        if self.shutdown.is_some() {
            self.drive_shutdown();
        } else if self.begun {
            self.schedule();
        }
        std::mem::take(&mut self.out)
    }

    /// Marks a component as not launched this boot (quarantine, downtime, completed in the
    /// resumed boot) before [`Event::Begin`].
    pub fn hold(&mut self, idx: usize, life: Life, reason: String) {
        let u = &mut self.units[idx];
        u.life = life;
        u.last_error = Some(reason);
    }

    /// The boot has ended, and how; `None` while anything runs or may still happen.
    pub fn finished(&self) -> Option<End> {
        if self.units.iter().any(|u| u.group != Group::None) {
            return None;
        }
        if let Some(end) = self.shutdown {
            return Some(end);
        }
        // A component an operator stopped or quarantined can be started or released again:
        // only components that ended on their own end the boot.
        if self.units.iter().all(Unit::at_rest) && !self.units.iter().any(Unit::held_by_operator) {
            let failed = self.units.iter().filter(|u| u.failed_this_boot()).count();
            return Some(End::Finished { failed });
        }
        None
    }

    pub fn units(&self) -> &[Unit] {
        &self.units
    }

    pub fn unit(&self, idx: usize) -> &Unit {
        &self.units[idx]
    }

    pub fn index(&self, name: &str) -> Option<usize> {
        self.units.iter().position(|u| u.cfg.name.as_str() == name)
    }

    pub fn shutting_down(&self) -> bool {
        self.shutdown.is_some()
    }

    /// The state file's view of every component.
    pub fn snapshot(&self) -> Vec<ComponentState> {
        self.units
            .iter()
            .map(|u| {
                let mut s = u.snapshot();
                if let Life::Pending { waiting: Some(wait) } = &u.life {
                    s.waiting_for = Some(format!("waiting for {}", self.describe(wait, true)));
                }
                s
            })
            .collect()
    }

    fn name(&self, idx: usize) -> String {
        self.units[idx].cfg.name.to_string()
    }

    fn emit(&mut self, action: Action) {
        self.out.push(action);
    }

    fn log(&mut self, level: Level, message: String) {
        self.out.push(Action::Log { level, message });
    }

    fn journal(&mut self, event: &'static str, idx: Option<usize>, status: &str, details: Option<Value>) {
        let component = idx.map(|i| self.name(i)).unwrap_or_default();
        self.out.push(Action::Journal { event, component, status: status.to_owned(), details });
    }

    fn metric(&mut self, m: Metric) {
        self.out.push(Action::Metric(m));
    }

    fn arm(&mut self, after: Duration, timer: Timer) {
        let at = self.now.mono + after;
        self.out.push(Action::Arm { at, timer });
    }

    fn up(&mut self, idx: usize, up: bool) {
        let component = self.name(idx);
        self.metric(Metric::Up { component, up });
    }
}

fn condition_word(condition: crate::config::Condition) -> &'static str {
    use crate::config::Condition;
    match condition {
        Condition::Started => "started",
        Condition::Healthy => "healthy",
        Condition::CompletedSuccessfully => "completed",
    }
}

pub fn end_word(end: End) -> &'static str {
    match end {
        End::Finished { .. } => "finished",
        End::Halted => "halted",
        End::Signalled(Signal::SIGINT) => "interrupted",
        End::Signalled(Signal::SIGHUP) => "hangup",
        End::Signalled(_) => "terminated",
    }
}

fn stop_word(outcome: StopOutcome) -> &'static str {
    match outcome {
        StopOutcome::AlreadyGone => "gone",
        StopOutcome::Exited => "exited",
        StopOutcome::Killed => "killed",
        StopOutcome::Stuck => "stuck",
    }
}
