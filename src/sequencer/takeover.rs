//! What a boot does to processes before its machine runs: becoming the subreaper of the
//! stack, stopping what a dead boot left running, stopping adopted components it will not
//! keep. The only process work of `razar boot` outside the dispatcher.

use std::time::Duration;

use nix::sys::signal::Signal;

use crate::config::Config;
use crate::state::launched::Launched;
use crate::supervise::{leftovers, procfs, reaper, terminate};

/// Makes razar the reaper of its components' daemonizing grandchildren.
pub fn become_reaper() -> std::io::Result<()> {
    if let Err(e) = reaper::become_subreaper() {
        tracing::warn!("cannot become child subreaper ({e}); daemonizing processes may outlive razar");
    }
    reaper::spawn_reaper_task()
}

/// Stops the process groups a dead boot recorded that are provably its own; returns the
/// components stopped.
pub async fn clear_leftovers(cfg: &Config, recorded: Vec<Launched>) -> Vec<String> {
    let groups: Vec<leftovers::Group> = recorded
        .into_iter()
        .map(|l| leftovers::Group {
            component: l.component,
            pid: l.pid,
            pgid: l.pgid,
            start_time: l.start_time,
            host_boot_id: l.host_boot_id,
        })
        .collect();
    leftovers::reap(&groups, |name| stop_settings(cfg, name)).await
}

/// Stops one group of `component` with its configured signal and grace.
pub async fn stop(cfg: &Config, component: &str, pgid: i32) {
    let (signal, grace) = stop_settings(cfg, component);
    terminate::stop_group(pgid, signal, grace).await;
}

/// Whether `pid` is still the process that started at `start` and leads group `pgid`.
pub fn same_process(pid: u32, start: u64, pgid: i32) -> bool {
    procfs::same_process(pid, start) && procfs::pgid(pid) == Some(pgid)
}

/// The host's boot id and razar's own start time, for the state file.
pub fn host_boot_id() -> Option<String> {
    procfs::host_boot_id()
}

pub fn own_start_time() -> Option<u64> {
    procfs::start_time(std::process::id())
}

/// The signal and grace a component is stopped with (the defaults for one no longer in the
/// config).
fn stop_settings(cfg: &Config, name: &str) -> (Signal, Duration) {
    let s = cfg.component(name).map(|c| c.shutdown.clone()).unwrap_or_default();
    (s.signal, s.grace)
}
