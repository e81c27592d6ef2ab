//! Pure probe decisions: consecutive-result thresholds and the polling schedule.
//!
//! While a component starts, probes run every `start_interval`, doubling up to `period`, so a
//! fast service is detected within milliseconds without polling a slow one hard. Once healthy,
//! probes run every `period`.

use std::time::Duration;

/// What a run of results means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// `success_threshold` consecutive passes.
    Pass,
    /// `failure_threshold` consecutive failures.
    Fail,
    /// Not decided yet.
    Undecided,
}

/// Consecutive pass/fail counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tracker {
    pub successes: u32,
    pub failures: u32,
    /// Every attempt since the tracker was created, for "3/∞"-style progress.
    pub attempts: u32,
}

impl Tracker {
    pub fn observe(&mut self, ok: bool, success_threshold: u32, failure_threshold: u32) -> Verdict {
        self.attempts += 1;
        if ok {
            self.successes += 1;
            self.failures = 0;
            if self.successes >= success_threshold { Verdict::Pass } else { Verdict::Undecided }
        } else {
            self.failures += 1;
            self.successes = 0;
            if self.failures >= failure_threshold { Verdict::Fail } else { Verdict::Undecided }
        }
    }
}

/// The wait before the next attempt while starting: `start_interval` × 2^attempts, capped at
/// `period`.
pub fn starting_interval(start_interval: Duration, period: Duration, attempts: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempts.min(20));
    start_interval.saturating_mul(factor).min(period)
}

/// How long a component may take to become ready when `ready_timeout` is unset: the
/// Kubernetes startup budget, `initial_delay + failure_threshold × period`.
pub fn default_ready_budget(initial_delay: Duration, period: Duration, failure_threshold: u32) -> Duration {
    initial_delay + period.saturating_mul(failure_threshold)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_need_consecutive_results() {
        let mut t = Tracker::default();
        assert_eq!(t.observe(false, 2, 3), Verdict::Undecided);
        assert_eq!(t.observe(true, 2, 3), Verdict::Undecided);
        assert_eq!(t.observe(false, 2, 3), Verdict::Undecided);
        assert_eq!(t.observe(false, 2, 3), Verdict::Undecided);
        assert_eq!(t.observe(false, 2, 3), Verdict::Fail);
        assert_eq!(t.observe(true, 2, 3), Verdict::Undecided);
        assert_eq!(t.observe(true, 2, 3), Verdict::Pass);
        assert_eq!(t.attempts, 7);
    }

    #[test]
    fn starting_interval_doubles_up_to_period() {
        let ms = |n| Duration::from_millis(n);
        let got: Vec<_> = (0..8).map(|a| starting_interval(ms(100), ms(10_000), a)).collect();
        assert_eq!(got, vec![ms(100), ms(200), ms(400), ms(800), ms(1600), ms(3200), ms(6400), ms(10_000)]);
        assert_eq!(starting_interval(ms(100), ms(10_000), 1000), ms(10_000));
    }

    #[test]
    fn default_budget_is_the_startup_window() {
        let s = Duration::from_secs;
        assert_eq!(default_ready_budget(s(1), s(10), 3), s(31));
    }
}
