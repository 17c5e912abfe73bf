//! What particular runs must reach, beyond each scenario's own
//! sometimes-properties: code that only those runs can execute, whose
//! removal no always-property notices (it only refuses, or only costs).
//!
//! - `replacement promoted` (`--failovers 2` and more): at the first epoch
//!   change every sync follower holds the first epoch's prefix, so the
//!   controller's promotion check (the fenced follower's log ends in the
//!   epoch being replaced) cannot fail there. Only at a later change can a
//!   follower lack that epoch's start — and only a run that reaches a
//!   promotion there shows the check does not refuse every later one.
//! - `log folded` and `follower's log folded` (`--retained-entries N`): a
//!   replica's log starts after entries it folded into its state, and one
//!   of them is not the bucket's leader. Folding is what bounds a
//!   replica's memory; without it every property still holds. A leader
//!   and its followers fold by different paths (a leader keeps what its
//!   followers still lack), so each must be seen.

use crate::history::{BerthModel, BerthState};
use crate::properties::{
    committed_at_current_epoch, controller_map, initial_placement, PropertySpec,
};
use berth_model::{Bucket, Position};
use stateright::actor::Id;

pub const REPLACEMENT_PROMOTED: &str = "replacement promoted";

/// The property, for runs that allow two epoch changes or more.
pub fn replacement_promoted_property() -> PropertySpec {
    PropertySpec::sometimes(
        REPLACEMENT_PROMOTED,
        replacement_promoted,
        "a remote follower that took the sync role through one epoch change was promoted to leader at a later one, and committed under its epoch",
    )
}

/// `replacement promoted`: the controller's map names as leader a replica
/// that started as an async follower (it became a sync follower at one
/// epoch change, then leader at another), and it has committed an entry
/// of its epoch.
pub fn replacement_promoted(model: &BerthModel, state: &BerthState) -> bool {
    let Some(map) = controller_map(state) else {
        return false;
    };
    map.buckets.iter().enumerate().any(|(index, placement)| {
        let bucket = Bucket(index as u32);
        initial_placement(model, bucket)
            .is_some_and(|initial| initial.async_followers.contains(&placement.leader))
            && committed_at_current_epoch(state, bucket, placement)
    })
}

pub const LOG_FOLDED: &str = "log folded";
pub const FOLLOWER_LOG_FOLDED: &str = "follower's log folded";

/// The properties, for runs that fold logs (`--retained-entries`).
pub fn log_folded_properties() -> Vec<PropertySpec> {
    vec![
        PropertySpec::sometimes(
            LOG_FOLDED,
            |_, state| log_folded(state, |_| true),
            "a replica folded committed entries into its state: its log starts after them",
        ),
        PropertySpec::sometimes(
            FOLLOWER_LOG_FOLDED,
            |_, state| log_folded(state, |leads| !leads),
            "a replica that does not lead the bucket folded committed entries into its state",
        ),
    ]
}

/// Whether some replica's log of some bucket starts after position 0, of
/// a replica whose leading (of that bucket) `role` accepts.
pub fn log_folded(state: &BerthState, role: impl Fn(bool) -> bool) -> bool {
    state.actor_states.iter().enumerate().any(|(index, node)| {
        node.as_replica().is_some_and(|replica| {
            replica.buckets.iter().any(|(_, bucket)| {
                bucket.durable.log.start() > Position(0)
                    && role(bucket.durable.is_leader(Id::from(index)))
            })
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Scenario, ScenarioConfig};
    use berth_model::log::Entry;
    use berth_model::replica::DurableBucket;
    use berth_model::{Epoch, NodeState};
    use stateright::Model;
    use std::sync::Arc;

    /// Goal: `log folded` is not reached at the start, and is reached by a
    /// state whose one replica folded its log (a forged state: the run that
    /// must reach it is in the battery).
    #[test]
    fn log_folded_tells_a_folded_log_from_a_whole_one() {
        let config = ScenarioConfig {
            retained_entries: Some(1),
            ..ScenarioConfig::new(Scenario::Replication)
        };
        let mut state = config.build().init_states().remove(0);
        assert!(!log_folded(&state, |_| true));
        let index = state
            .actor_states
            .iter()
            .position(|node| node.as_replica().is_some())
            .unwrap();
        let mut node = (*state.actor_states[index]).clone();
        let NodeState::Replica(replica) = &mut node else {
            unreachable!("a replica")
        };
        let bucket = replica.buckets.get_mut(&Bucket(0)).unwrap();
        let durable = DurableBucket::edit(&mut bucket.durable);
        durable.log.push(Entry::noop(Epoch::FIRST));
        durable.log.push(Entry::noop(Epoch::FIRST));
        durable.log.compact_through(Position(1));
        state.actor_states[index] = Arc::new(node);
        assert!(log_folded(&state, |_| true));
        // Replica 1 leads the bucket: its folded log is a leader's.
        assert!(!log_folded(&state, |leads| !leads));
    }
}
