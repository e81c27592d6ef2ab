//! Durable file primitives shared by every writer under the root.
//!
//! Invariants: a whole-file write is temp file in the same directory → fsync → rename → fsync of
//! the directory, so readers see the old file or the new one, never a mix. A journal record is
//! one `write(2)` of one line under an exclusive advisory lock, so two razar processes never
//! interleave lines. Readers skip a torn last line. A corrupt JSON file is moved aside, never
//! silently reset.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// An I/O failure with the path it concerns.
#[derive(Debug, thiserror::Error)]
#[error("{action} {path}: {source}")]
pub struct FsError {
    pub action: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

impl FsError {
    pub fn new(action: &'static str, path: &Path, source: io::Error) -> Self {
        FsError { action, path: path.to_path_buf(), source }
    }
}

pub type Result<T> = std::result::Result<T, FsError>;

/// Creates `dir` and its parents; directories razar creates are owner-only (0700).
pub fn ensure_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| FsError::new("creating directory", dir, e))
}

/// Proves that files can be created in `dir` (creating it if needed): a probe file is created
/// and removed. For a clear error before anything starts instead of a failed write later.
pub fn check_writable_dir(dir: &Path) -> Result<()> {
    let action = "cannot write to directory";
    ensure_dir(dir).map_err(|e| FsError::new(action, dir, e.source))?;
    let probe = dir.join(format!(".razar-write-check-{}", std::process::id()));
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(PRIVATE_FILE)
        .open(&probe)
        .map_err(|e| FsError::new(action, dir, e))?;
    let _ = fs::remove_file(&probe);
    Ok(())
}

/// Restricts the directories razar keeps its records in to their owner, when they exist and
/// are razar's (an older razar created them 0755). Failures are left to the writes that follow.
pub fn restrict_dirs(dirs: &[PathBuf]) {
    for dir in dirs {
        if dir.is_dir() {
            let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
        }
    }
}

/// Creates `dir` (and parents) and restricts it to its owner.
pub fn ensure_private_dir(dir: &Path) -> Result<()> {
    ensure_dir(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(|e| FsError::new("restricting", dir, e))
}

/// Replaces `path` atomically with `bytes`, file mode `mode`, durably (fsynced).
pub fn atomic_write(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    replace(path, bytes, mode, true)
}

/// Replaces `path` atomically with `bytes` without waiting for the disk: readers still see the
/// old file or the new one, never a mix, but a power loss may bring back an older version.
/// For snapshots rewritten many times a second, whose next durable write follows soon.
pub fn atomic_write_fast(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    replace(path, bytes, mode, false)
}

fn replace(path: &Path, bytes: &[u8], mode: u32, durable: bool) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    ensure_dir(dir)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let write = || -> io::Result<()> {
        let mut f = OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&tmp)?;
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(bytes)?;
        if durable {
            f.sync_all()?;
        }
        fs::rename(&tmp, path)?;
        // The rename is durable only once the directory entry is.
        if durable { File::open(dir)?.sync_all() } else { Ok(()) }
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        FsError::new("writing", path, e)
    })
}

/// Writes `value` as pretty JSON, atomically and durably, mode 0600.
pub fn write_json<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<()> {
    let bytes = json_bytes(path, value)?;
    atomic_write(path, &bytes, PRIVATE_FILE)
}

/// [`write_json`] without the fsyncs (see [`atomic_write_fast`]).
pub fn write_json_fast<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<()> {
    let bytes = json_bytes(path, value)?;
    atomic_write_fast(path, &bytes, PRIVATE_FILE)
}

fn json_bytes<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<Vec<u8>> {
    let mut bytes =
        serde_json::to_vec_pretty(value).map_err(|e| FsError::new("serializing", path, io::Error::other(e)))?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Reads a JSON file. Missing → `Ok(None)`. Unparseable → moved aside to
/// `<name>.corrupt-<ms>` with a warning, then `Ok(None)`.
pub fn read_json_or_quarantine<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(FsError::new("reading", path, e)),
    };
    match serde_json::from_slice(&bytes) {
        Ok(v) => Ok(Some(v)),
        Err(err) => {
            let aside = move_aside(path)?;
            tracing::warn!(path = %path.display(), moved_to = %aside.display(), %err,
                "corrupt JSON file moved aside");
            Ok(None)
        }
    }
}

/// Renames a corrupt file to `<name>.corrupt-<ms>` and returns the new path.
pub fn move_aside(path: &Path) -> Result<PathBuf> {
    let mut aside = path.as_os_str().to_owned();
    aside.push(format!(".corrupt-{}", crate::clock::epoch_millis()));
    let aside = PathBuf::from(aside);
    fs::rename(path, &aside).map_err(|e| FsError::new("moving aside", path, e))?;
    Ok(aside)
}

/// Appends one JSON record as one line, in one `write`, under an exclusive advisory lock.
pub fn append_jsonl<T: Serialize + ?Sized>(path: &Path, record: &T) -> Result<()> {
    let mut line = serde_json::to_vec(record).map_err(|e| FsError::new("serializing", path, io::Error::other(e)))?;
    line.push(b'\n');
    if let Some(dir) = path.parent() {
        ensure_dir(dir)?;
    }
    let mut append = || -> io::Result<()> {
        let mut f = OpenOptions::new().append(true).create(true).mode(PRIVATE_FILE).open(path)?;
        let locked = lock_bounded(&f);
        // A torn line left by a crashed writer must not swallow this record: start on a fresh line.
        let len = f.metadata()?.len();
        if len > 0 && !ends_with_newline(path, len)? {
            line.insert(0, b'\n');
        }
        f.write_all(&line)?;
        if locked { f.unlock() } else { Ok(()) }
    };
    append().map_err(|e| FsError::new("appending to", path, e))
}

fn ends_with_newline(path: &Path, len: u64) -> io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = File::open(path)?;
    f.seek(SeekFrom::Start(len - 1))?;
    let mut last = [0u8; 1];
    f.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
}

/// A JSONL file kept open for appending: the same one-line, one-write, locked records as
/// [`append_jsonl`] without reopening the file for every record (the dispatcher journals
/// thousands of events while a large stack boots). Whether the file ends in a torn line is
/// checked when it is opened. The file is reopened when its path no longer names the open file
/// (log rotation: `mv razar.log razar.log.1`) or after [`request_reopen`] (SIGUSR1).
#[derive(Debug)]
pub struct Appender {
    path: PathBuf,
    file: std::sync::Mutex<Option<Open>>,
}

#[derive(Debug)]
pub struct Open {
    file: File,
    dev: u64,
    ino: u64,
    generation: u64,
}

impl Appender {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Appender { path: path.into(), file: std::sync::Mutex::new(None) }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn append<T: Serialize + ?Sized>(&self, record: &T) -> Result<()> {
        let mut line =
            serde_json::to_vec(record).map_err(|e| FsError::new("serializing", &self.path, io::Error::other(e)))?;
        line.push(b'\n');
        self.append_line(line)
    }

    /// Appends `line` (one whole record ending in a newline) in one write.
    pub fn append_line(&self, mut line: Vec<u8>) -> Result<()> {
        let mut guard = self.file.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut write = |slot: &mut Option<Open>| -> io::Result<()> {
            if slot.as_ref().is_some_and(|open| self.moved(open)) {
                *slot = None;
            }
            if slot.is_none() {
                let open = open_private_append(&self.path)?;
                let len = open.file.metadata()?.len();
                if len > 0 && !ends_with_newline(&self.path, len)? {
                    line.insert(0, b'\n');
                }
                *slot = Some(open);
            }
            let f = &mut slot.as_mut().expect("opened above").file;
            let locked = lock_bounded(f);
            let result = f.write_all(&line);
            if locked {
                f.unlock()?;
            }
            result
        };
        write(&mut guard).map_err(|e| {
            // Reopen next time: the file may have been replaced or its directory removed.
            *guard = None;
            FsError::new("appending to", &self.path, e)
        })
    }

    /// Holds the file's writer lock, stalling every append until dropped (tests of writers
    /// that must not wait for a stalled journal).
    #[cfg(test)]
    pub fn hold(&self) -> std::sync::MutexGuard<'_, Option<Open>> {
        self.file.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// True when the open file is no longer the one at `path` (renamed or removed by log
    /// rotation) or a reopen was requested since it was opened.
    fn moved(&self, open: &Open) -> bool {
        use std::os::unix::fs::MetadataExt;
        if open.generation != REOPEN.load(std::sync::atomic::Ordering::Relaxed) {
            return true;
        }
        match fs::metadata(&self.path) {
            Ok(m) => m.dev() != open.dev || m.ino() != open.ino,
            Err(_) => true,
        }
    }
}

static REOPEN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Makes every [`Appender`] reopen its file before its next record (SIGUSR1 after rotation).
pub fn request_reopen() {
    REOPEN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// Mode of every file razar writes under `logs/`, `quarantine/`, `.razar/` and the metrics
/// textfile: owner only (not configurable; see docs/files.md).
pub const PRIVATE_FILE: u32 = 0o600;

/// Longest wait for the advisory lock on a journal. Another process holding it longer (a
/// hostile `flock -x`) gets the record written without the lock: an `O_APPEND` write of one
/// line still lands whole, and supervision never waits on someone else's lock.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_millis(100);

/// Takes the exclusive lock on `f`, waiting at most [`LOCK_WAIT`]; false if it was not taken.
pub fn lock_bounded(f: &File) -> bool {
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    let mut pause = std::time::Duration::from_millis(1);
    loop {
        match f.try_lock() {
            Ok(()) => return true,
            Err(fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_millis(20));
            }
            Err(_) => return false,
        }
    }
}

fn open_private_append(path: &Path) -> io::Result<Open> {
    use std::os::unix::fs::MetadataExt;
    if let Some(dir) = path.parent() {
        ensure_dir(dir).map_err(|e| e.source)?;
    }
    let file = OpenOptions::new().append(true).create(true).mode(PRIVATE_FILE).open(path)?;
    // A journal left world-readable by an older razar is tightened; not ours: leave it.
    let _ = file.set_permissions(fs::Permissions::from_mode(PRIVATE_FILE));
    let m = file.metadata()?;
    let generation = REOPEN.load(std::sync::atomic::Ordering::Relaxed);
    Ok(Open { file, dev: m.dev(), ino: m.ino(), generation })
}

/// Reads every parseable record of a JSONL file; torn or foreign lines are skipped.
pub fn read_jsonl<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(FsError::new("reading", path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/b.json");
        write_json(&p, &serde_json::json!({"x": 1})).unwrap();
        write_json(&p, &serde_json::json!({"x": 2})).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&fs::read(&p).unwrap()).unwrap();
        assert_eq!(v["x"], 2);
        let leftovers: Vec<_> = fs::read_dir(p.parent().unwrap()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temp file left behind");
    }

    #[test]
    fn corrupt_json_is_moved_aside_not_lost() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.json");
        fs::write(&p, "{not json").unwrap();
        let got: Option<serde_json::Value> = read_json_or_quarantine(&p).unwrap();
        assert!(got.is_none());
        let names: Vec<String> =
            fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert_eq!(names.len(), 1);
        assert!(names[0].starts_with("s.json.corrupt-"), "{names:?}");
    }

    #[test]
    fn an_appender_keeps_lines_whole_and_starts_after_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("j.jsonl");
        fs::write(&p, "{\"n\":1}\n{\"n\":").unwrap();
        let a = Appender::new(&p);
        for n in 2..5 {
            a.append(&serde_json::json!({"n": n})).unwrap();
        }
        let recs: Vec<serde_json::Value> = read_jsonl(&p).unwrap();
        let ns: Vec<i64> = recs.iter().map(|r| r["n"].as_i64().unwrap()).collect();
        assert_eq!(ns, vec![1, 2, 3, 4]);
    }

    #[test]
    fn torn_last_line_is_skipped_and_next_record_starts_fresh() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("j.jsonl");
        fs::write(&p, "{\"n\":1}\n{\"n\":").unwrap();
        append_jsonl(&p, &serde_json::json!({"n": 3})).unwrap();
        let recs: Vec<serde_json::Value> = read_jsonl(&p).unwrap();
        assert_eq!(recs, vec![serde_json::json!({"n":1}), serde_json::json!({"n":3})]);
    }

    #[test]
    fn an_appender_follows_a_rotated_file_and_writes_private_files() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("logs/razar.log");
        let a = Appender::new(&p);
        a.append(&serde_json::json!({"n": 1})).unwrap();
        fs::rename(&p, dir.path().join("logs/razar.log.1")).unwrap();
        a.append(&serde_json::json!({"n": 2})).unwrap();
        let new: Vec<serde_json::Value> = read_jsonl(&p).unwrap();
        assert_eq!(new, vec![serde_json::json!({"n": 2})], "a record after rotation goes to a new file");
        let old: Vec<serde_json::Value> = read_jsonl(&dir.path().join("logs/razar.log.1")).unwrap();
        assert_eq!(old, vec![serde_json::json!({"n": 1})]);
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::metadata(p.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);
        // A reopen request (SIGUSR1) reopens even when the path still names the same file.
        fs::write(dir.path().join("logs/other"), "").unwrap();
        request_reopen();
        a.append(&serde_json::json!({"n": 3})).unwrap();
        assert_eq!(read_jsonl::<serde_json::Value>(&p).unwrap().len(), 2);
    }

    #[test]
    fn a_lock_held_by_someone_else_delays_a_record_by_at_most_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("j.jsonl");
        let a = Appender::new(&p);
        a.append(&serde_json::json!({"n": 1})).unwrap();
        let hostile = File::open(&p).unwrap();
        hostile.lock().unwrap();
        let started = std::time::Instant::now();
        a.append(&serde_json::json!({"n": 2})).unwrap();
        append_jsonl(&p, &serde_json::json!({"n": 3})).unwrap();
        let took = started.elapsed();
        assert!(took < LOCK_WAIT * 2 + std::time::Duration::from_millis(300), "two records took {took:?}");
        let ns: Vec<i64> =
            read_jsonl::<serde_json::Value>(&p).unwrap().iter().map(|r| r["n"].as_i64().unwrap()).collect();
        assert_eq!(ns, vec![1, 2, 3], "records are written, not lost, while the lock is held");
    }
}
