//! Pure retry rules: the local-attempt backoff of the boot (`min(2^(n-1), 60)` s) and the
//! jittered exponential restart backoff of supervision.

use std::time::Duration;

/// Delay before local attempt `n + 1` after `n` failed attempts (n ≥ 1): `min(2^(n-1), 60)` s.
pub fn local_retry_delay(failed_attempts: u32) -> Duration {
    let exp = failed_attempts.saturating_sub(1).min(6);
    Duration::from_secs((1u64 << exp).min(60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_backoff_doubles_to_sixty() {
        let got: Vec<u64> = (1..=9).map(|n| local_retry_delay(n).as_secs()).collect();
        assert_eq!(got, vec![1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }
}

/// What supervision does after a component that was ready fails.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RestartDecision {
    /// Restart after this delay.
    Restart(std::time::Duration),
    /// `max_restarts` restarts already happened within `window`: give up (quarantine).
    BudgetExhausted,
}

/// Decides the next restart from the times (seconds, monotonic) of earlier restarts still in
/// the window and the time the component last became healthy.
///
/// The delay is `initial × multiplier^n` capped at `max`, where `n` counts restarts since the
/// component was last healthy for a whole `window`, plus up to `jitter × delay` at random
/// (`random` in `[0, 1)`), so a fleet of crash-looping components does not restart in lockstep.
pub fn restart_decision(
    restart: &crate::config::Restart,
    recent_restarts: &[f64],
    now: f64,
    random: f64,
) -> RestartDecision {
    let window = restart.window.as_secs_f64();
    let in_window: Vec<f64> = recent_restarts.iter().copied().filter(|&t| now - t < window).collect();
    if in_window.len() as u32 >= restart.max_restarts {
        return RestartDecision::BudgetExhausted;
    }
    let n = in_window.len() as i32;
    let base = restart.initial.as_secs_f64() * restart.multiplier.powi(n);
    let capped = base.min(restart.max.as_secs_f64());
    let jittered =
        (capped * (1.0 + restart.jitter * random.clamp(0.0, 1.0))).min(restart.max.as_secs_f64().max(capped));
    RestartDecision::Restart(Duration::from_secs_f64(jittered))
}

/// A small xorshift generator for jitter: no crate needed, seeded from the clock and PID.
#[derive(Debug, Clone)]
pub struct Jitter(u64);

impl Jitter {
    pub fn new(seed: u64) -> Self {
        Jitter(seed | 1)
    }

    /// A value in `[0, 1)`.
    pub fn sample(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod restart_tests {
    use super::*;
    use crate::config::Restart;

    #[test]
    fn restart_delays_grow_and_the_budget_runs_out() {
        let r = Restart::default();
        let mut times = Vec::new();
        let mut delays = Vec::new();
        let mut now = 1000.0;
        while let RestartDecision::Restart(d) = restart_decision(&r, &times, now, 0.0) {
            delays.push(d.as_secs_f64());
            now += d.as_secs_f64() + 0.5;
            times.push(now);
        }
        assert_eq!(delays, vec![1.0, 2.0, 4.0, 8.0, 16.0]);
    }

    #[test]
    fn restarts_older_than_the_window_are_forgiven() {
        let r = Restart::default();
        let old = vec![0.0, 1.0, 2.0, 3.0, 4.0];
        assert_eq!(restart_decision(&r, &old, 100.0, 0.0), RestartDecision::BudgetExhausted);
        assert_eq!(restart_decision(&r, &old, 700.0, 0.0), RestartDecision::Restart(Duration::from_secs(1)));
    }

    #[test]
    fn jitter_stays_within_its_fraction_and_the_cap() {
        let r = Restart::default();
        let mut j = Jitter::new(42);
        for _ in 0..1000 {
            let x = j.sample();
            assert!((0.0..1.0).contains(&x));
            let RestartDecision::Restart(d) = restart_decision(&r, &[], 0.0, x) else { panic!() };
            assert!((1.0..=1.1).contains(&d.as_secs_f64()), "{d:?}");
        }
        let RestartDecision::Restart(d) = restart_decision(&r, &[1.0; 4], 2.0, 0.99) else { panic!() };
        assert!(d.as_secs_f64() <= 60.0);
    }
}
