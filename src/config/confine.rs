//! Paths razar writes or watches (`metrics.textfile`, `working_dir`, file probes) stay inside
//! the root: a relative path that climbs out with `..` is refused, and an absolute path outside
//! the root is accepted only under a directory listed in the top-level `allow_outside_root`.
//! The check is lexical (`.` and `..` are resolved, symlinks are not followed): it stops a
//! config from pointing razar at someone else's files by accident or by a copied `../`.

use std::path::{Component, Path, PathBuf};

use super::{Config, ProbeKind};

/// `path` with `.` and `..` resolved without touching the file system.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Checks the `allow_outside_root` list itself: absolute directories only.
pub fn check_allowed(allowed: &[String]) -> Vec<(String, String)> {
    allowed
        .iter()
        .enumerate()
        .filter(|(_, a)| !Path::new(a).is_absolute())
        .map(|(i, a)| {
            (
                format!("allow_outside_root[{i}]"),
                format!("{a:?} must be an absolute directory (e.g. /var/lib/node_exporter)"),
            )
        })
        .collect()
}

/// Checks one resolved path (`root.join(value)`); `Err` is the message for the field.
pub fn check(resolved: &Path, root: &Path, allowed: &[String]) -> Result<(), String> {
    let norm_root = normalize(root);
    let norm = normalize(resolved);
    if norm.starts_with(&norm_root) {
        return Ok(());
    }
    // `root.join(relative)` starts with the root; only an absolute value does not.
    if resolved.starts_with(root) {
        return Err(format!(
            "{} leads outside the root {} (`..`); keep it inside the root, or give an absolute path under a directory listed in `allow_outside_root`",
            resolved.display(),
            root.display()
        ));
    }
    if allowed.iter().filter(|a| Path::new(a).is_absolute()).any(|a| norm.starts_with(normalize(Path::new(a)))) {
        return Ok(());
    }
    Err(format!(
        "{} is outside the root {}; list its directory in the top-level `allow_outside_root` to allow it",
        norm.display(),
        root.display()
    ))
}

/// Every confined path of `cfg` that is not allowed, as (field, message).
pub fn check_config(cfg: &Config, root: &Path, allowed: &[String]) -> Vec<(String, String)> {
    let mut out = check_allowed(allowed);
    let mut push = |field: String, path: &Path| {
        if let Err(m) = check(path, root, allowed) {
            out.push((field, m));
        }
    };
    push("metrics.textfile".into(), &cfg.metrics.textfile);
    for c in &cfg.components {
        push(format!("components[{}].working_dir", c.index), &c.working_dir);
        for (field, probe) in [("health_check", &c.health_check), ("liveness", &c.liveness)] {
            if let Some(ProbeKind::File(p)) = probe.as_ref().map(|p| &p.kind) {
                push(format!("components[{}].{field}.file", c.index), p);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_stay_inside_and_absolute_ones_need_an_allowance() {
        let root = Path::new("/srv/stack");
        let ok = |v: &str, allowed: &[&str]| {
            let allowed: Vec<String> = allowed.iter().map(std::string::ToString::to_string).collect();
            check(&root.join(v), root, &allowed)
        };
        ok("monitoring/x.prom", &[]).unwrap();
        ok("a/../b", &[]).unwrap();
        ok("/srv/stack/logs", &[]).unwrap();
        let e = ok("../x", &[]).unwrap_err();
        assert!(e.contains("outside the root") && e.contains("`..`"), "{e}");
        ok("a/../../x", &[]).unwrap_err();
        ok("../x", &["/srv"]).unwrap_err();
        let e = ok("/var/lib/node_exporter/razar.prom", &[]).unwrap_err();
        assert!(e.contains("allow_outside_root"), "{e}");
        ok("/var/lib/node_exporter/razar.prom", &["/var/lib/node_exporter"]).unwrap();
        ok("/var/lib/node_exporter/../../etc/passwd", &["/var/lib/node_exporter"]).unwrap_err();
        ok("/var/lib/node_exporter_evil/x", &["/var/lib/node_exporter"]).unwrap_err();
        assert_eq!(check_allowed(&["relative".into()]).len(), 1);
    }
}
