//! Launch admission, as pure functions: which components this boot holds back (quarantined,
//! over the failure limit, in downtime, completed in the resumed boot) and which components
//! of the last boot `--resume` adopts. The facts about the world (ledger, history, live
//! processes) come in as arguments.

use crate::config::{Component, Config, Kind};
use crate::state::{ComponentStatus, StateFile};

use super::dispatcher::Adopted;

/// Why a component is not launched this boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hold {
    /// In the quarantine ledger.
    Quarantined,
    /// Failed in too many consecutive boots: quarantined now, by this boot (a ledger entry
    /// is written, and the boot exits 1).
    OverFailureLimit { reason: String },
    /// In the Crown's downtime reply.
    Downtime { reason: String },
    /// A task completed in the boot `--resume` continues.
    Completed,
}

/// What the boot knows about one component before launching it.
pub struct Facts<'a> {
    pub in_ledger: bool,
    /// Consecutive boots it failed in (the boot history).
    pub failures: u32,
    pub failure_limit: u32,
    /// The Crown's downtime entry, unless its diff verified and was promoted: description,
    /// and a note on its diff (empty without one).
    pub downtime: Option<(&'a str, &'a str)>,
    /// `--resume`, and its state in the previous boot.
    pub resumed_state: Option<ComponentStatus>,
}

/// Whether `c` launches this boot, in the order of `docs/boot.md` (Held components).
pub fn hold(c: &Component, facts: &Facts) -> Option<Hold> {
    if facts.in_ledger {
        return Some(Hold::Quarantined);
    }
    if crate::quarantine::should_quarantine_up_front(facts.failures, facts.failure_limit) {
        let reason =
            format!("failed in {} consecutive boots (--failure-limit {})", facts.failures, facts.failure_limit);
        return Some(Hold::OverFailureLimit { reason });
    }
    if let Some((description, note)) = facts.downtime {
        return Some(Hold::Downtime { reason: format!("downtime: {description}{note}") });
    }
    if facts.resumed_state == Some(ComponentStatus::Completed) && c.kind == Kind::Task {
        return Some(Hold::Completed);
    }
    None
}

/// Components of the last boot that `--resume` keeps: recorded healthy, still in the config,
/// enabled and not quarantined, and still the very same process (`same_process(pid, start
/// time, pgid)`: host boot, PID, start time and group, not just the PID). A state file from
/// another host boot adopts nothing; one without a host boot id (an older razar) is judged by
/// the process checks alone.
pub fn adoptable(
    prev: &StateFile,
    cfg: &Config,
    host_boot_id: Option<&str>,
    quarantined: impl Fn(&Component) -> bool,
    same_process: impl Fn(u32, u64, i32) -> bool,
) -> Vec<Adopted> {
    if prev.host_boot_id.as_deref().is_some_and(|b| Some(b) != host_boot_id) {
        return Vec::new();
    }
    prev.components
        .iter()
        .filter(|c| c.state == ComponentStatus::Healthy)
        .filter(|c| cfg.component(&c.id).is_some_and(|k| k.enabled && !quarantined(k)))
        .filter_map(|c| {
            let (pid, pgid, start) = (c.pid?, c.pgid?, c.start_time?);
            same_process(pid, start, pgid).then(|| Adopted {
                name: c.id.clone(),
                pid,
                pgid,
                start_time: start,
                ready_at: c.ready_at.clone(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load::NoEnv;
    use crate::state::ComponentState;

    fn cfg() -> Config {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.json");
        let json = r#"{"components": [{"name": "svc", "command": "x", "health_check": {"file": "up"}}, {"name": "job", "command": "x", "kind": "task"},
            {"name": "off", "command": "x", "enabled": false}]}"#;
        std::fs::write(&f, json).unwrap();
        crate::config::load(&f, dir.path(), &NoEnv).unwrap()
    }

    fn facts() -> Facts<'static> {
        Facts { in_ledger: false, failures: 0, failure_limit: 3, downtime: None, resumed_state: None }
    }

    #[test]
    fn holds_in_the_documented_order() {
        let cfg = cfg();
        let (svc, job) = (cfg.component("svc").unwrap(), cfg.component("job").unwrap());
        let rows: Vec<(&Component, Facts, Option<Hold>)> = vec![
            (svc, facts(), None),
            (svc, Facts { in_ledger: true, failures: 9, ..facts() }, Some(Hold::Quarantined)),
            (
                svc,
                Facts { failures: 3, downtime: Some(("maintenance", "")), ..facts() },
                Some(Hold::OverFailureLimit { reason: "failed in 3 consecutive boots (--failure-limit 3)".into() }),
            ),
            (svc, Facts { failures: 9, failure_limit: 0, ..facts() }, None),
            (
                svc,
                Facts { downtime: Some(("maintenance", " (its diff failed its tests)")), ..facts() },
                Some(Hold::Downtime { reason: "downtime: maintenance (its diff failed its tests)".into() }),
            ),
            (job, Facts { resumed_state: Some(ComponentStatus::Completed), ..facts() }, Some(Hold::Completed)),
            (svc, Facts { resumed_state: Some(ComponentStatus::Completed), ..facts() }, None),
        ];
        for (i, (c, f, want)) in rows.into_iter().enumerate() {
            assert_eq!(hold(c, &f), want, "row {i}");
        }
    }

    #[test]
    fn adopts_only_live_healthy_enabled_components_of_this_host_boot() {
        let cfg = cfg();
        let comp = |id: &str, state, pid| ComponentState {
            id: id.into(),
            state,
            pid: Some(pid),
            pgid: Some(pid as i32),
            start_time: Some(7),
            ..serde_json::from_value(serde_json::json!({"id": id, "state": "pending"})).unwrap()
        };
        let prev = StateFile {
            host_boot_id: Some("boot-a".into()),
            components: vec![
                comp("svc", ComponentStatus::Healthy, 10),
                comp("job", ComponentStatus::Starting, 11),
                comp("off", ComponentStatus::Healthy, 12),
                comp("gone", ComponentStatus::Healthy, 13),
            ],
            ..StateFile::default()
        };
        let live = |_: u32, start: u64, _: i32| start == 7;
        let names = |v: Vec<Adopted>| v.into_iter().map(|a| a.name).collect::<Vec<_>>();
        assert_eq!(names(adoptable(&prev, &cfg, Some("boot-a"), |_| false, live)), vec!["svc"]);
        assert!(adoptable(&prev, &cfg, Some("boot-b"), |_| false, live).is_empty(), "another host boot");
        assert!(adoptable(&prev, &cfg, Some("boot-a"), |_| true, live).is_empty(), "quarantined");
        assert!(adoptable(&prev, &cfg, Some("boot-a"), |_| false, |_, _, _| false).is_empty(), "not the same process");
    }
}
