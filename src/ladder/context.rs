//! The failure context an agent receives (DESIGN §9.4), and the invocation journal
//! `logs/razar_ai_invocations.json` (JSONL despite the name) every round appends to.
//!
//! Reading is best effort: a missing or unreadable state file, log or journal leaves its part
//! of the context empty; a round is never refused for lack of context. Env values are never
//! included, and source contents are capped (64 KiB a file, 256 KiB in all).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::config::Component;
use crate::fsutil::{FsError, append_jsonl};
use crate::paths::Paths;

/// The invocation journal under the root.
pub const INVOCATIONS: &str = "logs/razar_ai_invocations.json";
/// Earlier rounds of the component included.
pub const HISTORY: usize = 5;
/// Last lines of the component's log included.
pub const LOG_LINES: usize = 50;
/// Bytes of one source file included.
pub const SOURCE_FILE_CAP: u64 = 64 * 1024;
/// Bytes of all source files included.
pub const SOURCES_CAP: u64 = 256 * 1024;
/// Files listed from the sources before giving up (a huge tree must not stall a round).
const MAX_FILES: usize = 2000;

/// The failure context of `component` failing with `error`.
pub fn build_failure_context(paths: &Paths, component: &Component, error: &str) -> Value {
    let name = component.name.as_str();
    let state = component_state(paths, name);
    json!({
        "component": name,
        "error": error,
        "exit_status": state.as_ref().and_then(|s| s.get("last_error")).cloned().unwrap_or(Value::Null),
        "last_probe_output": state.as_ref().and_then(|s| s.pointer("/probe/last_output")).cloned().unwrap_or(Value::Null),
        "state": state.as_ref().and_then(|s| s.get("state")).cloned().unwrap_or(Value::Null),
        "history": history(paths, name),
        "log_tail": tail(&paths.component_log(&component.name), LOG_LINES),
        "config": config(paths.join(""), component),
        "sources": sources(&paths.join(""), &component.sources),
    })
}

/// One round's record in the invocation journal.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Invocation<'a> {
    pub component: &'a str,
    pub attempt: u32,
    pub error: &'a str,
    pub patched: bool,
    pub status: &'a str,
    pub event: &'a str,
    pub agent: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    pub timestamp: f64,
    pub timestamp_iso: String,
}

/// Appends `record` to the invocation journal (one locked line).
pub fn journal(paths: &Paths, record: &Invocation) -> Result<(), FsError> {
    append_jsonl(&paths.join(INVOCATIONS), record)
}

/// The number of `attempt` records of `component` so far.
pub fn attempts(paths: &Paths, component: &str) -> u32 {
    records(paths, component).iter().filter(|r| r.get("event").and_then(Value::as_str) == Some("attempt")).count()
        as u32
}

/// Records that the ladder moved `component`'s rounds from agent `from` to `to` (DESIGN §9.4:
/// `event: escalation`, `agent` the new one, `agent_original` the old one).
pub fn journal_escalation(paths: &Paths, component: &str, error: &str, from: &str, to: &str) -> Result<(), FsError> {
    let now = crate::clock::epoch();
    let record = serde_json::json!({
        "component": component, "attempt": attempts(paths, component), "error": error, "patched": false,
        "status": "failure", "event": "escalation", "agent": to, "agent_original": from,
        "timestamp": now, "timestamp_iso": crate::clock::iso(now),
    });
    append_jsonl(&paths.join(INVOCATIONS), &record)
}

/// Every journal record of `component`, oldest first (unreadable lines skipped).
pub fn records(paths: &Paths, component: &str) -> Vec<Value> {
    let Ok(file) = std::fs::File::open(paths.join(INVOCATIONS)) else { return Vec::new() };
    BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| serde_json::from_str::<Value>(&l).ok())
        .filter(|r| r.get("component").and_then(Value::as_str) == Some(component))
        .collect()
}

fn history(paths: &Paths, component: &str) -> Vec<Value> {
    let all = records(paths, component);
    all[all.len().saturating_sub(HISTORY)..].to_vec()
}

fn component_state(paths: &Paths, name: &str) -> Option<Value> {
    let text = std::fs::read(paths.state()).ok()?;
    let state: Value = serde_json::from_slice(&text).ok()?;
    state.get("components")?.as_array()?.iter().find(|c| c.get("id").and_then(Value::as_str) == Some(name)).cloned()
}

/// The last `n` lines of `path` (invalid UTF-8 replaced), empty when it cannot be read.
fn tail(path: &Path, n: usize) -> Vec<String> {
    let Ok(file) = std::fs::File::open(path) else { return Vec::new() };
    let mut last = VecDeque::with_capacity(n);
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    while reader.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
        if last.len() == n {
            last.pop_front();
        }
        let text = String::from_utf8_lossy(&line);
        last.push_back(text.trim_end_matches(['\n', '\r']).chars().take(2000).collect());
        line.clear();
    }
    last.into()
}

fn rel(root: &Path, path: &Path) -> String {
    path.strip_prefix(root).unwrap_or(path).display().to_string()
}

/// The component's config as an agent may see it: env values replaced by `***`.
fn config(root: PathBuf, c: &Component) -> Value {
    json!({
        "name": c.name.as_str(),
        "command": c.command.argv(),
        "working_dir": rel(&root, &c.working_dir),
        "env": c.env.keys().map(|k| (k.clone(), Value::from("***"))).collect::<serde_json::Map<_, _>>(),
        "sources": c.sources.iter().map(|s| rel(&root, s)).collect::<Vec<_>>(),
        "tests": c.tests.iter().map(ToString::to_string).collect::<Vec<_>>(),
    })
}

/// Every regular file under `sources` (symlinks not followed), with contents up to the caps.
fn sources(root: &Path, sources: &[PathBuf]) -> Vec<Value> {
    let mut files = Vec::new();
    for source in sources {
        walk(source, &mut files);
    }
    files.sort();
    files.dedup();
    let mut budget = SOURCES_CAP;
    files
        .iter()
        .take(MAX_FILES)
        .map(|path| {
            let size = std::fs::symlink_metadata(path).map(|m| m.len()).unwrap_or(0);
            let take = size.min(SOURCE_FILE_CAP).min(budget);
            let mut content = Vec::new();
            if let Ok(f) = std::fs::File::open(path) {
                let _ = f.take(take).read_to_end(&mut content);
            }
            budget -= content.len() as u64;
            json!({
                "path": rel(root, path),
                "size": size,
                "truncated": (content.len() as u64) < size,
                "content": String::from_utf8_lossy(&content),
            })
        })
        .collect()
}

fn walk(path: &Path, out: &mut Vec<PathBuf>) {
    walk_files(path, out, MAX_FILES);
}

/// The regular files at or under `path` (symlinks not followed), in name order, into `out`
/// until it holds `limit`.
pub(super) fn walk_files(path: &Path, out: &mut Vec<PathBuf>, limit: usize) {
    if out.len() >= limit {
        return;
    }
    let Ok(meta) = std::fs::symlink_metadata(path) else { return };
    if meta.is_file() {
        out.push(path.to_path_buf());
    } else if meta.is_dir()
        && let Ok(entries) = std::fs::read_dir(path)
    {
        let mut children: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        children.sort();
        for child in children {
            walk_files(&child, out, limit);
        }
    }
}

#[cfg(test)]
mod tests;
