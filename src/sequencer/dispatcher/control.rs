//! Operator requests from the control socket.

use super::*;

impl Dispatcher {
    pub(super) fn on_request(&mut self, envelope: Envelope) {
        let response = match envelope.request {
            Request::Status => Response::state(self.snapshot_json()),
            Request::QuarantineReload => self.reload_quarantine(),
            Request::Restart { component } => self.with_component(&component, Self::operator_restart),
            Request::Stop { component } => self.with_component(&component, Self::operator_stop),
            Request::Start { component } => self.with_component(&component, Self::operator_start),
        };
        let _ = envelope.reply.send(response);
    }

    pub(super) fn with_component(&mut self, name: &str, op: fn(&mut Self, usize) -> Response) -> Response {
        if self.shutdown.is_some() {
            return Response::error("the boot is shutting down");
        }
        match self.units.iter().position(|u| u.cfg.name.as_str() == name) {
            Some(idx) => op(self, idx),
            None => {
                let names = self.units.iter().map(|u| u.cfg.name.as_str());
                let hint = crate::config::load::did_you_mean(name, names).map(|s| format!("; did you mean `{s}`?"));
                Response::error(format!("no component named `{name}`{}", hint.unwrap_or_default()))
            }
        }
    }

    pub(super) fn operator_restart(&mut self, idx: usize) -> Response {
        let name = self.name(idx);
        match self.units[idx].status {
            S::Quarantined => Response::error(format!("{name} is quarantined: release it first")),
            S::Healthy | S::Starting | S::Unhealthy if self.units[idx].proc.is_some() => {
                self.units[idx].abort_probes();
                self.units[idx].status = S::Backoff;
                self.units[idx].restarting = self.units[idx].ever_ready;
                self.units[idx].restarts += 1;
                self.services.metrics.restart(&name, RestartReason::Operator);
                self.event("restart", &name, "operator", None);
                self.stop_unit(idx, AfterStop::Restart(Duration::ZERO));
                Response::ok(format!("restarting {name}"))
            }
            S::Backoff => Response::ok(format!("{name} is already restarting")),
            _ => self.operator_start(idx),
        }
    }

    pub(super) fn operator_stop(&mut self, idx: usize) -> Response {
        let name = self.name(idx);
        match self.units[idx].status {
            S::Quarantined => return Response::error(format!("{name} is quarantined (already stopped)")),
            S::Disabled => return Response::error(format!("{name} is disabled in the config (not running)")),
            S::Downtime => return Response::error(format!("{name} is in Crown downtime for this boot (not running)")),
            _ => {}
        }
        self.units[idx].abort_probes();
        self.units[idx].status = S::Stopped;
        self.units[idx].held_by_operator = true;
        self.event("stop", &name, "operator", None);
        // Also cancels a relaunch that a restart or retry had planned for after its stop.
        self.stop_unit(idx, AfterStop::Nothing);
        self.mark_dirty();
        Response::ok(format!("stopping {name}"))
    }

    pub(super) fn operator_start(&mut self, idx: usize) -> Response {
        let name = self.name(idx);
        match self.units[idx].status {
            S::Quarantined => {
                Response::error(format!("{name} is quarantined: release it with `razar quarantine release {name}`"))
            }
            S::Healthy | S::Starting | S::Backoff | S::Pending => {
                Response::ok(format!("{name} is already {}", self.units[idx].status.as_str()))
            }
            S::Disabled => Response::error(format!("{name} is disabled in the config (`enabled: false`)")),
            S::Downtime => Response::error(format!("{name} is in Crown downtime for this boot")),
            _ if self.units[idx].stopping => Response::error(format!("{name} is still stopping; try again")),
            _ => {
                self.make_pending(idx);
                self.event("start", &name, "operator", None);
                Response::ok(format!("starting {name}"))
            }
        }
    }

    /// Puts a component back in line to launch with a fresh budget, and lifts blocks that no
    /// longer hold.
    pub(super) fn make_pending(&mut self, idx: usize) {
        let u = &mut self.units[idx];
        u.status = S::Pending;
        u.attempts = 0;
        u.ever_ready = false;
        u.restart_times.clear();
        u.quarantined_now = false;
        u.held_by_operator = false;
        u.blocked_by.clear();
        u.last_error = None;
        self.unblock();
        self.mark_dirty();
    }

    /// Blocked components whose dependencies are no longer dead go back to pending.
    pub(super) fn unblock(&mut self) {
        loop {
            let freed: Vec<usize> = (0..self.units.len())
                .filter(|&i| self.units[i].status == S::Blocked)
                .filter(|&i| self.plan.deps[i].iter().all(|e| !self.units[e.on].is_dead()))
                .collect();
            if freed.is_empty() {
                return;
            }
            for i in freed {
                self.units[i].status = S::Pending;
                self.units[i].blocked_by.clear();
                self.units[i].last_error = None;
            }
        }
    }

    /// Applies the ledger: newly quarantined components stop, released ones start again.
    pub(super) fn reload_quarantine(&mut self) -> Response {
        // Every entry file counts, readable or not: an unreadable entry keeps its component out.
        let names = match self.services.ledger.names() {
            Ok(n) => n,
            Err(e) => return Response::error(format!("cannot read the quarantine ledger: {e}")),
        };
        let listed: std::collections::HashSet<String> = names.iter().map(|n| n.to_string()).collect();
        let mut stopped = Vec::new();
        let mut released = Vec::new();
        for idx in 0..self.units.len() {
            let name = self.name(idx);
            let in_ledger = listed.contains(&name);
            let quarantined = self.units[idx].status == S::Quarantined;
            if in_ledger && !quarantined {
                self.units[idx].abort_probes();
                self.units[idx].status = S::Quarantined;
                self.units[idx].held_by_operator = true;
                self.units[idx].last_error = Some("quarantined by the operator".into());
                self.stop_unit(idx, AfterStop::Nothing);
                self.services.metrics.component_up(&name, false);
                self.event("quarantine", &name, "quarantined", Some(json!({"source": "ledger"})));
                self.block_dependents(idx);
                stopped.push(name);
            } else if !in_ledger && quarantined {
                self.event("quarantine", &name, "released", None);
                self.make_pending(idx);
                released.push(name);
            }
        }
        self.update_quarantine_gauge();
        self.mark_dirty();
        Response::ok(format!("quarantined: [{}]; released: [{}]", stopped.join(", "), released.join(", ")))
    }

    /// The live state, as `logs/razar_state.json` would hold it now.
    pub(super) fn snapshot_json(&mut self) -> serde_json::Value {
        self.refresh_state();
        serde_json::to_value(&self.state).unwrap_or_default()
    }

    pub(super) fn refresh_state(&mut self) {
        self.state.components = self.units.iter().map(Unit::snapshot).collect();
        self.state.quarantine =
            self.units.iter().filter(|u| u.status == S::Quarantined).map(|u| u.cfg.name.to_string()).collect();
    }
}
