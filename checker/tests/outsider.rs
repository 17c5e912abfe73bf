//! The outsider (`--outsider`): forged control messages change nothing,
//! and the property that says so names a replica that heeded one.

use berth_checker::outsider::{self, OUTSIDERS_IGNORED, OUTSIDER_EPOCH};
use berth_checker::{
    run, NetworkKind, PropertyStatus, RunOptions, Scenario, ScenarioConfig, StopAt, Verdict,
};
use berth_model::replica::DurableBucket;
use berth_model::{Bucket, NodeState};
use stateright::{Checker, Model};
use std::sync::Arc;

fn outsider_run() -> ScenarioConfig {
    ScenarioConfig {
        clients: 1,
        network: NetworkKind::Ordered,
        outsider: true,
        ..ScenarioConfig::new(Scenario::Replication)
    }
}

/// Goal: with an outsider sending a fence, a placement, a move order, an
/// append and an acknowledgement in its own name, the correct design keeps
/// every property, `outsiders are ignored` among them.
#[test]
fn the_correct_design_ignores_the_outsider() {
    let report = run(
        &outsider_run(),
        &RunOptions {
            stop_at: StopAt::Never,
            ..RunOptions::default()
        },
        |_| {},
    );
    assert_eq!(report.verdict(), Verdict::Pass, "{report:?}");
    assert_eq!(
        report.property(OUTSIDERS_IGNORED).unwrap().status,
        PropertyStatus::Holds
    );
}

/// Goal: a replica that promised the outsider's epoch, or took its
/// placement, is named.
#[test]
fn a_replica_that_heeds_the_outsider_is_named() {
    let model = outsider_run().build();
    let state = outsider_run().build().checker().spawn_bfs().join();
    let state = state
        .discovery(berth_checker::properties::BOOKING_CONFIRMED)
        .expect("a booking is confirmed")
        .last_state()
        .clone();
    assert_eq!(outsider::outsider_heeded(&model, &state), None);
    let forge = |change: fn(&mut DurableBucket)| {
        let mut forged = state.clone();
        let mut node = forged.actor_states[2].as_ref().clone();
        if let NodeState::Replica(replica) = &mut node {
            let copy = replica.buckets.get_mut(&Bucket(0)).unwrap();
            change(Arc::make_mut(&mut copy.durable));
        }
        forged.actor_states[2] = Arc::new(node);
        outsider::outsider_heeded(&model, &forged)
    };
    let promised = forge(|durable| durable.promised_epoch = OUTSIDER_EPOCH).unwrap();
    assert!(
        promised.contains("replica 2 promised the outsider's epoch"),
        "{promised}"
    );
    let placed = forge(|durable| durable.placement.epoch = OUTSIDER_EPOCH).unwrap();
    assert!(placed.contains("took the outsider's placement"), "{placed}");
}
