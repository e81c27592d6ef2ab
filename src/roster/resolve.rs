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
    let text = std::fs::read_to_string(file).map_err(|e| {
        diag(if e.kind() == std::io::ErrorKind::NotFound {
            "not found: create it with the agents in escalation order (see docs/agents.md)".to_owned()
        } else {
            format!("cannot read the file ({e})")
        })
    })?;
    let doc: Value = serde_json::from_str(&text).map_err(|e| diag(format!("malformed JSON: {e}")))?;
    Ok(resolve(file, &doc, env))
}

/// Resolves a parsed roster document (`file` is only used to label problems).
pub fn resolve(file: &Path, doc: &Value, env: &dyn Env) -> Roster {
    let mut problems = Vec::new();
    let push = |list: &mut Vec<Diagnostic>, field: &str, message: String| {
        list.push(Diagnostic { file: file.to_path_buf(), field: field.to_owned(), message })
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
mod tests {
    use serde_json::json;

    use super::*;
    use crate::roster::CredentialSource;
    use crate::roster::tests::MapEnv;

    fn roster(doc: Value, env: &[(&str, &str)]) -> Roster {
        resolve(Path::new("config/razar_ai_agents.json"), &doc, &MapEnv::of(env))
    }

    fn problems(r: &Roster) -> Vec<String> {
        r.all_problems().iter().map(|d| format!("{}: {}", d.field, d.message)).collect()
    }

    fn agent(fields: Value) -> Value {
        let mut base = json!({
            "name": "demo",
            "endpoint": "https://example.com/api",
            "auth": {"type": "bearer", "token": "${DEMO_SECRET}"}
        });
        for (k, v) in fields.as_object().unwrap() {
            if v.is_null() {
                base.as_object_mut().unwrap().remove(k);
            } else {
                base[k] = v.clone();
            }
        }
        base
    }

    #[test]
    fn the_upstream_sample_loads_and_reports_per_agent_problems() {
        let Some(file) = crate::testutil::upstream(
            "roster::resolve::the_upstream_sample_loads_and_reports_per_agent_problems",
            "config/razar_ai_agents.json",
        ) else {
            return;
        };
        let r = load(&file, &MapEnv::of(&[])).unwrap();
        assert_eq!(r.agents.len(), 5);
        assert_eq!(r.current().unwrap().name, "demo_agent");
        assert!(r.agents[0].is_usable() && r.agents[1].is_usable(), "{:?}", problems(&r));
        assert_eq!(r.agents[0].protocol, Some(Protocol::PatchService));
        let got = problems(&r).join("\n");
        for (i, name, var) in [(2, "kimi2", "KIMI2"), (3, "airstar", "AIRSTAR"), (4, "rstar", "RSTAR")] {
            for want in [
                format!("agents[{i}].endpoint: environment variable {var}_ENDPOINT is not set (agent {name})"),
                format!("agents[{i}].auth: Environment variable {var}_API_KEY is required for agent {name}"),
            ] {
                assert!(got.contains(&want), "missing {want:?} in:\n{got}");
            }
        }
        assert_eq!(r.all_problems().len(), 6, "{got}");

        let env = [
            ("KIMI2_ENDPOINT", "https://kimi.example/v1"),
            ("AIRSTAR_ENDPOINT", "https://air.example/v1"),
            ("RSTAR_ENDPOINT", "http://127.0.0.1:8000/v1"),
            ("KIMI2_API_KEY", "k"),
            ("AIRSTAR_API_KEY", "a"),
            ("RSTAR_API_KEY", "r"),
        ];
        let r = load(&file, &MapEnv::of(&env)).unwrap();
        assert!(r.is_valid(), "{:?}", problems(&r));
        assert_eq!(r.agents[4].protocol, Some(Protocol::VllmCompletions));
        assert_eq!(r.agents[2].endpoint.as_ref().unwrap().display(), "${KIMI2_ENDPOINT}");
        assert_eq!(r.agents[2].endpoint.as_ref().unwrap().url().as_str(), "https://kimi.example/v1");
    }

    #[test]
    fn protocols_are_inferred_from_the_name() {
        for (name, want) in [
            ("kimi2", Protocol::OpenaiChat),
            ("AirStar", Protocol::OpenaiChat),
            ("rstar", Protocol::VllmCompletions),
            ("crown", Protocol::Crown),
            ("Kimicho", Protocol::Kimicho),
            ("opencode", Protocol::Opencode),
            ("demo_agent", Protocol::PatchService),
        ] {
            assert_eq!(infer_protocol(name), want, "{name}");
        }
        let r = roster(
            json!({"agents": [agent(json!({"name": "kimi2", "protocol": "patch-service"}))]}),
            &[("KIMI2_API_KEY", "k")],
        );
        assert_eq!(r.agents[0].protocol, Some(Protocol::PatchService), "an explicit protocol wins");
    }

    #[test]
    fn an_unknown_protocol_lists_the_allowed_ones() {
        let r = roster(json!({"agents": [agent(json!({"protocol": "openai_chat"}))]}), &[("DEMO_SECRET", "s")]);
        let got = problems(&r);
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].starts_with("agents[0].protocol: unknown variant `openai_chat`"), "{got:?}");
        for p in Protocol::ALL {
            assert!(got[0].contains(p.as_str()), "{got:?}");
        }
        assert!(got[0].ends_with("did you mean `openai-chat`?"), "{got:?}");
        assert_eq!(r.agents[0].protocol, None);
    }

    #[test]
    fn names_match_case_insensitively_and_must_be_unique() {
        let doc = json!({"active": "DEMO", "agents": [
            agent(json!({})),
            agent(json!({"name": "other"})),
            agent(json!({"name": "Demo"}))
        ]});
        let r = roster(doc, &[("DEMO_SECRET", "s")]);
        assert_eq!(r.active, Some(0));
        assert_eq!(r.find("OTHER").unwrap().index, 1);
        let got = problems(&r);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(
            got[0],
            "agents[2].name: duplicate name `Demo`: agents[0] is `demo` (names match case-insensitively); rename one"
        );
    }

    #[test]
    fn active_must_name_an_agent() {
        let r = roster(json!({"active": "dmeo", "agents": [agent(json!({}))]}), &[("DEMO_SECRET", "s")]);
        assert_eq!(problems(&r), ["active: `dmeo` names no agent in `agents` (agents: demo); did you mean `demo`?"]);
        assert_eq!(r.current().unwrap().name, "demo", "falls back to the first agent");
    }

    #[test]
    fn plain_http_off_loopback_is_refused_unless_allowed() {
        let env = [("DEMO_SECRET", "s")];
        let r = roster(json!({"agents": [agent(json!({"endpoint": "http://agents.example/api"}))]}), &env);
        let got = problems(&r);
        assert!(got[0].starts_with("agents[0].endpoint: \"http://agents.example/api\" is plain http://"), "{got:?}");
        assert!(got[0].contains("allow_insecure: true"), "{got:?}");
        let r = roster(
            json!({"agents": [agent(json!({"endpoint": "http://agents.example/api", "allow_insecure": true}))]}),
            &env,
        );
        assert!(r.is_valid(), "{:?}", problems(&r));
        for ok in ["http://127.0.0.1:9/x", "http://localhost:9", "http://[::1]:9/", "https://agents.example"] {
            let r = roster(json!({"agents": [agent(json!({"endpoint": ok}))]}), &env);
            assert!(r.is_valid(), "{ok}: {:?}", problems(&r));
        }
        for bad in ["ftp://agents.example", "agents.example/api", "ws://127.0.0.1:9"] {
            let r = roster(json!({"agents": [agent(json!({"endpoint": bad}))]}), &env);
            assert!(!r.is_valid(), "{bad}");
        }
    }

    #[test]
    fn crown_takes_websocket_urls_and_opencode_needs_no_endpoint() {
        let r = roster(
            json!({"agents": [
                {"name": "crown", "endpoint": "ws://127.0.0.1:8765"},
                {"name": "crown2", "protocol": "crown", "endpoint": "ws://crown.example:8765"},
                {"name": "opencode"},
                {"name": "crown3", "protocol": "crown", "endpoint": "https://crown.example"}
            ]}),
            &[],
        );
        let got = problems(&r);
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0].starts_with("agents[1].endpoint: \"ws://crown.example:8765\" is plain ws://"), "{got:?}");
        assert!(got[1].starts_with("agents[3].endpoint: \"https://crown.example\" is a https:// URL"), "{got:?}");
        assert!(matches!(r.agents[0].credential, Ok(None)), "crown needs no credential");
        assert!(r.agents[2].is_usable() && r.agents[2].endpoint.is_none());
    }

    #[test]
    fn endpoint_expansion_names_the_variable_agent_and_field() {
        let r =
            roster(json!({"agents": [agent(json!({"endpoint": "https://${API_HOST}/v1"}))]}), &[("DEMO_SECRET", "s")]);
        assert_eq!(
            problems(&r),
            ["agents[0].endpoint: environment variable API_HOST is not set (agent demo); set it or write the URL"]
        );
        let r = roster(
            json!({"agents": [agent(json!({"endpoint": "https://${API_HOST}/v1"}))]}),
            &[("DEMO_SECRET", "s"), ("API_HOST", "api.example")],
        );
        // Shown as written: an expanded variable never reaches a message or a table.
        assert_eq!(r.agents[0].endpoint.as_ref().unwrap().display(), "https://${API_HOST}/v1");
        assert_eq!(r.agents[0].endpoint.as_ref().unwrap().url().as_str(), "https://api.example/v1");
    }

    #[test]
    fn credential_problems_are_reported_per_agent() {
        let doc = json!({"agents": [
            agent(json!({})),
            agent(json!({"name": "second", "auth": null})),
            agent(json!({"name": "third", "auth": {"type": "api_key", "key": "LITERAL"}}))
        ]});
        let r = roster(doc, &[]);
        let got = problems(&r);
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(
            got[0],
            "agents[0].auth.token: environment variable DEMO_SECRET is not set (agent demo); set it, or set DEMO_API_KEY or DEMO_TOKEN"
        );
        assert!(
            got[1].starts_with(
                "agents[1].auth: Environment variable SECOND_API_KEY or SECOND_TOKEN is required for agent second"
            ),
            "{got:?}"
        );
        let third = &r.agents[2];
        assert!(third.is_usable());
        assert_eq!(
            third.credential.as_ref().unwrap().as_ref().unwrap().source,
            CredentialSource::File { field: "auth.key".into() }
        );
        assert_eq!(third.warnings.len(), 1, "a literal secret is accepted with a warning");

        let r = roster(json!({"agents": [agent(json!({"auth": null}))]}), &[("DEMO_TOKEN", "t")]);
        assert!(r.is_valid(), "the environment alone is enough: {:?}", problems(&r));
    }

    #[test]
    fn auth_shape_problems_are_reported_at_their_path_without_values() {
        let doc = json!({"agents": [
            agent(json!({"auth": {"type": "bearr", "token": "x"}})),
            agent(json!({"name": "b", "auth": {"type": "bearer", "key": "x"}})),
            agent(json!({"name": "c", "auth": {"type": "api_key", "key": 90210}})),
            agent(json!({"name": "d", "auth": {"token": "x"}, "endpiont": "x", "timeout": "5x"}))
        ]});
        let r = roster(doc, &[("DEMO_TOKEN", "t"), ("B_TOKEN", "t"), ("C_TOKEN", "t"), ("D_TOKEN", "t")]);
        let got = problems(&r).join("\n");
        for want in [
            "agents[0].auth.type: unknown variant `bearr`, expected `bearer` or `api_key`; did you mean `bearer`?",
            "agents[1].auth.key: `key` goes with `type: api_key`; for `type: bearer` write the secret in `token`",
            "agents[2].auth.key: expected a string, found a number",
            "agents[3].auth.type: missing: `bearer` (secret in `token`) or `api_key` (secret in `key`)",
            "agents[3].endpiont: unknown field `endpiont`; did you mean `endpoint`?",
            "agents[3].timeout: bad duration \"5x\"",
        ] {
            assert!(got.contains(want), "missing {want:?} in:\n{got}");
        }
        assert!(!got.contains("90210"), "{got}");

        let r = roster(json!({"agents": [agent(json!({"auth": {"type": "bearer", "token": "pa${ss wo}rd"}}))]}), &[]);
        let got = problems(&r);
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].starts_with("agents[0].auth.token: a `${…}` is not a variable reference"), "{got:?}");
        assert!(!got[0].contains("ss wo"), "{got:?}");
    }

    #[test]
    fn file_level_problems() {
        let got = problems(&roster(json!({"agent": []}), &[]));
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0].starts_with("agent: unknown field `agent`; did you mean `agents`?"), "{got:?}");
        assert!(got[1].starts_with("agents: missing"), "{got:?}");
        assert_eq!(
            problems(&roster(json!({"agents": {}}), &[])),
            ["agents: expected a list of agents, found an object"]
        );
        assert_eq!(problems(&roster(json!([]), &[])), [": expected an object, found a list"]);
        let r = roster(json!({"agents": [7, {}]}), &[]);
        assert_eq!(
            problems(&r),
            [
                "agents[0]: expected an object, found a number",
                "agents[1].name: missing: every agent needs a unique `name`"
            ]
        );
        assert!(roster(json!({"agents": []}), &[]).is_valid());
    }

    #[test]
    fn timeouts_default_to_sixty_seconds_and_must_be_positive() {
        let r = roster(
            json!({"agents": [
                agent(json!({})),
                agent(json!({"name": "b", "timeout": "2m"})),
                agent(json!({"name": "c", "timeout": 0}))
            ]}),
            &[("DEMO_SECRET", "s"), ("B_TOKEN", "t"), ("C_TOKEN", "t")],
        );
        assert_eq!(r.agents[0].timeout, DEFAULT_TIMEOUT);
        assert_eq!(r.agents[1].timeout, Duration::from_secs(120));
        assert_eq!(problems(&r), ["agents[2].timeout: must be greater than 0"]);
    }

    #[test]
    fn kimicho_defaults_to_kimi_k2_url() {
        let r = roster(
            json!({"agents": [{"name": "kimicho", "auth": {"type": "bearer", "token": "${T}"}}]}),
            &[("T", "t"), ("KIMI_K2_URL", "https://k2.example/")],
        );
        assert_eq!(r.agents[0].endpoint.as_ref().unwrap().display(), "${KIMI_K2_URL}");
        assert_eq!(r.agents[0].endpoint.as_ref().unwrap().url().as_str(), "https://k2.example/");
        let r = roster(
            json!({"agents": [{"name": "kimicho", "auth": {"type": "bearer", "token": "${T}"}}]}),
            &[("T", "t")],
        );
        assert_eq!(problems(&r), ["agents[0].endpoint: missing: give the agent's URL or set KIMI_K2_URL"]);
    }

    #[test]
    fn unparseable_urls_are_shown_without_secrets() {
        assert_eq!(redact_url_text("https://u:p@h:1/x?k=s#f"), "https://***@h:1/x?…");
        assert_eq!(redact_url_text("u:p@h/x?k=s"), "***@h/x?…");
        let err = check_url("https://u:p@ bad host/?key=s3cret", None, Protocol::PatchService, false).unwrap_err();
        assert!(!err.contains("s3cret") && !err.contains("u:p"), "{err}");
    }

    #[test]
    fn a_bad_endpoint_built_from_a_variable_never_shows_its_value() {
        for value in
            ["ftp://canary-host/x", "https://canary-host:99999/x", "http://canary-host.example/x", "canary-plain"]
        {
            let r = roster(
                json!({"agents": [agent(json!({"endpoint": "${AGENT_URL}"}))]}),
                &[("DEMO_SECRET", "s"), ("AGENT_URL", value)],
            );
            let got = problems(&r);
            assert_eq!(got.len(), 1, "{value}: {got:?}");
            assert!(got[0].starts_with("agents[0].endpoint: \"${AGENT_URL}\" (after expansion)"), "{got:?}");
            assert!(!got[0].to_lowercase().contains("canary"), "{value} leaked: {got:?}");
        }
        let r = roster(
            json!({"agents": [agent(json!({"endpoint": "https://${AGENT_HOST}/v1"}))]}),
            &[("DEMO_SECRET", "s"), ("AGENT_HOST", "canary-host.example")],
        );
        assert_eq!(r.agents[0].endpoint.as_ref().unwrap().display(), "https://${AGENT_HOST}/v1");
        assert!(!format!("{r:?}").contains("canary"));
    }

    #[test]
    fn debug_of_a_roster_never_shows_a_secret() {
        let doc = json!({"agents": [
            agent(json!({"endpoint": "https://u:pw@h.example/?k=q1"})),
            agent(json!({"name": "lit", "auth": {"type": "bearer", "token": "canary-lit"}}))
        ]});
        let r = roster(doc, &[("DEMO_SECRET", "canary-env")]);
        let text = format!("{r:?}");
        for secret in ["canary-env", "canary-lit", "q1", "pw@"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }
}
