//! `razar agents check [--include-remote] [--json]`: resolves every agent of the roster and
//! prints one line per agent (name, protocol, endpoint, credential source, status) followed by
//! its problems and warnings; with `--include-remote`, probes each resolvable agent.
//!
//! Exit 0 when every agent resolves (and, with `--include-remote`, answers as expected);
//! 2 otherwise, including a missing or unreadable roster. Secrets are never printed: the
//! credential column says where the secret came from, never what it is.

use serde_json::{Value, json};

use crate::cli::{AgentsArgs, AgentsCheckArgs, AgentsCommand};
use crate::config::{Invalid, ProcessEnv};
use crate::error::{Error, Result};
use crate::exit;
use crate::paths::Paths;
use crate::roster::remote::{self, Outcome, Report};
use crate::roster::{self, Agent, CredentialSource, Roster};

pub async fn run(paths: &Paths, args: AgentsArgs) -> Result<u8> {
    match args.command {
        AgentsCommand::Check(args) => check(paths, args).await,
    }
}

async fn check(paths: &Paths, args: AgentsCheckArgs) -> Result<u8> {
    let file = paths.join(roster::FILE);
    if !file.exists() {
        return Err(Error::Usage(format!(
            "{}: not found; the agent roster lists the repair agents in escalation order (see docs/agents.md)",
            file.display()
        )));
    }
    let roster = roster::load(&file, &ProcessEnv).map_err(|d| Error::Config(Invalid(vec![d])))?;
    let reports: Vec<Option<Report>> = if args.include_remote {
        let http = remote::Http::new().map_err(Error::Internal)?;
        let probes = roster.agents.iter().map(|a| async {
            if a.is_usable() { Some(remote::probe(a, &http, remote::PROBE_TIMEOUT).await) } else { None }
        });
        futures_util::future::join_all(probes).await
    } else {
        vec![None; roster.agents.len()]
    };

    if args.json {
        let items: Vec<Value> =
            roster.agents.iter().zip(&reports).map(|(a, r)| to_json(&roster, a, r, args.include_remote)).collect();
        let text = serde_json::to_string_pretty(&items).map_err(|e| Error::Internal(e.to_string()))?;
        crate::outln!("{text}");
    } else {
        print_table(&roster, &reports);
    }

    for d in &roster.problems {
        crate::errln!("razar: {d}");
    }
    let broken = roster.agents.iter().filter(|a| !a.is_usable()).count();
    let failed = reports.iter().flatten().filter(|r| r.outcome != Outcome::Reachable).count();
    if broken > 0 {
        crate::errln!(
            "razar: {broken} of {} agent{} in {} cannot be used; fix the problems listed",
            roster.agents.len(),
            if roster.agents.len() == 1 { "" } else { "s" },
            file.display()
        );
    }
    if failed > 0 {
        crate::errln!("razar: {failed} agent{} failed the remote probe", if failed == 1 { "" } else { "s" });
    }
    Ok(if roster.problems.is_empty() && broken == 0 && failed == 0 { exit::SUCCESS } else { exit::CONFIG })
}

fn is_current(roster: &Roster, agent: &Agent) -> bool {
    roster.current().is_some_and(|c| c.index == agent.index)
}

fn credential_text(agent: &Agent) -> String {
    match &agent.credential {
        _ if agent.name.is_empty() => "-".into(),
        Ok(Some(c)) => c.source.to_string(),
        Ok(None) => "none needed".into(),
        Err(_) => "missing".into(),
    }
}

fn status_text(agent: &Agent, report: &Option<Report>) -> String {
    let n = agent.problems.len();
    if n > 0 {
        return format!("{n} problem{}", if n == 1 { "" } else { "s" });
    }
    match report {
        None => "ok".into(),
        Some(r) => {
            let ms = r.latency.as_millis();
            match r.outcome {
                Outcome::Unreachable => format!("unreachable: {} ({ms} ms)", r.detail),
                other => format!("{} ({}, {ms} ms)", other.as_str(), r.detail),
            }
        }
    }
}

fn print_table(roster: &Roster, reports: &[Option<Report>]) {
    let rows: Vec<[String; 5]> = roster
        .agents
        .iter()
        .zip(reports)
        .map(|(a, r)| {
            [
                a.label(),
                a.protocol.map_or("?".into(), |p| p.to_string()),
                a.endpoint.as_ref().map_or("-".into(), super::super::roster::Endpoint::display),
                credential_text(a),
                status_text(a, r),
            ]
        })
        .collect();
    let mut widths = [0usize; 4];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row.iter()) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for (agent, row) in roster.agents.iter().zip(&rows) {
        let mark = if is_current(roster, agent) { '*' } else { ' ' };
        let mut line = format!("{mark} ");
        for (w, cell) in widths.iter().zip(row.iter()) {
            line.push_str(&format!("{cell:<w$}  "));
        }
        line.push_str(&row[4]);
        crate::outln!("{}", line.trim_end());
        for d in &agent.problems {
            crate::outln!("    error: {}: {}", d.field, d.message);
        }
        for w in &agent.warnings {
            crate::outln!("    warning: {w}");
        }
    }
}

fn to_json(roster: &Roster, agent: &Agent, report: &Option<Report>, include_remote: bool) -> Value {
    let (source, variable, field) = match &agent.credential {
        Ok(Some(c)) => match &c.source {
            CredentialSource::Env { variable } => ("env", Some(variable.as_str()), None),
            CredentialSource::File { field } => ("file", None, Some(field.as_str())),
        },
        Ok(None) => ("none", None, None),
        Err(_) => ("missing", None, None),
    };
    let remote = match (report, include_remote) {
        (Some(r), _) => json!({
            "outcome": r.outcome.code(),
            "detail": r.detail,
            "latency_ms": r.latency.as_millis() as u64,
        }),
        (None, true) => {
            json!({"outcome": "skipped", "detail": "not probed: the agent has problems", "latency_ms": null})
        }
        (None, false) => Value::Null,
    };
    let ok = agent.is_usable() && report.as_ref().is_none_or(|r| r.outcome == Outcome::Reachable);
    json!({
        "index": agent.index,
        "name": (!agent.name.is_empty()).then_some(&agent.name),
        "active": is_current(roster, agent),
        "protocol": agent.protocol.map(super::super::roster::raw::Protocol::as_str),
        "endpoint": agent.endpoint.as_ref().map(super::super::roster::Endpoint::display),
        "model": agent.model,
        "timeout_seconds": agent.timeout.as_secs_f64(),
        "credential": {"source": source, "variable": variable, "field": field},
        "ok": ok,
        "problems": agent.problems.iter().map(|d| json!({"field": d.field, "message": d.message})).collect::<Vec<_>>(),
        "warnings": agent.warnings,
        "remote": remote,
    })
}
