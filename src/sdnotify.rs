//! razar as a `Type=notify` service: when started with `NOTIFY_SOCKET` (a path, or `@name` in
//! the abstract namespace), razar tells its service manager `READY=1` once every component is
//! ready, `STATUS=` with the counts, `STOPPING=1` when shutdown begins, and `WATCHDOG=1` at half
//! of `WATCHDOG_USEC`. Sending never blocks or fails the boot: datagrams are non-blocking and
//! the first error is logged at debug level.

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

struct Notifier {
    sock: UnixDatagram,
    addr: SocketAddr,
}

static NOTIFIER: OnceLock<Option<Notifier>> = OnceLock::new();
static ERROR_LOGGED: AtomicBool = AtomicBool::new(false);

fn address(value: &str) -> std::io::Result<SocketAddr> {
    if let Some(name) = value.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        SocketAddr::from_abstract_name(name.as_bytes())
    } else {
        SocketAddr::from_pathname(value)
    }
}

fn notifier() -> Option<&'static Notifier> {
    NOTIFIER
        .get_or_init(|| {
            let value = std::env::var("NOTIFY_SOCKET").ok().filter(|v| !v.is_empty())?;
            let made = address(&value).and_then(|addr| {
                let sock = UnixDatagram::unbound()?;
                sock.set_nonblocking(true)?;
                Ok(Notifier { sock, addr })
            });
            made.map_err(|e| tracing::debug!("NOTIFY_SOCKET {value:?} unusable: {e}")).ok()
        })
        .as_ref()
}

/// Sends `message` (newline-separated `KEY=value` assignments) to the service manager, if any.
pub fn notify(message: &str) {
    let Some(n) = notifier() else { return };
    if let Err(e) = n.sock.send_to_addr(message.as_bytes(), &n.addr)
        && !ERROR_LOGGED.swap(true, Ordering::Relaxed)
    {
        tracing::debug!("cannot notify the service manager: {e}");
    }
}

/// The watchdog ping interval (half of `WATCHDOG_USEC`), when the watchdog is meant for razar
/// (`WATCHDOG_PID` unset or razar's own pid) and `NOTIFY_SOCKET` is set.
pub fn watchdog_interval() -> Option<Duration> {
    notifier()?;
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok().filter(|&u| u > 0)?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID")
        && pid.parse::<u32>().ok() != Some(std::process::id())
    {
        return None;
    }
    Some(Duration::from_micros(usec / 2))
}

/// Pings the watchdog every [`watchdog_interval`] until the runtime ends.
pub fn spawn_watchdog() {
    let Some(every) = watchdog_interval() else { return };
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            notify("WATCHDOG=1");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_paths_or_abstract_names() {
        assert_eq!(address("/run/x.sock").unwrap().as_pathname(), Some(std::path::Path::new("/run/x.sock")));
        use std::os::linux::net::SocketAddrExt;
        assert_eq!(address("@razar-n").unwrap().as_abstract_name(), Some(&b"razar-n"[..]));
    }
}
