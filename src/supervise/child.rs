//! Spawning a component: its own process group, its env and cwd, stdin from /dev/null,
//! stdout and stderr merged into one pipe drained by `output::drain`. The caller owns the
//! returned `tokio::process::Child` and must reap it.

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::Stdio;

use std::sync::Arc;

use tokio::sync::Notify;

use super::output::{self, LineSink, RotatingLog};

/// Everything needed to start one process.
pub struct SpawnSpec {
    pub argv: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub working_dir: Option<PathBuf>,
    pub log_path: PathBuf,
    /// Log probe: output lines are reported here while it listens.
    pub lines: Option<LineSink>,
    /// Notified whenever output arrives (a starting service often logs the moment it is ready).
    pub output_seen: Option<Arc<Notify>>,
}

/// A started process.
pub struct Spawned {
    pub child: tokio::process::Child,
    pub pid: u32,
    /// Equal to `pid`: the child leads its own group.
    pub pgid: i32,
    pub start_time: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("cannot run {program:?}: {source}")]
    Exec {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create the output pipe: {0}")]
    Pipe(#[source] std::io::Error),
}

pub fn spawn(spec: SpawnSpec) -> Result<Spawned, SpawnError> {
    let log = RotatingLog::new(&spec.log_path, output::ROTATE_BYTES);
    let (reader, writer) = pipe().map_err(SpawnError::Pipe)?;
    let writer2 = writer.try_clone().map_err(SpawnError::Pipe)?;
    let mut cmd = super::spawn::command(&spec.argv[0]);
    cmd.args(&spec.argv[1..])
        .envs(&spec.env)
        .stdin(Stdio::null())
        .stdout(Stdio::from(writer))
        .stderr(Stdio::from(writer2))
        .process_group(0)
        .kill_on_drop(false);
    if let Some(dir) = &spec.working_dir {
        cmd.current_dir(dir);
    }
    let child =
        super::reaper::spawn(&mut cmd).map_err(|source| SpawnError::Exec { program: spec.argv[0].clone(), source })?;
    // `cmd` holds the parent's copies of the write ends: drop them so EOF arrives when the
    // child (and anything it forked) is gone.
    drop(cmd);
    let pid = child.id().expect("a just-spawned child has a pid");
    let receiver = tokio::net::unix::pipe::Receiver::from_owned_fd(reader).map_err(SpawnError::Pipe)?;
    tokio::spawn(output::drain(receiver, log, spec.lines, spec.output_seen));
    Ok(Spawned { child, pid, pgid: pid as i32, start_time: super::procfs::start_time(pid) })
}

/// A pipe with close-on-exec on both ends (the child gets dup2'd copies without it).
fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(std::io::Error::from)?;
    use std::os::fd::AsRawFd;
    nix::fcntl::fcntl(r.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK))
        .map_err(std::io::Error::from)?;
    Ok((r, w))
}
