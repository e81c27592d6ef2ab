//! Operator requests, the quarantine ledger, signals and the order of shutdown.

use std::collections::BTreeSet;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::json;
use tracing::Level;

use super::{Action, AfterStop, End, Group, Life, Machine, Metric, Op, end_word};
use crate::metrics::RestartReason;
use crate::state::ComponentStatus as S;

impl Machine {
    pub(super) fn on_operator(&mut self, op: Op, component: &str) {
        let reply = if self.shutdown.is_some() {
            Err("the boot is shutting down".to_owned())
        } else if let Some(idx) = self.index(component) {
            match op {
                Op::Restart => self.operator_restart(idx),
                Op::Stop => self.operator_stop(idx),
                Op::Start => self.operator_start(idx),
            }
        } else {
            let names = self.units.iter().map(|u| u.cfg.name.as_str());
            let hint = crate::config::load::did_you_mean(component, names).map(|s| format!("; did you mean `{s}`?"));
            Err(format!("no component named `{component}`{}", hint.unwrap_or_default()))
        };
        self.emit(Action::Reply(reply));
    }

    fn operator_restart(&mut self, idx: usize) -> Result<String, String> {
        let name = self.name(idx);
        let unit = &mut self.units[idx];
        match unit.status() {
            S::Quarantined => Err(format!("{name} is quarantined: release it first")),
            S::Healthy | S::Starting | S::Unhealthy if unit.group != Group::None => {
                unit.life = Life::Backoff;
                if let Some(s) = &mut unit.supervised {
                    s.restarting = true;
                }
                unit.restarts += 1;
                self.emit(Action::Unwatch { idx });
                self.metric(Metric::Restart { component: name.clone(), reason: RestartReason::Operator });
                self.journal("restart", Some(idx), "operator", None);
                self.stop_unit(idx, AfterStop::Restart(Duration::ZERO));
                Ok(format!("restarting {name}"))
            }
            S::Backoff => Ok(format!("{name} is already restarting")),
            _ => self.operator_start(idx),
        }
    }

    fn operator_stop(&mut self, idx: usize) -> Result<String, String> {
        let name = self.name(idx);
        match self.units[idx].status() {
            S::Quarantined => return Err(format!("{name} is quarantined (already stopped)")),
            S::Disabled => return Err(format!("{name} is disabled in the config (not running)")),
            S::Downtime => return Err(format!("{name} is in Crown downtime for this boot (not running)")),
            _ => {}
        }
        self.emit(Action::Unwatch { idx });
        if let Life::Healing { .. } = self.units[idx].life {
            self.emit(Action::CancelHeal { idx });
            self.units[idx].healing = None;
        }
        self.units[idx].life = Life::Stopped { by_operator: true };
        self.journal("stop", Some(idx), "operator", None);
        // Also cancels a relaunch that a restart or retry had planned for after its stop.
        self.stop_unit(idx, AfterStop::Nothing);
        Ok(format!("stopping {name}"))
    }

    fn operator_start(&mut self, idx: usize) -> Result<String, String> {
        let name = self.name(idx);
        let unit = &self.units[idx];
        match unit.status() {
            S::Quarantined => Err(format!("{name} is quarantined: release it with `razar quarantine release {name}`")),
            s @ (S::Healthy | S::Starting | S::Backoff | S::Pending | S::Healing) => {
                Ok(format!("{name} is already {}", s.as_str()))
            }
            S::Disabled => Err(format!("{name} is disabled in the config (`enabled: false`)")),
            S::Downtime => Err(format!("{name} is in Crown downtime for this boot")),
            _ if unit.stopping() => Err(format!("{name} is still stopping; try again")),
            _ => {
                self.make_pending(idx);
                self.journal("start", Some(idx), "operator", None);
                Ok(format!("starting {name}"))
            }
        }
    }

    /// Puts a component back in line to launch with a fresh budget, and lifts blocks that no
    /// longer hold.
    fn make_pending(&mut self, idx: usize) {
        let u = &mut self.units[idx];
        u.life = Life::pending();
        u.attempts = 0;
        u.supervised = None;
        u.last_error = None;
        self.unblock();
    }

    /// Blocked components whose dependencies are no longer dead go back to pending.
    fn unblock(&mut self) {
        loop {
            let freed: Vec<usize> = (0..self.units.len())
                .filter(|&i| self.units[i].status() == S::Blocked)
                .filter(|&i| self.plan.deps[i].iter().all(|e| !self.units[e.on].is_dead()))
                .collect();
            if freed.is_empty() {
                return;
            }
            for i in freed {
                self.units[i].life = Life::pending();
                self.units[i].last_error = None;
            }
        }
    }

    /// Applies the ledger: newly quarantined components stop, released ones start again.
    pub(super) fn on_ledger(&mut self, listed: &BTreeSet<String>) {
        let mut stopped = Vec::new();
        let mut released = Vec::new();
        for idx in 0..self.units.len() {
            let name = self.name(idx);
            let in_ledger = listed.contains(&name);
            let quarantined = self.units[idx].status() == S::Quarantined;
            if in_ledger && !quarantined {
                self.emit(Action::Unwatch { idx });
                if let Life::Healing { .. } = self.units[idx].life {
                    self.emit(Action::CancelHeal { idx });
                    self.units[idx].healing = None;
                }
                self.units[idx].life = Life::Quarantined { this_boot: false, by_operator: true };
                self.units[idx].last_error = Some("quarantined by the operator".into());
                self.stop_unit(idx, AfterStop::Nothing);
                self.up(idx, false);
                self.journal("quarantine", Some(idx), "quarantined", Some(json!({"source": "ledger"})));
                self.block_dependents(idx);
                stopped.push(name);
            } else if !in_ledger && quarantined {
                self.journal("quarantine", Some(idx), "released", None);
                self.make_pending(idx);
                released.push(name);
            }
        }
        self.quarantine_gauge();
        self.emit(Action::Reply(Ok(format!(
            "quarantined: [{}]; released: [{}]",
            stopped.join(", "),
            released.join(", ")
        ))));
    }

    pub(super) fn on_signal(&mut self, sig: Signal) {
        if self.shutdown.is_none() {
            self.log(Level::WARN, format!("{sig} received: stopping the stack in reverse dependency order"));
            self.begin_shutdown(End::Signalled(sig));
            return;
        }
        if !self.kill_now {
            self.log(Level::WARN, format!("second {sig}: killing every component now"));
            self.kill_now = true;
            let groups: Vec<i32> = self.units.iter().filter_map(|u| u.proc().map(|p| p.pgid)).collect();
            for pgid in groups {
                self.emit(Action::Kill { pgid });
            }
        }
    }

    pub(super) fn begin_shutdown(&mut self, end: End) {
        self.shutdown = Some(end);
        for idx in 0..self.units.len() {
            self.emit(Action::Unwatch { idx });
            let u = &mut self.units[idx];
            match &mut u.life {
                Life::Backoff => u.life = Life::Stopped { by_operator: false },
                Life::Healing { .. } => {
                    u.life = Life::Stopped { by_operator: false };
                    self.out.push(Action::CancelHeal { idx });
                }
                Life::Pending { waiting } => *waiting = None,
                _ => {}
            }
        }
        self.journal("boot", None, "stopping", Some(json!({"reason": end_word(end)})));
        self.emit(Action::ShuttingDown(end));
    }

    /// Stops, in parallel, every running component that nothing still running depends on,
    /// highest tier first.
    pub(super) fn drive_shutdown(&mut self) {
        let running = |u: &super::Unit| u.group != Group::None;
        let mut per_tier = vec![0usize; self.plan.tiers.len()];
        for (i, u) in self.units.iter().enumerate() {
            if let (Some(k), true) = (self.plan.tier[i], running(u)) {
                per_tier[k] += 1;
            }
        }
        let stoppable: Vec<usize> = (0..self.units.len())
            .filter(|&i| matches!(self.units[i].group, Group::Up(_)))
            .filter(|&i| self.plan.may_stop(i, |j| running(&self.units[j]), &per_tier))
            .collect();
        for idx in stoppable {
            self.log(Level::INFO, format!("{}: stopping", self.name(idx)));
            self.stop_unit(idx, AfterStop::Nothing);
        }
    }
}
