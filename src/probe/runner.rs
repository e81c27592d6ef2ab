//! The one probe loop, for readiness and liveness alike: runs a probe on its schedule and
//! hands every result to `report` until `report` says stop (or the task is aborted).
//!
//! Readiness probes of the cheap kinds (`tcp`, `http`, `file`) run every `start_interval`, but
//! all starting components together make at most [`Budget`]'s probes per second: with many
//! starting at once each one's interval stretches to `starting loops / budget`. A silent
//! service is then seen within `start_interval` of opening its port when it starts alone, and
//! within a tenth of a second when two hundred start together, for a bounded cost. An `exec`
//! probe forks a process: it keeps `start_interval` doubling up to `period` (`policy`). Every
//! readiness probe also runs right after the component writes output (servers tend to log the
//! moment they listen): a cheap probe at most every `OUTPUT_PROBE_GAP`, or its share of the
//! budget when that is longer; an exec probe no more often than its `start_interval` (and
//! never under 10 ms). Liveness probes run every `period`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::{Instant, sleep, sleep_until};

use super::policy;
use super::{ExecContext, Outcome};
use crate::config::{Probe, ProbeKind};

/// Shortest gap between two probes when output wakes a cheap readiness probe.
const OUTPUT_PROBE_GAP: Duration = Duration::from_millis(2);
/// Shortest gap between two exec probes when output wakes one (each forks a process).
const OUTPUT_EXEC_GAP: Duration = Duration::from_millis(10);

/// Polled readiness probes per second that all starting components together may make.
pub const STARTING_PROBES_PER_SECOND: u32 = 4000;

/// The stack-wide rate of readiness probes: how many loops poll now, and how often each may.
#[derive(Debug)]
pub struct Budget {
    polling: AtomicUsize,
    per_second: u32,
}

impl Budget {
    pub fn new(per_second: u32) -> Self {
        Budget { polling: AtomicUsize::new(0), per_second: per_second.max(1) }
    }

    /// The shortest interval each polling loop may keep now.
    fn interval(&self) -> Duration {
        let polling = self.polling.load(Ordering::Relaxed).max(1) as u32;
        Duration::from_secs(1) * polling / self.per_second
    }

    fn enter(self: &Arc<Self>) -> Polling {
        self.polling.fetch_add(1, Ordering::Relaxed);
        Polling(Arc::clone(self))
    }
}

impl Default for Budget {
    fn default() -> Self {
        Budget::new(STARTING_PROBES_PER_SECOND)
    }
}

/// One loop counted in its budget until it ends (returns or is aborted).
struct Polling(Arc<Budget>);

impl Drop for Polling {
    fn drop(&mut self) {
        self.0.polling.fetch_sub(1, Ordering::Relaxed);
    }
}

/// When a probe runs.
pub enum Schedule {
    /// Becoming ready: fast, within the stack's budget, and woken by the component's output.
    Readiness { output_seen: Arc<Notify>, budget: Arc<Budget> },
    /// Staying alive: every `period`.
    Liveness,
}

/// Probes until `report` returns false.
pub async fn run(
    probe: Probe,
    schedule: Schedule,
    http: reqwest::Client,
    ctx: ExecContext,
    mut report: impl FnMut(Outcome) -> bool,
) {
    sleep(probe.initial_delay).await;
    // An exec probe forks a process: output wakes it no more often than `start_interval`.
    let exec_gap = probe.start_interval.max(OUTPUT_EXEC_GAP);
    let forks = matches!(probe.kind, ProbeKind::Exec(_));
    let _polling = match &schedule {
        Schedule::Readiness { budget, .. } if !forks => Some(budget.enter()),
        _ => None,
    };
    let mut attempts = 0;
    loop {
        if let Schedule::Liveness = schedule {
            sleep(probe.period).await;
        }
        let outcome = super::check(&probe.kind, probe.timeout, &http, &ctx).await;
        if !report(outcome) {
            return;
        }
        if let Schedule::Readiness { output_seen, budget } = &schedule {
            let probed = Instant::now();
            let wait = if forks {
                policy::starting_interval(probe.start_interval, probe.period, attempts)
            } else {
                probe.start_interval.max(budget.interval()).min(probe.period)
            };
            tokio::select! {
                _ = sleep(wait) => {}
                _ = output_seen.notified() => {
                    let gap = if forks { exec_gap } else { OUTPUT_PROBE_GAP.max(budget.interval()) };
                    sleep_until(probed + gap).await;
                }
            }
        }
        attempts += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_probe(path: std::path::PathBuf) -> Probe {
        Probe {
            kind: ProbeKind::File(path),
            initial_delay: Duration::ZERO,
            period: Duration::from_secs(10),
            timeout: Duration::from_secs(1),
            success_threshold: 1,
            failure_threshold: 3,
            start_interval: Duration::from_millis(100),
        }
    }

    fn readiness(budget: &Arc<Budget>) -> Schedule {
        Schedule::Readiness { output_seen: Arc::new(Notify::new()), budget: Arc::clone(budget) }
    }

    #[tokio::test(start_paused = true)]
    async fn a_lone_readiness_probe_runs_every_start_interval_and_stops_when_told() {
        let dir = tempfile::tempdir().unwrap();
        let probe = file_probe(dir.path().join("absent"));
        let budget = Arc::new(Budget::default());
        let started = Instant::now();
        let mut at = Vec::new();
        run(probe, readiness(&budget), reqwest::Client::new(), ExecContext::default(), |o| {
            assert!(!o.ok);
            at.push(started.elapsed().as_millis());
            at.len() < 5
        })
        .await;
        assert_eq!(at, vec![0, 100, 200, 300, 400]);
        assert_eq!(budget.polling.load(Ordering::Relaxed), 0, "the loop left the budget");
    }

    #[tokio::test(start_paused = true)]
    async fn many_starting_components_share_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        // 100 probes a second for the stack; 49 other loops poll: each may probe every 0.5 s.
        let budget = Arc::new(Budget::new(100));
        let others: Vec<Polling> = (0..49).map(|_| budget.enter()).collect();
        let started = Instant::now();
        let mut at = Vec::new();
        run(
            file_probe(dir.path().join("absent")),
            readiness(&budget),
            reqwest::Client::new(),
            ExecContext::default(),
            |_| {
                at.push(started.elapsed().as_millis());
                at.len() < 3
            },
        )
        .await;
        assert_eq!(at, vec![0, 500, 1000]);
        drop(others);
        assert_eq!(budget.interval(), Duration::from_millis(10), "one loop alone: 1 s / 100");
    }

    #[tokio::test(start_paused = true)]
    async fn output_wakes_a_readiness_probe_early() {
        let dir = tempfile::tempdir().unwrap();
        let probe = file_probe(dir.path().join("absent"));
        let seen = Arc::new(Notify::new());
        let started = Instant::now();
        let mut at = Vec::new();
        let waker = seen.clone();
        tokio::spawn(async move {
            sleep(Duration::from_millis(50)).await;
            waker.notify_one();
        });
        let schedule = Schedule::Readiness { output_seen: seen, budget: Arc::new(Budget::default()) };
        run(probe, schedule, reqwest::Client::new(), ExecContext::default(), |_| {
            at.push(started.elapsed().as_millis());
            at.len() < 2
        })
        .await;
        assert_eq!(at, vec![0, 50], "the second probe follows the output, not the 100 ms schedule");
    }

    #[tokio::test(start_paused = true)]
    async fn liveness_runs_every_period_after_the_initial_delay() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("here"), "").unwrap();
        let mut probe = file_probe(dir.path().join("here"));
        probe.initial_delay = Duration::from_secs(2);
        let started = Instant::now();
        let mut at = Vec::new();
        run(probe, Schedule::Liveness, reqwest::Client::new(), ExecContext::default(), |o| {
            assert!(o.ok);
            at.push(started.elapsed().as_secs());
            at.len() < 3
        })
        .await;
        assert_eq!(at, vec![12, 22, 32]);
    }
}
