//! `berth-check verify`: the standard battery — every scenario and variant
//! the protocol must hold or be refuted on, each exhaustive — in one
//! command with one table. It is what CI runs after the tests and what the
//! mutation run uses as its oracle (docs/verification.md).

use crate::properties::expected_violations;
use crate::run::{run, BeyondRest, PropertyStatus, RunOptions, StopAt, Strategy, Verdict};
use crate::scenario::{NetworkKind, Scenario, ScenarioConfig};
use berth_model::Variant;
use serde::Serialize;
use std::time::Instant;

/// What one run of the battery must show.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Expect {
    /// Exhaustive; every always-property holds, every sometimes-property
    /// is reached.
    Pass,
    /// One of these always-properties is violated (a broken design).
    Refuted(Vec<&'static str>),
}

/// The runs of `battery` that take seconds, not minutes, each on a quiet
/// 2-core machine: the mutation run's first oracle (a mutant they do not
/// kill then meets the whole battery).
pub fn quick_battery() -> Vec<Check> {
    battery()
        .into_iter()
        .filter(|check| {
            let config = &check.config;
            let large = matches!(config.scenario, Scenario::Failover | Scenario::All)
                && config.variant == Variant::Correct
                || (config.scenario == Scenario::Cutover
                    && config.network != NetworkKind::Ordered
                    && config.variant == Variant::Correct);
            !large
        })
        .collect()
}

/// One run of the battery.
#[derive(Clone, Debug)]
pub struct Check {
    /// Why the run is in the battery: what it is the only one to cover.
    pub why: &'static str,
    pub config: ScenarioConfig,
    pub expect: Expect,
}

/// One row of the battery's table.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub variant: Variant,
    /// The `berth-check check` flags of the run.
    pub scenario: String,
    pub why: &'static str,
    pub expect: Expect,
    pub unique_states: usize,
    /// The exploration and what follows it (the liveness-beyond-rest
    /// check).
    pub seconds: f64,
    /// Whether the liveness-beyond-rest check ran, and what it found.
    pub beyond_rest: BeyondRest,
    /// Every always-property found violated, and every sometimes-property
    /// left unreached.
    pub failed: Vec<&'static str>,
    pub passes: bool,
}

/// The whole battery's result.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub rows: Vec<Row>,
    pub seconds: f64,
    pub passes: bool,
}

fn on(scenario: Scenario) -> ScenarioConfig {
    ScenarioConfig::new(scenario)
}

/// The standard battery: the correct design on every standard scenario,
/// then every broken design on the scenario that exposes it.
pub fn battery() -> Vec<Check> {
    let pass = |why, config| Check {
        why,
        config,
        expect: Expect::Pass,
    };
    let mut checks =
        vec![
        pass("the commit rule, idempotency and contention", on(Scenario::Replication)),
        pass(
            "messages between two actors in order",
            ScenarioConfig {
                network: NetworkKind::Ordered,
                ..on(Scenario::Replication)
            },
        ),
        pass(
            "lost messages",
            ScenarioConfig {
                network: NetworkKind::Lossy,
                ..on(Scenario::Replication)
            },
        ),
        pass(
            "duplicated requests (what a retry looks like)",
            ScenarioConfig {
                network: NetworkKind::UnorderedDuplicating,
                ..on(Scenario::Replication)
            },
        ),
        pass(
            "a token query delivered twice: the leader voids the token once, and the second copy waits for that void",
            ScenarioConfig {
                clients: 1,
                query: true,
                network: NetworkKind::UnorderedDuplicating,
                ..on(Scenario::Replication)
            },
        ),
        pass(
            "a crashed replica recovers from disk",
            ScenarioConfig {
                crashes: 1,
                ..on(Scenario::Replication)
            },
        ),
        pass(
            "holds expire through the log (two clients: ordered, or tens of millions of states)",
            ScenarioConfig {
                expiring_holds: true,
                network: NetworkKind::Ordered,
                ..on(Scenario::Replication)
            },
        ),
        pass(
            "holds expire across a failover: the promoted leader restarts the clock of every hold it inherits (ordered network, no crash)",
            ScenarioConfig {
                expiring_holds: true,
                network: NetworkKind::Ordered,
                crashes: 0,
                ..on(Scenario::Failover)
            },
        ),
        pass(
            "a client retry across a replica's crash",
            ScenarioConfig {
                clients: 1,
                retries: 1,
                crashes: 1,
                ..on(Scenario::Replication)
            },
        ),
        pass(
            "the runtime's log folding: committed entries beyond one folded into the state",
            ScenarioConfig {
                retained_entries: Some(1),
                ..on(Scenario::Replication)
            },
        ),
        pass(
            "a move with the runtime's folding and snapshots in chunks of one item",
            ScenarioConfig {
                network: NetworkKind::Ordered,
                retained_entries: Some(1),
                snapshot_chunk: Some(1),
                ..on(Scenario::Cutover)
            },
        ),
        pass(
            "a move with snapshots in chunks of two items: where each chunk starts (with chunks of one, an index and an offset are the same number)",
            ScenarioConfig {
                network: NetworkKind::Ordered,
                retained_entries: Some(1),
                snapshot_chunk: Some(2),
                ..on(Scenario::Cutover)
            },
        ),
        pass(
            "the runtime's settings, and liveness: lost appends on an idle bucket",
            ScenarioConfig {
                clients: 1,
                network: NetworkKind::OrderedLossy,
                runtime_settings: true,
                ..on(Scenario::Replication)
            },
        ),
        pass(
            "the runtime's settings with its log folding and snapshot chunks: a follower whose lost appends fell behind the log's start catches up from a snapshot",
            ScenarioConfig {
                clients: 1,
                network: NetworkKind::OrderedLossy,
                runtime_settings: true,
                retained_entries: Some(1),
                snapshot_chunk: Some(1),
                ..on(Scenario::Replication)
            },
        ),
        pass(
            "the runtime's settings on a network that loses nothing: followers learn every commit, and the leader falls quiet",
            ScenarioConfig {
                clients: 1,
                network: NetworkKind::Ordered,
                runtime_settings: true,
                ..on(Scenario::Replication)
            },
        ),
        pass(
            "a move there and back, nobody booking: the second move's destination holds the sealed copy it moved out, at an older epoch, and must take the new snapshot over it (ordered network; catch-up on)",
            ScenarioConfig {
                network: NetworkKind::Ordered,
                clients: 0,
                move_back: true,
                ..on(Scenario::Cutover)
            },
        ),
        pass(
            "a crash loses what is sent to the crashed replica: a restarted follower asks to be caught up, a restarted leader asks its followers to report (catch-up and commit announcements, ordered network)",
            ScenarioConfig {
                clients: 1,
                network: NetworkKind::Ordered,
                crashes: 1,
                catch_up: true,
                announce_commits: true,
                ..on(Scenario::Replication)
            },
        ),
        pass(
            "a follower that learns a new placement after its new leader's append came and was refused reports its commit to that leader (catch-up and commit announcements across a failover, ordered network)",
            ScenarioConfig {
                network: NetworkKind::Ordered,
                crashes: 0,
                catch_up: true,
                announce_commits: true,
                ..on(Scenario::Failover)
            },
        ),
        pass(
            "an outsider sends, in its own name, a fence, a placement, a move order, an append and an acknowledgement: no replica acts on any (ordered network)",
            ScenarioConfig {
                clients: 1,
                network: NetworkKind::Ordered,
                outsider: true,
                ..on(Scenario::Replication)
            },
        ),
        pass(
            "an outsider during a move: also a snapshot carrying its own entry, in the name of the bucket's leader, to the destination and to the sync follower; no replica takes it (ordered network)",
            ScenarioConfig {
                network: NetworkKind::Ordered,
                outsider: true,
                ..on(Scenario::Cutover)
            },
        ),
        pass(
            "a planned failover: the operator asks for it (`berth failover`, the `Failover` request) while the leader serves, and no detector runs; it must complete and lose nothing (ordered network)",
            ScenarioConfig {
                network: NetworkKind::Ordered,
                crashes: 0,
                planned_failover: true,
                ..on(Scenario::Failover)
            },
        ),
        pass(
            "an outsider during a failover: a fence report in its own name, claiming the whole log at the epoch being fenced; the controller promotes only a sync follower (ordered network)",
            ScenarioConfig {
                network: NetworkKind::Ordered,
                crashes: 0,
                outsider: true,
                ..on(Scenario::Failover)
            },
        ),
        pass(
            "the operator's move request resent, as `berth move` does: the copy that arrives during the move or after it starts nothing (ordered network)",
            ScenarioConfig {
                network: NetworkKind::Ordered,
                resent_move: true,
                ..on(Scenario::Cutover)
            },
        ),
        pass(
            "a client that confirms its hold without waiting for the answer: a refused hold's confirm is refused as never matching (ordered network)",
            ScenarioConfig {
                network: NetworkKind::Ordered,
                blind_confirm: true,
                ..on(Scenario::Replication)
            },
        ),
        pass(
            "two sync followers: a commit waits for both",
            ScenarioConfig {
                sync_followers: 2,
                ..on(Scenario::Replication)
            },
        ),
        pass(
            "fencing, promotion of the durable prefix, sync follower replaced",
            on(Scenario::Failover),
        ),
        pass(
            "the controller resends unanswered fences",
            ScenarioConfig {
                resend_unanswered: true,
                ..on(Scenario::Failover)
            },
        ),
        pass(
            "a token query across a failover",
            ScenarioConfig {
                query: true,
                crashes: 0,
                ..on(Scenario::Failover)
            },
        ),
        pass(
            "the change stream across a failover",
            ScenarioConfig {
                stream: true,
                crashes: 0,
                ..on(Scenario::Failover)
            },
        ),
        pass(
            "the change stream across a cutover: the sealed source no longer leads, so the subscriber finds the new owner (ordered network)",
            ScenarioConfig {
                network: NetworkKind::Ordered,
                stream: true,
                ..on(Scenario::Cutover)
            },
        ),
        pass(
            "the runtime's probe detector: failover on missed probes (ordered network, no crash)",
            ScenarioConfig {
                network: NetworkKind::Ordered,
                crashes: 0,
                probes: true,
                ..on(Scenario::Failover)
            },
        ),
        pass(
            "two sync followers: both fenced, either promoted or replaced (ordered network, no crash)",
            ScenarioConfig {
                network: NetworkKind::Ordered,
                crashes: 0,
                sync_followers: 2,
                ..on(Scenario::Failover)
            },
        ),
        pass(
            "two epoch changes for one bucket: a replacement or a failover, then another; the promotion check at the second (ordered network, no crash)",
            ScenarioConfig {
                network: NetworkKind::Ordered,
                crashes: 0,
                failovers: 2,
                ..on(Scenario::Failover)
            },
        ),
        pass("a live move through the barrier", on(Scenario::Cutover)),
        pass(
            "a crash during a move (ordered network)",
            ScenarioConfig {
                network: NetworkKind::Ordered,
                crashes: 1,
                ..on(Scenario::Cutover)
            },
        ),
        pass(
            "a token query across a move: the idempotency table travels",
            ScenarioConfig {
                network: NetworkKind::Ordered,
                query: true,
                ..on(Scenario::Cutover)
            },
        ),
        pass(
            "a move with appends of one entry, batches of one bucket, commit announcements",
            ScenarioConfig {
                network: NetworkKind::Ordered,
                max_append_entries: Some(1),
                max_batch: Some(1),
                announce_commits: true,
                ..on(Scenario::Cutover)
            },
        ),
    ];
    for variant in Variant::ALL {
        if variant == Variant::Correct {
            continue;
        }
        checks.push(Check {
            why: variant.design(),
            config: ScenarioConfig::exposing(variant),
            expect: Expect::Refuted(expected_violations(variant).to_vec()),
        });
    }
    checks
}

/// Runs `checks` one after another with `threads` worker threads, calling
/// `progress` before each run and `finished` after it; stops after the
/// first row that fails if `fail_fast`.
pub fn verify(
    checks: &[Check],
    threads: usize,
    fail_fast: bool,
    mut progress: impl FnMut(usize, &Check),
    mut finished: impl FnMut(&Row),
) -> Report {
    let started = Instant::now();
    let mut rows = Vec::new();
    for (index, check) in checks.iter().enumerate() {
        progress(index, check);
        // A run gives a verdict, not a trace: the table names the
        // properties broken, and `check` (or `gallery`) with the row's
        // flags shows the shortest trace. So no run searches for its
        // shortest counterexample: that search's length depends on which
        // violations the run happened to find before it stopped, and
        // made a broken design's row take from 25 s to 340 s.
        //
        // A correct-design run explores depth-first: the same states as
        // breadth-first when exhaustive, faster, and holding only the
        // path it is on instead of a whole frontier of states (the
        // memory a deep run needs is its visited fingerprints). A broken
        // design's run is breadth-first: it stops at its first violation,
        // which breadth-first finds at the shallowest depth.
        let (stop_at, strategy) = match &check.expect {
            Expect::Pass => (StopAt::FirstViolation, Strategy::Dfs),
            Expect::Refuted(properties) => (StopAt::AnyOf(properties.clone()), Strategy::Bfs),
        };
        let report = run(
            &check.config,
            &RunOptions {
                strategy,
                threads,
                stop_at,
                shortest: false,
                ..RunOptions::default()
            },
            |_| {},
        );
        let failed: Vec<&'static str> = report
            .properties
            .iter()
            .filter(|p| {
                p.status == PropertyStatus::Violated || p.status == PropertyStatus::Unreached
            })
            .map(|p| p.name)
            .collect();
        let passes = match &check.expect {
            Expect::Pass => report.verdict() == Verdict::Pass,
            Expect::Refuted(expected) => expected.iter().any(|name| {
                report
                    .property(name)
                    .is_some_and(|p| p.status == PropertyStatus::Violated)
            }),
        };
        let row = Row {
            variant: check.config.variant,
            scenario: check.config.flags(),
            why: check.why,
            expect: check.expect.clone(),
            unique_states: report.unique_states,
            seconds: report.seconds + report.search_seconds,
            beyond_rest: report.beyond_rest,
            failed,
            passes,
        };
        finished(&row);
        rows.push(row);
        if fail_fast && !passes {
            break;
        }
    }
    let passes = rows.len() == checks.len() && rows.iter().all(|row| row.passes);
    Report {
        rows,
        seconds: started.elapsed().as_secs_f64(),
        passes,
    }
}
