//! `opencode` (DESIGN §9.2): the local `opencode` CLI, run as `opencode run --format json
//! "<prompt>"` (plus `--model M` when the roster gives one) inside a sandbox copy of the
//! component's `sources` under `.razar/sandbox/`. The change set is the sandbox's diff against
//! the originals ([`crate::ladder::treediff`]), not anything the CLI prints; its JSON events
//! only give the summary (the last text it wrote).
//!
//! Bounds: the agent's `timeout` covers the whole run, after which the CLI's process group is
//! killed; stdout and stderr are read to their end but only their last bytes are kept; the
//! prompt is capped below the kernel's limit for one argument. The child's environment has no
//! secret razar knows of ([`crate::supervise::secrets::scrub`]). The sandbox is removed when
//! the round ends, whatever happened; the real sources are never written.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::{AgentError, Suggestion};
use crate::ladder::round::Failure;
use crate::ladder::treediff;

/// The program run, looked up on `PATH`.
pub const PROGRAM: &str = "opencode";
/// Bytes of the prompt argument (Linux refuses one argument over 128 KiB).
pub const PROMPT_CAP: usize = 96 * 1024;
/// Last bytes of stdout kept (the JSON events; only the summary is read from them).
const STDOUT_KEEP: usize = 1024 * 1024;
/// Last bytes of stderr kept, for the error message.
const STDERR_KEEP: usize = 8 * 1024;
/// How long the output readers may take once the process group is gone.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// The instructions and the failure context, without the sources' contents (the CLI reads the
/// files in its working directory), capped at [`PROMPT_CAP`] bytes.
pub fn prompt(context: &Value) -> String {
    let mut ctx = context.clone();
    if let Some(Value::Array(files)) = ctx.get_mut("sources") {
        for f in files.iter_mut().filter_map(Value::as_object_mut) {
            f.remove("content");
            f.remove("truncated");
        }
    }
    let mut text = format!(
        "You repair a failing service component managed by razar. The current directory holds a copy \
         of its source files, at the paths listed in `sources` below. Edit those files to fix the \
         failure and touch nothing else. Then say in one or two sentences what the cause was and \
         what you changed.\n\nFailure context:\n{ctx}\n"
    );
    if text.len() > PROMPT_CAP {
        let mut cut = PROMPT_CAP;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text
}

/// The summary in the CLI's JSON events: the last text part it wrote (`part.text`, else
/// `text`), at most 2000 characters.
pub fn summary(stdout: &str) -> Option<String> {
    stdout.lines().rev().find_map(|line| {
        let event = serde_json::from_str::<Value>(line.trim()).ok()?;
        let text = event.pointer("/part/text").or_else(|| event.get("text"))?.as_str()?.trim();
        (!text.is_empty()).then(|| text.chars().take(2000).collect::<String>())
    })
}

/// Removes the sandbox when the round ends.
struct Sandbox(PathBuf);

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One round: copy `sources` (absolute paths under `root`) into a sandbox, run the CLI there,
/// and diff the sandbox against the originals.
pub async fn run(
    root: &Path,
    sources: &[PathBuf],
    component: &str,
    context: &Value,
    model: Option<&str>,
    timeout: Duration,
) -> Result<Suggestion, Failure> {
    let internal = |what: &str, e: &dyn std::fmt::Display| Failure::Transport(format!("{what}: {e}"));
    let parent = root.join(".razar/sandbox");
    crate::fsutil::ensure_private_dir(&parent).map_err(|e| internal("cannot prepare the sandbox", &e))?;
    let id = format!("opencode-{component}-{}-{}", crate::clock::epoch_millis(), std::process::id());
    let sandbox = Sandbox(parent.join(id));
    crate::repair::sandbox::copy_sources(root, sources, &sandbox.0)
        .map_err(|e| internal("cannot copy the sources into the sandbox", &e))?;

    let mut cmd = crate::supervise::spawn::command(PROGRAM);
    cmd.arg("run");
    if let Some(m) = model {
        cmd.arg("--model").arg(m);
    }
    cmd.args(["--format", "json"])
        .arg(prompt(context))
        .current_dir(&sandbox.0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match crate::supervise::reaper::spawn(&mut cmd) {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Failure::Transport(format!("`{PROGRAM}` not found on PATH")));
        }
        Err(e) => return Err(internal(&format!("cannot run `{PROGRAM}`"), &e)),
    };
    let pgid = child.id().map(|p| nix::unistd::Pid::from_raw(p as i32));
    let stdout = tokio::spawn(keep_tail(child.stdout.take(), STDOUT_KEEP));
    let stderr = tokio::spawn(keep_tail(child.stderr.take(), STDERR_KEEP));
    let waited = tokio::time::timeout(timeout, crate::supervise::reaper::wait(&mut child)).await;
    // The whole group goes either way: helpers the CLI left behind must not outlive the round
    // (nor keep its pipes open).
    if let Some(pgid) = pgid {
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
    }
    let status = match waited {
        Err(_) => {
            let _ = crate::supervise::reaper::wait(&mut child).await;
            return Err(Failure::Transport(format!(
                "`{PROGRAM} run` did not finish within {} s and was killed",
                timeout.as_secs_f64()
            )));
        }
        Ok(Err(e)) => return Err(internal(&format!("waiting for `{PROGRAM} run`"), &e)),
        Ok(Ok(status)) => status,
    };
    let drained = |h: tokio::task::JoinHandle<Vec<u8>>| async move {
        tokio::time::timeout(DRAIN_GRACE, h).await.ok().and_then(Result::ok).unwrap_or_default()
    };
    let (out, err) = (drained(stdout).await, drained(stderr).await);
    if !status.success() {
        let how = match (status.code(), status.signal()) {
            (Some(code), _) => format!("exited with {code}"),
            (None, Some(sig)) => format!("was killed by signal {sig}"),
            _ => "failed".into(),
        };
        let err = String::from_utf8_lossy(&err);
        let last = err.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or_default().trim();
        let last: String = last.chars().take(300).collect();
        let detail = if last.is_empty() { String::new() } else { format!(": {last}") };
        return Err(Failure::Transport(format!("`{PROGRAM} run` {how}{detail}")));
    }

    let changes = treediff::diff(root, sources, &sandbox.0);
    let mut summary = summary(&String::from_utf8_lossy(&out));
    if !changes.skipped.is_empty() {
        let note = format!("left out of the diff (binary or over 4 MiB): {}", changes.skipped.join(", "));
        summary = Some(summary.map_or(note.clone(), |s| format!("{s} ({note})")));
    }
    if changes.patch.is_empty() {
        let why = match summary {
            Some(s) => format!("opencode changed no file under the component's `sources` ({s})"),
            None => "opencode changed no file under the component's `sources`".into(),
        };
        return Err(Failure::Agent(AgentError::NoPatch(why)));
    }
    Ok(Suggestion { patch: changes.patch, summary, tests: Vec::new() })
}

/// Reads `from` to its end, keeping its last `keep` bytes.
async fn keep_tail(from: Option<impl AsyncRead + Unpin>, keep: usize) -> Vec<u8> {
    let Some(mut from) = from else { return Vec::new() };
    let mut kept = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                kept.extend_from_slice(&buf[..n]);
                if kept.len() > 2 * keep {
                    kept.drain(..kept.len() - keep);
                }
            }
        }
    }
    if kept.len() > keep {
        kept.drain(..kept.len() - keep);
    }
    kept
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_prompt_lists_sources_without_their_contents_and_is_capped() {
        let ctx = json!({"component": "api", "error": "boom",
            "sources": [{"path": "svc/app.py", "size": 11, "truncated": false, "content": "print(1/0)\n"}]});
        let p = prompt(&ctx);
        assert!(p.contains("svc/app.py") && p.contains("boom") && !p.contains("print(1/0)"), "{p}");
        let huge = json!({"component": "api", "error": "é".repeat(200 * 1024)});
        let p = prompt(&huge);
        assert!(p.len() <= PROMPT_CAP && p.len() > PROMPT_CAP - 4);
    }

    #[test]
    fn the_summary_is_the_last_text_event() {
        let out = "{\"type\":\"step_start\"}\nnot json\n{\"type\":\"text\",\"part\":{\"text\":\"Looking.\"}}\n\
                   {\"type\":\"tool_use\",\"part\":{\"tool\":\"edit\"}}\n{\"type\":\"text\",\"part\":{\"text\":\" Fixed the division. \"}}\n";
        assert_eq!(summary(out).as_deref(), Some("Fixed the division."));
        assert_eq!(summary("{\"text\": \"plain\"}").as_deref(), Some("plain"));
        assert_eq!(summary("nothing here"), None);
    }
}
