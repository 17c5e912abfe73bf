//! Engine tests in the openraft style: drive one replica through the
//! `Actor` trait and compare the commands it emitted.

use super::*;
use crate::actor::{BerthActor, NodeState, Storage};
use crate::bucket::{Command, Op, UnitStatus};
use crate::log::{Entry, Log};
use crate::messages::{FenceReport, ReadPath};
use crate::messages::{ReadReply, Reply};
use crate::test_support::{self, placement, sent, ASYNC, CLIENT, CONTROLLER, LEADER, SYNC};
use crate::types::{Epoch, InventoryUnit};
use crate::variant::Variant;
use stateright::actor::Command as Cmd;

fn replica() -> BerthActor {
    BerthActor::Replica(ReplicaActor {
        initial_map: PlacementMap::uniform(1, placement(1, LEADER, SYNC, ASYNC)),
        region: "madrid-a".into(),
        controller: Id::from(CONTROLLER),
        config: ProtocolConfig::default(),
    })
}

fn hold_request() -> Msg {
    Msg::Request {
        bucket: Bucket(0),
        epoch: Epoch(1),
        command: Command {
            token: Token { client: 4, seq: 0 },
            op: Op::Hold {
                unit: InventoryUnit::new("BCN-JFK-2026-07-14", "C14"),
                customer: crate::Customer::new("alice"),
            },
        },
    }
}

/// Delivers `msg` from `src` to the replica with id `id`; returns the
/// emitted commands.
fn deliver(state: &mut NodeState, id: usize, src: usize, msg: Msg) -> test_support::Commands {
    test_support::deliver(&replica(), state, id, src, msg)
}

fn start(id: usize) -> NodeState {
    test_support::start(&replica(), id)
}

fn replies(commands: &[Cmd<Msg, Timer, (), Storage>]) -> usize {
    commands
        .iter()
        .filter(|c| matches!(c, Cmd::Send(_, Msg::Reply(_))))
        .count()
}

/// Goal: the commit rule (docs/protocol.md) — the leader saves, replicates, and
/// replies only once the sync follower (not the async one) is durable.
#[test]
fn leader_replies_only_after_the_sync_follower_is_durable() {
    let mut leader = start(LEADER);
    let commands = deliver(&mut leader, LEADER, CLIENT, hold_request());
    assert!(
        matches!(commands[0], Cmd::Save(_)),
        "save comes first: {commands:?}"
    );
    let appends = commands
        .iter()
        .filter(|c| matches!(c, Cmd::Send(_, Msg::Append { .. })))
        .count();
    assert_eq!(appends, 2);
    assert_eq!(replies(&commands), 0);

    let appended = |position| Msg::Appended {
        bucket: Bucket(0),
        epoch: Epoch(1),
        position: Position(position),
    };
    let commands = deliver(&mut leader, LEADER, ASYNC, appended(1));
    assert_eq!(
        replies(&commands),
        0,
        "an async follower never completes a commit"
    );
    let commands = deliver(&mut leader, LEADER, SYNC, appended(1));
    assert_eq!(replies(&commands), 1);
    assert!(
        matches!(commands[0], Cmd::Save(_)),
        "the commit is saved first"
    );
}

/// Goal: a follower refuses an append from an epoch older than it
/// promised, and the refused leader is fenced: it never serves at the
/// old epoch again.
#[test]
fn stale_epoch_append_is_refused_and_fences_the_leader() {
    let mut follower = start(SYNC);
    if let crate::actor::NodeState::Replica(state) = &mut follower {
        DurableBucket::edit(&mut state.buckets.get_mut(&Bucket(0)).unwrap().durable)
            .promised_epoch = Epoch(2);
    }
    let before = follower.clone();
    let stale_append = Msg::Append {
        bucket: Bucket(0),
        epoch: Epoch(1),
        prev_position: Position(0),
        prev_epoch: Epoch(0),
        entries: vec![],
        commit_position: Position(0),
    };
    let commands = deliver(&mut follower, SYNC, LEADER, stale_append);
    assert_eq!(follower, before, "a refused append changes nothing");
    assert!(matches!(
        commands.as_slice(),
        [Cmd::Send(
            _,
            Msg::AppendRefused {
                epoch: Epoch(2),
                ..
            }
        )]
    ));

    let mut leader = start(LEADER);
    let refused = Msg::AppendRefused {
        bucket: Bucket(0),
        epoch: Epoch(2),
    };
    let commands = deliver(&mut leader, LEADER, SYNC, refused);
    assert!(
        matches!(commands.as_slice(), [Cmd::Save(_)]),
        "the promise is durable"
    );
    let commands = deliver(&mut leader, LEADER, CLIENT, hold_request());
    assert!(
        matches!(
            commands.as_slice(),
            [Cmd::Send(
                _,
                Msg::Redirect {
                    epoch: Epoch(2),
                    ..
                }
            )]
        ),
        "{commands:?}"
    );
}

// The failover path at one replica: fence, adopt a newer placement,
// truncate only what was never acknowledged, answer token queries.

fn durable(state: &NodeState) -> &DurableBucket {
    &state.as_replica().unwrap().buckets[&Bucket(0)].durable
}

fn command(seq: u32) -> Command {
    Command {
        token: Token { client: 4, seq },
        op: Op::Hold {
            unit: InventoryUnit::new("BCN-JFK-2026-07-14", format!("C{seq}")),
            customer: crate::Customer::new("alice"),
        },
    }
}

fn request(epoch: u64, seq: u32) -> Msg {
    Msg::Request {
        bucket: Bucket(0),
        epoch: Epoch(epoch),
        command: command(seq),
    }
}

fn append(epoch: u64, prev: u64, prev_epoch: u64, entries: Vec<Entry>, commit: u64) -> Msg {
    Msg::Append {
        bucket: Bucket(0),
        epoch: Epoch(epoch),
        prev_position: Position(prev),
        prev_epoch: Epoch(prev_epoch),
        entries,
        commit_position: Position(commit),
    }
}

fn appended(epoch: u64, position: u64) -> Msg {
    Msg::Appended {
        bucket: Bucket(0),
        epoch: Epoch(epoch),
        position: Position(position),
    }
}

/// Goal: a fenced sync follower promises the new epoch durably, reports
/// its log, and from then on refuses the old leader's appends.
#[test]
fn fence_promises_reports_and_refuses_the_old_epoch() {
    let mut follower = start(SYNC);
    let entry = Entry::command(Epoch(1), command(0));
    deliver(&mut follower, SYNC, LEADER, append(1, 0, 0, vec![entry], 0));
    let fence = Msg::Fence(vec![(Bucket(0), Epoch(2))]);
    let commands = deliver(&mut follower, SYNC, CONTROLLER, fence.clone());
    assert!(matches!(commands[0], Cmd::Save(_)), "{commands:?}");
    assert_eq!(
        sent(&commands),
        [&Msg::Fenced(vec![FenceReport {
            bucket: Bucket(0),
            epoch: Epoch(2),
            last_position: Position(1),
            last_epoch: Epoch(1),
        }])]
    );
    assert_eq!(durable(&follower).promised_epoch, Epoch(2));

    let late = Entry::command(Epoch(1), command(1));
    let commands = deliver(&mut follower, SYNC, LEADER, append(1, 1, 1, vec![late], 1));
    assert_eq!(
        sent(&commands),
        [&Msg::AppendRefused {
            bucket: Bucket(0),
            epoch: Epoch(2),
        }]
    );
    assert_eq!(durable(&follower).log.last_position(), Position(1));

    // Only the controller fences.
    let before = follower.clone();
    let forged = Msg::Fence(vec![(Bucket(0), Epoch(3))]);
    assert!(deliver(&mut follower, SYNC, CLIENT, forged).is_empty());
    assert_eq!(follower, before);
}

/// Goal: a replica promoted by a newer placement appends its
/// epoch-start entry, sends followers the whole log, commits what it
/// inherited only once its sync follower holds the epoch-start entry,
/// and answers a client waiting on an inherited entry with the outcome
/// that entry decides.
#[test]
fn promoted_leader_commits_inherited_entries_under_its_epoch() {
    let mut new_leader = start(SYNC);
    let inherited = Entry::command(Epoch(1), command(0));
    deliver(
        &mut new_leader,
        SYNC,
        LEADER,
        append(1, 0, 0, vec![inherited], 0),
    );
    assert_eq!(durable(&new_leader).commit_position, Position(0));

    let promoted = Msg::Placements(vec![(Bucket(0), placement(2, SYNC, LEADER, ASYNC))]);
    let commands = deliver(&mut new_leader, SYNC, CONTROLLER, promoted);
    assert!(matches!(commands[0], Cmd::Save(_)));
    let log = &durable(&new_leader).log;
    assert_eq!(log.last_position(), Position(2));
    assert_eq!(log.entry(Position(2)), Some(&Entry::epoch_start(Epoch(2))));
    let appends: Vec<_> = sent(&commands)
        .into_iter()
        .filter(|msg| matches!(msg, Msg::Append { prev_position: Position(0), entries, .. } if entries.len() == 2))
        .collect();
    assert_eq!(appends.len(), 2, "both followers get the whole log");

    // The client's retry of the inherited token waits for the commit.
    let commands = deliver(&mut new_leader, SYNC, CLIENT, request(2, 0));
    assert!(
        sent(&commands).iter().all(|m| !matches!(m, Msg::Reply(_))),
        "{commands:?}"
    );
    // The old leader, now sync follower, acknowledges the inherited entry
    // only: nothing commits, because it is not of epoch 2.
    let commands = deliver(&mut new_leader, SYNC, LEADER, appended(2, 1));
    assert!(sent(&commands).is_empty(), "{commands:?}");
    assert_eq!(durable(&new_leader).commit_position, Position(0));
    // Through the epoch-start entry: both commit, the client is answered.
    let commands = deliver(&mut new_leader, SYNC, LEADER, appended(2, 2));
    assert_eq!(durable(&new_leader).commit_position, Position(2));
    assert!(matches!(
        sent(&commands).as_slice(),
        [Msg::Reply(Reply {
            position: Position(1),
            outcome: crate::Outcome::Held,
            ..
        })]
    ));
}

/// Goal: the old leader, told of the newer epoch, becomes a follower and
/// replaces its never-acknowledged suffix with the new leader's log,
/// keeping everything it had committed.
#[test]
fn old_leader_truncates_only_unacknowledged_entries() {
    let mut old = start(LEADER);
    deliver(&mut old, LEADER, CLIENT, request(1, 0));
    deliver(&mut old, LEADER, SYNC, appended(1, 1));
    assert_eq!(durable(&old).commit_position, Position(1));
    deliver(&mut old, LEADER, CLIENT, request(1, 1)); // never acknowledged
    assert_eq!(durable(&old).log.last_position(), Position(2));

    let demoted = Msg::Placements(vec![(Bucket(0), placement(2, SYNC, LEADER, ASYNC))]);
    deliver(&mut old, LEADER, CONTROLLER, demoted);
    assert!(!durable(&old).is_leader(Id::from(LEADER)));
    let committed = durable(&old).log.entry(Position(1)).cloned().unwrap();

    // The new leader's log: the committed entry, then its epoch start.
    let new_log = vec![committed.clone(), Entry::epoch_start(Epoch(2))];
    let commands = deliver(&mut old, LEADER, SYNC, append(2, 0, 0, new_log, 0));
    assert_eq!(sent(&commands), [&appended(2, 2)]);
    let log = &durable(&old).log;
    assert_eq!(log.entry(Position(1)), Some(&committed));
    assert_eq!(log.entry(Position(2)), Some(&Entry::epoch_start(Epoch(2))));

    // A log that contradicts the committed entry is refused outright.
    let mut other = start(LEADER);
    deliver(&mut other, LEADER, CLIENT, request(1, 0));
    deliver(&mut other, LEADER, SYNC, appended(1, 1));
    let demoted = Msg::Placements(vec![(Bucket(0), placement(2, SYNC, LEADER, ASYNC))]);
    deliver(&mut other, LEADER, CONTROLLER, demoted);
    let before = other.clone();
    let contradicting = vec![Entry::epoch_start(Epoch(2))];
    let commands = deliver(&mut other, LEADER, SYNC, append(2, 0, 0, contradicting, 0));
    assert!(sent(&commands).is_empty());
    assert_eq!(other, before);
}

/// Goal: a replica that meets an epoch newer than its placement asks
/// the controller for the placement instead of trusting the sender.
#[test]
fn newer_epoch_in_an_append_fetches_the_placement() {
    let mut old = start(LEADER);
    let entries = vec![Entry::epoch_start(Epoch(2))];
    let commands = deliver(&mut old, LEADER, SYNC, append(2, 0, 0, entries, 0));
    assert_eq!(
        sent(&commands),
        [&Msg::FetchPlacement { bucket: Bucket(0) }]
    );
    assert_eq!(durable(&old).log.last_position(), Position(0));
}

/// Goal: a token query gets the recorded outcome, waits for a pending
/// entry, and gets `NotDecided` for a token nobody logged.
#[test]
fn token_query_answers_recorded_pending_and_unknown() {
    let mut leader = start(LEADER);
    let query = |seq| Msg::Query {
        bucket: Bucket(0),
        epoch: Epoch(1),
        token: Token { client: 4, seq },
    };
    deliver(&mut leader, LEADER, CLIENT, request(1, 0));
    let commands = deliver(&mut leader, LEADER, CLIENT, query(0));
    assert!(
        sent(&commands).iter().all(|m| !matches!(m, Msg::Reply(_))),
        "pending: no answer yet"
    );
    let commands = deliver(&mut leader, LEADER, SYNC, appended(1, 1));
    let replies = sent(&commands)
        .into_iter()
        .filter(|m| matches!(m, Msg::Reply(_)))
        .count();
    assert_eq!(replies, 1, "one waiter per client and token");
    let commands = deliver(&mut leader, LEADER, CLIENT, query(0));
    assert!(matches!(
        sent(&commands).as_slice(),
        [Msg::Reply(Reply {
            outcome: crate::Outcome::Held,
            ..
        })]
    ));
    // An unknown token: no answer until a fresh entry voiding it commits
    // through the sync follower, which proves this leader still leads.
    let commands = deliver(&mut leader, LEADER, CLIENT, query(9));
    assert!(
        sent(&commands)
            .iter()
            .all(|m| !matches!(m, Msg::NotDecided { .. })),
        "no NotDecided before the quorum confirms: {commands:?}"
    );
    let commands = deliver(&mut leader, LEADER, SYNC, appended(1, 2));
    assert!(
        matches!(sent(&commands).as_slice(), [.., Msg::NotDecided { .. }]),
        "{commands:?}"
    );
    // That answer is final: the entry voided the token, so its request,
    // arriving now, is answered `NotDecided` too and logs nothing.
    let commands = deliver(&mut leader, LEADER, CLIENT, request(1, 9));
    assert!(
        matches!(sent(&commands).as_slice(), [Msg::NotDecided { .. }]),
        "{commands:?}"
    );
    assert_eq!(durable(&leader).log.last_position(), Position(2));
}

/// Goal: a leader deposed without knowing it (it restarted with an old
/// placement while a newer epoch took over) never tells a client that
/// a token is undecided: its sync follower refuses its no-op entry, and
/// the refusal fences it.
#[test]
fn deposed_leader_never_answers_not_decided() {
    let mut leader = start(LEADER);
    let query = Msg::Query {
        bucket: Bucket(0),
        epoch: Epoch(1),
        token: Token { client: 4, seq: 7 },
    };
    let commands = deliver(&mut leader, LEADER, CLIENT, query.clone());
    assert!(sent(&commands)
        .iter()
        .all(|m| !matches!(m, Msg::NotDecided { .. })));
    // The sync follower promised epoch 3 and refuses.
    let refused = Msg::AppendRefused {
        bucket: Bucket(0),
        epoch: Epoch(3),
    };
    let commands = deliver(&mut leader, LEADER, SYNC, refused);
    assert!(sent(&commands)
        .iter()
        .all(|m| !matches!(m, Msg::NotDecided { .. })));
    // Asked again, it no longer leads: a redirect, not an answer.
    let commands = deliver(&mut leader, LEADER, CLIENT, query);
    assert!(
        matches!(sent(&commands).as_slice(), [Msg::Redirect { .. }]),
        "{commands:?}"
    );
}

// Cutover at one replica: stream to the destination, seal with the
// barrier, report; install a snapshot as a destination.

const DEST_LEADER: usize = 5;
const DEST_SYNC: usize = 6;

fn move_out() -> Msg {
    Msg::MoveOut {
        bucket: Bucket(0),
        epoch: Epoch(1),
        destination: placement(2, DEST_LEADER, DEST_SYNC, ASYNC),
    }
}

/// Goal: a moving leader sends each destination member a snapshot of
/// its committed state plus the entries after it, seals the bucket with
/// a barrier once both have caught up, redirects writes from then on,
/// and tells the controller exactly once when the barrier is committed
/// in its group and durable at the destination.
#[test]
fn moving_leader_streams_seals_and_reports_once() {
    let mut leader = start(LEADER);
    deliver(&mut leader, LEADER, CLIENT, request(1, 0));
    deliver(&mut leader, LEADER, SYNC, appended(1, 1));
    deliver(&mut leader, LEADER, CLIENT, request(1, 1)); // pending at p2

    let commands = deliver(&mut leader, LEADER, CONTROLLER, move_out());
    assert!(matches!(commands[0], Cmd::Save(_)), "moving_to is durable");
    let snapshots: Vec<_> = commands
        .iter()
        .filter_map(|c| match c {
            Cmd::Send(to, Msg::Snapshot(snapshot)) => {
                Some((usize::from(*to), snapshot.position, snapshot.entries.len()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        snapshots,
        [(DEST_LEADER, Position(1), 1), (DEST_SYNC, Position(1), 1)]
    );
    assert!(!durable(&leader).sealed());

    deliver(&mut leader, LEADER, DEST_LEADER, appended(1, 2));
    assert!(
        !durable(&leader).sealed(),
        "one destination member still lags"
    );
    let commands = deliver(&mut leader, LEADER, DEST_SYNC, appended(1, 2));
    assert!(durable(&leader).sealed());
    assert_eq!(
        durable(&leader).log.last_entry(),
        Some(&Entry::barrier(Epoch(1)))
    );
    assert!(sent(&commands)
        .iter()
        .all(|m| !matches!(m, Msg::MovedOut { .. })));

    // Sealed: a new write is redirected, not logged.
    let commands = deliver(&mut leader, LEADER, CLIENT, request(1, 7));
    assert!(matches!(sent(&commands).as_slice(), [Msg::Redirect { .. }]));
    assert_eq!(durable(&leader).log.last_position(), Position(3));

    deliver(&mut leader, LEADER, DEST_LEADER, appended(1, 3));
    deliver(&mut leader, LEADER, DEST_SYNC, appended(1, 3));
    let commands = deliver(&mut leader, LEADER, SYNC, appended(1, 3));
    assert_eq!(
        sent(&commands)
            .iter()
            .filter(|m| matches!(
                m,
                Msg::MovedOut {
                    barrier: Position(3),
                    ..
                }
            ))
            .count(),
        1,
        "{commands:?}"
    );
    let commands = deliver(&mut leader, LEADER, ASYNC, appended(1, 3));
    assert!(sent(&commands)
        .iter()
        .all(|m| !matches!(m, Msg::MovedOut { .. })));
}

/// Goal: a destination member installs the snapshot (bucket state and
/// idempotency table included) and the entries after it, follows the
/// source's appends, and — once published as leader — answers a retry
/// of a token committed before the move with the original outcome.
#[test]
fn destination_installs_the_snapshot_and_keeps_outcomes() {
    let mut source = start(LEADER);
    deliver(&mut source, LEADER, CLIENT, request(1, 0));
    deliver(&mut source, LEADER, SYNC, appended(1, 1));
    let commands = deliver(&mut source, LEADER, CONTROLLER, move_out());
    let snapshot = commands
        .into_iter()
        .find_map(|c| match c {
            Cmd::Send(to, msg @ Msg::Snapshot(_)) if usize::from(to) == DEST_LEADER => Some(msg),
            _ => None,
        })
        .unwrap();

    let mut destination = start(DEST_LEADER);
    assert!(destination.as_replica().unwrap().buckets.is_empty());
    let commands = deliver(&mut destination, DEST_LEADER, LEADER, snapshot);
    assert!(matches!(commands[0], Cmd::Save(_)));
    assert_eq!(sent(&commands), [&appended(1, 1)]);
    let copy = durable(&destination);
    assert_eq!(copy.log.start(), Position(1));
    assert_eq!(copy.commit_position, Position(1));
    assert!(copy.applied.recorded(&command(0).token).is_some());

    let barrier = append(1, 1, 1, vec![Entry::barrier(Epoch(1))], 1);
    assert_eq!(
        sent(&deliver(&mut destination, DEST_LEADER, LEADER, barrier)),
        [&appended(1, 2)]
    );
    let published = Msg::Placements(vec![(
        Bucket(0),
        placement(2, DEST_LEADER, DEST_SYNC, ASYNC),
    )]);
    deliver(&mut destination, DEST_LEADER, CONTROLLER, published);
    assert!(durable(&destination).is_leader(Id::from(DEST_LEADER)));
    let commands = deliver(&mut destination, DEST_LEADER, CLIENT, request(2, 0));
    assert!(
        matches!(
            sent(&commands).as_slice(),
            [Msg::Reply(Reply {
                position: Position(1),
                outcome: crate::Outcome::Held,
                ..
            })]
        ),
        "{commands:?}"
    );
}

/// Goal: a session read is served by a follower only once it has
/// applied (committed) through the caller's observed position; before
/// that it sends the caller to the leader, whatever it holds
/// uncommitted. Served reads are labelled with their path, and the
/// broken variant serves the stale state.
#[test]
fn follower_reads_wait_for_the_observed_position() {
    let unit = InventoryUnit::new("BCN-JFK-2026-07-14", "C0");
    let read = |after| Msg::Read {
        bucket: Bucket(0),
        unit: unit.clone(),
        after: Position(after),
    };
    let mut follower = start(ASYNC);
    // The hold is in the follower's log but not yet known committed.
    let hold = Entry::command(Epoch(1), command(0));
    deliver(
        &mut follower,
        ASYNC,
        LEADER,
        append(1, 0, 0, vec![hold.clone()], 0),
    );
    let commands = deliver(&mut follower, ASYNC, CLIENT, read(1));
    assert!(
        matches!(
            sent(&commands).as_slice(),
            [Msg::ReadBehind {
                position: Position(0),
                ..
            }]
        ),
        "{commands:?}"
    );
    // A client with no observed position may read the old state here.
    let commands = deliver(&mut follower, ASYNC, CLIENT, read(0));
    assert!(
        matches!(
            sent(&commands).as_slice(),
            [Msg::ReadReply(ReadReply {
                position: Position(0),
                status: None,
                path: ReadPath::Follower,
                ..
            })]
        ),
        "{commands:?}"
    );
    // Once the commit position reaches it, the follower serves the hold.
    deliver(&mut follower, ASYNC, LEADER, append(1, 1, 1, vec![], 1));
    let commands = deliver(&mut follower, ASYNC, CLIENT, read(1));
    match sent(&commands).as_slice() {
        [Msg::ReadReply(ReadReply {
            position: Position(1),
            status: Some(UnitStatus::Held { customer, .. }),
            path: ReadPath::Follower,
            ..
        })] => assert_eq!(customer.to_string(), "alice"),
        other => panic!("{other:?}"),
    }
    // The leader labels its answers as the leader's.
    let mut leader = start(LEADER);
    let commands = deliver(&mut leader, LEADER, CLIENT, read(0));
    assert!(matches!(
        sent(&commands).as_slice(),
        [Msg::ReadReply(ReadReply {
            path: ReadPath::Leader,
            ..
        })]
    ));
    // The broken variant answers a read it is behind on.
    let broken = BerthActor::Replica(ReplicaActor {
        config: ProtocolConfig {
            variant: Variant::IgnoreReadToken,
            ..ProtocolConfig::default()
        },
        ..match replica() {
            BerthActor::Replica(actor) => actor,
            _ => unreachable!(),
        }
    });
    let mut stale = test_support::start(&broken, ASYNC);
    let commands = test_support::deliver(&broken, &mut stale, ASYNC, CLIENT, read(5));
    assert!(matches!(
        sent(&commands).as_slice(),
        [Msg::ReadReply(ReadReply {
            position: Position(0),
            ..
        })]
    ));
}

/// Goal: a pull is answered with committed entries only, from the
/// position asked, labelled with whether the sender leads; a replica
/// whose log starts after a snapshot answers a pull from before it with
/// its committed state.
#[test]
fn pulls_are_answered_with_committed_entries_only() {
    let mut follower = start(SYNC);
    let entries = vec![
        Entry::command(Epoch(1), command(0)),
        Entry::command(Epoch(1), command(1)),
    ];
    deliver(&mut follower, SYNC, LEADER, append(1, 0, 0, entries, 1));
    let pull = |after| Msg::Pull {
        from: vec![(Bucket(0), Position(after))],
    };
    let commands = deliver(&mut follower, SYNC, 9, pull(0));
    match sent(&commands).as_slice() {
        [Msg::Changes(batch)] => {
            let changes = &batch[0];
            assert_eq!(changes.entries.len(), 1, "only the committed entry");
            assert_eq!(changes.commit_position, Position(1));
            assert!(!changes.leads);
            assert!(changes.reset.is_none());
        }
        other => panic!("{other:?}"),
    }
    // A replica that started from a snapshot at p1.
    {
        let NodeState::Replica(state) = &mut follower else {
            unreachable!()
        };
        let durable = DurableBucket::edit(&mut state.buckets.get_mut(&Bucket(0)).unwrap().durable);
        durable.log = Log::after_snapshot(Position(1), Epoch(1));
    }
    let commands = deliver(&mut follower, SYNC, 9, pull(0));
    match sent(&commands).as_slice() {
        [Msg::Changes(batch)] => {
            let (position, state) = batch[0].reset.as_ref().expect("a reset");
            assert_eq!(*position, Position(1));
            assert_eq!(state.units.len(), 1);
        }
        other => panic!("{other:?}"),
    }
    // Not a replica of the bucket: no answer.
    let commands = deliver(
        &mut follower,
        SYNC,
        9,
        Msg::Pull {
            from: vec![(Bucket(7), Position(0))],
        },
    );
    assert!(sent(&commands).is_empty());
}

/// Goal: a pull naming one bucket many times is answered once for it (no
/// amplification), from the first position it gives.
#[test]
fn duplicate_buckets_in_a_pull_are_answered_once() {
    let mut follower = start(SYNC);
    let entries = vec![
        Entry::command(Epoch(1), command(0)),
        Entry::command(Epoch(1), command(1)),
    ];
    deliver(&mut follower, SYNC, LEADER, append(1, 0, 0, entries, 2));
    let from = std::iter::once((Bucket(0), Position(1)))
        .chain(std::iter::repeat_n((Bucket(0), Position(0)), 999))
        .collect();
    let commands = deliver(&mut follower, SYNC, 9, Msg::Pull { from });
    let changes: Vec<_> = sent(&commands)
        .into_iter()
        .flat_map(|msg| match msg {
            Msg::Changes(batch) => batch.to_vec(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(changes.len(), 1, "one answer for the one bucket");
    assert_eq!(changes[0].bucket, Bucket(0));
    assert_eq!(changes[0].entries.len(), 1, "from the first position given");
}
