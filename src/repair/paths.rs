//! Which paths a patch may touch: relative, without `..`, under one of the component's
//! `sources`, not through a symlink that leaves them, and never a device, fifo or socket.
//!
//! The lexical checks are pure; the symlink and file-type checks read metadata only (they
//! never write). A rejection carries the reason razar journals.

use std::fs;
use std::os::unix::fs::FileTypeExt;
use std::path::{Component, Path, PathBuf};

/// Checks `rel` (a path as written in the patch) against `sources` (absolute paths under
/// `root`) and returns the absolute path it names under `root`.
pub fn check(root: &Path, sources: &[PathBuf], rel: &Path) -> Result<PathBuf, String> {
    let shown = rel.display();
    if rel.as_os_str().is_empty() {
        return Err("an empty path".into());
    }
    if rel.is_absolute() {
        return Err(format!("{shown}: absolute paths are not allowed"));
    }
    for c in rel.components() {
        match c {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => return Err(format!("{shown}: `..` is not allowed")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!("{shown}: absolute paths are not allowed"));
            }
        }
    }
    let abs = root.join(rel);
    let lexical: PathBuf = abs.components().filter(|c| !matches!(c, Component::CurDir)).collect();
    let Some(source) = sources.iter().find(|s| lexical.starts_with(s)) else {
        return Err(format!("{shown}: not under the component's `sources`"));
    };
    // Follow every existing prefix: a symlink anywhere on the way must stay inside the source.
    let real_source = fs::canonicalize(source).map_err(|e| format!("{}: source unreadable: {e}", source.display()))?;
    let mut walked = root.to_path_buf();
    for c in rel.components() {
        walked.push(c);
        let meta = match fs::symlink_metadata(&walked) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
            Err(e) => return Err(format!("{shown}: unreadable: {e}")),
        };
        if meta.file_type().is_symlink() || walked.starts_with(source) {
            let real = fs::canonicalize(&walked).map_err(|_| format!("{shown}: a dangling symlink"))?;
            if walked.starts_with(source) && !real.starts_with(&real_source) {
                return Err(format!("{shown}: resolves through a symlink outside the component's `sources`"));
            }
        }
        let ft = meta.file_type();
        if ft.is_block_device() || ft.is_char_device() || ft.is_fifo() || ft.is_socket() {
            return Err(format!("{shown}: a device, fifo or socket"));
        }
    }
    if fs::metadata(&abs).is_ok_and(|meta| !meta.is_file()) {
        return Err(format!("{shown}: not a regular file"));
    }
    Ok(lexical)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn setup() -> (tempfile::TempDir, PathBuf, Vec<PathBuf>) {
        let dir = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(dir.path()).unwrap();
        fs::create_dir_all(root.join("svc/lib")).unwrap();
        fs::write(root.join("svc/app.sh"), "x").unwrap();
        fs::write(root.join("other.txt"), "x").unwrap();
        let sources = vec![root.join("svc")];
        (dir, root, sources)
    }

    #[test]
    fn accepts_existing_and_new_files_under_sources() {
        let (_d, root, sources) = setup();
        assert_eq!(check(&root, &sources, Path::new("svc/app.sh")).unwrap(), root.join("svc/app.sh"));
        assert_eq!(check(&root, &sources, Path::new("./svc/lib/new.py")).unwrap(), root.join("svc/lib/new.py"));
        assert_eq!(check(&root, &sources, Path::new("svc/newdir/x")).unwrap(), root.join("svc/newdir/x"));
    }

    #[test]
    fn rejects_escapes_with_a_reason() {
        let (_d, root, sources) = setup();
        let cases = [
            ("../x", "`..`"),
            ("svc/../other.txt", "`..`"),
            ("/etc/x", "absolute"),
            ("other.txt", "not under"),
            ("svcx/a", "not under"),
            ("", "empty"),
            ("svc/lib", "not a regular file"),
        ];
        for (path, want) in cases {
            let err = check(&root, &sources, Path::new(path)).unwrap_err();
            assert!(err.contains(want), "{path}: {err}");
        }
    }

    #[test]
    fn rejects_symlinks_leaving_sources_and_keeps_those_inside() {
        let (_d, root, sources) = setup();
        let outside = tempfile::tempdir().unwrap();
        symlink(outside.path(), root.join("svc/out")).unwrap();
        symlink(root.join("other.txt"), root.join("svc/link.txt")).unwrap();
        symlink(root.join("svc/app.sh"), root.join("svc/inside.sh")).unwrap();
        for p in ["svc/out/x", "svc/link.txt"] {
            let err = check(&root, &sources, Path::new(p)).unwrap_err();
            assert!(err.contains("symlink outside"), "{p}: {err}");
        }
        assert!(check(&root, &sources, Path::new("svc/inside.sh")).is_ok());
    }

    #[test]
    fn rejects_fifos() {
        let (_d, root, sources) = setup();
        nix::unistd::mkfifo(&root.join("svc/pipe"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        let err = check(&root, &sources, Path::new("svc/pipe")).unwrap_err();
        assert!(err.contains("fifo"), "{err}");
    }
}
