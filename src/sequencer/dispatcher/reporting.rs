//! The live state, the state file, the board and the boot history.

use super::*;

impl Dispatcher {
    pub(super) fn name(&self, idx: usize) -> String {
        self.units[idx].cfg.name.to_string()
    }

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
        self.mark_dirty();
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

    pub(super) fn write_state(&mut self, durable: bool) {
        self.last_flush = Instant::now();
        self.refresh_state();
        // Status hook: razar's own service manager gets the state counts, at most once a second.
        if crate::sdnotify::status_due() {
            crate::sdnotify::status(self.state.phase, self.units.iter().map(|u| u.status.as_str()));
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
}
