//! The roster snapshot, `config/razar_ai_agents.bak`: the roster as it was before a boot could
//! change it (the ladder rewrites `active` when it climbs). A halted boot and `razar rollback`
//! put it back.

use std::path::{Path, PathBuf};

use crate::fsutil::{self, FsError};

/// The snapshot beside `roster` (`….json` → `….bak`).
pub fn path_of(roster: &Path) -> PathBuf {
    roster.with_extension("bak")
}

/// Copies the roster to its snapshot (atomically, keeping its mode). Nothing to do when there
/// is no roster.
pub fn take(roster: &Path) -> Result<bool, FsError> {
    copy(roster, &path_of(roster))
}

/// Puts the snapshot back over the roster (atomically). False when there is no snapshot.
pub fn restore(roster: &Path) -> Result<bool, FsError> {
    copy(&path_of(roster), roster)
}

fn copy(from: &Path, to: &Path) -> Result<bool, FsError> {
    let bytes = match std::fs::read(from) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(FsError::new("reading", from, e)),
    };
    let meta = std::fs::metadata(from).map_err(|e| FsError::new("reading", from, e))?;
    let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777;
    fsutil::atomic_write(to, &bytes, mode)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_then_restore_puts_the_bytes_back() {
        let dir = tempfile::tempdir().unwrap();
        let roster = dir.path().join("razar_ai_agents.json");
        assert!(!take(&roster).unwrap(), "no roster: nothing to snapshot");
        assert!(!restore(&roster).unwrap(), "no snapshot: nothing to restore");
        std::fs::write(&roster, r#"{"active": "a"}"#).unwrap();
        assert!(take(&roster).unwrap());
        std::fs::write(&roster, r#"{"active": "b"}"#).unwrap();
        assert!(restore(&roster).unwrap());
        assert_eq!(std::fs::read_to_string(&roster).unwrap(), r#"{"active": "a"}"#);
        assert_eq!(path_of(&roster), dir.path().join("razar_ai_agents.bak"));
    }
}
