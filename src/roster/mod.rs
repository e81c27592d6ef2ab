//! The agent roster, `config/razar_ai_agents.json` (DESIGN §9.1): which repair agents exist,
//! in which order, where they live and how they authenticate.
//!
//! `raw` is the serde mirror; `resolve` turns it into [`Roster`] — every problem of every agent
//! collected, one agent's problem never hiding another's; `credentials` decides where a
//! secret comes from; `remote` probes resolved agents for `razar agents check --include-remote`.
//!
//! Invariants: an [`Agent`] whose `problems` is empty has a protocol, an endpoint its protocol
//! accepts (or none, for `opencode`) and, when its protocol needs one, a credential. Secrets
//! live only in [`Secret`]; nothing here prints, logs or stores one. Endpoints are shown
//! without userinfo, query or fragment.

pub mod credentials;
pub mod expand;
pub mod raw;
pub mod remote;
mod resolve;
pub mod snapshot;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

pub use credentials::{AgentCredentialError, Credential, CredentialSource, Secret};
pub use raw::Protocol;
pub use resolve::{infer_protocol, load, resolve};

use crate::config::Diagnostic;

/// The roster's path under the root.
pub const FILE: &str = "config/razar_ai_agents.json";

/// Per-request timeout of an agent without `timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// A loaded roster: every agent, resolved as far as it goes, with its problems.
#[derive(Debug)]
pub struct Roster {
    pub file: PathBuf,
    /// Index of the agent `active` names (`None`: absent or unknown; see [`Roster::current`]).
    pub active: Option<usize>,
    /// The agents in chain order.
    pub agents: Vec<Agent>,
    /// Problems of the file as a whole (unknown top-level fields, `agents` missing, a bad
    /// `active`).
    pub problems: Vec<Diagnostic>,
}

impl Roster {
    /// Every problem: the file's, then each agent's in chain order.
    pub fn all_problems(&self) -> Vec<Diagnostic> {
        let mut all = self.problems.clone();
        all.extend(self.agents.iter().flat_map(|a| a.problems.iter().cloned()));
        all
    }

    /// Problems that depend on this host's environment (an unset `${VAR}` or credential
    /// variable), as opposed to mistakes in the file. `validate` reports them as warnings:
    /// the stack's config is fine, the host just lacks a key; `agents check` fails on them.
    pub fn environment_problems(&self) -> Vec<Diagnostic> {
        self.all_problems().into_iter().filter(is_environment_problem).collect()
    }

    /// Problems in the file itself.
    pub fn file_problems(&self) -> Vec<Diagnostic> {
        self.all_problems().into_iter().filter(|d| !is_environment_problem(d)).collect()
    }

    /// True when the file and every agent resolved without a problem.
    pub fn is_valid(&self) -> bool {
        self.problems.is_empty() && self.agents.iter().all(Agent::is_usable)
    }

    /// The agent named `name`, compared case-insensitively.
    pub fn find(&self, name: &str) -> Option<&Agent> {
        self.agents.iter().find(|a| !a.name.is_empty() && name_key(&a.name) == name_key(name))
    }

    /// The agent that handles the next round: `active`, else the first.
    pub fn current(&self) -> Option<&Agent> {
        self.active.map_or(self.agents.first(), |i| self.agents.get(i))
    }
}

/// One agent of the roster.
#[derive(Debug)]
pub struct Agent {
    /// Position in `agents` (the chain).
    pub index: usize,
    /// The name as written; empty when the entry has none.
    pub name: String,
    /// `None` when `protocol` holds an unknown value.
    pub protocol: Option<Protocol>,
    /// `None` for `opencode`, or when the endpoint did not resolve.
    pub endpoint: Option<Endpoint>,
    /// The credential, `Ok(None)` when the protocol needs none and none was found. Raise the
    /// error when the agent is about to be used.
    pub credential: Result<Option<Credential>, AgentCredentialError>,
    pub model: Option<String>,
    pub timeout: Duration,
    pub problems: Vec<Diagnostic>,
    /// Accepted but questionable settings (a literal secret in the file, an unused field).
    pub warnings: Vec<String>,
}

impl Agent {
    /// The name, or `agents[N]` for an entry without one.
    pub fn label(&self) -> String {
        if self.name.is_empty() { format!("agents[{}]", self.index) } else { self.name.clone() }
    }

    /// True when nothing is wrong with the entry.
    pub fn is_usable(&self) -> bool {
        self.problems.is_empty()
    }
}

/// A validated agent URL. Its `Debug` and [`Endpoint::display`] hide userinfo, query and
/// fragment, which may carry secrets, and show a URL built from `${VAR}` as written, never
/// expanded.
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    url: reqwest::Url,
    shown: String,
}

impl Endpoint {
    /// `url`, shown as `written` (the roster's text, `${VAR}` references unexpanded) when it
    /// was built from variables, else as itself; either way through [`crate::redact::url`].
    pub fn new(url: reqwest::Url, written: Option<&str>) -> Self {
        let shown = crate::redact::url(written.unwrap_or(url.as_str()));
        Endpoint { url, shown }
    }

    /// The full URL, for the one place that connects to it.
    pub fn url(&self) -> &reqwest::Url {
        &self.url
    }

    /// The URL as it may be shown: no userinfo, query or fragment.
    pub fn display(&self) -> String {
        self.shown.clone()
    }

    /// `{endpoint}/{segment}`, keeping the query (`https://h/v1?x` + `models` →
    /// `https://h/v1/models?x`).
    pub fn join(&self, segment: &str) -> reqwest::Url {
        let mut url = self.url.clone();
        let path = format!("{}/{segment}", url.path().trim_end_matches('/'));
        url.set_path(&path);
        url
    }

    /// Whether the host is `localhost` or a loopback address.
    pub fn is_loopback(&self) -> bool {
        is_loopback_host(self.url.host_str().unwrap_or_default())
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "Endpoint({})", self.display())
    }
}

/// A possibly unparseable URL as it may be shown ([`crate::redact::url`]).
pub(crate) fn redact_url_text(text: &str) -> String {
    crate::redact::url(text)
}

/// Every variable an agent's credential may come from: its own names, and a `${VAR}` its
/// roster entry points at.
pub fn credential_variables(roster: &Roster) -> Vec<String> {
    let mut names = Vec::new();
    for agent in roster.agents.iter().filter(|a| !a.name.is_empty()) {
        names.extend(credentials::variables(&agent.name));
        if let Ok(Some(Credential { source: CredentialSource::Env { variable }, .. })) = &agent.credential {
            names.push(variable.clone());
        }
    }
    names.sort();
    names.dedup();
    names
}

/// Agent names compare case-insensitively, ignoring surrounding whitespace.
pub fn name_key(name: &str) -> String {
    name.trim().to_lowercase()
}

/// `localhost`, `*.localhost`, `127.0.0.0/8`, `::1`.
fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let lower = host.to_ascii_lowercase();
    lower == "localhost"
        || lower.ends_with(".localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether a problem is a missing environment variable (every such message names one).
fn is_environment_problem(d: &Diagnostic) -> bool {
    d.message.contains("environment variable") || d.message.starts_with("Environment variable")
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::config::Env;

    /// An environment made of the given pairs only.
    pub(crate) struct MapEnv(pub HashMap<String, String>);

    impl MapEnv {
        pub(crate) fn of(pairs: &[(&str, &str)]) -> MapEnv {
            MapEnv(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
        }
    }

    impl Env for MapEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).cloned()
        }
    }

    #[test]
    fn endpoints_hide_userinfo_and_query_and_join_paths() {
        let e = Endpoint::new(reqwest::Url::parse("https://user:pw@api.example/v1/?key=s3cret#frag").unwrap(), None);
        assert_eq!(e.display(), "https://***@api.example/v1/?…");
        assert!(!format!("{e:?}").contains("s3cret"));
        assert!(!format!("{e:?}").contains("pw"));
        assert_eq!(e.join("models").as_str(), "https://user:pw@api.example/v1/models?key=s3cret#frag");
        let bare = Endpoint::new(reqwest::Url::parse("http://127.0.0.1:9").unwrap(), None);
        let templated =
            Endpoint::new(reqwest::Url::parse("https://secret-host.example/v1").unwrap(), Some("https://${HOST}/v1"));
        assert_eq!(templated.display(), "https://${HOST}/v1", "an expanded variable is never shown");
        assert_eq!(bare.join("models").as_str(), "http://127.0.0.1:9/models");
    }

    #[test]
    fn loopback_hosts() {
        for h in ["localhost", "LOCALHOST", "api.localhost", "127.0.0.1", "127.9.9.9", "[::1]", "::1"] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in ["example.com", "10.0.0.1", "[::2]", "localhost.example.com", ""] {
            assert!(!is_loopback_host(h), "{h}");
        }
    }
}
