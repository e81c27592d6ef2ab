//! `razar handover COMPONENT --dry-run [--error MSG] [--agent NAME | --use-opencode]
//! [--context F] [--json]`: one repair round outside boot (docs/agents.md). The roster's active
//! agent (or `--agent`, or with `--use-opencode` the local `opencode` CLI) gets the component's
//! failure context; its suggestion is printed, saved under `logs/suggestions/` (0600) and
//! journaled in `logs/razar_ai_invocations.json`. No source file changes: applying a suggestion
//! is not available yet, so `--dry-run` is required.
//!
//! Exit codes: 0 a suggestion was received; 12 the agent offered no patch; 13 agent error
//! (unreachable, timeout, HTTP error, unusable reply, the CLI failed); 2 bad usage, an unknown
//! component or agent, or a missing credential.

use std::io::{IsTerminal, Read};

use serde_json::{Value, json};

use crate::cli::HandoverArgs;
use crate::clock;
use crate::config::{ProcessEnv, load};
use crate::error::{Error, Result};
use crate::exit;
use crate::fsutil;
use crate::ladder::agents::{AgentError, Suggestion};
use crate::ladder::context::{self, Invocation};
use crate::ladder::policy;
use crate::ladder::round::{self, Failure, Spec, Target};
use crate::paths::Paths;
use crate::roster::{self, Protocol};

/// Bytes of a `--context` file passed on.
const EXTRA_CONTEXT_CAP: u64 = 64 * 1024;

pub async fn run(paths: &Paths, args: HandoverArgs) -> Result<u8> {
    if !args.dry_run {
        return Err(Error::Usage(
            "applying patches is not available yet; run `razar handover COMPONENT --dry-run` to get a suggestion"
                .into(),
        ));
    }
    let file = args.config.as_ref().map(|c| paths.join(c)).unwrap_or_else(|| paths.default_config());
    let config = load(&file, &paths.root, &ProcessEnv)?;
    let component = config
        .components
        .iter()
        .find(|c| c.name.as_str() == args.component)
        .ok_or_else(|| Error::Usage(format!("{}: no component named {:?}", file.display(), args.component)))?
        .clone();

    let roster_file = paths.join(roster::FILE);
    // `--use-opencode` needs no roster; when there is one, its opencode agent's settings apply.
    let roster = if args.use_opencode && !roster_file.exists() {
        None
    } else if !roster_file.exists() {
        return Err(Error::Usage(format!(
            "{}: not found; the agent roster lists the repair agents (see docs/agents.md)",
            roster_file.display()
        )));
    } else {
        let r = roster::load(&roster_file, &ProcessEnv).map_err(|d| Error::Config(crate::config::Invalid(vec![d])))?;
        // No child (the opencode CLI) may inherit an agent's credential.
        crate::supervise::secrets::add_known(roster::credential_variables(&r));
        Some(r)
    };
    let agent = match (&roster, &args.agent) {
        (None, _) => None,
        (Some(r), _) if args.use_opencode => r.agents.iter().find(|a| a.protocol == Some(Protocol::Opencode)),
        (Some(r), Some(name)) => Some(
            r.find(name).ok_or_else(|| Error::Usage(format!("{}: no agent named {name:?}", roster_file.display())))?,
        ),
        (Some(r), None) => {
            Some(r.current().ok_or_else(|| Error::Usage(format!("{}: lists no agent", roster_file.display())))?)
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
            let credential = agent.credential.as_ref().map_err(|e| Error::Usage(e.to_string()))?;
            if let Some(problem) = agent.problems.first() {
                return Err(Error::Usage(format!("agent {label} cannot be used: {problem}")));
            }
            let protocol =
                agent.protocol.ok_or_else(|| Error::Usage(format!("agent {label} has no known protocol")))?;
            if protocol != Protocol::Opencode && agent.endpoint.is_none() {
                return Err(Error::Usage(format!("agent {label} has no endpoint")));
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
    let shown_endpoint = spec.endpoint.map_or_else(|| "local CLI".to_string(), roster::Endpoint::display);

    let error = args.error.clone().unwrap_or_else(|| "the component failed".into());
    let mut ctx = context::build_failure_context(paths, &component, &error);
    if let Some(extra) = &args.context {
        let path = paths.join(extra);
        let mut text = String::new();
        std::fs::File::open(&path)
            .and_then(|f| f.take(EXTRA_CONTEXT_CAP).read_to_string(&mut text))
            .map_err(|e| Error::Usage(format!("{}: cannot read the --context file: {e}", path.display())))?;
        ctx["operator_context"] = Value::String(text);
    }
    let target = Target { root: &paths.root, component: component.name.as_str(), sources: &component.sources };
    // A one-shot command runs no exporter: the round's metrics would go nowhere.
    let outcome = round::run(&spec, &target, &ctx, None).await;
    let label = spec.label.clone();
    let elapsed = outcome.elapsed.as_secs_f64();

    let now = clock::epoch();
    let record = Invocation {
        component: component.name.as_str(),
        attempt: context::attempts(paths, component.name.as_str()) + 1,
        error: &error,
        patched: false,
        status: if outcome.result.is_ok() { "success" } else { "failure" },
        event: "attempt",
        agent: &label,
        retries: Some(outcome.retries),
        timestamp: now,
        timestamp_iso: clock::iso(now),
    };
    context::journal(paths, &record)?;
    if let (Err(_), None, false, Some(roster), Some(agent)) =
        (&outcome.result, &args.agent, args.use_opencode, &roster, agent)
    {
        climb(paths, roster, agent.index, component.name.as_str(), &error).await?;
    }

    match outcome.result {
        Ok(s) => {
            let saved = save(paths, component.name.as_str(), &label, &s)?;
            let shown = saved.strip_prefix(&paths.root).unwrap_or(&saved).display().to_string();
            if args.json {
                let out = json!({"component": component.name.as_str(), "agent": label, "summary": s.summary,
                    "patch": s.patch, "tests": s.tests, "saved": shown, "seconds": elapsed,
                    "exchanges": outcome.exchanges, "reads": outcome.reads});
                crate::outln!("{out}");
            } else {
                crate::outln!("agent: {label}");
                crate::outln!("summary: {}", s.summary.as_deref().unwrap_or("(none)"));
                for t in &s.tests {
                    crate::outln!("test: {t}");
                }
                for r in &outcome.reads {
                    crate::outln!("read: {r}");
                }
                crate::outln!("saved: {shown}");
                crate::outln!("");
                let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
                let diff = s.patch.trim_end();
                crate::outln!("{}", if colour { coloured(diff) } else { diff.to_string() });
            }
            Ok(exit::SUCCESS)
        }
        Err(failure) => {
            let (code, kind, detail) = match failure {
                Failure::Agent(AgentError::NoPatch(d)) => (exit::NO_PATCH, "no_patch", d),
                Failure::Agent(AgentError::BadReply(d)) => (exit::AGENT_ERROR, "bad_reply", d),
                Failure::Transport(d) => (exit::AGENT_ERROR, "agent_error", d),
            };
            // Defence in depth: nothing built above holds the secret, and nothing printed may.
            let detail = match spec.secret {
                Some(s) if s.expose().len() >= 4 => detail.replace(s.expose(), "***"),
                _ => detail,
            };
            if args.json {
                crate::outln!(
                    "{}",
                    json!({"component": component.name.as_str(), "agent": label, "error": kind, "detail": detail})
                );
            }
            crate::errln!("razar: agent {label} ({shown_endpoint}): {detail}");
            Ok(code)
        }
    }
}

/// After a round without a patch by the roster's active agent: moves `active` on when that
/// agent's run of such rounds for `component` reached `RAZAR_RSTAR_THRESHOLD` (DESIGN §9.3).
async fn climb(paths: &Paths, roster: &roster::Roster, current: usize, component: &str, error: &str) -> Result<()> {
    let threshold = policy::threshold(std::env::var("RAZAR_RSTAR_THRESHOLD").ok().as_deref());
    let from = roster.agents[current].label();
    let run = policy::failed_run(&context::records(paths, component), &from);
    let Some(next) = policy::next_agent(current, roster.agents.len(), run, threshold) else { return Ok(()) };
    let to = roster.agents[next].label();
    policy::set_active(&roster.file, &to).map_err(|e| Error::Internal(e.to_string()))?;
    context::journal_escalation(paths, component, error, &from, &to)?;
    crate::errln!("razar: {from} brought no patch for {component} in {run} rounds in a row; the ladder moves to {to}");
    let escalations = context::records(paths, component)
        .iter()
        .filter(|r| r.get("event").and_then(serde_json::Value::as_str) == Some("escalation"))
        .count() as u32;
    let warn_at = std::env::var("RAZAR_ESCALATION_WARNING_THRESHOLD")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(policy::DEFAULT_WARNING_THRESHOLD);
    if policy::warn_of_escalations(escalations, warn_at) {
        let client = reqwest::Client::builder().build().map_err(|e| Error::Internal(e.to_string()))?;
        let alerts = crate::alerts::Alerts::new(paths, crate::alerts::webhook_from_env(), client);
        let message = format!("{component} escalated {escalations} times; the ladder is now at {to}");
        let context = json!({"component": component, "escalations": escalations, "agent": to, "agent_original": from});
        alerts.raise(message, crate::alerts::Severity::Warning, context).await?;
    }
    Ok(())
}

fn save(paths: &Paths, component: &str, agent: &str, s: &Suggestion) -> Result<std::path::PathBuf> {
    let dir = paths.join("logs/suggestions");
    fsutil::ensure_dir(&dir)?;
    let path = dir.join(format!("{component}-{}.json", clock::epoch_millis()));
    let record = json!({"component": component, "agent": agent, "summary": s.summary, "patch": s.patch,
        "tests": s.tests, "timestamp_iso": clock::iso(clock::epoch())});
    let bytes = serde_json::to_vec_pretty(&record).map_err(|e| Error::Internal(e.to_string()))?;
    fsutil::atomic_write(&path, &bytes, 0o600)?;
    Ok(path)
}

/// `diff` with ANSI colours: additions green, removals red, hunk headers cyan, file headers bold.
fn coloured(diff: &str) -> String {
    diff.lines()
        .map(|line| {
            let code = if line.starts_with("+++") || line.starts_with("---") {
                "1"
            } else if line.starts_with('+') {
                "32"
            } else if line.starts_with('-') {
                "31"
            } else if line.starts_with("@@") {
                "36"
            } else {
                return line.to_string();
            };
            format!("\x1b[{code}m{line}\x1b[0m")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    #[test]
    fn diffs_are_coloured_line_by_line() {
        let diff = "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-old\n+new\n same";
        assert_eq!(
            super::coloured(diff),
            "\x1b[1m--- a/x\x1b[0m\n\x1b[1m+++ b/x\x1b[0m\n\x1b[36m@@ -1 +1 @@\x1b[0m\n\x1b[31m-old\x1b[0m\n\x1b[32m+new\x1b[0m\n same"
        );
    }
}
