//! Test support shared by the unit tests: where the upstream system's own files are, and how a
//! test that needs them is skipped when they are absent (a user's clone has none).

use std::io::Write;
use std::path::PathBuf;

/// The directory of the upstream system's files: `$RAZAR_UPSTREAM_FIXTURES`, else
/// `../shared/upstream-fixtures/abzu` beside the repository.
pub(crate) fn upstream_dir() -> PathBuf {
    match std::env::var_os("RAZAR_UPSTREAM_FIXTURES") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/upstream-fixtures/abzu"),
    }
}

/// `rel` inside the upstream fixtures, or `None` after recording that `test` was skipped
/// because it is absent: one line on stderr and, when `$RAZAR_TEST_SKIP_LOG` names a file, one
/// line appended to it (the test script counts them).
pub(crate) fn upstream(test: &str, rel: &str) -> Option<PathBuf> {
    let dir = upstream_dir();
    let path = if rel.is_empty() { dir } else { dir.join(rel) };
    if path.exists() {
        return Some(path);
    }
    record_skip(test, &path.display().to_string());
    None
}

fn record_skip(test: &str, missing: &str) {
    let line = format!("skipped (upstream fixtures absent): {test}: needs {missing}\n");
    eprint!("{line}");
    if let Some(log) = std::env::var_os("RAZAR_TEST_SKIP_LOG")
        && let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(log)
    {
        let _ = f.write_all(line.as_bytes());
    }
}
