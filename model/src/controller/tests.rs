//! Engine tests of the controller's failover decisions.

use super::*;
use crate::actor::{BerthActor, NodeState};
use crate::messages::{FenceReport, FollowerLag};
use crate::test_support::{self, placement, Commands, ASYNC, CLIENT, CONTROLLER, LEADER, SYNC};
use crate::types::{GroupId, Position};
use crate::variant::Variant;
use stateright::actor::{Actor, Command as Cmd};

/// A started controller of `map` that fails over without an epoch limit.
fn failing_over(map: PlacementMap, config: ProtocolConfig) -> (BerthActor, NodeState) {
    let actor = BerthActor::Controller(ControllerActor {
        initial_map: map,
        config,
        failover: Some(FailoverPolicy { epoch_limit: None }),
        groups: Vec::new(),
    });
    let state = test_support::start(&actor, CONTROLLER);
    (actor, state)
}

fn controller(start_epoch: u64, variant: Variant) -> (BerthActor, NodeState) {
    failing_over(
        PlacementMap::uniform(1, placement(start_epoch, LEADER, SYNC, ASYNC)),
        ProtocolConfig {
            variant,
            ..ProtocolConfig::default()
        },
    )
}

/// A controller of `buckets` buckets, all led by `LEADER`, detecting
/// failures by probes (down after two unanswered probes).
fn probing_controller(buckets: u32) -> (BerthActor, NodeState) {
    failing_over(
        PlacementMap::uniform(buckets, placement(1, LEADER, SYNC, ASYNC)),
        ProtocolConfig {
            detector: Detector::Probes { misses: 2 },
            resend_unanswered: true,
            ..ProtocolConfig::default()
        },
    )
}

fn fences(commands: &Commands) -> Vec<(Bucket, Epoch)> {
    test_support::sent(commands)
        .into_iter()
        .filter_map(|msg| match msg {
            Msg::Fence(fences) => Some(fences.iter().copied()),
            _ => None,
        })
        .flatten()
        .collect()
}

/// Goal: with the probe detector, a leader that stops answering is
/// failed over — every bucket it leads at once — only after `misses`
/// probes in a row go unanswered, while replicas that answer are never
/// suspected; nothing fails over while everyone answers.
#[test]
fn probes_fail_over_every_bucket_of_a_silent_leader() {
    let (actor, mut state) = probing_controller(3);
    let probe = |state: &mut NodeState| fire(&actor, state, Timer::Probe);
    let answer = |state: &mut NodeState, from: usize| {
        deliver(&actor, state, from, alive());
    };
    // Everyone answers: probes go out, nobody is suspected.
    for _ in 0..3 {
        let commands = probe(&mut state);
        assert_eq!(
            test_support::sent(&commands)
                .iter()
                .filter(|msg| ***msg == Msg::Probe)
                .count(),
            3
        );
        assert!(fences(&commands).is_empty());
        for replica in [LEADER, SYNC, ASYNC] {
            answer(&mut state, replica);
        }
    }
    // The leader falls silent: one missed probe is not enough.
    let commands = probe(&mut state);
    assert!(fences(&commands).is_empty(), "{commands:?}");
    answer(&mut state, SYNC);
    answer(&mut state, ASYNC);
    let commands = probe(&mut state);
    assert!(fences(&commands).is_empty(), "{commands:?}");
    answer(&mut state, SYNC);
    answer(&mut state, ASYNC);
    // The second missed probe: all three buckets fence at epoch 2.
    let commands = probe(&mut state);
    let fenced = fences(&commands);
    assert_eq!(
        fenced,
        vec![
            (Bucket(0), Epoch(2)),
            (Bucket(1), Epoch(2)),
            (Bucket(2), Epoch(2))
        ]
    );
    let controller = state.as_controller().unwrap();
    assert_eq!(controller.fencing.len(), 3);
    assert_eq!(
        controller.down(2).into_iter().collect::<Vec<_>>(),
        vec![Id::from(LEADER)]
    );
    // One decision, one message: the follower is fenced on all three
    // buckets by a single `Fence`.
    let fence_messages = test_support::sent(&commands)
        .iter()
        .filter(|msg| matches!(msg, Msg::Fence(_)))
        .count();
    assert_eq!(fence_messages, 1, "{commands:?}");
    // The fenced follower's one report promotes it on every bucket, in
    // one new version of the map, told to each replica in one message.
    let version = state.as_controller().unwrap().map.version;
    let reports = (0..3)
        .map(|bucket| FenceReport {
            bucket: Bucket(bucket),
            epoch: Epoch(2),
            last_position: Position(0),
            last_epoch: Epoch(0),
        })
        .collect();
    let commands = deliver(&actor, &mut state, SYNC, Msg::Fenced(reports));
    let announcements: Vec<(usize, usize)> = commands
        .iter()
        .filter_map(|c| match c {
            Cmd::Send(to, Msg::Placements(placements)) => {
                Some((usize::from(*to), placements.len()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(announcements, [(LEADER, 3), (SYNC, 3), (ASYNC, 3)]);
    let controller = state.as_controller().unwrap();
    assert_eq!(controller.map.version, version + 1);
    assert!(controller.fencing.is_empty());
    assert!(controller
        .map
        .buckets
        .iter()
        .all(|placement| placement.leader == Id::from(SYNC) && placement.epoch == Epoch(2)));
    // The old leader, still silent, is now their sync follower: it is
    // replaced at the very next probe (a hold-down is for the living).
    deliver(&actor, &mut state, SYNC, alive());
    deliver(&actor, &mut state, ASYNC, alive());
    probe(&mut state);
    let controller = state.as_controller().unwrap();
    assert!(controller
        .map
        .buckets
        .iter()
        .all(|placement| placement.epoch == Epoch(3)
            && placement.sync_followers == vec![Id::from(ASYNC)]));
}

/// Goal: the probe detector never makes a change that cannot help: no
/// failover while every sync follower is down too (nobody could report
/// the committed prefix), and no down async follower is moved into the
/// sync role.
#[test]
fn probes_do_not_act_on_dead_replacements() {
    let (actor, mut state) = probing_controller(1);
    let probe = |state: &mut NodeState| fire(&actor, state, Timer::Probe);
    // Leader and sync follower both silent; only the async follower
    // answers.
    for _ in 0..3 {
        let commands = probe(&mut state);
        assert!(fences(&commands).is_empty(), "{commands:?}");
        deliver(&actor, &mut state, ASYNC, alive());
    }
    assert!(state.as_controller().unwrap().fencing.is_empty());
    assert_eq!(state.as_controller().unwrap().map.version, 1);
    // Now the leader answers but the sync and async followers do not:
    // the sync follower is down, and so is the only replacement.
    let (actor, mut state) = probing_controller(1);
    for _ in 0..3 {
        fire(&actor, &mut state, Timer::Probe);
        deliver(&actor, &mut state, LEADER, alive());
    }
    assert_eq!(state.as_controller().unwrap().map.version, 1);
    // The async follower comes back: it replaces the down sync follower.
    deliver(&actor, &mut state, ASYNC, alive());
    deliver(&actor, &mut state, LEADER, alive());
    fire(&actor, &mut state, Timer::Probe);
    let map = &state.as_controller().unwrap().map;
    assert_eq!(map.version, 2);
    assert_eq!(map.buckets[0].sync_followers, vec![Id::from(ASYNC)]);
}

/// Goal: a replica's extra patience grows by `misses` each time it comes
/// back, up to `MAX_PATIENCE` × `misses` in all, and shrinks by one miss
/// every `DECAY_ROUNDS` rounds it answers, until it is forgotten; a
/// hold-down of no rounds holds nobody. (Timing policy: the checker makes
/// two probe rounds, so only these tests see the decay and the cap.)
#[test]
fn patience_grows_to_a_cap_and_decays_while_a_replica_answers() {
    let mut liveness = super::Liveness::default();
    let replica = Id::from(1);
    let misses = 2;
    let grown: Vec<u8> = (0..4)
        .map(|_| liveness.recovered(replica, misses))
        .collect();
    assert_eq!(
        grown,
        vec![4, 6, 8, 8],
        "doubling, then capped at 4 × misses"
    );
    for extra in (0..6u8).rev() {
        for _ in 0..39 {
            liveness.heard_rounds(replica);
        }
        assert_eq!(liveness.patience(replica, misses), misses + extra + 1);
        liveness.heard_rounds(replica);
        assert_eq!(liveness.patience(replica, misses), misses + extra);
    }
    assert!(liveness.patience.is_empty() && liveness.steady.is_empty());
    liveness.hold_down(replica, 0);
    assert!(liveness.held.is_empty(), "a hold-down of no rounds");
}

/// Goal: the probe detector does not depose the living. The replica a
/// failover just promoted is held down — not suspected — for twice
/// `misses` probe rounds however silent it is (it is busy taking over),
/// and suspected once that runs out; the old leader, declared down and
/// then heard again, is given `misses` more probes from then on.
#[test]
fn promoted_leader_is_held_down_and_a_returning_replica_gets_patience() {
    let (actor, mut state) = probing_controller(1); // misses: 2
    let probe = |state: &mut NodeState| fire(&actor, state, Timer::Probe);
    let misses = 2;
    // The leader is silent for two probes: its bucket is fenced at e2.
    probe(&mut state);
    deliver(&actor, &mut state, SYNC, alive());
    deliver(&actor, &mut state, ASYNC, alive());
    let commands = probe(&mut state);
    assert_eq!(fences(&commands), vec![(Bucket(0), Epoch(2))]);
    deliver(&actor, &mut state, SYNC, fenced(2, 0));
    assert_eq!(current(&state).leader, Id::from(SYNC));
    // The new leader falls silent at once; the old one is back.
    for round in 1..=2 * misses {
        deliver(&actor, &mut state, LEADER, alive());
        deliver(&actor, &mut state, ASYNC, alive());
        let commands = probe(&mut state);
        let fenced = fences(&commands);
        if round < 2 * misses {
            assert!(fenced.is_empty(), "round {round}: {commands:?}");
        } else {
            assert_eq!(fenced, vec![(Bucket(0), Epoch(3))], "round {round}");
        }
    }
    let controller = state.as_controller().unwrap();
    assert_eq!(controller.liveness.patience(Id::from(LEADER), misses), 4);
    assert_eq!(controller.liveness.patience(Id::from(ASYNC), misses), 2);
}

/// Goal: a down sync follower is replaced only by an async follower that
/// answered the last probe — a suspicion alone never hands the commit
/// quorum to a replica that is not known to be live.
#[test]
fn a_sync_follower_is_replaced_only_by_a_live_one() {
    let (actor, mut state) = probing_controller(1); // misses: 2
    probe_rounds(&actor, &mut state, 1, &[LEADER, ASYNC]);
    // The sync follower's second miss makes it down, in a round the
    // async follower did not answer either (it answered the one before).
    probe_rounds(&actor, &mut state, 1, &[LEADER]);
    assert!(state
        .as_controller()
        .unwrap()
        .down(2)
        .contains(&Id::from(SYNC)));
    assert_eq!(current(&state).sync_followers, vec![Id::from(SYNC)]);
    // It answers again: now it replaces the down sync follower.
    probe_rounds(&actor, &mut state, 1, &[LEADER, ASYNC]);
    assert_eq!(current(&state).sync_followers, vec![Id::from(ASYNC)]);
}

/// Goal: in a group with two sync followers, the one that is down is the
/// one replaced — not the first of the list — and a suspicion at any
/// moment may name either (one timer per sync follower).
#[test]
fn the_down_sync_follower_of_two_is_the_one_replaced() {
    const SYNC2: usize = 5;
    let two_sync = |detector| {
        let mut placement = placement(1, LEADER, SYNC, ASYNC);
        placement.sync_followers.push(Id::from(SYNC2));
        failing_over(
            PlacementMap::uniform(1, placement),
            ProtocolConfig {
                detector,
                ..ProtocolConfig::default()
            },
        )
    };
    let (actor, mut state) = two_sync(Detector::Probes { misses: 2 });
    probe_rounds(&actor, &mut state, 3, &[LEADER, SYNC, ASYNC]);
    assert_eq!(current(&state).epoch, Epoch(2));
    assert_eq!(
        current(&state).sync_followers,
        vec![Id::from(SYNC), Id::from(ASYNC)]
    );
    assert_eq!(current(&state).async_followers, vec![Id::from(SYNC2)]);

    let (actor, mut state) = two_sync(Detector::Anytime);
    fire(&actor, &mut state, Timer::SuspectSyncFollower(Bucket(0), 1));
    assert_eq!(
        current(&state).sync_followers,
        vec![Id::from(SYNC), Id::from(ASYNC)]
    );
    let (actor, mut state) = two_sync(Detector::Anytime);
    fire(&actor, &mut state, Timer::SuspectSyncFollower(Bucket(0), 0));
    assert_eq!(
        current(&state).sync_followers,
        vec![Id::from(ASYNC), Id::from(SYNC2)]
    );
}

/// Goal: the controller saves only when its durable part changed: probe
/// rounds and answers that decide nothing write nothing to disk (at 2,048
/// buckets the map is the controller's whole file, written with fsync).
#[test]
fn probe_rounds_that_decide_nothing_save_nothing() {
    let (actor, mut state) = probing_controller(4);
    for _ in 0..3 {
        for replica in [LEADER, SYNC, ASYNC] {
            let commands = deliver(&actor, &mut state, replica, alive());
            assert!(
                !commands.iter().any(|c| matches!(c, Cmd::Save(_))),
                "{commands:?}"
            );
        }
        let commands = fire(&actor, &mut state, Timer::Probe);
        assert!(
            !commands.iter().any(|c| matches!(c, Cmd::Save(_))),
            "{commands:?}"
        );
    }
    // A decision does save.
    let commands = deliver(
        &actor,
        &mut state,
        CLIENT,
        Msg::Failover { bucket: Bucket(1) },
    );
    assert!(
        commands.iter().any(|c| matches!(c, Cmd::Save(_))),
        "{commands:?}"
    );
}

/// `rounds` probe rounds in which only `answering` answer (before each
/// probe).
fn probe_rounds(actor: &BerthActor, state: &mut NodeState, rounds: usize, answering: &[usize]) {
    for _ in 0..rounds {
        for replica in answering {
            deliver(actor, state, *replica, alive());
        }
        fire(actor, state, Timer::Probe);
    }
}

/// Goal: the operator's `Failover` fences a live leader's commit quorum
/// at once (a planned failover), and a second request for the same
/// bucket while it runs starts nothing new.
#[test]
fn operator_failover_fences_at_once() {
    let (actor, mut state) = probing_controller(2);
    let commands = deliver(
        &actor,
        &mut state,
        CLIENT,
        Msg::Failover { bucket: Bucket(1) },
    );
    assert_eq!(fences(&commands), vec![(Bucket(1), Epoch(2))]);
    assert!(commands.iter().any(|c| matches!(c, Cmd::Save(_))));
    let again = deliver(
        &actor,
        &mut state,
        CLIENT,
        Msg::Failover { bucket: Bucket(1) },
    );
    assert!(
        !again.iter().any(|c| matches!(c, Cmd::Save(_))),
        "{again:?}"
    );
    assert_eq!(state.as_controller().unwrap().fencing.len(), 1);
}

fn fire(actor: &BerthActor, state: &mut NodeState, timer: Timer) -> Commands {
    test_support::fire(actor, state, CONTROLLER, timer)
}

fn deliver(actor: &BerthActor, state: &mut NodeState, src: usize, msg: Msg) -> Commands {
    test_support::deliver(actor, state, CONTROLLER, src, msg)
}

fn fenced(epoch: u64, last_epoch: u64) -> Msg {
    Msg::Fenced(vec![FenceReport {
        bucket: Bucket(0),
        epoch: Epoch(epoch),
        last_position: Position(3),
        last_epoch: Epoch(last_epoch),
    }])
}

fn current(state: &NodeState) -> &BucketPlacement {
    &state.as_controller().unwrap().map.buckets[0]
}

/// Runs a leader failover of a bucket at `epoch` whose sync follower
/// reports a log ending in an entry of `last_epoch`; returns the
/// commands of the decision and the controller state.
fn failover(epoch: u64, last_epoch: u64, variant: Variant) -> (Commands, NodeState) {
    let (actor, mut state) = controller(epoch, variant);
    let commands = fire(&actor, &mut state, Timer::SuspectLeader(Bucket(0)));
    assert!(
        matches!(commands[0], Cmd::Save(_)),
        "the fence is saved first"
    );
    assert!(commands.iter().any(|c| matches!(
        c,
        Cmd::Send(to, Msg::Fence(fences)) if *to == Id::from(SYNC) && fences == &[(Bucket(0), Epoch(epoch + 1))]
    )));
    let commands = deliver(&actor, &mut state, SYNC, fenced(epoch + 1, last_epoch));
    (commands, state)
}

/// Goal: a fenced sync follower that holds the epoch's entries is
/// promoted, the old leader takes its sync role, the map is saved before
/// anyone hears of it, and every member is told.
#[test]
fn promotes_the_fenced_sync_follower_holding_the_prefix() {
    let (commands, state) = failover(3, 3, Variant::Correct);
    assert_eq!(current(&state), &placement(4, SYNC, LEADER, ASYNC));
    assert!(matches!(commands[0], Cmd::Save(_)), "{commands:?}");
    let told: Vec<usize> = commands
        .iter()
        .filter_map(|c| match c {
            Cmd::Send(to, Msg::Placements(_)) => Some(usize::from(*to)),
            _ => None,
        })
        .collect();
    assert_eq!(told, [LEADER, SYNC, ASYNC]);
    assert_eq!(state.as_controller().unwrap().map.version, 2);
}

/// Goal: at the bucket's first epoch nothing precedes the log, so the
/// sync follower is promotable even with an empty log.
#[test]
fn first_epoch_sync_follower_is_promotable() {
    let (_, state) = failover(1, 0, Variant::Correct);
    assert_eq!(current(&state).leader, Id::from(SYNC));
}

/// Goal: a sync follower without the current epoch's entries (it joined
/// the quorum and has not caught up) is never promoted: the failover
/// aborts and the old leader keeps the bucket at the new epoch.
#[test]
fn lagging_sync_follower_is_not_promoted() {
    let (_, state) = failover(3, 2, Variant::Correct);
    assert_eq!(current(&state), &placement(4, LEADER, SYNC, ASYNC));
}

/// Goal: the `promote-lagging` variant promotes the async follower
/// regardless — the deviation the checker refutes.
#[test]
fn promote_lagging_variant_promotes_the_async_follower() {
    let (_, state) = failover(3, 3, Variant::PromoteLagging);
    assert_eq!(current(&state).leader, Id::from(ASYNC));
}

/// Goal: a stale report (another epoch, or from a replica outside the
/// quorum) changes nothing: map changes are compare-and-set.
#[test]
fn stale_fenced_reports_are_ignored() {
    let (actor, mut state) = controller(3, Variant::Correct);
    fire(&actor, &mut state, Timer::SuspectLeader(Bucket(0)));
    let before = state.clone();
    assert!(deliver(&actor, &mut state, SYNC, fenced(5, 3)).is_empty());
    assert!(deliver(&actor, &mut state, ASYNC, fenced(4, 3)).is_empty());
    assert_eq!(state, before);
}

/// Goal: a suspected sync follower is replaced through a new epoch by the
/// async follower; the leader stays.
#[test]
fn suspected_sync_follower_is_replaced_through_a_new_epoch() {
    let (actor, mut state) = controller(1, Variant::Correct);
    let commands = fire(&actor, &mut state, Timer::SuspectSyncFollower(Bucket(0), 0));
    assert!(matches!(commands[0], Cmd::Save(_)));
    assert_eq!(current(&state), &placement(2, LEADER, ASYNC, SYNC));
}

/// Goal: the epoch limit stops further changes, and a restarted
/// controller resumes its saved failover rather than starting another.
#[test]
fn epoch_limit_and_restart() {
    let actor = BerthActor::Controller(ControllerActor {
        initial_map: PlacementMap::uniform(1, placement(2, LEADER, SYNC, ASYNC)),
        config: ProtocolConfig::default(),
        failover: Some(FailoverPolicy {
            epoch_limit: Some(Epoch(2)),
        }),
        groups: Vec::new(),
    });
    let mut state = actor.on_start(Id::from(CONTROLLER), &None, &mut Out::new());
    let before = state.clone();
    let commands = fire(&actor, &mut state, Timer::SuspectLeader(Bucket(0)));
    assert!(commands.is_empty());
    assert_eq!(state, before);

    let (actor, mut state) = controller(1, Variant::Correct);
    let commands = fire(&actor, &mut state, Timer::SuspectLeader(Bucket(0)));
    let Cmd::Save(saved) = &commands[0] else {
        panic!("{commands:?}")
    };
    let mut restarted = actor.on_start(Id::from(CONTROLLER), &Some(saved.clone()), &mut Out::new());
    assert_eq!(restarted, state);
    let commands = fire(&actor, &mut restarted, Timer::SuspectLeader(Bucket(0)));
    assert!(
        commands.iter().all(|c| !matches!(c, Cmd::Send(..))),
        "no second fence: {commands:?}"
    );
    deliver(&actor, &mut restarted, SYNC, fenced(2, 0));
    assert_eq!(current(&restarted).leader, Id::from(SYNC));
}

/// A probe's answer with no lagging follower.
fn alive() -> Msg {
    Msg::Alive {
        lagging: Vec::new(),
    }
}

const DEST_LEADER: usize = 5;
const DEST_SYNC: usize = 6;

fn mover(variant: Variant) -> (BerthActor, NodeState) {
    let actor = BerthActor::Controller(ControllerActor {
        initial_map: PlacementMap::uniform(1, placement(1, LEADER, SYNC, ASYNC)),
        config: ProtocolConfig {
            variant,
            ..ProtocolConfig::default()
        },
        failover: Some(FailoverPolicy { epoch_limit: None }),
        groups: vec![GroupLayout {
            group: GroupId(2),
            leader: Id::from(DEST_LEADER),
            sync_followers: vec![Id::from(DEST_SYNC)],
            async_followers: vec![],
        }],
    });
    let state = test_support::start(&actor, CONTROLLER);
    (actor, state)
}

fn move_request() -> Msg {
    Msg::MoveBucket {
        bucket: Bucket(0),
        group: GroupId(2),
    }
}

fn moved_out(epoch: u64) -> Msg {
    Msg::MovedOut {
        bucket: Bucket(0),
        epoch: Epoch(epoch),
        barrier: Position(4),
    }
}

/// Goal: while a leader reports an async follower of a group involved
/// over its lag budget, the operator's move is refused with the reason
/// and nothing is saved or sent to replicas; a move to an unknown group
/// is refused too; once the leader reports no lag, the same move starts.
#[test]
fn move_is_refused_while_a_group_is_over_its_lag_budget() {
    let (actor, mut state) = mover(Variant::Correct);
    // An older report, then the current one: the refusal names the
    // current figures (a changed report replaces the one held).
    for (entries, millis) in [(2, 5_600), (4, 6_200)] {
        let lag = FollowerLag {
            bucket: Bucket(0),
            follower: Id::from(ASYNC),
            entries,
            millis,
        };
        deliver(
            &actor,
            &mut state,
            LEADER,
            Msg::Alive { lagging: vec![lag] },
        );
    }
    let before = state.clone();
    let commands = deliver(&actor, &mut state, 99, move_request());
    match commands.as_slice() {
        [Cmd::Send(to, Msg::MoveRefused { bucket, reason })] => {
            assert_eq!(usize::from(*to), 99);
            assert_eq!(*bucket, Bucket(0));
            assert!(reason.contains("over its lag budget"), "{reason}");
            assert!(
                reason.contains("replica 3 is 6.2 s (4 entries) behind on b0"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(state, before, "a refused move changes nothing");
    let unknown = deliver(
        &actor,
        &mut state,
        99,
        Msg::MoveBucket {
            bucket: Bucket(0),
            group: GroupId(9),
        },
    );
    assert!(matches!(
        unknown.as_slice(),
        [Cmd::Send(_, Msg::MoveRefused { reason, .. })] if reason.contains("no group 9")
    ));
    deliver(&actor, &mut state, LEADER, alive());
    let commands = deliver(&actor, &mut state, 99, move_request());
    assert!(commands
        .iter()
        .any(|c| matches!(c, Cmd::Send(_, Msg::MoveOut { .. }))));
}

/// Goal: a move is saved and the source asked to move out; the map
/// changes only on the source's `MovedOut` for that epoch, saved before
/// it is published to the old and new members.
#[test]
fn move_publishes_only_after_the_barrier() {
    let (actor, mut state) = mover(Variant::Correct);
    let commands = deliver(&actor, &mut state, 99, move_request());
    assert!(matches!(commands[0], Cmd::Save(_)));
    assert!(commands.iter().any(|c| matches!(
        c,
        Cmd::Send(to, Msg::MoveOut { epoch: Epoch(1), .. }) if *to == Id::from(LEADER)
    )));
    assert_eq!(current(&state).group, GroupId(1), "routing unchanged");

    // A report from another epoch or another replica changes nothing.
    let before = state.clone();
    assert!(deliver(&actor, &mut state, LEADER, moved_out(2)).is_empty());
    assert!(deliver(&actor, &mut state, SYNC, moved_out(1)).is_empty());
    assert_eq!(state, before);

    let commands = deliver(&actor, &mut state, LEADER, moved_out(1));
    assert!(matches!(commands[0], Cmd::Save(_)));
    assert_eq!(
        current(&state),
        &BucketPlacement {
            epoch: Epoch(2),
            group: GroupId(2),
            leader: Id::from(DEST_LEADER),
            sync_followers: vec![Id::from(DEST_SYNC)],
            async_followers: vec![],
        }
    );
    let told: BTreeSet<usize> = commands
        .iter()
        .filter_map(|c| match c {
            Cmd::Send(to, Msg::Placements(_)) => Some(usize::from(*to)),
            _ => None,
        })
        .collect();
    assert_eq!(
        told,
        BTreeSet::from([LEADER, SYNC, ASYNC, DEST_LEADER, DEST_SYNC])
    );
    assert!(state.as_controller().unwrap().moving.is_empty());
}

/// Goal: suspecting the source leader mid-move aborts the move and
/// fences; a late `MovedOut` is then ignored.
#[test]
fn suspected_source_aborts_the_move() {
    let (actor, mut state) = mover(Variant::Correct);
    deliver(&actor, &mut state, 99, move_request());
    fire(&actor, &mut state, Timer::SuspectLeader(Bucket(0)));
    let controller = state.as_controller().unwrap();
    assert!(controller.moving.is_empty());
    assert!(!controller.fencing.is_empty());
    let before = state.clone();
    assert!(deliver(&actor, &mut state, LEADER, moved_out(1)).is_empty());
    assert_eq!(state, before);
}

/// Goal: the `early-switch` variant publishes the destination at once,
/// before any barrier — the deviation the checker refutes.
#[test]
fn early_switch_variant_publishes_at_once() {
    let (actor, mut state) = mover(Variant::EarlySwitch);
    deliver(&actor, &mut state, 99, move_request());
    assert_eq!(current(&state).leader, Id::from(DEST_LEADER));
}
