//! Parsing a unified diff into per-file patches (PURE: no file system).
//!
//! Accepts what `diff -u` and `git diff` write: one or more files, each an optional
//! `diff --git a/X b/Y` line with git's extended headers (`new file mode`, `deleted file mode`,
//! `rename from`/`rename to`, `similarity index`, `index`), then `--- X` / `+++ Y` and hunks.
//! Each file's `---`/`+++`/hunk text is handed to `diffy` (a maintained parser and applier for
//! single-file patches); splitting a multi-file diff and reading git's headers happens here.
//! Input is bounded ([`MAX_PATCH_BYTES`]) and garbage yields an error, never a panic.

use std::path::PathBuf;

/// The largest patch razar accepts, in bytes.
pub const MAX_PATCH_BYTES: usize = 1024 * 1024;
/// The most files one patch may touch.
pub const MAX_FILES: usize = 256;

/// What a file patch does to its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The file exists and its content changes.
    Modify,
    /// The file does not exist yet (`--- /dev/null`).
    Create,
    /// The file is removed (`+++ /dev/null`).
    Delete,
    /// The file moves from `from` (and its content may change).
    Rename { from: PathBuf },
}

/// One file of a patch: the path it writes (for [`Change::Delete`], the path it removes) and
/// the single-file unified diff text that `diffy` applies (empty for a pure rename).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePatch {
    pub path: PathBuf,
    pub change: Change,
    pub body: String,
}

impl FilePatch {
    /// Every path this file patch reads or writes (both sides of a rename).
    pub fn paths(&self) -> Vec<&PathBuf> {
        match &self.change {
            Change::Rename { from } => vec![from, &self.path],
            _ => vec![&self.path],
        }
    }
}

/// Why a patch could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("the patch is {0} bytes; the limit is {MAX_PATCH_BYTES}")]
    TooLarge(usize),
    #[error("the patch touches more than {MAX_FILES} files")]
    TooManyFiles,
    #[error("the patch contains no file changes")]
    Empty,
    #[error("file {index} of the patch: {reason}")]
    Malformed { index: usize, reason: String },
}

/// Splits `text` into file patches and checks each one parses.
pub fn parse(text: &str) -> Result<Vec<FilePatch>, ParseError> {
    if text.len() > MAX_PATCH_BYTES {
        return Err(ParseError::TooLarge(text.len()));
    }
    let sections = split(text);
    if sections.is_empty() {
        return Err(ParseError::Empty);
    }
    if sections.len() > MAX_FILES {
        return Err(ParseError::TooManyFiles);
    }
    sections
        .into_iter()
        .enumerate()
        .map(|(i, s)| file_patch(&s).map_err(|reason| ParseError::Malformed { index: i + 1, reason }))
        .collect()
}

/// One file's lines: git headers (if any) and the diff body from `---` on.
#[derive(Default)]
struct Section<'a> {
    git: Option<&'a str>,
    headers: Vec<&'a str>,
    body: Vec<&'a str>,
}

fn split(text: &str) -> Vec<Section<'_>> {
    let mut out: Vec<Section<'_>> = Vec::new();
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    // Lines of the current hunk still expected on the old and the new side.
    let (mut old_left, mut new_left) = (0usize, 0usize);
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let bare = line.trim_end_matches(['\n', '\r']);
        i += 1;
        if old_left > 0 || new_left > 0 {
            if let Some(s) = out.last_mut() {
                s.body.push(line);
            }
            match bare.as_bytes().first() {
                Some(b'-') => old_left = old_left.saturating_sub(1),
                Some(b'+') => new_left = new_left.saturating_sub(1),
                Some(b'\\') => {}
                _ => {
                    old_left = old_left.saturating_sub(1);
                    new_left = new_left.saturating_sub(1);
                }
            }
            continue;
        }
        if bare.starts_with("diff --git ") {
            out.push(Section { git: Some(bare), ..Section::default() });
        } else if bare.starts_with("--- ") && lines.get(i).is_some_and(|n| n.starts_with("+++ ")) {
            // A file header opens a new file unless it belongs to the `diff --git` just read.
            if out.last().is_none_or(|s| !s.body.is_empty() || s.git.is_none()) {
                out.push(Section::default());
            }
            let s = out.last_mut().expect("pushed above");
            s.body.push(line);
            s.body.push(lines[i]);
            i += 1;
        } else if let Some(h) = bare.strip_prefix("@@ ") {
            if let Some(s) = out.last_mut().filter(|s| !s.body.is_empty()) {
                s.body.push(line);
                (old_left, new_left) = hunk_counts(h).unwrap_or((0, 0));
            }
        } else if bare.starts_with('\\') {
            if let Some(s) = out.last_mut().filter(|s| !s.body.is_empty()) {
                s.body.push(line);
            }
        } else if let Some(s) = out.last_mut().filter(|s| s.git.is_some() && s.body.is_empty()) {
            s.headers.push(bare);
        } else if let Some(s) = out.last_mut().filter(|s| !s.body.is_empty() && bare.starts_with(['+', '-', ' '])) {
            // More changed lines than the hunk header counts: keep them so the file fails to parse
            // instead of being applied without them.
            s.body.push(line);
        }
        // Anything else (`diff -u a b` command lines, `Only in …`) lies between files.
    }
    out
}

fn hunk_counts(header: &str) -> Option<(usize, usize)> {
    let mut parts = header.split_whitespace();
    let count = |r: &str| -> Option<usize> {
        match r.get(1..)?.split_once(',') {
            Some((_, n)) => n.parse().ok(),
            None => Some(1),
        }
    };
    let old = parts.next().filter(|p| p.starts_with('-'))?;
    let new = parts.next().filter(|p| p.starts_with('+'))?;
    Some((count(old)?, count(new)?))
}

fn file_patch(s: &Section<'_>) -> Result<FilePatch, String> {
    let git = s.git.is_some();
    let header = |prefix: &str| s.headers.iter().find_map(|h| h.strip_prefix(prefix)).map(str::to_owned);
    let rename_from = header("rename from ").or_else(|| header("copy from "));
    let rename_to = header("rename to ").or_else(|| header("copy to "));
    let body: String = s.body.concat();
    let (old, new) = if s.body.is_empty() {
        (None, None)
    } else {
        let old = side(s.body[0], "--- ")?;
        let new = side(s.body[1], "+++ ")?;
        if s.body.len() == 2 {
            return Err("a file header without hunks".into());
        }
        diffy::Patch::from_str(&body).map_err(|e| format!("unreadable hunks: {e}"))?;
        strip_prefixes(old, new, git)
    };
    if let (Some(from), Some(to)) = (rename_from, rename_to) {
        return Ok(FilePatch { path: to.into(), change: Change::Rename { from: from.into() }, body });
    }
    if s.body.is_empty() {
        let what = s.git.unwrap_or("a file");
        return Err(format!("{what}: no `---`/`+++` lines (binary and mode-only changes are not supported)"));
    }
    match (old, new) {
        (None, Some(p)) => Ok(FilePatch { path: p, change: Change::Create, body }),
        (Some(p), None) => Ok(FilePatch { path: p, change: Change::Delete, body }),
        (Some(o), Some(n)) if o == n => Ok(FilePatch { path: n, change: Change::Modify, body }),
        // `diff -u old/f new/f` names two trees: the file is the new side's.
        (Some(_), Some(n)) if !git => Ok(FilePatch { path: n, change: Change::Modify, body }),
        (Some(o), Some(n)) => Ok(FilePatch { path: n, change: Change::Rename { from: o }, body }),
        (None, None) => Err("both sides are /dev/null".into()),
    }
}

/// The name on a `---`/`+++` line: `None` for `/dev/null`; `diff -u`'s tab-separated
/// timestamp dropped, C-style quotes removed.
fn side(line: &str, prefix: &str) -> Result<Option<String>, String> {
    let rest = line.trim_end_matches(['\n', '\r']).strip_prefix(prefix).ok_or("missing file header")?;
    let name = rest.split('\t').next().unwrap_or("").trim_end();
    let name = name.strip_prefix('"').and_then(|n| n.strip_suffix('"')).unwrap_or(name);
    if name.is_empty() {
        return Err(format!("empty file name after `{}`", prefix.trim()));
    }
    Ok((name != "/dev/null").then(|| name.to_owned()))
}

/// Removes git's `a/` and `b/` prefixes: always in a `git diff`, and in a plain diff only when
/// both sides carry them (so a source directory named `a` is not mangled).
fn strip_prefixes(old: Option<String>, new: Option<String>, git: bool) -> (Option<PathBuf>, Option<PathBuf>) {
    let git_style = git
        || (old.as_deref().is_none_or(|o| o.starts_with("a/"))
            && new.as_deref().is_none_or(|n| n.starts_with("b/"))
            && (old.is_some() || new.is_some()));
    let strip = |name: Option<String>, prefix: &str| {
        name.map(|n| PathBuf::from(if git_style { n.strip_prefix(prefix).unwrap_or(&n) } else { &n }))
    };
    (strip(old, "a/"), strip(new, "b/"))
}

/// Applies one file patch's hunks to `base` (empty for a new file).
pub fn apply(patch: &FilePatch, base: &str) -> Result<String, String> {
    if patch.body.is_empty() {
        return Ok(base.to_owned());
    }
    let parsed = diffy::Patch::from_str(&patch.body).map_err(|e| e.to_string())?;
    diffy::apply(base, &parsed).map_err(|e| format!("{}: {e}", patch.path.display()))
}

#[cfg(test)]
#[path = "patch_tests.rs"]
mod tests;
