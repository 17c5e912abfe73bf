//! Model-checking tests of the runtime's catch-up, log folding and chunked
//! snapshots (`--catch-up`, `--retained-entries`, `--snapshot-chunk`),
//! each off in the other scenarios' pinned runs.

mod support;

use berth_checker::properties;
use berth_checker::{NetworkKind, Scenario, ScenarioConfig};
use support::assert_holds_exhaustively;

/// Goal: `berth-check check --crashes 1 --clients 1 --catch-up` — a
/// recovering replica reports its commit to the leader, a follower
/// answers a gap, the leader resends on either — holds every property,
/// with any replica crashing and recovering at any point. Pinned.
#[test]
fn replication_with_catch_up_and_a_crash_holds() {
    let config = ScenarioConfig {
        crashes: 1,
        clients: 1,
        catch_up: true,
        ..ScenarioConfig::new(Scenario::Replication)
    };
    let report = assert_holds_exhaustively(&config, &[properties::BOOKING_CONFIRMED]);
    assert_eq!(report.unique_states, PINNED_CATCH_UP);
}

/// Goal: `berth-check check --scenario cutover --network ordered
/// --retained-entries 0 --snapshot-chunk 1 --catch-up` — the destination
/// gets the bucket in chunks of one unit or outcome, logs fold every
/// committed entry but the last — still completes the cutover, with the
/// booking confirmed by the new owner, and holds every property. Pinned.
#[test]
fn cutover_with_tiny_chunks_and_folding_holds() {
    let config = ScenarioConfig {
        network: NetworkKind::Ordered,
        retained_entries: Some(0),
        snapshot_chunk: Some(1),
        catch_up: true,
        ..ScenarioConfig::new(Scenario::Cutover)
    };
    let report = assert_holds_exhaustively(
        &config,
        &[
            properties::CUTOVER_COMPLETED,
            properties::BOOKING_CONFIRMED_BY_NEW_OWNER,
        ],
    );
    assert_eq!(report.unique_states, PINNED_CHUNKS);
}

const PINNED_CATCH_UP: usize = 0;
const PINNED_CHUNKS: usize = 0;
