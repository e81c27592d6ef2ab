//! After ready: liveness, restart policy and budget, quarantine, blocking.

use super::*;

impl Dispatcher {
    /// A ready component's main process exited: apply its restart policy.
    pub(super) fn supervised_exit(&mut self, idx: usize, ok: bool, text: String) {
        let name = self.name(idx);
        let policy = self.units[idx].cfg.restart.policy;
        let restart = match policy {
            RestartPolicy::Never => false,
            RestartPolicy::OnFailure => !ok,
            RestartPolicy::Always => true,
        };
        if restart {
            self.restart(idx, if ok { "exited" } else { "crashed" }, format!("{text} after becoming ready"));
        } else if ok {
            tracing::info!("{name}: completed ({text})");
            self.units[idx].abort_probes();
            self.units[idx].status = S::Completed;
            self.event("complete", &name, "ok", None);
        } else {
            tracing::warn!("{name}: {text} after becoming ready; restart policy never");
            self.units[idx].abort_probes();
            self.units[idx].status = S::Failed;
            self.units[idx].last_error = Some(format!("{text} after becoming ready"));
            self.event("failure", &name, "exited", Some(json!({"status": text})));
        }
    }

    /// Restarts a supervised component with backoff, or quarantines it when its budget is spent.
    pub(super) fn restart(&mut self, idx: usize, reason: &str, error: String) {
        if self.shutdown.is_some() {
            return;
        }
        let name = self.name(idx);
        if self.units[idx].cfg.restart.policy == RestartPolicy::Never {
            // Supervision failures never halt the boot: the component fails on its own.
            tracing::warn!("{name}: {error}; restart policy never");
            self.units[idx].abort_probes();
            self.units[idx].status = S::Failed;
            self.units[idx].last_error = Some(error.clone());
            self.services.metrics.component_up(&name, false);
            self.event("failure", &name, "failed", Some(json!({"error": error, "policy": "never"})));
            if self.units[idx].proc.is_some() && !self.units[idx].stopping {
                self.stop_unit(idx, AfterStop::Nothing);
            }
            return;
        }
        self.units[idx].abort_probes();
        self.units[idx].last_error = Some(error.clone());
        let now = self.started.elapsed().as_secs_f64();
        let random = self.jitter.sample();
        let after = match restart_decision(&self.units[idx].cfg.restart, &self.units[idx].restart_times, now, random) {
            RestartDecision::Restart(delay) => {
                let unit = &mut self.units[idx];
                unit.restarts += 1;
                unit.restart_times.push(now);
                let window = unit.cfg.restart.window.as_secs_f64();
                unit.restart_times.retain(|&t| now - t < window);
                unit.restarting = true;
                // ready_seconds of the next start measures that start, not the first launch.
                unit.first_launch = None;
                unit.status = S::Backoff;
                let restarts = unit.restarts;
                let why = if reason == "liveness" { RestartReason::Liveness } else { RestartReason::Exited };
                self.services.metrics.restart(&name, why);
                self.services.metrics.component_up(&name, false);
                tracing::warn!("{name}: {error}; restarting in {:.2}s (restart {restarts})", delay.as_secs_f64());
                self.event(
                    "restart",
                    &name,
                    "backoff",
                    Some(json!({"reason": reason, "error": error, "delay_seconds": delay.as_secs_f64(), "restart": restarts})),
                );
                for &d in &self.plan.dependents[idx].clone() {
                    let waits_healthy =
                        self.plan.deps[d].iter().any(|e| e.on == idx && e.condition == Condition::Healthy);
                    if waits_healthy && !self.units[d].dependency_restarting.contains(&name) {
                        self.units[d].dependency_restarting.push(name.clone());
                    }
                }
                AfterStop::Restart(delay)
            }
            RestartDecision::BudgetExhausted => {
                let max = self.units[idx].cfg.restart.max_restarts;
                let window = self.units[idx].cfg.restart.window;
                let why = format!("restart budget exhausted ({max} restarts within {window:?}); last error: {error}");
                tracing::error!("{name}: {why}; quarantining");
                self.units[idx].last_error = Some(why.clone());
                self.event("quarantine", &name, "budget_exhausted", Some(json!({"error": error, "max_restarts": max})));
                AfterStop::Quarantine
            }
        };
        if self.units[idx].proc.is_some() {
            self.stop_unit(idx, after);
        } else {
            self.after_stopped(idx, after);
        }
        self.mark_dirty();
    }

    /// Dependents whose edge asks for it are restarted once their dependency is back.
    pub(super) fn restart_edge_dependents(&mut self, idx: usize) {
        let name = self.name(idx);
        for d in self.plan.dependents[idx].clone() {
            let wants = self.plan.deps[d].iter().any(|e| e.on == idx && e.restart);
            if wants && self.units[d].status == S::Healthy {
                self.restart(d, "dependency restarted", format!("{name} restarted"));
            }
        }
    }

    pub(super) fn start_liveness(&mut self, idx: usize) {
        let cfg = self.units[idx].cfg.clone();
        let Some(probe) = cfg.liveness.clone() else { return };
        let generation = self.units[idx].generation;
        self.units[idx].liveness = Tracker::default();
        if let ProbeKind::Log(_) = probe.kind {
            // A log line proves a start, not continued life: nothing to poll.
            return;
        }
        let ctx = ExecContext { env: self.component_env(&cfg), working_dir: Some(cfg.working_dir.clone()) };
        let http = self.http.clone();
        let tx = self.tx.clone();
        let task = tokio::spawn(async move {
            sleep(probe.initial_delay).await;
            loop {
                sleep(probe.period).await;
                let outcome = probe::check(&probe.kind, probe.timeout, &http, &ctx).await;
                if tx.send(Msg::Liveness { idx, generation, outcome }).is_err() {
                    return;
                }
            }
        });
        self.units[idx].liveness_task = Some(task.abort_handle());
    }

    pub(super) fn on_liveness(&mut self, idx: usize, generation: u64, outcome: probe::Outcome) {
        let unit = &mut self.units[idx];
        if unit.generation != generation || unit.status != S::Healthy {
            return;
        }
        let probe = unit.cfg.liveness.as_ref().expect("liveness results come from a liveness probe");
        self.services.metrics.probe_observed(probe.kind.name(), outcome.duration, outcome.ok, unit.cfg.name.as_str());
        let verdict = unit.liveness.observe(outcome.ok, probe.success_threshold, probe.failure_threshold);
        let failures = unit.liveness.failures;
        unit.last_liveness = Some((outcome.ok, outcome.output.clone()));
        self.mark_dirty();
        if verdict == Verdict::Fail {
            let name = self.name(idx);
            let error = format!("liveness probe failed {failures} times: {}", outcome.output);
            self.event(
                "probe",
                &name,
                "liveness_failed",
                Some(json!({"output": outcome.output, "failures": failures})),
            );
            self.alert(
                format!("{name}: liveness probe failed {failures} times after boot"),
                Severity::Warning,
                json!({"component": name, "output": outcome.output}),
            );
            self.restart(idx, "liveness", error);
        }
    }

    /// Budget exhausted: record the component in the ledger, alert, and keep it stopped.
    pub(super) fn quarantine(&mut self, idx: usize) {
        let name = self.name(idx);
        let unit = &mut self.units[idx];
        unit.status = S::Quarantined;
        unit.quarantined_now = true;
        let reason = unit.last_error.clone().unwrap_or_else(|| "failed".into());
        let mut entry = Entry::for_component(&unit.cfg, reason.clone(), Source::Razar);
        entry.attempts = unit.attempts + unit.restarts;
        let diagnosis = crate::analyze::classify(&log_tail(&self.paths.component_log(&unit.cfg.name))).summary();
        entry.extra.insert("diagnosis".into(), diagnosis.clone().into());
        if let Err(e) = self.services.ledger.add(&entry) {
            tracing::error!("{name}: cannot write the quarantine ledger: {e}");
        }
        self.alert(
            format!("{name} quarantined: {reason}"),
            Severity::Critical,
            json!({"component": name, "reason": reason, "diagnosis": diagnosis}),
        );
        self.event("quarantine", &name, "quarantined", Some(json!({"reason": reason, "diagnosis": diagnosis})));
        self.block_dependents(idx);
        self.update_quarantine_gauge();
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
            if matches!(self.units[d].status, S::Quarantined | S::Disabled | S::Downtime | S::Completed | S::Failed) {
                continue;
            }
            self.units[d].abort_probes();
            let dep = self.name(d);
            self.units[d].status = S::Blocked;
            self.units[d].blocked_by = vec![via.clone()];
            self.units[d].last_error = Some(format!("blocked: {via} is not available"));
            if self.units[d].proc.is_some() && !self.units[d].stopping {
                tracing::warn!("{dep}: stopping, its dependency {via} is quarantined");
                self.stop_unit(d, AfterStop::Nothing);
            }
            self.services.metrics.component_up(&dep, false);
            self.event("blocked", &dep, "blocked", Some(json!({"blocked_by": [via]})));
        }
    }

    pub(super) fn update_quarantine_gauge(&self) {
        let n = self.units.iter().filter(|u| u.status == S::Quarantined).count();
        self.services.metrics.quarantined(n);
    }

    /// Raises an alert without blocking the dispatcher (the webhook may take up to 5 s).
    pub(super) fn alert(&mut self, message: String, severity: Severity, context: serde_json::Value) {
        while self.pending_alerts.try_join_next().is_some() {}
        let alerts = self.services.alerts.clone();
        self.pending_alerts.spawn(async move {
            if let Err(e) = alerts.raise(message, severity, context).await {
                tracing::warn!("cannot write the alert: {e}");
            }
        });
    }
}
