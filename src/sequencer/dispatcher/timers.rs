//! The timer queue: the machine's deadlines and backoffs, and the state-file flushes.

use std::cmp::Reverse;

use tokio::time::Instant;

use super::Dispatcher;
use crate::sequencer::machine::{self, Event};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Timer {
    Machine(machine::Timer),
    /// Write the state file (coalesced) and redraw the board.
    Flush,
}

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
                    if self.launches.is_empty() {
                        self.flush_soon();
                    } else {
                        // A burst of launches is under way: the coalesced write (a thousand
                        // components' state) waits until it is over; `razar status` asks live.
                        self.mark_dirty();
                    }
                }
                Timer::Machine(t) => {
                    self.apply(Event::Timer(t));
                }
            }
        }
    }
}
