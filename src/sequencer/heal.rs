//! One repair round, end to end: the ladder's agent gets the failure context, its suggestion
//! goes through the repair pipeline (paths, sandbox, the component's tests, promotion), the
//! round is journaled and the ladder climbs when the agent keeps bringing nothing. The boot's
//! healing and `razar handover` both run rounds through here.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use super::machine::HealOutcome;
use crate::clock;
use crate::config::{Component, ProcessEnv};
use crate::ladder::agents::{AgentError, Suggestion};
use crate::ladder::context::{self, Invocation};
use crate::ladder::policy;
use crate::ladder::round::{self, Failure, Spec, Target};
use crate::metrics::Metrics;
use crate::paths::Paths;
use crate::repair::{self, Outcome};
use crate::roster::{self, Protocol, Roster};

/// Bytes of an operator's `--context` file passed on.
const EXTRA_CONTEXT_CAP: u64 = 64 * 1024;
/// Longest each of the component's `tests` may run in the sandbox.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(300);

/// Which agent answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// The roster's active agent (the ladder's rung); the ladder climbs after it.
    Active,
    /// A named agent of the roster; the ladder does not move.
    Named(String),
    /// The local `opencode` CLI (the roster's opencode agent when it lists one).
    Opencode,
}

/// Why a round could not even be asked.
#[derive(Debug, thiserror::Error)]
pub enum AskError {
    #[error("{0}")]
    Roster(String),
    /// The agent's credential is missing (`AgentCredentialError`): its turn is spent, and in
    /// the boot the ladder moves on to the next agent. `index` is the agent's roster index.
    #[error("{message}")]
    Credential { index: usize, label: String, message: String },
    #[error(transparent)]
    Fs(#[from] crate::fsutil::FsError),
}

/// What an agent answered.
#[derive(Debug)]
pub struct Asked {
    pub agent: String,
    /// The endpoint as shown to an operator (or "local CLI").
    pub endpoint: String,
    pub result: Result<Suggestion, Failure>,
    pub exchanges: u32,
    pub reads: Vec<String>,
    pub elapsed: Duration,
    /// The agent's secret, to scrub from anything shown (never printed itself).
    secret: Option<String>,
}

impl Asked {
    /// `text` without the agent's secret.
    pub fn scrub(&self, text: String) -> String {
        match &self.secret {
            Some(s) if s.len() >= 4 => text.replace(s.as_str(), "***"),
            _ => text,
        }
    }
}

/// The roster of the root, if there is one; its credential variables become known secrets (no
/// child inherits them).
pub fn load_roster(paths: &Paths) -> Result<Option<Roster>, AskError> {
    let file = paths.join(roster::FILE);
    if !file.exists() {
        return Ok(None);
    }
    let r = roster::load(&file, &ProcessEnv)
        .map_err(|d| AskError::Roster(format!("{}: {}: {}", d.file.display(), d.field, d.message)))?;
    crate::supervise::secrets::add_known(roster::credential_variables(&r));
    Ok(Some(r))
}

/// Asks one agent for a patch: builds the failure context, runs the round, journals it in
/// `logs/razar_ai_invocations.json`, and with [`Choice::Active`] moves the ladder on after a run
/// of rounds without a patch (DESIGN §9.3).
pub async fn ask(
    paths: &Paths,
    roster: Option<&Roster>,
    choice: &Choice,
    component: &Component,
    error: &str,
    extra_context: Option<&Path>,
    metrics: Option<&Metrics>,
) -> Result<Asked, AskError> {
    let no_roster = || AskError::Roster(format!("{}: not found; it lists the repair agents", roster::FILE));
    let agent = match (roster, choice) {
        (None, Choice::Opencode) => None,
        (None, _) => return Err(no_roster()),
        (Some(r), Choice::Opencode) => r.agents.iter().find(|a| a.protocol == Some(Protocol::Opencode)),
        (Some(r), Choice::Named(name)) => {
            Some(r.find(name).ok_or_else(|| AskError::Roster(format!("{}: no agent named {name:?}", roster::FILE)))?)
        }
        (Some(r), Choice::Active) => {
            Some(r.current().ok_or_else(|| AskError::Roster(format!("{}: lists no agent", roster::FILE)))?)
        }
    };
    let spec = match agent {
        None => Spec {
            label: "opencode".into(),
            protocol: Protocol::Opencode,
            endpoint: None,
            secret: None,
            model: None,
            timeout: roster::DEFAULT_TIMEOUT,
        },
        Some(agent) => {
            let label = agent.label();
            let credential = agent.credential.as_ref().map_err(|e| AskError::Credential {
                index: agent.index,
                label: label.clone(),
                message: e.to_string(),
            })?;
            if let Some(problem) = agent.problems.first() {
                return Err(AskError::Roster(format!("agent {label} cannot be used: {problem}")));
            }
            let protocol =
                agent.protocol.ok_or_else(|| AskError::Roster(format!("agent {label} has no known protocol")))?;
            if protocol != Protocol::Opencode && agent.endpoint.is_none() {
                return Err(AskError::Roster(format!("agent {label} has no endpoint")));
            }
            Spec {
                label,
                protocol,
                endpoint: agent.endpoint.as_ref(),
                secret: credential.as_ref().map(|c| &c.secret),
                model: agent.model.clone(),
                timeout: agent.timeout,
            }
        }
    };
    let mut ctx = context::build_failure_context(paths, component, error);
    if let Some(path) = extra_context {
        let mut text = String::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(EXTRA_CONTEXT_CAP).read_to_string(&mut text))
            .map_err(|e| AskError::Roster(format!("{}: cannot read the --context file: {e}", path.display())))?;
        ctx["operator_context"] = Value::String(text);
    }
    let target = Target { root: &paths.root, component: component.name.as_str(), sources: &component.sources };
    let outcome = round::run(&spec, &target, &ctx, metrics).await;
    let now = clock::epoch();
    context::journal(
        paths,
        &Invocation {
            component: component.name.as_str(),
            attempt: context::attempts(paths, component.name.as_str()) + 1,
            error,
            patched: false,
            status: if outcome.result.is_ok() { "success" } else { "failure" },
            event: "attempt",
            agent: &spec.label,
            retries: Some(outcome.retries),
            timestamp: now,
            timestamp_iso: clock::iso(now),
        },
    )?;
    if let (Err(_), Choice::Active, Some(roster), Some(agent)) = (&outcome.result, choice, roster, agent) {
        climb(paths, roster, agent.index, component.name.as_str(), error, metrics).await?;
    }
    Ok(Asked {
        agent: spec.label.clone(),
        endpoint: spec.endpoint.map_or_else(|| "local CLI".to_string(), roster::Endpoint::display),
        secret: spec.secret.map(|s| s.expose().to_owned()),
        result: outcome.result,
        exchanges: outcome.exchanges,
        reads: outcome.reads,
        elapsed: outcome.elapsed,
    })
}

/// Runs a suggestion through the repair pipeline (blocking work, off the async threads).
pub async fn verify(paths: &Paths, component: &Component, agent: &str, s: &Suggestion) -> Result<Outcome, String> {
    let (root, component, agent) = (paths.root.clone(), component.clone(), agent.to_owned());
    let (patch, summary) = (s.patch.clone(), s.summary.clone().unwrap_or_default());
    tokio::task::spawn_blocking(move || {
        let req = repair::Request {
            component: &component,
            patch: &patch,
            agent: &agent,
            summary: &summary,
            test_timeout: TEST_TIMEOUT,
        };
        repair::verify_and_promote(&root, &req).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| format!("the repair pipeline stopped: {e}"))?
}

/// One round of the boot's healing: the active agent, then the pipeline.
pub async fn round(paths: &Paths, component: &Component, error: &str, metrics: Option<&Metrics>) -> HealOutcome {
    let not_healed = |reason: String| HealOutcome::NotHealed { reason };
    let roster = match load_roster(paths) {
        Ok(r) => r,
        Err(e) => return not_healed(e.to_string()),
    };
    let asked = match ask(paths, roster.as_ref(), &Choice::Active, component, error, None, metrics).await {
        Ok(a) => a,
        Err(AskError::Credential { index, label, message }) => {
            // The agent cannot take its turn: journaled as a failed round, and the ladder moves
            // on rather than stopping (DESIGN §9.1).
            if let Some(roster) = &roster
                && let Err(e) = skip_agent(paths, roster, index, &label, component.name.as_str(), &message, metrics)
            {
                tracing::warn!("cannot move the ladder past {label}: {e}");
            }
            return not_healed(message);
        }
        Err(e) => return not_healed(e.to_string()),
    };
    let suggestion = match &asked.result {
        Ok(s) => s,
        Err(Failure::Agent(AgentError::NoPatch(d))) => {
            return not_healed(asked.scrub(format!("{} offered no patch: {d}", asked.agent)));
        }
        Err(f) => return not_healed(asked.scrub(format!("{} ({}): {f}", asked.agent, asked.endpoint))),
    };
    let verdict = verify(paths, component, &asked.agent, suggestion).await;
    if let Some(m) = metrics {
        m.ai_invocation(component.name.as_str(), matches!(verdict, Ok(Outcome::Promoted { .. })));
    }
    match verdict {
        Ok(Outcome::Promoted { patch_id, .. }) => HealOutcome::Promoted { patch_id, agent: asked.agent },
        Ok(Outcome::Rejected { patch_id, reason }) => {
            not_healed(format!("patch {patch_id} from {} rejected: {reason}", asked.agent))
        }
        Ok(Outcome::TestsFailed { patch_id, output }) => {
            let tail: String =
                output.lines().rev().take(3).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join(" | ");
            not_healed(format!("patch {patch_id} from {} failed the component's tests: {tail}", asked.agent))
        }
        Err(e) => not_healed(e),
    }
}

/// An agent whose credential is missing: its round is journaled as a failure and `active`
/// moves to the next agent at once (unless escalation is off or it is the last).
fn skip_agent(
    paths: &Paths,
    roster: &Roster,
    index: usize,
    label: &str,
    component: &str,
    message: &str,
    metrics: Option<&Metrics>,
) -> Result<(), AskError> {
    let now = clock::epoch();
    context::journal(
        paths,
        &Invocation {
            component,
            attempt: context::attempts(paths, component) + 1,
            error: message,
            patched: false,
            status: "failure",
            event: "attempt",
            agent: label,
            retries: None,
            timestamp: now,
            timestamp_iso: clock::iso(now),
        },
    )?;
    let threshold = policy::threshold(std::env::var("RAZAR_RSTAR_THRESHOLD").ok().as_deref());
    let Some(next) = policy::next_agent(index, roster.agents.len(), threshold, threshold) else { return Ok(()) };
    let to = roster.agents[next].label();
    policy::set_active(&roster.file, &to).map_err(|e| AskError::Roster(e.to_string()))?;
    context::journal_escalation(paths, component, message, label, &to)?;
    if let Some(m) = metrics {
        m.escalation(component, &to);
    }
    tracing::warn!("{label} cannot be used ({message}); the ladder moves to {to}");
    Ok(())
}

/// After a round without a patch by the roster's active agent: moves `active` on when that
/// agent's run of such rounds for `component` reached `RAZAR_RSTAR_THRESHOLD` (DESIGN §9.3).
async fn climb(
    paths: &Paths,
    roster: &Roster,
    current: usize,
    component: &str,
    error: &str,
    metrics: Option<&Metrics>,
) -> Result<(), AskError> {
    let threshold = policy::threshold(std::env::var("RAZAR_RSTAR_THRESHOLD").ok().as_deref());
    let from = roster.agents[current].label();
    let run = policy::failed_run(&context::records(paths, component), &from);
    let Some(next) = policy::next_agent(current, roster.agents.len(), run, threshold) else { return Ok(()) };
    let to = roster.agents[next].label();
    policy::set_active(&roster.file, &to).map_err(|e| AskError::Roster(e.to_string()))?;
    context::journal_escalation(paths, component, error, &from, &to)?;
    if let Some(m) = metrics {
        m.escalation(component, &to);
    }
    tracing::warn!("{from} brought no patch for {component} in {run} rounds in a row; the ladder moves to {to}");
    let escalations = context::records(paths, component)
        .iter()
        .filter(|r| r.get("event").and_then(Value::as_str) == Some("escalation"))
        .count() as u32;
    let warn_at = std::env::var("RAZAR_ESCALATION_WARNING_THRESHOLD")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(policy::DEFAULT_WARNING_THRESHOLD);
    if policy::warn_of_escalations(escalations, warn_at) {
        let client = reqwest::Client::builder().build().map_err(|e| AskError::Roster(e.to_string()))?;
        let alerts = crate::alerts::Alerts::new(paths, crate::alerts::webhook_from_env(), client);
        let message = format!("{component} escalated {escalations} times; the ladder is now at {to}");
        let context = json!({"component": component, "escalations": escalations, "agent": to, "agent_original": from});
        if let Err(e) = alerts.raise(message, crate::alerts::Severity::Warning, context).await {
            tracing::warn!("cannot write the escalation alert: {e}");
        }
    }
    Ok(())
}
