//! The control socket's client: one request to the running boot, one response back.
//!
//! A missing socket, or one nobody listens on (left by a boot that died), means no boot is
//! running: [`ClientError::NotRunning`], which callers treat as a normal outcome.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use super::protocol::{Request, Response};
use super::server::{PERMISSION_DENIED, PROTOCOL_VERSION};
use crate::paths::Paths;

/// Longest response line read (a status snapshot of a thousand components is well under this).
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No socket, or a stale one: no boot is running on this root.
    #[error("no razar boot is running on this root")]
    NotRunning,
    /// The socket is not ours to use: run as the boot's user or root.
    #[error("{0}")]
    PermissionDenied(String),
    /// The boot did not answer in time.
    #[error("the running boot did not answer within {0:?}")]
    Timeout(Duration),
    /// The other end does not speak the protocol (or closed without answering).
    #[error("control socket: {0}")]
    Protocol(String),
    /// Any other failure to reach the socket.
    #[error("control socket {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl ClientError {
    /// No boot to talk to, or not allowed to: a usage error. Anything else: internal.
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::NotRunning | ClientError::PermissionDenied(_) => crate::exit::CONFIG,
            ClientError::Timeout(_) | ClientError::Protocol(_) | ClientError::Io { .. } => crate::exit::INTERNAL,
        }
    }
}

/// Sends `req` to the boot running on `paths`' root and returns its response, all within
/// `timeout`. A response with `ok: false` is returned as is, except a refusal of our
/// credentials, which is [`ClientError::PermissionDenied`].
pub async fn request(paths: &Paths, req: &Request, timeout: Duration) -> Result<Response, ClientError> {
    let path = paths.control_socket();
    match tokio::time::timeout(timeout, exchange(&path, req)).await {
        Ok(result) => result,
        Err(_) => Err(ClientError::Timeout(timeout)),
    }
}

async fn exchange(path: &Path, req: &Request) -> Result<Response, ClientError> {
    // Held until connected: a long root's socket is reached through its directory descriptor.
    let short = super::sockpath::ShortPath::new(path).map_err(|e| connect_error(path, e))?;
    let mut stream = UnixStream::connect(short.path()).await.map_err(|e| connect_error(path, e))?;
    drop(short);
    let line = request_line(req)?;
    // A server that refuses us answers and closes without reading, so a failed write is only
    // an error when no response follows.
    let sent = async {
        stream.write_all(&line).await?;
        stream.shutdown().await
    }
    .await;
    let mut reply = Vec::new();
    let mut reader = BufReader::new((&mut stream).take(MAX_RESPONSE_BYTES as u64 + 1));
    let read = reader.read_until(b'\n', &mut reply).await;
    if reply.is_empty() {
        // A peer that closes with our request unread resets the connection (ECONNRESET).
        return Err(match (sent, read) {
            (_, Err(e)) if e.kind() == io::ErrorKind::ConnectionReset => closed_without_answer(),
            (Err(e), _) | (Ok(()), Err(e)) => ClientError::Io { path: path.to_path_buf(), source: e },
            (Ok(()), Ok(_)) => closed_without_answer(),
        });
    }
    if reply.last() != Some(&b'\n') && reply.len() > MAX_RESPONSE_BYTES {
        return Err(ClientError::Protocol(format!("response larger than {MAX_RESPONSE_BYTES} bytes")));
    }
    let response: Response = serde_json::from_slice(&reply)
        .map_err(|e| ClientError::Protocol(format!("unreadable response from the boot: {e}")))?;
    match &response.message {
        Some(message) if !response.ok && message.starts_with(PERMISSION_DENIED) => {
            Err(ClientError::PermissionDenied(format!("the running boot refused this request: {message}")))
        }
        _ => Ok(response),
    }
}

fn closed_without_answer() -> ClientError {
    ClientError::Protocol("the boot closed the connection without answering".into())
}

/// The request as one JSON line, with the protocol version.
fn request_line(req: &Request) -> Result<Vec<u8>, ClientError> {
    let mut value = serde_json::to_value(req).map_err(|e| ClientError::Protocol(format!("encoding: {e}")))?;
    if let Value::Object(object) = &mut value {
        object.insert("v".into(), PROTOCOL_VERSION.into());
    }
    let mut line = value.to_string().into_bytes();
    line.push(b'\n');
    Ok(line)
}

fn connect_error(path: &Path, e: io::Error) -> ClientError {
    match e.kind() {
        // ECONNREFUSED: the socket file outlived its boot.
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused | io::ErrorKind::NotADirectory => {
            ClientError::NotRunning
        }
        io::ErrorKind::PermissionDenied => ClientError::PermissionDenied(format!(
            "cannot connect to {}: {e}; run as the user that runs `razar boot`, or root",
            path.display()
        )),
        _ => ClientError::Io { path: path.to_path_buf(), source: e },
    }
}
