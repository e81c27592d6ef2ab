//! `razar probe SPEC [--wait]`: one probe of DESIGN §6 run with the boot's own prober, once or
//! until it passes. It is the readiness gate of exported units (`razar export`): a systemd
//! `ExecStartPost=` and a Kubernetes initContainer.

use std::time::Duration;

use tokio::time::Instant;

use crate::cli::ProbeArgs;
use crate::config::{self, ProbeKind, ProcessEnv, raw::StatusSpec};
use crate::error::{Error, Result};
use crate::exit;
use crate::paths::Paths;
use crate::probe::spec::{self, Spec};
use crate::probe::{self, ExecContext, policy};

/// How long `--wait` waits for a probe given as a SPEC when `--timeout` is not given.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(60);

/// What to probe and how.
struct Target {
    label: String,
    kind: ProbeKind,
    attempt_timeout: Duration,
    period: Duration,
    start_interval: Duration,
    initial_delay: Duration,
    success_threshold: u32,
    /// `--wait`'s bound when `--timeout` is not given.
    wait_budget: Duration,
    ctx: ExecContext,
}

pub async fn run(paths: &Paths, args: ProbeArgs) -> Result<u8> {
    let status = match &args.status {
        None => None,
        Some(s) => {
            let parsed: StatusSpec = serde_json::from_value(serde_json::Value::String(s.clone()))
                .map_err(|e| Error::Usage(format!("--status: {e}")))?;
            Some((parsed.0, parsed.1))
        }
    };
    let parsed = spec::parse(&args.spec, status, args.body.clone(), &paths.root)
        .map_err(|e| Error::Usage(format!("probe: {e}")))?;
    let mut target = match parsed {
        Spec::Kind(kind) => Target {
            label: kind.to_string(),
            kind,
            attempt_timeout: Duration::from_secs(1),
            period: Duration::from_secs(10),
            start_interval: crate::config::DEFAULT_START_INTERVAL,
            initial_delay: Duration::ZERO,
            success_threshold: 1,
            wait_budget: DEFAULT_WAIT,
            ctx: ExecContext { env: Default::default(), working_dir: Some(paths.root.clone()) },
        },
        Spec::Component(name) => component_target(paths, &args, &name)?,
    };
    if let Some(t) = args.attempt_timeout {
        target.attempt_timeout = t;
    }
    if let Some(p) = args.period {
        target.period = p;
    }
    if let Some(d) = args.initial_delay {
        target.initial_delay = d;
    }
    if let Some(s) = args.start_interval {
        target.start_interval = s.max(Duration::from_millis(1));
    }
    if let Some(n) = args.success_threshold {
        target.success_threshold = n;
    }
    for (flag, d) in [("--attempt-timeout", target.attempt_timeout), ("--period", target.period)] {
        if d.is_zero() {
            return Err(Error::Usage(format!("{flag} must be greater than 0")));
        }
    }
    let http = reqwest::Client::builder()
        .user_agent(concat!("razar/", env!("CARGO_PKG_VERSION")))
        // The probe asks the named host itself, as a boot's probe does.
        .no_proxy()
        .build()
        .map_err(|e| Error::Internal(format!("cannot build the HTTP client: {e}")))?;

    if !args.wait {
        let limit = args.timeout.filter(|t| !t.is_zero()).unwrap_or(target.attempt_timeout);
        let o = probe::check(&target.kind, limit, &http, &target.ctx).await;
        return Ok(report(&target, o.ok, &o.output, 1, None));
    }

    let budget = args.timeout.unwrap_or(target.wait_budget);
    let deadline = (!budget.is_zero()).then(|| Instant::now() + budget);
    let left = |now: Instant| deadline.map_or(Duration::MAX, |d| d.saturating_duration_since(now));
    tokio::time::sleep(target.initial_delay.min(left(Instant::now()))).await;
    let mut tracker = policy::Tracker::default();
    let mut last = String::new();
    loop {
        let now = Instant::now();
        if left(now).is_zero() {
            return Ok(report(&target, false, &last, tracker.attempts, Some(budget)));
        }
        let limit = target.attempt_timeout.min(left(now));
        let o = probe::check(&target.kind, limit, &http, &target.ctx).await;
        last = o.output;
        if tracker.observe(o.ok, target.success_threshold, u32::MAX) == policy::Verdict::Pass {
            return Ok(report(&target, true, &last, tracker.attempts, None));
        }
        if !o.ok {
            tracing::debug!("probe {} attempt {}: {last}", target.label, tracker.attempts);
        }
        let pause = policy::starting_interval(target.start_interval, target.period, tracker.attempts - 1);
        let pause = pause.min(left(Instant::now()));
        tokio::time::sleep(pause).await;
    }
}

/// Prints the outcome (stdout when it passed, stderr when not) and returns the exit code.
fn report(target: &Target, ok: bool, output: &str, attempts: u32, waited: Option<Duration>) -> u8 {
    let tries = if attempts == 1 { "1 attempt".to_owned() } else { format!("{attempts} attempts") };
    if ok {
        crate::outln!("probe {} passed ({tries}): {output}", target.label);
        return exit::SUCCESS;
    }
    match waited {
        Some(budget) => crate::errln!(
            "razar: probe {} did not pass within {} ({tries}); last result: {output}",
            target.label,
            format!("{budget:?}")
        ),
        None => crate::errln!("razar: probe {} failed: {output}", target.label),
    }
    exit::PROBE_FAILED
}

/// A component's readiness (or, with `--liveness`, liveness) probe from the config, run with
/// its env and working directory as a boot would.
fn component_target(paths: &Paths, args: &ProbeArgs, name: &str) -> Result<Target> {
    if args.status.is_some() || args.body.is_some() {
        return Err(Error::Usage("--status and --body apply to http:// and https:// probes only".into()));
    }
    let file = args.config.as_ref().map(|c| paths.join(c)).unwrap_or_else(|| paths.default_config());
    if !file.exists() {
        return Err(Error::Usage(format!(
            "probe: {name:?} is not a probe spec (tcp://HOST:PORT, http(s)://URL, exec:COMMAND, file:PATH), and there is no config {} to look a component of that name up in (pass --config)",
            file.display()
        )));
    }
    let cfg = config::load(&file, &paths.root, &ProcessEnv)?;
    let Some(c) = cfg.component(name) else {
        let names: Vec<&str> = cfg.components.iter().map(|c| c.name.as_str()).collect();
        return Err(Error::Usage(format!(
            "probe: {name:?} is not a probe spec (tcp://, http(s)://, exec:, file:) nor a component of {} (components: {})",
            file.display(),
            names.join(", ")
        )));
    };
    let (which, probe) = if args.liveness { ("liveness", &c.liveness) } else { ("health_check", &c.health_check) };
    let Some(p) = probe else {
        return Err(Error::Usage(format!(
            "probe: component `{name}` in {} has no `{which}` probe{}",
            file.display(),
            if c.kind == config::Kind::Task { " (it is a task: it is ready when it exits 0)" } else { "" }
        )));
    };
    if let ProbeKind::Log(re) = &p.kind {
        return Err(Error::Usage(format!(
            "probe: the `{which}` of `{name}` is a log probe (/{}/): it matches the component's output while a boot runs it, so razar probe cannot run it",
            re.as_str()
        )));
    }
    let mut env = c.env.clone();
    env.insert("RAZAR_COMPONENT".into(), c.name.to_string());
    env.insert("RAZAR_ROOT".into(), paths.root.display().to_string());
    Ok(Target {
        label: format!("{name} ({which}: {})", p.kind),
        kind: p.kind.clone(),
        attempt_timeout: p.timeout,
        period: p.period,
        start_interval: p.start_interval,
        initial_delay: p.initial_delay,
        success_threshold: p.success_threshold,
        wait_budget: c
            .ready_timeout
            .unwrap_or_else(|| policy::default_ready_budget(p.initial_delay, p.period, p.failure_threshold)),
        ctx: ExecContext { env, working_dir: Some(c.working_dir.clone()) },
    })
}
