//! A replica as follower: it takes appends only from its placement's
//! leader at its epoch, refuses older epochs, truncates a divergent suffix
//! only above its commit; it promises a newer epoch when the controller
//! fences it, and adopts the placements the controller publishes.

use super::{BucketReplica, DurableBucket, LeaderState, ReplicaActor, ReplicaState};
use crate::log::Entry;
use crate::log_lines::Tally;
use crate::messages::{batches, Emits, FenceReport, Msg};
use crate::placement::BucketPlacement;
use crate::types::{Bucket, Epoch, Position};
use crate::variant::Variant;
use stateright::actor::{Id, Out};
use std::sync::Arc;

/// What an `Append` carries besides its bucket and epoch: `entries`
/// following the entry at `prev_position`, which has `prev_epoch`, and the
/// leader's commit position.
pub(super) struct LogSuffix {
    pub prev_position: Position,
    pub prev_epoch: Epoch,
    pub entries: Vec<Entry>,
    pub commit_position: Position,
}

impl ReplicaActor {
    /// The leader sends entries: refused if from an epoch older than this
    /// replica promised, a reason to ask the controller if from a newer
    /// one, ignored unless from the placement's leader; otherwise appended
    /// (keeping what matches, truncating a divergent suffix above the
    /// commit), saved, the commit taken, and the match acknowledged.
    pub(super) fn on_append(
        &self,
        state: &mut ReplicaState,
        src: Id,
        bucket: Bucket,
        epoch: Epoch,
        suffix: LogSuffix,
        o: &mut Out<impl Emits>,
    ) {
        let LogSuffix {
            prev_position,
            prev_epoch,
            entries,
            commit_position,
        } = suffix;
        let Some(replica) = state.buckets.get_mut(&bucket) else {
            return; // ignore_append_for_unknown_bucket
        };
        let durable = &replica.durable;
        let checked = self.config.variant != Variant::UncheckedEpoch;
        if checked && epoch < durable.promised_epoch {
            tracing::debug!(
                %bucket,
                %epoch,
                promised = %durable.promised_epoch,
                "stale epoch rejected: append from an older leader"
            );
            o.send(
                src,
                Msg::AppendRefused {
                    bucket,
                    epoch: durable.promised_epoch,
                },
            );
            return;
        }
        if checked && epoch > durable.placement.epoch {
            // A leader of an epoch this replica has not been told
            // about: ask the controller, the only authority.
            o.send(self.controller, Msg::FetchPlacement { bucket });
            return;
        }
        if checked && (epoch != durable.placement.epoch || src != durable.placement.leader) {
            return; // ignore_append_from_unknown_epoch: not our placement's leader
        }
        let durable = DurableBucket::edit(&mut replica.durable);
        let Ok(position) =
            durable
                .log
                .append_after(prev_position, prev_epoch, &entries, durable.commit_position)
        else {
            // ignore_append_out_of_order: the leader resends from the
            // position we last acknowledged (told, with `catch_up`).
            self.answer_gap(src, bucket, replica, o);
            return;
        };
        durable.commit_through(commit_position.min(position));
        durable.fold(self.config.retained_entries);
        o.send(
            src,
            Msg::Appended {
                bucket,
                epoch,
                position,
            },
        );
    }

    /// The controller asks this sync follower to promise, for each bucket,
    /// its fencing epoch: from now on it refuses appends of older epochs,
    /// so the old leader can no longer commit. It reports its durable log
    /// so that the controller can tell whether it holds the committed
    /// prefix: one `Fenced` for the whole `Fence` (or a few, at most
    /// `max_batch` buckets each).
    pub(super) fn on_fence(
        &self,
        state: &mut ReplicaState,
        controller: Id,
        fences: &[(Bucket, Epoch)],
        o: &mut Out<impl Emits>,
    ) {
        let mut reports = Vec::new();
        let mut promised = Tally::default();
        for &(bucket, epoch) in fences {
            let Some(replica) = state.buckets.get_mut(&bucket) else {
                continue;
            };
            if epoch <= replica.durable.placement.epoch || epoch < replica.durable.promised_epoch {
                continue; // ignore_stale_fence: that epoch is already settled
            }
            let promising = epoch > replica.durable.promised_epoch;
            promised.count_if(promising);
            if promising {
                DurableBucket::edit(&mut replica.durable).promised_epoch = epoch;
                replica.leader = LeaderState::new(&self.config);
                tracing::debug!(%bucket, %epoch, "fenced: promised the new epoch");
            }
            let durable = &replica.durable;
            reports.push(FenceReport {
                bucket,
                epoch,
                last_position: durable.log.last_position(),
                last_epoch: durable.log.last_epoch(),
            });
        }
        promised.log_if_any(|count| {
            tracing::info!("fenced {count} bucket(s): promised their new epochs")
        });
        for batch in batches(reports, self.config.max_batch) {
            o.send(controller, Msg::Fenced(batch));
        }
    }

    /// The controller published a placement. A newer epoch replaces this
    /// replica's placement and promise; its volatile leader state is
    /// dropped (clients retry by token). A replica that now leads appends
    /// its epoch-start entry and sends every follower what it lacks; it
    /// commits what it inherited once its sync followers hold that entry.
    /// Returns whether this replica took up the bucket's leadership at the
    /// new epoch (for the log line).
    pub(super) fn on_placement(
        &self,
        id: Id,
        state: &mut ReplicaState,
        bucket: Bucket,
        placement: BucketPlacement,
        o: &mut Out<impl Emits>,
    ) -> bool {
        let replica = match state.buckets.entry(bucket) {
            std::collections::btree_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::btree_map::Entry::Vacant(entry) => {
                if placement.role_of(id).is_none() {
                    return false; // ignore_placement_of_foreign_bucket
                }
                // A replica new to the bucket starts empty, one epoch behind,
                // so that the placement below is adopted.
                let mut fresh = DurableBucket::empty(placement.clone());
                fresh.placement.epoch = Epoch(placement.epoch.0.saturating_sub(1));
                fresh.promised_epoch = fresh.placement.epoch;
                entry.insert(BucketReplica::new(Arc::new(fresh), &self.config))
            }
        };
        if placement.epoch <= replica.durable.placement.epoch
            || placement.epoch < replica.durable.promised_epoch
        {
            return false; // ignore_older_placement
        }
        let durable = DurableBucket::edit(&mut replica.durable);
        let epoch = placement.epoch;
        durable.placement = placement;
        durable.promised_epoch = epoch;
        durable.moving_to = None;
        replica.leader = LeaderState::new(&self.config);
        if !durable.is_leader(id) {
            // An append of the new leader's may have come first and been
            // refused (its epoch was unknown here), and nothing resends it
            // where leaders do not resend: tell the leader how far this
            // replica has committed, as a restarted one does, so that it
            // sends what is missing. Without it a move that follows
            // another at once stalls, its barrier never acknowledged.
            if self.config.catch_up && durable.placement.role_of(id).is_some() {
                o.send(
                    durable.placement.leader,
                    Msg::Appended {
                        bucket,
                        epoch,
                        position: durable.commit_position,
                    },
                );
            }
            return false;
        }
        tracing::debug!(%bucket, %epoch, "leading");
        self.arm_hold_expiries(bucket, durable, o);
        self.append_as_leader(bucket, replica, Entry::epoch_start, o);
        self.commit_and_reply(bucket, replica, o);
        true
    }
}
