//! `saved state is durable state`: what each replica last saved — built,
//! as the runtime's store builds it, from the change records of the
//! buckets its steps noted (`berth_model::actor`, `stored_after`) — is
//! exactly its durable state in memory. The runtime saves a change, not
//! the whole bucket, and recovers by replaying the changes; this property
//! is what makes the checker notice a change that is recorded wrong or not
//! at all, in every state, before any crash needs to expose it.

use crate::history::BerthState;
use crate::properties::PropertySpec;
use berth_model::actor::Storage;

pub const SAVED_IS_DURABLE: &str = "saved state is durable state";

/// The property, checked in every scenario.
pub fn saved_property() -> PropertySpec {
    PropertySpec::always(
        SAVED_IS_DURABLE,
        |_, state| unsaved_change(state).is_none(),
        unsaved_change,
        "what each replica last saved, rebuilt from its change records as recovery rebuilds it, is its durable state in memory",
    )
}

/// The first replica whose saved state differs from its durable state,
/// and the first bucket where it does.
pub fn unsaved_change(state: &BerthState) -> Option<String> {
    for (index, node) in state.actor_states.iter().enumerate() {
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
