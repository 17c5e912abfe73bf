//! Failover: a suspected leader's commit quorum is fenced at the next
//! epoch and a sync follower holding the durable prefix promoted; a
//! suspected sync follower is replaced by an async one through the next
//! epoch.

use super::{ControllerActor, ControllerState, Outbox};
use crate::config::Detector;
use crate::log_lines::{failed_over, FailoverDecided};
use crate::messages::FenceReport;
use crate::types::{Bucket, Epoch};
use crate::variant::Variant;
use stateright::actor::Id;
use std::collections::BTreeSet;

impl ControllerActor {
    /// Fails `bucket` over from its leader: fence the commit quorum at N+1
    /// (the promotion follows their report, `on_fenced`). Returns whether
    /// the suspicion is settled (the bucket published at a new epoch, or
    /// moot because it may not advance) rather than to be tried again
    /// later: a failover started is not settled until its report arrives,
    /// so that the suspicion comes back and resends a fence that was lost
    /// (`ProtocolConfig::resend_unanswered`). The fences go out with the
    /// step's other fences, one message per follower.
    pub(super) fn suspect_leader(
        &self,
        state: &mut ControllerState,
        bucket: Bucket,
        out: &mut Outbox,
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
                    out.fence(*follower, bucket, *epoch);
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
            self.publish(state, bucket, next, out);
            return true;
        }
        state.fencing.insert(bucket, epoch);
        tracing::debug!(%bucket, %epoch, leader = usize::from(placement.leader), "failing over: fencing the commit quorum");
        for follower in &placement.sync_followers {
            out.fence(*follower, bucket, epoch);
        }
        false
    }

    /// Moves the first async follower of `bucket` that is not `down` into
    /// the sync role of `suspect` through epoch N+1; `suspect` becomes
    /// async. Returns whether the suspicion is settled (see
    /// `suspect_leader`): moot if `suspect` is no longer a sync follower.
    pub(super) fn suspect_sync_follower(
        &self,
        state: &mut ControllerState,
        bucket: Bucket,
        suspect: Id,
        down: &BTreeSet<Id>,
        out: &mut Outbox,
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
        let Some(index) = placement
            .sync_followers
            .iter()
            .position(|follower| *follower == suspect)
        else {
            return true; // replaced already, or promoted: moot
        };
        let Some(replacement) = placement
            .async_followers
            .iter()
            .find(|follower| !down.contains(follower))
            .copied()
        else {
            // Nobody to replace it with: the group keeps its quorum and
            // writes wait.
            return false;
        };
        let mut next = placement.clone();
        next.epoch = placement.epoch.next();
        next.sync_followers[index] = replacement;
        next.async_followers.retain(|id| *id != replacement);
        next.async_followers.push(suspect);
        tracing::debug!(%bucket, epoch = %next.epoch, suspect = usize::from(suspect), replacement = usize::from(replacement), "sync follower replaced");
        self.publish(state, bucket, next, out);
        true
    }

    /// A sync follower promised the fencing epochs and reported its log,
    /// bucket by bucket: choose each new leader, and publish them together
    /// (one map version, one message per replica).
    pub(super) fn on_fenced(
        &self,
        state: &mut ControllerState,
        follower: Id,
        reports: &[FenceReport],
        out: &mut Outbox,
    ) {
        let decided: Vec<FailoverDecided> = reports
            .iter()
            .filter_map(|report| self.promote(state, follower, report, out))
            .collect();
        failed_over(&decided);
    }

    /// One bucket of `on_fenced`: promotes `follower` if it holds the
    /// durable prefix, else aborts (the old leader keeps the bucket at the
    /// new epoch). Returns what was decided, or nothing if the report is
    /// not about the failover in progress.
    fn promote(
        &self,
        state: &mut ControllerState,
        follower: Id,
        report: &FenceReport,
        out: &mut Outbox,
    ) -> Option<FailoverDecided> {
        let FenceReport {
            bucket,
            epoch,
            last_epoch,
            ..
        } = *report;
        if state.fencing.get(&bucket) != Some(&epoch) {
            return None; // ignore_stale_fenced: not the failover in progress
        }
        // A failover in progress is dropped by every publication of its
        // bucket (`publish`), so the map is still at the epoch before the
        // one fenced: the epoch compared above is the compare-and-set.
        let placement = state.map.placement(bucket).cloned()?;
        if !placement.sync_followers.contains(&follower) {
            return None; // only the commit quorum is fenced, or promoted
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
        let decided = FailoverDecided {
            bucket,
            epoch,
            old_leader: placement.leader,
            new_leader: next.leader,
        };
        self.publish(state, bucket, next, out);
        Some(decided)
    }
}
