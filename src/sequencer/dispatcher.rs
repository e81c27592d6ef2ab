//! The dispatcher: the async shell around the boot's [`Machine`].
//!
//! It `select!`s over what happens — child exits, probe results, output lines, timers,
//! signals, control requests — turns each into an [`Event`], lets [`Machine::step`] decide,
//! and carries out the returned actions through small executors (`execute`): spawn, probe,
//! stop, journal, alert, count. It owns no rule: every decision is in `machine`. Tasks it
//! starts never touch the state; they send messages tagged with the attempt's generation,
//! and the machine drops stale ones from an earlier attempt.
//!
//! One file per job: `execute` (actions), `timers`, `control` (operator requests) and
//! `reporting` (state file, board, history, the ready banner).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{Instant, sleep, sleep_until};

use super::machine::{Event, HealOutcome, Life, Machine, Now, ProbeResult, Role, Settings};
use crate::alerts::Alerts;
use crate::clock;
use crate::config::Config;
use crate::control::protocol::Envelope;
use crate::journal::Journal;
use crate::layers::LayerEnv;
use crate::metrics::Metrics;
use crate::paths::Paths;
use crate::progress::Board;
use crate::quarantine::Ledger;
use crate::state::{ComponentStatus as S, StateFile, StateStore};
use crate::supervise::output::LineTag;
use crate::supervise::terminate::StopOutcome;
use crate::supervise::{procfs, reaper};

pub use super::machine::End;
pub use crate::supervise::signals::Signals;

mod control;
mod execute;
mod reporting;
mod timers;

/// Longest razar waits at exit for alerts still being posted (the webhook times out at 5 s).
const ALERT_DRAIN: Duration = Duration::from_secs(6);
/// Output lines a log probe may have in flight before the drain waits for the dispatcher.
const LINES_IN_FLIGHT: usize = 256;
/// How long the dispatcher carries out launches before it looks at its other work again: a
/// thousand launches take a good part of a second, and a status request or a SIGTERM must not
/// wait for all of them.
const LAUNCH_SLICE: Duration = Duration::from_millis(5);

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
    /// Repair rounds per failure (`--remote-attempts`; 0 when no agent can be asked).
    pub heal_rounds: u32,
    /// `--long-task`.
    pub long_task: bool,
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

/// What the dispatcher's own tasks report.
enum Msg {
    Exited { idx: usize, generation: u64, ok: bool, text: String, group_alive: bool },
    Probe { idx: usize, generation: u64, role: Role, result: ProbeResult },
    Stopped { idx: usize, generation: u64, outcome: StopOutcome },
    Healed { idx: usize, round: u32, outcome: HealOutcome },
}

/// What runs for one component besides its process: its probe loops and output listener.
#[derive(Default)]
struct Watchers {
    readiness: Option<tokio::task::AbortHandle>,
    liveness: Option<tokio::task::AbortHandle>,
    /// A log probe listens to this attempt's output while set.
    listening: Option<Arc<std::sync::atomic::AtomicBool>>,
    /// Notified when this attempt writes output (wakes a polled readiness probe).
    output_seen: Option<Arc<tokio::sync::Notify>>,
    /// The repair round under way.
    heal: Option<tokio::task::AbortHandle>,
}

pub struct Dispatcher {
    cfg: Arc<Config>,
    machine: Machine,
    paths: Paths,
    opts: Options,
    watchers: Vec<Watchers>,
    tx: mpsc::UnboundedSender<Msg>,
    rx: mpsc::UnboundedReceiver<Msg>,
    lines_tx: mpsc::Sender<(LineTag, Option<String>)>,
    lines_rx: mpsc::Receiver<(LineTag, Option<String>)>,
    /// The stack-wide rate of starting components' probes.
    probe_budget: Arc<crate::probe::runner::Budget>,
    /// Launches the machine asked for, carried out a slice of time at a time (`LAUNCH_SLICE`).
    launches: std::collections::VecDeque<(usize, u64, u32)>,
    timers: BinaryHeap<Reverse<(Instant, u64, timers::Timer)>>,
    timer_seq: u64,
    flush_pending: bool,
    /// Something changed since the state file was last written.
    state_dirty: bool,
    /// A phase changed during this step: write the state file durably after it.
    flush_now: bool,
    /// Ready was announced during this step: give the freed heap back after it.
    trim_after_step: bool,
    last_flush: Instant,
    state: StateFile,
    store: StateStore,
    mission_log: Journal,
    launch_journal: crate::fsutil::Appender,
    http: reqwest::Client,
    started: Instant,
    started_epoch: f64,
    ready_announced: bool,
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
        let settings = Settings {
            retries: opts.retries,
            keep_going: opts.keep_going,
            jobs: opts.jobs,
            seed: clock::epoch_millis() as u64 ^ u64::from(std::process::id()) << 32,
            heal_rounds: opts.heal_rounds,
            long_task: opts.long_task,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let (lines_tx, lines_rx) = mpsc::channel(LINES_IN_FLIGHT);
        Dispatcher {
            machine: Machine::new(cfg.clone(), settings),
            watchers: cfg.components.iter().map(|_| Watchers::default()).collect(),
            store: StateStore::new(paths.state()),
            mission_log: Journal::new(paths.mission_log()),
            launch_journal: crate::fsutil::Appender::new(paths.launch_journal()),
            cfg,
            paths,
            opts,
            tx,
            rx,
            lines_tx,
            lines_rx,
            probe_budget: Arc::default(),
            launches: std::collections::VecDeque::new(),
            timers: BinaryHeap::new(),
            timer_seq: 0,
            flush_pending: false,
            state_dirty: true,
            flush_now: false,
            trim_after_step: false,
            last_flush: Instant::now(),
            state,
            http,
            started: Instant::now(),
            started_epoch: clock::epoch(),
            ready_announced: false,
            pending_alerts: tokio::task::JoinSet::new(),
            services,
            control,
        }
    }

    /// Marks a component as not launched this boot (quarantine, downtime) before `run`.
    pub fn hold(&mut self, name: &str, status: S, reason: String) {
        let life = match status {
            S::Quarantined => Life::Quarantined { this_boot: false, by_operator: false },
            S::Downtime => Life::Downtime,
            S::Completed => Life::Completed,
            S::Disabled => Life::Disabled,
            _ => Life::Stopped { by_operator: false },
        };
        if let Some(idx) = self.machine.index(name) {
            self.machine.hold(idx, life, reason);
        }
    }

    /// Quarantines a component before `run` by this boot's own decision (the failure limit):
    /// like a quarantine after an exhausted restart budget, it makes the boot exit 1.
    pub fn quarantine_up_front(&mut self, name: &str, reason: String) {
        if let Some(idx) = self.machine.index(name) {
            self.machine.hold(idx, Life::Quarantined { this_boot: true, by_operator: false }, reason);
        }
    }

    /// Takes over a component still running from an earlier boot (`--resume`): it counts as
    /// healthy, its exit is watched through a pidfd (it is not razar's child), and its
    /// liveness probe runs as usual.
    pub fn adopt(&mut self, a: &Adopted) {
        let Some(idx) = self.machine.index(&a.name) else { return };
        let event =
            Event::Adopt { idx, pid: a.pid, pgid: a.pgid, start_time: a.start_time, ready_at: a.ready_at.clone() };
        self.apply(event);
        let generation = self.machine.unit(idx).generation;
        let (tx, pid, pgid) = (self.tx.clone(), a.pid, a.pgid);
        tokio::spawn(async move {
            let text = match procfs::wait_exit(pid).await {
                Ok(()) => "exited (status unknown: adopted from an earlier boot)".to_owned(),
                Err(e) => format!("cannot watch adopted process {pid}: {e}"),
            };
            let group_alive = procfs::group_exists(pgid);
            let _ = tx.send(Msg::Exited { idx, generation, ok: false, text, group_alive });
        });
    }

    /// Boots and supervises until every component has ended for good, a halt, or a signal.
    pub async fn run(mut self, mut signals: Signals) -> std::io::Result<End> {
        self.state.phase = Some(crate::state::Phase::Launching);
        self.apply(Event::Begin);
        self.flush();
        loop {
            if self.machine.shutting_down() {
                self.drop_launches();
            }
            if let Some(end) = self.machine.finished() {
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
                Some(msg) = self.rx.recv() => self.on_msg(msg),
                Some(((idx, generation), line)) = self.lines_rx.recv() => {
                    self.apply(Event::Output { idx, generation, line });
                }
                Some(envelope) = next_request(&mut self.control) => self.on_request(envelope),
                _ = sleep_until(next.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600))) => self.fire_timers(),
                sig = signals.recv() => {
                    self.apply(Event::Signal(sig));
                }
                () = std::future::ready(()), if !self.launches.is_empty() => self.launch_batch(),
            }
        }
    }

    fn on_msg(&mut self, msg: Msg) {
        let event = match msg {
            Msg::Exited { idx, generation, ok, text, group_alive } => {
                Event::Exited { idx, generation, ok, text, group_alive }
            }
            Msg::Probe { idx, generation, role, result } => Event::Probe { idx, generation, role, result },
            Msg::Stopped { idx, generation, outcome } => Event::Stopped { idx, generation, outcome },
            Msg::Healed { idx, round, outcome } => Event::Healed { idx, round, outcome },
        };
        self.apply(event);
    }

    /// One step of the machine, and its actions carried out. Actions that answer at once
    /// (a launch that could not spawn) feed their events back before this returns.
    fn apply(&mut self, event: Event) -> Option<Result<String, String>> {
        let mut reply = None;
        let mut queue = std::collections::VecDeque::from([event]);
        while let Some(event) = queue.pop_front() {
            let now = self.now();
            for action in self.machine.step(event, now) {
                match self.execute(action) {
                    execute::Done::Nothing => {}
                    execute::Done::Event(e) => queue.push_back(e),
                    execute::Done::Reply(r) => reply = Some(r),
                }
            }
        }
        self.mark_dirty();
        if std::mem::take(&mut self.flush_now) {
            self.flush();
        }
        if std::mem::take(&mut self.trim_after_step) {
            // A long-running supervisor stays small: the boot's peak (config parsing, a
            // thousand launches, the history and the textfile) is over, and this step's own
            // allocations are gone.
            // SAFETY: malloc_trim only releases free memory of the allocator razar already uses.
            unsafe {
                libc::malloc_trim(0);
            }
        }
        reply
    }

    /// Carries out launches for up to `LAUNCH_SLICE`; each answers the machine at once.
    fn launch_batch(&mut self) {
        let slice = Instant::now() + LAUNCH_SLICE;
        while Instant::now() < slice {
            let Some((idx, generation, attempt)) = self.launches.pop_front() else { return };
            let unit = self.machine.unit(idx);
            // Stopped (or relaunched) before its turn came: nothing to start.
            if unit.generation != generation || unit.status() != S::Starting {
                continue;
            }
            if let execute::Done::Event(e) = self.launch(idx, generation, attempt) {
                self.apply(e);
            }
        }
    }

    /// The stack is stopping: launches not carried out yet never will be.
    fn drop_launches(&mut self) {
        while let Some((idx, generation, _)) = self.launches.pop_front() {
            self.apply(Event::LaunchDropped { idx, generation });
        }
    }

    fn now(&self) -> Now {
        Now { mono: self.started.elapsed(), epoch: clock::epoch() }
    }
}

/// The next control request, or never when the socket is not served.
async fn next_request(rx: &mut Option<mpsc::Receiver<Envelope>>) -> Option<Envelope> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Stops processes that daemonized out of their component's group and were re-parented to
/// razar: SIGTERM, up to 2 s, then SIGKILL. Nothing razar started outlives it.
async fn stop_orphans() {
    use nix::sys::signal::Signal;
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
