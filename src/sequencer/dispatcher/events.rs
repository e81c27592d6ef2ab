//! Child exits, probe verdicts and output: what each event changes.

use super::*;

impl Dispatcher {
    pub(super) fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Exited { idx, generation, status } => self.on_exit(idx, generation, status),
            Msg::Probe { idx, generation, outcome } => self.on_probe(idx, generation, outcome),
            Msg::LogLine { idx, generation, line } => self.on_log_line(idx, generation, line),
            Msg::Stopped { idx, generation, outcome } => self.on_stopped(idx, generation, outcome),
            Msg::Liveness { idx, generation, outcome } => self.on_liveness(idx, generation, outcome),
        }
    }

    pub(super) fn on_exit(&mut self, idx: usize, generation: u64, status: Result<ExitStatus, String>) {
        if self.units[idx].generation != generation {
            return;
        }
        let (ok, text) = match &status {
            Ok(s) if s.success() => (true, "exited 0".to_owned()),
            Ok(s) => (false, describe_exit(s)),
            Err(e) => (false, e.clone()),
        };
        let name = self.name(idx);
        let Some(proc) = self.units[idx].proc.as_mut() else { return };
        proc.exited = true;
        let pgid = proc.pgid;
        self.units[idx].exit = Some((ok, text.clone()));
        self.event("exit", &name, if ok { "ok" } else { "error" }, Some(json!({"status": text})));
        if self.units[idx].stopping {
            return;
        }
        let unit = &self.units[idx];
        match (unit.status, unit.cfg.kind, ok) {
            (S::Starting, Kind::Task, true) => self.became_ready(idx),
            // The ready line may still be in the pipe: let the output drain decide first.
            (S::Starting, _, false) if self.units[idx].log_pending => {
                self.add_timer(Instant::now() + EXIT_SETTLE, Timer::ExitSettle { idx, generation });
            }
            (S::Starting, _, false) => self.attempt_failed(idx, format!("{text} before becoming ready")),
            // A service that exits 0 while starting is judged by its probe (the seed form:
            // a command that prints and exits, checked by a separate health command).
            (S::Starting, Kind::Service, true) => {}
            (S::Healthy, _, _) => self.supervised_exit(idx, ok, text),
            _ => {}
        }
        // The group ends with its main process: stragglers it left behind are stopped.
        if procfs::group_exists(pgid) && self.units[idx].proc.is_some() && !self.units[idx].stopping {
            self.stop_unit(idx, AfterStop::Nothing);
        } else if !self.units[idx].stopping {
            self.units[idx].proc = None;
        }
        self.mark_dirty();
    }

    pub(super) fn on_probe(&mut self, idx: usize, generation: u64, outcome: probe::Outcome) {
        let unit = &mut self.units[idx];
        if unit.generation != generation || unit.status != S::Starting {
            return;
        }
        let probe = unit.cfg.health_check.as_ref().expect("probe results come from a probe");
        self.services.metrics.probe_observed(probe.kind.name(), outcome.duration, outcome.ok, unit.cfg.name.as_str());
        unit.last_probe = Some((outcome.ok, outcome.output.clone()));
        // While starting, failures only count towards progress: the ready deadline decides.
        let verdict = unit.tracker.observe(outcome.ok, probe.success_threshold, u32::MAX);
        self.mark_dirty();
        if verdict == Verdict::Pass {
            self.became_ready(idx);
        }
    }

    pub(super) fn on_log_line(&mut self, idx: usize, generation: u64, line: Option<String>) {
        let unit = &mut self.units[idx];
        if unit.generation != generation || unit.status != S::Starting {
            return;
        }
        unit.log_pending = false;
        match line {
            Some(line) => {
                unit.tracker.observe(true, 1, u32::MAX);
                unit.last_probe = Some((true, line));
                self.became_ready(idx);
                // It printed its ready line and then died: a supervised failure, not a failed start.
                if let Some((false, text)) = self.units[idx].exit.clone() {
                    self.supervised_exit(idx, false, text);
                }
            }
            None if matches!(unit.exit, Some((false, _))) => {
                let text = unit.exit.as_ref().map(|(_, t)| t.clone()).unwrap_or_default();
                self.attempt_failed(idx, format!("{text} before becoming ready"));
            }
            None => {
                let pattern = match unit.cfg.health_check.as_ref().map(|p| &p.kind) {
                    Some(ProbeKind::Log(re)) => re.as_str().to_owned(),
                    _ => String::new(),
                };
                let why = format!("output ended without a line matching /{pattern}/");
                unit.last_probe = Some((false, why.clone()));
                self.attempt_failed(idx, why);
            }
        }
    }

    pub(super) fn became_ready(&mut self, idx: usize) {
        let name = self.name(idx);
        let unit = &mut self.units[idx];
        unit.abort_probes();
        let secs = unit.first_launch.map_or(0.0, |t| t.elapsed().as_secs_f64());
        let now = clock::epoch();
        unit.ready_at = Some(clock::iso(now));
        unit.ready_seconds = Some(secs);
        let exited = unit.exit.as_ref().map(|(ok, _)| *ok);
        // A task without a probe becomes ready by exiting 0; one with a probe is healthy while
        // it runs and completes when it exits 0.
        unit.status = if exited == Some(true) { S::Completed } else { S::Healthy };
        let status = unit.status;
        let was_restarting = std::mem::replace(&mut self.units[idx].restarting, false);
        self.units[idx].ever_ready = true;
        if status == S::Healthy {
            self.start_liveness(idx);
        }
        for &d in &self.plan.dependents[idx].clone() {
            self.units[d].dependency_restarting.retain(|n| *n != name);
        }
        if was_restarting {
            self.restart_edge_dependents(idx);
        }
        self.services.metrics.component_up(&name, true);
        self.services.metrics.component_ready(&name, Duration::from_secs_f64(secs));
        tracing::info!("{name}: {} after {secs:.2}s (attempt {})", status.as_str(), self.units[idx].attempts);
        self.event(
            "ready",
            &name,
            status.as_str(),
            Some(json!({"seconds": secs, "attempt": self.units[idx].attempts})),
        );
        self.mark_dirty();
    }

    pub(super) fn attempt_failed(&mut self, idx: usize, reason: String) {
        if self.units[idx].ever_ready {
            // A restarted component that fails to come back is one more supervised failure.
            self.restart(idx, "not ready after restart", reason);
            return;
        }
        let name = self.name(idx);
        let attempts = self.units[idx].attempts;
        let retry = attempts <= self.opts.retries && self.shutdown.is_none();
        let unit = &mut self.units[idx];
        unit.abort_probes();
        unit.last_error = Some(reason.clone());
        unit.status = if retry { S::Backoff } else { S::Unhealthy };
        tracing::warn!("{name}: attempt {attempts} failed: {reason}");
        self.event("failure", &name, "attempt_failed", Some(json!({"attempt": attempts, "error": reason})));
        let after = if retry { AfterStop::Retry } else { AfterStop::Fail };
        if self.units[idx].proc.is_some() {
            self.stop_unit(idx, after);
        } else {
            self.after_stopped(idx, after);
        }
        self.mark_dirty();
    }

    pub(super) fn after_stopped(&mut self, idx: usize, after: AfterStop) {
        match after {
            AfterStop::Nothing => {}
            AfterStop::Retry if self.shutdown.is_none() => {
                let delay = local_retry_delay(self.units[idx].attempts);
                let generation = self.units[idx].generation;
                self.units[idx].status = S::Backoff;
                tracing::info!("{}: retrying in {}s", self.name(idx), delay.as_secs());
                self.event(
                    "retry",
                    &self.name(idx),
                    "backoff",
                    Some(json!({"delay_seconds": delay.as_secs_f64(), "next_attempt": self.units[idx].attempts + 1})),
                );
                self.add_timer(Instant::now() + delay, Timer::Backoff { idx, generation });
            }
            AfterStop::Retry => self.units[idx].status = S::Stopped,
            AfterStop::Fail => self.final_failure(idx),
            AfterStop::Restart(delay) if self.shutdown.is_none() => {
                let generation = self.units[idx].generation;
                self.units[idx].status = S::Backoff;
                self.add_timer(Instant::now() + delay, Timer::Backoff { idx, generation });
            }
            AfterStop::Restart(_) => self.units[idx].status = S::Stopped,
            AfterStop::Quarantine => self.quarantine(idx),
        }
    }

    pub(super) fn final_failure(&mut self, idx: usize) {
        let name = self.name(idx);
        self.units[idx].status = S::Failed;
        let error = self.units[idx].last_error.clone().unwrap_or_default();
        tracing::error!("{name}: failed after {} attempts: {error}", self.units[idx].attempts);
        self.event("failure", &name, "failed", Some(json!({"attempts": self.units[idx].attempts, "error": error})));
        let halt = !self.opts.keep_going && self.cfg.on_failure == OnFailure::Halt;
        self.services.metrics.component_up(&name, false);
        if halt && self.shutdown.is_none() {
            tracing::error!("boot halted: {name} failed; stopping the stack");
            self.alert(
                format!("Boot sequence halted: {name} failed after {} attempts", self.units[idx].attempts),
                Severity::Critical,
                json!({"component": name, "error": error}),
            );
            self.begin_shutdown(End::Halted);
        }
        self.mark_dirty();
    }

    pub(super) fn on_stopped(&mut self, idx: usize, generation: u64, outcome: StopOutcome) {
        if self.units[idx].generation != generation {
            return;
        }
        let name = self.name(idx);
        let unit = &mut self.units[idx];
        unit.stopping = false;
        unit.proc = None;
        let after = std::mem::replace(&mut unit.after_stop, AfterStop::Nothing);
        if outcome == StopOutcome::Stuck {
            tracing::error!("{name}: processes remain in its group after SIGKILL");
        }
        self.event("stop", &name, stop_word(outcome), None);
        self.services.metrics.component_up(&name, false);
        if self.shutdown.is_some() && !matches!(after, AfterStop::Fail | AfterStop::Quarantine) {
            let unit = &mut self.units[idx];
            if matches!(unit.status, S::Healthy | S::Starting | S::Backoff | S::Unhealthy) {
                unit.status = S::Stopped;
            }
        } else {
            self.after_stopped(idx, after);
        }
        self.mark_dirty();
    }

    pub(super) fn stop_unit(&mut self, idx: usize, after: AfterStop) {
        let unit = &mut self.units[idx];
        let Some(proc) = unit.proc.as_ref() else { return };
        if unit.stopping {
            // One stop per group: a later decision (an operator's stop during a restart, a
            // quarantine) replaces what happens once the group is gone.
            unit.after_stop = after;
            return;
        }
        unit.stopping = true;
        unit.after_stop = after;
        let pgid = proc.pgid;
        let generation = unit.generation;
        let cfg = unit.cfg.clone();
        let grace = if self.kill_now { Duration::ZERO } else { cfg.shutdown.grace };
        // Only a deliberate stop of a running component runs its `stop` command.
        let stop_cmd = if !proc.exited && after == AfterStop::Nothing { cfg.stop.clone() } else { None };
        let ctx = ExecContext { env: self.component_env(&cfg), working_dir: Some(cfg.working_dir.clone()) };
        let tx = self.tx.clone();
        tokio::spawn(async move {
            if let Some(cmd) = stop_cmd {
                run_stop_command(&cmd, &ctx, grace.min(STOP_COMMAND_LIMIT)).await;
            }
            let outcome = terminate::stop_group(pgid, cfg.shutdown.signal, grace).await;
            let _ = tx.send(Msg::Stopped { idx, generation, outcome });
        });
    }
}
