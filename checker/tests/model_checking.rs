//! Model-checking tests: the replication scenario holds every property, its
//! state space is pinned, and every always-property is shown to catch the
//! violation it names.

use berth_checker::history::{Acknowledgement, BerthState};
use berth_checker::properties;
use berth_checker::{
    run, NetworkKind, PropertyStatus, RunOptions, ScenarioConfig, StopAt, Strategy, Verdict,
};
use berth_model::{Bucket, Epoch, NodeState, Outcome, Position, Refusal, Token, Variant};
use stateright::actor::Id;
use stateright::{Checker, Model};
use std::sync::Arc;

fn exhaustive(config: &ScenarioConfig, strategy: Strategy) -> berth_checker::RunReport {
    let report = run(
        config,
        &RunOptions {
            strategy,
            stop_at: StopAt::Never,
            ..RunOptions::default()
        },
        |_| {},
    );
    assert!(
        report.exhaustive,
        "run was not exhaustive: {:?}",
        report.stop_reason
    );
    report
}

fn assert_passes(report: &berth_checker::RunReport) {
    for property in &report.properties {
        assert!(
            property.status.is_good(),
            "{} is {:?}: {:?}",
            property.name,
            property.status,
            property.explanation
        );
    }
    assert_eq!(report.verdict(), Verdict::Pass);
}

/// Checks `config` exhaustively with `strategy`, asserts every property is
/// as expected, and pins the state count: a change of the state space must
/// be explained in the commit that makes it.
fn assert_passes_with_state_count(
    config: &ScenarioConfig,
    strategy: Strategy,
    unique_states: usize,
) {
    let report = exhaustive(config, strategy);
    assert_passes(&report);
    assert_eq!(
        report.unique_states, unique_states,
        "{config:?} with {strategy:?}"
    );
}

fn on_network(network: NetworkKind) -> ScenarioConfig {
    ScenarioConfig {
        network,
        ..ScenarioConfig::default()
    }
}

/// Goal: the default scenario holds every property and reaches every
/// sometimes-property; DFS visits the same space as BFS.
#[test]
fn replication_unordered_two_clients_holds() {
    assert_passes_with_state_count(&ScenarioConfig::default(), Strategy::Bfs, 20_711);
    assert_passes_with_state_count(&ScenarioConfig::default(), Strategy::Dfs, 20_711);
}

#[test]
fn replication_ordered_network_holds() {
    assert_passes_with_state_count(&on_network(NetworkKind::Ordered), Strategy::Bfs, 4_746);
}

/// Goal: message loss never breaks safety (loss only stalls progress).
#[test]
fn replication_lossy_network_holds() {
    assert_passes_with_state_count(&on_network(NetworkKind::Lossy), Strategy::Bfs, 124_734);
}

/// Goal: duplicated requests (what a retry looks like to the leader) get the
/// recorded outcome and never a second effect.
#[test]
fn replication_duplicating_network_holds() {
    assert_passes_with_state_count(
        &on_network(NetworkKind::UnorderedDuplicating),
        Strategy::Bfs,
        146_583,
    );
}

/// Goal: a leader crash and recovery (no failover yet) loses nothing: the
/// leader recovers its log, commit position and idempotency table from disk.
#[test]
fn replication_with_one_crash_holds() {
    let config = ScenarioConfig {
        crashes: 1,
        ..ScenarioConfig::default()
    };
    assert_passes_with_state_count(&config, Strategy::Bfs, 599_494);
}

/// Goal: the broken commit rule (variant `async-ack`: the leader
/// acknowledges before its sync follower is durable) is caught, with the
/// shortest counterexample: a hold acknowledged straight after the request.
#[test]
fn async_ack_is_refuted_by_commit_quorum_durable() {
    let config = ScenarioConfig {
        variant: Variant::AsyncAck,
        ..ScenarioConfig::default()
    };
    let report = run(&config, &RunOptions::default(), |_| {});
    assert_eq!(report.verdict(), Verdict::Fail);
    let property = report.property(properties::COMMIT_QUORUM_DURABLE).unwrap();
    assert_eq!(property.status, PropertyStatus::Violated);
    let trace = property.trace.as_ref().unwrap();
    assert_eq!(trace.len(), 2, "{trace:#?}");
    assert!(trace[0].contains("Request"), "{trace:#?}");
    assert!(
        trace[1].contains("Reply") && trace[1].contains("Held"),
        "{trace:#?}"
    );
    assert!(property
        .explanation
        .as_ref()
        .unwrap()
        .contains("does not have it on disk"));
}

/// Goal: multi-leader writes (variant `multi-leader`: the remote
/// region confirms its own bookings and merges later) are refuted by `no
/// double sale`: the shortest counterexample has the leader confirm the
/// cabin to one client (hold and confirm, each through the sync follower)
/// and the remote replica confirm it to the other.
#[test]
fn multi_leader_is_refuted_by_no_double_sale() {
    let config = ScenarioConfig::exposing(Variant::MultiLeader);
    assert_eq!(config.flags(), "--scenario replication");
    let report = run(
        &config,
        &RunOptions {
            stop_at: StopAt::AnyOf(vec![properties::NO_DOUBLE_SALE]),
            ..RunOptions::default()
        },
        |_| {},
    );
    let property = report.property(properties::NO_DOUBLE_SALE).unwrap();
    assert_eq!(property.status, PropertyStatus::Violated);
    let trace = property.trace.as_ref().unwrap();
    assert_eq!(trace.len(), 12, "{trace:#?}");
    let confirmations: Vec<_> = trace
        .iter()
        .filter(|step| step.contains("Confirmed"))
        .map(|step| step.split_once(". ").unwrap().1)
        .collect();
    assert_eq!(confirmations.len(), 2, "{trace:#?}");
    assert!(
        confirmations
            .iter()
            .any(|step| step.starts_with("replica 1")),
        "{trace:#?}"
    );
    assert!(confirmations
        .iter()
        .any(|step| step.starts_with("replica 3")));
    assert!(property
        .explanation
        .as_ref()
        .unwrap()
        .contains("was sold twice"));
    // The correct design on the same scenario: both clients write to the
    // leader whatever their region, and the cabin is sold once.
    let correct = ScenarioConfig {
        variant: Variant::Correct,
        ..config
    };
    let report = exhaustive(&correct, Strategy::Bfs);
    assert_eq!(report.verdict(), Verdict::Pass);
}

/// Goal: `--variant ignore-read-token` (a follower serves a read whatever
/// position the client observed) is refuted by `session reads` in the
/// replication scenario: the client is told of a decision at p2, then the
/// remote follower, which has applied nothing, answers its read from p0.
/// The correct design on the same scenario holds it and reaches both read
/// paths.
#[test]
fn ignore_read_token_is_refuted_by_session_reads() {
    let config = ScenarioConfig::exposing(Variant::IgnoreReadToken);
    assert_eq!(config.flags(), "--scenario replication");
    let report = run(
        &config,
        &RunOptions {
            stop_at: StopAt::AnyOf(vec![properties::SESSION_READS]),
            ..RunOptions::default()
        },
        |_| {},
    );
    let property = report.property(properties::SESSION_READS).unwrap();
    assert_eq!(property.status, PropertyStatus::Violated);
    let trace = property.trace.as_ref().unwrap();
    assert_eq!(trace.len(), 7, "{trace:#?}");
    assert!(
        trace.last().unwrap().contains("ReadReply")
            && trace.last().unwrap().contains("at p0 from follower"),
        "{trace:#?}"
    );
    assert!(property
        .explanation
        .as_ref()
        .unwrap()
        .contains("which it had already observed"));
    let correct = exhaustive(
        &ScenarioConfig {
            variant: Variant::Correct,
            ..config
        },
        Strategy::Bfs,
    );
    assert_passes(&correct);
    for reached in [
        properties::FOLLOWER_READ_SERVED,
        properties::LAGGING_FOLLOWER_BYPASSED,
    ] {
        assert_eq!(
            correct.property(reached).unwrap().status,
            PropertyStatus::Reached
        );
    }
}

/// Goal: holds that expire (the leader's expiry may fire at any moment and
/// ends the hold through the log) keep every property: a confirm after the
/// expiry is refused, and the other client may then take the cabin, but no
/// cabin is sold twice. Pinned on the ordered network (the unordered one
/// has tens of millions of states with two clients).
#[test]
fn expiring_holds_keep_every_property() {
    let config = ScenarioConfig {
        network: NetworkKind::Ordered,
        expiring_holds: true,
        ..ScenarioConfig::default()
    };
    let report = exhaustive(&config, Strategy::Bfs);
    assert_eq!(report.verdict(), Verdict::Pass, "{report:?}");
    assert_eq!(
        report.property(properties::HOLD_EXPIRED).unwrap().status,
        PropertyStatus::Reached
    );
    assert_eq!(report.unique_states, 542_914);
}

/// Goal: a reachable state in which the leader has confirmed a booking, to
/// forge violations from.
fn state_after_confirmed_booking() -> BerthState {
    let model = ScenarioConfig::default().build();
    let checker = model.checker().spawn_bfs().join();
    checker
        .discovery(properties::BOOKING_CONFIRMED)
        .expect("a booking is confirmed")
        .last_state()
        .clone()
}

fn confirmed_ack(state: &BerthState) -> Acknowledgement {
    state
        .history
        .acknowledgements
        .iter()
        .find(|ack| ack.outcome == Outcome::Confirmed)
        .cloned()
        .unwrap()
}

/// Goal: each always-property catches the violation it names. The state is
/// reachable; each forgery adds exactly the bad fact.
#[test]
fn always_properties_catch_forged_violations() {
    let state = state_after_confirmed_booking();
    let model = ScenarioConfig::default().build();
    for spec in properties::replication_properties() {
        if let Some(violation) = spec.violation {
            assert_eq!(
                violation(&model, &state),
                None,
                "{} fails on a reachable state",
                spec.name
            );
        }
    }
    let ack = confirmed_ack(&state);

    // no double sale: the same cabin confirmed to a second booking.
    let mut forged = state.clone();
    forged.history.acknowledgements.insert(Acknowledgement {
        client: Id::from(5),
        token: Token { client: 5, seq: 9 },
        position: Position(9),
        ..ack.clone()
    });
    assert!(properties::double_sale(&forged).is_some());

    // one outcome per token: the same token answered differently.
    let mut forged = state.clone();
    forged.history.acknowledgements.insert(Acknowledgement {
        outcome: Outcome::Refused(Refusal::UnitSold),
        ..ack.clone()
    });
    assert!(properties::second_outcome(&forged).is_some());

    // no split ownership: a second acknowledged entry at the same position.
    let mut forged = state.clone();
    forged.history.acknowledgements.insert(Acknowledgement {
        token: Token { client: 5, seq: 9 },
        outcome: Outcome::Held,
        ..ack.clone()
    });
    assert!(properties::split_ownership(&forged).is_some());

    // no split ownership: two replicas lead bucket 0 at epoch 1.
    let mut forged = state.clone();
    let follower_index = 2;
    let mut follower = forged.actor_states[follower_index].as_ref().clone();
    if let NodeState::Replica(replica) = &mut follower {
        Arc::make_mut(&mut replica.buckets.get_mut(&Bucket(0)).unwrap().durable)
            .placement
            .leader = Id::from(follower_index);
    }
    forged.actor_states[follower_index] = Arc::new(follower);
    assert!(properties::split_ownership(&forged).is_some());

    // no lost confirmed booking: a confirmed booking the owner never stored.
    let mut forged = state.clone();
    forged.history.acknowledgements.insert(Acknowledgement {
        token: Token { client: 4, seq: 7 },
        unit: berth_model::InventoryUnit::new("BCN-JFK-2026-07-14", "C99"),
        ..ack.clone()
    });
    assert!(properties::lost_confirmed_booking(&forged).is_some());

    // commit quorum durable: an acknowledgement at the current epoch for an
    // entry the sync follower does not have.
    let mut forged = state.clone();
    forged.history.acknowledgements.insert(Acknowledgement {
        token: Token { client: 4, seq: 7 },
        position: Position(42),
        epoch: Epoch(1),
        ..ack
    });
    assert!(properties::commit_quorum_gap(&forged).is_some());
}

/// Goal: a run cut short by its timeout says so and does not pass.
#[test]
fn timeout_makes_a_run_incomplete() {
    let config = ScenarioConfig {
        clients: 3,
        ..ScenarioConfig::default()
    };
    let report = run(
        &config,
        &RunOptions {
            timeout: Some(std::time::Duration::from_millis(300)),
            ..RunOptions::default()
        },
        |_| {},
    );
    assert!(!report.exhaustive);
    assert_eq!(report.verdict(), Verdict::Incomplete);
    assert!(report
        .properties
        .iter()
        .any(|p| p.status == PropertyStatus::NotRefuted));
}
