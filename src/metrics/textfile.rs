//! `monitoring/boot_metrics.prom`: the `razar_boot_*` gauges as a Prometheus textfile, for
//! node_exporter's textfile collector and for a host whose razar is not running.
//!
//! Written whole and atomically (temp file in the same directory, fsync, rename), mode 0644,
//! so a collector never reads half a file. The temp file's name does not end in `.prom`, so
//! the collector ignores it while it exists.

use std::path::Path;

use super::Metrics;
use crate::fsutil::{self, FsError};

/// Replaces `path` with the current `razar_boot_*` gauges of `metrics`.
pub fn write(path: &Path, metrics: &Metrics) -> Result<(), FsError> {
    fsutil::atomic_write(path, metrics.render_boot().as_bytes(), crate::fsutil::PRIVATE_FILE)
}
