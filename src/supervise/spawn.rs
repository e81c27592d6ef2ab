//! The one way razar builds a child process, for every kind of child: components, probes and
//! stop commands, layer builds, the model launcher, the repair sandbox's tests and the
//! `opencode` CLI. Each starts with stdin from `/dev/null`, as the leader of a process group
//! of its own (so it and everything it forks can be stopped as one), and with every secret
//! razar knows of removed from its environment (`secrets`; a component's own `env` may pass
//! one back explicitly). Callers add their program's arguments, environment, directory and
//! output, and spawn through `reaper::spawn` (async) or `reaper::spawn_blocking`, which record
//! the child so the boot's orphan reaper never takes its exit status.

use std::ffi::OsStr;
use std::os::unix::process::CommandExt;
use std::process::Stdio;

use super::secrets;

/// An async child command with razar's policy applied.
pub fn command(program: impl AsRef<OsStr>) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(program);
    secrets::scrub(&mut cmd);
    cmd.stdin(Stdio::null()).process_group(0);
    cmd
}

/// The same policy for a child waited on from blocking code (the repair sandbox's tests).
pub fn blocking_command(program: impl AsRef<OsStr>) -> std::process::Command {
    let mut cmd = std::process::Command::new(program);
    secrets::scrub(&mut cmd);
    cmd.stdin(Stdio::null()).process_group(0);
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_leads_its_own_group_reads_nothing_and_inherits_no_known_secret() {
        let mut cmd = blocking_command("sh");
        for secret in ["CROWN_TOKEN", "RAZAR_ALERT_WEBHOOK", "KIMI2_API_KEY"] {
            assert!(
                cmd.get_envs().any(|(k, v)| k == secret && v.is_none()),
                "{secret} is removed from the child's environment"
            );
        }
        let out = cmd.args(["-c", "echo \"$(ps -o pgid= -p $$ | tr -d ' ') $$\"; cat"]).output().unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let words: Vec<&str> = text.split_whitespace().collect();
        assert_eq!(words[0], words[1], "the child leads its own process group: {text}");
        assert_eq!(words.len(), 2, "stdin is /dev/null: `cat` read nothing");
    }
}
