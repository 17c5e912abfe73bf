//! Helpers for the engine tests: drive one actor through the `Actor` trait
//! and look at the commands it emitted (the openraft style).

use crate::actor::{BerthActor, NodeState, Storage};
use crate::messages::{Msg, Timer};
use crate::placement::BucketPlacement;
use crate::types::{Epoch, GroupId};
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
    let mut cow = Cow::Borrowed(&*state);
    let mut out = Out::new();
    actor.on_msg(Id::from(id), &mut cow, Id::from(src), msg, &mut out);
    *state = cow.into_owned();
    out.into_iter().collect()
}

/// Fires `timer` at `actor`, running as `id`.
pub fn fire(actor: &BerthActor, state: &mut NodeState, id: usize, timer: Timer) -> Commands {
    let mut cow = Cow::Borrowed(&*state);
    let mut out = Out::new();
    actor.on_timeout(Id::from(id), &mut cow, &timer, &mut out);
    *state = cow.into_owned();
    out.into_iter().collect()
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
