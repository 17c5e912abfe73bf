//! `saved state is durable state`: what each replica last saved — built,
//! as the runtime's store builds it, from the change records of the
//! buckets its steps noted (`berth_model::actor`, `stored_after`) — is
//! exactly its durable state in memory. The runtime saves a change, not
//! the whole bucket, and recovers by replaying the changes; this property
//! is what makes the checker notice a change that is recorded wrong or not
//! at all, in every state, before any crash needs to expose it. The same
//! holds for the controller, which saves its whole durable part (the map,
//! the failovers and the moves in progress) when a step changed it: a
//! change it forgot to save would otherwise show only if a crash came at
//! the one moment it matters.

use crate::history::BerthState;
use crate::properties::PropertySpec;
use berth_model::actor::{NodeState, Storage};

pub const SAVED_IS_DURABLE: &str = "saved state is durable state";

/// The property, checked in every scenario.
pub fn saved_property() -> PropertySpec {
    PropertySpec::always(
        SAVED_IS_DURABLE,
        |_, state| unsaved_change(state).is_none(),
        |_, state| unsaved_change(state),
        "what each replica last saved, rebuilt from its change records as recovery rebuilds it, is its durable state in memory; what the controller last saved is its map and the failovers and moves in progress",
    )
}

/// The controller or the first replica whose saved state differs from its
/// durable state (for a replica, the first bucket where it does).
pub fn unsaved_change(state: &BerthState) -> Option<String> {
    for (index, node) in state.actor_states.iter().enumerate() {
        if let NodeState::Controller(controller) = &**node {
            // Compared field by field here, not with the controller's own
            // `durable_differs`, so that a mistake there cannot hide itself.
            let Some(Some(Storage::Controller(saved))) = state.actor_storages.get(index) else {
                // Nothing saved yet: a restart starts from the scenario's
                // first map (version 1) with nothing in progress, so that
                // is all the controller may hold.
                if controller.map.version != 1
                    || !controller.fencing.is_empty()
                    || !controller.moving.is_empty()
                {
                    return Some(format!(
                        "the controller (actor {index}) saved nothing; in memory its map, failovers or moves changed"
                    ));
                }
                continue;
            };
            let differs = [
                (saved.map != controller.map).then_some("map"),
                (saved.fencing != controller.fencing).then_some("failovers in progress"),
                (saved.moving != controller.moving).then_some("moves in progress"),
            ];
            if let Some(part) = differs.into_iter().flatten().next() {
                return Some(format!(
                    "the controller (actor {index}) saved its {part} as it was before; in memory it changed"
                ));
            }
            continue;
        }
        let Some(replica) = node.as_replica() else {
            continue;
        };
        // Nothing saved yet: the replica still holds what it started with,
        // which a restart rebuilds the same way.
        let Some(Some(Storage::Replica(saved))) = state.actor_storages.get(index) else {
            continue;
        };
        let durable = replica.storage();
        if *saved == durable {
            continue;
        }
        let buckets = saved.keys().chain(durable.keys());
        for bucket in buckets {
            let (on_disk, in_memory) = (saved.get(bucket), durable.get(bucket));
            if on_disk != in_memory {
                return Some(format!(
                    "replica {index} saved {bucket} as {on_disk:?}; in memory it is {in_memory:?}"
                ));
            }
        }
    }
    None
}
