//! What a run with more than one epoch change for a bucket must reach
//! (`--failovers 2` and more): a promotion at a later change, which reads
//! what the earlier change left behind.
//!
//! At the first epoch change every sync follower holds the first epoch's
//! prefix, so the controller's promotion check (the fenced follower's log
//! ends in the epoch being replaced) cannot fail there. Only at a later
//! change can a follower lack that epoch's start — and only a run that
//! reaches a promotion there shows the check is not simply refusing
//! every later promotion.

use crate::history::{BerthModel, BerthState};
use crate::properties::{
    committed_at_current_epoch, controller_map, initial_placement, PropertySpec,
};
use berth_model::Bucket;

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
