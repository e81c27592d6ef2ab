//! One repair round with one agent (DESIGN §9.2): the failure context goes out by the agent's
//! protocol, a [`Suggestion`] or a [`Failure`] comes back, and the round's counters move.
//!
//! - HTTP protocols ([`Agent`]): one POST through the [`Transport`] (at most one retry), then,
//!   while the reply asks for tools razar answers, the tool loop ([`Agent::follow_up`]): at most
//!   [`MAX_TOOL_ROUNDS`] more POSTs, each bounded like the first. A reply still asking for tools
//!   after that ends the round without a patch.
//! - `crown`: one `repair` frame on the Crown WebSocket.
//! - `opencode`: the local CLI in a sandbox copy.
//!
//! The round journals nothing and moves no ladder: its caller does both.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::agents::kimicho::Kimicho;
use super::agents::openai_chat::OpenaiChat;
use super::agents::patch_service::PatchService;
use super::agents::vllm_completions::VllmCompletions;
use super::agents::{self, Agent, AgentError, Settings, Suggestion};
use super::tools::{MAX_TOOL_ROUNDS, Tools};
use super::transport::{MAX_REPLY, Transport};
use crate::metrics::Metrics;
use crate::roster::{Endpoint, Protocol, Secret};

/// Model settings every request carries.
pub const TEMPERATURE: f64 = 0.2;
pub const MAX_TOKENS: u32 = 4096;

/// Who answers the round.
pub struct Spec<'a> {
    /// The agent's name as journaled and labelled in metrics.
    pub label: String,
    pub protocol: Protocol,
    /// Required by every protocol but `opencode`.
    pub endpoint: Option<&'a Endpoint>,
    pub secret: Option<&'a Secret>,
    /// The roster's `model`; HTTP requests fall back to the label.
    pub model: Option<String>,
    /// Per HTTP attempt, per Crown exchange, or for the whole `opencode` run.
    pub timeout: Duration,
}

/// Where the round's component is: the root and its `sources` (absolute paths under it).
pub struct Target<'a> {
    pub root: &'a std::path::Path,
    pub component: &'a str,
    pub sources: &'a [PathBuf],
}

/// Why a round brought no suggestion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The agent answered, but with no patch or with something unusable.
    Agent(AgentError),
    /// No usable answer: unreachable, timed out, HTTP error, oversized, the CLI failed.
    Transport(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Failure::Agent(e) => e.fmt(f),
            Failure::Transport(d) => f.write_str(d),
        }
    }
}

/// How a round went.
#[derive(Debug)]
pub struct Outcome {
    pub result: Result<Suggestion, Failure>,
    /// Transport retries spent over the whole round.
    pub retries: u32,
    /// Requests (or frames, or CLI runs) the round made.
    pub exchanges: u32,
    /// Paths the agent asked `read_file` for, in order.
    pub reads: Vec<String>,
    pub elapsed: Duration,
}

/// Runs one round of `spec` over `context` for `target`, and records it in `metrics` when given
/// (docs/metrics.md): `razar_agent_call_duration_seconds{agent}` with the round's duration, and
/// `razar_ai_invocation_failure_total{component}` when it brought no suggestion. A suggestion
/// counts in `razar_ai_invocation_success_total` (or `_failure_total`) only once the repair
/// pipeline has verified it, and `razar_ai_invocation_retries_total` counts rounds after the first
/// for one failure: both are for the loop that verifies and repeats rounds to count. Transport
/// retries inside a round are in [`Outcome::retries`] (journaled as `retries`), not in a metric.
pub async fn run(spec: &Spec<'_>, target: &Target<'_>, context: &Value, metrics: Option<&Metrics>) -> Outcome {
    let started = Instant::now();
    let mut outcome = match spec.protocol {
        Protocol::Crown => crown(spec, context).await,
        Protocol::Opencode => {
            let result = agents::opencode::run(
                target.root,
                target.sources,
                target.component,
                context,
                spec.model.as_deref(),
                spec.timeout,
            )
            .await;
            Outcome { result, retries: 0, exchanges: 1, reads: Vec::new(), elapsed: Duration::ZERO }
        }
        Protocol::OpenaiChat => http(&OpenaiChat, spec, target, context).await,
        Protocol::VllmCompletions => http(&VllmCompletions, spec, target, context).await,
        Protocol::PatchService => http(&PatchService, spec, target, context).await,
        Protocol::Kimicho => http(&Kimicho, spec, target, context).await,
    };
    outcome.elapsed = started.elapsed();
    if let Some(m) = metrics {
        m.agent_call(&spec.label, outcome.elapsed);
        if outcome.result.is_err() {
            m.ai_invocation(target.component, false);
        }
    }
    outcome
}

fn failed(failure: Failure) -> Outcome {
    Outcome { result: Err(failure), retries: 0, exchanges: 0, reads: Vec::new(), elapsed: Duration::ZERO }
}

async fn http(protocol: &dyn Agent, spec: &Spec<'_>, target: &Target<'_>, context: &Value) -> Outcome {
    let Some(endpoint) = spec.endpoint else {
        return failed(Failure::Transport(format!("agent {} has no endpoint", spec.label)));
    };
    let transport = match Transport::new() {
        Ok(t) => t,
        Err(e) => return failed(Failure::Transport(e)),
    };
    let settings = Settings {
        model: spec.model.clone().unwrap_or_else(|| spec.label.clone()),
        temperature: TEMPERATURE,
        max_tokens: MAX_TOKENS,
    };
    let mut body = protocol.request(&settings, context);
    if protocol.token_in_body()
        && let (Some(secret), Value::Object(obj)) = (spec.secret, &mut body)
    {
        obj.insert("auth_token".into(), Value::String(secret.expose().to_owned()));
    }
    let url = if protocol.path().is_empty() { endpoint.url().clone() } else { endpoint.join(protocol.path()) };
    let mut tools = Tools::new(target.root, target.sources);
    let mut out = failed(Failure::Transport(String::new()));
    let mut tool_rounds = 0;
    loop {
        out.exchanges += 1;
        let reply = match transport.post_json(url.clone(), spec.secret, &body, spec.timeout).await {
            Ok(r) => r,
            Err(e) => {
                out.retries += e.retries;
                out.result = Err(Failure::Transport(e.to_string()));
                break;
            }
        };
        out.retries += reply.retries;
        match protocol.follow_up(&body, &reply.body, &mut tools) {
            Some(_) if tool_rounds == MAX_TOOL_ROUNDS => {
                out.result = Err(Failure::Agent(AgentError::NoPatch(format!(
                    "still calling read_file after {MAX_TOOL_ROUNDS} answered tool rounds"
                ))));
                break;
            }
            Some(next) => {
                tool_rounds += 1;
                body = next;
            }
            None => {
                out.result = protocol.suggest(&reply.body).map_err(Failure::Agent);
                break;
            }
        }
    }
    out.reads = tools.calls;
    out
}

/// One `repair` frame to a `crown` agent; the bearer token is its credential, else `CROWN_TOKEN`.
async fn crown(spec: &Spec<'_>, context: &Value) -> Outcome {
    use crate::crown::client::{ClientOptions, Token, exchange, redact_url};
    let Some(endpoint) = spec.endpoint else {
        return failed(Failure::Transport(format!("agent {} has no endpoint", spec.label)));
    };
    let token = spec
        .secret
        .and_then(|s| Token::new(s.expose()))
        .or_else(|| std::env::var("CROWN_TOKEN").ok().and_then(Token::new));
    let ca_file = std::env::var_os("RAZAR_CROWN_CA").filter(|v| !v.is_empty()).map(PathBuf::from);
    let opts = ClientOptions { timeout: spec.timeout, max_reply_bytes: MAX_REPLY, token, ca_file };
    let url = endpoint.url().as_str();
    let frame = agents::crown::frame(context).to_string();
    let result = match exchange(url, &frame, &opts).await {
        Ok(reply) => agents::crown::suggest(&reply).map_err(Failure::Agent),
        // The client names the URL as the Crown handshake shows it; show it as the roster
        // does (never expanded from `${VAR}`).
        Err(e) => Err(Failure::Transport(e.to_string().replace(&redact_url(url), &endpoint.display()))),
    };
    Outcome { result, retries: 0, exchanges: 1, reads: Vec::new(), elapsed: Duration::ZERO }
}

#[cfg(test)]
#[path = "round_tests.rs"]
mod tests;
