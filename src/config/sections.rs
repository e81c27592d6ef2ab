//! Resolving the top-level sections of a config: Python layers (`razar_env.yaml`), the Crown
//! and the metrics exporter.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Duration;

use super::diagnostics::*;
use super::document::*;
use super::load::Env;
use super::raw::{self, RawComponent, RawEnv};
use super::resolved::*;

pub(super) fn load_layers(
    env_file: &Path,
    components: &[(usize, RawComponent)],
    diags: &mut Diags,
) -> BTreeMap<String, Vec<String>> {
    let wanted = components.iter().any(|(_, c)| c.layer.is_some());
    if !env_file.exists() {
        if wanted {
            for (i, c) in components {
                if let Some(layer) = &c.layer {
                    diags.push(
                        format!("components[{i}].layer"),
                        format!("layer `{layer}` needs {} with `layers: {{{layer}: [...]}}`", env_file.display()),
                    );
                }
            }
        }
        return BTreeMap::new();
    }
    let doc = match read_document(env_file) {
        Ok(d) => d,
        Err(d) => {
            diags.list.push(d);
            return BTreeMap::new();
        }
    };
    let mut env_diags = Diags { file: env_file, list: Vec::new(), regexes: HashMap::new() };
    let raw: RawEnv = parse_object(&doc, &known_fields::<RawEnv>(), "", &mut env_diags);
    if doc.get("layers").is_none() {
        env_diags.push("layers", "missing: give `layers: {name: [pip requirement, ...]}`");
    }
    for (name, reqs) in &raw.layers {
        if ComponentName::new(name).is_err() {
            env_diags.push(format!("layers.{name}"), "layer names use A-Z a-z 0-9 _ . - only");
        }
        if reqs.iter().any(|r| r.trim().is_empty() || r.trim_start().starts_with('-')) {
            env_diags.push(format!("layers.{name}"), "requirements must be non-empty and not pip options");
        }
    }
    diags.list.extend(env_diags.list);
    let names: Vec<String> = raw.layers.keys().cloned().collect();
    for (i, c) in components {
        if let Some(layer) = &c.layer
            && !raw.layers.contains_key(layer)
        {
            diags.push(
                format!("components[{i}].layer"),
                format!("unknown layer `{layer}` (not in {}){}", env_file.display(), hint(layer, &names)),
            );
        }
    }
    raw.layers
}

pub(super) fn resolve_crown(raw: raw::RawCrown, root: &Path, env: &dyn Env, diags: &mut Diags) -> CrownConfig {
    let from_env = env.var("CROWN_WS_URL");
    let field = if from_env.is_some() { "crown.url (CROWN_WS_URL in the environment)" } else { "crown.url" };
    let url = from_env.or(raw.url);
    let allow_insecure = raw.allow_insecure.unwrap_or(false);
    if let Some(u) = &url
        && let Err(e) = check_ws_url(u, allow_insecure)
    {
        diags.push(field, e);
    }
    let launcher = match raw.model_launcher {
        Some(l) => Some(root.join(l)),
        None => Some(root.join("crown_model_launcher.sh")).filter(|p| p.exists()),
    };
    CrownConfig {
        url,
        timeout: raw.timeout.map_or(Duration::from_secs(10), |d| d.0),
        max_reply_bytes: raw.max_reply_bytes.unwrap_or(1 << 20),
        model_launcher: launcher,
        required_capabilities: raw.required_capabilities.unwrap_or_default(),
        allow_insecure,
    }
}

/// `ws://` must stay on loopback unless the operator opts in; `wss://` may go anywhere.
pub fn check_ws_url(url: &str, allow_insecure: bool) -> Result<(), String> {
    let shown = crate::redact::url(url);
    let rest = if let Some(r) = url.strip_prefix("wss://") {
        r
    } else if let Some(r) = url.strip_prefix("ws://") {
        let host = host_of(r);
        if !allow_insecure && !is_loopback(host) {
            return Err(format!(
                "{shown:?} is plain ws:// to a non-loopback host; use wss:// or set crown.allow_insecure: true"
            ));
        }
        r
    } else {
        return Err(format!("{shown:?} is not a ws:// or wss:// URL"));
    };
    if host_of(rest).is_empty() {
        return Err(format!("{shown:?} has no host"));
    }
    Ok(())
}

pub(super) fn host_of(after_scheme: &str) -> &str {
    let authority = after_scheme.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority.rsplit('@').next().unwrap_or_default();
    if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        authority.split(':').next().unwrap_or_default()
    }
}

pub(super) fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

pub(super) fn resolve_metrics(raw: raw::RawMetrics, root: &Path, diags: &mut Diags) -> MetricsConfig {
    let address = match raw.address {
        None => IpAddr::V4(Ipv4Addr::LOCALHOST),
        Some(a) => a.parse().unwrap_or_else(|_| {
            diags.push("metrics.address", format!("{a:?} is not an IP address (e.g. 127.0.0.1 or 0.0.0.0)"));
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        }),
    };
    MetricsConfig {
        enabled: raw.enabled.unwrap_or(true),
        port: raw.port,
        address,
        textfile: root.join(raw.textfile.unwrap_or_else(|| "monitoring/boot_metrics.prom".into())),
    }
}
