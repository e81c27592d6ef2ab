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
use crate::config::{Component, Config};
use crate::metrics::RestartReason;
use crate::probe::policy::Tracker;
use crate::state::{ComponentState, ComponentStatus as S, Output, ProbeState};
use crate::supervise::terminate::StopOutcome;

mod boot;
mod operator;
mod supervision;

#[cfg(test)]
mod properties;
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
    /// Every component has settled: `RAZAR ready.`
    Ready,
    /// The stack is being stopped, for this reason.
    ShuttingDown(End),
    /// The answer to an [`Event::Operator`] request.
    Reply(Result<String, String>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Metric {
    Up { component: String, up: bool },
    Ready { component: String, after: Duration },
    Restart { component: String, reason: RestartReason },
    Probe { component: String, kind: &'static str, duration: Duration, ok: bool },
    Quarantined(usize),
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

/// A component's lifecycle.
#[derive(Debug, Clone, PartialEq)]
pub enum Life {
    /// Waits to launch: for its dependencies (`waiting`, shown in the state; `key`, the same
    /// without probe progress, logged when it changes), a tier, or a free `--jobs` slot.
    Pending {
        waiting: Option<String>,
        key: String,
    },
    Starting(Start),
    /// Ready and running; its liveness probe's run of results.
    Healthy {
        liveness: Tracker,
    },
    Completed,
    /// Waiting to be launched again (local retry or supervised restart).
    Backoff,
    /// The last attempt failed; its group is being stopped.
    Unhealthy,
    Failed,
    Blocked {
        by: Vec<String>,
    },
    /// `this_boot`: the boot's own decision (counts as a failure); `by_operator`: the boot
    /// waits for a release instead of ending.
    Quarantined {
        this_boot: bool,
        by_operator: bool,
    },
    /// `by_operator`: the boot waits for `razar start` instead of ending.
    Stopped {
        by_operator: bool,
    },
    Disabled,
    Downtime,
}

/// An attempt to become ready.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Start {
    /// The readiness probe's run of results.
    pub tracker: Tracker,
    /// How the main process ended, if it did: success, and a description.
    pub exit: Option<(bool, String)>,
    /// A log probe still waits for its line in this attempt's output.
    pub log_pending: bool,
}

/// A launched process group, until it is verified gone.
#[derive(Debug, Clone, PartialEq)]
pub enum Group {
    None,
    Up(Proc),
    /// Being stopped; then this happens.
    Stopping(Proc, AfterStop),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Proc {
    pub pid: u32,
    pub pgid: i32,
    pub start_time: Option<u64>,
    /// The main process has exited (stragglers may remain in the group).
    pub exited: bool,
    /// Adopted from an earlier boot (`--resume`): its output is not captured.
    pub detached: bool,
}

/// Supervision of a component that became ready (failures go through its restart policy).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Supervised {
    /// A supervised restart is under way (cleared when ready again).
    pub restarting: bool,
    /// Monotonic times (seconds since the boot began) of restarts within the window.
    pub restart_times: Vec<f64>,
}

#[derive(Debug, Clone)]
pub struct Unit {
    pub cfg: Arc<Component>,
    pub life: Life,
    pub group: Group,
    pub attempts: u32,
    pub restarts: u32,
    pub generation: u64,
    pub supervised: Option<Supervised>,
    first_launch: Option<Duration>,
    pub ready_at: Option<String>,
    pub ready_seconds: Option<f64>,
    pub last_error: Option<String>,
    pub last_probe: Option<(bool, String)>,
    pub last_liveness: Option<(bool, String)>,
    /// Dependencies (condition healthy) that are restarting right now.
    pub dependency_restarting: Vec<String>,
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
        }
    }

    /// Applies one event at `now`; returns what must be done, in order.
    pub fn step(&mut self, event: Event, now: Now) -> Vec<Action> {
        self.now = now;
        match event {
            Event::Begin => self.begin(),
            Event::Adopt { idx, pid, pgid, start_time, ready_at } => self.adopt(idx, pid, pgid, start_time, ready_at),
            Event::Launched { idx, generation, pid, pgid, start_time } => {
                self.launched(idx, generation, Proc { pid, pgid, start_time, exited: false, detached: false })
            }
            Event::LaunchFailed { idx, generation, error, lasting } => {
                self.launch_failed(idx, generation, error, lasting)
            }
            Event::Exited { idx, generation, ok, text, group_alive } => {
                self.on_exit(idx, generation, ok, text, group_alive)
            }
            Event::Probe { idx, generation, role: Role::Readiness, result } => self.on_probe(idx, generation, result),
            Event::Probe { idx, generation, role: Role::Liveness, result } => self.on_liveness(idx, generation, result),
            Event::Output { idx, generation, line } => self.on_output(idx, generation, line),
            Event::Stopped { idx, generation, outcome } => self.on_stopped(idx, generation, outcome),
            Event::Timer(timer) => self.on_timer(timer),
            Event::Signal(sig) => self.on_signal(sig),
            Event::Operator { op, component } => self.on_operator(op, &component),
            Event::Ledger(names) => self.on_ledger(&names),
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
        self.units.iter().map(Unit::snapshot).collect()
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

impl Unit {
    fn new(cfg: Arc<Component>) -> Self {
        Unit {
            life: if cfg.enabled { Life::pending() } else { Life::Disabled },
            cfg,
            group: Group::None,
            attempts: 0,
            restarts: 0,
            generation: 0,
            supervised: None,
            first_launch: None,
            ready_at: None,
            ready_seconds: None,
            last_error: None,
            last_probe: None,
            last_liveness: None,
            dependency_restarting: Vec::new(),
        }
    }

    pub fn status(&self) -> S {
        self.life.status()
    }

    /// Became ready at least once this boot (and was not put back in line since).
    pub fn ever_ready(&self) -> bool {
        self.supervised.is_some()
    }

    pub fn proc(&self) -> Option<&Proc> {
        match &self.group {
            Group::None => None,
            Group::Up(p) | Group::Stopping(p, _) => Some(p),
        }
    }

    fn stopping(&self) -> bool {
        matches!(self.group, Group::Stopping(..))
    }

    /// Will not come up in this boot without the operator: its dependents are blocked.
    fn is_dead(&self) -> bool {
        matches!(self.status(), S::Failed | S::Blocked | S::Quarantined | S::Disabled | S::Downtime | S::Stopped)
    }

    /// Whether a dependent waiting on this unit with `condition` may start. A task counts as
    /// healthy once it has exited 0.
    fn satisfies(&self, condition: crate::config::Condition) -> bool {
        use crate::config::Condition;
        match condition {
            Condition::Started => self.group != Group::None || matches!(self.status(), S::Healthy | S::Completed),
            Condition::Healthy => matches!(self.status(), S::Healthy | S::Completed),
            Condition::CompletedSuccessfully => self.status() == S::Completed,
        }
    }

    /// Done as far as the boot sequence goes: it came up once (supervision owns it now), or it
    /// will not come up without outside help. Gates priority tiers and `RAZAR ready.`.
    fn settled(&self) -> bool {
        self.ever_ready() || self.at_rest()
    }

    /// Nothing will happen to it any more without outside help: razar may exit.
    fn at_rest(&self) -> bool {
        !matches!(self.status(), S::Pending | S::Starting | S::Backoff | S::Unhealthy)
    }

    /// Stopped or quarantined by an operator: the boot waits for a start or a release.
    fn held_by_operator(&self) -> bool {
        matches!(self.life, Life::Stopped { by_operator: true } | Life::Quarantined { by_operator: true, .. })
    }

    fn failed_this_boot(&self) -> bool {
        matches!(self.life, Life::Failed | Life::Quarantined { this_boot: true, .. })
    }

    fn snapshot(&self) -> ComponentState {
        let probe_state = |p: &crate::config::Probe, last: &Option<(bool, String)>| ProbeState {
            kind: p.kind.name().to_owned(),
            last_result: last.as_ref().map(|(ok, _)| if *ok { "pass" } else { "fail" }.to_owned()),
            last_output: last.as_ref().map(|(_, o)| o.clone()),
        };
        let proc = self.proc();
        ComponentState {
            id: self.cfg.name.to_string(),
            state: self.status(),
            pid: proc.map(|p| p.pid),
            pgid: proc.map(|p| p.pgid),
            start_time: proc.and_then(|p| p.start_time),
            output: proc.filter(|p| p.detached).map(|_| Output::Detached),
            attempts: self.attempts,
            restarts: self.restarts,
            ready_at: self.ready_at.clone(),
            ready_seconds: self.ready_seconds,
            last_error: self.last_error.clone(),
            probe: self.cfg.health_check.as_ref().map(|p| probe_state(p, &self.last_probe)),
            liveness: self.cfg.liveness.as_ref().map(|p| probe_state(p, &self.last_liveness)),
            blocked_by: match &self.life {
                Life::Blocked { by } => by.clone(),
                _ => Vec::new(),
            },
            dependency_restarting: self.dependency_restarting.clone(),
            waiting_for: match &self.life {
                Life::Pending { waiting, .. } => waiting.clone(),
                _ => None,
            },
        }
    }
}

impl Life {
    pub fn pending() -> Self {
        Life::Pending { waiting: None, key: String::new() }
    }

    pub fn status(&self) -> S {
        match self {
            Life::Pending { .. } => S::Pending,
            Life::Starting(_) => S::Starting,
            Life::Healthy { .. } => S::Healthy,
            Life::Completed => S::Completed,
            Life::Backoff => S::Backoff,
            Life::Unhealthy => S::Unhealthy,
            Life::Failed => S::Failed,
            Life::Blocked { .. } => S::Blocked,
            Life::Quarantined { .. } => S::Quarantined,
            Life::Stopped { .. } => S::Stopped,
            Life::Disabled => S::Disabled,
            Life::Downtime => S::Downtime,
        }
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
