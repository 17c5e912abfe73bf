//! `one move, one epoch`: in a move without failovers, the operator's one
//! request changes the bucket's placement once. `berth move` resends its
//! request until the map shows the move, so the controller sees copies of
//! it during the move and after; a copy that started another move (the
//! bucket "moved" onto the group it is already on, sealed and re-epoched
//! for nothing) would leave every safety property holding, and this one
//! is what tells.

use crate::history::{BerthModel, BerthState};
use crate::properties::{controller_map, initial_placement, PropertySpec};
use berth_model::Bucket;

pub const ONE_MOVE_ONE_EPOCH: &str = "one move, one epoch";

/// The property, checked where the operator asks for a move and the
/// controller does not fail over (`cutover`).
pub fn one_move_property() -> PropertySpec {
    PropertySpec::always(
        ONE_MOVE_ONE_EPOCH,
        |model, state| extra_change(model, state).is_none(),
        extra_change,
        "the operator asks once for a move (and resends the request): the bucket's placement changes at most once",
    )
}

/// The bucket whose placement moved on by more than the one epoch a move
/// takes, named in one sentence.
pub fn extra_change(model: &BerthModel, state: &BerthState) -> Option<String> {
    let map = controller_map(state)?;
    map.buckets
        .iter()
        .enumerate()
        .find_map(|(index, placement)| {
            let bucket = Bucket(index as u32);
            let initial = initial_placement(model, bucket)?;
            (placement.epoch > initial.epoch.next()).then(|| {
                format!(
                    "{bucket} is at {} after one move from {}",
                    placement.epoch, initial.epoch
                )
            })
        })
}
