//! `razar restart|stop|start COMPONENT… [--wait [--timeout D]]`: the operator verbs on a running
//! boot, sent over its control socket (`docs/control.md`) one component at a time, in the order
//! given.
//!
//! Exit codes: 0 every request was accepted (with `--wait`: every component reached its goal:
//! ready for restart/start, stopped with no process left for stop); 2 a request was refused (an
//! unknown or quarantined component, a boot shutting down) or the socket refused this user;
//! 6 `--wait` gave up (a component failed, was quarantined or blocked, the boot ended, or the
//! timeout passed); 7 no boot is running on this root; 70 the boot did not answer properly.

use std::time::Duration;

use tokio::time::{Instant, sleep};

use crate::cli::{OperateArgs, Verb};
use crate::control::{self, ClientError, Request, Response};
use crate::error::{Error, Result};
use crate::exit;
use crate::paths::Paths;
use crate::state::{ComponentState, ComponentStatus as S, StateFile};

/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// `--wait` polling interval.
const POLL_EVERY: Duration = Duration::from_millis(100);

pub async fn run(paths: &Paths, verb: Verb, args: OperateArgs) -> Result<u8> {
    let mut accepted = Vec::new();
    let mut refused = 0;
    for name in &args.components {
        let request = match verb {
            Verb::Restart => Request::Restart { component: name.clone() },
            Verb::Stop => Request::Stop { component: name.clone() },
            Verb::Start => Request::Start { component: name.clone() },
        };
        match control::request(paths, &request, REQUEST_TIMEOUT).await {
            Ok(Response { ok: true, message, .. }) => {
                crate::errln!("razar: {}", message.unwrap_or_else(|| format!("{name}: done")));
                accepted.push(name.as_str());
            }
            Ok(Response { message, .. }) => {
                crate::errln!("razar: {name}: refused: {}", message.unwrap_or_else(|| "no reason given".into()));
                refused += 1;
            }
            Err(ClientError::NotRunning) => {
                crate::errln!(
                    "razar: no razar boot is running on {}: `razar {}` acts on a running boot (start one with `razar boot`)",
                    paths.root.display(),
                    verb.as_str()
                );
                return Ok(exit::NO_BOOT);
            }
            Err(e) => return Err(e.into()),
        }
    }
    let waited = if args.wait && !accepted.is_empty() { wait(paths, verb, &accepted, args.timeout).await? } else { 0 };
    Ok(if refused > 0 { exit::CONFIG } else { waited })
}

/// Where a component stands against the goal of `verb`.
#[derive(Debug, PartialEq, Eq)]
enum Progress {
    Reached,
    Pending,
    /// It will not get there by itself; the reason.
    GaveUp(String),
}

fn progress(verb: Verb, c: &ComponentState) -> Progress {
    match verb {
        Verb::Stop if c.state == S::Stopped && c.pid.is_none() => Progress::Reached,
        Verb::Stop => Progress::Pending,
        Verb::Restart | Verb::Start => match c.state {
            S::Healthy | S::Completed => Progress::Reached,
            S::Failed | S::Quarantined | S::Blocked | S::Stopped | S::Disabled | S::Downtime => {
                let why = c.last_error.as_deref().map(|e| format!(": {e}")).unwrap_or_default();
                Progress::GaveUp(format!("{} is {}{why}", c.id, c.state.as_str()))
            }
            _ => Progress::Pending,
        },
    }
}

/// Polls the boot's state until every one of `names` reached the goal of `verb`; returns the
/// exit code.
async fn wait(paths: &Paths, verb: Verb, names: &[&str], limit: Duration) -> Result<u8> {
    let deadline = Instant::now() + limit;
    let mut left: Vec<&str> = names.to_vec();
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let state = match control::request(paths, &Request::Status, remaining.min(REQUEST_TIMEOUT)).await {
            Ok(Response { ok: true, state: Some(raw), .. }) => serde_json::from_value::<StateFile>(raw)
                .map_err(|e| Error::Internal(format!("the running boot sent an unreadable state: {e}")))?,
            Ok(Response { message, .. }) => {
                crate::errln!("razar: the boot did not report its state: {}", message.unwrap_or_default());
                return Ok(exit::NOT_READY);
            }
            Err(ClientError::NotRunning) => {
                crate::errln!("razar: the boot ended while waiting for {}", left.join(", "));
                return Ok(exit::NOT_READY);
            }
            Err(e) => return Err(e.into()),
        };
        let mut still = Vec::new();
        for name in left {
            match state.components.iter().find(|c| c.id == name).map(|c| progress(verb, c)) {
                Some(Progress::Reached) => crate::errln!("razar: {name} is {}", verb.goal()),
                Some(Progress::Pending) => still.push(name),
                Some(Progress::GaveUp(why)) => {
                    crate::errln!("razar: {why}");
                    return Ok(exit::NOT_READY);
                }
                None => {
                    crate::errln!("razar: {name} is no longer in the running boot");
                    return Ok(exit::NOT_READY);
                }
            }
        }
        left = still;
        if left.is_empty() {
            return Ok(exit::SUCCESS);
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            crate::errln!(
                "razar: timed out after {}s waiting for {} to be {}",
                limit.as_secs_f64(),
                left.join(", "),
                verb.goal()
            );
            return Ok(exit::NOT_READY);
        }
        sleep(POLL_EVERY.min(remaining)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comp(state: S, pid: Option<u32>) -> ComponentState {
        let mut c = ComponentState::new("api", state);
        c.pid = pid;
        c
    }

    #[test]
    fn goals_per_verb() {
        use Progress::{Pending, Reached};
        let rows = [
            (Verb::Restart, S::Healthy, Some(1), Reached),
            (Verb::Restart, S::Completed, None, Reached),
            (Verb::Restart, S::Backoff, None, Pending),
            (Verb::Restart, S::Starting, Some(1), Pending),
            (Verb::Start, S::Pending, None, Pending),
            (Verb::Start, S::Unhealthy, Some(1), Pending),
            (Verb::Stop, S::Stopped, None, Reached),
            (Verb::Stop, S::Stopped, Some(1), Pending),
            (Verb::Stop, S::Healthy, Some(1), Pending),
        ];
        for (verb, state, pid, want) in rows {
            assert_eq!(progress(verb, &comp(state, pid)), want, "{verb:?} {state:?} {pid:?}");
        }
        for state in [S::Failed, S::Quarantined, S::Blocked, S::Stopped] {
            assert!(matches!(progress(Verb::Restart, &comp(state, None)), Progress::GaveUp(_)), "{state:?}");
        }
    }
}
