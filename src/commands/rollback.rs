//! `razar rollback COMPONENT [--config-only] [--patch ID] [--dry-run] [--json]`: undo what the
//! repair pipeline promoted for one component (docs/repair.md).
//!
//! Order: finish any interrupted promotion (`repair::recover`), check every file of every patch
//! to revert against the hashes razar recorded (refusing, with nothing changed, on the first
//! mismatch), revert newest first, restore the roster from `config/razar_ai_agents.bak` when that
//! snapshot exists, then restart the component through the control socket if a boot is running.
//! It reads no config: a rollback must work when the config is what broke.
//!
//! Exit codes: 0 done (also when there was nothing to revert); 2 `--patch` names no applied patch
//! of the component; 10 refused: a file changed since razar wrote it, or a backup is missing
//! (nothing changed); 70 an I/O error.

use std::time::Duration;

use serde_json::json;

use crate::cli::RollbackArgs;
use crate::control::{self, ClientError, Request, Response};
use crate::error::{Error, Result};
use crate::exit;
use crate::paths::Paths;
use crate::repair::history::{self, PatchLogRecord, PatchState};
use crate::repair::{self, PromoteError, RepairPaths};
use crate::roster;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

pub async fn run(paths: &Paths, args: RollbackArgs) -> Result<u8> {
    let repair_paths = RepairPaths::new(&paths.root);
    let name = args.component.as_str();
    let backup = paths.join(roster_backup());
    let roster_snapshot = backup.exists();
    let no_such_patch = |id: &str| {
        Error::Usage(format!(
            "{name} has no applied patch {id} to revert (see `razar quarantine show {name}` or logs/patch_history.jsonl)"
        ))
    };
    if args.dry_run {
        let plan = if args.config_only {
            Vec::new()
        } else {
            repair::rollback::plan(&repair_paths, name, args.patch.as_deref())?
        };
        if let (Some(id), true) = (&args.patch, plan.is_empty()) {
            return Err(no_such_patch(id));
        }
        report(&args, &plan, roster_snapshot, "dry run: nothing changed", true);
        return Ok(exit::SUCCESS);
    }
    let plan = if args.config_only {
        Vec::new()
    } else {
        match repair::rollback::execute(&repair_paths, name, args.patch.as_deref(), "operator") {
            Ok(plan) => plan,
            Err(PromoteError::Fs(e)) => return Err(e.into()),
            Err(refusal) => {
                let message = format!("rollback of {name} refused: {refusal}");
                if args.json {
                    crate::outln!("{}", json!({"component": name, "refused": message}));
                }
                crate::errln!(
                    "razar: {message}; edit the file back or revert by hand, then run `razar rollback {name}` again"
                );
                return Ok(exit::ROLLBACK_REFUSED);
            }
        }
    };
    if let (Some(id), true) = (&args.patch, plan.is_empty()) {
        return Err(no_such_patch(id));
    }
    for p in &plan {
        let mut rec = PatchLogRecord::event(name, &p.applied.patch_id, "revert", "operator", "reverted");
        rec.detail = Some("razar rollback".into());
        history::append_patch_log(&repair_paths.patch_log(), &rec)?;
    }
    if roster_snapshot {
        roster::snapshot::restore(&paths.join(roster::FILE))?;
    }
    let restart = if plan.is_empty() {
        "not needed".to_string()
    } else {
        restart_in_running_boot(paths, name, "restart requested", "no boot running").await
    };
    report(&args, &plan, roster_snapshot, &restart, false);
    Ok(exit::SUCCESS)
}

/// The roster snapshot beside the roster (`config/razar_ai_agents.bak`).
fn roster_backup() -> std::path::PathBuf {
    std::path::Path::new(roster::FILE).with_extension("bak")
}

/// Asks a running boot to restart `name` (after its files changed); says what happened, and
/// warns on stderr when the operator must restart it by hand. `requested` and `no_boot` are
/// the words for the two ordinary outcomes.
pub(crate) async fn restart_in_running_boot(paths: &Paths, name: &str, requested: &str, no_boot: &str) -> String {
    match control::request(paths, &Request::Restart { component: name.to_owned() }, REQUEST_TIMEOUT).await {
        Ok(Response { ok: true, .. }) => requested.into(),
        Ok(Response { message, .. }) => {
            let why = message.unwrap_or_else(|| "no reason given".into());
            crate::errln!("razar: warning: the running boot refused to restart {name}: {why}; restart it yourself");
            format!("restart refused: {why}")
        }
        Err(ClientError::NotRunning) => no_boot.into(),
        Err(e) => {
            crate::errln!("razar: warning: could not ask the running boot to restart {name}: {e}; restart it yourself");
            format!("restart failed: {e}")
        }
    }
}

fn report(args: &RollbackArgs, plan: &[PatchState], roster_snapshot: bool, restart: &str, dry_run: bool) {
    let name = &args.component;
    if args.json {
        let patches: Vec<_> = plan
            .iter()
            .map(|p| {
                json!({
                    "patch_id": p.applied.patch_id,
                    "agent": p.applied.agent,
                    "summary": p.applied.summary,
                    "applied_at": p.applied.timestamp_iso,
                    "files": p.applied.files,
                })
            })
            .collect();
        let out = json!({
            "component": name,
            "dry_run": dry_run,
            "patches": patches,
            "roster_restored": roster_snapshot,
            "restart": restart,
        });
        crate::outln!("{out}");
        return;
    }
    let verb = if dry_run { "would revert" } else { "reverted" };
    if plan.is_empty() && !args.config_only {
        crate::outln!("{name}: no applied patches to revert");
    }
    for p in plan {
        let files: Vec<&str> = p.applied.files.iter().map(|f| f.path.as_str()).collect();
        crate::outln!(
            "{verb} {} ({} by {}, {}): {}",
            p.applied.patch_id,
            p.applied.timestamp_iso,
            p.applied.agent,
            if p.applied.summary.is_empty() { "no summary" } else { &p.applied.summary },
            files.join(", ")
        );
    }
    match (roster_snapshot, dry_run) {
        (true, true) => crate::outln!("would restore {} from {}", roster::FILE, roster_backup().display()),
        (true, false) => crate::outln!("restored {} from {}", roster::FILE, roster_backup().display()),
        (false, _) => crate::outln!("no roster snapshot ({}): roster left as it is", roster_backup().display()),
    }
    if !dry_run && !plan.is_empty() {
        crate::outln!("{name}: {restart}");
    }
}
