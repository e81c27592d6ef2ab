//! One whole handshake: brief on disk, exchange, reply checked and archived, every journal
//! written, GLM-4.1V launched when missing. The boot command and `razar handshake` both call
//! [`handshake`]; neither sees the WebSocket.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::brief;
use super::capability::{self, GLM4V_MODEL, GLM4V_OFFLINE};
use super::client::{self, ClientOptions, CrownError, Token, redact_url};
use super::launcher::{self, DEFAULT_LAUNCH_TIMEOUT, LaunchRecord};
use super::protocol::{DowntimeEntry, MalformedReply, Reply};
use crate::config::{ComponentName, Config};
use crate::exit;
use crate::fsutil::{self, FsError};
use crate::journal::{Journal, MissionEvent};
use crate::paths::Paths;

/// Acknowledgement recorded in offline mode.
pub const OFFLINE_ACK: &str = "offline";
/// `component` of the handshake's mission-log records.
const LOG_COMPONENT: &str = "crown";
/// Longest Crown-supplied name quoted in logs.
const NAME_QUOTE_CHARS: usize = 128;

/// The process environment the handshake reads (DESIGN §8), captured once at the edge.
#[derive(Debug, Clone, Default)]
pub struct CrownEnv {
    /// `CROWN_TOKEN`.
    pub token: Option<Token>,
    /// `RAZAR_CROWN_CA`: PEM file of extra CAs for `wss://`.
    pub ca_file: Option<PathBuf>,
    /// `CROWN_IDENTITY_FINGERPRINT`: used when `data/identity.json` does not exist.
    pub identity_fingerprint: Option<String>,
}

impl CrownEnv {
    /// Reads the variables from this process's environment; empty values count as unset.
    pub fn from_process() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        CrownEnv {
            token: var("CROWN_TOKEN").and_then(Token::new),
            ca_file: var("RAZAR_CROWN_CA").map(PathBuf::from),
            identity_fingerprint: var("CROWN_IDENTITY_FINGERPRINT"),
        }
    }
}

/// A completed handshake (acknowledged, or offline).
#[derive(Debug, Clone, Serialize)]
pub struct HandshakeOutcome {
    /// The Crown's `ack`, or `offline`.
    pub acknowledgement: String,
    pub capabilities: Vec<String>,
    /// Downtime entries naming a configured component. `diff` and `tests` are data from the
    /// Crown: the repair pipeline checks the diff and runs only the component's own tests.
    pub downtime: BTreeMap<ComponentName, DowntimeEntry>,
    /// Downtime names that match no configured component (dropped with a warning).
    pub rejected_downtime: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crown_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity_fingerprint: Option<Value>,
    /// No Crown URL was configured.
    pub offline: bool,
    /// Some capability normalises to GLM4V.
    pub glm4v_present: bool,
    /// `["GLM-4.1V"]` when the model launcher ran and exited 0.
    pub launched_models: Vec<String>,
    /// The launcher run, when GLM4V was missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_launch: Option<LaunchRecord>,
    /// Timestamp of this handshake's files in `logs/mission_briefs/`.
    pub archive_ts: i64,
    /// When the handshake completed (epoch seconds).
    pub timestamp: f64,
    /// The Crown's URL without userinfo or query string; `None` offline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl HandshakeOutcome {
    /// The object persisted under `handshake` in the state file: `{acknowledgement,
    /// capabilities, downtime, timestamp, url, crown_version?, identity_fingerprint?}` (`url`
    /// is null offline).
    pub fn state_json(&self) -> Value {
        let mut obj = Map::new();
        obj.insert("acknowledgement".into(), self.acknowledgement.clone().into());
        obj.insert("capabilities".into(), json!(self.capabilities));
        obj.insert("downtime".into(), self.downtime_json());
        obj.insert("timestamp".into(), json!(self.timestamp));
        obj.insert("url".into(), json!(self.url));
        if let Some(v) = &self.crown_version {
            obj.insert("crown_version".into(), v.clone().into());
        }
        if let Some(f) = &self.identity_fingerprint {
            obj.insert("identity_fingerprint".into(), f.clone());
        }
        Value::Object(obj)
    }

    /// `downtime` as the state file's top-level `downtime` object.
    pub fn downtime_json(&self) -> Value {
        serde_json::to_value(&self.downtime).unwrap_or_else(|_| json!({}))
    }

    /// The whole outcome as JSON (`razar handshake --json`).
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or_else(|_| json!({}))
    }

    /// Entries of `required` no capability matches (names compared after normalisation).
    pub fn missing_capabilities(&self, required: &[String]) -> Vec<String> {
        capability::missing(required, &self.capabilities)
    }

    /// `result` label for metrics: `ack` or `offline`.
    pub fn result_label(&self) -> &'static str {
        if self.offline { "offline" } else { "ack" }
    }
}

/// Why a handshake failed. Every variant but `Fs` is the Crown's doing.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("crown handshake failed: {0}")]
    Crown(#[from] CrownError),
    #[error("crown handshake failed: crown at {url} sent a malformed reply: {source}")]
    Malformed {
        url: String,
        #[source]
        source: MalformedReply,
    },
    #[error("crown handshake failed: crown at {url} did not acknowledge the brief ({reason})")]
    NotAcknowledged { url: String, reason: String },
    #[error("crown handshake failed: {0}")]
    Fs(#[from] FsError),
}

impl HandshakeError {
    /// A stable short name, for journals and the `result` metrics label.
    pub fn kind(&self) -> &'static str {
        match self {
            HandshakeError::Crown(e) => e.kind(),
            HandshakeError::Malformed { .. } => "malformed",
            HandshakeError::NotAcknowledged { .. } => "not_acknowledged",
            HandshakeError::Fs(_) => "io",
        }
    }

    /// `exit::CROWN` for the Crown's failures, `exit::INTERNAL` when razar could not write.
    pub fn exit_code(&self) -> u8 {
        match self {
            HandshakeError::Fs(_) => exit::INTERNAL,
            _ => exit::CROWN,
        }
    }
}

/// Runs one handshake with `brief` (see [`super::build_brief`]).
///
/// Writes `logs/mission_brief.json` and `logs/mission_briefs/<ts>.json` before sending,
/// `<ts>_response.json` when a JSON object came back, `<ts>_glm4v_launch.json` when GLM4V was
/// missing; appends to `logs/razar.log`, `logs/razar_crown_dialogues.json` and
/// `logs/interaction_log.jsonl`. Never writes the state file: the caller persists
/// [`HandshakeOutcome::state_json`].
pub async fn handshake(
    paths: &Paths,
    config: &Config,
    env: &CrownEnv,
    brief: &Value,
) -> Result<HandshakeOutcome, HandshakeError> {
    let logs = Logs::new(paths);
    let ts = brief::write_and_archive(&paths.mission_brief(), &logs.archive, brief)?;
    let fingerprint = identity_fingerprint(&paths.identity(), env.identity_fingerprint.as_deref());

    let mut outcome = match &config.crown.url {
        None => offline(&logs, ts, fingerprint),
        Some(url) => online(&logs, config, env, url, brief, ts, fingerprint).await?,
    };
    outcome.glm4v_present = capability::glm4v_present(&outcome.capabilities);
    if !outcome.glm4v_present {
        launch_glm4v(&logs, paths, config, env, &mut outcome).await;
    }
    Ok(outcome)
}

fn offline(logs: &Logs, ts: i64, fingerprint: Option<Value>) -> HandshakeOutcome {
    tracing::warn!("no Crown URL configured (crown.url or CROWN_WS_URL): offline mode");
    let capabilities = vec![GLM4V_OFFLINE.to_owned()];
    logs.mission.append_or_warn(&MissionEvent {
        event: "handshake",
        component: LOG_COMPONENT,
        status: OFFLINE_ACK,
        details: Some(json!({
            "acknowledgement": OFFLINE_ACK,
            "capabilities": capabilities,
            "reason": "no crown url configured",
        })),
    });
    logs.interaction("mission_brief", "offline: no crown url configured; capabilities GLM4V_OFFLINE".into());
    HandshakeOutcome {
        acknowledgement: OFFLINE_ACK.to_owned(),
        capabilities,
        downtime: BTreeMap::new(),
        rejected_downtime: Vec::new(),
        crown_version: None,
        identity_fingerprint: fingerprint,
        offline: true,
        glm4v_present: true,
        launched_models: Vec::new(),
        model_launch: None,
        archive_ts: ts,
        timestamp: crate::clock::epoch(),
        url: None,
    }
}

async fn online(
    logs: &Logs,
    config: &Config,
    env: &CrownEnv,
    url: &str,
    brief: &Value,
    ts: i64,
    fingerprint: Option<Value>,
) -> Result<HandshakeOutcome, HandshakeError> {
    let shown = redact_url(url);
    let opts = ClientOptions {
        timeout: config.crown.timeout,
        max_reply_bytes: config.crown.max_reply_bytes,
        token: env.token.clone(),
        ca_file: env.ca_file.clone(),
    };
    tracing::info!(url = %shown, "sending the mission brief to the Crown");
    let request = serde_json::to_string(brief).unwrap_or_else(|_| "{}".into());
    let reply = match client::exchange(url, &request, &opts).await {
        Ok(reply) => reply,
        Err(e) => {
            let e = HandshakeError::from(e);
            logs.failure(&shown, brief, None, &fingerprint, &e);
            return Err(e);
        }
    };
    let reply_value = Value::Object(reply.clone());
    if let Err(e) = fsutil::write_json(&logs.archive.join(brief::response_name(ts)), &reply_value) {
        tracing::warn!(error = %e, "cannot archive the Crown's reply");
    }

    let checked = Reply::from_object(&reply)
        .map_err(|source| HandshakeError::Malformed { url: shown.clone(), source })
        .and_then(|r| match r.ack.as_ref().and_then(super::protocol::Ack::acknowledgement) {
            Some(ack) => Ok((ack, r)),
            None => {
                let reason = match &r.ack {
                    None => "the reply has no `ack`".to_owned(),
                    Some(a) => {
                        format!("ack is {}", serde_json::to_string(&reply["ack"]).unwrap_or_else(|_| format!("{a:?}")))
                    }
                };
                Err(HandshakeError::NotAcknowledged { url: shown.clone(), reason })
            }
        });
    let (acknowledgement, parsed) = match checked {
        Ok(v) => v,
        Err(e) => {
            logs.failure(&shown, brief, Some(&reply_value), &fingerprint, &e);
            return Err(e);
        }
    };

    let (downtime, rejected_downtime) = validate_downtime(config, parsed.downtime);
    for name in &rejected_downtime {
        tracing::warn!(name = %quote(name), "the Crown named a downtime component that is not in the config; ignored");
    }
    logs.dialogue(brief, Some(&reply_value), &fingerprint, None);
    logs.mission.append_or_warn(&MissionEvent {
        event: "handshake",
        component: LOG_COMPONENT,
        status: "ack",
        details: Some(json!({
            "acknowledgement": acknowledgement,
            "capabilities": parsed.capabilities,
            "downtime": downtime.keys().collect::<Vec<_>>(),
            "rejected_downtime": rejected_downtime.iter().map(|n| quote(n)).collect::<Vec<_>>(),
            "crown_version": parsed.crown_version,
            "url": shown,
        })),
    });
    logs.interaction(
        "mission_brief",
        format!(
            "ack {acknowledgement}; capabilities [{}]; downtime [{}]",
            parsed.capabilities.join(", "),
            downtime.keys().map(ComponentName::as_str).collect::<Vec<_>>().join(", ")
        ),
    );
    tracing::info!(%acknowledgement, capabilities = ?parsed.capabilities, "the Crown acknowledged the brief");
    Ok(HandshakeOutcome {
        acknowledgement,
        capabilities: parsed.capabilities,
        downtime,
        rejected_downtime,
        crown_version: parsed.crown_version,
        identity_fingerprint: fingerprint,
        offline: false,
        glm4v_present: false,
        launched_models: Vec::new(),
        model_launch: None,
        archive_ts: ts,
        timestamp: crate::clock::epoch(),
        url: Some(without_query(&shown)),
    })
}

/// A redacted URL without its (already elided) query string.
fn without_query(shown: &str) -> String {
    shown.split_once('?').map_or(shown, |(base, _)| base).to_owned()
}

/// Keeps the downtime entries that name a configured component; returns the rest's names.
/// A Crown-supplied name is only ever used after it matched a config name exactly.
pub fn validate_downtime(
    config: &Config,
    entries: BTreeMap<String, DowntimeEntry>,
) -> (BTreeMap<ComponentName, DowntimeEntry>, Vec<String>) {
    let mut kept = BTreeMap::new();
    let mut rejected = Vec::new();
    for (name, entry) in entries {
        match config.component(&name) {
            Some(c) => {
                kept.insert(c.name.clone(), entry);
            }
            None => rejected.push(name),
        }
    }
    (kept, rejected)
}

async fn launch_glm4v(logs: &Logs, paths: &Paths, config: &Config, env: &CrownEnv, outcome: &mut HandshakeOutcome) {
    let record = match &config.crown.model_launcher {
        None => LaunchRecord::not_configured(GLM4V_MODEL),
        Some(launcher) => {
            tracing::info!(launcher = %launcher.display(), "no GLM-4.1V capability online: running the model launcher");
            let secret = env.token.as_ref().map(Token::expose);
            launcher::run_launcher(GLM4V_MODEL, launcher, &paths.root, DEFAULT_LAUNCH_TIMEOUT, secret).await
        }
    };
    if record.launched {
        outcome.launched_models.push(GLM4V_MODEL.to_owned());
    } else {
        tracing::warn!(
            status = record.status,
            error = record.error.as_deref().unwrap_or(""),
            "GLM-4.1V was not launched"
        );
    }
    let mut file = serde_json::to_value(&record).unwrap_or_else(|_| json!({}));
    if let Value::Object(obj) = &mut file {
        let now = crate::clock::epoch();
        obj.insert("timestamp".into(), now.into());
        obj.insert("timestamp_iso".into(), crate::clock::iso(now).into());
    }
    if let Err(e) = fsutil::write_json(&logs.archive.join(brief::launch_name(outcome.archive_ts)), &file) {
        tracing::warn!(error = %e, "cannot write the model launch record");
    }
    logs.mission.append_or_warn(&MissionEvent {
        event: "model_launch",
        component: GLM4V_MODEL,
        status: record.status,
        details: Some(json!({
            "model": GLM4V_MODEL,
            "launcher": record.launcher,
            "exit_code": record.exit_code,
            "duration_seconds": record.duration_seconds,
            "error": record.error,
        })),
    });
    logs.interaction("model_launch", format!("{GLM4V_MODEL}: {}", record.status));
    outcome.model_launch = Some(record);
}

/// `{sha256, mtime}` of `data/identity.json` when it exists, else the JSON in
/// `CROWN_IDENTITY_FINGERPRINT` (a plain string when it is not JSON).
pub fn identity_fingerprint(identity: &Path, from_env: Option<&str>) -> Option<Value> {
    match std::fs::read(identity) {
        Ok(bytes) => {
            let sha256: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
            let mtime = std::fs::metadata(identity)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs_f64());
            return Some(json!({"sha256": sha256, "mtime": mtime}));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(path = %identity.display(), error = %e, "cannot read the identity file"),
    }
    from_env.map(|raw| serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned())))
}

/// A Crown-supplied string made safe to quote: escaped and bounded.
fn quote(name: &str) -> String {
    let short: String = name.chars().take(NAME_QUOTE_CHARS).collect();
    let mut q = format!("{short:?}");
    if short.len() < name.len() {
        q.push('…');
    }
    q
}

/// Where a handshake records itself: three journals and the brief archive directory.
struct Logs {
    archive: PathBuf,
    mission: Journal,
    dialogues: Journal,
    interactions: Journal,
}

impl Logs {
    fn new(paths: &Paths) -> Self {
        Logs {
            archive: paths.mission_briefs(),
            mission: Journal::new(paths.mission_log()),
            dialogues: Journal::new(paths.crown_dialogues()),
            interactions: Journal::new(paths.interaction_log()),
        }
    }

    fn dialogue(&self, request: &Value, response: Option<&Value>, fingerprint: &Option<Value>, error: Option<&str>) {
        let mut rec = Map::new();
        rec.insert("request".into(), request.clone());
        rec.insert("response".into(), response.cloned().unwrap_or(Value::Null));
        if let Some(f) = fingerprint {
            rec.insert("identity_fingerprint".into(), f.clone());
        }
        if let Some(e) = error {
            rec.insert("error".into(), e.into());
        }
        self.dialogues.append_or_warn(&Value::Object(rec));
    }

    fn interaction(&self, action: &str, response_summary: String) {
        self.interactions.append_or_warn(&json!({
            "initiator": "RAZAR",
            "action": action,
            "response_summary": response_summary,
        }));
    }

    fn failure(
        &self,
        url: &str,
        request: &Value,
        response: Option<&Value>,
        fingerprint: &Option<Value>,
        e: &HandshakeError,
    ) {
        let message = e.to_string();
        self.dialogue(request, response, fingerprint, Some(&message));
        self.mission.append_or_warn(&MissionEvent {
            event: "handshake",
            component: LOG_COMPONENT,
            status: "error",
            details: Some(json!({"kind": e.kind(), "error": message, "url": url})),
        });
        self.interaction("mission_brief", format!("failed ({}): {message}", e.kind()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_prefers_the_identity_file() {
        let dir = tempfile::tempdir().unwrap();
        let id = dir.path().join("identity.json");
        assert_eq!(identity_fingerprint(&id, Some(r#"{"k":"v"}"#)), Some(json!({"k": "v"})));
        assert_eq!(identity_fingerprint(&id, Some("plain")), Some(json!("plain")));
        assert_eq!(identity_fingerprint(&id, None), None);
        std::fs::write(&id, "abc").unwrap();
        let f = identity_fingerprint(&id, Some("ignored")).unwrap();
        assert_eq!(f["sha256"], "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert!(f["mtime"].as_f64().unwrap() > 0.0);
    }

    #[test]
    fn quotes_are_escaped_and_bounded() {
        assert_eq!(quote("../x\n"), "\"../x\\n\"");
        assert!(quote(&"a".repeat(500)).ends_with('…'));
    }
}
