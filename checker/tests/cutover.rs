//! Model-checking tests of the cutover scenario: the live move holds every
//! property (with a crash too) and reaches its interesting states; the
//! broken hand-offs are refuted by the property docs/protocol.md names.

mod support;

use berth_checker::properties;
use berth_checker::{NetworkKind, RunOptions, Scenario, ScenarioConfig};
use berth_model::Variant;
use support::{assert_holds_exhaustively, violation_of};

fn cutover() -> ScenarioConfig {
    ScenarioConfig::new(Scenario::Cutover)
}

const CUTOVER_REACHED: [&str; 3] = [
    properties::CUTOVER_COMPLETED,
    properties::BOOKING_CONFIRMED_BY_NEW_OWNER,
    properties::STALE_ROUTER_REDIRECTED,
];

/// Goal: `berth-check check --scenario cutover` — the bucket moves from
/// group 1 to group 2 while a client books, over an unordered network —
/// holds every always-property and reaches `cutover completed`, `booking
/// confirmed by new owner` and `stale router redirected`. Pinned.
#[test]
fn cutover_holds() {
    let report = assert_holds_exhaustively(&cutover(), &CUTOVER_REACHED);
    assert_eq!(report.unique_states, 831_325);
}

/// Goal: a crash of any server (a replica of either group or the
/// controller) at any point of the move, with recovery from disk, breaks
/// nothing: the move completes or stalls, and no destination becomes owner
/// without the barrier. The ordered network keeps this run small enough
/// for the suite; the unordered run is in the issue notes.
#[test]
fn cutover_with_a_crash_holds() {
    let config = ScenarioConfig {
        crashes: 1,
        network: NetworkKind::Ordered,
        ..cutover()
    };
    let report = assert_holds_exhaustively(&config, &CUTOVER_REACHED);
    assert_eq!(report.unique_states, 694_766);
}

fn assert_refuted_by(variant: Variant, property: &'static str) -> Vec<String> {
    let config = ScenarioConfig {
        variant,
        ..cutover()
    };
    violation_of(&config, RunOptions::default(), property)
        .trace
        .unwrap()
}

/// Goal: variant `early-switch` (routing switches before the
/// destination applied through the barrier) loses a confirmed booking: the
/// controller publishes the destination, which never received it.
#[test]
fn early_switch_is_refuted_by_no_lost_confirmed_booking() {
    let trace = assert_refuted_by(Variant::EarlySwitch, properties::NO_LOST_CONFIRMED_BOOKING);
    assert!(
        trace
            .iter()
            .any(|step| step.contains("MoveBucket { b0 to G2 }")),
        "{trace:#?}"
    );
    assert!(
        trace.iter().all(|step| !step.contains("MovedOut")),
        "published without the barrier: {trace:#?}"
    );
}

/// Goal: variant `unchecked-epoch` (replicas accept writes and
/// appends whatever epoch they carry) lets the old owner commit after the
/// hand-off at the position where the new owner committed: split ownership.
#[test]
fn unchecked_epoch_is_refuted_by_no_split_ownership() {
    let trace = assert_refuted_by(Variant::UncheckedEpoch, properties::NO_SPLIT_OWNERSHIP);
    let handoff = trace
        .iter()
        .position(|step| step.contains("MovedOut"))
        .expect("the move completed");
    assert!(
        trace[handoff..]
            .iter()
            .any(|step| step.contains("replica 1 (madrid-a) → client")),
        "the old owner answered after the hand-off: {trace:#?}"
    );
}
