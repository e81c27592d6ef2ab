//! Bringing components up: scheduling by dependencies, tiers and `--jobs`; launches; probe
//! verdicts and exits while starting; local retries; stops; timers.

use std::time::Duration;

use serde_json::json;
use tracing::Level;

use super::{
    Action, AfterStop, Group, Life, Machine, Metric, ProbeResult, Proc, Role, Start, Supervised, Timer, Wait,
    condition_word, stop_word,
};
use crate::config::{Kind, ProbeKind};
use crate::probe::policy::{self, Verdict};
use crate::sequencer::backoff::local_retry_delay;
use crate::state::ComponentStatus as S;
use crate::supervise::terminate::StopOutcome;

/// Dependencies named in a component's `waiting_for` (and its log line); the rest are counted.
const SHOWN_DEPENDENCIES: usize = 5;

/// How long a log probe's output may take to drain after its process exited non-zero.
pub(super) const EXIT_SETTLE: Duration = Duration::from_millis(500);

/// Whether a waiting component may launch.
pub(super) enum DepState {
    Ready,
    Waiting(Wait),
    Blocked(Vec<String>),
}

impl Machine {
    pub(super) fn begin(&mut self) {
        self.begun = true;
        self.quarantine_gauge();
        self.journal("boot", None, "launching", None);
        for idx in 0..self.plan.deps.len() {
            for e in 0..self.plan.deps[idx].len() {
                if let Some(at) = self.plan.deps[idx][e].timeout {
                    // Measured from the start of the boot.
                    self.emit(Action::Arm { at, timer: Timer::DependencyTimeout { idx, edge: e } });
                }
            }
        }
    }

    /// Takes over a component still running from an earlier boot: it counts as healthy, and
    /// its liveness probe runs as usual.
    pub(super) fn adopt(&mut self, idx: usize, pid: u32, pgid: i32, start_time: u64, ready_at: Option<String>) {
        let u = &mut self.units[idx];
        u.generation += 1;
        u.life = Life::Healthy { liveness: Default::default() };
        u.supervised = Some(Supervised::default());
        u.ready_at = ready_at;
        u.group = Group::Up(Proc { pid, pgid, start_time: Some(start_time), exited: false, detached: true });
        self.up(idx, true);
        self.watch_liveness(idx);
        self.log(Level::INFO, format!("{}: adopted from the previous boot (pid {pid})", self.name(idx)));
        self.journal("adopt", Some(idx), "healthy", Some(json!({"pid": pid})));
    }

    pub(super) fn schedule(&mut self) {
        let settled_below = self.settled_tiers();
        let mut starting = self.units.iter().filter(|u| u.status() == S::Starting).count();
        // A pending component is re-examined in full only when the edge it was last seen
        // waiting on is satisfied or its dependency dead, or when any component died or came
        // back: schedule runs after every event, and a wide DAG has many pending components
        // with many edges each.
        let dead: Vec<bool> = self.units.iter().map(super::Unit::is_dead).collect();
        let deaths_changed = dead != self.dead;
        self.dead = dead;
        self.witness.resize(self.units.len(), None);
        for idx in 0..self.units.len() {
            // A unit whose previous process group is still being stopped waits for it to go.
            if self.units[idx].status() != S::Pending || self.units[idx].group != Group::None {
                continue;
            }
            if !deaths_changed && self.still_waits(idx) {
                continue;
            }
            let state = self.readiness_of_deps(idx, &settled_below);
            self.witness[idx] = match &state {
                DepState::Waiting(Wait::Deps { on, .. }) => on
                    .first()
                    .and_then(|&(d, c)| self.plan.deps[idx].iter().position(|e| e.on == d && e.condition == c)),
                _ => None,
            };
            match state {
                DepState::Blocked(by) => {
                    let unit = &mut self.units[idx];
                    unit.last_error = Some(format!("blocked: {} did not come up", by.join(", ")));
                    let details = json!({"blocked_by": by});
                    let message = format!("{}: blocked by {}", unit.cfg.name, by.join(", "));
                    unit.life = Life::Blocked { by };
                    self.log(Level::WARN, message);
                    self.journal("blocked", Some(idx), "blocked", Some(details));
                }
                DepState::Waiting(wait) => {
                    if let Life::Pending { waiting } = &mut self.units[idx].life
                        && waiting.as_ref() != Some(&wait)
                    {
                        // Only a change is logged (and costs a line of text).
                        let message =
                            format!("{}: waiting for {}", self.units[idx].cfg.name, self.describe(&wait, false));
                        if let Life::Pending { waiting } = &mut self.units[idx].life {
                            *waiting = Some(wait);
                        }
                        self.log(Level::INFO, message);
                    }
                }
                DepState::Ready => {
                    if let Some(jobs) = self.settings.jobs.filter(|&j| starting >= j) {
                        if let Life::Pending { waiting } = &mut self.units[idx].life {
                            *waiting = Some(Wait::Slot(jobs));
                        }
                        continue;
                    }
                    starting += 1;
                    self.launch(idx);
                }
            }
        }
        if !self.ready_announced && self.units.iter().all(super::unit::Unit::settled) {
            self.ready_announced = true;
            self.emit(Action::Ready);
        }
    }

    /// `settled[k]`: every tier below `k` has settled.
    pub(super) fn settled_tiers(&self) -> Vec<bool> {
        let mut out = Vec::with_capacity(self.plan.tiers.len());
        let mut all_below = true;
        for members in &self.plan.tiers {
            out.push(all_below);
            all_below &= members.iter().all(|&m| self.units[m].settled());
        }
        out
    }

    /// The edge `idx` was last seen waiting on still holds it back (its dependency neither
    /// satisfies it nor is dead): nothing to decide yet.
    fn still_waits(&self, idx: usize) -> bool {
        // Only after a full look since it became pending (which also records what it waits for).
        let Life::Pending { waiting: Some(Wait::Deps { .. }) } = &self.units[idx].life else { return false };
        let Some(e) = self.witness.get(idx).copied().flatten() else { return false };
        let edge = &self.plan.deps[idx][e];
        let dep = &self.units[edge.on];
        !dep.satisfies(edge.condition) && !dep.is_dead()
    }

    /// What `idx` waits for, decided without building any text: schedule runs after every
    /// event, and a thousand pending components would otherwise format their reasons each time.
    pub(super) fn readiness_of_deps(&self, idx: usize, settled_below: &[bool]) -> DepState {
        let mut blocked = Vec::new();
        let mut on = Vec::new();
        for edge in &self.plan.deps[idx] {
            let dep = &self.units[edge.on];
            if dep.satisfies(edge.condition) {
                continue;
            }
            if dep.is_dead() {
                blocked.push(dep.cfg.name.to_string());
            } else {
                on.push((edge.on, edge.condition));
            }
        }
        if !blocked.is_empty() {
            return DepState::Blocked(blocked);
        }
        let tier =
            self.plan.tier[idx].filter(|&k| !settled_below[k]).map(|_| self.cfg.components[idx].priority.unwrap_or(0));
        if on.is_empty() && tier.is_none() { DepState::Ready } else { DepState::Waiting(Wait::Deps { on, tier }) }
    }

    /// `wait` as text: who is waited for, and with `progress` how their probes are doing (the
    /// state file's `waiting_for`).
    pub(super) fn describe(&self, wait: &Wait, progress: bool) -> String {
        let (on, tier) = match wait {
            Wait::Slot(jobs) => return format!("a free slot (--jobs {jobs})"),
            Wait::Deps { on, tier } => (on, tier),
        };
        let open: Vec<(usize, crate::config::Condition)> = on
            .iter()
            // What was waited for when last decided, less what has come since.
            .filter(|&&(d, condition)| !self.units[d].satisfies(condition))
            .copied()
            .collect();
        let mut parts: Vec<String> = open
            .iter()
            .take(SHOWN_DEPENDENCIES)
            .map(|&(d, condition)| {
                let dep = &self.units[d];
                let probe = dep
                    .cfg
                    .health_check
                    .as_ref()
                    .filter(|_| progress)
                    .map(|p| {
                        if let ProbeKind::Log(re) = &p.kind {
                            return format!(" (no line matching /{}/ yet)", re.as_str());
                        }
                        let last = dep.last_probe.as_ref().map_or("not probed yet", |(_, o)| o.as_str());
                        let n = match &dep.life {
                            Life::Starting(s) => s.tracker.attempts,
                            _ => 0,
                        };
                        format!(" ({}: {}, {n} probe{})", p.kind, last, if n == 1 { "" } else { "s" })
                    })
                    .unwrap_or_default();
                format!("{} {}{probe}", dep.cfg.name, condition_word(condition))
            })
            .collect();
        if open.len() > SHOWN_DEPENDENCIES {
            parts.push(format!("and {} more", open.len() - SHOWN_DEPENDENCIES));
        }
        if let Some(priority) = tier {
            parts.push(format!("every component with priority < {priority}"));
        }
        parts.join(", ")
    }

    pub(super) fn launch(&mut self, idx: usize) {
        let now = self.now.mono;
        let u = &mut self.units[idx];
        u.generation += 1;
        if !u.ever_ready() {
            u.attempts += 1;
        }
        u.life = Life::Starting(Start::default());
        u.first_launch.get_or_insert(now);
        let (generation, attempt) = (u.generation, u.attempts);
        let message = format!("{}: starting (attempt {attempt}): {}", u.cfg.name, u.cfg.command);
        self.log(Level::INFO, message);
        self.emit(Action::Launch { idx, generation, attempt });
    }

    /// The launched process runs: watch it become ready.
    pub(super) fn launched(&mut self, idx: usize, generation: u64, proc: Proc) {
        let u = &mut self.units[idx];
        if u.generation != generation {
            return;
        }
        if u.status() != S::Starting {
            // Stopped before its launch was answered: the new group goes at once.
            u.group = Group::Up(proc);
            self.stop_unit(idx, AfterStop::Nothing);
            return;
        }
        let (attempt, pid) = (u.attempts, proc.pid);
        u.group = Group::Up(proc);
        let cfg = u.cfg.clone();
        if let (Some(ProbeKind::Log(_)), Life::Starting(s)) = (cfg.health_check.as_ref().map(|p| &p.kind), &mut u.life)
        {
            s.log_pending = true;
        }
        self.journal("launch", Some(idx), "start", Some(json!({"attempt": attempt, "pid": pid})));
        if let Some(probe) = &cfg.health_check {
            self.emit(Action::Watch { idx, generation, role: Role::Readiness });
            let budget = cfg.ready_timeout.unwrap_or_else(|| {
                policy::default_ready_budget(probe.initial_delay, probe.period, probe.failure_threshold)
            });
            self.arm(budget, Timer::ReadyDeadline { idx, generation });
        } else if let Some(t) = cfg.ready_timeout {
            self.arm(t, Timer::ReadyDeadline { idx, generation });
        }
    }

    /// A launch the stack's shutdown overtook: nothing was started.
    pub(super) fn launch_dropped(&mut self, idx: usize, generation: u64) {
        let u = &mut self.units[idx];
        if u.generation == generation && u.status() == S::Starting && u.group == Group::None {
            u.life = Life::Stopped { by_operator: false };
            self.emit(Action::Unwatch { idx });
        }
    }

    pub(super) fn launch_failed(&mut self, idx: usize, generation: u64, error: String, lasting: bool) {
        if self.units[idx].generation != generation || self.units[idx].status() != S::Starting {
            return;
        }
        if lasting {
            // A broken layer fails the same way every time: no local retries.
            self.units[idx].attempts = self.settings.retries + 1;
            self.attempt_failed(idx, error);
        } else {
            let attempt = self.units[idx].attempts;
            self.journal("launch", Some(idx), "error", Some(json!({"attempt": attempt, "error": error})));
            self.attempt_failed(idx, format!("spawn failed: {error}"));
        }
    }

    pub(super) fn on_exit(&mut self, idx: usize, generation: u64, ok: bool, text: String, group_alive: bool) {
        let u = &mut self.units[idx];
        if u.generation != generation {
            return;
        }
        let (Group::Up(proc) | Group::Stopping(proc, _)) = &mut u.group else { return };
        proc.exited = true;
        if let Life::Starting(s) = &mut u.life {
            s.exit = Some((ok, text.clone()));
        }
        self.journal("exit", Some(idx), if ok { "ok" } else { "error" }, Some(json!({"status": text})));
        if self.units[idx].stopping() {
            return;
        }
        let unit = &self.units[idx];
        match (&unit.life, unit.cfg.kind, ok) {
            (Life::Starting(_), Kind::Task, true) => self.became_ready(idx),
            // The ready line may still be in the pipe: let the output drain decide first.
            (Life::Starting(s), _, false) if s.log_pending => {
                self.arm(EXIT_SETTLE, Timer::ExitSettle { idx, generation });
            }
            (Life::Starting(_), _, false) => self.attempt_failed(idx, format!("{text} before becoming ready")),
            // A service that exits 0 while starting is judged by its probe (the seed form:
            // a command that prints and exits, checked by a separate health command).
            (Life::Starting(_), Kind::Service, true) => {}
            (Life::Healthy { .. }, _, _) => self.supervised_exit(idx, ok, text),
            _ => {}
        }
        // The group ends with its main process: stragglers it left behind are stopped.
        if self.units[idx].stopping() {
            return;
        }
        if group_alive && self.units[idx].group != Group::None {
            self.stop_unit(idx, AfterStop::Nothing);
        } else {
            self.units[idx].group = Group::None;
        }
    }

    pub(super) fn on_probe(&mut self, idx: usize, generation: u64, result: ProbeResult) {
        let unit = &mut self.units[idx];
        let (Life::Starting(start), Some(probe)) = (&mut unit.life, unit.cfg.health_check.as_ref()) else { return };
        if unit.generation != generation {
            return;
        }
        let kind = probe.kind.name();
        // While starting, failures only count towards progress: the ready deadline decides.
        let verdict = start.tracker.observe(result.ok, probe.success_threshold, u32::MAX);
        unit.last_probe = Some((result.ok, result.output));
        let component = unit.cfg.name.to_string();
        self.metric(Metric::Probe { component, kind, duration: result.duration, ok: result.ok });
        if verdict == Verdict::Pass {
            self.became_ready(idx);
        }
    }

    /// A line of a starting component's output, or its end, while a log probe listens.
    pub(super) fn on_output(&mut self, idx: usize, generation: u64, line: Option<String>) {
        let unit = &mut self.units[idx];
        let Some(ProbeKind::Log(re)) = unit.cfg.health_check.as_ref().map(|p| &p.kind) else { return };
        let Life::Starting(start) = &mut unit.life else { return };
        if unit.generation != generation || !start.log_pending {
            return;
        }
        match line {
            Some(line) if re.is_match(&line) => {
                start.log_pending = false;
                start.tracker.observe(true, 1, u32::MAX);
                let exit = start.exit.clone();
                unit.last_probe = Some((true, line));
                self.became_ready(idx);
                // It printed its ready line and then died: a supervised failure, not a failed start.
                if let Some((false, text)) = exit {
                    self.supervised_exit(idx, false, text);
                }
            }
            Some(_) => {}
            None => {
                start.log_pending = false;
                if let Some((false, text)) = &start.exit {
                    let why = format!("{text} before becoming ready");
                    self.attempt_failed(idx, why);
                } else {
                    let why = format!("output ended without a line matching /{}/", re.as_str());
                    unit.last_probe = Some((false, why.clone()));
                    self.attempt_failed(idx, why);
                }
            }
        }
    }

    pub(super) fn became_ready(&mut self, idx: usize) {
        let now = self.now;
        let unit = &mut self.units[idx];
        let secs = unit.first_launch.map_or(0.0, |t| now.mono.saturating_sub(t).as_secs_f64());
        unit.ready_at = Some(crate::clock::iso(now.epoch));
        unit.ready_seconds = Some(secs);
        let exited = match &unit.life {
            Life::Starting(s) => s.exit.as_ref().map(|(ok, _)| *ok),
            _ => None,
        };
        // A task without a probe becomes ready by exiting 0; one with a probe is healthy while
        // it runs and completes when it exits 0.
        unit.life = if exited == Some(true) { Life::Completed } else { Life::Healthy { liveness: Default::default() } };
        let status = unit.status();
        // The restart window carries over; only the restart in progress ends here.
        let was_restarting = std::mem::take(&mut unit.supervised.get_or_insert_with(Supervised::default).restarting);
        let attempts = unit.attempts;
        self.emit(Action::Unwatch { idx });
        if status == S::Healthy {
            self.watch_liveness(idx);
        }
        let name = self.name(idx);
        for d in self.plan.dependents[idx].clone() {
            self.units[d].dependency_restarting.retain(|n| *n != name);
        }
        if was_restarting {
            self.restart_edge_dependents(idx);
        }
        self.healed(idx);
        self.metric(Metric::Up { component: name.clone(), up: true });
        self.metric(Metric::Ready { component: name.clone(), after: Duration::from_secs_f64(secs) });
        self.log(Level::INFO, format!("{name}: {} after {secs:.2}s (attempt {attempts})", status.as_str()));
        self.journal("ready", Some(idx), status.as_str(), Some(json!({"seconds": secs, "attempt": attempts})));
    }

    pub(super) fn attempt_failed(&mut self, idx: usize, reason: String) {
        if self.trial_failed(idx, &reason) {
            self.units[idx].last_error = Some(reason);
            self.units[idx].life = Life::Unhealthy;
            self.emit(Action::Unwatch { idx });
            self.stop_then(idx, AfterStop::Fail);
            return;
        }
        if self.units[idx].ever_ready() {
            // A restarted component that fails to come back is one more supervised failure.
            self.restart(idx, "not ready after restart", reason);
            return;
        }
        let attempts = self.units[idx].attempts;
        let retry = attempts <= self.settings.retries && self.shutdown.is_none();
        let unit = &mut self.units[idx];
        unit.last_error = Some(reason.clone());
        unit.life = if retry { Life::Backoff } else { Life::Unhealthy };
        self.emit(Action::Unwatch { idx });
        self.log(Level::WARN, format!("{}: attempt {attempts} failed: {reason}", self.name(idx)));
        self.journal("failure", Some(idx), "attempt_failed", Some(json!({"attempt": attempts, "error": reason})));
        let after = if retry { AfterStop::Retry } else { AfterStop::Fail };
        self.stop_then(idx, after);
    }

    /// Stops the unit's group, then does `after`; at once when no group is left.
    pub(super) fn stop_then(&mut self, idx: usize, after: AfterStop) {
        if self.units[idx].group != Group::None {
            self.stop_unit(idx, after);
        } else {
            self.after_stopped(idx, after);
        }
    }

    pub(super) fn after_stopped(&mut self, idx: usize, after: AfterStop) {
        let generation = self.units[idx].generation;
        match after {
            AfterStop::Nothing => {}
            AfterStop::Retry if self.shutdown.is_none() => {
                let attempts = self.units[idx].attempts;
                let delay = local_retry_delay(attempts);
                self.units[idx].life = Life::Backoff;
                self.log(Level::INFO, format!("{}: retrying in {}s", self.name(idx), delay.as_secs()));
                let details = json!({"delay_seconds": delay.as_secs_f64(), "next_attempt": attempts + 1});
                self.journal("retry", Some(idx), "backoff", Some(details));
                self.arm(delay, Timer::Backoff { idx, generation });
            }
            AfterStop::Restart(delay) if self.shutdown.is_none() => {
                self.units[idx].life = Life::Backoff;
                self.arm(delay, Timer::Backoff { idx, generation });
            }
            AfterStop::Retry | AfterStop::Restart(_) => self.units[idx].life = Life::Stopped { by_operator: false },
            AfterStop::Fail | AfterStop::Quarantine => self.exhausted(idx),
        }
    }

    /// Failed for good without a repair (a dependency that never came, a failure during
    /// shutdown): `failed`, and the boot halts when it cannot do without it.
    pub(super) fn final_failure(&mut self, idx: usize) {
        let name = self.name(idx);
        self.units[idx].life = Life::Failed;
        let attempts = self.units[idx].attempts;
        let error = self.units[idx].last_error.clone().unwrap_or_default();
        self.log(Level::ERROR, format!("{name}: failed after {attempts} attempts: {error}"));
        self.journal("failure", Some(idx), "failed", Some(json!({"attempts": attempts, "error": error})));
        self.up(idx, false);
        self.halt_if_required(idx);
    }

    pub(super) fn on_stopped(&mut self, idx: usize, generation: u64, outcome: StopOutcome) {
        let unit = &mut self.units[idx];
        if unit.generation != generation {
            return;
        }
        let after = match std::mem::replace(&mut unit.group, Group::None) {
            Group::Stopping(_, after) => after,
            _ => AfterStop::Nothing,
        };
        if outcome == StopOutcome::Stuck {
            self.log(Level::ERROR, format!("{}: processes remain in its group after SIGKILL", self.name(idx)));
        }
        self.journal("stop", Some(idx), stop_word(outcome), None);
        self.up(idx, false);
        if self.shutdown.is_some() && !matches!(after, AfterStop::Fail | AfterStop::Quarantine) {
            let unit = &mut self.units[idx];
            if matches!(unit.status(), S::Healthy | S::Starting | S::Backoff | S::Unhealthy) {
                unit.life = Life::Stopped { by_operator: false };
            }
        } else {
            self.after_stopped(idx, after);
        }
    }

    pub(super) fn stop_unit(&mut self, idx: usize, after: AfterStop) {
        let kill_now = self.kill_now;
        let unit = &mut self.units[idx];
        let (proc, stopping) = match std::mem::replace(&mut unit.group, Group::None) {
            Group::None => return,
            Group::Up(p) => (p, false),
            Group::Stopping(p, _) => (p, true),
        };
        let (generation, pgid, exited) = (unit.generation, proc.pgid, proc.exited);
        unit.group = Group::Stopping(proc, after);
        if stopping {
            // One stop per group: a later decision (an operator's stop during a restart, a
            // quarantine) replaces what happens once the group is gone.
            return;
        }
        let grace = if kill_now { Duration::ZERO } else { unit.cfg.shutdown.grace };
        // Only a deliberate stop of a running component runs its `stop` command.
        let run_stop_command = unit.cfg.stop.is_some() && !exited && after == AfterStop::Nothing;
        self.emit(Action::Stop { idx, generation, pgid, grace, run_stop_command });
    }

    pub(super) fn on_timer(&mut self, timer: Timer) {
        match timer {
            Timer::ReadyDeadline { idx, generation } => {
                let u = &self.units[idx];
                if u.generation == generation && u.status() == S::Starting {
                    let last = u.last_probe.as_ref().map(|(_, o)| format!("; last probe: {o}")).unwrap_or_default();
                    self.attempt_failed(idx, format!("not ready within its ready timeout{last}"));
                }
            }
            Timer::ExitSettle { idx, generation } => {
                let u = &mut self.units[idx];
                if let Life::Starting(s) = &mut u.life
                    && u.generation == generation
                    && s.log_pending
                {
                    s.log_pending = false;
                    let text = s.exit.as_ref().map(|(_, t)| t.clone()).unwrap_or_default();
                    self.attempt_failed(idx, format!("{text} before becoming ready"));
                }
            }
            Timer::Backoff { idx, generation } => {
                let u = &mut self.units[idx];
                if u.generation == generation && u.status() == S::Backoff && self.shutdown.is_none() {
                    u.life = Life::pending();
                }
            }
            Timer::HealRound { idx, round } => self.on_heal_timer(idx, round),
            Timer::DependencyTimeout { idx, edge } => {
                let e = &self.plan.deps[idx][edge];
                if self.units[idx].status() == S::Pending && self.shutdown.is_none() {
                    let dep = &self.units[e.on];
                    if !dep.satisfies(e.condition) {
                        let why = format!(
                            "{} did not reach {} within {:?}",
                            dep.cfg.name,
                            condition_word(e.condition),
                            e.timeout.unwrap_or_default()
                        );
                        self.units[idx].last_error = Some(why);
                        self.final_failure(idx);
                    }
                }
            }
        }
    }
}
