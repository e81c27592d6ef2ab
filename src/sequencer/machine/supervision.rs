//! After ready: liveness, restart policy and budget, quarantine, blocking of dependents.

use std::collections::BTreeMap;

use serde_json::json;
use tracing::Level;

use super::{Action, AfterStop, Group, Life, Machine, Metric, ProbeResult, Role};
use crate::alerts::Severity;
use crate::config::{Condition, ProbeKind, RestartPolicy};
use crate::metrics::RestartReason;
use crate::probe::policy::Verdict;
use crate::sequencer::backoff::{RestartDecision, restart_decision};
use crate::state::ComponentStatus as S;

impl Machine {
    /// A ready component's main process exited: apply its restart policy.
    pub(super) fn supervised_exit(&mut self, idx: usize, ok: bool, text: String) {
        let restart = match self.units[idx].cfg.restart.policy {
            RestartPolicy::Never => false,
            RestartPolicy::OnFailure => !ok,
            RestartPolicy::Always => true,
        };
        if restart {
            self.restart(idx, if ok { "exited" } else { "crashed" }, format!("{text} after becoming ready"));
            return;
        }
        self.emit(Action::Unwatch { idx });
        if ok {
            self.log(Level::INFO, format!("{}: completed ({text})", self.name(idx)));
            self.units[idx].life = Life::Completed;
            self.journal("complete", Some(idx), "ok", None);
        } else {
            self.log(Level::WARN, format!("{}: {text} after becoming ready; restart policy never", self.name(idx)));
            self.units[idx].life = Life::Failed;
            self.units[idx].last_error = Some(format!("{text} after becoming ready"));
            self.journal("failure", Some(idx), "exited", Some(json!({"status": text})));
        }
    }

    /// Restarts a supervised component with backoff, or quarantines it when its budget is spent.
    pub(super) fn restart(&mut self, idx: usize, reason: &str, error: String) {
        if self.shutdown.is_some() {
            return;
        }
        let name = self.name(idx);
        self.emit(Action::Unwatch { idx });
        self.units[idx].last_error = Some(error.clone());
        if self.units[idx].cfg.restart.policy == RestartPolicy::Never {
            // Supervision failures never halt the boot: the component fails on its own.
            self.log(Level::WARN, format!("{name}: {error}; restart policy never"));
            self.units[idx].life = Life::Failed;
            self.up(idx, false);
            self.journal("failure", Some(idx), "failed", Some(json!({"error": error, "policy": "never"})));
            if matches!(self.units[idx].group, Group::Up(_)) {
                self.stop_unit(idx, AfterStop::Nothing);
            }
            return;
        }
        let now = self.now.mono.as_secs_f64();
        let random = self.jitter.sample();
        let unit = &mut self.units[idx];
        let supervised = unit.supervised.get_or_insert_with(Default::default);
        let after = match restart_decision(&unit.cfg.restart, &supervised.restart_times, now, random) {
            RestartDecision::Restart(delay) => {
                unit.restarts += 1;
                let window = unit.cfg.restart.window.as_secs_f64();
                supervised.restart_times.push(now);
                supervised.restart_times.retain(|&t| now - t < window);
                supervised.restarting = true;
                // ready_seconds of the next start measures that start, not the first launch.
                unit.first_launch = None;
                unit.life = Life::Backoff;
                let restarts = unit.restarts;
                let why = if reason == "liveness" { RestartReason::Liveness } else { RestartReason::Exited };
                self.metric(Metric::Restart { component: name.clone(), reason: why });
                self.up(idx, false);
                let secs = delay.as_secs_f64();
                self.log(Level::WARN, format!("{name}: {error}; restarting in {secs:.2}s (restart {restarts})"));
                let details = json!({"reason": reason, "error": error, "delay_seconds": secs, "restart": restarts});
                self.journal("restart", Some(idx), "backoff", Some(details));
                for d in self.plan.dependents[idx].clone() {
                    let waits_healthy =
                        self.plan.deps[d].iter().any(|e| e.on == idx && e.condition == Condition::Healthy);
                    if waits_healthy && !self.units[d].dependency_restarting.contains(&name) {
                        self.units[d].dependency_restarting.push(name.clone());
                    }
                }
                AfterStop::Restart(delay)
            }
            RestartDecision::BudgetExhausted => {
                let (max, window) = (unit.cfg.restart.max_restarts, unit.cfg.restart.window);
                let why = format!("restart budget exhausted ({max} restarts within {window:?}); last error: {error}");
                unit.last_error = Some(why.clone());
                self.log(Level::ERROR, format!("{name}: {why}; quarantining"));
                let details = json!({"error": error, "max_restarts": max});
                self.journal("quarantine", Some(idx), "budget_exhausted", Some(details));
                AfterStop::Quarantine
            }
        };
        self.stop_then(idx, after);
    }

    /// Dependents whose edge asks for it are restarted once their dependency is back.
    pub(super) fn restart_edge_dependents(&mut self, idx: usize) {
        let name = self.name(idx);
        for d in self.plan.dependents[idx].clone() {
            let wants = self.plan.deps[d].iter().any(|e| e.on == idx && e.restart);
            if wants && self.units[d].status() == S::Healthy {
                self.restart(d, "dependency restarted", format!("{name} restarted"));
            }
        }
    }

    /// Polls the liveness probe of a component that just became healthy. A log line proves
    /// a start, not continued life: a log liveness probe polls nothing.
    pub(super) fn watch_liveness(&mut self, idx: usize) {
        let u = &self.units[idx];
        if u.cfg.liveness.as_ref().is_some_and(|p| !matches!(p.kind, ProbeKind::Log(_))) {
            let generation = u.generation;
            self.emit(Action::Watch { idx, generation, role: Role::Liveness });
        }
    }

    pub(super) fn on_liveness(&mut self, idx: usize, generation: u64, result: ProbeResult) {
        let unit = &mut self.units[idx];
        let (Life::Healthy { liveness }, Some(probe)) = (&mut unit.life, unit.cfg.liveness.as_ref()) else { return };
        if unit.generation != generation {
            return;
        }
        let verdict = liveness.observe(result.ok, probe.success_threshold, probe.failure_threshold);
        let failures = liveness.failures;
        let kind = probe.kind.name();
        unit.last_liveness = Some((result.ok, result.output.clone()));
        let name = self.name(idx);
        self.metric(Metric::Probe { component: name.clone(), kind, duration: result.duration, ok: result.ok });
        if verdict == Verdict::Fail {
            let output = result.output;
            self.journal("probe", Some(idx), "liveness_failed", Some(json!({"output": output, "failures": failures})));
            self.emit(Action::Alert {
                message: format!("{name}: liveness probe failed {failures} times after boot"),
                severity: Severity::Warning,
                context: json!({"component": name, "output": output}),
            });
            self.restart(idx, "liveness", format!("liveness probe failed {failures} times: {output}"));
        }
    }

    /// Budget exhausted: record the component in the ledger, alert, and keep it stopped.
    pub(super) fn quarantine(&mut self, idx: usize) {
        let unit = &mut self.units[idx];
        unit.life = Life::Quarantined { this_boot: true, by_operator: false };
        let reason = unit.last_error.clone().unwrap_or_else(|| "failed".into());
        let attempts = unit.attempts + unit.restarts;
        self.emit(Action::Quarantine { idx, reason, attempts });
        self.block_dependents(idx);
        self.quarantine_gauge();
    }

    /// A quarantined component's dependents cannot work: running ones are stopped and every
    /// one is `blocked` (by whom is in the state) until the component is released.
    pub(super) fn block_dependents(&mut self, idx: usize) {
        let name = self.name(idx);
        let mut direct_blocker: BTreeMap<usize, String> = BTreeMap::new();
        for d in self.plan.transitive_dependents(idx) {
            let via = self.plan.deps[d]
                .iter()
                .find(|e| e.on == idx || direct_blocker.contains_key(&e.on))
                .map(|e| self.name(e.on))
                .unwrap_or_else(|| name.clone());
            direct_blocker.insert(d, via);
        }
        for (d, via) in direct_blocker {
            if matches!(self.units[d].status(), S::Quarantined | S::Disabled | S::Downtime | S::Completed | S::Failed) {
                continue;
            }
            self.emit(Action::Unwatch { idx: d });
            let unit = &mut self.units[d];
            unit.life = Life::Blocked { by: vec![via.clone()] };
            unit.last_error = Some(format!("blocked: {via} is not available"));
            if matches!(unit.group, Group::Up(_)) {
                self.log(Level::WARN, format!("{}: stopping, its dependency {via} is quarantined", self.name(d)));
                self.stop_unit(d, AfterStop::Nothing);
            }
            self.up(d, false);
            self.journal("blocked", Some(d), "blocked", Some(json!({"blocked_by": [via]})));
        }
    }

    pub(super) fn quarantine_gauge(&mut self) {
        let n = self.units.iter().filter(|u| u.status() == S::Quarantined).count();
        self.metric(Metric::Quarantined(n));
    }
}
