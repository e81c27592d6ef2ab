//! razar's Prometheus metrics (DESIGN §11): one owned [`Registry`] (never the crate's global
//! default), typed handles for every series, the `/metrics` [`exporter`] and the boot
//! [`textfile`].
//!
//! Invariants:
//! - Names and label sets are the contract of §11 and of the upstream alert rules
//!   (`monitoring/alerts/razar_failover.yml`); they never change with the data.
//! - A labelled series appears in the exposition only once its child exists. So that every
//!   family of §11 is on `/metrics` from the first scrape, and a query such as
//!   `increase(razar_ai_invocation_retries_total[5m])` sees a 0 rather than "no data",
//!   [`Metrics::register_stack`] creates, at 0, every child the boot can know of up front:
//!   per component, per component and restart reason, per component and kind of its own
//!   probes, per agent of the roster, and per component and agent for escalations. Label sets
//!   that are fixed (probe kinds, handshake results) are created in [`Metrics::new`]. Only a
//!   label value that appears later (an agent added to the roster while the boot runs) appears
//!   with its first event.
//! - Label values come from validated component names, configured agent names and the closed
//!   enums below, so the number of series is bounded by the config.
//!
//! `Metrics` is a cheap handle (every field is reference-counted): clone it into tasks.

pub mod exporter;
pub mod textfile;

use std::time::Duration;

use prometheus::{
    Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

pub use exporter::{DEFAULT_PORT, Exporter, MetricsError, PORT_ENV, resolve_addr};

/// Prefix shared by the per-run boot gauges written to the textfile.
pub const BOOT_PREFIX: &str = "razar_boot_";

/// Probe kinds, as labels of `razar_probe_*` (the names of `config::ProbeKind::name`).
pub const PROBE_KINDS: &[&str] = &["exec", "http", "tcp", "log", "file"];

/// Why a component was restarted (`reason` label of `razar_component_restarts_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartReason {
    /// The process ended and its restart policy asked for a new one.
    Exited,
    /// The liveness probe failed past its threshold.
    Liveness,
    /// Relaunched to run a promoted patch.
    Patched,
    /// Relaunched after `razar rollback` reverted its patches.
    Rollback,
    /// An operator asked for it (control socket restart, quarantine release).
    Operator,
}

impl RestartReason {
    /// Every reason, for the series created at 0 up front.
    pub const ALL: [RestartReason; 5] = [
        RestartReason::Exited,
        RestartReason::Liveness,
        RestartReason::Patched,
        RestartReason::Rollback,
        RestartReason::Operator,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RestartReason::Exited => "exited",
            RestartReason::Liveness => "liveness",
            RestartReason::Patched => "patched",
            RestartReason::Rollback => "rollback",
            RestartReason::Operator => "operator",
        }
    }
}

/// Outcome of one Crown handshake (`result` label of `razar_crown_handshake_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeResult {
    /// The Crown replied with an acknowledgement.
    Acknowledged,
    /// No Crown URL configured: offline mode.
    Offline,
    /// Unreachable, timed out, closed early or replied with something unusable.
    Failed,
}

impl HandshakeResult {
    pub const ALL: [HandshakeResult; 3] =
        [HandshakeResult::Acknowledged, HandshakeResult::Offline, HandshakeResult::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            HandshakeResult::Acknowledged => "acknowledged",
            HandshakeResult::Offline => "offline",
            HandshakeResult::Failed => "failed",
        }
    }
}

/// The label values a stack's series take, known before anything starts.
#[derive(Debug, Clone, Default)]
pub struct StackLabels<'a> {
    /// Each configured component with the kinds of its probes (readiness and liveness).
    pub components: Vec<(&'a str, Vec<&'static str>)>,
    /// The roster's agent names.
    pub agents: Vec<&'a str>,
}

/// The per-run figures of one boot, as recorded in `logs/razar_boot_history.json`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BootSummary {
    /// Components evaluated in this run.
    pub components: usize,
    /// Components that became healthy or completed.
    pub succeeded: usize,
    /// Components that failed (quarantined, halted the boot, or gave up).
    pub failed: usize,
    /// Local retries across all components (attempts after each first one).
    pub retries: u64,
    /// Components that succeeded on their first attempt.
    pub first_attempt_successes: usize,
    /// Wall-clock time from the start of the launch phase to ready (or halt).
    pub total_time: Duration,
    /// `succeeded / components` (0 for an empty run).
    pub success_rate: f64,
}

/// Every razar series, registered in one owned registry.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    ai_success: IntCounterVec,
    ai_failure: IntCounterVec,
    ai_retries: IntCounterVec,
    ai_retry_duration: HistogramVec,
    agent_call_duration: HistogramVec,
    boot_success_rate: Gauge,
    boot_total_time: Gauge,
    boot_components: IntGauge,
    boot_succeeded: IntGauge,
    boot_failed: IntGauge,
    boot_retries: IntGauge,
    boot_first_attempt_successes: IntGauge,
    component_up: IntGaugeVec,
    component_ready: GaugeVec,
    component_restarts: IntCounterVec,
    probe_duration: HistogramVec,
    probe_failures: IntCounterVec,
    quarantined: IntGauge,
    journal_dropped: IntCounter,
    escalations: IntCounterVec,
    crown_handshakes: IntCounterVec,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Seconds a retry loop or handover round took: minutes, not milliseconds.
const RETRY_BUCKETS: &[f64] = &[5.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0];
/// One remote agent call: sub-second for a local model server up to its 60 s default timeout.
const AGENT_BUCKETS: &[f64] = &[0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0];
/// One probe: the 20 ms detection target sits in the middle.
const PROBE_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

impl Metrics {
    /// A fresh registry with every razar series registered and the fixed-label children at 0.
    pub fn new() -> Self {
        let registry = Registry::new();
        let reg = Registrar(&registry);
        let m = Metrics {
            ai_success: reg.counter_vec(
                "razar_ai_invocation_success_total",
                "AI handover rounds that produced a patch which verified, by component.",
                &["component"],
            ),
            ai_failure: reg.counter_vec(
                "razar_ai_invocation_failure_total",
                "AI handover rounds that produced no usable patch or whose patch failed verification, by component.",
                &["component"],
            ),
            ai_retries: reg.counter_vec(
                "razar_ai_invocation_retries_total",
                "AI handover rounds after the first one for a failure (each retry counted once), by component.",
                &["component"],
            ),
            ai_retry_duration: reg.histogram_vec(
                "razar_ai_retry_duration_seconds",
                "Time spent in the AI retry loop for one failure, from handover to heal or give-up, by component.",
                &["component"],
                RETRY_BUCKETS,
            ),
            agent_call_duration: reg.histogram_vec(
                "razar_agent_call_duration_seconds",
                "Duration of one call to a remote repair agent, by agent.",
                &["agent"],
                AGENT_BUCKETS,
            ),
            boot_success_rate: reg.gauge(
                "razar_boot_success_rate",
                "Share of components that became healthy or completed in the latest boot run (0 to 1).",
            ),
            boot_total_time: reg.gauge(
                "razar_boot_total_time_seconds",
                "Wall-clock time the latest boot run took to reach ready or halt, in seconds.",
            ),
            boot_components: reg.int_gauge("razar_boot_components", "Components evaluated during the latest boot run."),
            boot_succeeded: reg.int_gauge(
                "razar_boot_components_succeeded",
                "Components that became healthy or completed in the latest boot run.",
            ),
            boot_failed: reg
                .int_gauge("razar_boot_components_failed", "Components that failed in the latest boot run."),
            boot_retries: reg.int_gauge(
                "razar_boot_retries",
                "Local retries (attempts after the first) across all components in the latest boot run.",
            ),
            boot_first_attempt_successes: reg.int_gauge(
                "razar_boot_first_attempt_successes",
                "Components that succeeded on their first attempt in the latest boot run.",
            ),
            component_up: reg.int_gauge_vec(
                "razar_component_up",
                "1 while the component is healthy (or a task that completed), else 0.",
                &["component"],
            ),
            component_ready: reg.gauge_vec(
                "razar_component_ready_seconds",
                "Seconds from the component's launch to its readiness, in the current boot.",
                &["component"],
            ),
            component_restarts: reg.counter_vec(
                "razar_component_restarts_total",
                "Restarts of a component after its first launch, by component and reason.",
                &["component", "reason"],
            ),
            probe_duration: reg.histogram_vec(
                "razar_probe_duration_seconds",
                "Duration of one probe run, by probe kind.",
                &["kind"],
                PROBE_BUCKETS,
            ),
            probe_failures: reg.counter_vec(
                "razar_probe_failures_total",
                "Probe runs that failed, by component and probe kind.",
                &["component", "kind"],
            ),
            quarantined: reg.int_gauge("razar_quarantined_components", "Components currently in quarantine."),
            journal_dropped: reg.counter(
                "razar_journal_dropped_records_total",
                "Journal records dropped because the journal writer's queue was full.",
            ),
            escalations: reg.counter_vec(
                "razar_escalations_total",
                "Moves up the repair-agent ladder, by component and the agent escalated to.",
                &["component", "agent"],
            ),
            crown_handshakes: reg.counter_vec(
                "razar_crown_handshake_total",
                "Crown handshakes, by result (acknowledged, offline, failed).",
                &["result"],
            ),
            registry,
        };
        for kind in PROBE_KINDS {
            m.probe_duration.with_label_values(&[kind]);
        }
        for result in HandshakeResult::ALL {
            m.crown_handshakes.with_label_values(&[result.as_str()]);
        }
        m
    }

    /// The registry itself, for callers that register collectors of their own.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Creates `component`'s per-component series at 0 (down, no AI rounds), so alert rules
    /// see a value from the first scrape. Idempotent; call once per configured component.
    pub fn register_component(&self, component: &str) {
        let labels = &[component];
        self.ai_success.with_label_values(labels);
        self.ai_failure.with_label_values(labels);
        self.ai_retries.with_label_values(labels);
        self.ai_retry_duration.with_label_values(labels);
        self.component_up.with_label_values(labels);
    }

    /// Creates `agent`'s call-duration series (no observations yet). Idempotent.
    pub fn register_agent(&self, agent: &str) {
        self.agent_call_duration.with_label_values(&[agent]);
    }

    /// Creates every labelled series of `stack` at 0 (see the module invariants). Idempotent.
    pub fn register_stack(&self, stack: &StackLabels<'_>) {
        for agent in &stack.agents {
            self.register_agent(agent);
        }
        for (component, probe_kinds) in &stack.components {
            self.register_component(component);
            self.component_ready.with_label_values(&[component]);
            for reason in RestartReason::ALL {
                self.component_restarts.with_label_values(&[component, reason.as_str()]);
            }
            for kind in probe_kinds {
                self.probe_failures.with_label_values(&[component, kind]);
            }
            for agent in &stack.agents {
                self.escalations.with_label_values(&[component, agent]);
            }
        }
    }

    /// Marks `component` up (healthy, or a task that completed) or down.
    pub fn component_up(&self, component: &str, up: bool) {
        self.component_up.with_label_values(&[component]).set(i64::from(up));
    }

    /// Records how long `component` took from launch to ready.
    pub fn component_ready(&self, component: &str, elapsed: Duration) {
        self.component_ready.with_label_values(&[component]).set(elapsed.as_secs_f64());
    }

    /// Counts one restart of `component`.
    pub fn restart(&self, component: &str, reason: RestartReason) {
        self.component_restarts.with_label_values(&[component, reason.as_str()]).inc();
    }

    /// Records one probe run of `kind` (see [`PROBE_KINDS`]) for `component`: its duration,
    /// and a failure when `ok` is false.
    pub fn probe_observed(&self, kind: &str, elapsed: Duration, ok: bool, component: &str) {
        self.probe_duration.with_label_values(&[kind]).observe(elapsed.as_secs_f64());
        if !ok {
            self.probe_failures.with_label_values(&[component, kind]).inc();
        }
    }

    /// Counts one AI handover round for `component` by its outcome.
    pub fn ai_invocation(&self, component: &str, success: bool) {
        let counter = if success { &self.ai_success } else { &self.ai_failure };
        counter.with_label_values(&[component]).inc();
    }

    /// Counts one AI retry (a round after the first) for `component`.
    pub fn ai_retry(&self, component: &str) {
        self.ai_retries.with_label_values(&[component]).inc();
    }

    /// Records the time `component` spent in the AI retry loop for one failure.
    pub fn ai_retry_duration(&self, component: &str, elapsed: Duration) {
        self.ai_retry_duration.with_label_values(&[component]).observe(elapsed.as_secs_f64());
    }

    /// Records one call to a remote agent.
    pub fn agent_call(&self, agent: &str, elapsed: Duration) {
        self.agent_call_duration.with_label_values(&[agent]).observe(elapsed.as_secs_f64());
    }

    /// Counts one escalation of `component` to `agent` (the agent now active).
    pub fn escalation(&self, component: &str, agent: &str) {
        self.escalations.with_label_values(&[component, agent]).inc();
    }

    /// Counts one Crown handshake.
    pub fn crown_handshake(&self, result: HandshakeResult) {
        self.crown_handshakes.with_label_values(&[result.as_str()]).inc();
    }

    /// Sets the number of components currently quarantined.
    pub fn quarantined(&self, count: usize) {
        self.quarantined.set(to_i64(count));
    }

    /// Sets the per-run `razar_boot_*` gauges.
    pub fn boot_summary(&self, summary: &BootSummary) {
        self.boot_components.set(to_i64(summary.components));
        self.boot_succeeded.set(to_i64(summary.succeeded));
        self.boot_failed.set(to_i64(summary.failed));
        self.boot_retries.set(i64::try_from(summary.retries).unwrap_or(i64::MAX));
        self.boot_first_attempt_successes.set(to_i64(summary.first_attempt_successes));
        self.boot_total_time.set(summary.total_time.as_secs_f64());
        self.boot_success_rate.set(summary.success_rate);
    }

    /// Every series in the Prometheus text format (version 0.0.4).
    pub fn render(&self) -> String {
        let dropped = crate::journal::writer::dropped();
        self.journal_dropped.inc_by(dropped.saturating_sub(self.journal_dropped.get()));
        encode(&self.registry.gather())
    }

    /// Only the `razar_boot_*` gauges, for the textfile.
    pub fn render_boot(&self) -> String {
        let families: Vec<_> =
            self.registry.gather().into_iter().filter(|f| f.name().starts_with(BOOT_PREFIX)).collect();
        encode(&families)
    }
}

fn to_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn encode(families: &[prometheus::proto::MetricFamily]) -> String {
    let mut out = String::new();
    // The registry prunes empty families, the only input the encoder rejects; writing to a
    // String cannot fail.
    if let Err(err) = TextEncoder::new().encode_utf8(families, &mut out) {
        tracing::error!(%err, "encoding metrics failed");
    }
    out
}

/// Creates metrics and registers them; the definitions are static, so a failure is a bug
/// caught by the unit tests.
struct Registrar<'a>(&'a Registry);

impl Registrar<'_> {
    fn add<C: prometheus::core::Collector + Clone + 'static>(&self, c: C) -> C {
        self.0.register(Box::new(c.clone())).expect("razar metric definitions are unique and valid");
        c
    }

    fn counter_vec(&self, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
        self.add(IntCounterVec::new(Opts::new(name, help), labels).expect("valid counter definition"))
    }

    fn gauge(&self, name: &str, help: &str) -> Gauge {
        self.add(Gauge::new(name, help).expect("valid gauge definition"))
    }

    fn counter(&self, name: &str, help: &str) -> IntCounter {
        self.add(IntCounter::new(name, help).expect("valid counter definition"))
    }

    fn int_gauge(&self, name: &str, help: &str) -> IntGauge {
        self.add(IntGauge::new(name, help).expect("valid gauge definition"))
    }

    fn gauge_vec(&self, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
        self.add(GaugeVec::new(Opts::new(name, help), labels).expect("valid gauge definition"))
    }

    fn int_gauge_vec(&self, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
        self.add(IntGaugeVec::new(Opts::new(name, help), labels).expect("valid gauge definition"))
    }

    fn histogram_vec(&self, name: &str, help: &str, labels: &[&str], buckets: &[f64]) -> HistogramVec {
        let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
        self.add(HistogramVec::new(opts, labels).expect("valid histogram definition"))
    }
}

#[cfg(test)]
mod tests;
