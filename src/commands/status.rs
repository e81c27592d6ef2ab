//! `razar status [--json] [--watch] [--wait-ready [--timeout S]]`: the running boot's live state
//! through the control socket, else the last state file (DESIGN §5.6). `docs/control.md`.
//!
//! Exit codes: 0 shown (with `--wait-ready`: the boot is ready); 2 no boot is running and there
//! is no state file, or the control socket refused this user; 6 `--wait-ready` gave up (the
//! boot halted, stopped or went away, or the timeout passed); 70 an unreadable state file, or
//! a control socket that does not answer properly.

use std::io::{IsTerminal, Write};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Local, TimeZone};
use serde_json::Value;
use tokio::time::{Instant, sleep};

use crate::cli::StatusArgs;
use crate::control::{self, ClientError, Request, Response};
use crate::error::{Error, Result};
use crate::exit;
use crate::fsutil::FsError;
use crate::paths::Paths;
use crate::repair;
use crate::state::lock::BootLock;
use crate::state::{ComponentState, ComponentStatus as S, Output, Phase, ProbeState, StateFile};
use crate::text::one_line;

/// How long one status request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// `--watch` redraw interval.
const WATCH_EVERY: Duration = Duration::from_secs(1);
/// `--wait-ready` polling interval.
const POLL_EVERY: Duration = Duration::from_millis(100);

/// A state snapshot, as sent (`raw`, for `--json`) and decoded, and where it came from.
struct Snapshot {
    raw: Value,
    state: StateFile,
    source: Source,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// The running boot answered on the control socket.
    Live,
    /// The state file. `holder`: the PID of a boot that holds the root's lock but did not
    /// answer on the socket.
    File { modified: Option<SystemTime>, holder: Option<u32> },
}

pub async fn run(paths: &Paths, args: StatusArgs) -> Result<u8> {
    if args.wait_ready {
        return wait_ready(paths, args.timeout, args.json).await;
    }
    if args.watch {
        return watch(paths, args.json).await;
    }
    let snapshot = fetch(paths).await?.ok_or_else(|| no_state(paths))?;
    if let Some(note) = source_note(paths, snapshot.source) {
        crate::errln!("razar: {note}");
    }
    write_stdout(&frame(paths, &snapshot, args.json, false)?)?;
    Ok(exit::SUCCESS)
}

/// The live state if a boot answers, else the state file, else `None`.
async fn fetch(paths: &Paths) -> Result<Option<Snapshot>> {
    match control::request(paths, &Request::Status, REQUEST_TIMEOUT).await {
        Ok(response) => live(response).map(Some),
        Err(ClientError::NotRunning) => from_file(paths),
        Err(e) => Err(e.into()),
    }
}

fn live(response: Response) -> Result<Snapshot> {
    let raw = match response {
        Response { ok: true, state: Some(state), .. } => state,
        Response { message, .. } => {
            let why = message.unwrap_or_else(|| "no state and no message".to_owned());
            return Err(Error::Internal(format!("the running boot did not send its state: {why}")));
        }
    };
    let state = decode(&raw, "the running boot's state")?;
    Ok(Snapshot { raw, state, source: Source::Live })
}

fn from_file(paths: &Paths) -> Result<Option<Snapshot>> {
    let path = paths.state();
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(FsError::new("reading", &path, e).into()),
    };
    // Read only: a corrupt file is reported, not moved aside (the next boot does that).
    let raw: Value = serde_json::from_slice(&bytes)
        .map_err(|e| Error::Internal(format!("{}: not valid JSON ({e})", path.display())))?;
    let state = decode(&raw, &path.display().to_string())?;
    let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
    Ok(Some(Snapshot { raw, state, source: Source::File { modified, holder: BootLock::holder(paths) } }))
}

fn decode(raw: &Value, what: &str) -> Result<StateFile> {
    if !raw.is_object() {
        return Err(Error::Internal(format!("{what}: not a JSON object")));
    }
    serde_json::from_value(raw.clone())
        .map_err(|e| Error::Internal(format!("{what}: not a razar state snapshot ({e})")))
}

fn no_state(paths: &Paths) -> Error {
    Error::Usage(format!(
        "no boot is running on this root and there is no state file ({}): run `razar boot` first",
        paths.state().display()
    ))
}

/// What to tell the operator about a snapshot that is not live.
fn source_note(paths: &Paths, source: Source) -> Option<String> {
    let Source::File { modified, holder } = source else { return None };
    let when = modified.map(local_time).unwrap_or_else(|| "an unknown time".to_owned());
    Some(match holder {
        None => format!("no boot running on this root; showing the last state file from {when}"),
        Some(pid) => format!(
            "the boot holding this root's lock (pid {pid}) does not answer on {}; showing the state file from {when}",
            paths.control_socket().display()
        ),
    })
}

/// `--watch`: a frame every second until Ctrl-C or until no boot is running.
async fn watch(paths: &Paths, json: bool) -> Result<u8> {
    // JSON frames are one compact line each, never wrapped in screen control sequences.
    let redraw = !json && std::io::stdout().is_terminal();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut was_live: Option<bool> = None;
    loop {
        let snapshot = match fetch(paths).await {
            Ok(snapshot) => snapshot.ok_or_else(|| no_state(paths))?,
            // A boot too busy to answer in time, or one shutting down mid-answer: try again at
            // the next tick rather than end the watch.
            Err(Error::Control(e @ (ClientError::Timeout(_) | ClientError::Protocol(_) | ClientError::Io { .. }))) => {
                crate::errln!("razar: {e}; retrying");
                tokio::select! {
                    _ = &mut ctrl_c => return Ok(exit::SUCCESS),
                    () = sleep(WATCH_EVERY) => continue,
                }
            }
            Err(e) => return Err(e),
        };
        let live = snapshot.source == Source::Live;
        if was_live != Some(live) {
            match source_note(paths, snapshot.source) {
                Some(note) => crate::errln!("razar: {note}"),
                None if was_live.is_some() => crate::errln!("razar: a boot is running; showing its live state"),
                None => {}
            }
        }
        let mut text = frame(paths, &snapshot, json, true)?;
        if redraw {
            text.insert_str(0, "\x1b[2J\x1b[H");
        } else if was_live.is_some() && !json {
            text.insert(0, '\n');
        }
        write_stdout(&text)?;
        if matches!(snapshot.source, Source::File { holder: None, .. }) {
            if was_live == Some(true) {
                crate::errln!("razar: the boot has ended (phase {})", phase_word(snapshot.state.phase));
            }
            return Ok(exit::SUCCESS);
        }
        was_live = Some(live);
        tokio::select! {
            _ = &mut ctrl_c => return Ok(exit::SUCCESS),
            () = sleep(WATCH_EVERY) => {}
        }
    }
}

/// `--wait-ready`: polls the socket until the boot is ready, has ended, or `limit` passes. A
/// boot that is not running yet is waited for; one that ran and ended before a poll saw it is
/// recognised by a state file with a new `boot_id` and no lock holder.
async fn wait_ready(paths: &Paths, limit: Duration, json: bool) -> Result<u8> {
    let deadline = Instant::now() + limit;
    let earlier_boot = from_file(paths).ok().flatten().and_then(|s| s.state.boot_id);
    // The boot seen live, by boot_id (`Some(None)`: seen, without an id).
    let mut seen: Option<Option<String>> = None;
    let mut last_phase: Option<Phase> = None;
    let mut last_error: Option<String> = None;
    tracing::debug!("waiting up to {} for the boot to be ready", seconds(limit));
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            break;
        }
        match control::request(paths, &Request::Status, remaining.min(REQUEST_TIMEOUT)).await {
            // A boot that is shutting down may answer with an error; the next poll tells more.
            Ok(Response { ok: false, message, .. }) => last_error = message,
            Ok(response) => {
                let snapshot = live(response)?;
                let id = snapshot.state.boot_id.clone();
                last_phase = snapshot.state.phase;
                seen = Some(id.clone());
                match snapshot.state.phase {
                    Some(Phase::Ready) => {
                        write_stdout(&frame(paths, &snapshot, json, false)?)?;
                        crate::errln!("razar: boot {} is ready", show_id(&id));
                        return Ok(exit::SUCCESS);
                    }
                    Some(phase @ (Phase::Stopping | Phase::Stopped | Phase::Halted)) => {
                        write_stdout(&frame(paths, &snapshot, json, false)?)?;
                        crate::errln!(
                            "razar: boot {} is {}: it will not become ready",
                            show_id(&id),
                            phase_word(Some(phase))
                        );
                        return Ok(exit::NOT_READY);
                    }
                    _ => {}
                }
            }
            Err(ClientError::NotRunning) => {
                if let Some((snapshot, why)) = ended_boot(paths, earlier_boot.as_deref(), seen.as_ref()) {
                    if let Some(snapshot) = snapshot {
                        write_stdout(&frame(paths, &snapshot, json, false)?)?;
                    }
                    crate::errln!("razar: {why}");
                    return Ok(exit::NOT_READY);
                }
            }
            Err(e @ ClientError::PermissionDenied(_)) => return Err(e.into()),
            Err(e) => last_error = Some(e.to_string()),
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            break;
        }
        sleep(POLL_EVERY.min(remaining)).await;
    }
    let waited = seconds(limit);
    let mut why = match (&seen, BootLock::holder(paths)) {
        (Some(id), _) => format!("timed out after {waited}: boot {} is still {}", show_id(id), phase_word(last_phase)),
        (None, Some(pid)) => format!(
            "timed out after {waited}: the boot holding this root's lock (pid {pid}) never answered on {}",
            paths.control_socket().display()
        ),
        (None, None) => format!("timed out after {waited} waiting for a boot to start on this root"),
    };
    if let Some(e) = last_error {
        why.push_str(&format!(" (last error: {e})"));
    }
    crate::errln!("razar: {why}");
    Ok(exit::NOT_READY)
}

/// With no socket answering: has the boot being waited for ended? Returns its final snapshot
/// (if the state file has it) and what to say. `None`: keep waiting.
fn ended_boot(
    paths: &Paths,
    earlier_boot: Option<&str>,
    seen: Option<&Option<String>>,
) -> Option<(Option<Snapshot>, String)> {
    // The state file is read between two lock checks: a boot that holds the lock at either
    // moment is running (or starting), and its file may not be final.
    if BootLock::holder(paths).is_some() {
        return None;
    }
    let file = from_file(paths).ok().flatten();
    if BootLock::holder(paths).is_some() {
        return None;
    }
    let file_id = file.as_ref().and_then(|s| s.state.boot_id.clone());
    let ours = match seen {
        Some(None) => file.is_some(),
        Some(id @ Some(_)) => file_id == *id,
        None => file_id.is_some() && file_id.as_deref() != earlier_boot,
    };
    if !ours {
        return seen.map(|id| (None, format!("boot {} went away before it was ready", show_id(id))));
    }
    let snapshot = file?;
    let id = show_id(&file_id);
    let why = match snapshot.state.phase {
        Some(Phase::Ready) => format!("boot {id} was ready but has ended already"),
        Some(phase @ (Phase::Stopping | Phase::Stopped | Phase::Halted)) => {
            format!("boot {id} {} before it was ready", phase_word(Some(phase)))
        }
        phase => format!("boot {id} went away before it was ready (last recorded phase: {})", phase_word(phase)),
    };
    Some((Some(snapshot), why))
}

/// One frame of output: the table, or the raw state as JSON (`compact`: one line).
fn frame(paths: &Paths, snapshot: &Snapshot, json: bool, compact: bool) -> Result<String> {
    if !json {
        return Ok(render(&snapshot.state, &Local) + &patches_section(paths));
    }
    let text = if compact { serde_json::to_string(&snapshot.raw) } else { serde_json::to_string_pretty(&snapshot.raw) };
    text.map(|t| t + "\n").map_err(|e| Error::Internal(format!("serializing the state: {e}")))
}

/// The repair pipeline's latest patches under the table, so on-call sees what changed before
/// rolling back. Empty when there are none (or the history cannot be read: status still works).
fn patches_section(paths: &Paths) -> String {
    let history = repair::history::read_history(&repair::RepairPaths::new(&paths.root).history()).unwrap_or_default();
    let lines = repair::history::describe(&repair::history::patches(&history, None), 10);
    if lines.is_empty() {
        return String::new();
    }
    let mut out = String::from("patches (undo with `razar rollback COMPONENT`):\n");
    for line in lines {
        out.push_str(&format!("  {line}\n"));
    }
    out
}

fn write_stdout(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Error::Internal(format!("writing to stdout: {e}")))
}

/// The header line and the component table, columns as wide as their content. Times are shown
/// in `tz`.
fn render<Tz: TimeZone>(state: &StateFile, tz: &Tz) -> String
where
    Tz::Offset: std::fmt::Display,
{
    let mut out = header(state);
    out.push('\n');
    if state.components.is_empty() {
        out.push_str("no components\n");
        return out;
    }
    let head =
        ["COMPONENT", "STATE", "PID", "READY", "RESTARTS", "LAST PROBE", "BLOCKED BY / WAITING"].map(String::from);
    let rows: Vec<[String; 7]> = state.components.iter().map(|c| row(c, tz)).collect();
    let mut widths = [0usize; 7];
    for r in std::iter::once(&head).chain(&rows) {
        for (width, cell) in widths.iter_mut().zip(r) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for r in std::iter::once(&head).chain(&rows) {
        let line: Vec<String> = r.iter().zip(widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    let errors: Vec<String> = state
        .components
        .iter()
        .filter(|c| matches!(c.state, S::Failed | S::Unhealthy | S::Backoff | S::Healing | S::Quarantined))
        .filter_map(|c| Some(format!("  {}: {}\n", one_line(&c.id, 60), one_line(c.last_error.as_deref()?, 160))))
        .collect();
    if !errors.is_empty() {
        out.push_str("last errors:\n");
        out.extend(errors);
    }
    out
}

fn header(state: &StateFile) -> String {
    let mut parts = vec![format!("phase: {}", phase_word(state.phase))];
    if let Some(mission) = &state.mission {
        parts.push(format!("mission: {}", one_line(mission, 60)));
    }
    if let Some(id) = &state.boot_id {
        parts.push(format!("boot_id: {}", one_line(id, 60)));
    }
    if let Some(url) = &state.metrics_url {
        parts.push(format!("metrics: {}", one_line(url, 100)));
    }
    parts.join("  ")
}

fn row<Tz: TimeZone>(c: &ComponentState, tz: &Tz) -> [String; 7]
where
    Tz::Offset: std::fmt::Display,
{
    [
        one_line(&c.id, 60),
        match c.output {
            Some(Output::Detached) => format!("{} (output detached)", c.state.as_str()),
            None => c.state.as_str().to_owned(),
        },
        c.pid.map_or_else(|| "-".to_owned(), |p| p.to_string()),
        c.ready_at.as_deref().map_or_else(|| "-".to_owned(), |t| clock_time(t, tz)),
        c.restarts.to_string(),
        probe_cell(c.probe.as_ref()),
        waiting_cell(c),
    ]
}

/// `HH:MM:SS` in `tz` of an ISO-8601 time; anything else as written.
fn clock_time<Tz: TimeZone>(iso: &str, tz: &Tz) -> String
where
    Tz::Offset: std::fmt::Display,
{
    match DateTime::parse_from_rfc3339(iso) {
        Ok(t) => t.with_timezone(tz).format("%H:%M:%S").to_string(),
        Err(_) => one_line(iso, 24),
    }
}

fn probe_cell(probe: Option<&ProbeState>) -> String {
    let Some((result, output)) = probe.and_then(|p| Some((p.last_result.as_deref()?, p.last_output.as_deref()))) else {
        return "-".to_owned();
    };
    let output = output.map(|o| one_line(o, 40)).unwrap_or_default();
    let result = one_line(result, 10);
    if output.is_empty() { result } else { format!("{result} {output}") }
}

fn waiting_cell(c: &ComponentState) -> String {
    if !c.blocked_by.is_empty() {
        one_line(&c.blocked_by.join(", "), 60)
    } else if !c.dependency_restarting.is_empty() {
        one_line(&format!("{} restarting", c.dependency_restarting.join(", ")), 60)
    } else if let Some(waiting) = &c.waiting_for {
        one_line(waiting, 40)
    } else {
        "-".to_owned()
    }
}

fn phase_word(phase: Option<Phase>) -> &'static str {
    match phase {
        None => "unknown",
        Some(Phase::Handshake) => "handshake",
        Some(Phase::Launching) => "launching",
        Some(Phase::Ready) => "ready",
        Some(Phase::Stopping) => "stopping",
        Some(Phase::Stopped) => "stopped",
        Some(Phase::Halted) => "halted",
    }
}

fn show_id(id: &Option<String>) -> String {
    id.as_deref().map_or_else(|| "(no boot_id)".to_owned(), |id| one_line(id, 60))
}

fn local_time(t: SystemTime) -> String {
    DateTime::<Local>::from(t).format("%Y-%m-%d %H:%M:%S").to_string()
}

/// `12s`, or `1.5s` for a fractional duration.
fn seconds(d: Duration) -> String {
    if d.subsec_nanos() == 0 { format!("{}s", d.as_secs()) } else { format!("{:.1}s", d.as_secs_f64()) }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use serde_json::json;

    use super::*;

    fn state(value: Value) -> StateFile {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn table_columns_fit_their_content() {
        let s = state(json!({
            "phase": "launching", "mission": "demo", "boot_id": "1700000000000-42",
            "metrics_url": "http://127.0.0.1:9360/metrics",
            "components": [
                {"id": "db", "state": "healthy", "pid": 4242, "restarts": 0,
                 "ready_at": "2024-01-02T03:04:05.678Z",
                 "probe": {"kind": "log", "last_result": "pass", "last_output": "ready\n"}},
                {"id": "api-server", "state": "starting", "pid": 77, "restarts": 2,
                 "probe": {"kind": "tcp", "last_result": "fail",
                           "last_output": "connect 127.0.0.1:8000: connection refused (os error 111) after 1s"},
                 "waiting_for": "db (healthy)"},
                {"id": "web", "state": "blocked", "blocked_by": ["api-server", "db"]},
                {"id": "worker", "state": "pending", "dependency_restarting": ["db"]}
            ]
        }));
        let text = render(&s, &Utc);
        let want = "\
phase: launching  mission: demo  boot_id: 1700000000000-42  metrics: http://127.0.0.1:9360/metrics
COMPONENT   STATE     PID   READY     RESTARTS  LAST PROBE                                     BLOCKED BY / WAITING
db          healthy   4242  03:04:05  0         pass ready                                     -
api-server  starting  77    -         2         fail connect 127.0.0.1:8000: connection refu…  db (healthy)
web         blocked   -     -         0         -                                              api-server, db
worker      pending   -     -         0         -                                              db restarting
";
        assert_eq!(text, want);
    }

    #[test]
    fn output_cannot_drive_the_terminal_and_odd_values_show_as_written() {
        let s = state(json!({
            "components": [{"id": "x", "state": "failed", "ready_at": "yesterday", "last_error": "exited with status 1\nsee log",
                            "probe": {"kind": "exec", "last_result": "fail", "last_output": "\u{1b}[2Jboom\r\nline two"}}]
        }));
        let text = render(&s, &Utc);
        assert!(text.starts_with("phase: unknown\n"), "{text}");
        assert!(text.contains("yesterday"), "{text}");
        assert!(text.contains("fail [2Jboom / line two"), "{text}");
        assert!(!text.contains('\u{1b}'));
        assert!(text.ends_with("\nlast errors:\n  x: exited with status 1 / see log\n"), "{text}");
        assert_eq!(render(&state(json!({"phase": "stopped"})), &Utc), "phase: stopped\nno components\n");
    }

    #[test]
    fn seconds_are_shown_plainly() {
        assert_eq!(seconds(Duration::from_secs(60)), "60s");
        assert_eq!(seconds(Duration::from_millis(1500)), "1.5s");
    }
}
