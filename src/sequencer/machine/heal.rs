//! Healing (DESIGN §9): when a component is out of local attempts or restart budget, repair
//! rounds through the agent ladder; a promoted patch is put on trial by a relaunch and reverted
//! when that fails; a component that cannot be healed is quarantined, and a boot that cannot do
//! without it halts with the roster restored.

use serde_json::json;
use tracing::Level;

use super::{Action, End, HealOutcome, Healing, Life, Machine, Metric, Timer};
use crate::alerts::Severity;
use crate::config::OnFailure;
use crate::metrics::RestartReason;
use crate::sequencer::backoff::local_retry_delay;

/// The critical alert of a halted boot (the upstream alert rules match it).
pub(super) const HALT_ALERT: &str = "Boot sequence halted; configuration rolled back to safe defaults";

impl Machine {
    /// Out of local attempts, or out of restart budget, with the group gone: heal, or give up.
    pub(super) fn exhausted(&mut self, idx: usize) {
        if self.shutdown.is_some() {
            // Stopping anyway: no round is started, and nothing is quarantined unasked.
            self.final_failure(idx);
            return;
        }
        let rounds = self.units[idx].healing.as_ref().map_or(0, |h| h.rounds);
        if rounds < self.settings.heal_rounds || (self.settings.long_task && self.settings.heal_rounds > 0) {
            self.next_round(idx, rounds + 1);
        } else {
            self.unhealable(idx);
        }
    }

    /// Starts repair round `round`: at once within `--remote-attempts`, after a backoff
    /// (`min(2^(n-1), 60)` s over the extra rounds) under `--long-task`.
    fn next_round(&mut self, idx: usize, round: u32) {
        let now = self.now.mono;
        let unit = &mut self.units[idx];
        unit.healing.get_or_insert_with(|| Healing { since: now, ..Healing::default() }).rounds = round;
        unit.life = Life::Healing { round };
        if round > 1 {
            let component = self.name(idx);
            self.metric(Metric::HealRetry { component });
        }
        let extra = round.saturating_sub(self.settings.heal_rounds);
        if extra == 0 {
            self.start_round(idx, round);
        } else {
            let delay = local_retry_delay(extra);
            let message = format!("{}: repair round {round} in {}s (--long-task)", self.name(idx), delay.as_secs());
            self.log(Level::INFO, message);
            self.arm(delay, Timer::HealRound { idx, round });
        }
    }

    fn start_round(&mut self, idx: usize, round: u32) {
        let error = self.units[idx].last_error.clone().unwrap_or_default();
        let of = if self.settings.long_task { String::new() } else { format!(" of {}", self.settings.heal_rounds) };
        self.log(
            Level::WARN,
            format!("{}: handing the failure to the repair agents (round {round}{of})", self.name(idx)),
        );
        self.journal("heal", Some(idx), "round", Some(json!({"round": round, "error": error})));
        self.emit(Action::Heal { idx, round, error });
    }

    pub(super) fn on_heal_timer(&mut self, idx: usize, round: u32) {
        if self.units[idx].life == (Life::Healing { round }) && self.shutdown.is_none() {
            self.start_round(idx, round);
        }
    }

    pub(super) fn on_healed(&mut self, idx: usize, round: u32, outcome: HealOutcome) {
        if self.units[idx].life != (Life::Healing { round }) || self.shutdown.is_some() {
            return;
        }
        match outcome {
            HealOutcome::Promoted { patch_id, agent } => {
                self.log(
                    Level::INFO,
                    format!("{}: patch {patch_id} from {agent} promoted; relaunching", self.name(idx)),
                );
                let details = json!({"round": round, "patch_id": patch_id, "agent": agent});
                self.journal("heal", Some(idx), "promoted", Some(details));
                let component = self.name(idx);
                self.metric(Metric::Restart { component, reason: RestartReason::Patched });
                let unit = &mut self.units[idx];
                unit.healing.get_or_insert_with(Healing::default).trial = Some(patch_id);
                // One attempt on trial: the patch stays only if this launch becomes ready.
                unit.attempts = self.settings.retries;
                unit.life = Life::pending();
            }
            HealOutcome::NotHealed { reason } => {
                self.log(Level::WARN, format!("{}: repair round {round}: {reason}", self.name(idx)));
                self.journal("heal", Some(idx), "not_healed", Some(json!({"round": round, "reason": reason})));
                self.exhausted(idx);
            }
        }
    }

    /// The relaunch of a promoted patch failed: the patch is reverted and healing goes on.
    /// True when a trial was under way.
    pub(super) fn trial_failed(&mut self, idx: usize, reason: &str) -> bool {
        let Some(patch_id) = self.units[idx].healing.as_mut().and_then(|h| h.trial.take()) else { return false };
        let why = format!("relaunch failed: {reason}");
        self.log(Level::WARN, format!("{}: reverting patch {patch_id}: {why}", self.name(idx)));
        self.journal("heal", Some(idx), "reverted", Some(json!({"patch_id": patch_id, "reason": why})));
        self.emit(Action::Revert { idx, patch_id, why });
        true
    }

    /// Ready again: a patch on trial stays, and the failure is over.
    pub(super) fn healed(&mut self, idx: usize) {
        let Some(healing) = self.units[idx].healing.take() else { return };
        self.heal_loop_ended(idx, &healing);
        if let Some(patch_id) = healing.trial {
            self.log(Level::INFO, format!("{}: healed by patch {patch_id}", self.name(idx)));
            self.journal("heal", Some(idx), "healed", Some(json!({"patch_id": patch_id})));
        }
    }

    fn heal_loop_ended(&mut self, idx: usize, healing: &Healing) {
        if healing.rounds > 0 {
            let (component, took) = (self.name(idx), self.now.mono.saturating_sub(healing.since));
            self.metric(Metric::HealLoop { component, took });
        }
    }

    /// No round healed it (or none could be run): quarantined; a boot that needed it halts.
    fn unhealable(&mut self, idx: usize) {
        let healing = self.units[idx].healing.take().unwrap_or_default();
        self.heal_loop_ended(idx, &healing);
        let rounds = healing.rounds;
        if rounds > 0 {
            let error = self.units[idx].last_error.clone().unwrap_or_default();
            self.units[idx].last_error =
                Some(format!("not healed after {rounds} repair round(s); last error: {error}"));
        }
        let during_boot = !self.units[idx].ever_ready();
        self.quarantine(idx);
        if during_boot {
            self.halt_if_required(idx);
        }
    }

    /// Under `on_failure: halt` (without `--keep-going`), a component that failed to come up
    /// halts the boot: critical alert, the roster restored from its snapshot, the stack stopped.
    pub(super) fn halt_if_required(&mut self, idx: usize) {
        let halt = !self.settings.keep_going && self.cfg.on_failure == OnFailure::Halt;
        if !halt || self.shutdown.is_some() {
            return;
        }
        let name = self.name(idx);
        let attempts = self.units[idx].attempts;
        let error = self.units[idx].last_error.clone().unwrap_or_default();
        self.log(Level::ERROR, format!("boot halted: {name} failed after {attempts} attempts; stopping the stack"));
        self.emit(Action::RestoreRoster);
        self.emit(Action::Alert {
            message: HALT_ALERT.to_owned(),
            severity: Severity::Critical,
            context: json!({"component": name, "error": error, "attempts": attempts}),
        });
        self.begin_shutdown(End::Halted);
    }
}
