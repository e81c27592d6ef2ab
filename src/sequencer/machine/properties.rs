//! Random event sequences against the machine, with a model of the processes it launched:
//! whatever happens, no component is both at rest and running, nothing launches before its
//! dependencies are satisfied, no restart budget is exceeded, every group is stopped once,
//! and a boot never ends with a process of the stack still running.

use std::collections::BTreeSet;
use std::time::Duration;

use nix::sys::signal::Signal;
use proptest::prelude::*;
use serde_json::json;

use super::tests::{Rig, rig_healing};
use super::*;
use crate::state::ComponentStatus as S;

/// The stack: a service with liveness, a dependent with a restart edge, a task and its
/// dependent, a log-probed worker, a higher tier.
fn stack() -> Rig {
    rig_healing(
        json!({"on_failure": "continue", "components": [
            {"name": "db", "command": "x", "priority": 1, "health_check": {"tcp": "127.0.0.1:1"},
             "liveness": {"tcp": "127.0.0.1:1", "failure_threshold": 2},
             "restart": {"max_restarts": 2, "window": "1m"}},
            {"name": "api", "command": "x", "priority": 1, "health_check": {"tcp": "127.0.0.1:1"},
             "depends_on": {"db": {"restart": true}}, "restart": {"max_restarts": 1, "policy": "always"}},
            {"name": "mig", "command": "x", "kind": "task", "priority": 1},
            {"name": "worker", "command": "x", "priority": 1, "health_check": {"log": "^ready"},
             "depends_on": {"mig": {"condition": "completed_successfully"}}},
            {"name": "late", "command": "x", "priority": 2, "health_check": {"tcp": "127.0.0.1:1"},
             "depends_on": {"api": {"condition": "started", "timeout": "30s"}}}
        ]}),
        1,
        false,
        1,
        false,
    )
}

/// What the test's world holds besides the machine: live main processes, pending stops and
/// armed timers.
#[derive(Default)]
struct World {
    live: BTreeSet<(usize, u64)>,
    stops: Vec<(usize, u64)>,
    timers: Vec<(Duration, Timer)>,
    /// Repair rounds under way.
    heals: Vec<(usize, u32)>,
}

impl World {
    /// Applies an event and answers launches at once (as the dispatcher does), checking the
    /// invariants after every step.
    fn step(&mut self, r: &mut Rig, event: Event) {
        let mut queue = vec![event];
        while let Some(e) = queue.pop() {
            let now = Now { mono: r.t, epoch: r.t.as_secs_f64() };
            let actions = r.m.step(e, now);
            for a in &actions {
                match *a {
                    Action::Launch { idx, generation, .. } => {
                        check_may_launch(r, idx);
                        let pid = 1000 + idx as u32;
                        self.live.insert((idx, generation));
                        queue.insert(0, Event::Launched { idx, generation, pid, pgid: pid as i32, start_time: None });
                    }
                    Action::Stop { idx, generation, .. } => {
                        assert!(
                            !self.stops.iter().any(|&(i, _)| i == idx),
                            "a second stop for {idx} while one is under way"
                        );
                        self.stops.push((idx, generation));
                    }
                    Action::Arm { at, timer } => self.timers.push((at, timer)),
                    Action::Heal { idx, round, .. } => self.heals.push((idx, round)),
                    Action::CancelHeal { idx } => self.heals.retain(|&(i, _)| i != idx),
                    _ => {}
                }
            }
        }
        // The dispatcher answers launches within the same turn: the invariants hold between
        // turns.
        check_invariants(r, self);
    }
}

fn check_may_launch(r: &Rig, idx: usize) {
    for edge in &r.m.plan.deps[idx] {
        assert!(r.m.units[edge.on].satisfies(edge.condition), "{idx} launched before its dependency {}", edge.on);
    }
    if let Some(k) = r.m.plan.tier[idx] {
        assert!(r.m.settled_tiers()[k], "{idx} launched before the lower tiers settled");
    }
}

fn check_invariants(r: &Rig, w: &World) {
    for (idx, u) in r.m.units().iter().enumerate() {
        let at_rest = matches!(
            u.status(),
            S::Stopped | S::Failed | S::Blocked | S::Quarantined | S::Disabled | S::Downtime | S::Completed
        );
        let running = matches!(&u.group, Group::Up(p) if !p.exited);
        assert!(!(at_rest && running), "{} is {:?} while its process runs unstopped", u.cfg.name, u.status());
        if let Some(s) = &u.supervised {
            assert!(
                s.restart_times.len() as u32 <= u.cfg.restart.max_restarts,
                "{} exceeded its restart budget: {:?}",
                u.cfg.name,
                s.restart_times
            );
        }
        if w.live.iter().any(|&(i, g)| i == idx && g == u.generation) {
            assert!(u.group != Group::None, "{}: its process runs but the machine lost its group", u.cfg.name);
        }
    }
    if r.m.finished().is_some() {
        assert!(w.live.is_empty(), "the boot ended with processes running: {:?}", w.live);
    }
}

/// One random thing that can happen.
#[derive(Debug, Clone)]
enum Move {
    Exit(usize, bool),
    Probe(usize, Role, bool),
    Line(usize, Option<bool>),
    Fire(usize),
    Stopped(usize, bool),
    Op(Op, usize),
    Ledger(Vec<bool>),
    Signal,
    Wait(u64),
    Healed(usize, bool),
}

fn moves() -> impl Strategy<Value = Move> {
    prop_oneof![
        3 => (0..5usize, any::<bool>()).prop_map(|(c, ok)| Move::Exit(c, ok)),
        4 => (0..5usize, any::<bool>(), any::<bool>())
            .prop_map(|(c, live, ok)| Move::Probe(c, if live { Role::Liveness } else { Role::Readiness }, ok)),
        2 => (0..5usize, proptest::option::of(any::<bool>())).prop_map(|(c, l)| Move::Line(c, l)),
        4 => (0..8usize).prop_map(Move::Fire),
        4 => (0..4usize, any::<bool>()).prop_map(|(k, exit_first)| Move::Stopped(k, exit_first)),
        2 => (0..3u8, 0..5usize).prop_map(|(o, c)| Move::Op([Op::Restart, Op::Stop, Op::Start][o as usize], c)),
        1 => proptest::collection::vec(proptest::bool::weighted(0.2), 5).prop_map(Move::Ledger),
        1 => Just(Move::Signal),
        2 => (0..20_000u64).prop_map(Move::Wait),
        2 => (0..4usize, any::<bool>()).prop_map(|(k, ok)| Move::Healed(k, ok)),
    ]
}

fn play(r: &mut Rig, w: &mut World, m: Move) {
    match m {
        Move::Exit(idx, ok) => {
            let generation = r.m.units[idx].generation;
            if w.live.remove(&(idx, generation)) {
                let text = if ok { "exited 0" } else { "exited with status 1" }.to_owned();
                w.step(r, Event::Exited { idx, generation, ok, text, group_alive: false });
            }
        }
        Move::Probe(idx, role, ok) => {
            let generation = r.m.units[idx].generation;
            let result = ProbeResult { ok, output: String::new(), duration: Duration::ZERO };
            w.step(r, Event::Probe { idx, generation, role, result });
        }
        Move::Line(idx, line) => {
            let generation = r.m.units[idx].generation;
            let line = line.map(|ready| if ready { "ready".to_owned() } else { "noise".to_owned() });
            w.step(r, Event::Output { idx, generation, line });
        }
        Move::Fire(k) => {
            w.timers.sort_by_key(|(at, _)| *at);
            if let Some(k) = (!w.timers.is_empty()).then(|| k % w.timers.len()) {
                let (at, timer) = w.timers.remove(k);
                r.t = r.t.max(at);
                w.step(r, Event::Timer(timer));
            }
        }
        Move::Stopped(k, exit_first) => {
            if w.stops.is_empty() {
                return;
            }
            let (idx, generation) = w.stops.remove(k % w.stops.len());
            let exit = |w: &mut World, r: &mut Rig| {
                if w.live.remove(&(idx, generation)) {
                    let text = "killed by SIGTERM".to_owned();
                    w.step(r, Event::Exited { idx, generation, ok: false, text, group_alive: true });
                }
            };
            if exit_first {
                exit(w, r);
            }
            // The group is verified gone: its main process is dead, its exit not yet reported.
            let was_live = w.live.remove(&(idx, generation));
            let outcome = crate::supervise::terminate::StopOutcome::Exited;
            w.step(r, Event::Stopped { idx, generation, outcome });
            if was_live {
                let text = "killed by SIGTERM".to_owned();
                w.step(r, Event::Exited { idx, generation, ok: false, text, group_alive: false });
            }
        }
        Move::Op(op, idx) => {
            let component = r.m.units[idx].cfg.name.to_string();
            w.step(r, Event::Operator { op, component });
        }
        Move::Ledger(which) => {
            let names = which.iter().enumerate().filter(|(_, q)| **q).map(|(i, _)| r.m.units[i].cfg.name.to_string());
            w.step(r, Event::Ledger(names.collect()));
        }
        Move::Signal => w.step(r, Event::Signal(Signal::SIGTERM)),
        Move::Wait(ms) => r.t += Duration::from_millis(ms),
        Move::Healed(k, ok) => {
            if w.heals.is_empty() {
                return;
            }
            let (idx, round) = w.heals.remove(k % w.heals.len());
            let outcome = if ok {
                HealOutcome::Promoted { patch_id: format!("p{round}"), agent: "a".into() }
            } else {
                HealOutcome::NotHealed { reason: "no patch".into() }
            };
            w.step(r, Event::Healed { idx, round, outcome });
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_event_sequences_keep_the_invariants(seq in proptest::collection::vec(moves(), 1..120)) {
        let mut r = stack();
        let mut w = World::default();
        w.step(&mut r, Event::Begin);
        for m in seq {
            play(&mut r, &mut w, m);
        }
        // Whatever happened, a signal and answering every stop ends the boot with nothing left.
        w.step(&mut r, Event::Signal(Signal::SIGTERM));
        for _ in 0..50 {
            if w.stops.is_empty() {
                break;
            }
            play(&mut r, &mut w, Move::Stopped(0, true));
        }
        prop_assert!(r.m.finished().is_some(), "the boot did not end after a signal and every stop answered");
    }
}
