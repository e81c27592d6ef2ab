//! The dispatcher: sole owner of a boot's run state.
//!
//! It `select!`s over child events (exit, probe result, log match, stop done), its own timers
//! (ready deadlines, backoff, dependency timeouts, state flushes) and signals. Component tasks
//! never touch the state: they send messages tagged with the attempt's generation, and stale
//! messages from an earlier attempt are dropped. Every decision that is a rule (backoff,
//! thresholds, stop order) is a pure function from `plan`, `backoff` or `probe::policy`.

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

    // ----- scheduling -------------------------------------------------------------------------

    fn schedule(&mut self) {
        let settled_below = self.settled_tiers();
        let mut starting = self.units.iter().filter(|u| u.status == S::Starting).count();
        for idx in 0..self.units.len() {
            // A unit whose previous process group is still being stopped waits for it to go.
            if self.units[idx].status != S::Pending || self.units[idx].proc.is_some() {
                continue;
            }
            match self.readiness_of_deps(idx, &settled_below) {
                DepState::Blocked(by) => {
                    let unit = &mut self.units[idx];
                    unit.status = S::Blocked;
                    unit.waiting_for = None;
                    unit.last_error = Some(format!("blocked: {} did not come up", by.join(", ")));
                    unit.blocked_by = by;
                    let details = json!({"blocked_by": unit.blocked_by});
                    tracing::warn!("{}: blocked by {}", unit.cfg.name, unit.blocked_by.join(", "));
                    self.event("blocked", &self.name(idx), "blocked", Some(details));
                }
                DepState::Waiting(why, key) => {
                    if self.units[idx].waiting_key != key {
                        tracing::info!("{}: waiting for {key}", self.units[idx].cfg.name);
                        self.units[idx].waiting_key = key;
                    }
                    if self.units[idx].waiting_for.as_deref() != Some(why.as_str()) {
                        self.units[idx].waiting_for = Some(why);
                        self.mark_dirty();
                    }
                }
                DepState::Ready => {
                    if self.opts.jobs.is_some_and(|j| starting >= j) {
                        let why = format!("waiting for a free slot (--jobs {})", self.opts.jobs.unwrap_or(0));
                        self.units[idx].waiting_for = Some(why);
                        continue;
                    }
                    starting += 1;
                    self.launch(idx);
                }
            }
        }
        if !self.ready_announced && self.units.iter().all(|u| u.settled()) {
            self.announce_ready();
        }
    }

    /// `settled[k]`: every tier below `k` has settled.
    fn settled_tiers(&self) -> Vec<bool> {
        let mut out = Vec::with_capacity(self.plan.tiers.len());
        let mut all_below = true;
        for members in &self.plan.tiers {
            out.push(all_below);
            all_below &= members.iter().all(|&m| self.units[m].settled());
        }
        out
    }

    fn readiness_of_deps(&self, idx: usize, settled_below: &[bool]) -> DepState {
        let mut blocked = Vec::new();
        let mut waiting = Vec::new();
        // Who is waited for, without the probe progress: what the log line reports.
        let mut key = Vec::new();
        for edge in &self.plan.deps[idx] {
            let dep = &self.units[edge.on];
            let name = dep.cfg.name.to_string();
            if dep.satisfies(edge.condition) {
                continue;
            }
            if dep.is_dead() {
                blocked.push(name);
            } else {
                let cond = condition_word(edge.condition);
                let probe = dep
                    .cfg
                    .health_check
                    .as_ref()
                    .map(|p| {
                        if let ProbeKind::Log(re) = &p.kind {
                            return format!(" (no line matching /{}/ yet)", re.as_str());
                        }
                        let last = dep.last_probe.as_ref().map_or("not probed yet", |(_, o)| o.as_str());
                        let n = dep.tracker.attempts;
                        format!(" ({}: {}, {n} probe{})", p.kind, last, if n == 1 { "" } else { "s" })
                    })
                    .unwrap_or_default();
                waiting.push(format!("{name} {cond}{probe}"));
                key.push(format!("{name} {cond}"));
            }
        }
        if !blocked.is_empty() {
            return DepState::Blocked(blocked);
        }
        if let Some(k) = self.plan.tier[idx]
            && !settled_below[k]
        {
            let tier = format!("every component with priority < {}", self.cfg.components[idx].priority.unwrap_or(0));
            key.push(tier.clone());
            waiting.push(tier);
        }
        if waiting.is_empty() {
            DepState::Ready
        } else {
            DepState::Waiting(format!("waiting for {}", waiting.join(", ")), key.join(", "))
        }
    }

    fn launch(&mut self, idx: usize) {
        let generation = self.units[idx].generation + 1;
        let cfg = self.units[idx].cfg.clone();
        {
            let u = &mut self.units[idx];
            u.generation = generation;
            if !u.ever_ready {
                u.attempts += 1;
            }
            u.status = S::Starting;
            u.waiting_for = None;
            u.tracker = Tracker::default();
            u.after_stop = AfterStop::Nothing;
            u.exit = None;
            u.first_launch.get_or_insert_with(Instant::now);
        }
        let attempt = self.units[idx].attempts;
        let env = match self.component_env_checked(&cfg) {
            Ok(env) => env,
            Err(e) => {
                // A broken layer fails the same way every time: no local retries.
                self.units[idx].attempts = self.opts.retries + 1;
                self.attempt_failed(idx, e);
                return;
            }
        };
        let (log_tx, log_rx) = oneshot::channel();
        let log_pattern = match cfg.health_check.as_ref().map(|p| &p.kind) {
            Some(ProbeKind::Log(re)) => Some((re.clone(), log_tx)),
            _ => None,
        };
        self.units[idx].log_pending = log_pattern.is_some();
        let polled = cfg.health_check.as_ref().is_some_and(|p| !matches!(p.kind, ProbeKind::Log(_)));
        let output_seen = polled.then(|| Arc::new(Notify::new()));
        let spec = SpawnSpec {
            argv: cfg.command.argv(),
            env,
            working_dir: Some(cfg.working_dir.clone()),
            log_path: self.paths.component_log(&cfg.name),
            log_pattern,
            output_seen: output_seen.clone(),
        };
        tracing::info!("{}: starting (attempt {attempt}): {}", cfg.name, cfg.command);
        let spawned = match child::spawn(spec) {
            Ok(s) => s,
            Err(e) => {
                self.event(
                    "launch",
                    cfg.name.as_str(),
                    "error",
                    Some(json!({"attempt": attempt, "error": e.to_string()})),
                );
                self.attempt_failed(idx, format!("spawn failed: {e}"));
                return;
            }
        };
        let launched = launched::Launched {
            component: cfg.name.to_string(),
            pid: spawned.pid,
            pgid: spawned.pgid,
            start_time: spawned.start_time,
            host_boot_id: self.state.host_boot_id.clone(),
        };
        if let Err(e) = launched::record(&self.launch_journal, &launched) {
            tracing::warn!("cannot journal the launch of {}: {e}", cfg.name);
        }
        self.event("launch", cfg.name.as_str(), "start", Some(json!({"attempt": attempt, "pid": spawned.pid})));
        self.units[idx].proc = Some(Proc {
            pid: spawned.pid,
            pgid: spawned.pgid,
            start_time: spawned.start_time,
            exited: false,
            detached: false,
        });
        let tx = self.tx.clone();
        let mut process = spawned.child;
        tokio::spawn(async move {
            let status = reaper::wait(&mut process).await.map_err(|e| format!("wait failed: {e}"));
            let _ = tx.send(Msg::Exited { idx, generation, status });
        });
        if let Some(probe) = &cfg.health_check {
            if matches!(probe.kind, ProbeKind::Log(_)) {
                let tx = self.tx.clone();
                tokio::spawn(async move {
                    let line = log_rx.await.ok();
                    let _ = tx.send(Msg::LogLine { idx, generation, line });
                });
            } else {
                let seen = output_seen.unwrap_or_default();
                self.units[idx].probe_task = Some(self.spawn_probe_loop(idx, generation, &cfg, seen));
            }
            let budget = cfg.ready_timeout.unwrap_or_else(|| {
                policy::default_ready_budget(probe.initial_delay, probe.period, probe.failure_threshold)
            });
            self.add_timer(Instant::now() + budget, Timer::ReadyDeadline { idx, generation });
        } else if let Some(t) = cfg.ready_timeout {
            self.add_timer(Instant::now() + t, Timer::ReadyDeadline { idx, generation });
        }
        self.mark_dirty();
    }

    fn component_env(&self, cfg: &Component) -> BTreeMap<String, String> {
        self.component_env_checked(cfg).unwrap_or_else(|_| cfg.env.clone())
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

    /// Probes a starting component on the `start_interval` schedule, and also right after it
    /// writes output (servers tend to log the moment they listen), at most every
    /// `OUTPUT_PROBE_GAP`.
    fn spawn_probe_loop(&self, idx: usize, generation: u64, cfg: &Component, output_seen: Arc<Notify>) -> AbortHandle {
        let probe = cfg.health_check.clone().expect("has a probe");
        // An exec probe forks a process: output wakes it no more often than `start_interval`.
        let gap = match probe.kind {
            ProbeKind::Exec(_) => probe.start_interval.max(OUTPUT_PROBE_GAP),
            _ => OUTPUT_PROBE_GAP,
        };
        let ctx = ExecContext { env: self.component_env(cfg), working_dir: Some(cfg.working_dir.clone()) };
        let http = self.http.clone();
        let tx = self.tx.clone();
        tokio::spawn(async move {
            sleep(probe.initial_delay).await;
            let mut attempts = 0;
            loop {
                let outcome = probe::check(&probe.kind, probe.timeout, &http, &ctx).await;
                if tx.send(Msg::Probe { idx, generation, outcome }).is_err() {
                    return;
                }
                let probed = Instant::now();
                tokio::select! {
                    _ = sleep(policy::starting_interval(probe.start_interval, probe.period, attempts)) => {}
                    _ = output_seen.notified() => sleep_until(probed + gap).await,
                }
                attempts += 1;
            }
        })
        .abort_handle()
    }

    // ----- events -----------------------------------------------------------------------------

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Exited { idx, generation, status } => self.on_exit(idx, generation, status),
            Msg::Probe { idx, generation, outcome } => self.on_probe(idx, generation, outcome),
            Msg::LogLine { idx, generation, line } => self.on_log_line(idx, generation, line),
            Msg::Stopped { idx, generation, outcome } => self.on_stopped(idx, generation, outcome),
            Msg::Liveness { idx, generation, outcome } => self.on_liveness(idx, generation, outcome),
        }
    }

    fn on_exit(&mut self, idx: usize, generation: u64, status: Result<ExitStatus, String>) {
        if self.units[idx].generation != generation {
            return;
        }
        let (ok, text) = match &status {
            Ok(s) if s.success() => (true, "exited 0".to_owned()),
            Ok(s) => (false, describe_exit(s)),
            Err(e) => (false, e.clone()),
        };
        let name = self.name(idx);
        let Some(proc) = self.units[idx].proc.as_mut() else { return };
        proc.exited = true;
        let pgid = proc.pgid;
        self.units[idx].exit = Some((ok, text.clone()));
        self.event("exit", &name, if ok { "ok" } else { "error" }, Some(json!({"status": text})));
        if self.units[idx].stopping {
            return;
        }
        let unit = &self.units[idx];
        match (unit.status, unit.cfg.kind, ok) {
            (S::Starting, Kind::Task, true) => self.became_ready(idx),
            // The ready line may still be in the pipe: let the output drain decide first.
            (S::Starting, _, false) if self.units[idx].log_pending => {
                self.add_timer(Instant::now() + EXIT_SETTLE, Timer::ExitSettle { idx, generation });
            }
            (S::Starting, _, false) => self.attempt_failed(idx, format!("{text} before becoming ready")),
            // A service that exits 0 while starting is judged by its probe (the seed form:
            // a command that prints and exits, checked by a separate health command).
            (S::Starting, Kind::Service, true) => {}
            (S::Healthy, _, _) => self.supervised_exit(idx, ok, text),
            _ => {}
        }
        // The group ends with its main process: stragglers it left behind are stopped.
        if procfs::group_exists(pgid) && self.units[idx].proc.is_some() && !self.units[idx].stopping {
            self.stop_unit(idx, AfterStop::Nothing);
        } else if !self.units[idx].stopping {
            self.units[idx].proc = None;
        }
        self.mark_dirty();
    }

    fn on_probe(&mut self, idx: usize, generation: u64, outcome: probe::Outcome) {
        let unit = &mut self.units[idx];
        if unit.generation != generation || unit.status != S::Starting {
            return;
        }
        let probe = unit.cfg.health_check.as_ref().expect("probe results come from a probe");
        self.services.metrics.probe_observed(probe.kind.name(), outcome.duration, outcome.ok, unit.cfg.name.as_str());
        unit.last_probe = Some((outcome.ok, outcome.output.clone()));
        // While starting, failures only count towards progress: the ready deadline decides.
        let verdict = unit.tracker.observe(outcome.ok, probe.success_threshold, u32::MAX);
        self.mark_dirty();
        if verdict == Verdict::Pass {
            self.became_ready(idx);
        }
    }

    fn on_log_line(&mut self, idx: usize, generation: u64, line: Option<String>) {
        let unit = &mut self.units[idx];
        if unit.generation != generation || unit.status != S::Starting {
            return;
        }
        unit.log_pending = false;
        match line {
            Some(line) => {
                unit.tracker.observe(true, 1, u32::MAX);
                unit.last_probe = Some((true, line));
                self.became_ready(idx);
                // It printed its ready line and then died: a supervised failure, not a failed start.
                if let Some((false, text)) = self.units[idx].exit.clone() {
                    self.supervised_exit(idx, false, text);
                }
            }
            None if matches!(unit.exit, Some((false, _))) => {
                let text = unit.exit.as_ref().map(|(_, t)| t.clone()).unwrap_or_default();
                self.attempt_failed(idx, format!("{text} before becoming ready"));
            }
            None => {
                let pattern = match unit.cfg.health_check.as_ref().map(|p| &p.kind) {
                    Some(ProbeKind::Log(re)) => re.as_str().to_owned(),
                    _ => String::new(),
                };
                let why = format!("output ended without a line matching /{pattern}/");
                unit.last_probe = Some((false, why.clone()));
                self.attempt_failed(idx, why);
            }
        }
    }

    fn became_ready(&mut self, idx: usize) {
        let name = self.name(idx);
        let unit = &mut self.units[idx];
        unit.abort_probes();
        let secs = unit.first_launch.map_or(0.0, |t| t.elapsed().as_secs_f64());
        let now = clock::epoch();
        unit.ready_at = Some(clock::iso(now));
        unit.ready_seconds = Some(secs);
        let exited = unit.exit.as_ref().map(|(ok, _)| *ok);
        // A task without a probe becomes ready by exiting 0; one with a probe is healthy while
        // it runs and completes when it exits 0.
        unit.status = if exited == Some(true) { S::Completed } else { S::Healthy };
        let status = unit.status;
        let was_restarting = std::mem::replace(&mut self.units[idx].restarting, false);
        self.units[idx].ever_ready = true;
        if status == S::Healthy {
            self.start_liveness(idx);
        }
        for &d in &self.plan.dependents[idx].clone() {
            self.units[d].dependency_restarting.retain(|n| *n != name);
        }
        if was_restarting {
            self.restart_edge_dependents(idx);
        }
        self.services.metrics.component_up(&name, true);
        self.services.metrics.component_ready(&name, Duration::from_secs_f64(secs));
        tracing::info!("{name}: {} after {secs:.2}s (attempt {})", status.as_str(), self.units[idx].attempts);
        self.event(
            "ready",
            &name,
            status.as_str(),
            Some(json!({"seconds": secs, "attempt": self.units[idx].attempts})),
        );
        self.mark_dirty();
    }

    fn attempt_failed(&mut self, idx: usize, reason: String) {
        if self.units[idx].ever_ready {
            // A restarted component that fails to come back is one more supervised failure.
            self.restart(idx, "not ready after restart", reason);
            return;
        }
        let name = self.name(idx);
        let attempts = self.units[idx].attempts;
        let retry = attempts <= self.opts.retries && self.shutdown.is_none();
        let unit = &mut self.units[idx];
        unit.abort_probes();
        unit.last_error = Some(reason.clone());
        unit.status = if retry { S::Backoff } else { S::Unhealthy };
        tracing::warn!("{name}: attempt {attempts} failed: {reason}");
        self.event("failure", &name, "attempt_failed", Some(json!({"attempt": attempts, "error": reason})));
        let after = if retry { AfterStop::Retry } else { AfterStop::Fail };
        if self.units[idx].proc.is_some() {
            self.stop_unit(idx, after);
        } else {
            self.after_stopped(idx, after);
        }
        self.mark_dirty();
    }

    fn after_stopped(&mut self, idx: usize, after: AfterStop) {
        match after {
            AfterStop::Nothing => {}
            AfterStop::Retry if self.shutdown.is_none() => {
                let delay = local_retry_delay(self.units[idx].attempts);
                let generation = self.units[idx].generation;
                self.units[idx].status = S::Backoff;
                tracing::info!("{}: retrying in {}s", self.name(idx), delay.as_secs());
                self.event(
                    "retry",
                    &self.name(idx),
                    "backoff",
                    Some(json!({"delay_seconds": delay.as_secs_f64(), "next_attempt": self.units[idx].attempts + 1})),
                );
                self.add_timer(Instant::now() + delay, Timer::Backoff { idx, generation });
            }
            AfterStop::Retry => self.units[idx].status = S::Stopped,
            AfterStop::Fail => self.final_failure(idx),
            AfterStop::Restart(delay) if self.shutdown.is_none() => {
                let generation = self.units[idx].generation;
                self.units[idx].status = S::Backoff;
                self.add_timer(Instant::now() + delay, Timer::Backoff { idx, generation });
            }
            AfterStop::Restart(_) => self.units[idx].status = S::Stopped,
            AfterStop::Quarantine => self.quarantine(idx),
        }
    }

    fn final_failure(&mut self, idx: usize) {
        let name = self.name(idx);
        self.units[idx].status = S::Failed;
        let error = self.units[idx].last_error.clone().unwrap_or_default();
        tracing::error!("{name}: failed after {} attempts: {error}", self.units[idx].attempts);
        self.event("failure", &name, "failed", Some(json!({"attempts": self.units[idx].attempts, "error": error})));
        let halt = !self.opts.keep_going && self.cfg.on_failure == OnFailure::Halt;
        self.services.metrics.component_up(&name, false);
        if halt && self.shutdown.is_none() {
            tracing::error!("boot halted: {name} failed; stopping the stack");
            self.alert(
                format!("Boot sequence halted: {name} failed after {} attempts", self.units[idx].attempts),
                Severity::Critical,
                json!({"component": name, "error": error}),
            );
            self.begin_shutdown(End::Halted);
        }
        self.mark_dirty();
    }

    fn on_stopped(&mut self, idx: usize, generation: u64, outcome: StopOutcome) {
        if self.units[idx].generation != generation {
            return;
        }
        let name = self.name(idx);
        let unit = &mut self.units[idx];
        unit.stopping = false;
        unit.proc = None;
        let after = std::mem::replace(&mut unit.after_stop, AfterStop::Nothing);
        if outcome == StopOutcome::Stuck {
            tracing::error!("{name}: processes remain in its group after SIGKILL");
        }
        self.event("stop", &name, stop_word(outcome), None);
        self.services.metrics.component_up(&name, false);
        if self.shutdown.is_some() && !matches!(after, AfterStop::Fail | AfterStop::Quarantine) {
            let unit = &mut self.units[idx];
            if matches!(unit.status, S::Healthy | S::Starting | S::Backoff | S::Unhealthy) {
                unit.status = S::Stopped;
            }
        } else {
            self.after_stopped(idx, after);
        }
        self.mark_dirty();
    }

    fn stop_unit(&mut self, idx: usize, after: AfterStop) {
        let unit = &mut self.units[idx];
        let Some(proc) = unit.proc.as_ref() else { return };
        if unit.stopping {
            // One stop per group: a later decision (an operator's stop during a restart, a
            // quarantine) replaces what happens once the group is gone.
            unit.after_stop = after;
            return;
        }
        unit.stopping = true;
        unit.after_stop = after;
        let pgid = proc.pgid;
        let generation = unit.generation;
        let cfg = unit.cfg.clone();
        let grace = if self.kill_now { Duration::ZERO } else { cfg.shutdown.grace };
        // Only a deliberate stop of a running component runs its `stop` command.
        let stop_cmd = if !proc.exited && after == AfterStop::Nothing { cfg.stop.clone() } else { None };
        let ctx = ExecContext { env: self.component_env(&cfg), working_dir: Some(cfg.working_dir.clone()) };
        let tx = self.tx.clone();
        tokio::spawn(async move {
            if let Some(cmd) = stop_cmd {
                run_stop_command(&cmd, &ctx, grace.min(STOP_COMMAND_LIMIT)).await;
            }
            let outcome = terminate::stop_group(pgid, cfg.shutdown.signal, grace).await;
            let _ = tx.send(Msg::Stopped { idx, generation, outcome });
        });
    }

    // ----- supervision ------------------------------------------------------------------------

    /// A ready component's main process exited: apply its restart policy.
    fn supervised_exit(&mut self, idx: usize, ok: bool, text: String) {
        let name = self.name(idx);
        let policy = self.units[idx].cfg.restart.policy;
        let restart = match policy {
            RestartPolicy::Never => false,
            RestartPolicy::OnFailure => !ok,
            RestartPolicy::Always => true,
        };
        if restart {
            self.restart(idx, if ok { "exited" } else { "crashed" }, format!("{text} after becoming ready"));
        } else if ok {
            tracing::info!("{name}: completed ({text})");
            self.units[idx].abort_probes();
            self.units[idx].status = S::Completed;
            self.event("complete", &name, "ok", None);
        } else {
            tracing::warn!("{name}: {text} after becoming ready; restart policy never");
            self.units[idx].abort_probes();
            self.units[idx].status = S::Failed;
            self.units[idx].last_error = Some(format!("{text} after becoming ready"));
            self.event("failure", &name, "exited", Some(json!({"status": text})));
        }
    }

    /// Restarts a supervised component with backoff, or quarantines it when its budget is spent.
    fn restart(&mut self, idx: usize, reason: &str, error: String) {
        if self.shutdown.is_some() {
            return;
        }
        let name = self.name(idx);
        if self.units[idx].cfg.restart.policy == RestartPolicy::Never {
            // Supervision failures never halt the boot: the component fails on its own.
            tracing::warn!("{name}: {error}; restart policy never");
            self.units[idx].abort_probes();
            self.units[idx].status = S::Failed;
            self.units[idx].last_error = Some(error.clone());
            self.services.metrics.component_up(&name, false);
            self.event("failure", &name, "failed", Some(json!({"error": error, "policy": "never"})));
            if self.units[idx].proc.is_some() && !self.units[idx].stopping {
                self.stop_unit(idx, AfterStop::Nothing);
            }
            return;
        }
        self.units[idx].abort_probes();
        self.units[idx].last_error = Some(error.clone());
        let now = self.started.elapsed().as_secs_f64();
        let random = self.jitter.sample();
        let after = match restart_decision(&self.units[idx].cfg.restart, &self.units[idx].restart_times, now, random) {
            RestartDecision::Restart(delay) => {
                let unit = &mut self.units[idx];
                unit.restarts += 1;
                unit.restart_times.push(now);
                let window = unit.cfg.restart.window.as_secs_f64();
                unit.restart_times.retain(|&t| now - t < window);
                unit.restarting = true;
                // ready_seconds of the next start measures that start, not the first launch.
                unit.first_launch = None;
                unit.status = S::Backoff;
                let restarts = unit.restarts;
                let why = if reason == "liveness" { RestartReason::Liveness } else { RestartReason::Exited };
                self.services.metrics.restart(&name, why);
                self.services.metrics.component_up(&name, false);
                tracing::warn!("{name}: {error}; restarting in {:.2}s (restart {restarts})", delay.as_secs_f64());
                self.event(
                    "restart",
                    &name,
                    "backoff",
                    Some(json!({"reason": reason, "error": error, "delay_seconds": delay.as_secs_f64(), "restart": restarts})),
                );
                for &d in &self.plan.dependents[idx].clone() {
                    let waits_healthy =
                        self.plan.deps[d].iter().any(|e| e.on == idx && e.condition == Condition::Healthy);
                    if waits_healthy && !self.units[d].dependency_restarting.contains(&name) {
                        self.units[d].dependency_restarting.push(name.clone());
                    }
                }
                AfterStop::Restart(delay)
            }
            RestartDecision::BudgetExhausted => {
                let max = self.units[idx].cfg.restart.max_restarts;
                let window = self.units[idx].cfg.restart.window;
                let why = format!("restart budget exhausted ({max} restarts within {window:?}); last error: {error}");
                tracing::error!("{name}: {why}; quarantining");
                self.units[idx].last_error = Some(why.clone());
                self.event("quarantine", &name, "budget_exhausted", Some(json!({"error": error, "max_restarts": max})));
                AfterStop::Quarantine
            }
        };
        if self.units[idx].proc.is_some() {
            self.stop_unit(idx, after);
        } else {
            self.after_stopped(idx, after);
        }
        self.mark_dirty();
    }

    /// Dependents whose edge asks for it are restarted once their dependency is back.
    fn restart_edge_dependents(&mut self, idx: usize) {
        let name = self.name(idx);
        for d in self.plan.dependents[idx].clone() {
            let wants = self.plan.deps[d].iter().any(|e| e.on == idx && e.restart);
            if wants && self.units[d].status == S::Healthy {
                self.restart(d, "dependency restarted", format!("{name} restarted"));
            }
        }
    }

    fn start_liveness(&mut self, idx: usize) {
        let cfg = self.units[idx].cfg.clone();
        let Some(probe) = cfg.liveness.clone() else { return };
        let generation = self.units[idx].generation;
        self.units[idx].liveness = Tracker::default();
        if let ProbeKind::Log(_) = probe.kind {
            // A log line proves a start, not continued life: nothing to poll.
            return;
        }
        let ctx = ExecContext { env: self.component_env(&cfg), working_dir: Some(cfg.working_dir.clone()) };
        let http = self.http.clone();
        let tx = self.tx.clone();
        let task = tokio::spawn(async move {
            sleep(probe.initial_delay).await;
            loop {
                sleep(probe.period).await;
                let outcome = probe::check(&probe.kind, probe.timeout, &http, &ctx).await;
                if tx.send(Msg::Liveness { idx, generation, outcome }).is_err() {
                    return;
                }
            }
        });
        self.units[idx].liveness_task = Some(task.abort_handle());
    }

    fn on_liveness(&mut self, idx: usize, generation: u64, outcome: probe::Outcome) {
        let unit = &mut self.units[idx];
        if unit.generation != generation || unit.status != S::Healthy {
            return;
        }
        let probe = unit.cfg.liveness.as_ref().expect("liveness results come from a liveness probe");
        self.services.metrics.probe_observed(probe.kind.name(), outcome.duration, outcome.ok, unit.cfg.name.as_str());
        let verdict = unit.liveness.observe(outcome.ok, probe.success_threshold, probe.failure_threshold);
        let failures = unit.liveness.failures;
        unit.last_liveness = Some((outcome.ok, outcome.output.clone()));
        self.mark_dirty();
        if verdict == Verdict::Fail {
            let name = self.name(idx);
            let error = format!("liveness probe failed {failures} times: {}", outcome.output);
            self.event(
                "probe",
                &name,
                "liveness_failed",
                Some(json!({"output": outcome.output, "failures": failures})),
            );
            self.alert(
                format!("{name}: liveness probe failed {failures} times after boot"),
                Severity::Warning,
                json!({"component": name, "output": outcome.output}),
            );
            self.restart(idx, "liveness", error);
        }
    }

    /// Budget exhausted: record the component in the ledger, alert, and keep it stopped.
    fn quarantine(&mut self, idx: usize) {
        let name = self.name(idx);
        let unit = &mut self.units[idx];
        unit.status = S::Quarantined;
        unit.quarantined_now = true;
        let reason = unit.last_error.clone().unwrap_or_else(|| "failed".into());
        let mut entry = Entry::for_component(&unit.cfg, reason.clone(), Source::Razar);
        entry.attempts = unit.attempts + unit.restarts;
        let diagnosis = crate::analyze::classify(&log_tail(&self.paths.component_log(&unit.cfg.name))).summary();
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
        self.block_dependents(idx);
        self.update_quarantine_gauge();
    }

    /// A quarantined component's dependents cannot work: running ones are stopped and every
    /// one is `blocked` (by whom is in the state) until the component is released.
    fn block_dependents(&mut self, idx: usize) {
        let name = self.name(idx);
        let mut direct_blocker: BTreeMap<usize, String> = BTreeMap::new();
        for d in self.plan.transitive_dependents(idx) {
            let via = self.plan.deps[d]
                .iter()
                .find(|e| e.on == idx || direct_blocker.contains_key(&e.on))
                .map(|e| self.name(e.on))
                .unwrap_or_else(|| name.clone());
            direct_blocker.insert(d, via);
        }
        for (d, via) in direct_blocker {
            if matches!(self.units[d].status, S::Quarantined | S::Disabled | S::Downtime | S::Completed | S::Failed) {
                continue;
            }
            self.units[d].abort_probes();
            let dep = self.name(d);
            self.units[d].status = S::Blocked;
            self.units[d].blocked_by = vec![via.clone()];
            self.units[d].last_error = Some(format!("blocked: {via} is not available"));
            if self.units[d].proc.is_some() && !self.units[d].stopping {
                tracing::warn!("{dep}: stopping, its dependency {via} is quarantined");
                self.stop_unit(d, AfterStop::Nothing);
            }
            self.services.metrics.component_up(&dep, false);
            self.event("blocked", &dep, "blocked", Some(json!({"blocked_by": [via]})));
        }
    }

    fn update_quarantine_gauge(&self) {
        let n = self.units.iter().filter(|u| u.status == S::Quarantined).count();
        self.services.metrics.quarantined(n);
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

    // ----- control ----------------------------------------------------------------------------

    fn on_request(&mut self, envelope: Envelope) {
        let response = match envelope.request {
            Request::Status => Response::state(self.snapshot_json()),
            Request::QuarantineReload => self.reload_quarantine(),
            Request::Restart { component } => self.with_component(&component, Self::operator_restart),
            Request::Stop { component } => self.with_component(&component, Self::operator_stop),
            Request::Start { component } => self.with_component(&component, Self::operator_start),
        };
        let _ = envelope.reply.send(response);
    }

    fn with_component(&mut self, name: &str, op: fn(&mut Self, usize) -> Response) -> Response {
        if self.shutdown.is_some() {
            return Response::error("the boot is shutting down");
        }
        match self.units.iter().position(|u| u.cfg.name.as_str() == name) {
            Some(idx) => op(self, idx),
            None => {
                let names = self.units.iter().map(|u| u.cfg.name.as_str());
                let hint = crate::config::load::did_you_mean(name, names).map(|s| format!("; did you mean `{s}`?"));
                Response::error(format!("no component named `{name}`{}", hint.unwrap_or_default()))
            }
        }
    }

    fn operator_restart(&mut self, idx: usize) -> Response {
        let name = self.name(idx);
        match self.units[idx].status {
            S::Quarantined => Response::error(format!("{name} is quarantined: release it first")),
            S::Healthy | S::Starting | S::Unhealthy if self.units[idx].proc.is_some() => {
                self.units[idx].abort_probes();
                self.units[idx].status = S::Backoff;
                self.units[idx].restarting = self.units[idx].ever_ready;
                self.units[idx].restarts += 1;
                self.services.metrics.restart(&name, RestartReason::Operator);
                self.event("restart", &name, "operator", None);
                self.stop_unit(idx, AfterStop::Restart(Duration::ZERO));
                Response::ok(format!("restarting {name}"))
            }
            S::Backoff => Response::ok(format!("{name} is already restarting")),
            _ => self.operator_start(idx),
        }
    }

    fn operator_stop(&mut self, idx: usize) -> Response {
        let name = self.name(idx);
        match self.units[idx].status {
            S::Quarantined => return Response::error(format!("{name} is quarantined (already stopped)")),
            S::Disabled => return Response::error(format!("{name} is disabled in the config (not running)")),
            S::Downtime => return Response::error(format!("{name} is in Crown downtime for this boot (not running)")),
            _ => {}
        }
        self.units[idx].abort_probes();
        self.units[idx].status = S::Stopped;
        self.units[idx].held_by_operator = true;
        self.event("stop", &name, "operator", None);
        // Also cancels a relaunch that a restart or retry had planned for after its stop.
        self.stop_unit(idx, AfterStop::Nothing);
        self.mark_dirty();
        Response::ok(format!("stopping {name}"))
    }

    fn operator_start(&mut self, idx: usize) -> Response {
        let name = self.name(idx);
        match self.units[idx].status {
            S::Quarantined => {
                Response::error(format!("{name} is quarantined: release it with `razar quarantine release {name}`"))
            }
            S::Healthy | S::Starting | S::Backoff | S::Pending => {
                Response::ok(format!("{name} is already {}", self.units[idx].status.as_str()))
            }
            S::Disabled => Response::error(format!("{name} is disabled in the config (`enabled: false`)")),
            S::Downtime => Response::error(format!("{name} is in Crown downtime for this boot")),
            _ if self.units[idx].stopping => Response::error(format!("{name} is still stopping; try again")),
            _ => {
                self.make_pending(idx);
                self.event("start", &name, "operator", None);
                Response::ok(format!("starting {name}"))
            }
        }
    }

    /// Puts a component back in line to launch with a fresh budget, and lifts blocks that no
    /// longer hold.
    fn make_pending(&mut self, idx: usize) {
        let u = &mut self.units[idx];
        u.status = S::Pending;
        u.attempts = 0;
        u.ever_ready = false;
        u.restart_times.clear();
        u.quarantined_now = false;
        u.held_by_operator = false;
        u.blocked_by.clear();
        u.last_error = None;
        self.unblock();
        self.mark_dirty();
    }

    /// Blocked components whose dependencies are no longer dead go back to pending.
    fn unblock(&mut self) {
        loop {
            let freed: Vec<usize> = (0..self.units.len())
                .filter(|&i| self.units[i].status == S::Blocked)
                .filter(|&i| self.plan.deps[i].iter().all(|e| !self.units[e.on].is_dead()))
                .collect();
            if freed.is_empty() {
                return;
            }
            for i in freed {
                self.units[i].status = S::Pending;
                self.units[i].blocked_by.clear();
                self.units[i].last_error = None;
            }
        }
    }

    /// Applies the ledger: newly quarantined components stop, released ones start again.
    fn reload_quarantine(&mut self) -> Response {
        // Every entry file counts, readable or not: an unreadable entry keeps its component out.
        let names = match self.services.ledger.names() {
            Ok(n) => n,
            Err(e) => return Response::error(format!("cannot read the quarantine ledger: {e}")),
        };
        let listed: std::collections::HashSet<String> = names.iter().map(|n| n.to_string()).collect();
        let mut stopped = Vec::new();
        let mut released = Vec::new();
        for idx in 0..self.units.len() {
            let name = self.name(idx);
            let in_ledger = listed.contains(&name);
            let quarantined = self.units[idx].status == S::Quarantined;
            if in_ledger && !quarantined {
                self.units[idx].abort_probes();
                self.units[idx].status = S::Quarantined;
                self.units[idx].held_by_operator = true;
                self.units[idx].last_error = Some("quarantined by the operator".into());
                self.stop_unit(idx, AfterStop::Nothing);
                self.services.metrics.component_up(&name, false);
                self.event("quarantine", &name, "quarantined", Some(json!({"source": "ledger"})));
                self.block_dependents(idx);
                stopped.push(name);
            } else if !in_ledger && quarantined {
                self.event("quarantine", &name, "released", None);
                self.make_pending(idx);
                released.push(name);
            }
        }
        self.update_quarantine_gauge();
        self.mark_dirty();
        Response::ok(format!("quarantined: [{}]; released: [{}]", stopped.join(", "), released.join(", ")))
    }

    /// The live state, as `logs/razar_state.json` would hold it now.
    fn snapshot_json(&mut self) -> serde_json::Value {
        self.refresh_state();
        serde_json::to_value(&self.state).unwrap_or_default()
    }

    fn refresh_state(&mut self) {
        self.state.components = self.units.iter().map(Unit::snapshot).collect();
        self.state.quarantine =
            self.units.iter().filter(|u| u.status == S::Quarantined).map(|u| u.cfg.name.to_string()).collect();
    }

    // ----- timers -----------------------------------------------------------------------------

    fn add_timer(&mut self, at: Instant, timer: Timer) {
        self.timer_seq += 1;
        self.timers.push(Reverse((at, self.timer_seq, timer)));
    }

    fn fire_timers(&mut self) {
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

    // ----- shutdown ---------------------------------------------------------------------------

    fn on_signal(&mut self, sig: Signal) {
        if self.shutdown.is_some() {
            if !self.kill_now {
                tracing::warn!("second {sig}: killing every component now");
                self.kill_now = true;
                for u in &self.units {
                    if let Some(p) = &u.proc {
                        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(p.pgid), Signal::SIGKILL);
                    }
                }
            }
            return;
        }
        tracing::warn!("{sig} received: stopping the stack in reverse dependency order");
        self.begin_shutdown(End::Signalled(sig));
    }

    fn begin_shutdown(&mut self, end: End) {
        if let Some(board) = self.opts.board.take() {
            board.clear();
        }
        self.shutdown = Some(end);
        self.state.phase = Some(Phase::Stopping);
        // Shutdown hook: razar's own service manager (Type=notify) learns the stack is stopping.
        crate::sdnotify::stopping();
        for u in &mut self.units {
            u.abort_probes();
            if matches!(u.status, S::Backoff) {
                u.status = S::Stopped;
            }
            u.waiting_for = None;
        }
        self.event("boot", "", "stopping", Some(json!({"reason": end_word(end)})));
        self.flush();
    }

    fn drive_shutdown(&mut self) {
        let running = |u: &Unit| u.proc.is_some();
        let mut per_tier = vec![0usize; self.plan.tiers.len()];
        for (i, u) in self.units.iter().enumerate() {
            if let (Some(k), true) = (self.plan.tier[i], running(u)) {
                per_tier[k] += 1;
            }
        }
        let stoppable: Vec<usize> = (0..self.units.len())
            .filter(|&i| running(&self.units[i]) && !self.units[i].stopping)
            .filter(|&i| self.plan.may_stop(i, |j| running(&self.units[j]), &per_tier))
            .collect();
        for idx in stoppable {
            tracing::info!("{}: stopping", self.name(idx));
            self.stop_unit(idx, AfterStop::Nothing);
        }
    }

    fn finished(&self) -> Option<End> {
        if self.units.iter().any(|u| u.proc.is_some() || u.stopping) {
            return None;
        }
        if let Some(end) = self.shutdown {
            return Some(end);
        }
        // A component an operator stopped or quarantined can be started or released again:
        // only components that ended on their own end the boot.
        let held = |u: &Unit| u.held_by_operator && matches!(u.status, S::Stopped | S::Quarantined);
        if self.units.iter().all(Unit::at_rest) && !self.units.iter().any(held) {
            let failed = self.units.iter().filter(|u| u.status == S::Failed || u.quarantined_now).count();
            return Some(End::Finished { failed });
        }
        None
    }

    fn finish(&mut self, end: End) {
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

    fn announce_ready(&mut self) {
        self.ready_announced = true;
        self.state.phase = Some(Phase::Ready);
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for u in &self.units {
            *counts.entry(u.status.as_str()).or_default() += 1;
        }
        let summary: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
        let secs = self.started.elapsed().as_secs_f64();
        if let Some(board) = self.opts.board.take() {
            board.clear();
        }
        let line = format!("razar: {} components in {secs:.2}s: {}", self.units.len(), summary.join(", "));
        if self.opts.json_logs {
            tracing::info!(event = "ready", seconds = secs, "{line}");
            tracing::info!(event = "ready", "RAZAR ready.");
        } else {
            crate::errln!("{line}");
            crate::errln!("RAZAR ready.");
        }
        self.event("boot", "", "ready", Some(json!({"seconds": secs, "states": counts})));
        self.record_history();
        self.flush();
        // Readiness hook: razar's own service manager (Type=notify) learns the stack is ready.
        crate::sdnotify::ready(&format!("{} components: {}", self.units.len(), summary.join(", ")));
        // The boot's peak (config parsing, a thousand launches, the history and the textfile)
        // is over: hand the freed heap back so a long-running supervisor stays small.
        // SAFETY: malloc_trim only releases free memory of the allocator razar already uses.
        unsafe {
            libc::malloc_trim(0);
        }
    }

    fn record_history(&mut self) {
        let comps: Vec<RunComponent> = self
            .units
            .iter()
            // Only components with a verdict of their own: ready this run, or failed this run.
            // Blocked ones, and ones a halt or signal stopped before they were ready, neither
            // succeeded nor failed, so they do not move the cumulative failure count.
            .filter_map(|u| {
                let failed = u.attempts > 0 && matches!(u.status, S::Failed | S::Quarantined);
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
            tracing::warn!("cannot write the metrics textfile: {e}");
        }
        let path = self.paths.boot_history();
        let result = History::update(&path, |h| h.record(run));
        if let Err(e) = result {
            tracing::warn!("cannot record the boot history: {e}");
        }
    }

    // ----- state ------------------------------------------------------------------------------

    fn name(&self, idx: usize) -> String {
        self.units[idx].cfg.name.to_string()
    }

    fn event(&mut self, event: &str, component: &str, status: &str, details: Option<serde_json::Value>) {
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

    fn mark_dirty(&mut self) {
        self.state_dirty = true;
        if !self.flush_pending {
            self.flush_pending = true;
            let at = (self.last_flush + FLUSH_EVERY).max(Instant::now());
            self.add_timer(at, Timer::Flush);
        }
    }

    /// Writes the state file durably and redraws the board: on phase changes and at the end.
    fn flush(&mut self) {
        self.write_state(true);
    }

    /// The coalesced write between phase changes: only when something changed, no fsync.
    fn flush_soon(&mut self) {
        self.write_state(false);
    }

    fn write_state(&mut self, durable: bool) {
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
