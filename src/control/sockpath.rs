//! A path to the control socket short enough for `sockaddr_un`, whatever the root's length.
//!
//! `bind(2)` and `connect(2)` take a socket path of at most 107 bytes (`sun_path` is 108 with
//! its NUL), so `<root>/.razar/control.sock` fails for a root path of about 90 characters or
//! more. For such a path razar opens the socket's directory with `O_PATH` and names the socket
//! through `/proc/self/fd/<fd>/control.sock`: the kernel resolves the descriptor's magic link
//! to the very directory opened, so the socket is created (or reached) exactly where its long
//! path says, with no extra file, link or directory to clean up. The descriptor must stay open
//! until `bind`/`connect` returns, hence [`ShortPath`] owns it.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Longest path `sockaddr_un` holds, without its terminating NUL.
pub const MAX_SOCKET_PATH: usize = 107;

/// A path that `bind`/`connect` accept for a socket at a possibly longer path.
#[derive(Debug)]
pub struct ShortPath {
    path: PathBuf,
    _dir: Option<OwnedFd>,
}

impl ShortPath {
    /// `path` itself when it fits; else a `/proc/self/fd` path through its opened directory.
    pub fn new(path: &Path) -> io::Result<ShortPath> {
        if path.as_os_str().len() <= MAX_SOCKET_PATH {
            return Ok(ShortPath { path: path.to_path_buf(), _dir: None });
        }
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "socket path has no directory"));
        };
        let dir = open_path_dir(dir)?;
        let mut short = OsStr::new(&format!("/proc/self/fd/{}/", dir.as_raw_fd())).to_os_string();
        short.push(name);
        if short.len() > MAX_SOCKET_PATH {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "socket file name too long"));
        }
        Ok(ShortPath { path: PathBuf::from(short), _dir: Some(dir) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Opens `dir` as an `O_PATH` directory descriptor (no read permission needed, close-on-exec).
fn open_path_dir(dir: &Path) -> io::Result<OwnedFd> {
    use std::os::fd::FromRawFd;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by open and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_under_a_long_directory_binds_and_connects() {
        let base = tempfile::tempdir().unwrap();
        let mut dir = base.path().to_path_buf();
        while dir.as_os_str().len() < 200 {
            dir.push("a-rather-long-directory-name");
        }
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("control.sock");
        assert!(std::os::unix::net::UnixListener::bind(&sock).is_err(), "the plain path is too long to bind");
        let short = ShortPath::new(&sock).unwrap();
        assert!(short.path().as_os_str().len() <= MAX_SOCKET_PATH);
        let listener = std::os::unix::net::UnixListener::bind(short.path()).unwrap();
        drop(short);
        assert!(sock.exists(), "the socket lives at its long path");
        let client = ShortPath::new(&sock).unwrap();
        let _stream = std::os::unix::net::UnixStream::connect(client.path()).unwrap();
        assert!(listener.accept().is_ok());
    }

    #[test]
    fn a_short_path_is_used_as_is() {
        let p = Path::new("/tmp/x/control.sock");
        assert_eq!(ShortPath::new(p).unwrap().path(), p);
    }
}
