//! The one builder every integration test uses: a temporary root, files in it, the real
//! `razar` binary run against it, and readers for what it wrote.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Environment variables razar reads that must not leak in from the developer's shell.
const SCRUBBED: &[&str] = &[
    "RAZAR_ROOT",
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "CROWN_WS_URL",
    "CROWN_TOKEN",
    "RAZAR_CROWN_CA",
    "CROWN_IDENTITY_FINGERPRINT",
    "RAZAR_ALERT_WEBHOOK",
    "RAZAR_METRICS_PORT",
    "RAZAR_LOG",
];

pub(crate) struct Razar {
    dir: tempfile::TempDir,
    /// The root: the temporary directory itself, or a directory below it.
    root: PathBuf,
    env: Vec<(String, String)>,
}

/// Output of a finished run, with the streams decoded.
pub(crate) struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(out: Output) -> Self {
        use std::os::unix::process::ExitStatusExt;
        let code = out.status.code().unwrap_or_else(|| 128 + out.status.signal().unwrap_or(0));
        Run {
            code,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    #[track_caller]
    pub(crate) fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "exit code\n--- stdout\n{}\n--- stderr\n{}", self.stdout, self.stderr);
        self
    }
}

impl Default for Razar {
    fn default() -> Self {
        Self::new()
    }
}

impl Razar {
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().to_path_buf();
        Razar { dir, root, env: vec![("RAZAR_METRICS_PORT".into(), "0".into())] }
    }

    /// A root whose absolute path is at least `len` characters long (nested directories in
    /// the temporary directory).
    pub(crate) fn with_root_len(len: usize) -> Self {
        let mut r = Self::new();
        let mut root = r.dir.path().to_path_buf();
        while root.as_os_str().len() < len {
            root.push("long-root-directory");
        }
        std::fs::create_dir_all(&root).expect("long root");
        r.root = root;
        r
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.root().join(rel)
    }

    pub(crate) fn env(&mut self, key: &str, value: &str) -> &mut Self {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.into(), value.into()));
        self
    }

    /// Writes `contents` to `rel` under the root, creating directories.
    pub(crate) fn write(&self, rel: &str, contents: &str) -> &Self {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, contents).unwrap();
        self
    }

    /// Writes `config/boot_config.json`.
    pub(crate) fn config(&self, json: Value) -> &Self {
        self.write("config/boot_config.json", &serde_json::to_string_pretty(&json).unwrap())
    }

    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_razar"));
        for k in SCRUBBED {
            cmd.env_remove(k);
        }
        cmd.arg("--root").arg(self.root()).args(args).current_dir(self.root());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null());
        cmd
    }

    /// Runs razar to completion (bounded: a hung razar fails the test after 120 s).
    pub(crate) fn run(&self, args: &[&str]) -> Run {
        let mut child = self.spawn(args);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if child.try_wait().unwrap().is_some() {
                return Run::from(child.wait_with_output().unwrap());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let run = Run::from(child.wait_with_output().unwrap());
                panic!("razar {args:?} did not finish in 120 s\n--- stderr\n{}", run.stderr);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts razar with piped stdout/stderr.
    pub(crate) fn spawn(&self, args: &[&str]) -> Child {
        self.command(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn razar")
    }

    pub(crate) fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
    }

    pub(crate) fn json(&self, rel: &str) -> Value {
        serde_json::from_str(&self.read(rel)).unwrap_or_else(|e| panic!("parsing {rel}: {e}"))
    }

    /// Every parseable line of a JSONL file (missing file: none).
    pub(crate) fn jsonl(&self, rel: &str) -> Vec<Value> {
        std::fs::read_to_string(self.path(rel))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The state file's `phase`, once the file exists.
    pub(crate) fn phase(&self) -> Option<String> {
        let text = std::fs::read_to_string(self.path("logs/razar_state.json")).ok()?;
        let v: Value = serde_json::from_str(&text).ok()?;
        v["phase"].as_str().map(str::to_owned)
    }

    /// The state file's entry for `component`.
    pub(crate) fn component_state(&self, component: &str) -> Value {
        let state = self.json("logs/razar_state.json");
        state["components"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["id"] == component).cloned())
            .unwrap_or_else(|| panic!("{component} not in state: {state:#}"))
    }

    /// Every file under `rel` with its contents, to prove a failed command changed nothing.
    pub(crate) fn snapshot(&self, rel: &str) -> Vec<(PathBuf, Vec<u8>)> {
        fn walk(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
            let Ok(entries) = std::fs::read_dir(dir) else { return };
            for e in entries.flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, out);
                } else {
                    out.push((p.clone(), std::fs::read(&p).unwrap_or_default()));
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.path(rel), &mut out);
        out.sort();
        out
    }
}

/// Waits (bounded) until `check` returns `Some`, re-checking every 10 ms: for events that
/// show up in files or the process table, which offer nothing to block on.
#[track_caller]
pub(crate) fn wait_until<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// True while any process is in process group `pgid`.
pub(crate) fn group_alive(pgid: i32) -> bool {
    // kill(-pgid, 0) succeeds while the group has a member.
    unsafe { libc_kill(-pgid, 0) == 0 }
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}
