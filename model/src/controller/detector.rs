//! The probe detector (`Detector::Probes`, the runtime's): who answered
//! the last probes, which replicas are down, and what a down replica's
//! buckets need; and the lag each leader reports, which can hold up a
//! planned move.

use super::{ControllerActor, ControllerState, Outbox};
use crate::config::Detector;
use crate::log_lines::{failing_over, Buckets};
use crate::messages::{Emits, FollowerLag, Msg, Timer};
use crate::placement::BucketPlacement;
use crate::types::Bucket;
use stateright::actor::{Id, Out};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// The probe detector's memory (`Detector::Probes`; empty in the checker).
///
/// A replica is down once it missed `misses` probes in a row, plus its own
/// patience: a replica that was declared down and then answered again was
/// either restarted or wrongly suspected (a busy machine, a long pause),
/// and the detector, which cannot tell which, waits longer for it from
/// then on — doubling, up to `MAX_PATIENCE`× — and forgets that slowly
/// while it answers. This is the adaptive-threshold idea of phi-accrual
/// detectors, counted in probe rounds since the model has no clock. A
/// replica a decision just gave new work (a promoted leader, a new sync
/// follower) is held down — never suspected — for a few rounds while it
/// takes that work on. Safety never depends on any of this.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Liveness {
    /// Replicas heard from since the last probe.
    pub heard: BTreeSet<Id>,
    /// Probes in a row each replica has not answered.
    pub missed: BTreeMap<Id, u8>,
    /// The followers over their lag budget each leader reported in its
    /// last `Alive` (shared: every controller step copies its state).
    pub lagging: BTreeMap<Id, Arc<Vec<FollowerLag>>>,
    /// Extra misses each replica is allowed, after it was declared down
    /// and came back.
    pub patience: BTreeMap<Id, u8>,
    /// Probe rounds each replica answered in a row since its patience last
    /// changed (patience decays every `DECAY_ROUNDS`).
    pub steady: BTreeMap<Id, u16>,
    /// Probe rounds each replica is held down for (not suspected).
    pub held: BTreeMap<Id, u8>,
    /// Probe rounds made since the controller started (counted only where
    /// `ProtocolConfig::max_probe_rounds` bounds them).
    pub rounds: u8,
}

impl Liveness {
    /// `replica`'s `Alive` reported `lagging` as its followers over their
    /// lag budget.
    pub(super) fn lagging_reported(&mut self, replica: Id, lagging: Vec<FollowerLag>) {
        if lagging.is_empty() {
            self.lagging.remove(&replica);
        } else if self
            .lagging
            .get(&replica)
            .is_none_or(|old| **old != lagging)
        {
            self.lagging.insert(replica, Arc::new(lagging));
        }
    }

    /// Whether `replica` answered the last probe round.
    pub(crate) fn answered_last(&self, replica: Id) -> bool {
        self.missed.get(&replica).is_none_or(|missed| *missed == 0)
    }
}

impl ControllerState {
    /// The replicas the detector considers down after `misses` probes
    /// (and each replica's patience), except those held down.
    pub fn down(&self, misses: u8) -> BTreeSet<Id> {
        self.liveness
            .missed
            .iter()
            .filter(|(id, missed)| {
                **missed >= self.liveness.patience(**id, misses)
                    && !self.liveness.held.contains_key(id)
            })
            .map(|(id, _)| *id)
            .collect()
    }
}

impl ControllerActor {
    /// `Detector::Probes`: count the replicas that did not answer the last
    /// probe, fail over what a down replica leads and reconfigure what it
    /// serves as sync follower, resend what may have been lost, probe
    /// again. Each decision names every bucket it changes at once: one
    /// fence per follower, one map version, one announcement per replica.
    pub(super) fn probe(
        &self,
        state: &mut ControllerState,
        out: &mut Outbox,
        o: &mut Out<impl Emits>,
    ) {
        let Detector::Probes { misses } = self.config.detector else {
            return;
        };
        // The checker's bound (`ProtocolConfig::max_probe_rounds`; zero:
        // no detector at all, as in a planned failover).
        let max = self.config.max_probe_rounds;
        if max.is_some_and(|max| state.liveness.rounds >= max) {
            return;
        }
        if max.is_some() {
            state.liveness.rounds = state.liveness.rounds.saturating_add(1);
        }
        let replicas: BTreeSet<Id> = state
            .map
            .buckets
            .iter()
            .flat_map(BucketPlacement::members)
            .collect();
        let heard = std::mem::take(&mut state.liveness.heard);
        let was_down = state.down(misses);
        state.liveness.round_passed();
        let mut recovered = BTreeSet::new();
        for replica in &replicas {
            let missed = state.liveness.missed.entry(*replica).or_default();
            if heard.contains(replica) {
                if was_down.contains(replica) {
                    recovered.insert(*replica);
                }
                *missed = 0;
                state.liveness.heard_rounds(*replica);
            } else {
                *missed = missed.saturating_add(1);
            }
            o.send(*replica, Msg::Probe);
        }
        // A replica back from the dead may hold placements that changed
        // while it was away: tell it the current ones at once (it would
        // otherwise learn each when it meets a newer epoch). It was
        // declared down while alive, or came back quickly: either way the
        // detector was too eager for it, so it gets more patience.
        for replica in &recovered {
            let patience = state.liveness.recovered(*replica, misses);
            tracing::info!(
                replica = usize::from(*replica),
                patience,
                "replica {} is back: down after {patience} unanswered probes from now on",
                usize::from(*replica)
            );
            for (index, placement) in state.map.buckets.iter().enumerate() {
                if placement.role_of(*replica).is_some() {
                    out.placement(*replica, Bucket(index as u32), placement);
                }
            }
        }
        if self.config.resend_unanswered {
            self.resend(state, out, o);
        }
        let down = state.down(misses);
        for replica in down.difference(&was_down) {
            tracing::warn!(
                replica = usize::from(*replica),
                "replica {} is down: {} probes in a row unanswered",
                usize::from(*replica),
                state.liveness.patience(*replica, misses)
            );
        }
        if self.failover.is_some() && !down.is_empty() {
            self.act_on_down(state, &down, out);
        }
        if max.is_none_or(|max| state.liveness.rounds < max) {
            o.set_timer(Timer::Probe, self.config.timeouts.probe.clone());
        }
    }

    /// The changes the replicas in `down` call for: fail over each bucket
    /// one of them leads (if a sync follower is live to report what it
    /// holds), and replace each down sync follower by a live async one.
    /// A replica just given new work (`Liveness::held_down`) is not
    /// suspected again until it had time to take it on.
    fn act_on_down(&self, state: &mut ControllerState, down: &BTreeSet<Id>, out: &mut Outbox) {
        let mut failing: BTreeMap<Id, Vec<Bucket>> = BTreeMap::new();
        let mut replaced: BTreeMap<Id, Vec<Bucket>> = BTreeMap::new();
        for index in 0..state.map.bucket_count() {
            let bucket = Bucket(index);
            let Some(placement) = state.map.placement(bucket) else {
                continue;
            };
            let leader = placement.leader;
            if down.contains(&leader) {
                // Only a live sync follower can report what it holds;
                // with every copy of the committed prefix down, wait.
                if placement
                    .sync_followers
                    .iter()
                    .any(|follower| !down.contains(follower))
                    && !state.fencing.contains_key(&bucket)
                {
                    self.suspect_leader(state, bucket, out);
                    failing.entry(leader).or_default().push(bucket);
                }
            } else if let Some(suspect) = placement
                .sync_followers
                .iter()
                .find(|follower| down.contains(follower))
                .copied()
            {
                // The replacement must be live now, not merely not yet
                // suspected: a suspicion alone never leaves a group
                // without a live sync follower.
                let unusable: BTreeSet<Id> = placement
                    .async_followers
                    .iter()
                    .filter(|id| !state.liveness.answered_last(**id))
                    .copied()
                    .chain(down.iter().copied())
                    .collect();
                if self.suspect_sync_follower(state, bucket, suspect, &unusable, out) {
                    replaced.entry(suspect).or_default().push(bucket);
                }
            }
        }
        failing_over(&failing, |bucket| state.fencing.contains_key(bucket));
        for (suspect, buckets) in &replaced {
            tracing::info!(
                replica = usize::from(*suspect),
                buckets = %Buckets(buckets),
                "replaced down sync follower {} on {} bucket(s)",
                usize::from(*suspect),
                buckets.len()
            );
        }
    }

    /// Resends the fences and move requests in progress (UDP may have lost
    /// them; each is idempotent at the replica).
    pub(super) fn resend(
        &self,
        state: &ControllerState,
        out: &mut Outbox,
        o: &mut Out<impl Emits>,
    ) {
        for (bucket, epoch) in &state.fencing {
            if let Some(placement) = state.map.placement(*bucket) {
                for follower in &placement.sync_followers {
                    out.fence(*follower, *bucket, *epoch);
                }
            }
        }
        for (bucket, moving) in &state.moving {
            if let Some(placement) = state.map.placement(*bucket) {
                o.send(
                    placement.leader,
                    Msg::MoveOut {
                        bucket: *bucket,
                        epoch: moving.epoch,
                        destination: moving.destination.clone(),
                    },
                );
            }
        }
    }
}
