//! The environment variables holding secrets razar knows of (DESIGN §12): the Crown token, the
//! alert webhook URL and the agent credentials. No child razar starts (components, probes, stop
//! commands, the model launcher, pip, patch tests) inherits them; a component's own `env` may
//! still pass one explicitly, since it is applied after they are removed.
//!
//! The agent variables depend on the roster, which the boot reads once at start
//! ([`add_known`]); until then (and in commands that start no component) the fixed names apply.

use std::sync::OnceLock;

/// Always secret: `CROWN_TOKEN`, `RAZAR_ALERT_WEBHOOK` and the env-only agent keys.
const ALWAYS: &[&str] = &["CROWN_TOKEN", "RAZAR_ALERT_WEBHOOK", "KIMI2_API_KEY", "AIRSTAR_API_KEY", "RSTAR_API_KEY"];

/// The roster's credential variables, set once per process.
static FROM_ROSTER: OnceLock<Vec<String>> = OnceLock::new();

/// Adds the roster's credential variable names (set once; later calls are ignored).
pub fn add_known(names: Vec<String>) {
    let _ = FROM_ROSTER.set(names);
}

/// Every secret variable name known now.
pub fn names() -> impl Iterator<Item = &'static str> {
    ALWAYS.iter().copied().chain(FROM_ROSTER.get().into_iter().flatten().map(String::as_str))
}

/// A command whose environment can lose a variable.
pub trait RemoveEnv {
    fn remove_env(&mut self, key: &str);
}

impl RemoveEnv for std::process::Command {
    fn remove_env(&mut self, key: &str) {
        self.env_remove(key);
    }
}

impl RemoveEnv for tokio::process::Command {
    fn remove_env(&mut self, key: &str) {
        self.env_remove(key);
    }
}

/// Removes every known secret from `cmd`'s environment. Call it before applying the child's
/// own `env`, so an explicit value still reaches it.
pub fn scrub(cmd: &mut impl RemoveEnv) {
    for key in names() {
        cmd.remove_env(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scrubbed_child_sees_no_secret_but_an_explicit_value() {
        add_known(vec!["DEMO_AGENT_TOKEN".into()]);
        let mut cmd = std::process::Command::new("env");
        cmd.env("CROWN_TOKEN", "canary-a").env("DEMO_AGENT_TOKEN", "canary-b").env("KEEP", "yes");
        scrub(&mut cmd);
        cmd.env("RAZAR_ALERT_WEBHOOK", "explicit");
        let out = String::from_utf8(cmd.output().unwrap().stdout).unwrap();
        assert!(!out.contains("canary"), "{out}");
        assert!(out.contains("KEEP=yes") && out.contains("RAZAR_ALERT_WEBHOOK=explicit"), "{out}");
    }
}
