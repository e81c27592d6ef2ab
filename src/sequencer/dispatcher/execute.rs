//! Carrying out the machine's actions: the only place a boot spawns, probes, stops, alerts
//! and counts.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::json;
use tokio::sync::Notify;
use tracing::Level;

use super::{Dispatcher, Msg};
use crate::alerts::Severity;
use crate::config::{Command, Component, ProbeKind};
use crate::probe::runner::{self, Schedule};
use crate::probe::{self, ExecContext};
use crate::quarantine::{Entry, Source};
use crate::sequencer::machine::{Action, Event, Metric, ProbeResult, Role};
use crate::state::launched;
use crate::supervise::child::{self, SpawnSpec};
use crate::supervise::output::LineSink;
use crate::supervise::{procfs, reaper, terminate};

/// Longest a component's `stop` command may run.
const STOP_COMMAND_LIMIT: Duration = Duration::from_secs(10);

/// What carrying out an action gave back.
pub(super) enum Done {
    Nothing,
    /// An answer to feed back into the machine at once.
    Event(Event),
    /// The answer to an operator request.
    Reply(Result<String, String>),
}

impl Dispatcher {
    pub(super) fn execute(&mut self, action: Action) -> Done {
        match action {
            Action::Launch { idx, generation, attempt } => self.launches.push_back((idx, generation, attempt)),
            Action::Watch { idx, generation, role } => self.watch(idx, generation, role),
            Action::Unwatch { idx } => self.unwatch(idx),
            Action::Stop { idx, generation, pgid, grace, run_stop_command } => {
                self.stop(idx, generation, pgid, grace, run_stop_command);
            }
            Action::Kill { pgid } => {
                let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid), Signal::SIGKILL);
            }
            Action::Arm { at, timer } => self.add_timer(self.started + at, super::timers::Timer::Machine(timer)),
            Action::Journal { event, component, status, details } => self.event(event, &component, &status, details),
            Action::Log { level, message } => log(level, &message),
            Action::Alert { message, severity, context } => self.alert(message, severity, context),
            Action::Metric(m) => self.metric(m),
            Action::Quarantine { idx, reason, attempts } => self.record_quarantine(idx, reason, attempts),
            Action::Ready => self.announce_ready(),
            Action::ShuttingDown(_) => {
                if let Some(board) = self.opts.board.take() {
                    board.clear();
                }
                self.state.phase = Some(crate::state::Phase::Stopping);
                // Shutdown hook: razar's own service manager (Type=notify) learns the stack is
                // stopping.
                crate::sdnotify::stopping();
                self.flush_now = true;
            }
            Action::Reply(r) => return Done::Reply(r),
            Action::Heal { idx, round, error } => self.heal(idx, round, error),
            Action::CancelHeal { idx } => {
                if let Some(task) = self.watchers[idx].heal.take() {
                    task.abort();
                }
            }
            Action::Revert { idx, patch_id, why } => {
                // Done here, before the next round copies the sources: a few file copies under
                // the root's repair lock (held only briefly, by a promotion or a rollback).
                let name = self.machine.unit(idx).cfg.name.to_string();
                let paths = crate::repair::RepairPaths::new(&self.paths.root);
                if let Err(e) = crate::repair::revert(&paths, &patch_id, "razar", &why) {
                    tracing::error!("{name}: cannot revert patch {patch_id}: {e}; `razar rollback {name}` may");
                }
            }
            Action::RestoreRoster => match crate::roster::snapshot::restore(&self.paths.join(crate::roster::FILE)) {
                Ok(true) => tracing::warn!("the agent roster was restored from its snapshot"),
                Ok(false) => {}
                Err(e) => tracing::error!("cannot restore the agent roster from its snapshot: {e}"),
            },
        }
        Done::Nothing
    }

    pub(super) fn launch(&mut self, idx: usize, generation: u64, attempt: u32) -> Done {
        let cfg = self.machine.unit(idx).cfg.clone();
        let env = match self.component_env_checked(&cfg) {
            Ok(env) => env,
            Err(error) => return Done::Event(Event::LaunchFailed { idx, generation, error, lasting: true }),
        };
        let watchers = &mut self.watchers[idx];
        let lines = matches!(cfg.health_check.as_ref().map(|p| &p.kind), Some(ProbeKind::Log(_))).then(|| {
            let listening = Arc::new(AtomicBool::new(true));
            watchers.listening = Some(listening.clone());
            LineSink { tx: self.lines_tx.clone(), tag: (idx, generation), listening }
        });
        let polled = cfg.health_check.as_ref().is_some_and(|p| !matches!(p.kind, ProbeKind::Log(_)));
        watchers.output_seen = polled.then(|| Arc::new(Notify::new()));
        let spec = SpawnSpec {
            argv: cfg.command.argv(),
            env,
            working_dir: Some(cfg.working_dir.clone()),
            log_path: self.paths.component_log(&cfg.name),
            lines,
            output_seen: watchers.output_seen.clone(),
        };
        let spawned = match child::spawn(spec) {
            Ok(s) => s,
            Err(e) => {
                self.unwatch(idx);
                return Done::Event(Event::LaunchFailed { idx, generation, error: e.to_string(), lasting: false });
            }
        };
        let record = launched::Launched {
            component: cfg.name.to_string(),
            pid: spawned.pid,
            pgid: spawned.pgid,
            start_time: spawned.start_time,
            host_boot_id: self.state.host_boot_id.clone(),
        };
        if let Err(e) = launched::record(&self.launch_journal, &record) {
            tracing::warn!("cannot journal the launch of {} (attempt {attempt}): {e}", cfg.name);
        }
        let tx = self.tx.clone();
        let (pid, pgid, start_time) = (spawned.pid, spawned.pgid, spawned.start_time);
        let mut process = spawned.child;
        tokio::spawn(async move {
            let (ok, text) = match reaper::wait(&mut process).await {
                Ok(s) if s.success() => (true, "exited 0".to_owned()),
                Ok(s) => (false, describe_exit(&s)),
                Err(e) => (false, format!("wait failed: {e}")),
            };
            let group_alive = procfs::group_exists(pgid);
            let _ = tx.send(Msg::Exited { idx, generation, ok, text, group_alive });
        });
        Done::Event(Event::Launched { idx, generation, pid, pgid, start_time })
    }

    /// Starts the probe loop of `role` (a log readiness probe already listens since launch).
    fn watch(&mut self, idx: usize, generation: u64, role: Role) {
        let cfg = self.machine.unit(idx).cfg.clone();
        let probe = match role {
            Role::Readiness => cfg.health_check.clone(),
            Role::Liveness => cfg.liveness.clone(),
        };
        let Some(probe) = probe.filter(|p| !matches!(p.kind, ProbeKind::Log(_))) else { return };
        let schedule = match role {
            Role::Readiness => Schedule::Readiness {
                output_seen: self.watchers[idx].output_seen.clone().unwrap_or_default(),
                budget: Arc::clone(&self.probe_budget),
            },
            Role::Liveness => Schedule::Liveness,
        };
        let ctx = self.exec_context(&cfg);
        let tx = self.tx.clone();
        let task = tokio::spawn(runner::run(probe, schedule, self.http.clone(), ctx, move |o| {
            let result = ProbeResult { ok: o.ok, output: o.output, duration: o.duration };
            tx.send(Msg::Probe { idx, generation, role, result }).is_ok()
        }));
        let slot = match role {
            Role::Readiness => &mut self.watchers[idx].readiness,
            Role::Liveness => &mut self.watchers[idx].liveness,
        };
        if let Some(old) = slot.replace(task.abort_handle()) {
            old.abort();
        }
    }

    /// Runs one repair round in a task of its own (agent calls and the sandbox's tests may take
    /// minutes); its outcome comes back as `Healed`.
    fn heal(&mut self, idx: usize, round: u32, error: String) {
        let cfg = self.machine.unit(idx).cfg.clone();
        let (tx, paths, metrics) = (self.tx.clone(), self.paths.clone(), self.services.metrics.clone());
        let task = tokio::spawn(async move {
            let outcome = crate::sequencer::heal::round(&paths, &cfg, &error, Some(&metrics)).await;
            let _ = tx.send(Msg::Healed { idx, round, outcome });
        });
        if let Some(old) = self.watchers[idx].heal.replace(task.abort_handle()) {
            old.abort();
        }
    }

    fn unwatch(&mut self, idx: usize) {
        let w = &mut self.watchers[idx];
        for t in [w.readiness.take(), w.liveness.take()].into_iter().flatten() {
            t.abort();
        }
        if let Some(listening) = w.listening.take() {
            listening.store(false, Ordering::Relaxed);
        }
    }

    fn stop(&mut self, idx: usize, generation: u64, pgid: i32, grace: Duration, run_stop_command: bool) {
        let cfg = self.machine.unit(idx).cfg.clone();
        let stop_cmd = if run_stop_command { cfg.stop.clone() } else { None };
        let ctx = self.exec_context(&cfg);
        let tx = self.tx.clone();
        tokio::spawn(async move {
            if let Some(cmd) = stop_cmd {
                run_stop_command_bounded(&cmd, &ctx, grace.min(STOP_COMMAND_LIMIT)).await;
            }
            let outcome = terminate::stop_group(pgid, cfg.shutdown.signal, grace).await;
            let _ = tx.send(Msg::Stopped { idx, generation, outcome });
        });
    }

    fn metric(&mut self, m: Metric) {
        let metrics = &self.services.metrics;
        match m {
            Metric::Up { component, up } => metrics.component_up(&component, up),
            Metric::Ready { component, after } => metrics.component_ready(&component, after),
            Metric::Restart { component, reason } => metrics.restart(&component, reason),
            Metric::Probe { component, kind, duration, ok } => metrics.probe_observed(kind, duration, ok, &component),
            Metric::Quarantined(n) => metrics.quarantined(n),
            Metric::HealRetry { component } => metrics.ai_retry(&component),
            Metric::HealLoop { component, took } => metrics.ai_retry_duration(&component, took),
        }
    }

    /// A quarantine this boot decided: the ledger entry with a diagnosis of the component's
    /// log, the critical alert, the mission-log record.
    fn record_quarantine(&mut self, idx: usize, reason: String, attempts: u32) {
        let cfg = self.machine.unit(idx).cfg.clone();
        let name = cfg.name.to_string();
        let mut entry = Entry::for_component(&cfg, reason.clone(), Source::Razar);
        entry.attempts = attempts;
        let diagnosis = crate::analyze::classify(&log_tail(&self.paths.component_log(&cfg.name))).summary();
        entry.extra.insert("diagnosis".into(), diagnosis.clone().into());
        if let Err(e) = self.services.ledger.add(&entry) {
            tracing::error!("{name}: cannot write the quarantine ledger: {e}");
        }
        self.alert(
            format!("{name} quarantined: {reason}"),
            Severity::Critical,
            json!({"component": name, "reason": reason, "diagnosis": diagnosis}),
        );
        self.event("quarantine", &name, "quarantined", Some(json!({"reason": reason, "diagnosis": diagnosis})));
    }

    /// Raises an alert without blocking the dispatcher (the webhook may take up to 5 s).
    fn alert(&mut self, message: String, severity: Severity, context: serde_json::Value) {
        while self.pending_alerts.try_join_next().is_some() {}
        let alerts = self.services.alerts.clone();
        self.pending_alerts.spawn(async move {
            if let Err(e) = alerts.raise(message, severity, context).await {
                tracing::warn!("cannot write the alert: {e}");
            }
        });
    }

    fn exec_context(&self, cfg: &Component) -> ExecContext {
        let env = self.component_env_checked(cfg).unwrap_or_else(|_| cfg.env.clone());
        ExecContext { env, working_dir: Some(cfg.working_dir.clone()) }
    }

    /// The component's environment: its `env`, razar's markers, and its layer's venv first on
    /// `PATH`. Fails when its layer could not be built.
    fn component_env_checked(&self, cfg: &Component) -> Result<BTreeMap<String, String>, String> {
        let mut env = cfg.env.clone();
        env.insert("RAZAR_COMPONENT".into(), cfg.name.to_string());
        env.insert("RAZAR_ROOT".into(), self.paths.root.display().to_string());
        if let Some(layer) = &cfg.layer {
            match self.services.layers.get(layer) {
                Some(Ok(built)) => {
                    let base = env.get("PATH").cloned().or_else(|| std::env::var("PATH").ok()).unwrap_or_default();
                    crate::layers::apply_env(&mut env, built, &base);
                }
                Some(Err(e)) => return Err(format!("layer `{layer}` could not be built: {e}")),
                None => return Err(format!("layer `{layer}` was not built")),
            }
        }
        Ok(env)
    }
}

fn log(level: Level, message: &str) {
    match level {
        Level::ERROR => tracing::error!("{message}"),
        Level::WARN => tracing::warn!("{message}"),
        Level::INFO => tracing::info!("{message}"),
        Level::DEBUG => tracing::debug!("{message}"),
        Level::TRACE => tracing::trace!("{message}"),
    }
}

fn describe_exit(status: &std::process::ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(sig)) => {
            let name = Signal::try_from(sig).map(|s| s.as_str().to_owned()).unwrap_or_else(|_| sig.to_string());
            format!("killed by {name}")
        }
        _ => status.to_string(),
    }
}

/// The last 64 KiB of a component's log, for the failure diagnosis.
fn log_tail(path: &std::path::Path) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else { return String::new() };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

/// Runs a component's `stop` command in its own group, bounded by `limit`.
async fn run_stop_command_bounded(cmd: &Command, ctx: &ExecContext, limit: Duration) {
    let (ok, output) = probe::exec(&cmd.argv(), limit.max(Duration::from_millis(100)), ctx).await;
    if !ok {
        tracing::warn!("stop command `{cmd}` failed: {output}");
    }
}
