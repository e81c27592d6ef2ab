//! `razar export --format systemd|k8s`: loads the config, maps it (`crate::export`), lists
//! what could not be expressed on stderr, and writes the files to stdout or `--out DIR`.
//! An existing file in `--out` is replaced only with `--force`, and each one replaced is named.

use crate::cli::{ExportArgs, ExportFormat};
use crate::config::{self, ProcessEnv};
use crate::error::{Error, Result};
use crate::exit;
use crate::export::{self, Export, Options};
use crate::paths::Paths;

/// Where systemd units expect razar when `--razar` is not given.
pub const DEFAULT_SYSTEMD_RAZAR: &str = "/usr/local/bin/razar";

pub fn run(paths: &Paths, args: ExportArgs) -> Result<u8> {
    let file = args.config.as_ref().map(|c| paths.join(c)).unwrap_or_else(|| paths.default_config());
    let cfg = config::load(&file, &paths.root, &ProcessEnv)?;
    let (engine, default_razar) = match args.format {
        ExportFormat::Systemd => ("systemd", DEFAULT_SYSTEMD_RAZAR),
        ExportFormat::K8s => ("Kubernetes", "razar"),
    };
    let razar = args.razar.clone().unwrap_or_else(|| default_razar.to_owned());
    if args.format == ExportFormat::Systemd && !razar.starts_with('/') {
        return Err(Error::Usage(format!("--razar {razar:?}: systemd units need an absolute path")));
    }
    let opts = Options {
        stack: export::stack_name(args.name.as_deref(), &cfg),
        razar,
        image: args.image.clone(),
        root: paths.root.clone(),
        path: std::env::var_os("PATH"),
    };
    let out = match args.format {
        ExportFormat::Systemd => export::systemd::export(&cfg, &opts),
        ExportFormat::K8s => export::k8s::export(&cfg, &opts),
    };
    match &args.out {
        None => {
            let many = out.files.len() > 1;
            for f in &out.files {
                if many {
                    crate::outln!("# ==> {} <==", f.name);
                }
                crate::outln!("{}", f.text.trim_end());
                if many {
                    crate::outln!();
                }
            }
        }
        Some(dir) => write_files(&paths.join(dir), &out, args.force)?,
    }
    for n in &out.notes {
        crate::errln!("razar: export: not expressible in {engine}: {n}");
    }
    if !out.notes.is_empty() {
        crate::errln!(
            "razar: export: {} setting{} not expressible in {engine} (listed above and as comments in the output)",
            out.notes.len(),
            if out.notes.len() == 1 { "" } else { "s" }
        );
    }
    Ok(exit::SUCCESS)
}

/// Writes every file into `dir`; refuses, writing nothing, when one exists and `force` is off.
fn write_files(dir: &std::path::Path, out: &Export, force: bool) -> Result<()> {
    if dir.exists() && !dir.is_dir() {
        return Err(Error::Usage(format!("--out {}: not a directory", dir.display())));
    }
    let existing: Vec<String> =
        out.files.iter().filter(|f| dir.join(&f.name).exists()).map(|f| f.name.clone()).collect();
    if !existing.is_empty() && !force {
        return Err(Error::Usage(format!(
            "--out {} already holds {}; nothing was written. Pass --force to replace {}, or choose another --out",
            dir.display(),
            existing.join(", "),
            if existing.len() == 1 { "it" } else { "them" }
        )));
    }
    // Not owner-only like razar's own records: units and manifests are for others to read.
    std::fs::create_dir_all(dir).map_err(|e| crate::fsutil::FsError::new("creating directory", dir, e))?;
    for f in &out.files {
        let path = dir.join(&f.name);
        crate::fsutil::atomic_write(&path, f.text.as_bytes(), 0o644)?;
        if existing.contains(&f.name) {
            crate::errln!("razar: export: replaced {}", path.display());
        }
        crate::outln!("wrote {}", path.display());
    }
    Ok(())
}
