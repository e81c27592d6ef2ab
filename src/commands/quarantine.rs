//! `razar quarantine list | show C | add C --reason R | release C [--note N]`: the quarantine
//! ledger from the command line. The ledger's rules live in `crate::quarantine`.
//!
//! Exit codes: 0 done; 2 for an invalid or unknown component name, a component that is not
//! quarantined (`show`, `release`) or already is (`add`), or an explicit `--config` that does
//! not load; 70 when a file cannot be read or written.

use std::path::Path;

use crate::cli::{QuarantineAddArgs, QuarantineArgs, QuarantineCommand, QuarantineReleaseArgs, QuarantineShowArgs};
use crate::clock;
use crate::config::{self, ComponentName, ProcessEnv};
use crate::control;
use crate::error::{Error, Result};
use crate::exit;
use crate::paths::Paths;
use crate::quarantine::{Entry, Ledger, LedgerError, Source};
use crate::repair;
use crate::sequencer::history::History;
use crate::text::one_line;

/// A ledger change that a running boot must act on: stop an added component, start a
/// released one.
#[derive(Debug, Clone)]
pub enum Change {
    Added(Entry),
    Released(Entry),
}

pub async fn run(paths: &Paths, args: QuarantineArgs) -> Result<u8> {
    let ledger = Ledger::new(paths);
    let change = match args.command {
        QuarantineCommand::List(a) => return list(&ledger, a.json),
        QuarantineCommand::Show(a) => return show(paths, &ledger, &a),
        QuarantineCommand::Add(a) => add(paths, &ledger, &a)?,
        QuarantineCommand::Release(a) => release(paths, &ledger, &a)?,
    };
    // The ledger is changed and durable here; a running boot is told after this point.
    report(&change);
    notify_running_boot(paths).await;
    Ok(exit::SUCCESS)
}

/// Asks a running boot to re-read the ledger. The change itself has succeeded whatever happens
/// here: a boot that is not told picks it up at its next reload or start.
async fn notify_running_boot(paths: &Paths) {
    let told = control::request(paths, &control::Request::QuarantineReload, std::time::Duration::from_secs(5)).await;
    match told {
        Ok(response) if response.ok => crate::errln!("razar: running boot notified"),
        // No boot: the next one reads the ledger when it plans its launch.
        Err(control::ClientError::NotRunning) => tracing::debug!("no boot running; nothing to notify"),
        Ok(response) => warn_not_told(&response.message.unwrap_or_else(|| "it refused the request".to_owned())),
        Err(e) => warn_not_told(&e.to_string()),
    }
}

fn warn_not_told(why: &str) {
    tracing::warn!(
        "the running boot was not told ({why}); the ledger change stands and the boot picks it up at its next quarantine reload or boot"
    );
}

fn component_name(name: &str) -> Result<ComponentName> {
    ComponentName::new(name).map_err(Error::Usage)
}

fn list(ledger: &Ledger, json: bool) -> Result<u8> {
    let scan = ledger.scan()?;
    for u in &scan.unreadable {
        crate::errln!("razar: warning: {}", u.message());
    }
    let entries = scan.entries;
    if json {
        print_json(&entries)?;
        return Ok(exit::SUCCESS);
    }
    if entries.is_empty() && scan.unreadable.is_empty() {
        crate::outln!("no component is quarantined");
        return Ok(exit::SUCCESS);
    }
    let mut rows: Vec<[String; 4]> = entries
        .iter()
        .map(|e| [e.name.to_string(), quarantined_at(e), e.attempts.to_string(), one_line(&e.reason, 100)])
        .collect();
    rows.extend(scan.unreadable.iter().map(|u| {
        [
            u.name.to_string(),
            "?".into(),
            "?".into(),
            format!("UNREADABLE ENTRY: {}", one_line(&u.error.to_string(), 100)),
        ]
    }));
    rows.sort();
    let header = ["COMPONENT", "QUARANTINED AT (UTC)", "ATTEMPTS", "REASON"].map(String::from);
    let widths: Vec<usize> =
        (0..3).map(|i| rows.iter().chain([&header]).map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
    for row in [&header].into_iter().chain(&rows) {
        crate::outln!(
            "{:<w0$}  {:<w1$}  {:>w2$}  {}",
            row[0],
            row[1],
            row[2],
            row[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        );
    }
    Ok(exit::SUCCESS)
}

fn show(paths: &Paths, ledger: &Ledger, args: &QuarantineShowArgs) -> Result<u8> {
    let name = component_name(&args.component)?;
    let found = match ledger.get(&name) {
        Ok(found) => found,
        // A bad entry is the operator's to fix, like a bad config file (exit 2).
        Err(error) if error.source.kind() == std::io::ErrorKind::InvalidData => {
            return Err(Error::Usage(crate::quarantine::Unreadable { name, error }.message()));
        }
        Err(e) => return Err(e.into()),
    };
    let Some(entry) = found else {
        return Err(Error::Usage(format!("`{name}` is not quarantined (see `razar quarantine list`)")));
    };
    if args.json {
        print_json(&entry)?;
        return Ok(exit::SUCCESS);
    }
    crate::outln!("component:       {}", entry.name);
    crate::outln!("quarantined at:  {} UTC", quarantined_at(&entry));
    crate::outln!("source:          {}", entry.source.as_str());
    crate::outln!("attempts:        {}", entry.attempts);
    crate::outln!("reason:          {}", entry.reason.trim_end().replace('\n', "\n                 "));
    let patches = if entry.patches_applied.is_empty() { "none".to_owned() } else { entry.patches_applied.join(", ") };
    crate::outln!("patches applied: {patches}");
    if let Some(command) = &entry.command {
        let shown = match command {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        crate::outln!("command:         {shown}");
    }
    if let Some(kind) = &entry.kind {
        crate::outln!("kind:            {kind}");
    }
    if !entry.depends_on.is_empty() {
        crate::outln!("depends on:      {}", entry.depends_on.join(", "));
    }
    let history = repair::history::read_history(&repair::RepairPaths::new(&paths.root).history())?;
    let lines = repair::history::describe(&repair::history::patches(&history, Some(name.as_str())), 20);
    if !lines.is_empty() {
        crate::outln!("patch history (undo with `razar rollback {name}`):");
        for line in lines {
            crate::outln!("  {line}");
        }
    }
    Ok(exit::SUCCESS)
}

fn add(paths: &Paths, ledger: &Ledger, args: &QuarantineAddArgs) -> Result<Change> {
    let name = component_name(&args.component)?;
    let reason = args.reason.trim();
    if reason.is_empty() {
        return Err(Error::Usage("--reason must say why the component is quarantined".into()));
    }
    let component = configured_component(paths, &name, args.config.as_deref())?;
    if let Some(existing) = ledger.get(&name)? {
        return Err(Error::Usage(format!(
            "`{name}` is already quarantined (since {} UTC: {}); release it first to replace the entry",
            quarantined_at(&existing),
            one_line(&existing.reason, 100)
        )));
    }
    let entry = match &component {
        Some(c) => Entry::for_component(c, reason, Source::Operator),
        None => Entry::new(name, reason, Source::Operator),
    };
    ledger.add(&entry)?;
    Ok(Change::Added(entry))
}

/// The component `name` in the config, so the entry records its summary. With no loadable
/// default config there is nothing to check against: any valid name is accepted, with a
/// warning. An explicit `--config` must load.
fn configured_component(
    paths: &Paths,
    name: &ComponentName,
    explicit: Option<&Path>,
) -> Result<Option<config::Component>> {
    let file = explicit.map(|c| paths.join(c)).unwrap_or_else(|| paths.default_config());
    let cfg = match config::load(&file, &paths.root, &ProcessEnv) {
        Ok(cfg) => cfg,
        Err(invalid) if explicit.is_some() => return Err(invalid.into()),
        Err(invalid) => {
            let why = if file.exists() {
                format!("it does not load ({} problem(s); see `razar validate`)", invalid.0.len())
            } else {
                "it does not exist".to_owned()
            };
            tracing::warn!(
                "cannot check that `{name}` is a component: no usable config at {} ({why}); quarantining it anyway",
                file.display()
            );
            return Ok(None);
        }
    };
    if let Some(c) = cfg.component(name.as_str()) {
        return Ok(Some(c.clone()));
    }
    let names: Vec<&str> = cfg.components.iter().map(|c| c.name.as_str()).collect();
    let hint = config::load::did_you_mean(name.as_str(), names.iter().copied())
        .map(|s| format!("; did you mean `{s}`?"))
        .unwrap_or_default();
    const SHOWN: usize = 20;
    let mut known = names.iter().take(SHOWN).copied().collect::<Vec<_>>().join(", ");
    if names.len() > SHOWN {
        known.push_str(&format!(", … ({} in all)", names.len()));
    }
    Err(Error::Usage(format!(
        "unknown component `{name}` in {}{hint} (components: {})",
        file.display(),
        if known.is_empty() { "none".to_owned() } else { known }
    )))
}

fn release(paths: &Paths, ledger: &Ledger, args: &QuarantineReleaseArgs) -> Result<Change> {
    let name = component_name(&args.component)?;
    let note = args.note.as_deref().map(str::trim).filter(|n| !n.is_empty());
    match ledger.release(&name, note) {
        Ok(entry) => {
            // A released component starts with a clean slate: otherwise the failure limit
            // would quarantine it again before its next launch.
            let path = paths.boot_history();
            let forgiven = History::update(&path, |h| {
                h.component_failures.remove(name.as_str());
            });
            if let Err(e) = forgiven {
                crate::errln!("razar: warning: cannot reset {name}'s failure count in {}: {e}", path.display());
            }
            Ok(Change::Released(entry))
        }
        Err(LedgerError::NotQuarantined { name }) => {
            Err(Error::Usage(format!("`{name}` is not quarantined; nothing to release (see `razar quarantine list`)")))
        }
        Err(LedgerError::Fs(e)) => Err(e.into()),
    }
}

fn report(change: &Change) {
    match change {
        Change::Added(e) => crate::outln!("quarantined `{}`: {}", e.name, one_line(&e.reason, 200)),
        Change::Released(e) => {
            crate::outln!(
                "released `{}` (quarantined since {} UTC: {})",
                e.name,
                quarantined_at(e),
                one_line(&e.reason, 100)
            );
        }
    }
}

fn print_json<T: serde::Serialize + ?Sized>(value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::Internal(format!("serializing: {e}")))?;
    crate::outln!("{text}");
    Ok(())
}

/// `YYYY-MM-DD HH:MM:SS` when the entry has an epoch, else the recorded text (upstream files).
fn quarantined_at(entry: &Entry) -> String {
    match entry.quarantined_at_epoch {
        Some(epoch) => clock::human(epoch),
        None if entry.quarantined_at.is_empty() => "unknown".to_owned(),
        None => entry.quarantined_at.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quarantine_reason_is_flattened_for_the_table() {
        assert_eq!(one_line("  a\r\nb \n\tc\x1b[0m ", 100), "a / b / c[0m");
        assert_eq!(one_line("abcdef", 4), "abc…");
        assert_eq!(one_line("", 4), "");
    }
}
