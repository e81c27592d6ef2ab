//! A component's combined stdout+stderr: appended to `logs/components/<name>.log`, rotated by
//! size, and reported line by line while a log probe listens (the sequencer matches them).
//!
//! The drain reads in large chunks and writes straight to the file, so a child writing
//! 100 MB/s is never blocked on a full pipe for long; lines are only assembled while a log
//! probe still waits for its match.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::AsyncReadExt;

/// Rotate when the log passes this size.
pub const ROTATE_BYTES: u64 = 10 * 1024 * 1024;
/// Rotated files kept (`<name>.log.1` … `.3`).
pub const KEEP: usize = 3;
/// First and largest read size of the drain.
const MIN_READ: usize = 1024;
const MAX_READ: usize = 64 * 1024;
/// Longest line the log probe assembles; longer lines are matched in pieces.
const MAX_LINE: usize = 64 * 1024;

/// A size-rotated append-only log file. It is open only while output flows: a thousand quiet
/// components then hold no log descriptors, and every spawn (which copies razar's descriptor
/// table and closes it again at exec) stays cheap.
pub struct RotatingLog {
    path: PathBuf,
    file: Option<File>,
    size: u64,
    limit: u64,
}

impl RotatingLog {
    /// A log at `path`; nothing is touched until [`RotatingLog::create`].
    pub fn new(path: &Path, limit: u64) -> Self {
        RotatingLog { path: path.to_path_buf(), file: None, size: 0, limit }
    }

    /// Creates the file if needed (so it exists from the launch on) and notes its size. The
    /// drain does this, off the dispatcher's launch path: creating a thousand files can take
    /// longer than spawning a thousand processes.
    pub fn create(&mut self) -> std::io::Result<()> {
        if let Some(dir) = self.path.parent() {
            crate::fsutil::ensure_dir(dir).map_err(|e| e.source)?;
        }
        self.size = Self::open_file(&self.path)?.metadata()?.len();
        Ok(())
    }

    #[cfg(test)]
    pub fn open(path: &Path, limit: u64) -> std::io::Result<Self> {
        let mut log = Self::new(path, limit);
        log.create()?;
        Ok(log)
    }

    fn open_file(path: &Path) -> std::io::Result<File> {
        OpenOptions::new().append(true).create(true).mode(crate::fsutil::PRIVATE_FILE).open(path)
    }

    pub fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if self.size > 0 && self.size + bytes.len() as u64 > self.limit {
            self.rotate()?;
        }
        let file = match &mut self.file {
            Some(f) => f,
            None => self.file.insert(Self::open_file(&self.path)?),
        };
        file.write_all(bytes)?;
        self.size += bytes.len() as u64;
        Ok(())
    }

    /// The output paused: let go of the descriptor until more arrives.
    pub fn idle(&mut self) {
        self.file = None;
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        let name = |n: usize| {
            let mut s = self.path.as_os_str().to_owned();
            s.push(format!(".{n}"));
            PathBuf::from(s)
        };
        for n in (1..KEEP).rev() {
            let _ = std::fs::rename(name(n), name(n + 1));
        }
        std::fs::rename(&self.path, name(1))?;
        self.file = Some(Self::open_file(&self.path)?);
        self.size = 0;
        Ok(())
    }
}

/// Where a component's output lines go while a log probe listens: each line, then `None` at
/// the end of the output, tagged with the caller's `tag` (component and attempt). Lines are
/// only assembled while `listening` holds; the receiver clears it once it has its answer.
pub struct LineSink {
    pub tx: tokio::sync::mpsc::Sender<(LineTag, Option<String>)>,
    pub tag: LineTag,
    pub listening: Arc<AtomicBool>,
}

/// The caller's tag of a line: component index and attempt generation.
pub type LineTag = (usize, u64);

impl LineSink {
    fn listening(&self) -> bool {
        self.listening.load(Ordering::Relaxed)
    }

    /// Sends one line (or the end); false once nobody listens any more.
    async fn send(&self, line: Option<String>) -> bool {
        self.listening() && self.tx.send((self.tag, line)).await.is_ok()
    }
}

/// Reads `pipe` until EOF into `log`; reports lines to `lines` while it listens.
pub async fn drain(
    mut pipe: tokio::net::unix::pipe::Receiver,
    mut log: RotatingLog,
    mut lines: Option<LineSink>,
    output_seen: Option<Arc<tokio::sync::Notify>>,
) {
    if let Err(e) = log.create() {
        tracing::warn!(path = %log.path.display(), error = %e, "cannot create the component log");
    }
    // Small while the child is quiet (a thousand idle components cost little memory), grown
    // to 64 KiB as soon as reads fill it (a chatty child is drained in big gulps).
    let mut buf = vec![0u8; MIN_READ];
    let mut line = Vec::new();
    loop {
        let n = match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };

        if let Err(e) = log.write(&buf[..n]) {
            tracing::warn!(path = %log.path.display(), error = %e, "component log write failed");
        }
        if let Some(seen) = &output_seen {
            seen.notify_one();
        }
        // A read that did not fill the buffer drained the pipe: the child paused.
        let paused = n < buf.len();
        if lines.as_ref().is_some_and(LineSink::listening) {
            for &b in &buf[..n] {
                if b == b'\n' || line.len() >= MAX_LINE {
                    let sent = match &lines {
                        Some(sink) => sink.send(Some(text_of(&line))).await,
                        None => false,
                    };
                    line.clear();
                    if !sent {
                        lines = None;
                        break;
                    }
                } else {
                    line.push(b);
                }
            }
        } else {
            lines = None;
        }
        if paused {
            log.idle();
        } else if buf.len() < MAX_READ {
            buf.resize(buf.len() * 4, 0);
        }
    }
    if let Some(sink) = lines {
        // A last line without a newline still counts.
        if !line.is_empty() && !sink.send(Some(text_of(&line))).await {
            return;
        }
        sink.send(None).await;
    }
}

fn text_of(line: &[u8]) -> String {
    String::from_utf8_lossy(line).trim_end_matches('\r').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_by_size_and_keeps_three() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.log");
        let mut log = RotatingLog::open(&p, 10).unwrap();
        for i in 0..6 {
            log.write(format!("line{i}-xx\n").as_bytes()).unwrap();
        }
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "line5-xx\n");
        assert_eq!(std::fs::read_to_string(dir.path().join("c.log.1")).unwrap(), "line4-xx\n");
        assert!(dir.path().join("c.log.3").exists());
        assert!(!dir.path().join("c.log.4").exists());
    }
}
