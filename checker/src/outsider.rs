//! The outsider (`--outsider`): an actor that sends, in its own name, what
//! only the controller or a bucket's leader may send — a fence, a new
//! placement, a move order, an append, an acknowledgement — and the property
//! that none of it changes anything.
//!
//! A replica decides whom to believe by the sender's identity, which the
//! runtime authenticates, never by what a message claims: a placement
//! naming a new leader is worth nothing unless the controller sent it. The
//! model's actors all play by the rules, so without an outsider every one
//! of those identity checks could be removed and no scenario would notice.
//! Each forged message is one the protocol would act on if it came from the
//! right sender, and each carries a mark the property looks for: the epoch
//! `OUTSIDER_EPOCH`, which the controller never reaches, or the outsider's
//! own token and identity.

use crate::history::{BerthModel, BerthState};
use crate::properties::PropertySpec;
use crate::scenario::contended_unit;
use berth_model::bucket::{Command, Op};
use berth_model::log::Entry;
use berth_model::messages::{FenceReport, Snapshot};
use berth_model::placement::{BucketPlacement, GroupLayout};
use berth_model::{BerthActor, Bucket, BucketState, Customer, Epoch, Msg, Position, Task, Token};
use stateright::actor::{Envelope, Id, Network};

pub const OUTSIDERS_IGNORED: &str = "outsiders are ignored";

/// The outsider's customer name, by which the property finds it (the
/// operator sends its commands with `Task::Send` too).
pub const OUTSIDER: &str = "outsider";

/// The epoch of every placement and fence the outsider forges: beyond any
/// the controller reaches in a scenario (its failover limit is at most
/// three epochs past the first), so a replica that holds it took it from
/// the outsider.
pub const OUTSIDER_EPOCH: Epoch = Epoch(9);

/// The outsider's script: each forged message to the replica it would
/// mislead. The sync follower is told to promise the outsider's epoch and
/// to lead at it, and is sent an entry of the outsider's own making; the
/// leader is ordered to move the bucket away and told that the outsider
/// holds its log. Where the bucket may move (a second group), the
/// destination's leader and the sync follower are also sent a snapshot
/// carrying the outsider's entry, in the name of the bucket's leader, and
/// the sync follower one naming the outsider as its group's leader: what a
/// replica takes a snapshot from is the sender, and a member takes it only
/// from its own placement's leader. Where buckets fail over (`controller`
/// given), the script is instead a forged fence report to the controller
/// (`forged_fence_report`).
pub fn tasks(groups: &[GroupLayout], client: u64, controller: Option<Id>) -> Vec<Task> {
    if let Some(controller) = controller {
        return vec![forged_fence_report(controller)];
    }
    let group = &groups[0];
    let bucket = Bucket(0);
    let sync = group.sync_followers[0];
    let forged = BucketPlacement {
        epoch: OUTSIDER_EPOCH,
        group: group.group,
        leader: sync,
        sync_followers: vec![group.leader],
        async_followers: group.async_followers.clone(),
    };
    let hold = Command {
        token: Token { client, seq: 0 },
        op: Op::Hold {
            unit: contended_unit(),
            customer: Customer::new("outsider"),
        },
    };
    let send = |to: Id, msg: Msg| Task::Send { to, msg };
    let snapshot = |to: Id, placement: BucketPlacement| {
        send(
            to,
            Msg::Snapshot(std::sync::Arc::new(Snapshot {
                bucket,
                epoch: Epoch::FIRST,
                placement,
                position: Position(0),
                position_epoch: Epoch(0),
                state: BucketState::default(),
                entries: vec![Entry::command(Epoch::FIRST, hold.clone())],
                commit_position: Position(1),
                chunk: None,
            })),
        )
    };
    // The bucket's own placement, naming its leader; and one naming the
    // outsider as the leader of the sync follower's group at the same
    // epoch, which a member takes only from its own placement's leader.
    // (A destination has no placement of its own to compare with: it
    // believes the leader a snapshot names, which is why only members of
    // the cluster, authenticated, can send it one.)
    let own = group.placement_at(Epoch::FIRST);
    let usurped = BucketPlacement {
        leader: Id::from(client as usize),
        ..own.clone()
    };
    let snapshots = groups
        .get(1)
        .map(|destination| {
            vec![
                snapshot(destination.leader, own.clone()),
                snapshot(sync, own.clone()),
                snapshot(sync, usurped),
            ]
        })
        .unwrap_or_default();
    let mut tasks = vec![
        send(sync, Msg::Fence(vec![(bucket, OUTSIDER_EPOCH)])),
        send(sync, Msg::Placements(vec![(bucket, forged.clone())])),
        send(
            sync,
            Msg::Append {
                bucket,
                epoch: Epoch::FIRST,
                prev_position: Position(0),
                prev_epoch: Epoch(0),
                entries: vec![Entry::command(Epoch::FIRST, hold)],
                commit_position: Position(1),
            },
        ),
        send(
            group.leader,
            Msg::MoveOut {
                bucket,
                epoch: Epoch::FIRST,
                destination: forged,
            },
        ),
        send(
            group.leader,
            Msg::Appended {
                bucket,
                epoch: Epoch::FIRST,
                position: Position(1),
            },
        ),
    ];
    tasks.extend(snapshots);
    if groups.len() == 1 {
        // A probe, which only the controller may send: its answer tells
        // which followers lag, and an answer to anyone who asks would let a
        // forged source aim the replica's datagrams at a third party. (Not
        // in a move: it multiplies the move's states by a third, and the
        // replica answers probes the same way there.)
        tasks.push(send(group.leader, Msg::Probe));
    }
    tasks
}

/// Where buckets fail over, the outsider's script is one message: it
/// tells the controller, in its own name, that it promised the epoch a
/// failover of the bucket fences (the first after the scenario's) and
/// holds the whole log — the report that makes the controller promote the
/// sender. Only a sync follower of the bucket may be promoted; the other
/// forgeries are the replication and cutover runs' (each forged message
/// multiplies the states).
fn forged_fence_report(controller: Id) -> Task {
    Task::Send {
        to: controller,
        msg: Msg::Fenced(vec![FenceReport {
            bucket: Bucket(0),
            epoch: Epoch::FIRST.next(),
            last_position: Position(1),
            last_epoch: Epoch::FIRST,
        }]),
    }
}

/// Every message in flight, as envelopes, on any kind of network.
/// (Stateright 0.31's `Network::iter_all` never moves past the second
/// message of an ordered channel, so it is walked here.)
fn in_flight(state: &BerthState) -> Box<dyn Iterator<Item = Envelope<&Msg>> + '_> {
    match &state.network {
        Network::Ordered(channels) => Box::new(channels.iter().flat_map(|((src, dst), queue)| {
            queue.iter().map(move |msg| Envelope {
                src: *src,
                dst: *dst,
                msg,
            })
        })),
        Network::UnorderedNonDuplicating(envelopes) => {
            Box::new(envelopes.keys().map(|e| Envelope {
                src: e.src,
                dst: e.dst,
                msg: &e.msg,
            }))
        }
        Network::UnorderedDuplicating(envelopes, _) => {
            Box::new(envelopes.iter().map(|e| Envelope {
                src: e.src,
                dst: e.dst,
                msg: &e.msg,
            }))
        }
    }
}

/// `outsiders are ignored`.
pub fn outsider_property() -> PropertySpec {
    PropertySpec::always(
        OUTSIDERS_IGNORED,
        |model, state| outsider_heeded(model, state).is_none(),
        outsider_heeded,
        "no replica acts on what an outsider sent in its own name: no promise, placement or move at the outsider's epoch, no entry of its making, no acknowledgement of its counted, no probe of its answered; and the controller makes no outsider a member of a bucket",
    )
}

/// A replica that acted on the outsider's word, named in one sentence.
pub fn outsider_heeded(model: &BerthModel, state: &BerthState) -> Option<String> {
    let outsider = model.actors.iter().position(|actor| {
        matches!(actor, BerthActor::Client(client) if client.customer == Customer::new(OUTSIDER))
    })?;
    let outsider_id = Id::from(outsider);
    let promoted = state.actor_states.iter().find_map(|node| {
        let controller = node.as_controller()?;
        controller
            .map
            .buckets
            .iter()
            .enumerate()
            .find(|(_, placement)| placement.role_of(outsider_id).is_some())
            .map(|(index, _)| format!("the controller made the outsider a member of b{index}"))
    });
    if promoted.is_some() {
        return promoted;
    }
    if let Some(answer) = in_flight(state)
        .find(|envelope| envelope.dst == outsider_id && matches!(envelope.msg, Msg::Alive { .. }))
    {
        return Some(format!(
            "replica {} answered the outsider's probe",
            usize::from(answer.src)
        ));
    }
    state
        .actor_states
        .iter()
        .enumerate()
        .find_map(|(index, node)| {
            let replica = node.as_replica()?;
            replica.buckets.iter().find_map(|(bucket, copy)| {
                let durable = &copy.durable;
                let heeded =
                    if durable.promised_epoch == OUTSIDER_EPOCH {
                        "promised the outsider's epoch"
                    } else if durable.placement.epoch == OUTSIDER_EPOCH {
                        "took the outsider's placement"
                    } else if durable
                        .moving_to
                        .as_ref()
                        .is_some_and(|to| to.epoch == OUTSIDER_EPOCH)
                    {
                        "took the outsider's move order"
                    } else if durable.log.iter().any(|(_, entry)| {
                        entry.token().is_some_and(|t| t.client == outsider as u64)
                    }) {
                        "logged an entry of the outsider's making"
                    } else if copy.leader.match_positions.contains_key(&outsider_id) {
                        "counted the outsider's acknowledgement"
                    } else {
                        return None;
                    };
                Some(format!("replica {index} {heeded} for {bucket}"))
            })
        })
}
