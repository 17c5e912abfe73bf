//! The probe detector's clock: how many probe rounds a replica may miss
//! before it is down (its patience, which grows each time it comes back
//! and decays while it answers), and how many rounds a replica given new
//! work is held down.
//!
//! Probe rounds are the model's only clock, and the checker fires the
//! probe timer at any moment, so a count of rounds is a duration: a
//! patience of two misses or five reaches the same decisions in a run
//! without a bound on rounds, only after more of them. Which replica is
//! down and what that calls for are decisions, and live in `detector`;
//! these counts are tuning, which the engine tests pin
//! (`controller/tests.rs`) and the mutation run leaves out, as it does
//! every duration (docs/mutation-testing.md).

use super::detector::Liveness;
use super::ControllerActor;
use crate::config::Detector;
use stateright::actor::Id;

/// A replica's patience grows to at most this many times `misses`.
const MAX_PATIENCE: u8 = 4;
/// Answered probe rounds after which extra patience shrinks by one miss.
const DECAY_ROUNDS: u16 = 40;

impl Liveness {
    /// How many probes in a row `replica` may miss before it is down.
    pub fn patience(&self, replica: Id, misses: u8) -> u8 {
        misses.saturating_add(self.patience.get(&replica).copied().unwrap_or(0))
    }

    /// `replica`, declared down, answered again: wait longer for it from
    /// now on. Returns its new patience (misses allowed).
    pub(super) fn recovered(&mut self, replica: Id, misses: u8) -> u8 {
        let extra = self.patience.entry(replica).or_default();
        let limit = misses.saturating_mul(MAX_PATIENCE - 1);
        *extra = extra.saturating_add(misses.max(1)).min(limit);
        self.steady.remove(&replica);
        self.patience(replica, misses)
    }

    /// `replica` answered a probe round: its patience decays after a long
    /// run of answers.
    pub(super) fn heard_rounds(&mut self, replica: Id) {
        if let Some(extra) = self.patience.get_mut(&replica) {
            let steady = self.steady.entry(replica).or_default();
            *steady += 1;
            if *steady >= DECAY_ROUNDS {
                *steady = 0;
                *extra -= 1;
                if *extra == 0 {
                    self.patience.remove(&replica);
                    self.steady.remove(&replica);
                }
            }
        }
    }

    /// One probe round passed: hold-downs run out.
    pub(super) fn round_passed(&mut self) {
        self.held.retain(|_, rounds| {
            *rounds -= 1;
            *rounds > 0
        });
    }

    /// `replica` was given new work: not suspected for `rounds` probe
    /// rounds.
    pub(super) fn hold_down(&mut self, replica: Id, rounds: u8) {
        if rounds > 0 {
            let held = self.held.entry(replica).or_default();
            *held = (*held).max(rounds);
        }
    }
}

impl ControllerActor {
    /// Probe rounds a replica given new work is not suspected for.
    pub(super) fn hold_down_rounds(&self) -> u8 {
        match self.config.detector {
            Detector::Probes { misses } => misses.saturating_mul(2),
            Detector::Anytime => 0,
        }
    }
}
