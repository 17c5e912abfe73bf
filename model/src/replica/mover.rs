//! Cutover at one replica. The source leader streams the bucket to the
//! destination members (learners) — a snapshot, then its log — seals it
//! with a barrier once they caught up, and tells the controller once the
//! barrier is committed in its group and durable at the destination. A
//! destination member (or a follower behind the leader's snapshot)
//! installs the snapshot.

use super::leader::FollowerSet;
use super::{BucketReplica, DurableBucket, ReplicaActor, ReplicaState};
use crate::log::{Entry, Log};
use crate::messages::{Emits, Msg, Snapshot};
use crate::placement::BucketPlacement;
use crate::types::{Bucket, Epoch};
use stateright::actor::{Id, Out};
use std::sync::Arc;

impl ReplicaActor {
    /// The controller asks this leader to move `bucket` out to
    /// `destination`: stream it there (a snapshot, then the log), and seal
    /// it with a barrier once the destination has caught up.
    pub(super) fn on_move_out(
        &self,
        id: Id,
        state: &mut ReplicaState,
        bucket: Bucket,
        epoch: Epoch,
        destination: BucketPlacement,
        o: &mut Out<impl Emits>,
    ) {
        let Some(replica) = state.buckets.get_mut(&bucket) else {
            return;
        };
        let durable = &replica.durable;
        if !durable.is_leader(id)
            || durable.placement.epoch != epoch
            || durable.moving_to.is_some()
            || durable.sealed()
        {
            return; // ignore_stale_move_out: not this epoch's leader, or already moving
        }
        DurableBucket::edit(&mut replica.durable).moving_to = Some(destination);
        self.send_appends(bucket, replica, FollowerSet::All, o);
        self.advance_move(bucket, replica, false, o);
    }

    /// A leader sent the bucket from a snapshot: a destination of a move
    /// (a learner, not a member of the sender's placement) installs it and
    /// follows the sender's log; a member behind the leader's snapshot does
    /// the same at its own placement's epoch.
    pub(super) fn on_snapshot(
        &self,
        id: Id,
        state: &mut ReplicaState,
        src: Id,
        snapshot: Snapshot,
        o: &mut Out<impl Emits>,
    ) {
        if !self.admit_snapshot(id, state, src, &snapshot, o) {
            return;
        }
        let Some(snapshot) = self.stage(state, src, snapshot, o) else {
            return; // a chunk, staged
        };
        let Snapshot {
            bucket,
            epoch,
            placement,
            position,
            position_epoch,
            state: bucket_state,
            entries,
            commit_position,
            chunk: _,
        } = snapshot;
        let member = placement.role_of(id).is_some();
        let replica = state.buckets.entry(bucket).or_insert_with(|| {
            BucketReplica::new(
                Arc::new(DurableBucket::empty(placement.clone())),
                &self.config,
            )
        });
        let durable = DurableBucket::edit(&mut replica.durable);
        if !member {
            durable.placement = placement;
            durable.promised_epoch = epoch;
        }
        let has_prefix = durable.commit_position >= position
            || durable.log.epoch_at(position) == Some(position_epoch);
        if !has_prefix {
            durable.log = Log::after_snapshot(position, position_epoch);
            durable.applied = bucket_state;
            durable.commit_position = position;
        }
        let Ok(matched) =
            durable
                .log
                .append_after(position, position_epoch, &entries, durable.commit_position)
        else {
            return; // ignore_snapshot_out_of_order
        };
        durable.commit_through(commit_position.min(matched));
        durable.fold(self.config.retained_entries);
        o.send(
            src,
            Msg::Appended {
                bucket,
                epoch,
                position: matched,
            },
        );
    }

    /// Whether this replica takes a snapshot (or a chunk of one) from
    /// `src`: a destination of a move (a learner, not a member of the
    /// sender's placement) takes it from the leader it names; a member
    /// only from its own placement's leader at its epoch (a refusal or a
    /// request for the placement otherwise, as for an append).
    fn admit_snapshot(
        &self,
        id: Id,
        state: &ReplicaState,
        src: Id,
        snapshot: &Snapshot,
        o: &mut Out<impl Emits>,
    ) -> bool {
        let Snapshot {
            bucket,
            epoch,
            ref placement,
            ..
        } = *snapshot;
        if placement.epoch != epoch || placement.leader != src {
            return false; // ignore_inconsistent_snapshot
        }
        let member = placement.role_of(id).is_some();
        match state.buckets.get(&bucket).map(|replica| &replica.durable) {
            Some(durable) if epoch < durable.promised_epoch => {
                if member {
                    o.send(
                        src,
                        Msg::AppendRefused {
                            bucket,
                            epoch: durable.promised_epoch,
                        },
                    );
                }
                false
            }
            Some(durable) if member => {
                if epoch > durable.placement.epoch {
                    o.send(self.controller, Msg::FetchPlacement { bucket });
                    return false;
                }
                epoch == durable.placement.epoch && src == durable.placement.leader
            }
            // ignore_snapshot_of_another_history
            Some(durable) if durable.placement.epoch == epoch => durable.placement == *placement,
            Some(_) => true,
            None if member => {
                o.send(self.controller, Msg::FetchPlacement { bucket });
                false
            }
            None => true,
        }
    }

    /// Whether a moving leader's barrier is committed in its own group and
    /// durable on every destination member: the move may be published.
    pub(super) fn moved_out(replica: &BucketReplica) -> bool {
        let durable = &replica.durable;
        let barrier = durable.log.last_position();
        durable.sealed()
            && durable.commit_position >= barrier
            && durable.learners().iter().all(|learner| {
                replica
                    .leader
                    .match_positions
                    .get(learner)
                    .is_some_and(|matched| *matched >= barrier)
            })
    }

    /// Drives a move out after the leader learned of progress: once every
    /// destination member has caught up, seal the bucket with the barrier;
    /// once the barrier is everywhere it must be, tell the controller.
    pub(super) fn advance_move(
        &self,
        bucket: Bucket,
        replica: &mut BucketReplica,
        was_moved_out: bool,
        o: &mut Out<impl Emits>,
    ) {
        let durable = &replica.durable;
        if durable.moving_to.is_none() {
            return;
        }
        if !durable.sealed() {
            let last = durable.log.last_position();
            let caught_up = durable.learners().iter().all(|learner| {
                replica
                    .leader
                    .match_positions
                    .get(learner)
                    .is_some_and(|matched| *matched >= last)
            });
            if caught_up {
                let epoch = durable.placement.epoch;
                DurableBucket::edit(&mut replica.durable)
                    .log
                    .push(Entry::barrier(epoch));
                self.send_appends(bucket, replica, FollowerSet::All, o);
                self.commit_and_reply(bucket, replica, o);
            }
        }
        if !was_moved_out && Self::moved_out(replica) {
            o.send(
                self.controller,
                Msg::MovedOut {
                    bucket,
                    epoch: replica.durable.placement.epoch,
                    barrier: replica.durable.log.last_position(),
                },
            );
        }
    }
}
