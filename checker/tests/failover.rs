//! Model-checking tests of the failover scenario: the correct design holds
//! every property with a crash and reaches the failover's interesting
//! states; the broken failover designs are refuted by the property the
//! Harbor Point notes say they break (docs/protocol.md), with a
//! counterexample that has the leader down.

mod support;

use berth_checker::properties;
use berth_checker::{RunOptions, Scenario, ScenarioConfig, Strategy};
use berth_model::Variant;
use std::time::Duration;
use support::{assert_holds_exhaustively, violation_of};

fn failover(variant: Variant) -> ScenarioConfig {
    ScenarioConfig {
        variant,
        ..ScenarioConfig::new(Scenario::Failover)
    }
}

/// Goal: `berth-check check --scenario failover` — one crash at a time of any
/// replica or the controller, suspicion at any moment — holds every
/// always-property exhaustively and reaches `failover completed`, `sync
/// follower replaced` and `booking confirmed after failover`. Pinned.
#[test]
fn failover_with_one_crash_holds() {
    let config = failover(Variant::Correct);
    assert_eq!(config.crashes, 1);
    let report = assert_holds_exhaustively(
        &config,
        &[
            properties::FAILOVER_COMPLETED,
            properties::SYNC_FOLLOWER_REPLACED,
            properties::BOOKING_CONFIRMED_AFTER_FAILOVER,
            properties::FOLLOWER_READ_SERVED,
            properties::LAGGING_FOLLOWER_BYPASSED,
        ],
    );
    assert_eq!(report.unique_states, 1_688_129);
}

/// Runs `variant` in the failover scenario until `no lost confirmed booking`
/// is violated, and checks the counterexamples: the shortest one (a false
/// suspicion suffices) and the shortest with the old leader really down.
fn assert_loses_a_confirmed_booking(variant: Variant) -> Vec<String> {
    let property = violation_of(
        &failover(variant),
        RunOptions::default(),
        properties::NO_LOST_CONFIRMED_BOOKING,
    );
    let explanation = property.explanation.as_ref().unwrap();
    assert!(
        explanation.contains("Confirmed") && explanation.contains("has no such booking"),
        "{explanation}"
    );
    let trace = property.trace.clone().unwrap();
    assert!(
        trace.iter().any(|step| step.contains("suspect leader")),
        "{trace:#?}"
    );
    let crash_trace = property
        .crash_trace
        .as_ref()
        .expect("a counterexample with the leader down");
    assert!(
        crash_trace
            .iter()
            .any(|step| step.contains("crash replica 1 (madrid-a)")),
        "{crash_trace:#?}"
    );
    trace
}

/// Goal: variant `promote-lagging` (failover promotes the remote
/// async follower) loses a confirmed booking.
#[test]
fn promote_lagging_is_refuted_by_no_lost_confirmed_booking() {
    let trace = assert_loses_a_confirmed_booking(Variant::PromoteLagging);
    // The booking was durable on the sync follower, yet the async follower
    // took over.
    assert!(
        trace.iter().any(|step| step.contains("Appended")),
        "{trace:#?}"
    );
}

/// Goal: variant `async-ack` (acknowledge before the sync follower
/// is durable) loses a confirmed booking once the sync follower is promoted.
#[test]
fn async_ack_is_refuted_by_no_lost_confirmed_booking() {
    let trace = assert_loses_a_confirmed_booking(Variant::AsyncAck);
    assert!(
        trace.iter().all(|step| !step.contains("Appended")),
        "the leader confirmed with no follower's acknowledgement: {trace:#?}"
    );
}

/// Goal: random simulation finds the same lost booking and prints its
/// counterexample. (Stateright's simulation cannot rebuild a path through
/// an ignored action; `run` chooses only effective actions, which this
/// test depends on.)
#[test]
fn simulation_finds_the_lost_booking_and_rebuilds_its_trace() {
    let property = violation_of(
        &failover(Variant::PromoteLagging),
        RunOptions {
            strategy: Strategy::Simulation,
            // A hang bound, not a budget: the walks stop at the first
            // violation, about a second in on an idle machine.
            timeout: Some(Duration::from_secs(200)),
            seed: 7,
            ..RunOptions::default()
        },
        properties::NO_LOST_CONFIRMED_BOOKING,
    );
    let trace = property.trace.unwrap();
    assert!(
        trace.iter().any(|step| step.contains("Fenced")),
        "{trace:#?}"
    );
}

/// Goal: variant `no-fencing` (publish the new owner without
/// fencing, so nobody checks what it holds) loses a confirmed booking once
/// the promoted follower is one that joined the commit quorum and has not
/// caught up — which is also what gives the correct design's promotion
/// rule (only a follower holding the current epoch's entries) its teeth.
#[test]
fn no_fencing_is_refuted_by_no_lost_confirmed_booking() {
    let config = ScenarioConfig::exposing(Variant::NoFencing);
    assert_eq!(config.failovers, 2);
    let property = violation_of(
        &config,
        RunOptions::default(),
        properties::NO_LOST_CONFIRMED_BOOKING,
    );
    let trace = property.trace.unwrap();
    assert!(
        trace
            .iter()
            .any(|step| step.contains("suspect sync follower")),
        "the remote follower joined the quorum first: {trace:#?}"
    );
    assert!(
        trace.iter().all(|step| !step.contains("Fence")),
        "{trace:#?}"
    );
}

/// Goal: `--variant stream-uncommitted` (the change stream serves entries
/// before they commit) is refuted by `change stream exact`: the subscriber
/// applies a hold the old leader had not committed, and the promoted
/// leader commits that position with its epoch-start entry instead. The
/// correct design on the same scenario is checked by the gallery (1.8 M
/// states).
#[test]
fn stream_uncommitted_is_refuted_by_change_stream_exact() {
    let config = ScenarioConfig::exposing(Variant::StreamUncommitted);
    assert_eq!(config.flags(), "--scenario failover --crashes 0 --stream");
    let property = violation_of(
        &config,
        RunOptions::default(),
        properties::CHANGE_STREAM_EXACT,
    );
    let trace = property.trace.as_ref().unwrap();
    assert_eq!(trace.len(), 10, "{trace:#?}");
    assert!(trace
        .iter()
        .any(|step| step.contains("subscriber") && step.contains("Changes")));
    assert!(property
        .explanation
        .as_ref()
        .unwrap()
        .contains("committed b0 through p1 without it"));
}
