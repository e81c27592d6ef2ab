//! The live state, the state file, the board, the ready banner and the boot history.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;

use super::Dispatcher;
use super::timers::Timer;
use crate::clock;
use crate::journal::MissionEvent;
use crate::metrics::BootSummary;
use crate::sequencer::history::{History, Run, RunComponent};
use crate::sequencer::machine::{End, end_word};
use crate::state::{self, ComponentStatus as S, Phase};

/// The shortest gap between two state-file writes while many components change at once;
/// phase changes and the final state are written immediately.
const FLUSH_EVERY: Duration = Duration::from_millis(50);
/// How often the progress board is redrawn while nothing changes.
const BOARD_REFRESH: Duration = Duration::from_millis(250);

impl Dispatcher {
    pub(super) fn event(&mut self, event: &str, component: &str, status: &str, details: Option<serde_json::Value>) {
        self.mission_log.append_or_warn(&MissionEvent { event, component, status, details: details.clone() });
        self.state.events.push(state::Event {
            timestamp: clock::epoch(),
            event: event.to_owned(),
            component: (!component.is_empty()).then(|| component.to_owned()),
            status: status.to_owned(),
            details,
        });
        let excess = self.state.events.len().saturating_sub(state::MAX_EVENTS);
        self.state.events.drain(..excess);
        if !component.is_empty() {
            self.state.last_component = Some(component.to_owned());
        }
    }

    pub(super) fn mark_dirty(&mut self) {
        self.state_dirty = true;
        if !self.flush_pending {
            self.flush_pending = true;
            let at = (self.last_flush + FLUSH_EVERY).max(Instant::now());
            self.add_timer(at, Timer::Flush);
        }
    }

    /// Writes the state file durably and redraws the board: on phase changes and at the end.
    pub(super) fn flush(&mut self) {
        self.write_state(true);
    }

    /// The coalesced write between phase changes: only when something changed, no fsync.
    pub(super) fn flush_soon(&mut self) {
        self.write_state(false);
    }

    fn write_state(&mut self, durable: bool) {
        self.last_flush = Instant::now();
        self.refresh_state();
        // Status hook: razar's own service manager gets the state counts, at most once a second.
        if crate::sdnotify::status_due() {
            crate::sdnotify::status(self.state.phase, self.machine.units().iter().map(|u| u.status().as_str()));
        }
        if let Some(board) = &self.opts.board {
            let (cols, rows) = crate::progress::terminal_size();
            let elapsed = self.started.elapsed().as_secs_f64();
            board.draw(&crate::progress::render(&self.state.components, elapsed, cols, rows / 2));
            // Keep the clock and probe progress moving even when nothing changes state.
            if !self.flush_pending {
                self.flush_pending = true;
                self.add_timer(Instant::now() + BOARD_REFRESH, Timer::Flush);
            }
        }
        if !durable && !std::mem::take(&mut self.state_dirty) {
            return;
        }
        self.state_dirty = false;
        let saved = if durable { self.store.save(&self.state) } else { self.store.save_fast(&self.state) };
        if let Err(e) = saved {
            tracing::error!("cannot write the state file: {e}");
        }
    }

    pub(super) fn announce_ready(&mut self) {
        self.ready_announced = true;
        self.state.phase = Some(Phase::Ready);
        let units = self.machine.units();
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for u in units {
            *counts.entry(u.status().as_str()).or_default() += 1;
        }
        let summary: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
        let total = units.len();
        let details = json!({"seconds": self.started.elapsed().as_secs_f64(), "states": counts});
        let secs = self.started.elapsed().as_secs_f64();
        if let Some(board) = self.opts.board.take() {
            board.clear();
        }
        let line = format!("razar: {total} components in {secs:.2}s: {}", summary.join(", "));
        if self.opts.json_logs {
            tracing::info!(event = "ready", seconds = secs, "{line}");
            tracing::info!(event = "ready", "RAZAR ready.");
        } else {
            crate::errln!("{line}");
            crate::errln!("RAZAR ready.");
        }
        self.event("boot", "", "ready", Some(details));
        self.record_history();
        self.flush_now = true;
        // Readiness hook: razar's own service manager (Type=notify) learns the stack is ready.
        crate::sdnotify::ready(&format!("{total} components: {}", summary.join(", ")));
        // The boot's peak (config parsing, a thousand launches, the history and the textfile)
        // is over: the freed heap goes back once this step's own allocations are gone.
        self.trim_after_step = true;
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

    fn record_history(&mut self) {
        let comps: Vec<RunComponent> = self
            .machine
            .units()
            .iter()
            // Only components with a verdict of their own: ready this run, or failed this run.
            // Blocked ones, and ones a halt or signal stopped before they were ready, neither
            // succeeded nor failed, so they do not move the cumulative failure count.
            .filter_map(|u| {
                let failed = u.attempts > 0 && matches!(u.status(), S::Failed | S::Quarantined);
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
            tracing::warn!("cannot record the metrics textfile: {e}");
        }
        let path = self.paths.boot_history();
        if let Err(e) = History::update(&path, |h| h.record(run)) {
            tracing::warn!("cannot record the boot history: {e}");
        }
    }
}
