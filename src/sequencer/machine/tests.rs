//! The test rig of the machine: a config, a clock the test moves, helpers that play the
//! dispatcher's part (answering launches, stops and timers).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::config::{self, load::NoEnv};
use crate::state::ComponentStatus as S;

/// A machine under test, with a clock the test moves.
pub(super) struct Rig {
    pub m: Machine,
    pub t: Duration,
    /// Every action so far, in order.
    pub log: Vec<Action>,
    next_pid: u32,
}

pub(super) fn rig(components: Value) -> Rig {
    rig_with(json!({ "components": components }), 1, false)
}

pub(super) fn rig_with(cfg: Value, retries: u32, keep_going: bool) -> Rig {
    rig_healing(cfg, retries, keep_going, 0, false)
}

/// A rig whose failures go to `heal_rounds` repair rounds (`long_task`: and on).
pub(super) fn rig_healing(cfg: Value, retries: u32, keep_going: bool, heal_rounds: u32, long_task: bool) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("c.json");
    std::fs::write(&f, cfg.to_string()).unwrap();
    let cfg = config::load(&f, dir.path(), &NoEnv).unwrap();
    let settings = Settings { retries, keep_going, jobs: cfg.jobs, seed: 7, heal_rounds, long_task };
    Rig { m: Machine::new(Arc::new(cfg), settings), t: Duration::ZERO, log: Vec::new(), next_pid: 100 }
}

impl Rig {
    pub(super) fn idx(&self, name: &str) -> usize {
        self.m.index(name).unwrap_or_else(|| panic!("no component {name}"))
    }

    pub(super) fn status(&self, name: &str) -> S {
        self.m.unit(self.idx(name)).status()
    }

    pub(super) fn generation(&self, name: &str) -> u64 {
        self.m.unit(self.idx(name)).generation
    }

    /// One event at the rig's time; launches are answered at once, as the dispatcher does.
    pub(super) fn step(&mut self, event: Event) -> Vec<Action> {
        let now = Now { mono: self.t, epoch: 1_700_000_000.0 + self.t.as_secs_f64() };
        let mut out = Vec::new();
        let mut queue = vec![event];
        while let Some(e) = queue.pop() {
            for a in self.m.step(e, now) {
                if let Action::Launch { idx, generation, .. } = a {
                    self.next_pid += 1;
                    let pid = self.next_pid;
                    queue.insert(0, Event::Launched { idx, generation, pid, pgid: pid as i32, start_time: Some(1) });
                }
                out.push(a);
            }
        }
        self.log.extend(out.clone());
        out
    }

    pub(super) fn begin(&mut self) -> Vec<Action> {
        self.step(Event::Begin)
    }

    pub(super) fn exit(&mut self, name: &str, ok: bool) -> Vec<Action> {
        let (idx, generation) = (self.idx(name), self.generation(name));
        let text = if ok { "exited 0" } else { "exited with status 1" }.to_owned();
        self.step(Event::Exited { idx, generation, ok, text, group_alive: false })
    }

    /// The main process fails and its group is then verified gone.
    pub(super) fn crash(&mut self, name: &str) -> Vec<Action> {
        let mut out = self.exit(name, false);
        out.extend(self.stopped(name));
        out
    }

    pub(super) fn probe(&mut self, name: &str, role: Role, ok: bool) -> Vec<Action> {
        let (idx, generation) = (self.idx(name), self.generation(name));
        let result = ProbeResult { ok, output: if ok { "up" } else { "down" }.into(), duration: Duration::ZERO };
        self.step(Event::Probe { idx, generation, role, result })
    }

    pub(super) fn ready(&mut self, name: &str) -> Vec<Action> {
        self.probe(name, Role::Readiness, true)
    }

    pub(super) fn line(&mut self, name: &str, line: Option<&str>) -> Vec<Action> {
        let (idx, generation) = (self.idx(name), self.generation(name));
        self.step(Event::Output { idx, generation, line: line.map(str::to_owned) })
    }

    /// The group of `name` is gone (answers its `Stop`).
    pub(super) fn stopped(&mut self, name: &str) -> Vec<Action> {
        let (idx, generation) = (self.idx(name), self.generation(name));
        self.step(Event::Stopped { idx, generation, outcome: StopOutcome::Exited })
    }

    /// Fires the latest armed timer matching `pick`, at its time.
    pub(super) fn fire(&mut self, pick: impl Fn(&Timer) -> bool) -> Vec<Action> {
        let (at, timer) = self
            .log
            .iter()
            .rev()
            .find_map(|a| match a {
                Action::Arm { at, timer } if pick(timer) => Some((*at, *timer)),
                _ => None,
            })
            .expect("no such timer armed");
        self.t = self.t.max(at);
        self.step(Event::Timer(timer))
    }

    /// Answers the repair round under way.
    pub(super) fn healed(&mut self, name: &str, outcome: HealOutcome) -> Vec<Action> {
        let idx = self.idx(name);
        let Life::Healing { round } = self.m.unit(idx).life else { panic!("{name} is not healing") };
        self.step(Event::Healed { idx, round, outcome })
    }

    /// Fails every local attempt of `name` (retries 1: two attempts).
    pub(super) fn fail_locally(&mut self, name: &str) -> Vec<Action> {
        self.crash(name);
        self.fire(|t| matches!(t, Timer::Backoff { .. }));
        self.crash(name)
    }

    pub(super) fn op(&mut self, op: Op, name: &str) -> Result<String, String> {
        let out = self.step(Event::Operator { op, component: name.into() });
        out.into_iter()
            .find_map(|a| match a {
                Action::Reply(r) => Some(r),
                _ => None,
            })
            .expect("an operator request is answered")
    }
}

#[test]
fn nothing_launches_before_begin() {
    let mut r = rig(json!([{"name": "a", "command": "x"}]));
    let idx = r.idx("a");
    let out = r.step(Event::Adopt { idx, pid: 5, pgid: 5, start_time: 1, ready_at: None });
    assert!(!out.contains(&Action::Ready), "ready is announced only after Begin: {out:?}");
    assert_eq!(r.status("a"), S::Healthy);
    assert!(r.begin().contains(&Action::Ready));
}
