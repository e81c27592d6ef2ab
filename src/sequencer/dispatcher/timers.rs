//! The timer queue: flushes, retries, deadlines.

use super::*;

impl Dispatcher {
    pub(super) fn add_timer(&mut self, at: Instant, timer: Timer) {
        self.timer_seq += 1;
        self.timers.push(Reverse((at, self.timer_seq, timer)));
    }

    pub(super) fn fire_timers(&mut self) {
        let now = Instant::now();
        while let Some(Reverse((at, _, timer))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            match timer {
                Timer::Flush => {
                    self.flush_pending = false;
                    self.flush_soon();
                }
                Timer::ReadyDeadline { idx, generation } => {
                    let u = &self.units[idx];
                    if u.generation == generation && u.status == S::Starting {
                        let last = u.last_probe.as_ref().map(|(_, o)| format!("; last probe: {o}")).unwrap_or_default();
                        self.attempt_failed(idx, format!("not ready within its ready timeout{last}"));
                    }
                }
                Timer::ExitSettle { idx, generation } => {
                    let u = &self.units[idx];
                    if u.generation == generation && u.status == S::Starting && u.log_pending {
                        let text = u.exit.as_ref().map(|(_, t)| t.clone()).unwrap_or_default();
                        self.units[idx].log_pending = false;
                        self.attempt_failed(idx, format!("{text} before becoming ready"));
                    }
                }
                Timer::Backoff { idx, generation } => {
                    let u = &self.units[idx];
                    if u.generation == generation && u.status == S::Backoff && self.shutdown.is_none() {
                        self.units[idx].status = S::Pending;
                    }
                }
                Timer::DependencyTimeout { idx, edge } => {
                    let e = &self.plan.deps[idx][edge];
                    if self.units[idx].status == S::Pending && self.shutdown.is_none() {
                        let dep = self.units[e.on].cfg.name.clone();
                        let waited = e.timeout.unwrap_or_default();
                        if !self.units[e.on].satisfies(e.condition) {
                            self.units[idx].last_error =
                                Some(format!("{dep} did not reach {} within {waited:?}", condition_word(e.condition)));
                            self.final_failure(idx);
                        }
                    }
                }
            }
        }
    }
}
