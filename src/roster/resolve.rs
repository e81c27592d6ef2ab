//! Reading and resolving the roster. The file is parsed field by field so every bad field is
//! reported at its own path (`agents[1].auth.type`), and each agent is resolved on its own so
//! one agent's problem never hides another's. Values of `auth.token` / `auth.key` never appear
//! in a message, even when they have the wrong type.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::credentials::{self, Lookup};
use super::expand::{self, Problem};
use super::raw::{AuthType, Protocol, RawAgent, RawAuth, RawRoster};
use super::{Agent, DEFAULT_TIMEOUT, Endpoint, Roster, name_key, redact_url_text};
use crate::config::load::did_you_mean;
use crate::config::load::{explain_serde, type_name};
use crate::config::{Diagnostic, Env};

/// Fields whose values are secrets: their values are never echoed in a message.
const SECRET_FIELDS: &[&str] = &["token", "key"];

/// Where `kimicho` posts when the agent has no `endpoint`.
const KIMICHO_URL_VAR: &str = "KIMI_K2_URL";

/// Reads `file` and resolves it. `Err` only when the file cannot be read or is not JSON;
/// everything else is a problem inside the returned roster.
pub fn load(file: &Path, env: &dyn Env) -> Result<Roster, Diagnostic> {
    let diag = |message: String| Diagnostic { file: file.to_path_buf(), field: String::new(), message };
    let text = crate::config::limits::read_capped(file).map_err(|e| {
        diag(match e.kind() {
            std::io::ErrorKind::NotFound => {
                "not found: create it with the agents in escalation order (see docs/agents.md)".to_owned()
            }
            std::io::ErrorKind::FileTooLarge => format!("{e}; razar refuses it before parsing"),
            _ => format!("cannot read the file ({e})"),
        })
    })?;
    crate::config::limits::check_depth(&text, false).map_err(diag)?;
    let doc: Value = serde_json::from_str(&text).map_err(|e| diag(format!("malformed JSON: {e}")))?;
    Ok(resolve(file, &doc, env))
}

/// Resolves a parsed roster document (`file` is only used to label problems).
pub fn resolve(file: &Path, doc: &Value, env: &dyn Env) -> Roster {
    let mut problems = Vec::new();
    let push = |list: &mut Vec<Diagnostic>, field: &str, message: String| {
        list.push(Diagnostic { file: file.to_path_buf(), field: field.to_owned(), message });
    };
    // `agents` is parsed element by element below, each problem at the element's own path.
    let mut top = doc.clone();
    let agents_value = top.as_object_mut().and_then(|o| o.remove("agents"));
    let raw: RawRoster = parse_object(&top, "", &mut |f, m| push(&mut problems, f, m));
    let mut agents: Vec<Agent> = match agents_value {
        Some(Value::Array(items)) => items.iter().enumerate().map(|(i, v)| resolve_agent(file, i, v, env)).collect(),
        Some(other) => {
            push(&mut problems, "agents", format!("expected a list of agents, found {}", type_name(&other)));
            Vec::new()
        }
        None if doc.is_object() => {
            push(&mut problems, "agents", "missing: list the agents under `agents`, in escalation order".into());
            Vec::new()
        }
        None => Vec::new(),
    };

    let mut first: HashMap<String, (usize, String)> = HashMap::new();
    for agent in &mut agents {
        if agent.name.is_empty() {
            continue;
        }
        let key = name_key(&agent.name);
        if let Some((j, earlier)) = first.get(&key) {
            let message = format!(
                "duplicate name `{}`: agents[{j}] is `{earlier}` (names match case-insensitively); rename one",
                agent.name
            );
            agent.problems.push(Diagnostic {
                file: file.to_path_buf(),
                field: format!("agents[{}].name", agent.index),
                message,
            });
        } else {
            first.insert(key, (agent.index, agent.name.clone()));
        }
    }

    let active = raw.active.as_deref().and_then(|name| {
        let found = agents.iter().position(|a| !a.name.is_empty() && name_key(&a.name) == name_key(name));
        if found.is_none() {
            let names: Vec<&str> = agents.iter().map(|a| a.name.as_str()).filter(|n| !n.is_empty()).collect();
            let hint =
                did_you_mean(name, names.iter().copied()).map(|s| format!("; did you mean `{s}`?")).unwrap_or_default();
            let listed = if names.is_empty() {
                "no agent is listed".to_owned()
            } else {
                format!("agents: {}", names.join(", "))
            };
            push(&mut problems, "active", format!("`{name}` names no agent in `agents` ({listed}){hint}"));
        }
        found
    });
    Roster { file: file.to_path_buf(), active, agents, problems }
}

/// The protocol an agent speaks when its entry has no `protocol`.
pub fn infer_protocol(name: &str) -> Protocol {
    match super::name_key(name).as_str() {
        "kimi2" | "airstar" => Protocol::OpenaiChat,
        "rstar" => Protocol::VllmCompletions,
        "crown" => Protocol::Crown,
        "kimicho" => Protocol::Kimicho,
        "opencode" => Protocol::Opencode,
        _ => Protocol::PatchService,
    }
}

fn resolve_agent(file: &Path, index: usize, value: &Value, env: &dyn Env) -> Agent {
    let path = format!("agents[{index}]");
    let at = |field: &str| format!("{path}.{field}");
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let mut push = |field: String, message: String| {
        problems.push(Diagnostic { file: file.to_path_buf(), field, message });
    };

    let mut body = value.clone();
    let auth_value = body.as_object_mut().and_then(|o| o.remove("auth"));
    let raw: RawAgent = parse_object(&body, &path, &mut |f, m| push(f.to_owned(), m));
    let auth: Option<RawAuth> = auth_value.map(|v| parse_object(&v, &at("auth"), &mut |f, m| push(f.to_owned(), m)));

    let name = match raw.name.as_deref().map(str::trim) {
        None if value.is_object() => {
            push(at("name"), "missing: every agent needs a unique `name`".into());
            String::new()
        }
        None => String::new(),
        Some("") => {
            push(at("name"), "must not be blank".into());
            String::new()
        }
        Some(n) => n.to_owned(),
    };
    let label = if name.is_empty() { path.clone() } else { name.clone() };

    let protocol_given = body.get("protocol").is_some();
    let protocol = match raw.protocol {
        Some(p) => Some(p),
        // A `protocol` that failed to parse is already a problem; guessing would mislead.
        None if protocol_given => None,
        None if name.is_empty() => None,
        None => Some(infer_protocol(&name)),
    };

    let allow_insecure = raw.allow_insecure.unwrap_or(false);
    let endpoint =
        resolve_endpoint(raw.endpoint.as_deref(), protocol, allow_insecure, &label, env, &mut |f, m| push(at(f), m));
    if protocol == Some(Protocol::Opencode) && raw.endpoint.is_some() {
        warnings.push("`endpoint` is not used by the opencode protocol".to_owned());
    }

    let timeout = raw.timeout.map_or(DEFAULT_TIMEOUT, |d| d.0);
    if timeout == Duration::ZERO {
        push(at("timeout"), "must be greater than 0".into());
    }

    let file_secret = auth.as_ref().and_then(|a| file_secret(a, &mut |f, m| push(at(f), m)));
    let credential = if name.is_empty() {
        Ok(None)
    } else {
        let needed = !matches!(protocol, Some(Protocol::Crown | Protocol::Opencode));
        let file = file_secret.as_ref().map(|(field, raw)| (field.as_str(), raw.as_str()));
        let Lookup { credential, expand_problems, warning } = credentials::lookup(&name, needed, file, env);
        warnings.extend(warning);
        match (&credential, file_secret.as_ref()) {
            (Err(_), Some((field, _))) if !expand_problems.is_empty() => {
                let others = credentials::variables(&name).join(" or ");
                for p in expand_problems {
                    push(at(field), describe_expand(&p, &label, &format!("set it, or set {others}"), true));
                }
            }
            (Err(e), _) => push(at("auth"), e.to_string()),
            (Ok(Some(c)), _) if needed => {
                if let Err(e) = super::remote::auth_headers(Some(&c.secret)) {
                    push(at("auth"), format!("{e} (agent {label})"));
                }
            }
            (Ok(_), _) => {}
        }
        credential
    };

    Agent { index, name, protocol, endpoint, credential, model: raw.model, timeout, problems, warnings }
}

/// The file's secret: `(field, raw value)`, checking that `type` and the field agree.
fn file_secret(auth: &RawAuth, push: &mut dyn FnMut(&str, String)) -> Option<(String, String)> {
    let given = [("token", &auth.token), ("key", &auth.key)];
    match auth.kind {
        Some(kind) => {
            for (field, value) in given {
                if value.is_some() && field != kind.field() {
                    let other = if kind == AuthType::Bearer { "api_key" } else { "bearer" };
                    push(
                        &format!("auth.{field}"),
                        format!(
                            "`{field}` goes with `type: {other}`; for `type: {}` write the secret in `{}`",
                            type_label(kind),
                            kind.field()
                        ),
                    );
                }
            }
        }
        None => push("auth.type", "missing: `bearer` (secret in `token`) or `api_key` (secret in `key`)".into()),
    }
    let field = auth.kind.map_or_else(|| if auth.token.is_some() { "token" } else { "key" }, AuthType::field);
    let value = if field == "token" { &auth.token } else { &auth.key };
    value.as_ref().map(|v| (format!("auth.{field}"), v.clone()))
}

fn type_label(kind: AuthType) -> &'static str {
    match kind {
        AuthType::Bearer => "bearer",
        AuthType::ApiKey => "api_key",
    }
}

fn resolve_endpoint(
    given: Option<&str>,
    protocol: Option<Protocol>,
    allow_insecure: bool,
    agent: &str,
    env: &dyn Env,
    push: &mut dyn FnMut(&str, String),
) -> Option<Endpoint> {
    let protocol = match protocol {
        Some(Protocol::Opencode) => return None,
        // Without a known protocol the allowed schemes are unknown: only expansion is checked.
        None => {
            if let Some(Err(problems)) = given.map(|g| expand::expand(g, env)) {
                for p in problems {
                    push("endpoint", describe_expand(&p, agent, "set it or write the URL", false));
                }
            }
            return None;
        }
        Some(p) => p,
    };
    // A URL built from `${VAR}` is shown as written: the expanded value never is.
    let (text, written) = match given {
        Some(g) => match expand::expand(g, env) {
            Ok(e) => {
                let written = (!e.variables.is_empty()).then(|| g.trim().to_owned());
                (e.value, written)
            }
            Err(problems) => {
                for p in problems {
                    push("endpoint", describe_expand(&p, agent, "set it or write the URL", false));
                }
                return None;
            }
        },
        None if protocol == Protocol::Kimicho => match env.var(KIMICHO_URL_VAR).filter(|v| !v.trim().is_empty()) {
            Some(v) => (v, Some(format!("${{{KIMICHO_URL_VAR}}}"))),
            None => {
                push("endpoint", format!("missing: give the agent's URL or set {KIMICHO_URL_VAR}"));
                return None;
            }
        },
        None => {
            let example = if protocol == Protocol::Crown { "wss://" } else { "https://" };
            push("endpoint", format!("missing: give the agent's URL ({example}…)"));
            return None;
        }
    };
    match check_url(text.trim(), written.as_deref(), protocol, allow_insecure) {
        Ok(e) => Some(e),
        Err(message) => {
            push("endpoint", message);
            None
        }
    }
}

/// Checks an agent URL: `https://` (`wss://` for crown) anywhere, `http://` (`ws://`) on
/// loopback only unless `allow_insecure` (DESIGN §12). `written`: the roster's text when the URL
/// was built from `${VAR}`, the only form messages may show then (with what was wrong, never
/// the expanded parts).
fn check_url(text: &str, written: Option<&str>, protocol: Protocol, allow_insecure: bool) -> Result<Endpoint, String> {
    let (secure, plain) = if protocol == Protocol::Crown { ("wss", "ws") } else { ("https", "http") };
    let shown = match written {
        Some(w) => format!("{:?} (after expansion)", redact_url_text(w)),
        None => format!("{:?}", redact_url_text(text)),
    };
    let url = reqwest::Url::parse(text).map_err(|e| {
        // The parser's reason names no part of the text (e.g. "invalid port number").
        format!("{shown} is not a URL ({e}); write {secure}://host[:port]/path")
    })?;
    if url.scheme() != secure && url.scheme() != plain {
        let scheme = if written.is_some() { "another".to_owned() } else { format!("a {}://", url.scheme()) };
        return Err(format!(
            "{shown} is {scheme} URL; protocol {protocol} needs {secure}:// (or {plain}:// on loopback)"
        ));
    }
    let endpoint = Endpoint::new(url, written);
    if endpoint.url().host_str().is_none_or(str::is_empty) {
        return Err(format!("{shown} has no host"));
    }
    if endpoint.url().scheme() == plain && !allow_insecure && !endpoint.is_loopback() {
        return Err(format!(
            "{shown} is plain {plain}:// to a non-loopback host; use {secure}:// or set `allow_insecure: true` on the agent"
        ));
    }
    Ok(endpoint)
}

/// `secret`: the text belongs to a secret field, so no part of it but a variable name is shown.
fn describe_expand(p: &Problem, agent: &str, fix: &str, secret: bool) -> String {
    match p {
        Problem::Unset(var) => format!("environment variable {var} is not set (agent {agent}); {fix}"),
        Problem::Unclosed => format!("`${{` without a closing `}}` (agent {agent}); write `${{VAR}}`"),
        Problem::BadName(n) => {
            let shown = if secret { "a `${…}`".to_owned() } else { format!("`${{{n}}}`") };
            format!(
                "{shown} is not a variable reference (agent {agent}); names use A-Z a-z 0-9 _ and do not start with a digit"
            )
        }
    }
}

/// Property names of a roster struct, from its generated schema (one source of truth).
fn known_fields<T: JsonSchema>() -> Vec<String> {
    let schema = schemars::schema_for!(T);
    schema.schema.object.map(|o| o.properties.keys().cloned().collect()).unwrap_or_default()
}

/// Parses a JSON object into `T` field by field so every bad field is reported, not just the
/// first. Unknown keys get a did-you-mean and are dropped; secret fields are never echoed.
fn parse_object<T: DeserializeOwned + Default + JsonSchema>(
    value: &Value,
    path: &str,
    push: &mut dyn FnMut(&str, String),
) -> T {
    let join = |key: &str| if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") };
    let Some(obj) = value.as_object() else {
        push(path, format!("expected an object, found {}", type_name(value)));
        return T::default();
    };
    let known = known_fields::<T>();
    let mut good = Map::new();
    for (key, v) in obj {
        if !known.iter().any(|k| k == key) {
            push(&join(key), format!("unknown field `{key}`{}", hint(key, &known)));
            continue;
        }
        let single = Value::Object(Map::from_iter([(key.clone(), v.clone())]));
        match serde_json::from_value::<T>(single) {
            Ok(_) => {
                good.insert(key.clone(), v.clone());
            }
            Err(_) if SECRET_FIELDS.contains(&key.as_str()) => {
                push(&join(key), format!("expected a string, found {}", type_name(v)));
            }
            Err(e) => push(&join(key), explain_serde(&e.to_string())),
        }
    }
    serde_json::from_value(Value::Object(good)).unwrap_or_default()
}

fn hint(word: &str, candidates: &[String]) -> String {
    did_you_mean(word, candidates.iter().map(String::as_str))
        .map(|s| format!("; did you mean `{s}`?"))
        .unwrap_or_default()
}

#[cfg(test)]
#[path = "resolve_tests.rs"]
mod tests;
