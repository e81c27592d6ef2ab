//! One component's run state: its lifecycle, its process group, its counters.

use std::sync::Arc;
use std::time::Duration;

use super::AfterStop;
use crate::config::Component;
use crate::probe::policy::Tracker;
use crate::state::{ComponentState, ComponentStatus as S, Output, ProbeState};

/// A component's lifecycle.
#[derive(Debug, Clone, PartialEq)]
pub enum Life {
    /// Waits to launch: for its dependencies, a lower tier, or a free `--jobs` slot.
    Pending {
        waiting: Option<Wait>,
    },
    Starting(Start),
    /// Ready and running; its liveness probe's run of results.
    Healthy {
        liveness: Tracker,
    },
    Completed,
    /// Waiting to be launched again (local retry or supervised restart).
    Backoff,
    /// Repair round `round` is under way (or, `--long-task`, waiting to start).
    Healing {
        round: u32,
    },
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
    pub(super) first_launch: Option<Duration>,
    pub ready_at: Option<String>,
    pub ready_seconds: Option<f64>,
    pub last_error: Option<String>,
    pub last_probe: Option<(bool, String)>,
    pub last_liveness: Option<(bool, String)>,
    /// Dependencies (condition healthy) that are restarting right now.
    pub dependency_restarting: Vec<String>,
    /// The repair of the current failure: rounds so far, and the promoted patch whose
    /// relaunch is on trial.
    pub healing: Option<Healing>,
}

/// Why a pending component waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wait {
    /// For these dependencies (index, condition) and, with `tier`, for every component with a
    /// lower priority than this one.
    Deps { on: Vec<(usize, crate::config::Condition)>, tier: Option<i64> },
    /// For a free `--jobs` slot.
    Slot(usize),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Healing {
    pub rounds: u32,
    pub trial: Option<String>,
    /// When the first round of this failure started (monotonic, since the boot began).
    pub since: Duration,
}

impl Unit {
    pub(super) fn new(cfg: Arc<Component>) -> Self {
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
            healing: None,
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

    pub(super) fn stopping(&self) -> bool {
        matches!(self.group, Group::Stopping(..))
    }

    /// Will not come up in this boot without the operator: its dependents are blocked.
    pub(super) fn is_dead(&self) -> bool {
        matches!(self.status(), S::Failed | S::Blocked | S::Quarantined | S::Disabled | S::Downtime | S::Stopped)
    }

    /// Whether a dependent waiting on this unit with `condition` may start. A task counts as
    /// healthy once it has exited 0.
    pub(super) fn satisfies(&self, condition: crate::config::Condition) -> bool {
        use crate::config::Condition;
        match condition {
            Condition::Started => self.group != Group::None || matches!(self.status(), S::Healthy | S::Completed),
            Condition::Healthy => matches!(self.status(), S::Healthy | S::Completed),
            Condition::CompletedSuccessfully => self.status() == S::Completed,
        }
    }

    /// Done as far as the boot sequence goes: it came up once (supervision owns it now), or it
    /// will not come up without outside help. Gates priority tiers and `RAZAR ready.`.
    pub(super) fn settled(&self) -> bool {
        self.ever_ready() || self.at_rest()
    }

    /// Nothing will happen to it any more without outside help: razar may exit.
    pub(super) fn at_rest(&self) -> bool {
        !matches!(self.status(), S::Pending | S::Starting | S::Backoff | S::Unhealthy | S::Healing)
    }

    /// Stopped or quarantined by an operator: the boot waits for a start or a release.
    pub(super) fn held_by_operator(&self) -> bool {
        matches!(self.life, Life::Stopped { by_operator: true } | Life::Quarantined { by_operator: true, .. })
    }

    pub(super) fn failed_this_boot(&self) -> bool {
        matches!(self.life, Life::Failed | Life::Quarantined { this_boot: true, .. })
    }

    pub(super) fn snapshot(&self) -> ComponentState {
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
            // Filled in by `Machine::snapshot`, which knows the dependencies.
            waiting_for: None,
        }
    }
}

impl Life {
    pub fn pending() -> Self {
        Life::Pending { waiting: None }
    }

    pub fn status(&self) -> S {
        match self {
            Life::Pending { .. } => S::Pending,
            Life::Starting(_) => S::Starting,
            Life::Healthy { .. } => S::Healthy,
            Life::Completed => S::Completed,
            Life::Backoff => S::Backoff,
            Life::Healing { .. } => S::Healing,
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
