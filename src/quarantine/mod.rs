//! The quarantine ledger (DESIGN §7): `quarantine/<name>.json` per quarantined component plus
//! the Markdown log `docs/quarantine_log.md`.
//!
//! Invariants: the JSON files are the truth: a component is quarantined exactly while its
//! readable file exists. Files are written atomically (`fsutil::write_json`) and named only
//! after a validated `ComponentName`. A file that does not parse keeps its component quarantined
//! (when in doubt, a component stays out), is reported by `list` (and `razar validate`), and is
//! never moved by a reader; only `release` moves it aside (`<name>.json.corrupt-<ms>`). The Markdown log is a record for people: a failure
//! to append to it is logged, and never undoes or blocks a ledger change.

pub mod markdown;
pub mod policy;

use std::io;
use std::path::Path;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::clock;
use crate::config::{self, ComponentName};
use crate::fsutil::{self, FsError};
use crate::paths::Paths;

pub use markdown::{Action, MarkdownLog};
pub use policy::should_quarantine_up_front;

/// Who quarantined a component.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The boot, after retries, repair rounds or the failure limit. Upstream files, which
    /// carry no `source`, were all written by razar.
    #[default]
    Razar,
    /// `razar quarantine add`.
    Operator,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Razar => "razar",
            Source::Operator => "operator",
        }
    }
}

/// One `quarantine/<name>.json`. Fields other than `name` default when absent so files
/// written by the upstream Python system load; fields razar does not know are kept in
/// `extra` and written back unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    #[serde(deserialize_with = "component_name")]
    pub name: ComponentName,
    #[serde(default)]
    pub reason: String,
    /// Launch attempts made before the component was quarantined (0 for an operator's add).
    #[serde(default)]
    pub attempts: u32,
    /// Patch ids applied to the component before it was quarantined.
    #[serde(default)]
    pub patches_applied: Vec<String>,
    /// UTC ISO-8601.
    #[serde(default)]
    pub quarantined_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantined_at_epoch: Option<f64>,
    #[serde(default)]
    pub source: Source,
    /// The component's command as configured: an argv list or a shell string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Value>,
    /// `service` or `task`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn component_name<'de, D: Deserializer<'de>>(d: D) -> Result<ComponentName, D::Error> {
    let s = String::deserialize(d)?;
    ComponentName::new(&s).map_err(serde::de::Error::custom)
}

impl Entry {
    /// A new entry stamped with the current time, without a config summary.
    pub fn new(name: ComponentName, reason: impl Into<String>, source: Source) -> Self {
        let now = clock::epoch();
        Entry {
            name,
            reason: reason.into(),
            attempts: 0,
            patches_applied: Vec::new(),
            quarantined_at: clock::iso(now),
            quarantined_at_epoch: Some(now),
            source,
            command: None,
            kind: None,
            depends_on: Vec::new(),
            extra: Map::new(),
        }
    }

    /// An entry for a configured component, with its config summary (command, kind,
    /// dependencies). Its environment is left out: it may hold secrets.
    pub fn for_component(component: &config::Component, reason: impl Into<String>, source: Source) -> Self {
        let mut entry = Entry::new(component.name.clone(), reason, source);
        entry.set_summary(component);
        entry
    }

    /// Copies the component's config summary into the entry.
    pub fn set_summary(&mut self, component: &config::Component) {
        self.command = Some(match &component.command {
            config::Command::Argv(argv) => Value::from(argv.clone()),
            config::Command::Shell(s) => Value::from(s.clone()),
        });
        self.kind = Some(
            match component.kind {
                config::Kind::Service => "service",
                config::Kind::Task => "task",
            }
            .to_owned(),
        );
        self.depends_on = component.depends_on.iter().map(|d| d.name.to_string()).collect();
    }

    /// The `Details` cell of the entry's `quarantined` row.
    fn log_details(&self) -> String {
        let base = match self.source {
            Source::Razar if self.attempts > 0 => format!("{} (after {} attempts)", self.reason, self.attempts),
            Source::Razar => self.reason.clone(),
            Source::Operator => format!("operator: {}", self.reason),
        };
        match self.extra.get("diagnosis").and_then(Value::as_str) {
            Some(d) => format!("{base}; {d}"),
            None => base,
        }
    }
}

/// A ledger failure.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("{name} is not quarantined")]
    NotQuarantined { name: ComponentName },
    #[error(transparent)]
    Fs(#[from] FsError),
}

/// The quarantine ledger of one root.
#[derive(Debug, Clone)]
pub struct Ledger {
    paths: Paths,
    log: MarkdownLog,
}

impl Ledger {
    pub fn new(paths: &Paths) -> Self {
        Ledger { paths: paths.clone(), log: MarkdownLog::new(paths.quarantine_log()) }
    }

    /// The Markdown log this ledger appends to.
    pub fn log_path(&self) -> &Path {
        self.log.path()
    }

    /// Every readable entry, by name; unreadable ones are skipped with a warning (see
    /// [`Ledger::scan`]). Errs only when the directory itself cannot be read.
    pub fn list(&self) -> Result<Vec<Entry>, FsError> {
        let scan = self.scan()?;
        for u in &scan.unreadable {
            tracing::warn!("{}", u.message());
        }
        Ok(scan.entries)
    }

    /// Every `quarantine/<name>.json`, readable or not: the components that are quarantined.
    pub fn names(&self) -> Result<Vec<ComponentName>, FsError> {
        let dir = self.paths.quarantine_dir();
        let read = match std::fs::read_dir(&dir) {
            Ok(read) => read,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(FsError::new("reading directory", &dir, e)),
        };
        let mut names = Vec::new();
        for item in read {
            let item = item.map_err(|e| FsError::new("reading directory", &dir, e))?;
            let file_name = item.file_name();
            let Some(stem) = file_name.to_str().and_then(|n| n.strip_suffix(".json")) else { continue };
            match ComponentName::new(stem) {
                Ok(name) => names.push(name),
                Err(_) => tracing::debug!(file = %item.path().display(), "not a quarantine entry; ignored"),
            }
        }
        names.sort();
        Ok(names)
    }

    /// Every entry, the readable ones parsed and the others reported. Reads only: nothing is
    /// moved. Files that are not `<valid name>.json` are ignored.
    pub fn scan(&self) -> Result<Scan, FsError> {
        let mut scan = Scan::default();
        for name in self.names()? {
            // One unreadable file (permissions, bad JSON) must not hide the others.
            match self.get(&name) {
                Ok(Some(entry)) => scan.entries.push(entry),
                Ok(None) => {}
                Err(e) => scan.unreadable.push(Unreadable { name, error: e }),
            }
        }
        Ok(scan)
    }

    /// The entry for `name`, if it is quarantined. A file that exists but cannot be read or
    /// parsed is an error (the component counts as quarantined, see [`Ledger::is_quarantined`]);
    /// it is left where it is.
    pub fn get(&self, name: &ComponentName) -> Result<Option<Entry>, FsError> {
        let path = self.paths.quarantine_file(name);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(FsError::new("reading", &path, e)),
        };
        let mut entry: Entry = serde_json::from_slice(&bytes)
            .map_err(|e| FsError::new("parsing", &path, io::Error::new(io::ErrorKind::InvalidData, e)))?;
        if &entry.name != name {
            tracing::warn!(file = %path.display(), recorded = %entry.name,
                "quarantine entry names another component; the file name wins");
            entry.name = name.clone();
        }
        Ok(Some(entry))
    }

    /// Whether `name` is quarantined. A file that exists but cannot be read counts as
    /// quarantined (with a warning): when in doubt, a component stays out of the boot.
    pub fn is_quarantined(&self, name: &ComponentName) -> bool {
        match self.get(name) {
            Ok(entry) => entry.is_some(),
            Err(e) => {
                tracing::warn!(error = %e, component = %name, "quarantine entry unreadable; treating it as quarantined");
                true
            }
        }
    }

    /// Writes `entry` (replacing any earlier entry for the component) and logs a
    /// `quarantined` row.
    pub fn add(&self, entry: &Entry) -> Result<(), FsError> {
        fsutil::write_json(&self.paths.quarantine_file(&entry.name), entry)?;
        self.log_or_warn(&entry.name, Action::Quarantined, &entry.log_details());
        Ok(())
    }

    /// Deletes the entry for `name` and logs a `released` row with `note`. Returns the entry
    /// that was released.
    pub fn release(&self, name: &ComponentName, note: Option<&str>) -> Result<Entry, LedgerError> {
        let path = self.paths.quarantine_file(name);
        let entry = match self.get(name) {
            Ok(entry) => entry.ok_or_else(|| LedgerError::NotQuarantined { name: name.clone() })?,
            // An entry that does not parse is released by moving it aside, kept for inspection.
            Err(e) if e.source.kind() == io::ErrorKind::InvalidData => {
                let aside = fsutil::move_aside(&path)?;
                let why = format!("unreadable entry moved to {}", aside.display());
                self.log_or_warn(name, Action::Released, [note.unwrap_or_default(), &why].join(" ").trim());
                return Ok(Entry::new(name.clone(), why, Source::Razar));
            }
            Err(e) => return Err(e.into()),
        };
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            // Released by someone else between the read and the delete.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(LedgerError::NotQuarantined { name: name.clone() });
            }
            Err(e) => return Err(FsError::new("removing", &path, e).into()),
        }
        sync_dir(&self.paths.quarantine_dir());
        self.log_or_warn(name, Action::Released, note.unwrap_or_default());
        Ok(entry)
    }

    /// Logs a `diagnostic` row (for example a repair agent's findings) for `name`.
    pub fn log_diagnostic(&self, name: &ComponentName, details: &str) -> Result<(), FsError> {
        self.log.append(name.as_str(), Action::Diagnostic, details)
    }

    fn log_or_warn(&self, name: &ComponentName, action: Action, details: &str) {
        if let Err(e) = self.log.append(name.as_str(), action, details) {
            tracing::warn!(error = %e, component = %name, action = action.as_str(), "quarantine log not written");
        }
    }
}

/// What [`Ledger::scan`] found.
#[derive(Debug, Default)]
pub struct Scan {
    pub entries: Vec<Entry>,
    pub unreadable: Vec<Unreadable>,
}

/// A `quarantine/<name>.json` that cannot be read or parsed: its component stays quarantined.
#[derive(Debug)]
pub struct Unreadable {
    pub name: ComponentName,
    pub error: FsError,
}

impl Unreadable {
    /// One line for the operator: the file, why, and what to do.
    pub fn message(&self) -> String {
        format!(
            "{}; `{}` stays quarantined until the file is fixed or `razar quarantine release {}` moves it aside",
            self.error, self.name, self.name
        )
    }
}

/// Makes a removal durable. Best effort: the removal itself already happened.
fn sync_dir(dir: &Path) {
    if let Err(e) = std::fs::File::open(dir).and_then(|d| d.sync_all()) {
        tracing::debug!(dir = %dir.display(), error = %e, "directory fsync failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> ComponentName {
        ComponentName::new(s).unwrap()
    }

    fn ledger() -> (tempfile::TempDir, Paths, Ledger) {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(dir.path());
        let ledger = Ledger::new(&paths);
        (dir, paths, ledger)
    }

    #[test]
    fn add_list_get_release_round_trip() {
        let (_dir, paths, ledger) = ledger();
        assert!(ledger.list().unwrap().is_empty());
        let mut web = Entry::new(name("web"), "probe failed | twice\nsee log", Source::Razar);
        web.attempts = 4;
        web.patches_applied = vec!["p-1".into()];
        ledger.add(&web).unwrap();
        ledger.add(&Entry::new(name("api"), "manual hold", Source::Operator)).unwrap();

        let listed = ledger.list().unwrap();
        assert_eq!(listed.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), ["api", "web"]);
        assert_eq!(listed[1], web);
        assert!(ledger.is_quarantined(&name("web")));
        assert!(!ledger.is_quarantined(&name("db")));

        let raw: Value =
            serde_json::from_str(&std::fs::read_to_string(paths.join("quarantine/web.json")).unwrap()).unwrap();
        assert_eq!(raw["name"], "web");
        assert_eq!(raw["attempts"], 4);
        assert_eq!(raw["source"], "razar");
        assert_eq!(raw["patches_applied"], serde_json::json!(["p-1"]));
        assert!(raw["quarantined_at"].as_str().unwrap().ends_with('Z'));
        assert!(raw["quarantined_at_epoch"].as_f64().unwrap() > 1.0e9);

        let released = ledger.release(&name("web"), Some("fixed the | probe")).unwrap();
        assert_eq!(released.reason, web.reason);
        assert!(!paths.join("quarantine/web.json").exists());
        assert!(!ledger.is_quarantined(&name("web")));
        assert!(matches!(ledger.release(&name("web"), None), Err(LedgerError::NotQuarantined { .. })));

        ledger.log_diagnostic(&name("api"), "{\"exit\": 1}").unwrap();
        let log = std::fs::read_to_string(ledger.log_path()).unwrap();
        let rows: Vec<&str> = log.lines().filter(|l| l.starts_with("| 2")).collect();
        assert_eq!(rows.len(), 4, "{log}");
        assert!(rows[0].ends_with("| web | quarantined | probe failed \\| twice<br>see log (after 4 attempts) |"));
        assert!(rows[1].ends_with("| api | quarantined | operator: manual hold |"));
        assert!(rows[2].ends_with("| web | released | fixed the \\| probe |"));
        assert!(rows[3].ends_with("| api | diagnostic | {\"exit\": 1} |"));
    }

    #[test]
    fn an_unparseable_entry_stays_quarantined_is_reported_and_is_not_moved_by_readers() {
        let (dir, paths, ledger) = ledger();
        ledger.add(&Entry::new(name("good"), "r", Source::Razar)).unwrap();
        std::fs::write(paths.join("quarantine/bad.json"), "{\"name\": \"bad\", \"reason\": ").unwrap();
        std::fs::write(paths.join("quarantine/evil.json"), "{\"name\": \"../../etc\"}").unwrap();
        std::fs::write(paths.join("quarantine/notes.txt"), "not an entry").unwrap();
        let files = || {
            let mut names: Vec<String> = std::fs::read_dir(dir.path().join("quarantine"))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        };
        let before = files();
        let listed = ledger.list().unwrap();
        assert_eq!(listed.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), ["good"]);
        let scan = ledger.scan().unwrap();
        let unreadable: Vec<&str> = scan.unreadable.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(unreadable, ["bad", "evil"]);
        assert!(scan.unreadable[0].message().contains("quarantine/bad.json"), "{}", scan.unreadable[0].message());
        assert!(ledger.is_quarantined(&name("bad")), "an unreadable entry keeps its component out");
        assert!(ledger.get(&name("bad")).is_err());
        assert_eq!(
            ledger
                .names()
                .unwrap()
                .iter()
                .map(super::super::config::resolved::ComponentName::as_str)
                .collect::<Vec<_>>(),
            ["bad", "evil", "good"]
        );
        assert_eq!(files(), before, "reading the ledger moves nothing");
        // Releasing it is the way out: the file is moved aside, kept for inspection.
        ledger.release(&name("bad"), None).unwrap();
        assert!(!ledger.is_quarantined(&name("bad")));
        assert!(files().iter().any(|f| f.starts_with("bad.json.corrupt-")), "{:?}", files());
    }

    #[test]
    fn upstream_entries_load_and_keep_unknown_fields() {
        let (_dir, paths, ledger) = ledger();
        std::fs::create_dir_all(paths.quarantine_dir()).unwrap();
        std::fs::write(
            paths.join("quarantine/boot_orchestrator.json"),
            r#"{"name": "boot_orchestrator", "command": ["python", "x.py"], "health_check": ["true"],
                "reason": "dependency: circular import", "attempts": 2, "patches_applied": ["fix-1"]}"#,
        )
        .unwrap();
        let entry = ledger.get(&name("boot_orchestrator")).unwrap().unwrap();
        assert_eq!(entry.source, Source::Razar);
        assert_eq!(entry.attempts, 2);
        assert_eq!(entry.command, Some(serde_json::json!(["python", "x.py"])));
        assert_eq!(entry.extra["health_check"], serde_json::json!(["true"]));
        let back = serde_json::to_value(&entry).unwrap();
        assert_eq!(back["health_check"], serde_json::json!(["true"]));
    }

    #[test]
    fn entry_for_component_carries_the_config_summary() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.json");
        std::fs::write(
            &file,
            r#"{"components": [{"name": "db", "command": "run-db", "env": {"TOKEN": "s3cret"}},
                {"name": "web", "command": ["serve", "--port", "1"], "depends_on": ["db"],
                 "health_check": {"tcp": "127.0.0.1:1"}}]}"#,
        )
        .unwrap();
        struct NoEnv;
        impl config::Env for NoEnv {
            fn var(&self, _: &str) -> Option<String> {
                None
            }
        }
        let cfg = config::load(&file, dir.path(), &NoEnv).unwrap();
        let web = Entry::for_component(cfg.component("web").unwrap(), "r", Source::Razar);
        assert_eq!(web.command, Some(serde_json::json!(["serve", "--port", "1"])));
        assert_eq!(web.kind.as_deref(), Some("service"));
        assert_eq!(web.depends_on, ["db"]);
        let db =
            serde_json::to_string(&Entry::for_component(cfg.component("db").unwrap(), "r", Source::Razar)).unwrap();
        assert!(db.contains("\"command\":\"run-db\"") && db.contains("\"kind\":\"task\""), "{db}");
        assert!(!db.contains("s3cret"), "env is never copied: {db}");
    }
}
