//! Status reports: what a member says about itself when asked
//! (observability, not protocol: read off the member's state, deciding
//! nothing).
//!
//! A report is one datagram at every supported bucket count, so nothing in
//! it grows with the buckets: a replica sends counts and, per group and
//! follower it leads, the lag summarised (worst bucket, buckets over the
//! budget) instead of a line per bucket; its write rates are its `HOTTEST`
//! buckets plus the rest summed per group; the controller's failovers and
//! moves in progress are runs of consecutive buckets, at most `RUNS`. The
//! map travels as its runs (`PlacementMap`'s own encoding).

use crate::guard::Drops;
use berth_model::controller::ControllerState;
use berth_model::placement::PlacementMap;
use berth_model::{Bucket, Epoch, NodeState, Role};
use serde::{Deserialize, Serialize};
use stateright::actor::Id;
use std::collections::BTreeMap;

/// The most buckets whose write rate a replica reports one by one.
pub const HOTTEST: usize = 4096;
/// The most runs of buckets a controller reports per kind of work in
/// progress (failovers, moves).
pub const RUNS: usize = 2048;

/// What a member reports about itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Report {
    Controller {
        map: PlacementMap,
        /// Replicas the failure detector considers down.
        down: Vec<usize>,
        /// Buckets being failed over, as runs of consecutive buckets whose
        /// quorum is fenced at the same epoch.
        fencing: Vec<Run<Epoch>>,
        /// Buckets being moved, as runs going to the same group.
        moving: Vec<Run<u32>>,
        /// Buckets in progress left out of `fencing` and `moving` (beyond
        /// `RUNS` runs).
        left_out: u32,
        /// Datagrams it dropped, by reason.
        dropped: Drops,
    },
    Replica(ReplicaReport),
    Projector {
        dropped: Drops,
    },
}

/// Consecutive buckets `first..=last` sharing `value`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run<T> {
    pub first: Bucket,
    pub last: Bucket,
    pub value: T,
}

impl<T: Copy + PartialEq> Run<T> {
    /// `items` (in bucket order) as runs of consecutive buckets with the
    /// same value: at most `max` runs, and how many buckets were left out.
    pub fn runs(items: impl IntoIterator<Item = (Bucket, T)>, max: usize) -> (Vec<Run<T>>, u32) {
        let mut runs: Vec<Run<T>> = Vec::new();
        let mut left_out = 0u32;
        for (bucket, value) in items {
            if let Some(run) = runs.last_mut() {
                if run.value == value && run.last.0.checked_add(1) == Some(bucket.0) {
                    run.last = bucket;
                    continue;
                }
            }
            if runs.len() >= max {
                left_out += 1;
            } else {
                runs.push(Run {
                    first: bucket,
                    last: bucket,
                    value,
                });
            }
        }
        (runs, left_out)
    }

    /// How many buckets the run covers.
    pub fn len(&self) -> u32 {
        self.last.0 - self.first.0 + 1
    }

    /// Never: a run covers at least one bucket.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// "b7" or "b0-b1023".
    pub fn range(&self) -> String {
        if self.first == self.last {
            self.first.to_string()
        } else {
            format!("{}-{}", self.first, self.last)
        }
    }
}

/// A replica about itself, in counts and summaries.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaReport {
    /// Buckets it leads.
    pub leads: u32,
    /// Buckets it follows (sync or async).
    pub follows: u32,
    /// Entries committed and applied, summed over its buckets.
    pub applied: u64,
    /// Where it leads: how far each follower trails, per group (a
    /// measurement, see `crate::lag`).
    pub followers: Vec<FollowerSummary>,
    /// Client commands committed over the last `rates::WINDOW` in the
    /// buckets it led, for its `HOTTEST` busiest buckets, busiest first (a
    /// measurement, see `crate::rates`).
    pub hottest: Vec<(Bucket, u32)>,
    /// The commands of its other buckets, summed per group (as this
    /// replica knows each bucket's group; a bucket it no longer holds is
    /// left out).
    pub other_writes: Vec<(u32, u64)>,
    pub dropped: Drops,
}

/// One follower of the buckets of one group a leader leads, as the leader
/// measures it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowerSummary {
    pub group: u32,
    pub follower: usize,
    /// Whether it is an async (remote) follower of any of them.
    pub remote: bool,
    /// The buckets it follows there.
    pub buckets: u32,
    /// Of those, the buckets where it is an async follower over the RPO
    /// budget.
    pub over: u32,
    /// The most entries of the leader's log it lacks on any of them.
    pub entries: u64,
    /// The longest since it last matched the leader's whole log.
    pub millis: u64,
    /// The bucket where that is, and the entries it lacks there.
    pub worst: Bucket,
    pub worst_entries: u64,
}

impl Report {
    /// The datagrams the member dropped, by reason.
    pub fn dropped(&self) -> &Drops {
        match self {
            Report::Controller { dropped, .. }
            | Report::Replica(ReplicaReport { dropped, .. })
            | Report::Projector { dropped } => dropped,
        }
    }

    /// The report of a member in `state`, whose detector counts a replica
    /// down after `misses` probes, which measured `writes` per bucket and
    /// `followers`' lag, and dropped `dropped`.
    pub fn of(
        id: Id,
        state: &NodeState,
        misses: u8,
        writes: &BTreeMap<Bucket, u32>,
        followers: Vec<FollowerSummary>,
        dropped: &Drops,
    ) -> Report {
        let dropped = dropped.clone();
        match state {
            NodeState::Controller(controller) => controller_report(controller, misses, dropped),
            NodeState::Replica(replica) => {
                let mut report = ReplicaReport {
                    followers,
                    dropped,
                    ..ReplicaReport::default()
                };
                for bucket_replica in replica.buckets.values() {
                    let durable = &bucket_replica.durable;
                    match durable.placement.role_of(id) {
                        Some(Role::Leader) => report.leads += 1,
                        Some(_) => report.follows += 1,
                        None => {}
                    }
                    report.applied += durable.commit_position.0;
                }
                let mut busiest: Vec<(Bucket, u32)> = writes
                    .iter()
                    .map(|(bucket, count)| (*bucket, *count))
                    .collect();
                busiest.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                let rest = busiest.split_off(busiest.len().min(HOTTEST));
                let mut other: BTreeMap<u32, u64> = BTreeMap::new();
                for (bucket, count) in rest {
                    if let Some(held) = replica.buckets.get(&bucket) {
                        *other.entry(held.durable.placement.group.0).or_insert(0) +=
                            u64::from(count);
                    }
                }
                report.hottest = busiest;
                report.other_writes = other.into_iter().collect();
                Report::Replica(report)
            }
            NodeState::Client(_) | NodeState::Subscriber(_) => Report::Projector { dropped },
        }
    }
}

fn controller_report(controller: &ControllerState, misses: u8, dropped: Drops) -> Report {
    let (fencing, fences_left_out) = Run::runs(
        controller
            .fencing
            .iter()
            .map(|(bucket, epoch)| (*bucket, *epoch)),
        RUNS,
    );
    let (moving, moves_left_out) = Run::runs(
        controller
            .moving
            .iter()
            .map(|(bucket, moving)| (*bucket, moving.destination.group.0)),
        RUNS,
    );
    Report::Controller {
        map: controller.map.clone(),
        down: controller
            .down(misses)
            .into_iter()
            .map(usize::from)
            .collect(),
        fencing,
        moving,
        left_out: fences_left_out + moves_left_out,
        dropped,
    }
}
