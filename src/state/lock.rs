//! The root's boot lock, `.razar/boot.lock`: an exclusive advisory lock held for the life of a
//! `razar boot`, with the holder's PID written inside so a second boot can name it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;

use crate::fsutil::{self, FsError};
use crate::paths::Paths;

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another razar boot (pid {pid}) holds {}; stop it first or use a different --root", path.display())]
    Held { pid: String, path: std::path::PathBuf },
    #[error(transparent)]
    Fs(#[from] FsError),
}

/// Held while the boot runs; the lock is released when this is dropped or the process dies.
#[derive(Debug)]
pub struct BootLock {
    _file: File,
}

impl BootLock {
    pub fn acquire(paths: &Paths) -> Result<Self, LockError> {
        let path = paths.lock();
        fsutil::ensure_private_dir(&paths.private())?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| FsError::new("opening", &path, e))?;
        // `holder` takes the lock shared for an instant to peek: a boot starting in that
        // instant must not take it for another boot.
        let mut tries = 0;
        let locked = loop {
            match file.try_lock() {
                Err(std::fs::TryLockError::WouldBlock) if tries < 10 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                other => break other,
            }
        };
        match locked {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let pid = pid.trim().to_owned();
                return Err(LockError::Held { pid: if pid.is_empty() { "unknown".into() } else { pid }, path });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(FsError::new("locking", &path, e).into()),
        }
        let write = |f: &mut File| -> std::io::Result<()> {
            f.set_len(0)?;
            f.rewind()?;
            writeln!(f, "{}", std::process::id())?;
            f.sync_all()
        };
        write(&mut file).map_err(|e| FsError::new("writing", &path, e))?;
        Ok(BootLock { _file: file })
    }

    /// The PID of the boot holding the lock, if one does.
    pub fn holder(paths: &Paths) -> Option<u32> {
        let mut file = File::open(paths.lock()).ok()?;
        if file.try_lock_shared().is_ok() {
            return None;
        }
        let mut pid = String::new();
        file.read_to_string(&mut pid).ok()?;
        pid.trim().parse().ok()
    }
}
