//! The control socket's server: accepts connections on `.razar/control.sock`, reads one request
//! line from each, forwards it to the dispatcher as an [`Envelope`] and writes back the one
//! response line the dispatcher sends, then closes.
//!
//! Invariants:
//! - Only razar's own user and root get a request through. `.razar/` is 0700 and the socket
//!   0600, which the kernel enforces at `connect(2)`; the peer's credentials (`SO_PEERCRED`)
//!   are checked as well, so a loosened directory mode does not open the socket to others.
//! - No client can hurt the boot: a request line is bounded (64 KiB) and must arrive within
//!   5 s, connections are capped at [`MAX_CONNECTIONS`] (more wait in the kernel's backlog),
//!   and every malformed request gets an error response naming the problem — the server never
//!   panics and never stops accepting because of one connection.
//! - The server owns no state. A request the dispatcher does not answer within 10 s gets an
//!   error response; the dispatcher is never blocked by a slow client, since it answers through
//!   a oneshot channel and the write happens here.
//! - Dropping the server (or aborting `serve`) closes the listener and its open connections
//!   and removes nothing; the boot, which holds the root's lock, calls [`socket_cleanup`] at
//!   exit.

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::timeout;

use super::protocol::{Envelope, Request, Response};
use crate::fsutil;
use crate::paths::Paths;

/// Longest request line accepted, newline excluded.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// How long a client has to send its request line after connecting.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the dispatcher has to answer a request.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long writing the response may take.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 32;
/// The protocol version this server speaks (a request's `v`, absent = 1).
pub const PROTOCOL_VERSION: u64 = 1;
/// How the message of a response refusing the peer's credentials starts; the client maps it to
/// `ClientError::PermissionDenied`.
pub(crate) const PERMISSION_DENIED: &str = "permission denied";

/// A bound control socket, not yet serving.
#[derive(Debug)]
pub struct ControlServer {
    listener: UnixListener,
    path: PathBuf,
    own_uid: u32,
}

/// Creates `.razar/control.sock` (mode 0600, in the owner-only `.razar/`).
///
/// The caller holds the root's boot lock, so a socket file already there was left by a boot
/// that died and is removed first. Anything else at that path (a regular file, a directory)
/// is an error: it was not put there by razar.
pub async fn bind(paths: &Paths) -> io::Result<ControlServer> {
    fsutil::ensure_private_dir(&paths.private()).map_err(|e| io::Error::new(e.source.kind(), e.to_string()))?;
    let path = paths.control_socket();
    remove_stale_socket(&path)?;
    let short = super::sockpath::ShortPath::new(&path).map_err(|e| with_path("binding", &path, e))?;
    let listener = UnixListener::bind(short.path()).map_err(|e| with_path("binding", &path, e))?;
    // Between bind and chmod the socket has the umask's mode; `.razar/` being 0700 keeps other
    // users out in that window.
    if let Err(e) = fs::set_permissions(&path, fs::Permissions::from_mode(0o600)) {
        let _ = fs::remove_file(&path);
        return Err(with_path("restricting", &path, e));
    }
    Ok(ControlServer { listener, path, own_uid: effective_uid() })
}

/// Removes the control socket at the end of a boot. A missing socket is fine; anything at the
/// path that is not a socket is left alone.
pub fn socket_cleanup(paths: &Paths) {
    let path = paths.control_socket();
    match fs::symlink_metadata(&path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if let Err(e) = fs::remove_file(&path) {
                tracing::warn!("cannot remove the control socket {}: {e}", path.display());
            }
        }
        Ok(_) => tracing::warn!("{} is not a socket; left in place", path.display()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!("cannot inspect the control socket {}: {e}", path.display()),
    }
}

impl ControlServer {
    /// Where the socket is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Accepts connections until dropped or aborted, each handled in its own task, forwarding
    /// requests to `dispatcher`. If the dispatcher is gone, requests get an error response.
    pub async fn serve(self, dispatcher: mpsc::Sender<Envelope>) {
        // Owned here so that aborting `serve` aborts the open connections too.
        let mut connections = JoinSet::new();
        loop {
            while let Some(done) = connections.try_join_next() {
                log_task_end(done);
            }
            if connections.len() >= MAX_CONNECTIONS {
                // Further clients wait in the listen backlog, bounded by their own timeouts.
                if let Some(done) = connections.join_next().await {
                    log_task_end(done);
                }
                continue;
            }
            match self.listener.accept().await {
                Ok((stream, _)) => {
                    connections.spawn(handle(stream, self.own_uid, dispatcher.clone()));
                }
                Err(e) => {
                    // Out of descriptors (EMFILE/ENFILE) and the like: retry after a pause
                    // rather than spinning on an error that will repeat at once.
                    tracing::warn!("control socket {}: accept failed: {e}", self.path.display());
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

fn log_task_end(done: Result<(), tokio::task::JoinError>) {
    if let Err(e) = done
        && e.is_panic()
    {
        tracing::error!("control connection task panicked: {e}");
    }
}

/// Whether a peer running as `peer_uid` may use the socket of a razar running as `own_uid`.
pub fn allowed(peer_uid: u32, own_uid: u32) -> bool {
    peer_uid == own_uid || peer_uid == 0
}

fn effective_uid() -> u32 {
    // SAFETY: geteuid(2) takes no arguments, touches no memory of ours and cannot fail.
    unsafe { libc::geteuid() }
}

async fn handle(mut stream: UnixStream, own_uid: u32, dispatcher: mpsc::Sender<Envelope>) {
    let response = match stream.peer_cred() {
        Err(e) => Response::error(format!("{PERMISSION_DENIED}: cannot read the peer's credentials: {e}")),
        Ok(cred) if !allowed(cred.uid(), own_uid) => {
            tracing::warn!(peer_uid = cred.uid(), peer_pid = ?cred.pid(), "control socket: refused another user");
            Response::error(format!(
                "{PERMISSION_DENIED}: uid {} may not control this boot (only uid {own_uid} or root)",
                cred.uid()
            ))
        }
        Ok(_) => match read_request(&mut stream).await {
            Ok(request) => {
                tracing::debug!(?request, "control request");
                forward(request, &dispatcher).await
            }
            Err(why) => {
                tracing::debug!("control socket: bad request: {why}");
                Response::error(why)
            }
        },
    };
    write_response(&mut stream, &response).await;
}

/// Reads and parses the one request line.
async fn read_request(stream: &mut UnixStream) -> Result<Request, String> {
    let mut line = Vec::new();
    let mut reader = BufReader::new((&mut *stream).take(MAX_REQUEST_BYTES as u64 + 1));
    match timeout(READ_TIMEOUT, reader.read_until(b'\n', &mut line)).await {
        Err(_) => {
            return Err(format!(
                "no request line within {} s; send one JSON object and a newline",
                READ_TIMEOUT.as_secs()
            ));
        }
        Ok(Err(e)) => return Err(format!("cannot read the request: {e}")),
        Ok(Ok(_)) => {}
    }
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    } else if line.len() > MAX_REQUEST_BYTES {
        return Err(format!("request too large: more than {MAX_REQUEST_BYTES} bytes without a newline"));
    }
    // A line without its newline is accepted at end of input: the client half-closed.
    parse_request(&line)
}

/// Parses one request line (without its newline). The error names what was wrong.
pub fn parse_request(line: &[u8]) -> Result<Request, String> {
    let text = std::str::from_utf8(line).map_err(|e| format!("invalid request: not UTF-8 ({e})"))?;
    if text.trim().is_empty() {
        return Err(r#"invalid request: empty line; expected one JSON object such as {"op":"status"}"#.to_owned());
    }
    let mut value: Value = serde_json::from_str(text).map_err(|e| format!("invalid request: not JSON ({e})"))?;
    let Some(object) = value.as_object_mut() else {
        return Err("invalid request: expected a JSON object with an `op` field".to_owned());
    };
    match object.remove("v") {
        None => {}
        Some(Value::Number(n)) if n.as_u64() == Some(PROTOCOL_VERSION) => {}
        Some(other) => {
            return Err(format!("unsupported protocol version {other}; this razar speaks version {PROTOCOL_VERSION}"));
        }
    }
    serde_json::from_value(value).map_err(|e| format!("invalid request: {e}"))
}

/// Hands the request to the dispatcher and waits, bounded, for its answer.
async fn forward(request: Request, dispatcher: &mpsc::Sender<Envelope>) -> Response {
    let (reply, answer) = oneshot::channel();
    let exchange = async {
        dispatcher.send(Envelope { request, reply }).await.ok()?;
        answer.await.ok()
    };
    match timeout(REPLY_TIMEOUT, exchange).await {
        Ok(Some(response)) => response,
        Ok(None) => Response::error("the boot is shutting down; the request was not handled"),
        Err(_) => Response::error(format!("the boot did not answer within {} s", REPLY_TIMEOUT.as_secs())),
    }
}

async fn write_response(stream: &mut UnixStream, response: &Response) {
    let mut line = match serde_json::to_vec(response) {
        Ok(line) => line,
        Err(e) => {
            tracing::error!("cannot serialize a control response: {e}");
            br#"{"ok":false,"message":"internal error: the response could not be serialized"}"#.to_vec()
        }
    };
    line.push(b'\n');
    let write = async {
        stream.write_all(&line).await?;
        stream.shutdown().await
    };
    match timeout(WRITE_TIMEOUT, write).await {
        Ok(Ok(())) => {}
        // The client went away or stopped reading: nothing more to do for it.
        Ok(Err(e)) => tracing::debug!("control socket: cannot write the response: {e}"),
        Err(_) => tracing::debug!("control socket: client did not read the response within {WRITE_TIMEOUT:?}"),
    }
}

fn remove_stale_socket(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => fs::remove_file(path).map_err(|e| with_path("removing", path, e)),
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a socket; move it away", path.display()),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(with_path("inspecting", path, e)),
    }
}

fn with_path(action: &str, path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{action} {}: {e}", path.display()))
}
