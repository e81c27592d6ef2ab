//! razar as a `Type=notify` service: the systemd readiness protocol, razar's side as the sender.
//!
//! When razar starts with `NOTIFY_SOCKET` set (a path, or `@name` for the abstract namespace), it
//! sends `READY=1` once every component is ready (the moment it prints `RAZAR ready.`), a
//! `STATUS=` line with the state counts at that moment, `STOPPING=1` when a shutdown begins, and
//! `WATCHDOG=1` every half of `WATCHDOG_USEC` when that is set (and `WATCHDOG_PID`, if set, names
//! razar). The three variables are removed from razar's own environment before any thread or
//! child exists, so no component, probe, stop command, launcher or pip ever inherits them.

use std::collections::BTreeMap;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::state::Phase;

static TARGET: OnceLock<Option<SocketAddr>> = OnceLock::new();

/// When the last `STATUS=` line went out: they are rate-limited to one a second.
static LAST_STATUS: Mutex<Option<Instant>> = Mutex::new(None);

/// The shortest interval between two `STATUS=` lines while booting and supervising.
const STATUS_INTERVAL: Duration = Duration::from_secs(1);

/// Reads and removes `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID`, and starts the watchdog
/// pings when asked for. Call first thing in `main`, while razar is still single-threaded.
pub fn take_from_env() {
    let socket = std::env::var_os("NOTIFY_SOCKET");
    let usec = std::env::var("WATCHDOG_USEC").ok();
    let pid = std::env::var("WATCHDOG_PID").ok();
    for key in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] {
        // SAFETY: called from `main` before the runtime, the tracing writer or any other thread
        // exists, so nothing can read the environment concurrently.
        unsafe { std::env::remove_var(key) };
    }
    let target = socket.and_then(|s| address(&s.to_string_lossy()));
    let has_target = target.is_some();
    let _ = TARGET.set(target);
    if !has_target {
        return;
    }
    if let Some(period) = watchdog_period(usec.as_deref(), pid.as_deref(), std::process::id()) {
        let _ = std::thread::Builder::new().name("sd-watchdog".into()).spawn(move || {
            loop {
                send("WATCHDOG=1");
                std::thread::sleep(period);
            }
        });
    }
}

/// The socket address `NOTIFY_SOCKET` names: an absolute path, or `@name` for the abstract
/// namespace. Anything else is ignored, as systemd's own clients do.
fn address(value: &str) -> Option<SocketAddr> {
    if let Some(name) = value.strip_prefix('@') {
        SocketAddr::from_abstract_name(name.as_bytes()).ok()
    } else if value.starts_with('/') {
        SocketAddr::from_pathname(value).ok()
    } else {
        None
    }
}

/// Half of `WATCHDOG_USEC`, when it is set, positive, and `WATCHDOG_PID` (if set) names `own`.
fn watchdog_period(usec: Option<&str>, pid: Option<&str>, own: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|&u| u > 0)?;
    if let Some(pid) = pid
        && pid.trim().parse::<u32>().ok() != Some(own)
    {
        return None;
    }
    Some(Duration::from_micros(usec / 2).max(Duration::from_millis(1)))
}

/// Sends one datagram to the service manager; a no-op without `NOTIFY_SOCKET`. Failures are
/// ignored: the manager being gone must never disturb the stack.
pub fn send(message: &str) {
    let Some(Some(target)) = TARGET.get() else { return };
    if let Ok(sock) = UnixDatagram::unbound() {
        let _ = sock.send_to_addr(message.as_bytes(), target);
    }
}

/// Whether a `STATUS=` line may go out now: there is a manager to hear it and the last one is at
/// least a second old. Cheap enough to ask on every state write.
pub fn status_due() -> bool {
    if !matches!(TARGET.get(), Some(Some(_))) {
        return false;
    }
    let Ok(mut last) = LAST_STATUS.lock() else { return false };
    let now = Instant::now();
    if last.is_some_and(|t| now.duration_since(t) < STATUS_INTERVAL) {
        return false;
    }
    *last = Some(now);
    true
}

/// `STATUS=booting|ready|stopping: N components: 3 running, 1 starting`.
pub fn status<'a>(phase: Option<Phase>, states: impl Iterator<Item = &'a str>) {
    send(&format!("STATUS={}", status_line(phase, states)));
}

fn status_line<'a>(phase: Option<Phase>, states: impl Iterator<Item = &'a str>) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut total = 0;
    for s in states {
        *counts.entry(s).or_default() += 1;
        total += 1;
    }
    let summary: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
    let phase = match phase {
        Some(Phase::Handshake | Phase::Launching) | None => "booting",
        Some(Phase::Ready) => "ready",
        Some(Phase::Stopping) => "stopping",
        Some(Phase::Stopped) => "stopped",
        Some(Phase::Halted) => "halted",
    };
    format!("{phase}: {total} components: {}", summary.join(", "))
}

/// Every component is ready: `READY=1` with the state counts.
pub fn ready(status: &str) {
    send(&format!("READY=1\nSTATUS={status}"));
}

/// A shutdown has begun.
pub fn stopping() {
    send("STOPPING=1\nSTATUS=stopping the stack");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_period_is_half_and_respects_the_pid() {
        assert_eq!(watchdog_period(Some("2000000"), None, 7), Some(Duration::from_secs(1)));
        assert_eq!(watchdog_period(Some("2000000"), Some("7"), 7), Some(Duration::from_secs(1)));
        assert_eq!(watchdog_period(Some("2000000"), Some("8"), 7), None);
        assert_eq!(watchdog_period(Some("0"), None, 7), None);
        assert_eq!(watchdog_period(None, None, 7), None);
        assert_eq!(watchdog_period(Some("junk"), None, 7), None);
    }

    #[test]
    fn status_lines_carry_the_phase_and_counts() {
        let line = status_line(Some(Phase::Ready), ["running", "starting", "running"].into_iter());
        assert_eq!(line, "ready: 3 components: 2 running, 1 starting");
    }

    #[test]
    fn addresses_are_paths_or_abstract_names() {
        assert!(address("/run/systemd/notify").unwrap().as_pathname().is_some());
        assert_eq!(address("@razar-x").unwrap().as_abstract_name(), Some(&b"razar-x"[..]));
        assert!(address("relative/path").is_none());
        assert!(address("").is_none());
    }
}
