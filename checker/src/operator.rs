//! `one move, one epoch`: in a move without failovers, each move the
//! operator asks for changes the bucket's placement once. `berth move`
//! resends its request until the map shows the move, so the controller
//! sees copies of it during the move and after; a copy that started
//! another move (the bucket "moved" onto the group it is already on,
//! sealed and re-epoched for nothing) would leave every safety property
//! holding, and this one is what tells. With `--move-back` the operator
//! then asks for the bucket back on its first group: two moves, two
//! epochs, and `moved back` must be reached.

use crate::history::{BerthModel, BerthState};
use crate::properties::{controller_map, initial_placement, PropertySpec};
use crate::scenario::OPERATOR;
use berth_model::{BerthActor, Bucket, Customer, Epoch, Msg};

pub const ONE_MOVE_ONE_EPOCH: &str = "one move, one epoch";
pub const MOVED_BACK: &str = "moved back";

/// The property, checked where the operator asks for a move and the
/// controller does not fail over (`cutover`).
pub fn one_move_property() -> PropertySpec {
    PropertySpec::always(
        ONE_MOVE_ONE_EPOCH,
        |model, state| extra_change(model, state).is_none(),
        extra_change,
        "each move the operator asks for (its request resent or not) changes the bucket's placement at most once",
    )
}

/// `moved back`: the bucket left its first group and is placed on it
/// again, at an epoch two moves on.
pub fn moved_back_property() -> PropertySpec {
    PropertySpec::sometimes(MOVED_BACK, moved_back, "the bucket moved to another group and back, the second move's destination holding the copy it had moved out")
}

fn moved_back(model: &BerthModel, state: &BerthState) -> bool {
    let Some(map) = controller_map(state) else {
        return false;
    };
    map.buckets.iter().enumerate().any(|(index, placement)| {
        initial_placement(model, Bucket(index as u32)).is_some_and(|initial| {
            placement.group == initial.group && placement.epoch > initial.epoch.next()
        })
    })
}

/// How many moves the operator asks for: its `MoveBucket` requests, a
/// resent copy (the same request again) not counted.
fn moves_asked(model: &BerthModel) -> u64 {
    let operator = Customer::new(OPERATOR);
    model
        .actors
        .iter()
        .filter_map(|actor| match actor {
            BerthActor::Client(client) if client.customer == operator => Some(&client.tasks),
            _ => None,
        })
        .map(|tasks| {
            let requests: Vec<&Msg> = tasks
                .iter()
                .filter_map(|task| match task {
                    berth_model::client::Task::Send {
                        msg: msg @ Msg::MoveBucket { .. },
                        ..
                    } => Some(msg),
                    _ => None,
                })
                .collect();
            requests
                .iter()
                .enumerate()
                .filter(|(at, msg)| *at == 0 || requests[at - 1] != **msg)
                .count() as u64
        })
        .sum()
}

/// The bucket whose placement moved on by more epochs than the moves
/// asked for, named in one sentence.
pub fn extra_change(model: &BerthModel, state: &BerthState) -> Option<String> {
    let map = controller_map(state)?;
    let asked = moves_asked(model).max(1);
    map.buckets
        .iter()
        .enumerate()
        .find_map(|(index, placement)| {
            let bucket = Bucket(index as u32);
            let initial = initial_placement(model, bucket)?;
            (placement.epoch > Epoch(initial.epoch.0 + asked)).then(|| {
                format!(
                    "{bucket} is at {} after {asked} move(s) asked for from {}",
                    placement.epoch, initial.epoch
                )
            })
        })
}
