//! Leftovers of a boot that died (SIGKILL, OOM, power loss): the process groups it recorded
//! are terminated before anything new starts, so no service runs twice and no port clashes.
//! The caller reads the records and hands over the groups to check; this module only judges
//! them against the process table and stops the ones that are provably razar's.
//!
//! A recorded group is razar's only when all of these hold:
//! - the record was made during this host boot (its boot id equals
//!   `/proc/sys/kernel/random/boot_id`); a record without a boot id (written by an older razar)
//!   is judged by the next two rules alone;
//! - its leader is alive with the recorded PID *and* the recorded start time — PID and
//!   start-time ticks together name one process of one host boot;
//! - that leader is still the leader of the recorded group.
//!
//! Anything else is logged and left alone. In particular a group whose leader has exited is
//! never touched: once the leader is gone nothing proves the group id was not handed to an
//! unrelated process after razar's group emptied, and killing someone else's processes is worse
//! than a duplicate the operator can see in the log.

use std::time::Duration;

use nix::sys::signal::Signal;

use super::procfs;
use super::terminate;

/// One process group an earlier boot recorded as launched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub component: String,
    pub pid: u32,
    pub pgid: i32,
    pub start_time: Option<u64>,
    pub host_boot_id: Option<String>,
}

/// What the process table says about a recorded group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Still running and provably the recorded group: to be stopped.
    Ours,
    /// No process is left in the group.
    Gone,
    /// Something lives under that id, but nothing proves it is razar's: left alone.
    NotOurs(&'static str),
}

/// Judges `group` against the live process table; `host_boot_id` is this host boot's id.
pub fn judge(group: &Group, host_boot_id: Option<&str>) -> Verdict {
    if !procfs::group_exists(group.pgid) {
        return Verdict::Gone;
    }
    if let Some(recorded) = &group.host_boot_id {
        match host_boot_id {
            None => return Verdict::NotOurs("this host's boot id cannot be read to compare with the record"),
            Some(now) if now != recorded => return Verdict::NotOurs("it was recorded during an earlier host boot"),
            Some(_) => {}
        }
    }
    let Some(start) = group.start_time else {
        return Verdict::NotOurs("no start time was recorded for it");
    };
    if !procfs::alive(group.pid) {
        return Verdict::NotOurs("its leader has exited, so the group cannot be proven to be razar's");
    }
    if procfs::start_time(group.pid) != Some(start) {
        return Verdict::NotOurs("its PID now belongs to a process with another start time");
    }
    if procfs::pgid(group.pid) != Some(group.pgid) {
        return Verdict::NotOurs("its leader has moved to another process group");
    }
    Verdict::Ours
}

/// Terminates every group in `groups` that is still razar's, each with the signal and grace
/// `stop_with` gives for its component; returns the components stopped. Groups that live on
/// but cannot be proven razar's are logged and left running.
pub async fn reap(groups: &[Group], stop_with: impl Fn(&str) -> (Signal, Duration)) -> Vec<String> {
    let host = procfs::host_boot_id();
    let mut stopped = Vec::new();
    let mut tasks = Vec::new();
    for g in groups {
        match judge(g, host.as_deref()) {
            Verdict::Gone => continue,
            Verdict::NotOurs(why) => {
                tracing::warn!(
                    "{}: process group {} recorded by a previous boot is still alive but left alone: {why} \
                     (stop it by hand with `kill -TERM -- -{}` if it is the component)",
                    g.component,
                    g.pgid,
                    g.pgid
                );
                continue;
            }
            Verdict::Ours => {}
        }
        let (signal, grace) = stop_with(&g.component);
        tracing::warn!("{}: process group {} left by a previous boot; terminating it", g.component, g.pgid);
        stopped.push(g.component.clone());
        tasks.push(tokio::spawn(terminate::stop_group(g.pgid, signal, grace)));
    }
    for t in tasks {
        let _ = t.await;
    }
    stopped.sort();
    stopped.dedup();
    stopped
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::CommandExt;

    use super::*;

    fn group(pid: u32, pgid: i32, start_time: Option<u64>, host_boot_id: Option<&str>) -> Group {
        Group { component: "c".into(), pid, pgid, start_time, host_boot_id: host_boot_id.map(str::to_owned) }
    }

    #[test]
    fn a_recycled_pid_is_not_ours() {
        let me = std::process::id();
        let start = procfs::start_time(me).unwrap();
        let pg = procfs::pgid(me).unwrap();
        let host = procfs::host_boot_id();
        let host = host.as_deref();
        assert_eq!(judge(&group(me, pg, Some(start), host), host), Verdict::Ours);
        assert!(matches!(judge(&group(me, pg, Some(start + 1), host), host), Verdict::NotOurs(_)));
        assert!(matches!(judge(&group(me, pg, None, host), host), Verdict::NotOurs(_)), "no start time: never assume");
        assert!(matches!(judge(&group(me, pg + 1, Some(start), host), host), Verdict::NotOurs(_) | Verdict::Gone));
    }

    #[test]
    fn a_record_from_another_host_boot_is_not_ours_even_when_pid_and_start_time_agree() {
        let me = std::process::id();
        let start = procfs::start_time(me).unwrap();
        let pg = procfs::pgid(me).unwrap();
        let host = procfs::host_boot_id().expect("boot id readable");
        let v = judge(&group(me, pg, Some(start), Some("00000000-0000-0000-0000-000000000000")), Some(&host));
        assert_eq!(v, Verdict::NotOurs("it was recorded during an earlier host boot"));
        // A record written before boot ids were recorded is judged by PID and start time.
        assert_eq!(judge(&group(me, pg, Some(start), None), Some(&host)), Verdict::Ours);
    }

    #[test]
    fn a_live_group_whose_leader_exited_is_left_alone() {
        // An unrelated group: its leader backgrounds a member and exits at once.
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("member");
        let mut leader = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("sleep 30 & echo $! > {}", pidfile.display()))
            .process_group(0)
            .spawn()
            .unwrap();
        let pgid = leader.id() as i32;
        leader.wait().unwrap();
        let member: u32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
        let host = procfs::host_boot_id();
        let g = group(pgid as u32, pgid, Some(1), host.as_deref());
        assert!(matches!(judge(&g, host.as_deref()), Verdict::NotOurs(_)));
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let stopped = rt.block_on(reap(&[g], |_| (Signal::SIGKILL, Duration::from_millis(100))));
        assert!(stopped.is_empty());
        assert!(procfs::alive(member), "an unrelated process was killed");
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid), Signal::SIGKILL);
    }
}
