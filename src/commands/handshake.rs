//! `razar handshake [BRIEF] [--url URL]`: one Crown handshake outside a boot.
//!
//! Loads the config (`--config`, else `config/boot_config.json`; when that default file does
//! not exist the brief simply lists no components and the Crown settings come from the
//! environment and defaults), builds the brief with the `BRIEF` file's fields merged in, runs
//! the handshake and prints the acknowledgement and capabilities (`--json`: the whole outcome).
//! It writes the same brief archive and journals as a boot. After a handshake that completed
//! (acknowledged or offline) its outcome is merged into `logs/razar_state.json`, keeping every
//! other field, under the root's boot lock; while a boot runs, that boot owns the state file
//! and it is left alone (with a warning). A failed handshake changes nothing in it.
//!
//! Exit codes: 0 acknowledged or offline (offline also warns on stderr), 3 any Crown failure,
//! 5 a required capability missing, 2 usage or config errors.

use std::path::Path;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::cli::HandshakeArgs;
use crate::config::{self, Config, CrownConfig, MetricsConfig, OnFailure, ProcessEnv, load::check_ws_url};
use crate::crown::{self, CrownEnv, capability};
use crate::error::{Error, Result};
use crate::exit;
use crate::paths::Paths;
use crate::state::StateFile;
use crate::state::lock::BootLock;

pub async fn run(paths: &Paths, args: HandshakeArgs) -> Result<u8> {
    let mut cfg = load_config(paths, args.config.as_deref())?;
    if let Some(url) = args.url {
        check_ws_url(&url, cfg.crown.allow_insecure).map_err(|e| Error::Usage(format!("--url: {e}")))?;
        cfg.crown.url = Some(url);
    }
    let extra = args.brief.as_deref().map(|f| read_brief_fields(&paths.join(f))).transpose()?;
    let last_state = read_state(&paths.state());
    let brief = crown::build_brief(&cfg, last_state.as_ref(), Vec::new(), None, extra);
    let required = capability::required(&args.require_capability, &cfg.crown.required_capabilities);

    let outcome = crown::handshake(paths, &cfg, &CrownEnv::from_process(), &brief).await?;
    match BootLock::acquire(paths) {
        Ok(_lock) => crown::record::record_in_state(&paths.state(), &outcome)?,
        Err(crate::state::lock::LockError::Held { pid, .. }) => {
            tracing::warn!("a boot (pid {pid}) owns logs/razar_state.json; the handshake is not recorded there");
        }
        Err(e) => return Err(e.into()),
    }

    if args.json {
        crate::outln!("{}", serde_json::to_string_pretty(&outcome.to_json()).unwrap_or_default());
    } else {
        crate::outln!("acknowledgement: {}", outcome.acknowledgement);
        crate::outln!("capabilities: {}", outcome.capabilities.join(", "));
        if !outcome.downtime.is_empty() {
            let names: Vec<&str> =
                outcome.downtime.keys().map(super::super::config::resolved::ComponentName::as_str).collect();
            crate::outln!("downtime: {}", names.join(", "));
        }
        if !outcome.launched_models.is_empty() {
            crate::outln!("launched models: {}", outcome.launched_models.join(", "));
        }
    }
    let missing = outcome.missing_capabilities(&required);
    if !missing.is_empty() {
        return Err(Error::CapabilityMissing { missing, offered: outcome.capabilities });
    }
    Ok(exit::SUCCESS)
}

/// The explicit config, else the default one, else an empty stack with Crown settings from
/// the environment.
fn load_config(paths: &Paths, explicit: Option<&Path>) -> Result<Config> {
    let file = explicit.map(|c| paths.join(c)).unwrap_or_else(|| paths.default_config());
    if explicit.is_some() || file.exists() {
        return Ok(config::load(&file, &paths.root, &ProcessEnv)?);
    }
    let url = std::env::var("CROWN_WS_URL").ok().filter(|v| !v.is_empty());
    if let Some(u) = &url {
        check_ws_url(u, false).map_err(|e| Error::Usage(format!("CROWN_WS_URL: {e}")))?;
    }
    Ok(Config {
        source: file,
        mission: None,
        crown: CrownConfig {
            url,
            timeout: Duration::from_secs(10),
            max_reply_bytes: 1 << 20,
            model_launcher: Some(paths.join("crown_model_launcher.sh")).filter(|p| p.exists()),
            required_capabilities: Vec::new(),
            allow_insecure: false,
        },
        metrics: MetricsConfig {
            enabled: false,
            port: None,
            address: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            textfile: paths.join("monitoring/boot_metrics.prom"),
        },
        jobs: None,
        on_failure: OnFailure::default(),
        ai_handover: true,
        components: Vec::new(),
        graph: Default::default(),
        layers: Default::default(),
    })
}

/// The `BRIEF` file: a JSON object of extra brief fields.
fn read_brief_fields(file: &Path) -> Result<Map<String, Value>> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| Error::Usage(format!("cannot read the brief file {}: {e}", file.display())))?;
    match serde_json::from_str(&text) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(other) => Err(Error::Usage(format!(
            "brief file {}: must be a JSON object of brief fields, not {}",
            file.display(),
            crown::protocol::json_kind(&other)
        ))),
        Err(e) => Err(Error::Usage(format!("brief file {} is not valid JSON: {e}", file.display()))),
    }
}

/// The last state file, read-only: missing or unreadable means no known states.
fn read_state(path: &Path) -> Option<StateFile> {
    let bytes = std::fs::read(path).ok()?;
    match serde_json::from_slice(&bytes) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "state file unreadable; component states reported as pending");
            None
        }
    }
}
