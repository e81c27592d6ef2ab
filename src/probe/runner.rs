//! The one probe loop, for readiness and liveness alike: runs a probe on its schedule and
//! hands every result to `report` until `report` says stop (or the task is aborted).
//!
//! Readiness probes run every `start_interval`, doubling up to `period` (`policy`), and also
//! right after the component writes output (servers tend to log the moment they listen), at
//! most every `OUTPUT_PROBE_GAP` — an exec probe, which forks, no more often than its
//! `start_interval`. Liveness probes run every `period`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::{Instant, sleep, sleep_until};

use super::policy;
use super::{ExecContext, Outcome};
use crate::config::{Probe, ProbeKind};

/// Shortest gap between two probes when output wakes a readiness probe.
const OUTPUT_PROBE_GAP: Duration = Duration::from_millis(10);

/// When a probe runs.
pub enum Schedule {
    /// Becoming ready: fast at first, and woken by the component's output.
    Readiness { output_seen: Arc<Notify> },
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
    let gap = match probe.kind {
        ProbeKind::Exec(_) => probe.start_interval.max(OUTPUT_PROBE_GAP),
        _ => OUTPUT_PROBE_GAP,
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
        if let Schedule::Readiness { output_seen } = &schedule {
            let probed = Instant::now();
            tokio::select! {
                _ = sleep(policy::starting_interval(probe.start_interval, probe.period, attempts)) => {}
                _ = output_seen.notified() => sleep_until(probed + gap).await,
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

    #[tokio::test(start_paused = true)]
    async fn readiness_backs_off_from_start_interval_and_stops_when_told() {
        let dir = tempfile::tempdir().unwrap();
        let probe = file_probe(dir.path().join("absent"));
        let started = Instant::now();
        let mut at = Vec::new();
        let schedule = Schedule::Readiness { output_seen: Arc::new(Notify::new()) };
        run(probe, schedule, reqwest::Client::new(), ExecContext::default(), |o| {
            assert!(!o.ok);
            at.push(started.elapsed().as_millis());
            at.len() < 5
        })
        .await;
        assert_eq!(at, vec![0, 100, 300, 700, 1500]);
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
        run(probe, Schedule::Readiness { output_seen: seen }, reqwest::Client::new(), ExecContext::default(), |_| {
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
