//! The dispatcher: sole owner of a boot's run state.
//!
//! It `select!`s over child events (exit, probe result, log match, stop done), its own timers
//! (ready deadlines, backoff, dependency timeouts, state flushes) and signals. Component tasks
//! never touch the state: they send messages tagged with the attempt's generation, and stale
//! messages from an earlier attempt are dropped. Every decision that is a rule (backoff,
//! thresholds, stop order) is a pure function from `plan`, `backoff` or `probe::policy`.
//!
//! The methods are grouped by job, one file each: `scheduling` (what launches next),
//! `events` (exits, probe verdicts, output), `supervision` (liveness, restarts, budgets,
//! quarantine, blocking), `control` (operator requests), `timers`, `shutdown` and `reporting`
//! (state file, board, history). This file holds the types, construction and the event loop.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::json;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::AbortHandle;
use tokio::time::{Instant, sleep, sleep_until};

use super::backoff::{Jitter, RestartDecision, local_retry_delay, restart_decision};
use super::history::{History, Run, RunComponent};
use super::plan::Plan;
use crate::alerts::{Alerts, Severity};
use crate::clock;
use crate::config::{Command, Component, Condition, Config, Kind, OnFailure, ProbeKind, RestartPolicy};
use crate::control::protocol::{Envelope, Request, Response};
use crate::journal::{Journal, MissionEvent};
use crate::layers::LayerEnv;
use crate::metrics::{BootSummary, Metrics, RestartReason};
use crate::paths::Paths;
use crate::probe::policy::{self, Tracker, Verdict};
use crate::probe::{self, ExecContext};
use crate::progress::Board;
use crate::quarantine::{Entry, Ledger, Source};
use crate::state::launched;
use crate::state::{self, ComponentState, ComponentStatus as S, Output, Phase, ProbeState, StateFile, StateStore};
use crate::supervise::child::{self, SpawnSpec};
use crate::supervise::terminate::{self, StopOutcome};
use crate::supervise::{procfs, reaper};

mod control;
mod events;
mod reporting;
mod scheduling;
mod shutdown;
mod supervision;
mod timers;

/// The shortest gap between two state-file writes while many components change at once;
/// phase changes and the final state are written immediately.
const FLUSH_EVERY: Duration = Duration::from_millis(50);
/// Longest razar waits at exit for alerts still being posted (the webhook times out at 5 s).
const ALERT_DRAIN: Duration = Duration::from_secs(6);
/// How long a log probe's output may take to drain after its process exited non-zero.
const EXIT_SETTLE: Duration = Duration::from_millis(500);
/// Shortest gap between two probes when output wakes the starting probe loop.
const OUTPUT_PROBE_GAP: Duration = Duration::from_millis(10);
/// How often the progress board is redrawn while nothing changes.
const BOARD_REFRESH: Duration = Duration::from_millis(250);
/// Longest a component's `stop` command may run.
const STOP_COMMAND_LIMIT: Duration = Duration::from_secs(10);

/// Run options from the command line.
#[derive(Debug, Clone)]
pub struct Options {
    pub retries: u32,
    pub keep_going: bool,
    pub jobs: Option<usize>,
    /// The live progress board, when stderr is a terminal (until ready or shutdown).
    pub board: Option<Arc<Board>>,
    /// `--log-format json`: razar's own messages go through tracing as JSON too.
    pub json_logs: bool,
}

/// What the dispatcher reports to and reads from, besides its own state.
pub struct Services {
    pub metrics: Metrics,
    pub alerts: Alerts,
    pub ledger: Ledger,
    /// Requests from the control socket; `None` when it is not served.
    pub control: Option<mpsc::Receiver<Envelope>>,
    /// Built Python layers by name; an `Err` holds the build failure (pip's output).
    pub layers: BTreeMap<String, Result<LayerEnv, String>>,
}

/// A component left running by an earlier boot that `--resume` keeps.
#[derive(Debug, Clone)]
pub struct Adopted {
    pub name: String,
    pub pid: u32,
    pub pgid: i32,
    pub start_time: u64,
    pub ready_at: Option<String>,
}

/// SIGINT, SIGTERM and SIGHUP, watched from the start of a boot so that neither kills razar with the
/// stack half started.
pub struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    /// The terminal went away: the stack must not be left running without its supervisor.
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    pub fn new() -> std::io::Result<Self> {
        Ok(Signals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// The next SIGINT or SIGTERM.
    pub async fn recv(&mut self) -> Signal {
        tokio::select! {
            _ = self.int.recv() => Signal::SIGINT,
            _ = self.term.recv() => Signal::SIGTERM,
            _ = self.hup.recv() => Signal::SIGHUP,
        }
    }
}

/// How a boot ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Every component ended for good; `failed` of them failed.
    Finished { failed: usize },
    /// A component failed with `on_failure: halt`; the stack was stopped.
    Halted,
    /// SIGINT or SIGTERM; the stack was stopped.
    Signalled(Signal),
}

enum Msg {
    Exited { idx: usize, generation: u64, status: Result<ExitStatus, String> },
    Probe { idx: usize, generation: u64, outcome: probe::Outcome },
    LogLine { idx: usize, generation: u64, line: Option<String> },
    Stopped { idx: usize, generation: u64, outcome: StopOutcome },
    Liveness { idx: usize, generation: u64, outcome: probe::Outcome },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    ReadyDeadline {
        idx: usize,
        generation: u64,
    },
    /// The main process exited non-zero while a log probe waited: how long the output may
    /// take to drain before the exit decides.
    ExitSettle {
        idx: usize,
        generation: u64,
    },
    Backoff {
        idx: usize,
        generation: u64,
    },
    DependencyTimeout {
        idx: usize,
        edge: usize,
    },
    Flush,
}

/// What to do once a unit's process group is verified gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterStop {
    Nothing,
    /// Local retry during boot, after `min(2^(n-1), 60)` s.
    Retry,
    /// The last local attempt failed.
    Fail,
    /// Supervised restart after this delay.
    Restart(Duration),
    /// Restart budget exhausted: the component is quarantined.
    Quarantine,
}

/// A launched process group that has not been verified gone yet.
struct Proc {
    pid: u32,
    pgid: i32,
    start_time: Option<u64>,
    /// The main process has exited (stragglers may remain in the group).
    exited: bool,
    /// Adopted from an earlier boot (`--resume`): its output went to that boot's pipe and is
    /// not captured.
    detached: bool,
}

struct Unit {
    cfg: Arc<Component>,
    status: S,
    attempts: u32,
    restarts: u32,
    generation: u64,
    proc: Option<Proc>,
    /// How the current attempt's main process ended: success, and a description.
    exit: Option<(bool, String)>,
    probe_task: Option<AbortHandle>,
    tracker: Tracker,
    first_launch: Option<Instant>,
    ready_at: Option<String>,
    ready_seconds: Option<f64>,
    last_error: Option<String>,
    last_probe: Option<(bool, String)>,
    blocked_by: Vec<String>,
    waiting_for: Option<String>,
    waiting_key: String,
    /// A log probe still waits for its line in this attempt's output.
    log_pending: bool,
    stopping: bool,
    after_stop: AfterStop,
    /// Became ready at least once: failures now go through the restart policy.
    ever_ready: bool,
    /// A supervised restart is under way (cleared when ready again).
    restarting: bool,
    /// Monotonic times (seconds since boot start) of supervised restarts, for the budget.
    restart_times: Vec<f64>,
    liveness_task: Option<AbortHandle>,
    liveness: Tracker,
    last_liveness: Option<(bool, String)>,
    /// Quarantined by this boot (its restart budget ran out), which counts as a failure.
    quarantined_now: bool,
    /// Stopped or quarantined by an operator during this boot: the boot waits for it to be
    /// started or released instead of ending (cleared when it is put back in line).
    held_by_operator: bool,
    /// Dependencies (condition healthy) that are restarting right now.
    dependency_restarting: Vec<String>,
}

pub struct Dispatcher {
    cfg: Arc<Config>,
    plan: Plan,
    paths: Paths,
    opts: Options,
    units: Vec<Unit>,
    tx: mpsc::UnboundedSender<Msg>,
    rx: mpsc::UnboundedReceiver<Msg>,
    timers: BinaryHeap<Reverse<(Instant, u64, Timer)>>,
    timer_seq: u64,
    flush_pending: bool,
    /// Something changed since the state file was last written.
    state_dirty: bool,
    last_flush: Instant,
    state: StateFile,
    store: StateStore,
    mission_log: Journal,
    launch_journal: crate::fsutil::Appender,
    http: reqwest::Client,
    started: Instant,
    started_epoch: f64,
    shutdown: Option<End>,
    kill_now: bool,
    ready_announced: bool,
    jitter: Jitter,
    /// Alerts being written and posted.
    pending_alerts: tokio::task::JoinSet<()>,
    services: Services,
    control: Option<mpsc::Receiver<Envelope>>,
}

impl Dispatcher {
    /// `state` is the initial snapshot (mission, boot id, handshake …) the run continues.
    pub fn new(
        cfg: Arc<Config>,
        paths: Paths,
        opts: Options,
        state: StateFile,
        http: reqwest::Client,
        mut services: Services,
    ) -> Self {
        let control = services.control.take();
        for c in &cfg.components {
            services.metrics.register_component(c.name.as_str());
        }
        let plan = Plan::new(&cfg);
        let (tx, rx) = mpsc::unbounded_channel();
        let units = cfg
            .components
            .iter()
            .map(|c| Unit {
                cfg: c.clone(),
                status: if c.enabled { S::Pending } else { S::Disabled },
                attempts: 0,
                restarts: 0,
                generation: 0,
                proc: None,
                exit: None,
                probe_task: None,
                tracker: Tracker::default(),
                first_launch: None,
                ready_at: None,
                ready_seconds: None,
                last_error: None,
                last_probe: None,
                blocked_by: Vec::new(),
                waiting_for: None,
                waiting_key: String::new(),
                log_pending: false,
                stopping: false,
                after_stop: AfterStop::Nothing,
                ever_ready: false,
                restarting: false,
                restart_times: Vec::new(),
                liveness_task: None,
                liveness: Tracker::default(),
                last_liveness: None,
                quarantined_now: false,
                held_by_operator: false,
                dependency_restarting: Vec::new(),
            })
            .collect();
        Dispatcher {
            store: StateStore::new(paths.state()),
            mission_log: Journal::new(paths.mission_log()),
            launch_journal: crate::fsutil::Appender::new(paths.launch_journal()),
            cfg,
            plan,
            paths,
            opts,
            units,
            tx,
            rx,
            timers: BinaryHeap::new(),
            timer_seq: 0,
            flush_pending: false,
            state_dirty: true,
            last_flush: Instant::now(),
            state,
            http,
            started: Instant::now(),
            started_epoch: clock::epoch(),
            shutdown: None,
            kill_now: false,
            ready_announced: false,
            pending_alerts: tokio::task::JoinSet::new(),
            jitter: Jitter::new(clock::epoch_millis() as u64 ^ u64::from(std::process::id()) << 32),
            services,
            control,
        }
    }

    /// Marks a component as not launched this boot (quarantine, downtime) before `run`.
    pub fn hold(&mut self, name: &str, status: S, reason: String) {
        if let Some(u) = self.units.iter_mut().find(|u| u.cfg.name.as_str() == name) {
            u.status = status;
            u.last_error = Some(reason);
        }
    }

    /// Quarantines a component before `run` by this boot's own decision (the failure limit):
    /// like a quarantine after an exhausted restart budget, it makes the boot exit 1.
    pub fn quarantine_up_front(&mut self, name: &str, reason: String) {
        self.hold(name, S::Quarantined, reason);
        if let Some(u) = self.units.iter_mut().find(|u| u.cfg.name.as_str() == name) {
            u.quarantined_now = true;
        }
    }

    /// Takes over a component still running from an earlier boot (`--resume`): it counts as
    /// healthy, its exit is watched through a pidfd (it is not razar's child), and its
    /// liveness probe runs as usual.
    pub fn adopt(&mut self, a: &Adopted) {
        let Some(idx) = self.units.iter().position(|u| u.cfg.name.as_str() == a.name) else { return };
        let generation = self.units[idx].generation + 1;
        let u = &mut self.units[idx];
        u.generation = generation;
        u.status = S::Healthy;
        u.ever_ready = true;
        u.ready_at = a.ready_at.clone();
        u.proc = Some(Proc { pid: a.pid, pgid: a.pgid, start_time: Some(a.start_time), exited: false, detached: true });
        let tx = self.tx.clone();
        let pid = a.pid;
        tokio::spawn(async move {
            let status = match procfs::wait_exit(pid).await {
                Ok(()) => Err("exited (status unknown: adopted from an earlier boot)".to_owned()),
                Err(e) => Err(format!("cannot watch adopted process {pid}: {e}")),
            };
            let _ = tx.send(Msg::Exited { idx, generation, status });
        });
        self.services.metrics.component_up(&a.name, true);
        self.start_liveness(idx);
        tracing::info!("{}: adopted from the previous boot (pid {})", a.name, a.pid);
        self.event("adopt", &a.name, "healthy", Some(json!({"pid": a.pid})));
    }

    /// Boots and supervises until every component has ended for good, a halt, or a signal.
    pub async fn run(mut self, mut signals: Signals) -> std::io::Result<End> {
        self.state.phase = Some(Phase::Launching);
        self.update_quarantine_gauge();
        self.event("boot", "", "launching", None);
        for (idx, edges) in self.plan.deps.clone().iter().enumerate() {
            for (e, edge) in edges.iter().enumerate() {
                if let Some(t) = edge.timeout {
                    self.add_timer(self.started + t, Timer::DependencyTimeout { idx, edge: e });
                }
            }
        }
        self.flush();
        loop {
            if self.shutdown.is_none() {
                self.schedule();
            } else {
                self.drive_shutdown();
            }
            if let Some(end) = self.finished() {
                stop_orphans().await;
                self.finish(end);
                // Alerts raised at the end (a halt, a quarantine) are written and posted before
                // razar exits; each is bounded by the webhook's own timeout.
                let _ = tokio::time::timeout(ALERT_DRAIN, async {
                    while self.pending_alerts.join_next().await.is_some() {}
                })
                .await;
                return Ok(end);
            }
            let next = self.timers.peek().map(|Reverse((at, _, _))| *at);
            tokio::select! {
                Some(msg) = self.rx.recv() => self.handle(msg),
                Some(envelope) = next_request(&mut self.control) => self.on_request(envelope),
                _ = sleep_until(next.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600))) => self.fire_timers(),
                sig = signals.recv() => self.on_signal(sig),
            }
        }
    }
}

enum DepState {
    Ready,
    /// What the component waits for (with probe progress), and who (for the log line).
    Waiting(String, String),
    Blocked(Vec<String>),
}

impl Unit {
    /// Stops whatever probes this unit: the readiness loop and the liveness loop.
    fn abort_probes(&mut self) {
        for t in [self.probe_task.take(), self.liveness_task.take()].into_iter().flatten() {
            t.abort();
        }
    }

    /// Whether a dependent waiting on this unit with `condition` may start. A task counts as
    /// healthy once it has exited 0.
    /// Will not come up in this boot without the operator: its dependents are blocked.
    fn is_dead(&self) -> bool {
        matches!(self.status, S::Failed | S::Blocked | S::Quarantined | S::Disabled | S::Downtime | S::Stopped)
    }

    fn satisfies(&self, condition: Condition) -> bool {
        match condition {
            Condition::Started => self.proc.is_some() || matches!(self.status, S::Healthy | S::Completed),
            Condition::Healthy => matches!(self.status, S::Healthy | S::Completed),
            Condition::CompletedSuccessfully => self.status == S::Completed,
        }
    }

    /// Done as far as the boot sequence goes: it came up once (supervision owns it now), or it
    /// will not come up without outside help. Gates priority tiers and `RAZAR ready.`.
    fn settled(&self) -> bool {
        self.ever_ready || self.at_rest()
    }

    /// Nothing will happen to it any more without outside help: razar may exit.
    fn at_rest(&self) -> bool {
        !matches!(self.status, S::Pending | S::Starting | S::Backoff | S::Unhealthy)
    }

    fn snapshot(&self) -> ComponentState {
        ComponentState {
            id: self.cfg.name.to_string(),
            state: self.status,
            pid: self.proc.as_ref().map(|p| p.pid),
            pgid: self.proc.as_ref().map(|p| p.pgid),
            start_time: self.proc.as_ref().and_then(|p| p.start_time),
            output: self.proc.as_ref().filter(|p| p.detached).map(|_| Output::Detached),
            attempts: self.attempts,
            restarts: self.restarts,
            ready_at: self.ready_at.clone(),
            ready_seconds: self.ready_seconds,
            last_error: self.last_error.clone(),
            probe: self.cfg.health_check.as_ref().map(|p| ProbeState {
                kind: p.kind.name().to_owned(),
                last_result: self.last_probe.as_ref().map(|(ok, _)| if *ok { "pass" } else { "fail" }.to_owned()),
                last_output: self.last_probe.as_ref().map(|(_, o)| o.clone()),
            }),
            liveness: self.cfg.liveness.as_ref().map(|p| ProbeState {
                kind: p.kind.name().to_owned(),
                last_result: self.last_liveness.as_ref().map(|(ok, _)| if *ok { "pass" } else { "fail" }.to_owned()),
                last_output: self.last_liveness.as_ref().map(|(_, o)| o.clone()),
            }),
            blocked_by: self.blocked_by.clone(),
            dependency_restarting: self.dependency_restarting.clone(),
            waiting_for: self.waiting_for.clone(),
        }
    }
}

fn describe_exit(status: &ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(sig)) => {
            let name = Signal::try_from(sig).map(|s| s.as_str().to_owned()).unwrap_or_else(|_| sig.to_string());
            format!("killed by {name}")
        }
        _ => status.to_string(),
    }
}

fn condition_word(condition: Condition) -> &'static str {
    match condition {
        Condition::Started => "started",
        Condition::Healthy => "healthy",
        Condition::CompletedSuccessfully => "completed",
    }
}

fn stop_word(outcome: StopOutcome) -> &'static str {
    match outcome {
        StopOutcome::AlreadyGone => "gone",
        StopOutcome::Exited => "exited",
        StopOutcome::Killed => "killed",
        StopOutcome::Stuck => "stuck",
    }
}

fn end_word(end: End) -> &'static str {
    match end {
        End::Finished { .. } => "finished",
        End::Halted => "halted",
        End::Signalled(Signal::SIGINT) => "interrupted",
        End::Signalled(Signal::SIGHUP) => "hangup",
        End::Signalled(_) => "terminated",
    }
}

/// The next control request, or never when the socket is not served.
async fn next_request(rx: &mut Option<mpsc::Receiver<Envelope>>) -> Option<Envelope> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
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

/// Stops processes that daemonized out of their component's group and were re-parented to
/// razar: SIGTERM, up to 2 s, then SIGKILL. Nothing razar started outlives it.
async fn stop_orphans() {
    let orphans: Vec<u32> = reaper::orphans().into_iter().filter(|&p| procfs::alive(p)).collect();
    if orphans.is_empty() {
        return;
    }
    tracing::warn!("stopping {} process(es) that daemonized out of their component: {orphans:?}", orphans.len());
    let signal_all = |sig: Signal| {
        // Only the living: a reaped PID may already belong to someone else.
        for &pid in orphans.iter().filter(|&&p| procfs::alive(p)) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig);
        }
    };
    signal_all(Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(2);
    while orphans.iter().any(|&p| procfs::alive(p)) && Instant::now() < deadline {
        sleep(Duration::from_millis(10)).await;
    }
    signal_all(Signal::SIGKILL);
    let deadline = Instant::now() + Duration::from_secs(2);
    while reaper::reap_orphans() < orphans.len()
        && orphans.iter().any(|&p| procfs::alive(p))
        && Instant::now() < deadline
    {
        sleep(Duration::from_millis(10)).await;
    }
}

/// Runs a component's `stop` command in its own group, bounded by `limit`.
async fn run_stop_command(cmd: &Command, ctx: &ExecContext, limit: Duration) {
    let (ok, output) = probe::exec(&cmd.argv(), limit.max(Duration::from_millis(100)), ctx).await;
    if !ok {
        tracing::warn!("stop command `{cmd}` failed: {output}");
    }
}
