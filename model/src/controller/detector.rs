//! The probe detector (`Detector::Probes`, the runtime's): who answered
//! the last probes, which replicas are down, and what a down replica's
//! buckets need; and the lag each leader reports, which can hold up a
//! planned move.

use super::{ControllerActor, ControllerState};
use crate::config::Detector;
use crate::messages::{Emits, FollowerLag, Msg, Timer};
use crate::placement::BucketPlacement;
use crate::types::Bucket;
use stateright::actor::{Id, Out};
use std::collections::{BTreeMap, BTreeSet};

/// The probe detector's memory (`Detector::Probes`; empty in the checker).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Liveness {
    /// Replicas heard from since the last probe.
    pub heard: BTreeSet<Id>,
    /// Probes in a row each replica has not answered.
    pub missed: BTreeMap<Id, u8>,
    /// The followers over their lag budget each leader reported in its
    /// last `Alive`.
    pub lagging: BTreeMap<Id, Vec<FollowerLag>>,
}

impl Liveness {
    /// `replica`'s `Alive` reported `lagging` as its followers over their
    /// lag budget.
    pub(super) fn lagging_reported(&mut self, replica: Id, lagging: Vec<FollowerLag>) {
        if lagging.is_empty() {
            self.lagging.remove(&replica);
        } else {
            self.lagging.insert(replica, lagging);
        }
    }
}

impl ControllerState {
    /// The replicas the detector considers down after `misses` probes.
    pub fn down(&self, misses: u8) -> BTreeSet<Id> {
        self.liveness
            .missed
            .iter()
            .filter(|(_, missed)| **missed >= misses)
            .map(|(id, _)| *id)
            .collect()
    }
}

impl ControllerActor {
    /// `Detector::Probes`: count the replicas that did not answer the last
    /// probe, fail over what a down replica leads and reconfigure what it
    /// serves as sync follower, resend what may have been lost, probe
    /// again.
    pub(super) fn probe(&self, state: &mut ControllerState, o: &mut Out<impl Emits>) {
        let Detector::Probes { misses } = self.config.detector else {
            return;
        };
        let replicas: BTreeSet<Id> = state
            .map
            .buckets
            .iter()
            .flat_map(BucketPlacement::members)
            .collect();
        let heard = std::mem::take(&mut state.liveness.heard);
        let mut recovered = BTreeSet::new();
        for replica in &replicas {
            let missed = state.liveness.missed.entry(*replica).or_default();
            if heard.contains(replica) {
                if *missed >= misses {
                    recovered.insert(*replica);
                }
                *missed = 0;
            } else {
                *missed = missed.saturating_add(1);
            }
            o.send(*replica, Msg::Probe);
        }
        // A replica back from the dead may hold placements that changed
        // while it was away: tell it the current ones at once (it would
        // otherwise learn each when it meets a newer epoch).
        for replica in &recovered {
            for (index, placement) in state.map.buckets.iter().enumerate() {
                if placement.role_of(*replica).is_some() {
                    o.send(
                        *replica,
                        Msg::Placement {
                            bucket: Bucket(index as u32),
                            placement: placement.clone(),
                        },
                    );
                }
            }
        }
        if self.config.resend_unanswered {
            self.resend(state, o);
        }
        let down = state.down(misses);
        if self.failover.is_some() && !down.is_empty() {
            for index in 0..state.map.bucket_count() {
                let bucket = Bucket(index);
                let Some(placement) = state.map.placement(bucket) else {
                    continue;
                };
                if down.contains(&placement.leader) {
                    // Only a live sync follower can report what it holds;
                    // with every copy of the committed prefix down, wait.
                    if placement
                        .sync_followers
                        .iter()
                        .any(|follower| !down.contains(follower))
                    {
                        self.suspect_leader(state, bucket, o);
                    }
                } else if placement
                    .sync_followers
                    .iter()
                    .any(|follower| down.contains(follower))
                {
                    self.suspect_sync_follower(state, bucket, &down, o);
                }
            }
        }
        o.set_timer(Timer::Probe, self.config.timeouts.probe.clone());
    }

    /// Resends the fences and move requests in progress (UDP may have lost
    /// them; each is idempotent at the replica).
    pub(super) fn resend(&self, state: &ControllerState, o: &mut Out<impl Emits>) {
        for (bucket, epoch) in &state.fencing {
            if let Some(placement) = state.map.placement(*bucket) {
                for follower in &placement.sync_followers {
                    o.send(
                        *follower,
                        Msg::Fence {
                            bucket: *bucket,
                            epoch: *epoch,
                        },
                    );
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
