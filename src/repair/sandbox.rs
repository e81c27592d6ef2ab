//! The sandbox: a private copy of a component's `sources` under `.razar/sandbox/<patch_id>/`
//! (mode 0700) where a patch is applied and the component's `tests` run before anything in
//! the real tree changes.
//!
//! The copy mirrors paths relative to the root, so a test that runs in the sandbox's copy of
//! the component's working directory sees the same relative layout as the component itself.
//! Tests run in their own process group, with output to a file (read back bounded) and a
//! timeout after which the whole group is killed.

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use super::patch::{self, Change, FilePatch};
use crate::config::Command;

/// How much test output is kept (the end of it).
pub const MAX_OUTPUT_BYTES: u64 = 64 * 1024;

/// A patched file in the sandbox: its path relative to the root and its new bytes (`None`
/// when the patch deletes it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patched {
    pub rel: PathBuf,
    pub after: Option<Vec<u8>>,
}

/// Copies `sources` (absolute paths under `root`) into `dir`, keeping paths relative to root.
/// Symlinks are copied as what they point at only when that stays inside the sources; others
/// are skipped, so the sandbox never reaches outside.
pub fn copy_sources(root: &Path, sources: &[PathBuf], dir: &Path) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    for src in sources {
        let Ok(rel) = src.strip_prefix(root) else { continue };
        copy_tree(src, &dir.join(rel))?;
    }
    Ok(())
}

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    let meta = match fs::symlink_metadata(from) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if meta.is_dir() {
        fs::create_dir_all(to)?;
        for entry in fs::read_dir(from)? {
            let entry = entry?;
            copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
    } else if meta.is_file() {
        if let Some(parent) = to.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::copy(from, to)?;
    }
    // Symlinks, devices, fifos and sockets are not copied: tests see regular files only.
    Ok(())
}

/// Applies every file patch inside `dir` (paths already checked) and returns the new contents.
pub fn apply(dir: &Path, patches: &[FilePatch]) -> Result<Vec<Patched>, String> {
    let mut out = Vec::new();
    for p in patches {
        let target = dir.join(&p.path);
        let read = |path: &Path| -> Result<String, String> {
            fs::read_to_string(path).map_err(|e| format!("{}: cannot read: {e}", p.path.display()))
        };
        let base = match &p.change {
            Change::Create => {
                if target.exists() {
                    return Err(format!("{}: the patch creates a file that already exists", p.path.display()));
                }
                String::new()
            }
            // `diff -N` writes a new file as a change from an empty one: apply it to nothing.
            Change::Modify if !target.exists() => String::new(),
            Change::Modify | Change::Delete => read(&target)?,
            Change::Rename { from } => read(&dir.join(from))?,
        };
        let new = patch::apply(p, &base)?;
        if let Change::Rename { from } = &p.change {
            fs::remove_file(dir.join(from)).map_err(|e| format!("{}: {e}", from.display()))?;
            out.push(Patched { rel: from.clone(), after: None });
        }
        if p.change == Change::Delete {
            fs::remove_file(&target).map_err(|e| format!("{}: {e}", p.path.display()))?;
            out.push(Patched { rel: p.path.clone(), after: None });
            continue;
        }
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", p.path.display()))?;
        }
        let mode = fs::metadata(&target).map(|m| m.permissions()).ok();
        fs::write(&target, new.as_bytes()).map_err(|e| format!("{}: {e}", p.path.display()))?;
        if let Some(mode) = mode {
            let _ = fs::set_permissions(&target, mode);
        }
        out.retain(|q: &Patched| q.rel != p.path);
        out.push(Patched { rel: p.path.clone(), after: Some(new.into_bytes()) });
    }
    Ok(out)
}

/// How the tests ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestVerdict {
    Passed,
    Failed { output: String },
}

/// Runs each of `tests` in `cwd` (the sandbox's copy of the working directory), one after the
/// other, each with `timeout`; stops at the first failure. Output goes to `log` and its last
/// [`MAX_OUTPUT_BYTES`] come back with a failure.
pub fn run_tests(
    tests: &[Command],
    cwd: &Path,
    env: &[(String, String)],
    timeout: Duration,
    log: &Path,
) -> TestVerdict {
    for test in tests {
        match run_one(test, cwd, env, timeout, log) {
            Ok(None) => {}
            Ok(Some(why)) => return TestVerdict::Failed { output: format!("{why}\n{}", tail(log)) },
            Err(e) => return TestVerdict::Failed { output: format!("`{test}` could not run: {e}") },
        }
    }
    TestVerdict::Passed
}

/// `Ok(None)` when the test passed, `Ok(Some(reason))` when it failed or timed out. Output
/// (stdout and stderr interleaved) is read through a pipe keeping only its last
/// [`MAX_OUTPUT_BYTES`], written to `log` at the end: a test that floods its output cannot
/// fill the disk.
fn run_one(
    test: &Command,
    cwd: &Path,
    env: &[(String, String)],
    timeout: Duration,
    log: &Path,
) -> std::io::Result<Option<String>> {
    let argv = test.argv();
    let (reader, writer) = std::io::pipe()?;
    let mut cmd = crate::supervise::spawn::blocking_command(&argv[0]);
    cmd.args(&argv[1..])
        .current_dir(cwd)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(writer.try_clone()?)
        .stderr(writer)
        .process_group(0);
    // Recorded as razar's own child, so a boot's orphan reaper never takes its exit status.
    let mut child = crate::supervise::reaper::spawn_blocking(&mut cmd)?;
    // The parent's copies of the write end are gone with `cmd`: EOF comes when the group is.
    drop(cmd);
    let drain = std::thread::spawn(move || keep_tail(reader));
    let pid = child.id();
    let pgid = nix::unistd::Pid::from_raw(pid as i32);
    let (tx, rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let status = child.wait();
        crate::supervise::reaper::forget(pid);
        let _ = tx.send(());
        status
    });
    let timed_out = rx.recv_timeout(timeout).is_err();
    // Kill the whole group either way: a test's background helpers must not outlive it (and
    // must not hold the pipe open).
    let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
    let status = waiter.join().map_err(|_| std::io::Error::other("test waiter panicked"))??;
    let output = drain.join().map_err(|_| std::io::Error::other("test output reader panicked"))?;
    fs::write(log, &output)?;
    if timed_out {
        return Ok(Some(format!("`{test}` timed out after {}s and was killed", timeout.as_secs_f64())));
    }
    Ok((!status.success()).then(|| format!("`{test}` failed ({status})")))
}

/// Reads `from` to its end, keeping the last [`MAX_OUTPUT_BYTES`].
fn keep_tail(mut from: impl Read) -> Vec<u8> {
    let cap = MAX_OUTPUT_BYTES as usize;
    let mut kept: Vec<u8> = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                kept.extend_from_slice(&buf[..n]);
                if kept.len() > 2 * cap {
                    kept.drain(..kept.len() - cap);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    if kept.len() > cap {
        kept.drain(..kept.len() - cap);
    }
    kept
}

/// The last [`MAX_OUTPUT_BYTES`] of `log`, lossily decoded.
pub fn tail(log: &Path) -> String {
    let Ok(mut f) = fs::File::open(log) else { return String::new() };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(MAX_OUTPUT_BYTES);
    let _ = f.seek(SeekFrom::Start(start));
    let mut buf = Vec::new();
    let _ = f.take(MAX_OUTPUT_BYTES).read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_sources_applies_and_runs_tests() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        fs::create_dir_all(root.join("svc/sub")).unwrap();
        fs::write(root.join("svc/a.txt"), "one\ntwo\n").unwrap();
        fs::write(root.join("svc/sub/b.txt"), "b\n").unwrap();
        fs::write(root.join("secret.txt"), "s\n").unwrap();
        let sb = root.join(".razar/sandbox/p1");
        copy_sources(root, &[root.join("svc")], &sb).unwrap();
        assert!(sb.join("svc/sub/b.txt").exists());
        assert!(!sb.join("secret.txt").exists());
        let patches = patch::parse("--- a/svc/a.txt\n+++ b/svc/a.txt\n@@ -1,2 +1,2 @@\n one\n-two\n+TWO\n").unwrap();
        let out = apply(&sb, &patches).unwrap();
        assert_eq!(out, vec![Patched { rel: "svc/a.txt".into(), after: Some(b"one\nTWO\n".to_vec()) }]);
        assert_eq!(fs::read_to_string(root.join("svc/a.txt")).unwrap(), "one\ntwo\n", "the real file is untouched");
        let log = root.join(".razar/sandbox/p1.log");
        let pass = Command::Shell("grep -q TWO a.txt".into());
        assert_eq!(run_tests(&[pass], &sb.join("svc"), &[], Duration::from_secs(10), &log), TestVerdict::Passed);
        let fail = Command::Shell("echo checking; grep -q THREE a.txt".into());
        match run_tests(&[fail], &sb.join("svc"), &[], Duration::from_secs(10), &log) {
            TestVerdict::Failed { output } => assert!(output.contains("checking"), "{output}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_flood_of_output_keeps_only_its_end() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("t.log");
        let test = Command::Shell("yes flood | head -c 3000000; echo THE-END; exit 1".into());
        match run_tests(&[test], d.path(), &[], Duration::from_secs(30), &log) {
            TestVerdict::Failed { output } => {
                assert!(output.trim_end().ends_with("THE-END"), "{}", &output[output.len() - 100..]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(fs::metadata(&log).unwrap().len(), MAX_OUTPUT_BYTES);
    }

    #[test]
    fn a_test_past_its_timeout_is_killed_with_its_group() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("t.log");
        let pidfile = d.path().join("bg.pid");
        let test = Command::Shell(format!("sleep 30 & echo $! > {}; wait", pidfile.display()));
        let started = std::time::Instant::now();
        match run_tests(&[test], d.path(), &[], Duration::from_millis(300), &log) {
            TestVerdict::Failed { output } => assert!(output.contains("timed out"), "{output}"),
            other => panic!("{other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(10));
        let pid: i32 = fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
        // The background sleep was in the test's group: it is gone (or a zombie reaped by init).
        let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
            && !fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default().contains(") Z");
        assert!(!alive, "background process {pid} survived");
    }
}
