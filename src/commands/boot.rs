//! `razar boot`: validate, lock the root, clear leftovers of a dead boot, then hand the stack
//! to the dispatcher and map how it ended to an exit code.

use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::cli::{BootArgs, Global};
use crate::clock;
use crate::config::{self, ProcessEnv};
use crate::error::{Error, Result};
use crate::exit;
use crate::paths::Paths;
use crate::sequencer::dispatcher::{Dispatcher, End, Options};
use crate::state::lock::BootLock;
use crate::state::{Phase, StateFile, StateStore};
use crate::supervise::{leftovers, reaper};

pub async fn run(paths: &Paths, _global: &Global, args: BootArgs) -> Result<u8> {
    let file = args.config.as_ref().map(|c| paths.join(c)).unwrap_or_else(|| paths.default_config());
    let cfg = config::load(&file, &paths.root, &ProcessEnv)?;
    if args.jobs == Some(0) {
        return Err(Error::Usage("--jobs must be at least 1 (omit it for no limit)".into()));
    }
    let _lock = BootLock::acquire(paths)?;
    raise_open_files_limit();
    // Daemonizing grandchildren are re-parented to razar, reaped, and stopped at shutdown.
    if let Err(e) = reaper::become_subreaper() {
        tracing::warn!("cannot become child subreaper ({e}); daemonizing processes may outlive razar");
    }
    reaper::spawn_reaper_task().map_err(|e| Error::Internal(format!("cannot watch SIGCHLD: {e}")))?;

    let store = StateStore::new(paths.state());
    let previous = store.load()?;
    if let Some(prev) = &previous {
        let reaped = leftovers::reap(prev, Duration::from_secs(5)).await;
        if !reaped.is_empty() {
            tracing::warn!(
                "stopped {} component(s) left running by a previous boot: {}",
                reaped.len(),
                reaped.join(", ")
            );
        }
    }

    let started = clock::epoch();
    let me = std::process::id();
    let mut state = StateFile {
        version: crate::state::STATE_VERSION,
        mission: args.mission.clone().or_else(|| cfg.mission.clone()),
        last_boot: Some(clock::iso(started)),
        boot_id: Some(format!("{}-{me}", clock::epoch_millis())),
        razar_pid: Some(me),
        razar_start_time: crate::supervise::procfs::start_time(me),
        phase: Some(Phase::Launching),
        ..StateFile::default()
    };
    state.downtime = serde_json::json!({});

    let http = reqwest::Client::builder()
        .user_agent(concat!("razar/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| Error::Internal(format!("cannot build the HTTP client: {e}")))?;
    let opts = Options { retries: args.retries, keep_going: args.keep_going, jobs: args.jobs.or(cfg.jobs) };
    let dispatcher = Dispatcher::new(Arc::new(cfg), paths.clone(), opts, state, http);
    let end = dispatcher.run().await.map_err(|e| Error::Internal(format!("cannot watch signals: {e}")))?;
    Ok(match end {
        End::Finished { failed: 0 } => exit::SUCCESS,
        End::Finished { .. } | End::Halted => exit::BOOT_HALTED,
        End::Signalled(Signal::SIGINT) => exit::SIGINT,
        End::Signalled(_) => exit::SIGTERM,
    })
}

/// Raises the open-files soft limit to the hard limit so a thousand components (one pipe
/// each, plus probe sockets) fit.
fn raise_open_files_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
        && let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard)
    {
        tracing::warn!("cannot raise the open-files limit from {soft} to {hard}: {e}");
    }
}
