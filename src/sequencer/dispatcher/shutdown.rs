//! Ordered shutdown: reverse order, stop commands, signals, grace, verification.

use super::*;

impl Dispatcher {
    pub(super) fn on_signal(&mut self, sig: Signal) {
        if self.shutdown.is_some() {
            if !self.kill_now {
                tracing::warn!("second {sig}: killing every component now");
                self.kill_now = true;
                for u in &self.units {
                    if let Some(p) = &u.proc {
                        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(p.pgid), Signal::SIGKILL);
                    }
                }
            }
            return;
        }
        tracing::warn!("{sig} received: stopping the stack in reverse dependency order");
        self.begin_shutdown(End::Signalled(sig));
    }

    pub(super) fn begin_shutdown(&mut self, end: End) {
        if let Some(board) = self.opts.board.take() {
            board.clear();
        }
        self.shutdown = Some(end);
        self.state.phase = Some(Phase::Stopping);
        // Shutdown hook: razar's own service manager (Type=notify) learns the stack is stopping.
        crate::sdnotify::stopping();
        for u in &mut self.units {
            u.abort_probes();
            if matches!(u.status, S::Backoff) {
                u.status = S::Stopped;
            }
            u.waiting_for = None;
        }
        self.event("boot", "", "stopping", Some(json!({"reason": end_word(end)})));
        self.flush();
    }

    pub(super) fn drive_shutdown(&mut self) {
        let running = |u: &Unit| u.proc.is_some();
        let mut per_tier = vec![0usize; self.plan.tiers.len()];
        for (i, u) in self.units.iter().enumerate() {
            if let (Some(k), true) = (self.plan.tier[i], running(u)) {
                per_tier[k] += 1;
            }
        }
        let stoppable: Vec<usize> = (0..self.units.len())
            .filter(|&i| running(&self.units[i]) && !self.units[i].stopping)
            .filter(|&i| self.plan.may_stop(i, |j| running(&self.units[j]), &per_tier))
            .collect();
        for idx in stoppable {
            tracing::info!("{}: stopping", self.name(idx));
            self.stop_unit(idx, AfterStop::Nothing);
        }
    }

    pub(super) fn finished(&self) -> Option<End> {
        if self.units.iter().any(|u| u.proc.is_some() || u.stopping) {
            return None;
        }
        if let Some(end) = self.shutdown {
            return Some(end);
        }
        // A component an operator stopped or quarantined can be started or released again:
        // only components that ended on their own end the boot.
        let held = |u: &Unit| u.held_by_operator && matches!(u.status, S::Stopped | S::Quarantined);
        if self.units.iter().all(Unit::at_rest) && !self.units.iter().any(held) {
            let failed = self.units.iter().filter(|u| u.status == S::Failed || u.quarantined_now).count();
            return Some(End::Finished { failed });
        }
        None
    }

    pub(super) fn finish(&mut self, end: End) {
        if !self.ready_announced {
            self.record_history();
        }
        self.state.phase = Some(match end {
            End::Halted => Phase::Halted,
            _ => Phase::Stopped,
        });
        self.event("boot", "", end_word(end), None);
        self.flush();
    }

    pub(super) fn announce_ready(&mut self) {
        self.ready_announced = true;
        self.state.phase = Some(Phase::Ready);
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for u in &self.units {
            *counts.entry(u.status.as_str()).or_default() += 1;
        }
        let summary: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
        let secs = self.started.elapsed().as_secs_f64();
        if let Some(board) = self.opts.board.take() {
            board.clear();
        }
        let line = format!("razar: {} components in {secs:.2}s: {}", self.units.len(), summary.join(", "));
        if self.opts.json_logs {
            tracing::info!(event = "ready", seconds = secs, "{line}");
            tracing::info!(event = "ready", "RAZAR ready.");
        } else {
            crate::errln!("{line}");
            crate::errln!("RAZAR ready.");
        }
        self.event("boot", "", "ready", Some(json!({"seconds": secs, "states": counts})));
        self.record_history();
        self.flush();
        // Readiness hook: razar's own service manager (Type=notify) learns the stack is ready.
        crate::sdnotify::ready(&format!("{} components: {}", self.units.len(), summary.join(", ")));
        // The boot's peak (config parsing, a thousand launches, the history and the textfile)
        // is over: hand the freed heap back so a long-running supervisor stays small.
        // SAFETY: malloc_trim only releases free memory of the allocator razar already uses.
        unsafe {
            libc::malloc_trim(0);
        }
    }

    pub(super) fn record_history(&mut self) {
        let comps: Vec<RunComponent> = self
            .units
            .iter()
            // Only components with a verdict of their own: ready this run, or failed this run.
            // Blocked ones, and ones a halt or signal stopped before they were ready, neither
            // succeeded nor failed, so they do not move the cumulative failure count.
            .filter_map(|u| {
                let failed = u.attempts > 0 && matches!(u.status, S::Failed | S::Quarantined);
                let success = !failed && u.ready_seconds.is_some();
                (success || failed).then(|| RunComponent {
                    name: u.cfg.name.to_string(),
                    attempts: u.attempts,
                    success,
                    ready_seconds: u.ready_seconds,
                })
            })
            .collect();
        let mut run = Run::new(self.started_epoch, comps, self.started.elapsed().as_secs_f64());
        run.mission = self.state.mission.clone();
        run.boot_id = self.state.boot_id.clone();
        self.services.metrics.boot_summary(&BootSummary {
            components: run.component_total as usize,
            succeeded: run.component_successes as usize,
            failed: run.component_failures as usize,
            retries: u64::from(run.retry_total),
            first_attempt_successes: run.first_attempt_successes as usize,
            total_time: Duration::from_secs_f64(run.total_time),
            success_rate: run.success_rate,
        });
        if let Err(e) = crate::metrics::textfile::write(&self.cfg.metrics.textfile, &self.services.metrics) {
            tracing::warn!("cannot write the metrics textfile: {e}");
        }
        let path = self.paths.boot_history();
        let result = History::update(&path, |h| h.record(run));
        if let Err(e) = result {
            tracing::warn!("cannot record the boot history: {e}");
        }
    }
}
