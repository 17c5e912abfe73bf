//! Engine tests of catching up (`catch_up`), log folding
//! (`retained_entries`) and chunked snapshots (`snapshot_chunk`).

use super::*;
use crate::actor::{BerthActor, NodeState, Storage};
use crate::bucket::{Command, Op};
use crate::test_support::{self, fire, placement, ASYNC, CLIENT, CONTROLLER, LEADER, SYNC};
use crate::types::{Epoch, InventoryUnit};
use stateright::actor::{Actor, Command as Cmd, Out};

fn config() -> ProtocolConfig {
    ProtocolConfig {
        catch_up: true,
        leader_resends: 2,
        max_append_entries: Some(32),
        ..ProtocolConfig::default()
    }
}

fn replica(config: ProtocolConfig) -> BerthActor {
    BerthActor::Replica(ReplicaActor {
        initial_map: PlacementMap::uniform(1, placement(1, LEADER, SYNC, ASYNC)),
        region: "madrid-a".into(),
        controller: Id::from(CONTROLLER),
        config,
    })
}

fn request(seq: u32) -> Msg {
    Msg::Request {
        bucket: Bucket(0),
        epoch: Epoch(1),
        command: Command {
            token: Token { client: 4, seq },
            op: Op::Hold {
                unit: InventoryUnit::new("BCN-JFK-2026-07-14", format!("C{seq}")),
                customer: crate::Customer::new("alice"),
            },
        },
    }
}

fn appended(position: u64) -> Msg {
    Msg::Appended {
        bucket: Bucket(0),
        epoch: Epoch(1),
        position: Position(position),
    }
}

fn durable(state: &NodeState) -> &DurableBucket {
    &state.as_replica().unwrap().buckets[&Bucket(0)].durable
}

/// The messages sent to `to`.
fn sent_to(commands: &test_support::Commands, to: usize) -> Vec<Msg> {
    commands
        .iter()
        .filter_map(|command| match command {
            Cmd::Send(dst, msg) if usize::from(*dst) == to => Some(msg.clone()),
            _ => None,
        })
        .collect()
}

/// A leader that wrote `writes` entries, all held by the sync follower
/// and none by the async follower.
fn leader_with_writes(actor: &BerthActor, writes: u32) -> NodeState {
    let mut leader = test_support::start(actor, LEADER);
    for seq in 0..writes {
        test_support::deliver(actor, &mut leader, LEADER, CLIENT, request(seq));
        test_support::deliver(
            actor,
            &mut leader,
            LEADER,
            SYNC,
            appended(u64::from(seq) + 1),
        );
    }
    leader
}

/// Goal: a follower behind an idle bucket is caught up without new
/// writes. Once the leader's resends ran out it keeps telling the lagging
/// follower where its log ends; the follower, unable to place that,
/// answers with its commit; the leader takes that as the sign and sends
/// what it lacks, with its resends re-armed.
#[test]
fn a_follower_behind_an_idle_bucket_is_caught_up() {
    let actor = replica(config());
    let mut leader = leader_with_writes(&actor, 3);
    // The resends run out (the async follower was down).
    for _ in 0..2 {
        let commands = fire(&actor, &mut leader, LEADER, Timer::Replicate(Bucket(0)));
        assert_eq!(sent_to(&commands, ASYNC).len(), 1, "{commands:?}");
    }
    let commands = fire(&actor, &mut leader, LEADER, Timer::Replicate(Bucket(0)));
    let heartbeat = sent_to(&commands, ASYNC);
    assert!(
        matches!(&heartbeat[..], [Msg::Append { prev_position: Position(3), entries, .. }] if entries.is_empty()),
        "a heartbeat after the resends ran out: {commands:?}"
    );
    assert!(commands
        .iter()
        .any(|c| matches!(c, Cmd::SetTimer(Timer::Replicate(_), _))));
    // The follower, back, cannot place it and answers with its commit.
    let mut follower = test_support::start(&actor, ASYNC);
    let commands =
        test_support::deliver(&actor, &mut follower, ASYNC, LEADER, heartbeat[0].clone());
    assert_eq!(sent_to(&commands, LEADER), [appended(0)]);
    // The leader sends the log and re-arms its resends.
    let commands = test_support::deliver(&actor, &mut leader, LEADER, ASYNC, appended(0));
    let append = sent_to(&commands, ASYNC);
    assert!(
        matches!(&append[..], [Msg::Append { entries, .. }] if entries.len() == 3),
        "{commands:?}"
    );
    let replica = &leader.as_replica().unwrap().buckets[&Bucket(0)];
    assert_eq!(replica.leader.retransmits_left, 2);
    let commands = test_support::deliver(&actor, &mut follower, ASYNC, LEADER, append[0].clone());
    assert_eq!(sent_to(&commands, LEADER), [appended(3)]);
    assert_eq!(durable(&follower).log.last_position(), Position(3));
}

/// Goal: a recovering follower tells each leader how far it has
/// committed, and a leader whose follower holds its log but missed the
/// commit tells it the commit.
#[test]
fn a_recovering_follower_reports_its_commit() {
    let actor = replica(config());
    let mut follower = test_support::start(&actor, SYNC);
    let storage = match &follower {
        NodeState::Replica(state) => Some(Storage::Replica(state.storage())),
        _ => unreachable!(),
    };
    let mut out = Out::new();
    follower = actor.on_start(Id::from(SYNC), &storage, &mut out);
    let commands: test_support::Commands = out.into_iter().collect();
    assert_eq!(sent_to(&commands, LEADER), [appended(0)]);
    assert!(durable(&follower).log.last_position() == Position(0));
    // A leader that knows the follower holds everything but whose commit
    // the follower lacks sends the commit.
    let mut leader = leader_with_writes(&actor, 1);
    let commands = test_support::deliver(&actor, &mut leader, LEADER, SYNC, appended(0));
    assert!(
        matches!(&sent_to(&commands, SYNC)[..], [Msg::Append { commit_position: Position(1), entries, .. }] if entries.is_empty()),
        "{commands:?}"
    );
    // Without `catch_up`, nothing is said.
    let quiet = replica(ProtocolConfig::default());
    let mut out = Out::new();
    quiet.on_start(Id::from(SYNC), &storage, &mut out);
    assert_eq!(out.into_iter().count(), 0);
}

/// Goal: with `retained_entries`, committed entries beyond the bound are
/// folded into the committed state (the last entry always stays; a leader
/// keeps, within 8 times the bound, what a follower still lacks), and a
/// follower behind the log's start is sent a snapshot.
#[test]
fn committed_entries_beyond_the_bound_are_folded() {
    let actor = replica(ProtocolConfig {
        retained_entries: Some(1),
        ..config()
    });
    // The async follower lacks everything: the leader keeps it 8 times
    // the bound (12 - 8), no more.
    let leader = leader_with_writes(&actor, 12);
    let log = &durable(&leader).log;
    assert_eq!(log.start(), Position(4));
    assert_eq!(log.last_position(), Position(12));
    assert_eq!(durable(&leader).applied.outcomes.len(), 12);
    // Without followers to keep entries for, the bound alone.
    let mut alone = DurableBucket::clone(durable(&leader));
    alone.fold(Some(1));
    assert_eq!(alone.log.start(), Position(11));
    let zero = replica(ProtocolConfig {
        retained_entries: Some(0),
        ..config()
    });
    let mut leader = leader_with_writes(&zero, 2);
    assert_eq!(durable(&leader).log.start(), Position(1), "the last stays");
    let commands = test_support::deliver(&zero, &mut leader, LEADER, ASYNC, appended(0));
    assert!(
        matches!(&sent_to(&commands, ASYNC)[..], [Msg::Snapshot(_)]),
        "{commands:?}"
    );
}

/// Goal: a snapshot larger than a chunk travels in chunks. The receiver
/// stages them in order without saving, answers duplicates and gaps with
/// how many it holds, installs only the complete snapshot (with the same
/// state as the leader's), and a receiver without the first chunks asks
/// from the start.
#[test]
fn a_snapshot_travels_in_chunks_and_installs_once_complete() {
    let chunked = replica(ProtocolConfig {
        retained_entries: Some(0),
        snapshot_chunk: Some(2),
        ..config()
    });
    let mut leader = leader_with_writes(&chunked, 3);
    let mut follower = test_support::start(&chunked, ASYNC);
    let commands = test_support::deliver(&chunked, &mut leader, LEADER, ASYNC, appended(0));
    let mut chunk = sent_to(&commands, ASYNC).remove(0);
    // Pinned when the follower first lagged behind the log's start.
    let Msg::Snapshot(first) = &chunk else {
        panic!("{chunk:?}")
    };
    let position = first.position;
    let count = first.chunk.unwrap().count;
    assert!(count >= 2, "{first:?}");
    let received = |chunks| Msg::SnapshotReceived {
        bucket: Bucket(0),
        epoch: Epoch(1),
        position,
        chunks,
    };
    // An answer about another snapshot (its position differs) moves
    // nothing on.
    let stale = Msg::SnapshotReceived {
        bucket: Bucket(0),
        epoch: Epoch(1),
        position: Position(position.0 + 1),
        chunks: count,
    };
    let commands = test_support::deliver(&chunked, &mut leader, LEADER, ASYNC, stale);
    assert!(sent_to(&commands, ASYNC).is_empty(), "{commands:?}");
    let first_chunk = chunk.clone();
    // A receiver that lacks the first chunks asks from the start.
    let mut stranger = test_support::start(&chunked, ASYNC);
    for index in 0..count {
        let Msg::Snapshot(snapshot) = &chunk else {
            panic!("{chunk:?}")
        };
        assert_eq!(snapshot.chunk.unwrap().index, index);
        assert!(snapshot.state.units.len() + snapshot.state.outcomes.len() <= 2);
        if index > 0 {
            let commands =
                test_support::deliver(&chunked, &mut stranger, ASYNC, LEADER, chunk.clone());
            assert_eq!(sent_to(&commands, LEADER), [received(0)]);
        }
        if index == 1 {
            // A chunk of another snapshot (another position) does not join
            // the staged one: the receiver asks for that one from the start.
            let mut mixer = test_support::start(&chunked, ASYNC);
            test_support::deliver(&chunked, &mut mixer, ASYNC, LEADER, first_chunk.clone());
            let mut other = (**snapshot).clone();
            other.position = Position(position.0 + 1);
            let other = Msg::Snapshot(std::sync::Arc::new(other));
            let commands = test_support::deliver(&chunked, &mut mixer, ASYNC, LEADER, other);
            let asked = Msg::SnapshotReceived {
                bucket: Bucket(0),
                epoch: Epoch(1),
                position: Position(position.0 + 1),
                chunks: 0,
            };
            assert_eq!(sent_to(&commands, LEADER), [asked]);
        }
        let commands = test_support::deliver(&chunked, &mut follower, ASYNC, LEADER, chunk.clone());
        if index + 1 < count {
            assert_eq!(sent_to(&commands, LEADER), [received(index + 1)]);
            assert!(!commands.iter().any(|c| matches!(c, Cmd::Save(_))));
            assert_eq!(durable(&follower).commit_position, Position(0));
            // A duplicate is answered with the same count.
            let again =
                test_support::deliver(&chunked, &mut follower, ASYNC, LEADER, chunk.clone());
            assert_eq!(sent_to(&again, LEADER), [received(index + 1)]);
            let commands =
                test_support::deliver(&chunked, &mut leader, LEADER, ASYNC, received(index + 1));
            chunk = sent_to(&commands, ASYNC).remove(0);
        } else {
            assert!(matches!(commands[0], Cmd::Save(_)), "{commands:?}");
            assert_eq!(sent_to(&commands, LEADER), [appended(3)], "then entry 3");
        }
    }
    // The state at the pinned position, then the entries after it.
    assert_eq!(durable(&follower).commit_position, position);
    assert_eq!(
        durable(&follower).state_through_last(),
        durable(&leader).applied
    );
    assert!(follower.as_replica().unwrap().staging.is_empty());
    // Installed: the leader forgets the pinned state.
    test_support::deliver(&chunked, &mut leader, LEADER, ASYNC, appended(3));
    let replica = &leader.as_replica().unwrap().buckets[&Bucket(0)];
    assert!(replica.leader.snapshots.is_empty());
    // A later copy of a chunk reaches the installed receiver, which holds
    // no staging for it and asks from the start; the leader, with nothing
    // pinned, sends what the receiver lacks — here nothing, then, after a
    // new write, the entry (a dropped copy's entries are not lost).
    let commands = test_support::deliver(&chunked, &mut leader, LEADER, ASYNC, received(0));
    assert!(sent_to(&commands, ASYNC).is_empty(), "{commands:?}");
    test_support::deliver(&chunked, &mut leader, LEADER, CLIENT, request(9));
    let commands = test_support::deliver(&chunked, &mut leader, LEADER, ASYNC, received(0));
    assert!(
        matches!(&sent_to(&commands, ASYNC)[..], [Msg::Append { prev_position, entries, .. }]
            if *prev_position == Position(3) && entries.len() == 1),
        "{commands:?}"
    );
}
