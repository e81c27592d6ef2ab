//! Append-only JSONL journals. Every record gets `timestamp` (epoch seconds) and
//! `timestamp_iso`; the write itself is one line in one write under a bounded lock
//! (`fsutil::Appender`), done by the journal writer thread ([`writer`]) so that the caller
//! never waits on the disk or on another process's lock.

pub mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::clock;
use crate::fsutil::{Appender, FsError};

/// One JSONL file, kept open while the journal lives.
#[derive(Debug, Clone)]
pub struct Journal {
    file: Arc<Appender>,
}

impl Journal {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Journal { file: Arc::new(Appender::new(path)) }
    }

    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// Queues `record` (a JSON object) stamped with the current time for the journal writer.
    /// Never blocks; a write that fails later is logged by the writer, and a record that finds
    /// the queue full is counted as dropped. [`writer::flush`] waits for the queue.
    pub fn append<T: Serialize>(&self, record: &T) -> Result<(), FsError> {
        let now = clock::epoch();
        let mut obj = match serde_json::to_value(record) {
            Ok(Value::Object(m)) => m,
            Ok(other) => Map::from_iter([("value".to_owned(), other)]),
            Err(e) => return Err(FsError::new("serializing for", self.path(), std::io::Error::other(e))),
        };
        obj.insert("timestamp".into(), now.into());
        obj.insert("timestamp_iso".into(), clock::iso(now).into());
        let mut line = serde_json::to_vec(&Value::Object(obj))
            .map_err(|e| FsError::new("serializing for", self.path(), std::io::Error::other(e)))?;
        line.push(b'\n');
        writer::submit(&self.file, line);
        Ok(())
    }

    /// Appends, logging instead of failing: a journal that cannot be written must not stop
    /// the stack it describes.
    pub fn append_or_warn<T: Serialize>(&self, record: &T) {
        if let Err(e) = self.append(record) {
            tracing::warn!(error = %e, "journal write failed");
        }
    }
}

/// A `logs/razar.log` record.
#[derive(Debug, Clone, Serialize)]
pub struct MissionEvent<'a> {
    pub event: &'a str,
    pub component: &'a str,
    pub status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
}
