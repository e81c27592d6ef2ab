//! Tests of `resolve`: the roster from raw entries to agents, problem by problem.

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
    let r = roster(json!({"agents": [agent(json!({"endpoint": "https://${API_HOST}/v1"}))]}), &[("DEMO_SECRET", "s")]);
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
    assert_eq!(problems(&roster(json!({"agents": {}}), &[])), ["agents: expected a list of agents, found an object"]);
    assert_eq!(problems(&roster(json!([]), &[])), [": expected an object, found a list"]);
    let r = roster(json!({"agents": [7, {}]}), &[]);
    assert_eq!(
        problems(&r),
        ["agents[0]: expected an object, found a number", "agents[1].name: missing: every agent needs a unique `name`"]
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
    let r =
        roster(json!({"agents": [{"name": "kimicho", "auth": {"type": "bearer", "token": "${T}"}}]}), &[("T", "t")]);
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
    for value in ["ftp://canary-host/x", "https://canary-host:99999/x", "http://canary-host.example/x", "canary-plain"]
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
