//! What an engine cannot express, one [`Note`] per field, and the notes every engine shares:
//! razar's own sections (Crown, repair pipeline, Python layers, halting) have no counterpart,
//! and secrets are never written into an exported file.

use std::fmt;

use crate::config::{Component, Config, OnFailure};

/// One field an export could not express (or expressed only in part), and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The component, or `None` for a stack-level setting.
    pub component: Option<String>,
    /// The config field, e.g. `restart.backoff` or `depends_on.db.timeout`.
    pub field: String,
    pub reason: String,
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match &self.component {
            Some(c) => write!(f, "{c}: {}: {}", self.field, self.reason),
            None => write!(f, "(stack): {}: {}", self.field, self.reason),
        }
    }
}

/// The notes of one export, in the order they were found.
#[derive(Debug, Clone, Default)]
pub struct Notes(pub Vec<Note>);

impl Notes {
    pub fn push(&mut self, component: Option<&Component>, field: impl Into<String>, reason: impl Into<String>) {
        self.0.push(Note {
            component: component.map(|c| c.name.to_string()),
            field: field.into(),
            reason: reason.into(),
        });
    }

    /// The notes of `component` (`None`: the stack's).
    pub fn of<'a>(&'a self, component: Option<&'a str>) -> impl Iterator<Item = &'a Note> + 'a {
        self.0.iter().filter(move |n| n.component.as_deref() == component)
    }

    /// `notes` as comment lines (`# ` prefix), under a heading; empty when there are none.
    pub fn comment<'a>(notes: impl Iterator<Item = &'a Note>, engine: &str) -> String {
        let lines: Vec<String> = notes.map(|n| format!("#   {}", one_line(&n.to_string()))).collect();
        if lines.is_empty() {
            return String::new();
        }
        format!("# Not expressible in {engine} (razar export also lists these on stderr):\n{}\n", lines.join("\n"))
    }
}

fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

/// Notes every engine shares: stack-level sections and per-component fields that only razar
/// itself acts on.
pub fn common(cfg: &Config, stack: &str, notes: &mut Notes) {
    if cfg.crown.url.is_some() {
        notes.push(None, "crown", "the Crown handshake is razar's own; no engine performs it");
    }
    if let Some(j) = cfg.jobs {
        notes.push(None, "jobs", format!("at most {j} components starting at once has no counterpart"));
    }
    if cfg.on_failure == OnFailure::Halt {
        notes.push(
            None,
            "on_failure",
            "`halt` stops the whole stack when one component fails; the engine keeps the others running",
        );
    }
    if cfg.metrics.enabled && cfg.metrics.port.is_some() {
        notes.push(None, "metrics", "razar's Prometheus exporter does not run under the engine");
    }
    for c in &cfg.components {
        if let Some(layer) = &c.layer {
            notes.push(
                Some(c),
                "layer",
                format!("the Python layer `{layer}` is built by razar boot; build it into the host or image yourself"),
            );
        }
        if !c.tests.is_empty() || !c.sources.is_empty() {
            notes.push(Some(c), "tests/sources", "the repair pipeline (AI handover, quarantine) has no counterpart");
        }
        for key in c.env.keys().filter(|k| is_secret_env(k)) {
            notes.push(
                Some(c),
                format!("env.{key}"),
                format!(
                    "looks like a secret, so its value is not written: the k8s export reads it from the Secret `{}`; under systemd add it with a drop-in or EnvironmentFile=",
                    secret_store(stack)
                ),
            );
        }
    }
}

/// The Kubernetes Secret the k8s export reads secret variables from.
pub fn secret_store(stack: &str) -> String {
    format!("{}-secrets", super::k8s::dns_label(stack))
}

/// True for an environment variable razar treats as secret: the ones it knows of, and names
/// that say so (`…TOKEN`, `…SECRET…`, `…PASSWORD…`, `…API_KEY`, `…_KEY`).
pub fn is_secret_env(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    crate::supervise::secrets::names().any(|s| s == name)
        || upper.ends_with("TOKEN")
        || upper.contains("SECRET")
        || upper.contains("PASSWORD")
        || upper.contains("PASSWD")
        || upper.ends_with("_KEY")
        || upper == "KEY"
}

/// The environment a component runs with under an engine: its `env` without secrets, plus
/// the markers razar sets.
pub fn component_env(c: &Component, root: &std::path::Path) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> =
        c.env.iter().filter(|(k, _)| !is_secret_env(k)).map(|(k, v)| (k.clone(), v.clone())).collect();
    env.retain(|(k, _)| k != "RAZAR_COMPONENT" && k != "RAZAR_ROOT");
    env.push(("RAZAR_COMPONENT".into(), c.name.to_string()));
    env.push(("RAZAR_ROOT".into(), root.display().to_string()));
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names_are_recognised() {
        for s in ["CROWN_TOKEN", "GITHUB_TOKEN", "DB_PASSWORD", "AWS_SECRET_ACCESS_KEY", "OPENAI_API_KEY"] {
            assert!(is_secret_env(s), "{s}");
        }
        for s in ["API_URL", "PATH", "KEYBOARD", "TOKENIZER_PATH"] {
            assert!(!is_secret_env(s), "{s}");
        }
    }
}
