//! `razar export` (DESIGN §14): the validated config mapped onto an engine that already
//! exists, field by field — `systemd` (a unit per component and a `.target`) and `k8s`
//! (Deployments, Jobs and Services). What an engine cannot express is collected as
//! [`Note`]s (`unexportable`), printed on stderr and written as comments into the output:
//! nothing is dropped silently. Pure: the command writes the files.

pub mod k8s;
pub mod systemd;
pub mod unexportable;

use std::path::Path;
use std::time::Duration;

use crate::config::{Component, Config, Kind, Probe, ProbeKind};
use crate::probe::policy;

pub use unexportable::{Note, Notes};

/// Settings of one export.
#[derive(Debug, Clone)]
pub struct Options {
    /// The stack's name: unit prefix and label value.
    pub stack: String,
    /// The razar the readiness gates run (an absolute path for systemd, a command for k8s).
    pub razar: String,
    /// k8s: the image every container runs.
    pub image: String,
    /// The root relative paths were resolved against; shown relative in comments.
    pub root: std::path::PathBuf,
    /// systemd: the search path bare program names are resolved on (the exporting process's
    /// `PATH`), since systemd searches only its own fixed path.
    pub path: Option<std::ffi::OsString>,
}

/// One output file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    pub name: String,
    pub text: String,
}

/// The result of an export: the files, and what could not be expressed.
#[derive(Debug, Clone)]
pub struct Export {
    pub files: Vec<File>,
    pub notes: Vec<Note>,
}

/// The stack name for units and labels: `--name`, else the config's `mission`, else "razar";
/// characters a unit name or label cannot hold become `-`.
pub fn stack_name(explicit: Option<&str>, cfg: &Config) -> String {
    let raw = explicit.or(cfg.mission.as_deref()).unwrap_or("razar");
    let cleaned: String =
        raw.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') { c } else { '-' }).collect();
    let trimmed = cleaned.trim_matches(['-', '.', '_']);
    if trimmed.is_empty() { "razar".into() } else { trimmed.chars().take(48).collect() }
}

/// How long a component may take to become ready, as the boot counts it: `ready_timeout`,
/// else its probe's startup window.
pub fn ready_budget(c: &Component, p: &Probe) -> Duration {
    c.ready_timeout.unwrap_or_else(|| policy::default_ready_budget(p.initial_delay, p.period, p.failure_threshold))
}

/// The readiness probe that matters for export: a service's `health_check`. A task is ready
/// when it exits 0, so a probe on a task is noted and not exported.
pub fn readiness<'a>(c: &'a Component, notes: &mut Notes) -> Option<&'a Probe> {
    match (c.kind, &c.health_check) {
        (Kind::Service, Some(p)) => Some(p),
        (Kind::Task, Some(_)) => {
            notes.push(
                Some(c),
                "health_check",
                "a task is ready when it exits 0; its probe has no counterpart and is not exported",
            );
            None
        }
        (_, None) => None,
    }
}

/// The config file as comments show it: relative to the root when it is under it, else its
/// file name.
pub fn source_label(cfg: &Config, root: &Path) -> String {
    match cfg.source.strip_prefix(root) {
        Ok(rel) => rel.display().to_string(),
        Err(_) => {
            cfg.source.file_name().map_or_else(|| cfg.source.display().to_string(), |n| n.to_string_lossy().into())
        }
    }
}

/// Whole seconds, rounded up (both engines count some settings in seconds).
pub fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// A duration as razar's own flags and systemd both read it: `10s`, `250ms`.
pub fn span(d: Duration) -> String {
    if d.subsec_millis() == 0 && d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis().max(1))
    }
}

/// The TCP port a probe talks to, if it is a tcp or http probe.
pub fn probe_port(kind: &ProbeKind) -> Option<u16> {
    match kind {
        ProbeKind::Tcp(addr) => addr.rsplit_once(':').and_then(|(_, p)| p.parse().ok()),
        ProbeKind::Http { url, .. } => Url::split(url).map(|u| u.port),
        _ => None,
    }
}

/// The parts of an http(s) URL the engines need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub https: bool,
    pub host: String,
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

impl Url {
    pub fn split(url: &str) -> Option<Url> {
        let (scheme, rest) = url.split_once("://")?;
        let https = match scheme {
            "http" => false,
            "https" => true,
            _ => return None,
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']')?;
            (h.to_owned(), after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), Some(p)),
                None => (authority.to_owned(), None),
            }
        };
        let port = match port {
            Some(p) => p.parse().ok()?,
            None if https => 443,
            None => 80,
        };
        let tail = tail.split('#').next().unwrap_or_default();
        let path = if tail.starts_with('/') { tail.to_owned() } else { format!("/{tail}") };
        Some(Url { https, host, port, path })
    }
}

/// True for hosts that mean "this machine": 127.0.0.0/8, ::1, localhost.
pub fn is_loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h == "localhost" || h.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_what_engines_need() {
        let u = Url::split("http://127.0.0.1:8765/healthz.txt").unwrap();
        assert_eq!((u.https, u.host.as_str(), u.port, u.path.as_str()), (false, "127.0.0.1", 8765, "/healthz.txt"));
        let u = Url::split("https://[::1]/x?y=1#frag").unwrap();
        assert_eq!((u.https, u.host.as_str(), u.port, u.path.as_str()), (true, "::1", 443, "/x?y=1"));
        assert_eq!(Url::split("http://h").unwrap().path, "/");
        assert!(Url::split("ftp://h/").is_none() && Url::split("http://h:x/").is_none());
        assert!(is_loopback("127.0.0.2") && is_loopback("localhost") && is_loopback("::1") && !is_loopback("db"));
    }

    #[test]
    fn durations_are_written_in_whole_units() {
        assert_eq!(span(Duration::from_secs(10)), "10s");
        assert_eq!(span(Duration::from_millis(1500)), "1500ms");
        assert_eq!(ceil_secs(Duration::from_millis(1500)), 2);
        assert_eq!(ceil_secs(Duration::from_secs(3)), 3);
    }
}
