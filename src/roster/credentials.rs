//! Where an agent's credential comes from (DESIGN §9.1). Pure: the environment comes in as an
//! [`Env`].
//!
//! Order, first hit wins:
//! - `kimi2`, `airstar`, `rstar`: `<NAME>_API_KEY` only. The variable is required; a value in
//!   the file does not stand in for it.
//! - any other agent: `<NAME>_API_KEY`, then `<NAME>_TOKEN`, then the file's `auth.token` /
//!   `auth.key` (after `${VAR}` expansion). A literal value in the file is accepted with a
//!   warning: secrets belong in the environment.
//!
//! `NAME` is the agent's name uppercased with every character outside `A-Z0-9` replaced by `_`.
//! A blank value counts as missing. Invariant: the secret itself only ever lives in a
//! [`Secret`], whose `Debug` prints `***` and which has no `Display` or `Serialize`.

use std::fmt;

use super::expand::{self, Expanded, Problem};
use crate::config::Env;

/// Agents whose credential must come from `<NAME>_API_KEY` in the environment.
pub const ENV_ONLY: &[&str] = &["kimi2", "airstar", "rstar"];

/// A secret value. `Debug` prints `***`; there is deliberately no `Display` or `Serialize`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// `None` for an empty or blank value; surrounding whitespace is dropped.
    pub fn new(value: &str) -> Option<Secret> {
        let v = value.trim();
        (!v.is_empty()).then(|| Secret(v.to_owned()))
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("***")
    }
}

/// Where a credential was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    /// An environment variable: the agent's own, or the one a `"${VAR}"` value in the file
    /// names.
    Env { variable: String },
    /// A value written in the roster file, at `field` (`auth.token` or `auth.key`).
    File { field: String },
}

impl fmt::Display for CredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            CredentialSource::Env { variable } => write!(f, "env {variable}"),
            CredentialSource::File { field } => write!(f, "file {field}"),
        }
    }
}

/// A resolved credential. `Debug` shows the source and `***`.
#[derive(Debug, Clone)]
pub struct Credential {
    pub source: CredentialSource,
    pub secret: Secret,
}

/// An agent has no usable credential. Raised when the agent is about to be used; reported up
/// front by `razar validate` and `razar agents check`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct AgentCredentialError {
    /// The agent's name as written in the roster.
    pub agent: String,
    /// The environment variables looked at, in order.
    pub variables: Vec<String>,
    /// Whether a value in the file would also have been accepted.
    pub file_accepted: bool,
    /// The file holds a value that is not used for this agent (an env-only agent).
    pub file_ignored: Option<String>,
}

impl AgentCredentialError {
    fn describe(&self) -> String {
        let mut msg =
            format!("Environment variable {} is required for agent {}", self.variables.join(" or "), self.agent);
        if self.file_accepted {
            msg.push_str(" (or a value in `auth.token` / `auth.key`)");
        }
        if let Some(field) = &self.file_ignored {
            msg.push_str(&format!("; the roster's `{field}` is not used for this agent"));
        }
        msg
    }
}

/// The outcome of looking up one agent's credential.
#[derive(Debug, Clone)]
pub struct Lookup {
    /// `Ok(None)`: nothing found and the protocol needs nothing.
    pub credential: Result<Option<Credential>, AgentCredentialError>,
    /// Problems expanding the file's value, when that value was the one to use.
    pub expand_problems: Vec<Problem>,
    /// Set when the credential is a literal value in the file.
    pub warning: Option<String>,
}

/// `kimi2` → `KIMI2`, `demo-agent` → `DEMO_AGENT`.
pub fn env_prefix(agent: &str) -> String {
    agent.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect()
}

/// Whether `agent` is one whose credential must come from the environment.
pub fn env_only(agent: &str) -> bool {
    ENV_ONLY.contains(&super::name_key(agent).as_str())
}

/// The environment variables looked at for `agent`, in order.
pub fn variables(agent: &str) -> Vec<String> {
    let prefix = env_prefix(agent);
    if env_only(agent) {
        vec![format!("{prefix}_API_KEY")]
    } else {
        vec![format!("{prefix}_API_KEY"), format!("{prefix}_TOKEN")]
    }
}

/// Looks up `agent`'s credential. `file` is the field (`auth.token` / `auth.key`) and raw
/// value from the roster, if any; `needed` says whether the protocol requires a credential
/// (env-only agents always do).
pub fn lookup(agent: &str, needed: bool, file: Option<(&str, &str)>, env: &dyn Env) -> Lookup {
    let vars = variables(agent);
    let found = |credential| Lookup { credential, expand_problems: Vec::new(), warning: None };
    for v in &vars {
        if let Some(secret) = env.var(v).as_deref().and_then(Secret::new) {
            let source = CredentialSource::Env { variable: v.clone() };
            return found(Ok(Some(Credential { source, secret })));
        }
    }
    let missing = |file_ignored| AgentCredentialError {
        agent: agent.to_owned(),
        variables: vars.clone(),
        file_accepted: !env_only(agent),
        file_ignored,
    };
    if env_only(agent) {
        // `"token": "${KIMI2_API_KEY}"` names the required variable itself: nothing is ignored.
        let ignored = file
            .filter(|(_, raw)| !raw.trim().is_empty() && raw.trim() != format!("${{{}}}", vars[0]))
            .map(|(field, _)| field.to_owned());
        return found(Err(missing(ignored)));
    }
    let none = |needed: bool| if needed { Err(missing(None)) } else { Ok(None) };
    let Some((field, raw)) = file else { return found(none(needed)) };
    match expand::expand(raw, env) {
        Err(problems) => Lookup { credential: Err(missing(None)), expand_problems: problems, warning: None },
        Ok(Expanded { value, variables, literal }) => {
            let Some(secret) = Secret::new(&value) else { return found(none(needed)) };
            let source = match variables.as_slice() {
                [only] if !literal => CredentialSource::Env { variable: only.clone() },
                _ => CredentialSource::File { field: field.to_owned() },
            };
            let warning = literal.then(|| {
                format!(
                    "`{field}` holds a literal secret; secrets belong in the environment: set {} (it overrides the file) or write \"${{VAR}}\"",
                    vars[0]
                )
            });
            Lookup { credential: Ok(Some(Credential { source, secret })), expand_problems: Vec::new(), warning }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roster::tests::MapEnv;

    fn source(l: &Lookup) -> Option<CredentialSource> {
        l.credential.as_ref().ok().and_then(|c| c.as_ref()).map(|c| c.source.clone())
    }

    fn secret(l: &Lookup) -> Option<&str> {
        l.credential.as_ref().ok().and_then(|c| c.as_ref()).map(|c| c.secret.expose())
    }

    #[test]
    fn names_normalise_to_variable_prefixes() {
        assert_eq!(env_prefix("kimi2"), "KIMI2");
        assert_eq!(env_prefix("demo-agent.v2"), "DEMO_AGENT_V2");
        assert_eq!(env_prefix("Backup_Agent"), "BACKUP_AGENT");
        assert_eq!(env_prefix("ünï"), "_N_");
        assert_eq!(variables("Kimi2"), ["KIMI2_API_KEY"]);
        assert_eq!(variables("demo-agent"), ["DEMO_AGENT_API_KEY", "DEMO_AGENT_TOKEN"]);
    }

    #[test]
    fn env_only_agents_need_their_variable_and_ignore_the_file() {
        for name in ["kimi2", "AirStar", "rstar"] {
            let var = format!("{}_API_KEY", env_prefix(name));
            let l = lookup(name, true, Some(("auth.token", "literal")), &MapEnv::of(&[(&var, "k")]));
            assert_eq!(source(&l), Some(CredentialSource::Env { variable: var.clone() }));
            let l = lookup(name, true, Some(("auth.token", "literal")), &MapEnv::of(&[]));
            let err = l.credential.unwrap_err();
            assert!(
                err.to_string().starts_with(&format!("Environment variable {var} is required for agent {name}")),
                "{err}"
            );
            assert_eq!(err.file_ignored.as_deref(), Some("auth.token"));
            // Only the _API_KEY name counts for these agents.
            let token_var = format!("{}_TOKEN", env_prefix(name));
            let l = lookup(name, false, None, &MapEnv::of(&[(&token_var, "t")]));
            assert!(l.credential.is_err());
        }
        let l = lookup("kimi2", true, Some(("auth.token", "${KIMI2_API_KEY}")), &MapEnv::of(&[]));
        assert_eq!(
            l.credential.unwrap_err().to_string(),
            "Environment variable KIMI2_API_KEY is required for agent kimi2"
        );
    }

    #[test]
    fn other_agents_read_api_key_then_token_then_the_file() {
        let file = Some(("auth.token", "from-file"));
        let both = MapEnv::of(&[("DEMO_API_KEY", "a"), ("DEMO_TOKEN", "t")]);
        let l = lookup("demo", true, file, &both);
        assert_eq!(
            (source(&l), secret(&l)),
            (Some(CredentialSource::Env { variable: "DEMO_API_KEY".into() }), Some("a"))
        );
        let l = lookup("demo", true, file, &MapEnv::of(&[("DEMO_API_KEY", "  "), ("DEMO_TOKEN", "t")]));
        assert_eq!(
            (source(&l), secret(&l)),
            (Some(CredentialSource::Env { variable: "DEMO_TOKEN".into() }), Some("t"))
        );
        let l = lookup("demo", true, file, &MapEnv::of(&[]));
        assert_eq!(source(&l), Some(CredentialSource::File { field: "auth.token".into() }));
        assert_eq!(secret(&l), Some("from-file"));
        assert!(l.warning.as_deref().unwrap().contains("set DEMO_API_KEY"), "{:?}", l.warning);
    }

    #[test]
    fn a_file_reference_is_an_env_source_without_warning() {
        let l = lookup("demo", true, Some(("auth.key", "${MY_SECRET}")), &MapEnv::of(&[("MY_SECRET", "s")]));
        assert_eq!(source(&l), Some(CredentialSource::Env { variable: "MY_SECRET".into() }));
        assert!(l.warning.is_none());
        let l = lookup("demo", true, Some(("auth.key", "${MY_SECRET}")), &MapEnv::of(&[]));
        assert_eq!(l.expand_problems, vec![Problem::Unset("MY_SECRET".into())]);
        assert!(l.credential.is_err());
    }

    #[test]
    fn missing_credentials_name_every_variable_looked_at() {
        let l = lookup("backup_agent", true, None, &MapEnv::of(&[]));
        let msg = l.credential.unwrap_err().to_string();
        assert!(
            msg.starts_with(
                "Environment variable BACKUP_AGENT_API_KEY or BACKUP_AGENT_TOKEN is required for agent backup_agent"
            ),
            "{msg}"
        );
        let l = lookup("demo", true, Some(("auth.token", "   ")), &MapEnv::of(&[]));
        assert!(l.credential.is_err(), "a blank file value counts as missing");
        let l = lookup("opencode", false, None, &MapEnv::of(&[]));
        assert!(matches!(l.credential, Ok(None)));
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let l = lookup("demo", true, None, &MapEnv::of(&[("DEMO_TOKEN", "canary-7f3a")]));
        let cred = l.credential.clone().unwrap().unwrap();
        assert_eq!(format!("{:?}", cred.secret), "***");
        assert!(!format!("{cred:?} {l:?}").contains("canary-7f3a"));
        assert_eq!(Secret::new("  x \n").unwrap().expose(), "x");
        assert!(Secret::new(" ").is_none());
    }
}
