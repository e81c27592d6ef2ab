//! The rules of `docs/boot.md`, one table row each: a stack, what happened before, one event,
//! and the states and actions that must follow.

use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::{Value, json};

use super::tests::{Rig, rig, rig_healing, rig_with};
use super::*;
use crate::state::ComponentStatus as S;

pub(super) fn launched(actions: &[Action], rig: &Rig, name: &str) -> bool {
    let i = rig.idx(name);
    actions.iter().any(|a| matches!(a, Action::Launch { idx, .. } if *idx == i))
}

fn stops(actions: &[Action], rig: &Rig, name: &str) -> bool {
    let i = rig.idx(name);
    actions.iter().any(|a| matches!(a, Action::Stop { idx, .. } if *idx == i))
}

fn journals(actions: &[Action], event: &str, status: &str) -> bool {
    actions.iter().any(|a| matches!(a, Action::Journal { event: e, status: s, .. } if *e == event && s == status))
}

fn armed_backoff(actions: &[Action]) -> Option<Duration> {
    actions.iter().find_map(|a| match a {
        Action::Arm { at, timer: Timer::Backoff { .. } } => Some(*at),
        _ => None,
    })
}

/// One rule: a stack, what happened before, one event, what must follow.
struct Row {
    rule: &'static str,
    stack: Value,
    before: fn(&mut Rig),
    event: fn(&mut Rig) -> Vec<Action>,
    states: &'static [(&'static str, S)],
    then: fn(&Rig, &[Action]) -> bool,
}

fn nothing(_: &mut Rig) {}
fn any(_: &Rig, _: &[Action]) -> bool {
    true
}
fn begin(r: &mut Rig) {
    r.begin();
}

fn rows() -> Vec<Row> {
    let svc = |name: &str| json!({"name": name, "command": "x", "health_check": {"tcp": "127.0.0.1:1"}});
    vec![
        Row {
            rule: "planning: a component without dependencies launches at once",
            stack: json!([svc("a")]),
            before: nothing,
            event: |r| r.begin(),
            states: &[("a", S::Starting)],
            then: |r, a| {
                launched(a, r, "a") && a.iter().any(|x| matches!(x, Action::Watch { role: Role::Readiness, .. }))
            },
        },
        Row {
            rule: "planning: a dependent waits while its dependency is not healthy",
            stack: json!([svc("db"), {"name": "api", "command": "x", "depends_on": ["db"]}]),
            before: nothing,
            event: |r| r.begin(),
            states: &[("db", S::Starting), ("api", S::Pending)],
            then: |r, a| !launched(a, r, "api"),
        },
        Row {
            rule: "planning: a dependent launches once its dependency is healthy",
            stack: json!([svc("db"), {"name": "api", "command": "x", "depends_on": ["db"]}]),
            before: begin,
            event: |r| r.ready("db"),
            states: &[("db", S::Healthy), ("api", S::Starting)],
            then: |r, a| launched(a, r, "api"),
        },
        Row {
            rule: "planning: condition started is satisfied by a launched group",
            stack: json!([svc("db"), {"name": "api", "command": "x", "depends_on": {"db": {"condition": "started"}}}]),
            before: nothing,
            event: |r| r.begin(),
            states: &[("db", S::Starting), ("api", S::Starting)],
            then: |r, a| launched(a, r, "api"),
        },
        Row {
            rule: "planning: condition completed waits for the task to exit 0",
            stack: json!([{"name": "mig", "command": "x", "kind": "task"},
                          {"name": "api", "command": "x", "depends_on": {"mig": {"condition": "completed_successfully"}}}]),
            before: begin,
            event: |r| r.exit("mig", true),
            states: &[("mig", S::Completed), ("api", S::Starting)],
            then: |r, a| launched(a, r, "api"),
        },
        Row {
            rule: "tiers: a higher priority waits until every lower tier has settled",
            stack: json!([{"name": "low", "command": "x", "priority": 1, "health_check": {"tcp": "127.0.0.1:1"}},
                          {"name": "high", "command": "x", "priority": 2}]),
            before: nothing,
            event: |r| r.begin(),
            states: &[("low", S::Starting), ("high", S::Pending)],
            then: |r, _| {
                let high = &r.m.snapshot()[r.idx("high")];
                high.waiting_for.as_deref().is_some_and(|w| w.contains("every component with priority < 2"))
            },
        },
        Row {
            rule: "--jobs: at most N components start at once",
            stack: json!({"jobs": 1, "components": [svc("a"), svc("b")]}),
            before: nothing,
            event: |r| r.begin(),
            states: &[("a", S::Starting), ("b", S::Pending)],
            then: |r, a| !launched(a, r, "b"),
        },
        Row {
            rule: "readiness: a task without a probe is completed when it exits 0",
            stack: json!([{"name": "t", "command": "x", "kind": "task"}]),
            before: begin,
            event: |r| r.exit("t", true),
            states: &[("t", S::Completed)],
            then: |_, a| journals(a, "ready", "completed") && a.contains(&Action::Ready),
        },
        Row {
            rule: "readiness: a service is healthy when its probe passes",
            stack: json!([svc("a")]),
            before: begin,
            event: |r| r.ready("a"),
            states: &[("a", S::Healthy)],
            then: |_, a| journals(a, "ready", "healthy") && a.contains(&Action::Ready),
        },
        Row {
            rule: "readiness: a service that exited 0 while starting is completed when its probe passes",
            stack: json!([svc("a")]),
            before: |r| {
                r.begin();
                r.exit("a", true);
            },
            event: |r| r.ready("a"),
            states: &[("a", S::Completed)],
            then: any,
        },
        Row {
            rule: "readiness: a log probe is ready on the first matching line of this attempt",
            stack: json!([{"name": "w", "command": "x", "health_check": {"log": "^ready"}}]),
            before: |r| {
                r.begin();
                r.line("w", Some("booting"));
            },
            event: |r| r.line("w", Some("ready now")),
            states: &[("w", S::Healthy)],
            then: |r, _| r.m.unit(r.idx("w")).last_probe == Some((true, "ready now".into())),
        },
        Row {
            rule: "readiness: output that ends without the line fails the attempt",
            stack: json!([{"name": "w", "command": "x", "health_check": {"log": "^ready"}}]),
            before: begin,
            event: |r| r.line("w", None),
            states: &[("w", S::Backoff)],
            then: |_, a| journals(a, "failure", "attempt_failed"),
        },
        Row {
            rule: "readiness: a non-zero exit while a log probe waits gives the output time to drain",
            stack: json!([{"name": "w", "command": "x", "health_check": {"log": "^ready"}}]),
            before: begin,
            event: |r| r.exit("w", false),
            states: &[("w", S::Starting)],
            then: |_, a| a.iter().any(|x| matches!(x, Action::Arm { timer: Timer::ExitSettle { .. }, .. })),
        },
        Row {
            rule: "readiness: not ready within the ready timeout fails the attempt",
            stack: json!([{"name": "a", "command": "x", "ready_timeout": "2s", "health_check": {"tcp": "127.0.0.1:1"}}]),
            before: begin,
            event: |r| r.fire(|t| matches!(t, Timer::ReadyDeadline { .. })),
            states: &[("a", S::Backoff)],
            then: |r, a| {
                stops(a, r, "a")
                    && r.m.unit(r.idx("a")).last_error.as_deref().is_some_and(|e| e.contains("ready timeout"))
            },
        },
        Row {
            rule: "local retries: the group is stopped, then the retry waits min(2^(n-1), 60) s",
            stack: json!([svc("a")]),
            before: |r| {
                r.begin();
                r.exit("a", false);
            },
            event: |r| r.stopped("a"),
            states: &[("a", S::Backoff)],
            then: |r, a| armed_backoff(a) == Some(r.t + Duration::from_secs(1)) && journals(a, "retry", "backoff"),
        },
        Row {
            rule: "local retries: the backoff timer puts the component back in line",
            stack: json!([svc("a")]),
            before: |r| {
                r.begin();
                r.exit("a", false);
                r.stopped("a");
            },
            event: |r| r.fire(|t| matches!(t, Timer::Backoff { .. })),
            states: &[("a", S::Starting)],
            then: |r, a| launched(a, r, "a") && r.m.unit(r.idx("a")).attempts == 2,
        },
        Row {
            rule: "failure: out of attempts, nothing to heal with, under on_failure halt: quarantined, the boot halts",
            stack: json!([svc("a"), svc("b")]),
            before: |r| {
                r.begin();
                r.exit("a", false);
                r.stopped("a");
                r.fire(|t| matches!(t, Timer::Backoff { .. }));
                r.exit("a", false);
            },
            event: |r| r.stopped("a"),
            states: &[("a", S::Quarantined)],
            then: |r, a| {
                a.contains(&Action::ShuttingDown(End::Halted))
                    && a.contains(&Action::RestoreRoster)
                    && stops(a, r, "b")
                    && a.iter().any(|x| matches!(x, Action::Quarantine { .. }))
                    && a.iter().any(
                        |x| matches!(x, Action::Alert { severity: Severity::Critical, message, .. } if message == heal::HALT_ALERT),
                    )
            },
        },
        Row {
            rule: "failure: under on_failure continue, an unhealable component is quarantined and its dependents blocked",
            stack: json!({"on_failure": "continue", "components": [svc("db"), {"name": "api", "command": "x", "depends_on": ["db"]}]}),
            before: |r| {
                r.begin();
                r.exit("db", false);
                r.stopped("db");
                r.fire(|t| matches!(t, Timer::Backoff { .. }));
                r.exit("db", false);
            },
            event: |r| r.stopped("db"),
            states: &[("db", S::Quarantined), ("api", S::Blocked)],
            then: |r, a| {
                !a.iter().any(|x| matches!(x, Action::ShuttingDown(_)))
                    && r.m.finished() == Some(End::Finished { failed: 1 })
            },
        },
        Row {
            rule: "dependency timeout: a dependent fails when its dependency is not there in time",
            stack: json!({"on_failure": "continue", "components": [svc("db"),
                          {"name": "api", "command": "x", "depends_on": {"db": {"timeout": "5s"}}}]}),
            before: begin,
            event: |r| r.fire(|t| matches!(t, Timer::DependencyTimeout { .. })),
            states: &[("db", S::Starting), ("api", S::Failed)],
            then: |r, _| r.m.unit(r.idx("api")).last_error.as_deref().is_some_and(|e| e.contains("within 5s")),
        },
        Row {
            rule: "supervision: policy never, exit 0 after ready is completed",
            stack: json!([{"name": "a", "command": "x", "restart": {"policy": "never"}, "health_check": {"tcp": "127.0.0.1:1"}}]),
            before: |r| {
                r.begin();
                r.ready("a");
            },
            event: |r| r.exit("a", true),
            states: &[("a", S::Completed)],
            then: |r, _| r.m.finished() == Some(End::Finished { failed: 0 }),
        },
        Row {
            rule: "supervision: policy never, a crash after ready is failed and does not halt",
            stack: json!([{"name": "a", "command": "x", "restart": {"policy": "never"}, "health_check": {"tcp": "127.0.0.1:1"}}]),
            before: |r| {
                r.begin();
                r.ready("a");
            },
            event: |r| r.exit("a", false),
            states: &[("a", S::Failed)],
            then: |_, a| !a.iter().any(|x| matches!(x, Action::ShuttingDown(_))),
        },
        Row {
            rule: "supervision: policy on-failure, exit 0 after ready is completed",
            stack: json!([svc("a")]),
            before: |r| {
                r.begin();
                r.ready("a");
            },
            event: |r| r.exit("a", true),
            states: &[("a", S::Completed)],
            then: any,
        },
        Row {
            rule: "supervision: policy on-failure, a crash after ready restarts after the initial delay",
            stack: json!([svc("a")]),
            before: |r| {
                r.begin();
                r.ready("a");
            },
            event: |r| {
                let mut a = r.exit("a", false);
                a.extend(r.stopped("a"));
                a
            },
            states: &[("a", S::Backoff)],
            then: |r, a| {
                let at = armed_backoff(a).expect("a restart is armed");
                at >= r.t + Duration::from_secs(1)
                    && at <= r.t + Duration::from_millis(1100)
                    && a.iter()
                        .any(|x| matches!(x, Action::Metric(Metric::Restart { reason: RestartReason::Exited, .. })))
            },
        },
        Row {
            rule: "supervision: policy always restarts after exit 0 too",
            stack: json!([{"name": "a", "command": "x", "restart": {"policy": "always"}, "health_check": {"tcp": "127.0.0.1:1"}}]),
            before: |r| {
                r.begin();
                r.ready("a");
            },
            event: |r| r.exit("a", true),
            states: &[("a", S::Backoff)],
            then: |r, _| r.m.unit(r.idx("a")).restarts == 1,
        },
        Row {
            rule: "liveness: failure_threshold consecutive failures restart a healthy service",
            stack: json!([{"name": "a", "command": "x", "health_check": {"tcp": "127.0.0.1:1"},
                           "liveness": {"tcp": "127.0.0.1:1", "failure_threshold": 2}}]),
            before: |r| {
                r.begin();
                r.ready("a");
                r.probe("a", Role::Liveness, false);
            },
            event: |r| r.probe("a", Role::Liveness, false),
            states: &[("a", S::Backoff)],
            then: |r, a| {
                stops(a, r, "a")
                    && journals(a, "probe", "liveness_failed")
                    && a.iter().any(|x| matches!(x, Action::Alert { severity: Severity::Warning, .. }))
            },
        },
        Row {
            rule: "liveness: one failure below the threshold changes nothing",
            stack: json!([{"name": "a", "command": "x", "health_check": {"tcp": "127.0.0.1:1"},
                           "liveness": {"tcp": "127.0.0.1:1", "failure_threshold": 2}}]),
            before: |r| {
                r.begin();
                r.ready("a");
            },
            event: |r| r.probe("a", Role::Liveness, false),
            states: &[("a", S::Healthy)],
            then: |r, a| !stops(a, r, "a"),
        },
        Row {
            rule: "restart budget: max_restarts within the window exhausted quarantines and blocks dependents",
            stack: json!([{"name": "a", "command": "x", "restart": {"max_restarts": 1}, "health_check": {"tcp": "127.0.0.1:1"}},
                          {"name": "b", "command": "x", "depends_on": ["a"]}]),
            before: |r| {
                r.begin();
                r.ready("a");
                r.crash("a");
                r.fire(|t| matches!(t, Timer::Backoff { .. }));
                r.ready("a");
            },
            event: |r| {
                let mut a = r.crash("a");
                a.extend(r.stopped("b"));
                a
            },
            states: &[("a", S::Quarantined), ("b", S::Blocked)],
            then: |r, a| {
                a.iter().any(|x| matches!(x, Action::Quarantine { .. }))
                    && a.contains(&Action::Metric(Metric::Quarantined(1)))
                    && r.m.finished() == Some(End::Finished { failed: 1 })
            },
        },
        Row {
            rule: "restart edge: a dependent with restart: true restarts when its dependency is back",
            stack: json!([svc("db"), {"name": "api", "command": "x", "health_check": {"tcp": "127.0.0.1:1"},
                          "depends_on": {"db": {"restart": true}}}]),
            before: |r| {
                r.begin();
                r.ready("db");
                r.ready("api");
                r.crash("db");
                r.fire(|t| matches!(t, Timer::Backoff { .. }));
            },
            event: |r| r.ready("db"),
            states: &[("db", S::Healthy), ("api", S::Backoff)],
            then: |r, a| stops(a, r, "api") && r.m.unit(r.idx("api")).dependency_restarting.is_empty(),
        },
        Row {
            rule: "operator: stop holds the component stopped and keeps the boot alive",
            stack: json!([svc("a")]),
            before: |r| {
                r.begin();
                r.ready("a");
            },
            event: |r| {
                assert_eq!(r.op(Op::Stop, "a"), Ok("stopping a".into()));
                r.stopped("a")
            },
            states: &[("a", S::Stopped)],
            then: |r, _| r.m.finished().is_none(),
        },
        Row {
            rule: "operator: start puts a stopped component back in line with a fresh budget",
            stack: json!([svc("a")]),
            before: |r| {
                r.begin();
                r.ready("a");
                r.op(Op::Stop, "a").unwrap();
                r.stopped("a");
            },
            event: |r| {
                assert_eq!(r.op(Op::Start, "a"), Ok("starting a".into()));
                Vec::new()
            },
            states: &[("a", S::Starting)],
            then: |r, _| r.m.unit(r.idx("a")).attempts == 1,
        },
        Row {
            rule: "operator: restart stops the group and relaunches it at once",
            stack: json!([svc("a")]),
            before: |r| {
                r.begin();
                r.ready("a");
                assert_eq!(r.op(Op::Restart, "a"), Ok("restarting a".into()));
            },
            event: |r| r.stopped("a"),
            states: &[("a", S::Backoff)],
            then: |r, a| armed_backoff(a) == Some(r.t),
        },
        Row {
            rule: "operator: a quarantined component is not started",
            stack: json!([svc("a")]),
            before: |r| {
                r.begin();
                r.step(Event::Ledger(["a".to_owned()].into()));
            },
            event: |r| {
                assert!(r.op(Op::Start, "a").unwrap_err().contains("razar quarantine release a"));
                Vec::new()
            },
            states: &[("a", S::Quarantined)],
            then: any,
        },
        Row {
            rule: "operator: an unknown name is refused with a suggestion",
            stack: json!([svc("api")]),
            before: begin,
            event: |r| {
                assert_eq!(r.op(Op::Stop, "apj"), Err("no component named `apj`; did you mean `api`?".into()));
                Vec::new()
            },
            states: &[("api", S::Starting)],
            then: any,
        },
        Row {
            rule: "ledger: an entry added while running stops the component and blocks its dependents",
            stack: json!([svc("db"), {"name": "api", "command": "x", "depends_on": ["db"]}]),
            before: |r| {
                r.begin();
                r.ready("db");
            },
            event: |r| r.step(Event::Ledger(["db".to_owned()].into())),
            states: &[("db", S::Quarantined), ("api", S::Blocked)],
            then: |r, a| stops(a, r, "db") && stops(a, r, "api"),
        },
        Row {
            rule: "ledger: a released component launches again and its dependents are unblocked",
            stack: json!([svc("db"), {"name": "api", "command": "x", "depends_on": ["db"]}]),
            before: |r| {
                r.begin();
                r.step(Event::Ledger(["db".to_owned()].into()));
                r.stopped("db");
            },
            event: |r| r.step(Event::Ledger(Default::default())),
            states: &[("db", S::Starting), ("api", S::Pending)],
            then: |r, a| launched(a, r, "db"),
        },
        Row {
            rule: "shutdown: dependents stop before their dependencies",
            stack: json!([svc("db"), {"name": "api", "command": "x", "depends_on": ["db"], "health_check": {"tcp": "127.0.0.1:1"}}]),
            before: |r| {
                r.begin();
                r.ready("db");
                r.ready("api");
            },
            event: |r| r.step(Event::Signal(Signal::SIGTERM)),
            states: &[("db", S::Healthy), ("api", S::Healthy)],
            then: |r, a| {
                stops(a, r, "api")
                    && !stops(a, r, "db")
                    && a.contains(&Action::ShuttingDown(End::Signalled(Signal::SIGTERM)))
            },
        },
        Row {
            rule: "shutdown: a dependency stops once its dependents are gone, and the boot ends",
            stack: json!([svc("db"), {"name": "api", "command": "x", "depends_on": ["db"], "health_check": {"tcp": "127.0.0.1:1"}}]),
            before: |r| {
                r.begin();
                r.ready("db");
                r.ready("api");
                r.step(Event::Signal(Signal::SIGTERM));
            },
            event: |r| {
                let a = r.stopped("api");
                assert!(stops(&a, r, "db"));
                r.stopped("db")
            },
            states: &[("db", S::Stopped), ("api", S::Stopped)],
            then: |r, _| r.m.finished() == Some(End::Signalled(Signal::SIGTERM)),
        },
        Row {
            rule: "shutdown: a second signal kills every group at once",
            stack: json!([svc("a")]),
            before: |r| {
                r.begin();
                r.step(Event::Signal(Signal::SIGINT));
            },
            event: |r| r.step(Event::Signal(Signal::SIGINT)),
            states: &[("a", S::Starting)],
            then: |_, a| a.iter().any(|x| matches!(x, Action::Kill { .. })),
        },
        Row {
            rule: "shutdown: a pending backoff becomes stopped and no relaunch follows",
            stack: json!([svc("a")]),
            before: |r| {
                r.begin();
                r.exit("a", false);
                r.stopped("a");
            },
            event: |r| r.step(Event::Signal(Signal::SIGTERM)),
            states: &[("a", S::Stopped)],
            then: |r, _| r.m.finished() == Some(End::Signalled(Signal::SIGTERM)),
        },
        Row {
            rule: "generations: a result of an earlier attempt is dropped",
            stack: json!([svc("a")]),
            before: |r| {
                r.begin();
                r.exit("a", false);
                r.stopped("a");
                r.fire(|t| matches!(t, Timer::Backoff { .. }));
            },
            event: |r| {
                let idx = r.idx("a");
                let result = ProbeResult { ok: true, output: "old".into(), duration: Duration::ZERO };
                r.step(Event::Probe { idx, generation: 1, role: Role::Readiness, result })
            },
            states: &[("a", S::Starting)],
            then: |r, _| r.m.unit(r.idx("a")).generation == 2,
        },
    ]
}

#[test]
fn every_rule_of_the_boot_holds() {
    for row in rows() {
        let mut r = if row.stack.is_object() { rig_with(row.stack.clone(), 1, false) } else { rig(row.stack.clone()) };
        (row.before)(&mut r);
        let actions = (row.event)(&mut r);
        for (name, want) in row.states {
            assert_eq!(r.status(name), *want, "{}: state of {name}\nactions: {actions:#?}", row.rule);
        }
        assert!((row.then)(&r, &actions), "{}: actions\n{actions:#?}", row.rule);
    }
}

/// Healing: the rules of docs/boot.md (Healing), each a rig with two repair rounds.
#[test]
fn every_rule_of_healing_holds() {
    let stack = || {
        json!({"components": [
            {"name": "a", "command": "x", "health_check": {"tcp": "127.0.0.1:1"}},
            {"name": "b", "command": "x", "depends_on": ["a"]}
        ]})
    };
    let heal_actions = |a: &[Action]| a.iter().filter(|x| matches!(x, Action::Heal { .. })).count();
    let promoted = || HealOutcome::Promoted { patch_id: "p1".into(), agent: "kimi2".into() };
    let nothing = || HealOutcome::NotHealed { reason: "no patch".into() };

    // Out of local attempts: round 1 starts, with the last error.
    let mut r = rig_healing(stack(), 1, false, 2, false);
    r.begin();
    let a = r.fail_locally("a");
    assert_eq!(r.status("a"), S::Healing, "{a:#?}");
    assert!(
        a.iter().any(|x| matches!(x, Action::Heal { round: 1, error, .. } if error.contains("status 1"))),
        "{a:#?}"
    );
    assert!(r.m.finished().is_none() && !r.m.units()[r.idx("b")].settled(), "the boot waits for the healing");

    // A round without a verified patch: the next round; after the last, quarantined and halted.
    let a = r.healed("a", nothing());
    assert!(a.iter().any(|x| matches!(x, Action::Heal { round: 2, .. })), "{a:#?}");
    assert!(a.iter().any(|x| matches!(x, Action::Metric(Metric::HealRetry { .. }))), "a second round is a retry");
    let a = r.healed("a", nothing());
    assert!(a.iter().any(|x| matches!(x, Action::Metric(Metric::HealLoop { .. }))), "the loop's duration");
    assert_eq!(r.status("a"), S::Quarantined);
    assert!(a.contains(&Action::ShuttingDown(End::Halted)) && a.contains(&Action::RestoreRoster), "{a:#?}");
    assert!(r.m.unit(r.idx("a")).last_error.as_deref().unwrap().contains("not healed after 2 repair round(s)"));

    // A promoted patch is put on trial: one relaunch; ready keeps it and lets the boot go on.
    let mut r = rig_healing(stack(), 1, false, 2, false);
    r.begin();
    r.fail_locally("a");
    let a = r.healed("a", promoted());
    assert!(launched(&a, &r, "a") && r.status("a") == S::Starting, "{a:#?}");
    let a = r.ready("a");
    assert!(
        a.iter().any(|x| matches!(x, Action::Journal { event: "heal", status, .. } if status == "healed")),
        "{a:#?}"
    );
    assert!(launched(&a, &r, "b") && r.m.unit(r.idx("a")).healing.is_none());

    // A trial relaunch that fails is reverted, and the next round starts once its group is gone.
    let mut r = rig_healing(stack(), 1, false, 2, false);
    r.begin();
    r.fail_locally("a");
    r.healed("a", promoted());
    let mut a = r.exit("a", false);
    assert!(a.iter().any(|x| matches!(x, Action::Revert { patch_id, .. } if patch_id == "p1")), "{a:#?}");
    assert_eq!(heal_actions(&a), 0, "no round while the failed relaunch is still being stopped");
    a = r.stopped("a");
    assert!(a.iter().any(|x| matches!(x, Action::Heal { round: 2, .. })), "{a:#?}");

    // --long-task: rounds go on past --remote-attempts, after a backoff.
    let mut r = rig_healing(stack(), 1, false, 1, true);
    r.begin();
    r.fail_locally("a");
    let a = r.healed("a", nothing());
    assert_eq!(heal_actions(&a), 0);
    assert!(a.iter().any(|x| matches!(x, Action::Arm { timer: Timer::HealRound { round: 2, .. }, .. })), "{a:#?}");
    let a = r.fire(|t| matches!(t, Timer::HealRound { .. }));
    assert!(a.iter().any(|x| matches!(x, Action::Heal { round: 2, .. })), "{a:#?}");

    // A signal during a round cancels it; its late answer changes nothing.
    let a = r.step(Event::Signal(Signal::SIGTERM));
    assert!(a.iter().any(|x| matches!(x, Action::CancelHeal { .. })), "{a:#?}");
    assert_eq!(r.status("a"), S::Stopped);
    let idx = r.idx("a");
    r.step(Event::Healed { idx, round: 2, outcome: promoted() });
    assert_eq!(r.status("a"), S::Stopped);

    // The restart budget exhausted after ready: rounds too, then quarantine without a halt.
    let mut r = rig_healing(
        json!({"components": [{"name": "a", "command": "x", "restart": {"max_restarts": 0}, "health_check": {"tcp": "127.0.0.1:1"}}]}),
        1,
        false,
        1,
        false,
    );
    r.begin();
    r.ready("a");
    let a = r.crash("a");
    assert!(a.iter().any(|x| matches!(x, Action::Heal { round: 1, .. })), "{a:#?}");
    let a = r.healed("a", nothing());
    assert_eq!(r.status("a"), S::Quarantined);
    assert!(!a.iter().any(|x| matches!(x, Action::ShuttingDown(_))), "supervision failures never halt: {a:#?}");
}

/// The dispatcher carries out launches in batches: a shutdown may overtake one.
#[test]
fn a_launch_overtaken_by_shutdown_leaves_the_component_stopped() {
    let mut r = rig(json!([{"name": "a", "command": "x", "health_check": {"tcp": "127.0.0.1:1"}}]));
    let now = Now { mono: Duration::ZERO, epoch: 0.0 };
    let out = r.m.step(Event::Begin, now);
    let Some(&Action::Launch { idx, generation, .. }) = out.iter().find(|a| matches!(a, Action::Launch { .. })) else {
        panic!("{out:#?}")
    };
    r.m.step(Event::Signal(Signal::SIGTERM), now);
    assert!(r.m.finished().is_some_and(|e| e == End::Signalled(Signal::SIGTERM)), "no group runs");
    r.m.step(Event::LaunchDropped { idx, generation }, now);
    assert_eq!(r.status("a"), S::Stopped);
}
