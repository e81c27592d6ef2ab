//! Python layers (DESIGN §10): one virtualenv per `razar_env.yaml` layer that a component
//! uses, at `.razar_venv/<layer>`, with the layer's requirements installed by pip.
//!
//! Invariants: the stamp `.razar_venv/<layer>/.razar-stamp` holds the SHA-256 of the
//! requirement list and is written (atomically) only after a successful install; it is removed
//! before any install starts, so an interrupted or failed install is redone next time. A layer
//! whose stamp matches and whose interpreter exists is left alone. Every command runs in its
//! own process group with stdin closed, its stdout and stderr captured through one pipe (so
//! pip's lines keep their order) and a timeout; the group is killed on timeout, and anything
//! left in it once the command has exited is killed too. Requirements are never pip options:
//! a `-`-prefixed requirement is refused here as well as in config validation.
//!
//! Removing a requirement does not uninstall it from an existing venv; deleting
//! `.razar_venv/<layer>` rebuilds the layer from scratch.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::io;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use crate::config::ComponentName;
use crate::fsutil;
use crate::paths::Paths;

/// The stamp file inside each venv.
pub const STAMP_FILE: &str = ".razar-stamp";
/// Default limit for one `venv` or `pip install` command.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
/// How much of a failed command's output an error keeps (its end, where pip says why).
pub const OUTPUT_TAIL: usize = 4096;

/// How layers are built.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The interpreter that creates the venvs.
    pub python: PathBuf,
    /// Limit for each command.
    pub timeout: Duration,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions { python: PathBuf::from("python3"), timeout: DEFAULT_TIMEOUT }
    }
}

/// A ready layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerEnv {
    pub layer: String,
    /// `.razar_venv/<layer>`, absolute when the root is.
    pub venv: PathBuf,
    /// `<venv>/bin`.
    pub bin: PathBuf,
    /// True when the stamp matched and nothing was run.
    pub skipped: bool,
}

/// Which step of a layer build failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Checking the layer name and requirements.
    Check,
    /// `python3 -m venv`.
    Venv,
    /// `pip install`.
    Install,
    /// Writing or removing the stamp.
    Stamp,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            Step::Check => "checking the layer",
            Step::Venv => "creating the venv",
            Step::Install => "pip install",
            Step::Stamp => "updating the stamp",
        })
    }
}

/// A layer that could not be built. Its components cannot start; the error shown for them
/// carries `output`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerError {
    pub layer: String,
    pub step: Step,
    /// Why the step failed: exit status, timeout, spawn or I/O error.
    pub reason: String,
    /// The last [`OUTPUT_TAIL`] bytes of the command's combined stdout and stderr.
    pub output: String,
}

impl fmt::Display for LayerError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "python layer `{}`: {} failed: {}", self.layer, self.step, self.reason)?;
        let output = self.output.trim_end();
        if !output.is_empty() {
            write!(f, "\n{output}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LayerError {}

/// SHA-256 (hex) of the requirement list, one requirement per line, in order.
pub fn requirements_digest(requirements: &[String]) -> String {
    let mut hasher = Sha256::new();
    for r in requirements {
        hasher.update(r.as_bytes());
        hasher.update(b"\n");
    }
    hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether a layer can be used as it is: its interpreter exists and its stamp (the file's
/// contents, if any) records `digest`.
pub fn is_up_to_date(stamp: Option<&str>, digest: &str, python_exists: bool) -> bool {
    python_exists && stamp.map(str::trim) == Some(digest)
}

/// Puts the layer's `bin` first on `PATH` (before `base_path`, the PATH the component would
/// otherwise get) and sets `VIRTUAL_ENV`, as `bin/activate` does.
pub fn apply_env(env: &mut BTreeMap<String, String>, layer: &LayerEnv, base_path: &str) {
    let bin = layer.bin.to_string_lossy();
    let path = if base_path.is_empty() { bin.into_owned() } else { format!("{bin}:{base_path}") };
    env.insert("PATH".into(), path);
    env.insert("VIRTUAL_ENV".into(), layer.venv.to_string_lossy().into_owned());
}

/// Builds every layer, one after another, with the default options.
pub async fn build_all(
    paths: &Paths,
    layers: &BTreeMap<String, Vec<String>>,
) -> BTreeMap<String, Result<LayerEnv, LayerError>> {
    build_all_with(paths, layers, &BuildOptions::default()).await
}

/// Builds every layer, one after another (pip runs are heavy; in parallel they would only
/// compete for the network and the package cache).
pub async fn build_all_with(
    paths: &Paths,
    layers: &BTreeMap<String, Vec<String>>,
    options: &BuildOptions,
) -> BTreeMap<String, Result<LayerEnv, LayerError>> {
    let mut out = BTreeMap::new();
    for (layer, requirements) in layers {
        let result = build(paths, layer, requirements, options).await;
        if let Err(e) = &result {
            tracing::error!(layer = %layer, step = %e.step, reason = %e.reason, "python layer failed");
        }
        out.insert(layer.clone(), result);
    }
    out
}

/// Builds (or confirms) one layer.
pub async fn build(
    paths: &Paths,
    layer: &str,
    requirements: &[String],
    options: &BuildOptions,
) -> Result<LayerEnv, LayerError> {
    let fail = |step, reason: String, output: String| LayerError { layer: layer.to_owned(), step, reason, output };
    // Layer names come validated from the config; checked again because they name a directory.
    if let Err(e) = ComponentName::new(layer) {
        return Err(fail(Step::Check, e, String::new()));
    }
    if let Some(bad) = requirements.iter().find(|r| r.trim().is_empty() || r.trim_start().starts_with('-')) {
        return Err(fail(
            Step::Check,
            format!("{bad:?} is not a requirement (options are not allowed)"),
            String::new(),
        ));
    }
    let venv = paths.venvs().join(layer);
    let bin = venv.join("bin");
    let python = bin.join("python");
    let stamp = venv.join(STAMP_FILE);
    let digest = requirements_digest(requirements);
    let ready = LayerEnv { layer: layer.to_owned(), venv: venv.clone(), bin, skipped: false };

    let recorded = std::fs::read_to_string(&stamp).ok();
    if is_up_to_date(recorded.as_deref(), &digest, python.exists()) {
        tracing::info!(layer, venv = %venv.display(), "python layer up to date; install skipped");
        return Ok(LayerEnv { skipped: true, ..ready });
    }
    tracing::info!(layer, venv = %venv.display(), requirements = requirements.len(), "building python layer");
    match std::fs::remove_file(&stamp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(fail(Step::Stamp, format!("removing {}: {e}", stamp.display()), String::new())),
    }
    if !python.exists() {
        fsutil::ensure_dir(&paths.venvs()).map_err(|e| fail(Step::Venv, e.to_string(), String::new()))?;
        let argv = [options.python.clone().into_os_string(), "-m".into(), "venv".into(), venv.clone().into_os_string()];
        run(&argv, options.timeout).await.map_err(|f| fail(Step::Venv, f.reason, f.output))?;
    }
    if !requirements.is_empty() {
        let mut argv: Vec<OsString> = vec![
            python.into_os_string(),
            "-m".into(),
            "pip".into(),
            "install".into(),
            "--disable-pip-version-check".into(),
            "-q".into(),
        ];
        argv.extend(requirements.iter().map(OsString::from));
        run(&argv, options.timeout).await.map_err(|f| fail(Step::Install, f.reason, f.output))?;
    }
    fsutil::atomic_write(&stamp, format!("{digest}\n").as_bytes(), 0o644)
        .map_err(|e| fail(Step::Stamp, e.to_string(), String::new()))?;
    tracing::info!(layer, "python layer ready");
    Ok(ready)
}

/// Why a command failed, with the end of its output.
struct Failure {
    reason: String,
    output: String,
}

/// Runs `argv` in its own process group and returns its output, or why it failed.
async fn run(argv: &[OsString], timeout: Duration) -> Result<String, Failure> {
    let shown = argv.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" ");
    let io_failure =
        |what: &str, e: io::Error| Failure { reason: format!("{what} `{shown}`: {e}"), output: String::new() };
    let (reader, writer) = io::pipe().map_err(|e| io_failure("creating a pipe for", e))?;
    let writer2 = writer.try_clone().map_err(|e| io_failure("creating a pipe for", e))?;
    let mut cmd = crate::supervise::spawn::command(&argv[0]);
    cmd.args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(writer2)
        .env("PIP_NO_INPUT", "1")
        .process_group(0)
        .kill_on_drop(true);
    let spawned = crate::supervise::reaper::spawn(&mut cmd);
    // The command holds our copies of the pipe's write end; reading only ends once they close.
    drop(cmd);
    let mut child = spawned.map_err(|e| io_failure("starting", e))?;
    let pgid = child.id().and_then(|id| i32::try_from(id).ok());
    // If this future is dropped midway (the boot is stopping), the whole group goes with it.
    let mut guard = GroupGuard(pgid);
    let mut pipe = tokio::net::unix::pipe::Receiver::from_owned_fd(OwnedFd::from(reader))
        .map_err(|e| io_failure("reading the output of", e))?;
    let mut tail = Tail::default();

    let finished = tokio::time::timeout(timeout, async {
        let wait = async {
            let status = crate::supervise::reaper::wait(&mut child).await;
            // A member left behind would hold the pipe open. The group id cannot be reused
            // while any member lives, so this signals only our stragglers.
            kill_group(pgid);
            status
        };
        let (status, _) = tokio::join!(wait, tail.read_from(&mut pipe));
        status
    })
    .await;
    let result = match finished {
        Ok(Ok(status)) if status.success() => Ok(tail.into_string()),
        Ok(Ok(status)) => {
            Err(Failure { reason: format!("`{shown}` {}", describe(status)), output: tail.into_string() })
        }
        Ok(Err(e)) => Err(Failure { reason: format!("waiting for `{shown}`: {e}"), output: tail.into_string() }),
        Err(_) => {
            // Not yet reaped, so the group id is still ours.
            kill_group(pgid);
            let _ = crate::supervise::reaper::wait(&mut child).await;
            Err(Failure { reason: format!("`{shown}` timed out after {timeout:?}"), output: tail.into_string() })
        }
    };
    guard.0 = None;
    result
}

/// Kills a process group when dropped while still holding its id.
struct GroupGuard(Option<i32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        kill_group(self.0.take());
    }
}

fn kill_group(pgid: Option<i32>) {
    if let Some(pgid) = pgid {
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid), nix::sys::signal::Signal::SIGKILL);
    }
}

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(sig)) => format!("was killed by signal {sig}"),
        (None, None) => format!("ended with {status}"),
    }
}

/// The last [`OUTPUT_TAIL`] bytes of a stream, in bounded memory.
#[derive(Default)]
struct Tail {
    buf: Vec<u8>,
    truncated: bool,
}

impl Tail {
    async fn read_from(&mut self, pipe: &mut tokio::net::unix::pipe::Receiver) {
        let mut chunk = [0u8; 8192];
        loop {
            match pipe.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => self.push(&chunk[..n]),
            }
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() > 4 * OUTPUT_TAIL {
            self.buf.drain(..self.buf.len() - OUTPUT_TAIL);
            self.truncated = true;
        }
    }

    fn into_string(self) -> String {
        let start = self.buf.len().saturating_sub(OUTPUT_TAIL);
        let mut tail = &self.buf[start..];
        // Start on a character boundary.
        while let [b, rest @ ..] = tail
            && (start > 0 || self.truncated)
            && b & 0b1100_0000 == 0b1000_0000
        {
            tail = rest;
        }
        let text = String::from_utf8_lossy(tail);
        if start > 0 || self.truncated { format!("…{text}") } else { text.into_owned() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_sha256_of_one_requirement_per_line() {
        // printf 'six\nrequests==2.0\n' | sha256sum
        let got = requirements_digest(&["six".into(), "requests==2.0".into()]);
        let mut h = Sha256::new();
        h.update(b"six\nrequests==2.0\n");
        let want: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(got, want);
        assert_eq!(got.len(), 64);
        assert_ne!(got, requirements_digest(&["requests==2.0".into(), "six".into()]), "order matters");
        assert_ne!(requirements_digest(&["ab".into()]), requirements_digest(&["a".into(), "b".into()]));
    }

    #[test]
    fn stamp_decision() {
        let d = requirements_digest(&["six".into()]);
        let newline = format!("{d}\n");
        for (stamp, python, want) in [
            (Some(d.as_str()), true, true),
            (Some(newline.as_str()), true, true),
            (Some(d.as_str()), false, false),
            (None, true, false),
            (Some("0000"), true, false),
            (Some(""), true, false),
        ] {
            assert_eq!(is_up_to_date(stamp, &d, python), want, "stamp {stamp:?}, python {python}");
        }
    }

    #[test]
    fn apply_env_puts_the_venv_first() {
        let layer = LayerEnv {
            layer: "ml".into(),
            venv: "/r/.razar_venv/ml".into(),
            bin: "/r/.razar_venv/ml/bin".into(),
            skipped: false,
        };
        let mut env = BTreeMap::from([("PATH".to_owned(), "/ignored".to_owned())]);
        apply_env(&mut env, &layer, "/usr/bin:/bin");
        assert_eq!(env["PATH"], "/r/.razar_venv/ml/bin:/usr/bin:/bin");
        assert_eq!(env["VIRTUAL_ENV"], "/r/.razar_venv/ml");
        apply_env(&mut env, &layer, "");
        assert_eq!(env["PATH"], "/r/.razar_venv/ml/bin");
    }

    #[test]
    fn tail_keeps_the_end_on_a_char_boundary() {
        let mut t = Tail::default();
        t.push("é".repeat(OUTPUT_TAIL).as_bytes());
        t.push(b"\nERROR: the end\n");
        let s = t.into_string();
        assert!(s.starts_with('…') && s.ends_with("ERROR: the end\n"), "{s}");
        assert!(!s.contains('\u{fffd}'), "no broken character");
        assert!(s.len() <= OUTPUT_TAIL + '…'.len_utf8());
        let mut short = Tail::default();
        short.push(b"ok\n");
        assert_eq!(short.into_string(), "ok\n");
    }

    #[tokio::test]
    async fn bad_names_and_option_requirements_are_refused_before_running_anything() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(dir.path());
        let opts = BuildOptions::default();
        let e = build(&paths, "../x", &[], &opts).await.unwrap_err();
        assert_eq!(e.step, Step::Check);
        let e = build(&paths, "ok", &["--index-url=http://evil".into()], &opts).await.unwrap_err();
        assert_eq!(e.step, Step::Check);
        assert!(!paths.venvs().exists());
    }

    #[tokio::test]
    async fn commands_are_killed_at_the_timeout_and_report_their_output() {
        let argv: Vec<OsString> =
            ["sh", "-c", "echo started; echo to-stderr >&2; sleep 30 & sleep 30"].iter().map(OsString::from).collect();
        let started = std::time::Instant::now();
        let Err(f) = run(&argv, Duration::from_millis(300)).await else { panic!("should time out") };
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(f.reason.contains("timed out"), "{}", f.reason);
        assert_eq!(f.output, "started\nto-stderr\n");

        let argv: Vec<OsString> = ["sh", "-c", "echo boom >&2; exit 3"].iter().map(OsString::from).collect();
        let Err(f) = run(&argv, Duration::from_secs(10)).await else { panic!("should fail") };
        assert!(f.reason.ends_with("exited with status 3"), "{}", f.reason);
        assert_eq!(f.output, "boom\n");

        // A straggler that keeps the pipe open does not hold up a finished command.
        let argv: Vec<OsString> = ["sh", "-c", "sleep 30 & echo done"].iter().map(OsString::from).collect();
        let started = std::time::Instant::now();
        assert_eq!(run(&argv, Duration::from_secs(10)).await.ok().as_deref(), Some("done\n"));
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn an_abandoned_command_takes_its_group_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let script = format!("sleep 30 & echo $! > {}; wait", pid_file.display());
        let argv: Vec<OsString> = ["sh".into(), "-c".into(), script.into()].into();
        let abandoned = tokio::time::timeout(Duration::from_millis(500), run(&argv, Duration::from_secs(60))).await;
        assert!(abandoned.is_err(), "the outer timeout drops the run");
        let pid = std::fs::read_to_string(&pid_file).unwrap().trim().to_owned();
        let gone = || match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            // A killed process may linger as a zombie until its new parent reaps it.
            Ok(stat) => stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')),
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !gone() {
            assert!(std::time::Instant::now() < deadline, "grandchild {pid} survived");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
