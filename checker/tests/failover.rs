//! Model-checking tests of the failover scenario: the correct design holds
//! every property with a crash and reaches the failover's interesting
//! states; the broken failover designs are refuted by the property the
//! seeds say they break, with a counterexample that has the leader down.

use berth_checker::{run, PropertyStatus, RunOptions, Scenario, ScenarioConfig, StopAt, Verdict};
use berth_model::properties;
use berth_model::Variant;

fn failover(variant: Variant) -> ScenarioConfig {
    ScenarioConfig {
        variant,
        ..ScenarioConfig::new(Scenario::Failover)
    }
}

/// Goal: `berth-check check --scenario failover` — one crash at a time of any
/// replica or the controller, suspicion at any moment — holds every
/// always-property exhaustively and reaches `failover completed`, `sync
/// follower replaced` and `booking confirmed after failover`. The state count is pinned: a change
/// of the state space must be explained in the commit that makes it.
#[test]
fn failover_with_one_crash_holds() {
    let config = failover(Variant::Correct);
    assert_eq!(config.crashes, 1);
    let report = run(
        &config,
        &RunOptions {
            stop_at: StopAt::Never,
            ..RunOptions::default()
        },
        |_| {},
    );
    assert!(report.exhaustive, "{:?}", report.stop_reason);
    for property in &report.properties {
        assert!(
            property.status.is_good(),
            "{} is {:?}: {:?}",
            property.name,
            property.status,
            property.explanation
        );
    }
    for name in [
        properties::FAILOVER_COMPLETED,
        properties::SYNC_FOLLOWER_REPLACED,
        properties::BOOKING_CONFIRMED_AFTER_FAILOVER,
    ] {
        assert_eq!(
            report.property(name).map(|p| p.status),
            Some(PropertyStatus::Reached),
            "{name}"
        );
    }
    assert_eq!(report.verdict(), Verdict::Pass);
    assert_eq!(report.unique_states, 518_238);
}

/// Runs `variant` in the failover scenario until `no lost confirmed booking`
/// is violated, and checks the counterexamples: the shortest one (a false
/// suspicion suffices) and the shortest with the old leader really down.
fn assert_loses_a_confirmed_booking(variant: Variant) -> Vec<String> {
    let report = run(
        &failover(variant),
        &RunOptions {
            stop_at: StopAt::AnyOf(vec![properties::NO_LOST_CONFIRMED_BOOKING]),
            ..RunOptions::default()
        },
        |_| {},
    );
    assert_eq!(report.verdict(), Verdict::Fail);
    let property = report
        .property(properties::NO_LOST_CONFIRMED_BOOKING)
        .unwrap();
    assert_eq!(property.status, PropertyStatus::Violated, "{variant}");
    let explanation = property.explanation.as_ref().unwrap();
    assert!(
        explanation.contains("Confirmed") && explanation.contains("has no such booking"),
        "{explanation}"
    );
    let trace = property.trace.as_ref().unwrap();
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
    trace.clone()
}

/// Goal: DESIGN.md variant `promote-lagging` (failover promotes the remote
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

/// Goal: DESIGN.md variant `async-ack` (acknowledge before the sync follower
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
    let report = run(
        &failover(Variant::PromoteLagging),
        &RunOptions {
            strategy: berth_checker::Strategy::Simulation,
            timeout: Some(std::time::Duration::from_secs(20)),
            stop_at: StopAt::AnyOf(vec![properties::NO_LOST_CONFIRMED_BOOKING]),
            seed: 7,
            ..RunOptions::default()
        },
        |_| {},
    );
    let property = report
        .property(properties::NO_LOST_CONFIRMED_BOOKING)
        .unwrap();
    assert_eq!(property.status, PropertyStatus::Violated);
    let trace = property.trace.as_ref().unwrap();
    assert!(
        trace.iter().any(|step| step.contains("Fenced")),
        "{trace:#?}"
    );
}

/// Goal: DESIGN.md variant `no-fencing` (publish the new owner without
/// fencing, so nobody checks what it holds) loses a confirmed booking once
/// the promoted follower is one that joined the commit quorum and has not
/// caught up — which is also what gives the correct design's promotion
/// rule (only a follower holding the current epoch's entries) its teeth.
#[test]
fn no_fencing_is_refuted_by_no_lost_confirmed_booking() {
    let config = ScenarioConfig::exposing(Variant::NoFencing);
    assert_eq!(config.failovers, 2);
    let report = run(
        &config,
        &RunOptions {
            stop_at: StopAt::AnyOf(vec![properties::NO_LOST_CONFIRMED_BOOKING]),
            ..RunOptions::default()
        },
        |_| {},
    );
    let property = report
        .property(properties::NO_LOST_CONFIRMED_BOOKING)
        .unwrap();
    assert_eq!(property.status, PropertyStatus::Violated);
    let trace = property.trace.as_ref().unwrap();
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
