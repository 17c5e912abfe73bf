//! The hash memo of durable buckets (`berth_model::memo`) is sound: in
//! every state of a run with crashes, recoveries, a move and snapshots,
//! each bucket's memoised hash is the hash of its content. A change that
//! skipped `DurableBucket::edit` would leave a stale memo, and the checker
//! would merge different states and explore fewer.

use berth_checker::{NetworkKind, Scenario, ScenarioConfig};
use berth_model::actor::{NodeState, Storage};
use stateright::{Checker, Expectation, Model};

const MEMOS_CURRENT: &str = "hash memos are current";

fn memos_current(state: &berth_checker::history::BerthState) -> bool {
    let in_memory = state.actor_states.iter().all(|node| match &**node {
        NodeState::Replica(replica) => replica
            .buckets
            .iter()
            .all(|(_, bucket)| bucket.durable.memo_is_current()),
        _ => true,
    });
    let saved = state
        .actor_storages
        .iter()
        .flatten()
        .all(|storage| match storage {
            Storage::Replica(buckets) => buckets.values().all(|durable| durable.memo_is_current()),
            Storage::Controller(_) => true,
        });
    in_memory && saved
}

/// Goal: the cutover with a crash of any server, recovered from disk (the
/// run `cutover_with_a_crash_holds` pins), keeps every memo current and
/// explores exactly as many states as it does.
#[test]
fn hash_memos_are_current_in_every_state() {
    let config = ScenarioConfig {
        crashes: 1,
        network: NetworkKind::Ordered,
        ..ScenarioConfig::new(Scenario::Cutover)
    };
    let model = config
        .build()
        .with_property(Expectation::Always, MEMOS_CURRENT, |_, state| {
            memos_current(state)
        });
    let checker = model.checker().spawn_bfs().join();
    assert!(checker.is_done());
    assert!(
        checker.discovery(MEMOS_CURRENT).is_none(),
        "a stale hash memo"
    );
    assert_eq!(checker.unique_state_count(), 694_766);
}
