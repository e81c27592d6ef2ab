//! `razar handover COMPONENT [--dry-run] [--error MSG] [--agent NAME | --use-opencode]
//! [--context F] [--json]`: one repair round outside boot (docs/agents.md, docs/repair.md).
//! The roster's active agent (or `--agent`, or with `--use-opencode` the local `opencode` CLI)
//! gets the component's failure context; the round is journaled in
//! `logs/razar_ai_invocations.json` and its suggestion saved under `logs/suggestions/` (0600).
//! Without `--dry-run` the suggestion goes through the repair pipeline — paths, sandbox, the
//! component's tests, promotion — and, when a boot is running, the component is restarted
//! through the control socket to run the patched files.
//!
//! Exit codes: 0 promoted (`--dry-run`: a suggestion was received); 12 the agent offered no
//! patch; 13 agent error (unreachable, timeout, HTTP error, unusable reply, the CLI failed);
//! 14 the patch was rejected or failed the component's tests (nothing changed); 2 bad usage, an
//! unknown component or agent, or a missing credential.

use std::io::IsTerminal;

use serde_json::json;

use crate::cli::HandoverArgs;
use crate::clock;
use crate::config::{ProcessEnv, load};
use crate::error::{Error, Result};
use crate::exit;
use crate::fsutil;
use crate::ladder::agents::{AgentError, Suggestion};
use crate::ladder::round::Failure;
use crate::paths::Paths;
use crate::repair::Outcome;
use crate::sequencer::heal::{self, AskError, Choice};

pub async fn run(paths: &Paths, args: HandoverArgs) -> Result<u8> {
    let file = args.config.as_ref().map(|c| paths.join(c)).unwrap_or_else(|| paths.default_config());
    let config = load(&file, &paths.root, &ProcessEnv)?;
    let component = config
        .components
        .iter()
        .find(|c| c.name.as_str() == args.component)
        .ok_or_else(|| Error::Usage(format!("{}: no component named {:?}", file.display(), args.component)))?
        .clone();
    let usage = |e: AskError| match e {
        AskError::Roster(message) | AskError::Credential { message, .. } => Error::Usage(message),
        AskError::Fs(e) => Error::Fs(e),
    };
    let roster = heal::load_roster(paths).map_err(usage)?;
    let choice = match (&args.agent, args.use_opencode) {
        (_, true) => Choice::Opencode,
        (Some(name), false) => Choice::Named(name.clone()),
        (None, false) => Choice::Active,
    };
    let error = args.error.clone().unwrap_or_else(|| "the component failed".into());
    let extra = args.context.as_ref().map(|f| paths.join(f));
    // A one-shot command runs no exporter: the round's metrics would go nowhere.
    let asked =
        heal::ask(paths, roster.as_ref(), &choice, &component, &error, extra.as_deref(), None).await.map_err(usage)?;
    let label = asked.agent.clone();
    let elapsed = asked.elapsed.as_secs_f64();
    let s = match &asked.result {
        Ok(s) => s,
        Err(failure) => {
            let (code, kind, detail) = match failure {
                Failure::Agent(AgentError::NoPatch(d)) => (exit::NO_PATCH, "no_patch", d.clone()),
                Failure::Agent(AgentError::BadReply(d)) => (exit::AGENT_ERROR, "bad_reply", d.clone()),
                Failure::Transport(d) => (exit::AGENT_ERROR, "agent_error", d.clone()),
            };
            // Defence in depth: nothing built above holds the secret, and nothing printed may.
            let detail = asked.scrub(detail);
            if args.json {
                crate::outln!(
                    "{}",
                    json!({"component": component.name.as_str(), "agent": label, "error": kind, "detail": detail})
                );
            }
            crate::errln!("razar: agent {label} ({}): {detail}", asked.endpoint);
            return Ok(code);
        }
    };
    let saved = save(paths, component.name.as_str(), &label, s)?;
    let shown = saved.strip_prefix(&paths.root).unwrap_or(&saved).display().to_string();
    let mut out = json!({"component": component.name.as_str(), "agent": label, "summary": s.summary,
        "patch": s.patch, "tests": s.tests, "saved": shown, "seconds": elapsed,
        "exchanges": asked.exchanges, "reads": asked.reads});
    if args.dry_run {
        print_suggestion(&args, &out, s, &asked.reads);
        return Ok(exit::SUCCESS);
    }
    let verdict = heal::verify(paths, &component, &label, s).await.map_err(Error::Internal)?;
    let (code, status, detail) = match &verdict {
        Outcome::Promoted { patch_id, files } => {
            let restart = super::rollback::restart_in_running_boot(
                paths,
                component.name.as_str(),
                "the running boot restarts it",
                "no boot is running: the next boot runs it",
            )
            .await;
            out["patch_id"] = json!(patch_id);
            out["files"] = json!(files.iter().map(|f| f.path.clone()).collect::<Vec<_>>());
            out["restart"] = json!(restart);
            (exit::SUCCESS, "promoted", format!("patch {patch_id} promoted; {restart}"))
        }
        Outcome::Rejected { patch_id, reason } => {
            out["patch_id"] = json!(patch_id);
            (exit::PATCH_NOT_VERIFIED, "rejected", format!("patch {patch_id} rejected: {reason}; nothing changed"))
        }
        Outcome::TestsFailed { patch_id, output } => {
            out["patch_id"] = json!(patch_id);
            out["test_output"] = json!(output);
            let tail: Vec<&str> = output.lines().rev().take(5).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            (
                exit::PATCH_NOT_VERIFIED,
                "tests_failed",
                format!("patch {patch_id} failed the component's tests; nothing changed:\n{}", tail.join("\n")),
            )
        }
    };
    out["verdict"] = json!(status);
    if args.json {
        crate::outln!("{out}");
    } else {
        crate::outln!("agent: {label}");
        crate::outln!("summary: {}", s.summary.as_deref().unwrap_or("(none)"));
        crate::outln!("saved: {shown}");
        if code == exit::SUCCESS {
            crate::outln!("{detail}");
        }
    }
    if code != exit::SUCCESS {
        crate::errln!("razar: {}: {detail}", component.name);
    }
    Ok(code)
}

fn print_suggestion(args: &HandoverArgs, out: &serde_json::Value, s: &Suggestion, reads: &[String]) {
    if args.json {
        crate::outln!("{out}");
        return;
    }
    crate::outln!("agent: {}", out["agent"].as_str().unwrap_or_default());
    crate::outln!("summary: {}", s.summary.as_deref().unwrap_or("(none)"));
    for t in &s.tests {
        crate::outln!("test: {t}");
    }
    for r in reads {
        crate::outln!("read: {r}");
    }
    crate::outln!("saved: {}", out["saved"].as_str().unwrap_or_default());
    crate::outln!("");
    let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let diff = s.patch.trim_end();
    crate::outln!("{}", if colour { coloured(diff) } else { diff.to_string() });
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
