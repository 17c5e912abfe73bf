//! Helpers for the engine tests: drive one actor through the `Actor` trait
//! and look at the commands it emitted (the openraft style).

use crate::actor::{BerthActor, NodeState, Storage, StorageChange};
use crate::messages::{Msg, Timer};
use crate::placement::BucketPlacement;
use crate::replica::BucketChange;
use crate::types::{Bucket, Epoch, GroupId};
use stateright::actor::{Actor, Command, Id, Out};
use std::borrow::Cow;

pub const CONTROLLER: usize = 0;
pub const LEADER: usize = 1;
pub const SYNC: usize = 2;
pub const ASYNC: usize = 3;
pub const CLIENT: usize = 4;

/// What one step emitted.
pub type Commands = Vec<Command<Msg, Timer, (), Storage>>;

/// Group 1 at `epoch`: `leader`, one sync and one async follower.
pub fn placement(epoch: u64, leader: usize, sync: usize, remote: usize) -> BucketPlacement {
    BucketPlacement {
        epoch: Epoch(epoch),
        group: GroupId(1),
        leader: Id::from(leader),
        sync_followers: vec![Id::from(sync)],
        async_followers: vec![Id::from(remote)],
    }
}

/// Starts `actor` as actor `id` with nothing saved.
pub fn start(actor: &BerthActor, id: usize) -> NodeState {
    actor.on_start(Id::from(id), &None, &mut Out::new())
}

/// Delivers `msg` from `src` to `actor`, running as `id`.
pub fn deliver(
    actor: &BerthActor,
    state: &mut NodeState,
    id: usize,
    src: usize,
    msg: Msg,
) -> Commands {
    let mut in_place = state.clone();
    let mut in_place_out = Out::new();
    let saved = actor.on_msg_in_place(
        Id::from(id),
        &mut in_place,
        Id::from(src),
        msg.clone(),
        &mut in_place_out,
    );
    let before = state.clone();
    let mut cow = Cow::Borrowed(&*state);
    let mut out = Out::new();
    actor.on_msg(Id::from(id), &mut cow, Id::from(src), msg, &mut out);
    *state = cow.into_owned();
    agree(
        &before,
        state,
        out.into_iter().collect(),
        &mut in_place,
        in_place_out,
        saved,
    )
}

/// Checks that the runtime's in-place step (`on_msg_in_place`) did what
/// the checker's step did: the same state, the same commands but `Save`,
/// and "durable state changed" exactly when the checker's step saved; and
/// that the change it hands the runtime's store names exactly the buckets
/// whose durable state differs.
/// Every engine test runs both, so each is also a test of that.
fn agree(
    before: &NodeState,
    state: &NodeState,
    commands: Commands,
    in_place: &mut NodeState,
    in_place_out: Out<BerthActor>,
    saved: bool,
) -> Commands {
    assert_eq!(in_place, state, "the in-place step left another state");
    let unsaved: Vec<String> = commands
        .iter()
        .filter(|command| !matches!(command, Command::Save(_)))
        .map(|command| format!("{command:?}"))
        .collect();
    let in_place_commands: Vec<String> = in_place_out
        .into_iter()
        .map(|command| format!("{command:?}"))
        .collect();
    assert_eq!(
        unsaved, in_place_commands,
        "the in-place step sent otherwise"
    );
    let checker_saved = commands
        .iter()
        .any(|command| matches!(command, Command::Save(_)));
    match state {
        // A replica's in-place step says "may have changed" for every
        // step that took a bucket for change; the store tells exactly.
        NodeState::Replica(_) => assert!(
            saved || !checker_saved,
            "the in-place step missed a change of durable state"
        ),
        _ => assert_eq!(saved, checker_saved, "the in-place step misjudged the save"),
    }
    if let (NodeState::Replica(before), NodeState::Replica(after)) = (before, state) {
        let (before, after) = (before.storage(), after.storage());
        let differing: Vec<Bucket> = before
            .keys()
            .chain(after.keys())
            .filter(|bucket| before.get(bucket) != after.get(bucket))
            .copied()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let Some(StorageChange::Buckets(named)) = in_place.take_storage_change() else {
            unreachable!("a replica's change is by bucket")
        };
        let named: Vec<Bucket> = named.iter().map(|(bucket, _)| *bucket).collect();
        assert_eq!(
            saved,
            !named.is_empty(),
            "the in-place step's answer and the buckets it named disagree"
        );
        assert!(
            differing.iter().all(|bucket| named.contains(bucket)),
            "the change names {named:?}, not every changed bucket of {differing:?}"
        );
        // The store records exactly the buckets that changed.
        for bucket in &named {
            let recorded = match (before.get(bucket), after.get(bucket)) {
                (Some(old), Some(new)) => BucketChange::between(old, new).is_some(),
                (None, None) => false,
                _ => true,
            };
            assert_eq!(
                recorded,
                differing.contains(bucket),
                "bucket {bucket:?}: recorded {recorded}, changed {}",
                differing.contains(bucket)
            );
        }
    }
    commands
}

/// Fires `timer` at `actor`, running as `id`.
pub fn fire(actor: &BerthActor, state: &mut NodeState, id: usize, timer: Timer) -> Commands {
    let mut in_place = state.clone();
    let mut in_place_out = Out::new();
    let saved = actor.on_timeout_in_place(Id::from(id), &mut in_place, &timer, &mut in_place_out);
    let before = state.clone();
    let mut cow = Cow::Borrowed(&*state);
    let mut out = Out::new();
    actor.on_timeout(Id::from(id), &mut cow, &timer, &mut out);
    *state = cow.into_owned();
    agree(
        &before,
        state,
        out.into_iter().collect(),
        &mut in_place,
        in_place_out,
        saved,
    )
}

/// The messages among `commands`.
pub fn sent(commands: &Commands) -> Vec<&Msg> {
    commands
        .iter()
        .filter_map(|command| match command {
            Command::Send(_, msg) => Some(msg),
            _ => None,
        })
        .collect()
}
