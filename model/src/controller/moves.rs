//! The operator's moves (cutover): a move is saved, the source leader
//! asked to stream the bucket to the destination group and seal it with a
//! barrier, and the destination published only once the source reports
//! the barrier everywhere it must be.

use super::{ControllerActor, ControllerState, Outbox};
use crate::messages::{Emits, Msg};
use crate::placement::BucketPlacement;
use crate::types::{Bucket, Epoch, GroupId};
use crate::variant::Variant;
use serde::{Deserialize, Serialize};
use stateright::actor::{Id, Out};

/// A live move (cutover) waiting for the source's barrier.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Moving {
    pub bucket: Bucket,
    /// The source's epoch; the destination takes over at the next one.
    pub epoch: Epoch,
    pub destination: BucketPlacement,
}

impl ControllerActor {
    /// Whether the operator may start moving `bucket` to `group` now; if
    /// not, why. A planned move waits while a group involved is over its
    /// lag budget (the Harbor Point notes, docs/protocol.md: lag budgets "can pause planned
    /// topology changes until the budget is back inside bounds"): moving
    /// load onto or off a group whose remote copy is behind widens the
    /// window of writes a regional loss would take.
    pub fn may_move(
        &self,
        state: &ControllerState,
        bucket: Bucket,
        group: GroupId,
    ) -> Result<(), String> {
        let Some(placement) = state.map.placement(bucket) else {
            return Err(format!("there is no bucket {bucket}"));
        };
        if !self.groups.iter().any(|layout| layout.group == group) {
            return Err(format!("there is no group {}", group.0));
        }
        if state.fencing.contains_key(&bucket) {
            return Err(format!("{bucket} is being failed over"));
        }
        let involved = [placement.group, group];
        let over: Vec<String> = state
            .liveness
            .lagging
            .values()
            .flat_map(|lagging| lagging.iter())
            .filter(|lag| {
                state
                    .map
                    .placement(lag.bucket)
                    .is_some_and(|p| involved.contains(&p.group))
            })
            .map(ToString::to_string)
            .collect();
        if let Some(first) = over.first() {
            let more = match over.len() {
                1 => String::new(),
                n => format!(" (and {} more lagging followers)", n - 1),
            };
            return Err(format!(
                "a group involved (group {} or {}) is over its lag budget: {first}{more}; retry once it has caught up",
                placement.group.0, group.0
            ));
        }
        Ok(())
    }

    /// Starts moving `bucket` to `group`, which `may_move` admitted: the
    /// destination placement is saved, then the source leader is asked to
    /// stream the bucket and seal it with a barrier. The map changes only
    /// once the barrier is everywhere it must be (`MovedOut`). The
    /// operator's command resends its request until the map shows the
    /// move, so a request for a move in progress or done is ignored.
    pub(super) fn start_move(
        &self,
        state: &mut ControllerState,
        bucket: Bucket,
        group: GroupId,
        out: &mut Outbox,
        o: &mut Out<impl Emits>,
    ) {
        let Some(placement) = state.map.placement(bucket).cloned() else {
            return;
        };
        let Some(layout) = self.groups.iter().find(|layout| layout.group == group) else {
            return; // ignore_move_to_unknown_group
        };
        if placement.group == group || state.moving.contains_key(&bucket) {
            return; // already there, or on its way
        }
        let destination = layout.placement_at(placement.epoch.next());
        o.send(
            placement.leader,
            Msg::MoveOut {
                bucket,
                epoch: placement.epoch,
                destination: destination.clone(),
            },
        );
        if self.config.variant == Variant::EarlySwitch {
            // The broken hand-off: routing switches now, before the
            // destination holds anything.
            self.publish(state, bucket, destination, out);
            return;
        }
        state.moving.insert(
            bucket,
            Moving {
                bucket,
                epoch: placement.epoch,
                destination,
            },
        );
    }

    /// The source leader reports its barrier committed in its group and
    /// durable at the destination: publish the destination, if this is the
    /// move in progress and the map is still at the source's epoch.
    pub(super) fn on_moved_out(
        &self,
        state: &mut ControllerState,
        src: Id,
        bucket: Bucket,
        epoch: Epoch,
        out: &mut Outbox,
    ) {
        let Some(moving) = state.moving.get(&bucket).cloned() else {
            return; // ignore_moved_out_of_aborted_move
        };
        // Every publication of the bucket drops its move (`publish`), so
        // while a move is in progress the map is at `moving.epoch`: the
        // report's epoch compared with it is the compare-and-set.
        if moving.epoch != epoch {
            return;
        }
        if src != state.map.buckets[bucket.0 as usize].leader {
            return;
        }
        tracing::info!(
            %bucket,
            epoch = %moving.destination.epoch,
            group = moving.destination.group.0,
            "moved"
        );
        self.publish(state, bucket, moving.destination, out);
    }
}
