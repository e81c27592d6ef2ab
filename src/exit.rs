//! Exit codes of the `razar` binary. Stable: scripts and CI jobs match on them.

/// Success: the command did what it was asked, or the boot ended with every component done.
pub const SUCCESS: u8 = 0;
/// The boot halted because a component failed (local retries exhausted, `on_failure: halt`).
pub const BOOT_HALTED: u8 = 1;
/// Usage or configuration error: nothing was started and no file under `logs/` changed.
pub const CONFIG: u8 = 2;
/// The configured Crown server was unreachable, timed out, or answered with something unusable.
pub const CROWN: u8 = 3;
/// Another `razar boot` holds the root's lock (`.razar/boot.lock`).
pub const LOCKED: u8 = 4;
/// A `--require-capability` was absent from the Crown's reply.
pub const CAPABILITY_MISSING: u8 = 5;
/// `razar status --wait-ready` gave up: the boot failed, stopped or the timeout passed.
pub const NOT_READY: u8 = 6;
/// `razar restart|stop|start`: no boot is running on this root to act on.
pub const NO_BOOT: u8 = 7;
/// `razar probe`: the probe did not pass (once, or with `--wait` not within `--timeout`).
pub const PROBE_FAILED: u8 = 8;
/// `razar rollback` refused: a file changed since razar wrote it, or a backup is missing.
/// Nothing was changed.
pub const ROLLBACK_REFUSED: u8 = 10;
/// `razar handover`: the agent answered but offered no patch.
pub const NO_PATCH: u8 = 12;
/// `razar handover`: the agent was unreachable, timed out, answered an HTTP error or an
/// unusable reply.
pub const AGENT_ERROR: u8 = 13;
/// `razar handover`: the suggested patch was rejected (a path it may not touch, unparseable)
/// or failed the component's tests in the sandbox. Nothing outside the sandbox changed.
pub const PATCH_NOT_VERIFIED: u8 = 14;
/// Internal error: an I/O failure or a bug. The message says what.
pub const INTERNAL: u8 = 70;
/// The terminal hung up (SIGHUP, 128 + 1); the stack was stopped in order.
pub const SIGHUP: u8 = 129;
/// Interrupted by SIGINT (128 + 2); the stack was stopped in order.
pub const SIGINT: u8 = 130;
/// Interrupted by SIGTERM (128 + 15); the stack was stopped in order.
pub const SIGTERM: u8 = 143;

/// Every code with its one-line meaning, for `razar --help` and `docs/exit-codes.md`.
pub const TABLE: &[(u8, &str)] = &[
    (SUCCESS, "success"),
    (BOOT_HALTED, "boot halted by a component failure"),
    (CONFIG, "usage or configuration error (nothing started)"),
    (CROWN, "Crown unreachable, timed out or rejected the handshake"),
    (LOCKED, "another razar boot holds this root's lock"),
    (CAPABILITY_MISSING, "a required Crown capability is missing"),
    (NOT_READY, "--wait / --wait-ready gave up: failed, stopped or timed out"),
    (NO_BOOT, "restart/stop/start: no boot is running on this root"),
    (PROBE_FAILED, "probe: the probe did not pass (with --wait: not within --timeout)"),
    (ROLLBACK_REFUSED, "rollback refused: a file changed since razar wrote it (nothing changed)"),
    (NO_PATCH, "handover: the agent offered no patch"),
    (AGENT_ERROR, "handover: agent unreachable, timed out, HTTP error or unusable reply"),
    (PATCH_NOT_VERIFIED, "handover: the patch was rejected or failed the component's tests (nothing changed)"),
    (INTERNAL, "internal error (I/O failure or bug)"),
    (SIGHUP, "terminal hung up (SIGHUP); stack stopped"),
    (SIGINT, "interrupted by SIGINT; stack stopped"),
    (SIGTERM, "interrupted by SIGTERM; stack stopped"),
];

/// The exit-code table as help text.
pub fn help_text() -> String {
    let mut out = String::from("Exit codes:\n");
    for (code, meaning) in TABLE {
        out.push_str(&format!("  {code:>3}  {meaning}\n"));
    }
    out
}
