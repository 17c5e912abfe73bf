//! Failover: a suspected leader's commit quorum is fenced at the next
//! epoch and a sync follower holding the durable prefix promoted; a
//! suspected sync follower is replaced by an async one through the next
//! epoch.

use super::{ControllerActor, ControllerState};
use crate::config::Detector;
use crate::messages::{Emits, Msg};
use crate::types::{Bucket, Epoch};
use crate::variant::Variant;
use stateright::actor::{Id, Out};
use std::collections::BTreeSet;

impl ControllerActor {
    /// Fails `bucket` over from its leader: fence the commit quorum at N+1
    /// (the promotion follows their report, `on_fenced`). Returns whether
    /// the suspicion is settled (acted on, or moot because the bucket may
    /// not advance) rather than to be tried again later.
    pub(super) fn suspect_leader(
        &self,
        state: &mut ControllerState,
        bucket: Bucket,
        o: &mut Out<impl Emits>,
    ) -> bool {
        let Some(placement) = state.map.placement(bucket).cloned() else {
            return true;
        };
        if !self.may_advance(&placement) {
            return true; // this bucket's epochs are spent
        }
        // A source leader suspected mid-move aborts the move (its
        // `MovedOut` will be ignored; the destination never became owner)
        // and fails over below.
        state.moving.remove(&bucket);
        if let Some(epoch) = state.fencing.get(&bucket) {
            // A failover of this bucket is in progress. A fence may have
            // been lost: resend it if so configured (see
            // `ProtocolConfig::resend_unanswered`; with probes, `resend` does).
            if self.config.resend_unanswered && self.config.detector == Detector::Anytime {
                for follower in &placement.sync_followers {
                    o.send(
                        *follower,
                        Msg::Fence {
                            bucket,
                            epoch: *epoch,
                        },
                    );
                }
            }
            return false;
        }
        if placement.sync_followers.is_empty() {
            // Nobody else holds the committed prefix: wait for the leader
            // to return.
            return false;
        }
        let epoch = placement.epoch.next();
        if self.config.variant == Variant::NoFencing {
            // The broken failover: promote the sync follower at once, never
            // asking what it holds.
            let mut next = placement.clone();
            next.epoch = epoch;
            next.leader = placement.sync_followers[0];
            next.sync_followers[0] = placement.leader;
            self.publish(state, bucket, next, o);
            return true;
        }
        state.fencing.insert(bucket, epoch);
        tracing::info!(%bucket, %epoch, leader = usize::from(placement.leader), "failing over: fencing the commit quorum");
        for follower in &placement.sync_followers {
            o.send(*follower, Msg::Fence { bucket, epoch });
        }
        true
    }

    /// Moves the first async follower of `bucket` that is not `down` into
    /// the sync role through epoch N+1; the suspected sync follower becomes
    /// async. Returns whether the suspicion is settled (see
    /// `suspect_leader`).
    pub(super) fn suspect_sync_follower(
        &self,
        state: &mut ControllerState,
        bucket: Bucket,
        down: &BTreeSet<Id>,
        o: &mut Out<impl Emits>,
    ) -> bool {
        let Some(placement) = state.map.placement(bucket).cloned() else {
            return true;
        };
        if !self.may_advance(&placement) {
            return true;
        }
        if state.fencing.contains_key(&bucket) || state.moving.contains_key(&bucket) {
            return false; // one change of a bucket at a time
        }
        let (Some(suspect), Some(replacement)) = (
            placement.sync_followers.first().copied(),
            placement
                .async_followers
                .iter()
                .find(|follower| !down.contains(follower))
                .copied(),
        ) else {
            // No sync follower to replace, or nobody to replace it with: the
            // group keeps its quorum and writes wait.
            return false;
        };
        let mut next = placement.clone();
        next.epoch = placement.epoch.next();
        next.sync_followers[0] = replacement;
        next.async_followers.retain(|id| *id != replacement);
        next.async_followers.push(suspect);
        self.publish(state, bucket, next, o);
        true
    }

    /// A sync follower promised the fencing epoch and reported its log:
    /// choose the new leader and publish.
    pub(super) fn on_fenced(
        &self,
        state: &mut ControllerState,
        follower: Id,
        bucket: Bucket,
        epoch: Epoch,
        last_epoch: Epoch,
        o: &mut Out<impl Emits>,
    ) {
        if state.fencing.get(&bucket) != Some(&epoch) {
            return; // ignore_stale_fenced: not the failover in progress
        }
        let Some(placement) = state.map.placement(bucket).cloned() else {
            return;
        };
        if placement.epoch.next() != epoch || !placement.sync_followers.contains(&follower) {
            return; // compare-and-set on the epoch and the quorum
        }
        let mut next = placement.clone();
        next.epoch = epoch;
        if self.config.variant == Variant::PromoteLagging {
            // The broken choice: the remote async follower, however far
            // behind it is.
            if let Some(remote) = placement.async_followers.first().copied() {
                next.leader = remote;
                next.async_followers.retain(|id| *id != remote);
                next.async_followers.push(placement.leader);
            }
        } else if last_epoch == placement.epoch || placement.epoch == Epoch::FIRST {
            // The follower holds the durable replayed prefix: promote it,
            // and the old leader takes its place in the commit quorum.
            next.leader = follower;
            for id in &mut next.sync_followers {
                if *id == follower {
                    *id = placement.leader;
                }
            }
        }
        // Otherwise the follower lacks the epoch-start entry of N and may
        // lack committed entries: the failover aborts, and the old leader
        // keeps the bucket at the new epoch.
        if next.leader != placement.leader {
            tracing::info!(%bucket, %epoch, leader = usize::from(next.leader), "promoted");
        } else {
            tracing::info!(%bucket, %epoch, "failover aborted: the sync follower lacks the prefix");
        }
        self.publish(state, bucket, next, o);
    }
}
