//! The journal writer: one thread that owns every journal write, fed by a bounded queue, so a
//! slow disk or a lock held by another process never stalls the task that journals (the
//! dispatcher). A record that finds the queue full is dropped and counted
//! (`razar_journal_dropped_records_total`); supervision never waits for the journal.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::fsutil::Appender;

/// Records waiting for the writer; beyond this, records are dropped and counted.
pub const QUEUE_CAPACITY: usize = 8192;

static WRITER: OnceLock<Option<Writer>> = OnceLock::new();

enum Job {
    Line(Arc<Appender>, Vec<u8>),
    Flush(SyncSender<()>),
}

/// A writer thread and its queue.
struct Writer {
    tx: SyncSender<Job>,
    dropped: AtomicU64,
}

impl Writer {
    fn start(capacity: usize) -> Option<Writer> {
        let (tx, rx) = sync_channel(capacity);
        let thread = std::thread::Builder::new().name("razar-journal".into()).spawn(move || run(rx));
        thread.ok().map(|_| Writer { tx, dropped: AtomicU64::new(0) })
    }

    fn submit(&self, file: &Arc<Appender>, line: Vec<u8>) {
        match self.tx.try_send(Job::Line(Arc::clone(file), line)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                if self.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
                    tracing::warn!(
                        capacity = QUEUE_CAPACITY,
                        "journal writer is behind; records are being dropped (razar_journal_dropped_records_total)"
                    );
                }
            }
            Err(TrySendError::Disconnected(Job::Line(file, line))) => write_now(&file, line),
            Err(TrySendError::Disconnected(Job::Flush(_))) => {}
        }
    }

    fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let (done_tx, done_rx) = sync_channel(1);
        let mut job = Job::Flush(done_tx);
        loop {
            match self.tx.try_send(job) {
                Ok(()) => break,
                Err(TrySendError::Full(j)) if Instant::now() < deadline => {
                    job = j;
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(_) => return false,
            }
        }
        done_rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).is_ok()
    }
}

fn global() -> Option<&'static Writer> {
    WRITER.get_or_init(|| Writer::start(QUEUE_CAPACITY)).as_ref()
}

/// Journal records dropped because the writer's queue was full, since razar started.
pub fn dropped() -> u64 {
    WRITER.get().and_then(Option::as_ref).map_or(0, |w| w.dropped.load(Ordering::Relaxed))
}

fn run(rx: Receiver<Job>) {
    for job in rx {
        match job {
            Job::Line(file, line) => write_now(&file, line),
            Job::Flush(done) => {
                let _ = done.send(());
            }
        }
    }
}

fn write_now(file: &Appender, line: Vec<u8>) {
    if let Err(e) = file.append_line(line) {
        tracing::warn!(error = %e, "journal write failed");
    }
}

/// Queues `line` for `file`. Never blocks: a full queue drops the record and counts it. With no
/// writer thread (it could not be started) the line is written here.
pub fn submit(file: &Arc<Appender>, line: Vec<u8>) {
    match global() {
        Some(w) => w.submit(file, line),
        None => write_now(file, line),
    }
}

/// Waits, at most `timeout`, until every record queued before the call is written. True when
/// they are. Called before razar exits and by readers in the same process.
pub fn flush(timeout: Duration) -> bool {
    WRITER.get().and_then(Option::as_ref).is_none_or(|w| w.flush(timeout))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stalled_writer_drops_and_counts_records_instead_of_blocking_the_caller() {
        let dir = tempfile::tempdir().unwrap();
        let file = Arc::new(Appender::new(dir.path().join("j.jsonl")));
        let w = Writer::start(4).unwrap();
        let stalled = file.hold();
        let started = Instant::now();
        for n in 0..100 {
            w.submit(&file, format!("{{\"n\":{n}}}\n").into_bytes());
        }
        assert!(started.elapsed() < Duration::from_millis(500), "submitting never waits for the writer");
        let dropped = w.dropped.load(Ordering::Relaxed);
        assert!((90..=96).contains(&dropped), "100 records into a stalled queue of 4: {dropped} dropped");
        drop(stalled);
        assert!(w.flush(Duration::from_secs(10)));
        let written = crate::fsutil::read_jsonl::<serde_json::Value>(file.path()).unwrap().len() as u64;
        assert_eq!(written + dropped, 100, "every record is either written or counted as dropped");
    }
}
