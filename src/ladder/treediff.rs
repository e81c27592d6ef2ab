//! A unified diff between a component's `sources` and a changed copy of them (the `opencode`
//! protocol's sandbox): what [`crate::repair::patch::parse`] reads back, with paths relative to
//! the root (`a/svc/app.py`, `b/svc/app.py`; `/dev/null` for a created or deleted file).
//!
//! Only regular files count on both sides (symlinks, devices and fifos are never copied into a
//! sandbox, so they are not reported as deleted). A file that is not UTF-8 on either side cannot
//! be expressed in a text diff, nor can one over 4 MiB: it is left out and named in
//! [`TreeDiff::skipped`].

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Files walked per side before giving up (a huge tree must not stall a round).
const MAX_FILES: usize = 5000;
/// Bytes of one changed file put in the diff; a larger one is skipped.
const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct TreeDiff {
    /// The unified diff; empty when nothing changed.
    pub patch: String,
    /// Changed files left out (not UTF-8, or too large), relative to the root.
    pub skipped: Vec<String>,
}

/// The diff from `sources` (absolute paths under `root`) to their copies under `copy` (which
/// mirrors paths relative to `root`).
pub fn diff(root: &Path, sources: &[PathBuf], copy: &Path) -> TreeDiff {
    let mut rels = BTreeSet::new();
    for source in sources {
        let Ok(rel) = source.strip_prefix(root) else { continue };
        for base in [root, copy] {
            let mut found = Vec::new();
            super::context::walk_files(&base.join(rel), &mut found, MAX_FILES);
            rels.extend(found.into_iter().filter_map(|p| p.strip_prefix(base).ok().map(Path::to_path_buf)));
        }
    }
    let mut out = TreeDiff::default();
    for rel in rels {
        let shown = rel.display().to_string();
        let (old_path, new_path) = (root.join(&rel), copy.join(&rel));
        if same(&old_path, &new_path) {
            continue;
        }
        let (Some(old), Some(new)) = (text(&old_path), text(&new_path)) else {
            out.skipped.push(shown);
            continue;
        };
        let from = if old.is_some() { format!("a/{shown}") } else { "/dev/null".into() };
        let to = if new.is_some() { format!("b/{shown}") } else { "/dev/null".into() };
        let patch = diffy::DiffOptions::new()
            .set_original_filename(from)
            .set_modified_filename(to)
            .create_patch(old.as_deref().unwrap_or_default(), new.as_deref().unwrap_or_default())
            .to_string();
        out.patch.push_str(&patch);
    }
    out
}

fn regular(path: &Path) -> Option<std::fs::Metadata> {
    std::fs::symlink_metadata(path).ok().filter(std::fs::Metadata::is_file)
}

/// True when both are missing (or not regular files), or both are regular files with the same
/// bytes (compared in chunks, so a large file is never held whole).
fn same(a: &Path, b: &Path) -> bool {
    use std::io::Read;
    match (regular(a), regular(b)) {
        (None, None) => true,
        (Some(ma), Some(mb)) if ma.len() == mb.len() => {
            let (Ok(mut fa), Ok(mut fb)) = (std::fs::File::open(a), std::fs::File::open(b)) else { return false };
            let (mut ba, mut bb) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
            loop {
                let Ok(n) = fa.read(&mut ba) else { return false };
                if n == 0 {
                    return true;
                }
                if fb.read_exact(&mut bb[..n]).is_err() || ba[..n] != bb[..n] {
                    return false;
                }
            }
        }
        _ => false,
    }
}

/// `Some(None)`: no regular file there; `Some(Some(text))`: its text; `None`: it cannot be put
/// in a text diff (not UTF-8, over [`MAX_FILE_BYTES`], unreadable).
fn text(path: &Path) -> Option<Option<String>> {
    let Some(meta) = regular(path) else { return Some(None) };
    if meta.len() > MAX_FILE_BYTES {
        return None;
    }
    String::from_utf8(std::fs::read(path).ok()?).ok().map(Some)
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::repair::{patch, sandbox};

    #[test]
    fn the_diff_replays_every_change_on_a_fresh_copy() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        fs::create_dir_all(root.join("svc/lib")).unwrap();
        fs::write(root.join("svc/app.py"), "a = 1\nprint(1/0)\nb = 2\n").unwrap();
        fs::write(root.join("svc/lib/old.py"), "gone\n").unwrap();
        fs::write(root.join("svc/same.py"), "same\n").unwrap();
        fs::write(root.join("svc/blob.bin"), [0u8, 0xff, 0xfe]).unwrap();
        fs::write(root.join("outside.txt"), "not a source\n").unwrap();
        std::os::unix::fs::symlink(root.join("outside.txt"), root.join("svc/link")).unwrap();
        let sources = vec![root.join("svc")];

        let copy = d.path().join("copy");
        sandbox::copy_sources(&root, &sources, &copy).unwrap();
        fs::write(copy.join("svc/app.py"), "a = 1\nprint(1)\nb = 2\n").unwrap();
        fs::remove_file(copy.join("svc/lib/old.py")).unwrap();
        fs::write(copy.join("svc/lib/new.py"), "no newline at the end").unwrap();
        fs::write(copy.join("svc/blob.bin"), [1u8, 0xff]).unwrap();
        fs::write(copy.join("stray.txt"), "opencode's own file, outside the sources\n").unwrap();

        let got = diff(&root, &sources, &copy);
        assert_eq!(got.skipped, ["svc/blob.bin"]);
        assert!(got.patch.contains("--- a/svc/app.py\n+++ b/svc/app.py\n"), "{}", got.patch);
        assert!(got.patch.contains("--- /dev/null\n+++ b/svc/lib/new.py\n"), "{}", got.patch);
        assert!(got.patch.contains("--- a/svc/lib/old.py\n+++ /dev/null\n"), "{}", got.patch);
        assert!(!got.patch.contains("same.py") && !got.patch.contains("link") && !got.patch.contains("stray"));

        // The diff, applied to a fresh copy of the originals, gives the changed copy back.
        let files = patch::parse(&got.patch).unwrap();
        let replay = d.path().join("replay");
        sandbox::copy_sources(&root, &sources, &replay).unwrap();
        sandbox::apply(&replay, &files).unwrap();
        for rel in ["svc/app.py", "svc/lib/new.py", "svc/same.py"] {
            assert_eq!(fs::read(replay.join(rel)).unwrap(), fs::read(copy.join(rel)).unwrap(), "{rel}");
        }
        assert!(!replay.join("svc/lib/old.py").exists());
    }

    #[test]
    fn no_change_is_an_empty_diff() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        fs::create_dir_all(root.join("svc")).unwrap();
        fs::write(root.join("svc/app.py"), "x\n").unwrap();
        let copy = d.path().join("copy");
        sandbox::copy_sources(&root, &[root.join("svc")], &copy).unwrap();
        assert_eq!(diff(&root, &[root.join("svc")], &copy), TreeDiff::default());
    }
}
