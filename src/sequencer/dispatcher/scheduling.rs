//! What launches next: dependencies, tiers, --jobs, launches.

use super::*;

impl Dispatcher {
    pub(super) fn schedule(&mut self) {
        let settled_below = self.settled_tiers();
        let mut starting = self.units.iter().filter(|u| u.status == S::Starting).count();
        for idx in 0..self.units.len() {
            // A unit whose previous process group is still being stopped waits for it to go.
            if self.units[idx].status != S::Pending || self.units[idx].proc.is_some() {
                continue;
            }
            match self.readiness_of_deps(idx, &settled_below) {
                DepState::Blocked(by) => {
                    let unit = &mut self.units[idx];
                    unit.status = S::Blocked;
                    unit.waiting_for = None;
                    unit.last_error = Some(format!("blocked: {} did not come up", by.join(", ")));
                    unit.blocked_by = by;
                    let details = json!({"blocked_by": unit.blocked_by});
                    tracing::warn!("{}: blocked by {}", unit.cfg.name, unit.blocked_by.join(", "));
                    self.event("blocked", &self.name(idx), "blocked", Some(details));
                }
                DepState::Waiting(why, key) => {
                    if self.units[idx].waiting_key != key {
                        tracing::info!("{}: waiting for {key}", self.units[idx].cfg.name);
                        self.units[idx].waiting_key = key;
                    }
                    if self.units[idx].waiting_for.as_deref() != Some(why.as_str()) {
                        self.units[idx].waiting_for = Some(why);
                        self.mark_dirty();
                    }
                }
                DepState::Ready => {
                    if self.opts.jobs.is_some_and(|j| starting >= j) {
                        let why = format!("waiting for a free slot (--jobs {})", self.opts.jobs.unwrap_or(0));
                        self.units[idx].waiting_for = Some(why);
                        continue;
                    }
                    starting += 1;
                    self.launch(idx);
                }
            }
        }
        if !self.ready_announced && self.units.iter().all(|u| u.settled()) {
            self.announce_ready();
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

    pub(super) fn readiness_of_deps(&self, idx: usize, settled_below: &[bool]) -> DepState {
        let mut blocked = Vec::new();
        let mut waiting = Vec::new();
        // Who is waited for, without the probe progress: what the log line reports.
        let mut key = Vec::new();
        for edge in &self.plan.deps[idx] {
            let dep = &self.units[edge.on];
            let name = dep.cfg.name.to_string();
            if dep.satisfies(edge.condition) {
                continue;
            }
            if dep.is_dead() {
                blocked.push(name);
            } else {
                let cond = condition_word(edge.condition);
                let probe = dep
                    .cfg
                    .health_check
                    .as_ref()
                    .map(|p| {
                        if let ProbeKind::Log(re) = &p.kind {
                            return format!(" (no line matching /{}/ yet)", re.as_str());
                        }
                        let last = dep.last_probe.as_ref().map_or("not probed yet", |(_, o)| o.as_str());
                        let n = dep.tracker.attempts;
                        format!(" ({}: {}, {n} probe{})", p.kind, last, if n == 1 { "" } else { "s" })
                    })
                    .unwrap_or_default();
                waiting.push(format!("{name} {cond}{probe}"));
                key.push(format!("{name} {cond}"));
            }
        }
        if !blocked.is_empty() {
            return DepState::Blocked(blocked);
        }
        if let Some(k) = self.plan.tier[idx]
            && !settled_below[k]
        {
            let tier = format!("every component with priority < {}", self.cfg.components[idx].priority.unwrap_or(0));
            key.push(tier.clone());
            waiting.push(tier);
        }
        if waiting.is_empty() {
            DepState::Ready
        } else {
            DepState::Waiting(format!("waiting for {}", waiting.join(", ")), key.join(", "))
        }
    }

    pub(super) fn launch(&mut self, idx: usize) {
        let generation = self.units[idx].generation + 1;
        let cfg = self.units[idx].cfg.clone();
        {
            let u = &mut self.units[idx];
            u.generation = generation;
            if !u.ever_ready {
                u.attempts += 1;
            }
            u.status = S::Starting;
            u.waiting_for = None;
            u.tracker = Tracker::default();
            u.after_stop = AfterStop::Nothing;
            u.exit = None;
            u.first_launch.get_or_insert_with(Instant::now);
        }
        let attempt = self.units[idx].attempts;
        let env = match self.component_env_checked(&cfg) {
            Ok(env) => env,
            Err(e) => {
                // A broken layer fails the same way every time: no local retries.
                self.units[idx].attempts = self.opts.retries + 1;
                self.attempt_failed(idx, e);
                return;
            }
        };
        let (log_tx, log_rx) = oneshot::channel();
        let log_pattern = match cfg.health_check.as_ref().map(|p| &p.kind) {
            Some(ProbeKind::Log(re)) => Some((re.clone(), log_tx)),
            _ => None,
        };
        self.units[idx].log_pending = log_pattern.is_some();
        let polled = cfg.health_check.as_ref().is_some_and(|p| !matches!(p.kind, ProbeKind::Log(_)));
        let output_seen = polled.then(|| Arc::new(Notify::new()));
        let spec = SpawnSpec {
            argv: cfg.command.argv(),
            env,
            working_dir: Some(cfg.working_dir.clone()),
            log_path: self.paths.component_log(&cfg.name),
            log_pattern,
            output_seen: output_seen.clone(),
        };
        tracing::info!("{}: starting (attempt {attempt}): {}", cfg.name, cfg.command);
        let spawned = match child::spawn(spec) {
            Ok(s) => s,
            Err(e) => {
                self.event(
                    "launch",
                    cfg.name.as_str(),
                    "error",
                    Some(json!({"attempt": attempt, "error": e.to_string()})),
                );
                self.attempt_failed(idx, format!("spawn failed: {e}"));
                return;
            }
        };
        let launched = launched::Launched {
            component: cfg.name.to_string(),
            pid: spawned.pid,
            pgid: spawned.pgid,
            start_time: spawned.start_time,
            host_boot_id: self.state.host_boot_id.clone(),
        };
        if let Err(e) = launched::record(&self.launch_journal, &launched) {
            tracing::warn!("cannot journal the launch of {}: {e}", cfg.name);
        }
        self.event("launch", cfg.name.as_str(), "start", Some(json!({"attempt": attempt, "pid": spawned.pid})));
        self.units[idx].proc = Some(Proc {
            pid: spawned.pid,
            pgid: spawned.pgid,
            start_time: spawned.start_time,
            exited: false,
            detached: false,
        });
        let tx = self.tx.clone();
        let mut process = spawned.child;
        tokio::spawn(async move {
            let status = reaper::wait(&mut process).await.map_err(|e| format!("wait failed: {e}"));
            let _ = tx.send(Msg::Exited { idx, generation, status });
        });
        if let Some(probe) = &cfg.health_check {
            if matches!(probe.kind, ProbeKind::Log(_)) {
                let tx = self.tx.clone();
                tokio::spawn(async move {
                    let line = log_rx.await.ok();
                    let _ = tx.send(Msg::LogLine { idx, generation, line });
                });
            } else {
                let seen = output_seen.unwrap_or_default();
                self.units[idx].probe_task = Some(self.spawn_probe_loop(idx, generation, &cfg, seen));
            }
            let budget = cfg.ready_timeout.unwrap_or_else(|| {
                policy::default_ready_budget(probe.initial_delay, probe.period, probe.failure_threshold)
            });
            self.add_timer(Instant::now() + budget, Timer::ReadyDeadline { idx, generation });
        } else if let Some(t) = cfg.ready_timeout {
            self.add_timer(Instant::now() + t, Timer::ReadyDeadline { idx, generation });
        }
        self.mark_dirty();
    }

    pub(super) fn component_env(&self, cfg: &Component) -> BTreeMap<String, String> {
        self.component_env_checked(cfg).unwrap_or_else(|_| cfg.env.clone())
    }

    /// The component's environment: its `env`, razar's markers, and its layer's venv first on
    /// `PATH`. Fails when its layer could not be built.
    pub(super) fn component_env_checked(&self, cfg: &Component) -> Result<BTreeMap<String, String>, String> {
        let mut env = cfg.env.clone();
        env.insert("RAZAR_COMPONENT".into(), cfg.name.to_string());
        env.insert("RAZAR_ROOT".into(), self.paths.root.display().to_string());
        if let Some(layer) = &cfg.layer {
            match self.services.layers.get(layer) {
                Some(Ok(built)) => {
                    let base = env.get("PATH").cloned().or_else(|| std::env::var("PATH").ok()).unwrap_or_default();
                    crate::layers::apply_env(&mut env, built, &base);
                }
                Some(Err(e)) => return Err(format!("layer `{layer}` could not be built: {e}")),
                None => return Err(format!("layer `{layer}` was not built")),
            }
        }
        Ok(env)
    }

    /// Probes a starting component on the `start_interval` schedule, and also right after it
    /// writes output (servers tend to log the moment they listen), at most every
    /// `OUTPUT_PROBE_GAP`.
    pub(super) fn spawn_probe_loop(
        &self,
        idx: usize,
        generation: u64,
        cfg: &Component,
        output_seen: Arc<Notify>,
    ) -> AbortHandle {
        let probe = cfg.health_check.clone().expect("has a probe");
        // An exec probe forks a process: output wakes it no more often than `start_interval`.
        let gap = match probe.kind {
            ProbeKind::Exec(_) => probe.start_interval.max(OUTPUT_PROBE_GAP),
            _ => OUTPUT_PROBE_GAP,
        };
        let ctx = ExecContext { env: self.component_env(cfg), working_dir: Some(cfg.working_dir.clone()) };
        let http = self.http.clone();
        let tx = self.tx.clone();
        tokio::spawn(async move {
            sleep(probe.initial_delay).await;
            let mut attempts = 0;
            loop {
                let outcome = probe::check(&probe.kind, probe.timeout, &http, &ctx).await;
                if tx.send(Msg::Probe { idx, generation, outcome }).is_err() {
                    return;
                }
                let probed = Instant::now();
                tokio::select! {
                    _ = sleep(policy::starting_interval(probe.start_interval, probe.period, attempts)) => {}
                    _ = output_seen.notified() => sleep_until(probed + gap).await,
                }
                attempts += 1;
            }
        })
        .abort_handle()
    }
}
