//! `razar boot`: the whole flow of DESIGN §5 as glue. Validate, lock the root, clear (or with
//! `--resume` adopt) what a dead boot left running, start the exporter and the control socket,
//! hand-shake with the Crown, build Python layers, then give the stack to the dispatcher and
//! map how it ended to an exit code.

use std::collections::BTreeMap;
use std::sync::Arc;

use nix::sys::signal::Signal;
use serde_json::{Map, Value};

use crate::alerts::{self, Alerts};
use crate::cli::{BootArgs, Global, LogFormat};
use crate::clock;
use crate::config::{self, Config, ProcessEnv};
use crate::control;
use crate::crown::{self, CrownEnv, capability};
use crate::error::{Error, Result};
use crate::exit;
use crate::layers;
use crate::metrics::{self, HandshakeResult, Metrics};
use crate::paths::Paths;
use crate::progress::Board;
use crate::quarantine::{Entry, Ledger, Source};
use crate::sequencer::admission::{self, Hold};
use crate::sequencer::dispatcher::{Adopted, Dispatcher, End, Options, Services};
use crate::sequencer::history::History;
use crate::sequencer::takeover;
use crate::state::launched;
use crate::state::lock::BootLock;
use crate::state::{ComponentStatus, Phase, StateFile, StateStore};

pub async fn run(paths: &Paths, global: &Global, args: BootArgs, board: Option<Arc<Board>>) -> Result<u8> {
    let file = args.config.as_ref().map(|c| paths.join(c)).unwrap_or_else(|| paths.default_config());
    let cfg = config::load(&file, &paths.root, &ProcessEnv)?;
    if args.jobs == Some(0) {
        return Err(Error::Usage("--jobs must be at least 1 (omit it for no limit)".into()));
    }
    let extra_brief = args.brief.as_ref().map(|f| read_brief_fields(&paths.join(f))).transpose()?;

    let mut signals = crate::sequencer::dispatcher::Signals::new()
        .map_err(|e| Error::Internal(format!("cannot watch signals: {e}")))?;
    // Until the dispatcher owns the stack, a signal abandons the preparation: dropping it ends
    // the handshake and kills any pip build's process group; nothing has been launched yet.
    let prepared = tokio::select! {
        r = prepare(paths, &args, cfg, extra_brief, board, global.log_format == LogFormat::Json) => r?,
        sig = signals.recv() => {
            tracing::warn!("{sig} before any component was launched; stopping");
            return Ok(signal_code(sig));
        }
    };
    let Some(prepared) = prepared else { return Ok(exit::SUCCESS) };
    let end =
        prepared.dispatcher.run(signals).await.map_err(|e| Error::Internal(format!("cannot watch signals: {e}")))?;
    drop(prepared.guards);
    Ok(match end {
        End::Finished { failed: 0 } => exit::SUCCESS,
        End::Finished { .. } | End::Halted => exit::BOOT_HALTED,
        End::Signalled(sig) => signal_code(sig),
    })
}

/// What `prepare` hands over: the dispatcher, and what must live as long as it runs.
struct Prepared {
    dispatcher: Dispatcher,
    guards: Guards,
}

struct Guards {
    // First: the launcher's group is stopped while the root's lock is still held.
    _launcher: crown::launcher::LauncherGroup,
    _lock: BootLock,
    _exporter: Option<AbortOnDrop<()>>,
    _control: SocketGuard,
}

/// SIGUSR1 (after log rotation) reopens every journal before its next record; without a
/// handler it would end razar.
fn spawn_reopen_on_sigusr1() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::user_defined1()) {
        Ok(mut usr1) => {
            tokio::spawn(async move {
                while usr1.recv().await.is_some() {
                    crate::fsutil::request_reopen();
                    tracing::info!("SIGUSR1: journals reopen before their next record");
                }
            });
        }
        Err(e) => {
            tracing::warn!("cannot watch SIGUSR1 ({e}); rotated journals are still reopened on their next record");
        }
    }
}

fn signal_code(sig: Signal) -> u8 {
    match sig {
        Signal::SIGINT => exit::SIGINT,
        Signal::SIGHUP => exit::SIGHUP,
        _ => exit::SIGTERM,
    }
}

/// Everything before launch (DESIGN §5 steps 1–6). `None`: `--handshake-only` is done.
async fn prepare(
    paths: &Paths,
    args: &BootArgs,
    cfg: Config,
    extra_brief: Option<Map<String, Value>>,
    board: Option<Arc<Board>>,
    json_logs: bool,
) -> Result<Option<Prepared>> {
    // Nothing starts when the boot could not record it.
    crate::fsutil::check_writable_dir(&paths.logs())?;
    let lock = BootLock::acquire(paths)?;
    // Daemonizing grandchildren are re-parented to razar, reaped, and stopped at shutdown.
    takeover::become_reaper().map_err(|e| Error::Internal(format!("cannot watch SIGCHLD: {e}")))?;
    crate::fsutil::restrict_dirs(&[paths.logs(), paths.quarantine_dir(), paths.private()]);
    spawn_reopen_on_sigusr1();

    let store = StateStore::new(paths.state());
    let previous = store.load()?;
    let ledger = Ledger::new(paths);
    let host_boot_id = takeover::host_boot_id();
    let mut adopted = match (&previous, args.resume) {
        (Some(prev), true) => admission::adoptable(
            prev,
            &cfg,
            host_boot_id.as_deref(),
            |c| ledger.is_quarantined(&c.name),
            takeover::same_process,
        ),
        _ => Vec::new(),
    };
    let mut leftover = launched::recorded(previous.as_ref(), &paths.launch_journal())?;
    leftover.retain(|l| !adopted.iter().any(|a| a.pid == l.pid));
    let reaped = takeover::clear_leftovers(&cfg, leftover).await;
    if !reaped.is_empty() {
        tracing::warn!("stopped {} component(s) left running by a previous boot: {}", reaped.len(), reaped.join(", "));
    }
    launched::reset(&paths.launch_journal())?;
    // A promotion or revert a crash interrupted is undone before anything launches.
    let recovered = crate::repair::recover(&crate::repair::RepairPaths::new(&paths.root))?;
    if !recovered.is_empty() {
        tracing::warn!("restored the original files of interrupted patch operation(s): {}", recovered.join(", "));
    }
    let launch_journal = crate::fsutil::Appender::new(paths.launch_journal());
    for a in &adopted {
        let l = launched::Launched {
            component: a.name.clone(),
            pid: a.pid,
            pgid: a.pgid,
            start_time: Some(a.start_time),
            host_boot_id: host_boot_id.clone(),
        };
        launched::record(&launch_journal, &l)?;
    }

    let metrics = Metrics::new();
    let agents = roster_agents(paths);
    metrics.register_stack(&stack_labels(&cfg, &agents));
    // Before anything of this boot can change the roster (the ladder rewrites `active`): the
    // snapshot a halt and `razar rollback` restore.
    if !agents.is_empty() {
        crate::roster::snapshot::take(&paths.join(crate::roster::FILE))?;
    }
    let mut state = StateFile {
        version: crate::state::STATE_VERSION,
        mission: args.mission.clone().or_else(|| cfg.mission.clone()),
        last_boot: Some(clock::iso(clock::epoch())),
        boot_id: Some(format!("{}-{}", clock::epoch_millis(), std::process::id())),
        host_boot_id,
        razar_pid: Some(std::process::id()),
        razar_start_time: takeover::own_start_time(),
        phase: Some(Phase::Handshake),
        downtime: Value::Object(Map::new()),
        ..StateFile::default()
    };
    let exporter = if cfg.metrics.enabled && !args.no_metrics {
        let addr = metrics::exporter::resolve_addr(&cfg.metrics, &ProcessEnv)?;
        let exporter = metrics::exporter::Exporter::bind(addr).await?;
        let url = exporter.url();
        if json_logs {
            tracing::info!(metrics_url = %url, "metrics at {url}");
        } else {
            crate::errln!("razar: metrics at {url}");
        }
        state.metrics_url = Some(url);
        Some(AbortOnDrop(tokio::spawn(exporter.serve(metrics.clone()))))
    } else {
        None
    };
    let (control_tx, control_rx) = tokio::sync::mpsc::channel(64);
    let server = control::server::bind(paths)
        .await
        .map_err(|e| Error::Internal(format!("cannot serve the control socket: {e}")))?;
    let control_guard =
        SocketGuard { paths: paths.clone(), _task: AbortOnDrop(tokio::spawn(server.serve(control_tx))) };

    let open_issues: Vec<Value> = ledger
        .list()?
        .iter()
        .map(|e| serde_json::json!({"component": e.name, "reason": e.reason, "quarantined_at": e.quarantined_at}))
        .collect();
    let mission = state.mission.clone();
    let brief = crown::build_brief(&cfg, previous.as_ref(), open_issues, mission.as_deref(), extra_brief);
    let outcome = match crown::handshake(paths, &cfg, &CrownEnv::from_process(), &brief).await {
        Ok(o) => o,
        Err(e) => {
            metrics.crown_handshake(HandshakeResult::Failed);
            tracing::error!("Crown handshake failed ({}); nothing was started", e.kind());
            return Err(e.into());
        }
    };
    // A model server the launcher left running is stopped when the boot ends, however it ends.
    let launcher_group =
        crown::launcher::LauncherGroup::new(outcome.model_launch.as_ref().and_then(|r| r.left_running));
    metrics.crown_handshake(if outcome.offline { HandshakeResult::Offline } else { HandshakeResult::Acknowledged });
    if args.handshake_only {
        // Recorded before the capability gate, so a CI job that fails on it can read why.
        crown::record::record_in_state(&paths.state(), &outcome)?;
    }
    let required = capability::required(&args.require_capability, &cfg.crown.required_capabilities);
    let missing = outcome.missing_capabilities(&required);
    if !missing.is_empty() {
        return Err(Error::CapabilityMissing { missing, offered: outcome.capabilities });
    }
    if args.handshake_only {
        if outcome.offline {
            tracing::warn!("no Crown configured (CROWN_WS_URL or crown.url): offline mode");
        }
        crate::outln!("acknowledgement: {}", outcome.acknowledgement);
        crate::outln!("capabilities: {}", outcome.capabilities.join(", "));
        launcher_group.release();
        return Ok(None);
    }
    // An adopted component the Crown put in downtime is stopped like any other leftover.
    let (down, keep): (Vec<Adopted>, Vec<Adopted>) =
        adopted.into_iter().partition(|a| outcome.downtime.keys().any(|n| n.as_str() == a.name));
    adopted = keep;
    for a in &down {
        takeover::stop(&cfg, &a.name, a.pgid).await;
    }
    state.handshake = Some(outcome.state_json());
    state.capabilities = outcome.capabilities.clone();
    state.downtime = outcome.downtime_json();
    state.launched_models = outcome.launched_models.clone();
    state.glm4v_present = Some(outcome.glm4v_present);
    state.phase = Some(Phase::Launching);

    let built = layers::build_all(paths, &cfg.layers).await;
    let layers: BTreeMap<String, std::result::Result<layers::LayerEnv, String>> =
        built.into_iter().map(|(name, r)| (name, r.map_err(|e| e.to_string()))).collect();

    let history = History::load(&paths.boot_history())?;
    // Probes talk to the host's own services: proxy variables in razar's environment must not
    // send them elsewhere. The webhook may legitimately need the proxy.
    let client = |proxy: bool| {
        let builder = reqwest::Client::builder().user_agent(concat!("razar/", env!("CARGO_PKG_VERSION")));
        let builder = if proxy { builder } else { builder.no_proxy() };
        builder.build().map_err(|e| Error::Internal(format!("cannot build the HTTP client: {e}")))
    };
    let http = client(false)?;
    let alerts = Alerts::new(paths, alerts::webhook_from_env(), client(true)?);
    let services = Services { metrics, alerts, ledger: ledger.clone(), control: Some(control_rx), layers };
    let opts = Options {
        retries: args.retries,
        keep_going: args.keep_going,
        jobs: args.jobs.or(cfg.jobs),
        board,
        json_logs,
        heal_rounds: if cfg.ai_handover && !agents.is_empty() { args.remote_attempts } else { 0 },
        long_task: args.long_task,
    };
    let cfg = Arc::new(cfg);
    let diffs = downtime_diffs(paths, &cfg, &outcome.downtime).await;
    let mut dispatcher = Dispatcher::new(cfg.clone(), paths.clone(), opts, state, http, services);

    let mut held = Vec::new();
    for c in cfg.components.iter().filter(|c| c.enabled) {
        let name = c.name.as_str();
        let facts = admission::Facts {
            in_ledger: ledger.is_quarantined(&c.name),
            failures: history.component_failures.get(name).copied().unwrap_or(0),
            failure_limit: args.failure_limit,
            downtime: match (outcome.downtime.get(&c.name), diffs.get(name)) {
                (Some(_), Some(None)) => None,
                (Some(e), note) => Some((e.description.as_str(), note.and_then(Option::as_deref).unwrap_or(""))),
                (None, _) => None,
            },
            resumed_state: previous
                .as_ref()
                .filter(|_| args.resume)
                .and_then(|p| p.components.iter().find(|pc| pc.id == name))
                .map(|pc| pc.state),
        };
        match admission::hold(c, &facts) {
            None => continue,
            Some(Hold::Quarantined) => {
                dispatcher.hold(name, ComponentStatus::Quarantined, "quarantined (see quarantine/)".into());
            }
            Some(Hold::OverFailureLimit { reason }) => {
                ledger.add(&Entry::for_component(c, reason.clone(), Source::Razar))?;
                tracing::warn!("{name}: quarantined before launch: {reason}");
                dispatcher.quarantine_up_front(name, reason);
            }
            Some(Hold::Downtime { reason }) => {
                tracing::warn!("{name}: in Crown {reason}");
                dispatcher.hold(name, ComponentStatus::Downtime, reason);
            }
            Some(Hold::Completed) => {
                dispatcher.hold(name, ComponentStatus::Completed, "completed in the resumed boot".into());
                // Not launched, but not a hold that stops an adopted copy either.
                continue;
            }
        }
        held.push(name);
    }
    // A component just quarantined up front is not adopted: it is stopped like a leftover.
    for a in &adopted {
        if held.contains(&a.name.as_str()) {
            takeover::stop(&cfg, &a.name, a.pgid).await;
        } else {
            dispatcher.adopt(a);
        }
    }

    Ok(Some(Prepared {
        dispatcher,
        guards: Guards { _lock: lock, _exporter: exporter, _control: control_guard, _launcher: launcher_group },
    }))
}

/// The label values of the stack's series: components with their probe kinds, and agents.
fn stack_labels<'a>(cfg: &'a Config, agents: &'a [String]) -> metrics::StackLabels<'a> {
    let components = cfg
        .components
        .iter()
        .map(|c| {
            let mut kinds: Vec<&'static str> =
                c.health_check.iter().chain(&c.liveness).map(|p| p.kind.name()).collect();
            kinds.dedup();
            (c.name.as_str(), kinds)
        })
        .collect();
    metrics::StackLabels { components, agents: agents.iter().map(String::as_str).collect() }
}

/// The roster's agent names, for their series; none when there is no usable roster file (the
/// boot does not depend on it). Loading it makes the agents' credential variables known as
/// secrets, so no child inherits them.
fn roster_agents(paths: &Paths) -> Vec<String> {
    match crate::sequencer::heal::load_roster(paths) {
        Ok(Some(roster)) => roster.agents.into_iter().map(|a| a.name).filter(|n| !n.is_empty()).collect(),
        Ok(None) => Vec::new(),
        Err(e) => {
            tracing::warn!("{e}; its agents have no metrics series yet");
            Vec::new()
        }
    }
}

/// Downtime entries with a `diff` go through the repair pipeline first (DESIGN §5): by
/// component, `None` when the diff verified and was promoted (the component launches), else
/// a note on why it stays down.
async fn downtime_diffs(
    paths: &Paths,
    cfg: &Config,
    downtime: &BTreeMap<config::ComponentName, crown::protocol::DowntimeEntry>,
) -> BTreeMap<String, Option<String>> {
    let mut out = BTreeMap::new();
    for (name, entry) in downtime {
        let (Some(diff), Some(component)) = (&entry.diff, cfg.component(name.as_str())) else { continue };
        let mut component = component.clone();
        if !entry.tests.is_empty() {
            component.tests = entry.tests.iter().map(|t| config::Command::Shell(t.clone())).collect();
        }
        let suggestion = crate::ladder::agents::Suggestion {
            patch: diff.clone(),
            summary: Some(entry.description.clone()),
            tests: Vec::new(),
        };
        let note = match crate::sequencer::heal::verify(paths, &component, "crown", &suggestion).await {
            Ok(crate::repair::Outcome::Promoted { patch_id, .. }) => {
                tracing::info!("{name}: the Crown's downtime diff verified (patch {patch_id}); launching it");
                None
            }
            Ok(crate::repair::Outcome::Rejected { reason, .. }) => Some(format!(" (its diff was rejected: {reason})")),
            Ok(crate::repair::Outcome::TestsFailed { .. }) => Some(" (its diff failed its tests)".to_owned()),
            Err(e) => Some(format!(" (its diff could not be verified: {e})")),
        };
        out.insert(name.to_string(), note);
    }
    out
}

/// `--brief F`: a JSON object of extra mission-brief fields.
fn read_brief_fields(path: &std::path::Path) -> Result<Map<String, Value>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Usage(format!("--brief {}: cannot read ({e})", path.display())))?;
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(Error::Usage(format!("--brief {}: must be a JSON object of brief fields", path.display()))),
        Err(e) => Err(Error::Usage(format!("--brief {}: malformed JSON: {e}", path.display()))),
    }
}

/// Aborts a background task when the boot returns.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Stops serving the control socket and removes its file when the boot returns.
struct SocketGuard {
    paths: Paths,
    _task: AbortOnDrop<()>,
}

impl Drop for SocketGuard {
    fn drop(&mut self) {
        control::server::socket_cleanup(&self.paths);
    }
}
