//! `berth status` as data: what the members reported, gathered into one
//! [`Overview`]. The text `berth status` prints ([`crate::status`]) and the
//! JSON of `berth status --json` are both this; the JSON's field names are
//! stable and listed in `docs/operations.md`.

use crate::config::{controller_id, ClusterConfig};
use crate::guard::Drops;
use crate::report::{ReplicaReport, Report, Run};
use berth_model::placement::{BucketPlacement, PlacementMap};
use serde::Serialize;
use stateright::actor::Id;
use std::collections::{BTreeMap, BTreeSet};

/// The whole status.
#[derive(Clone, Debug, Serialize)]
pub struct Overview {
    pub health: Health,
    pub controller: Member,
    /// The placement map's version (absent while the controller is down).
    pub map_version: Option<u64>,
    /// The map as ranges of consecutive buckets with the same placement.
    pub map: Vec<Range>,
    /// Replicas the controller's failure detector considers down.
    pub detector_down: Vec<usize>,
    pub failovers: Vec<Failover>,
    pub moves: Vec<Move>,
    /// Buckets in progress the controller's report left out (it lists at
    /// most `report::RUNS` runs of each kind).
    pub in_progress_left_out: u32,
    pub replicas: Vec<ReplicaStatus>,
    pub projector: Option<Member>,
    /// The async followers' RPO budget.
    pub lag_budget_ms: u64,
    /// Each group's failover readiness (empty while the map is unknown).
    pub groups: Vec<Readiness>,
    /// Members that dropped datagrams since they started.
    pub dropped: Vec<Dropped>,
}

/// The one-line summary.
#[derive(Clone, Debug, Serialize)]
pub struct Health {
    /// Per group, the replicas leading its buckets.
    pub leaders: Vec<GroupLeaders>,
    /// Members that did not answer (controller, replicas, projector), by name.
    pub members_down: Vec<String>,
    /// Buckets being failed over, and being moved.
    pub failovers_in_progress: u32,
    pub moves_in_progress: u32,
}

#[derive(Clone, Debug, Serialize)]
pub struct GroupLeaders {
    pub group: u32,
    pub leaders: Vec<LeaderCount>,
}

#[derive(Clone, Debug, Serialize)]
pub struct LeaderCount {
    pub replica: usize,
    pub buckets: u32,
}

/// A member's address and whether it answered.
#[derive(Clone, Debug, Serialize)]
pub struct Member {
    pub addr: String,
    pub up: bool,
}

/// Buckets `first..=last`, all placed alike.
#[derive(Clone, Debug, Serialize)]
pub struct Range {
    pub first: u32,
    pub last: u32,
    pub epoch: u64,
    pub group: u32,
    pub leader: usize,
    pub sync_followers: Vec<usize>,
    pub async_followers: Vec<usize>,
}

/// Buckets `first..=last` being failed over, their quorum fenced at `epoch`.
#[derive(Clone, Debug, Serialize)]
pub struct Failover {
    pub first: u32,
    pub last: u32,
    pub epoch: u64,
}

/// Buckets `first..=last` being moved to `group`.
#[derive(Clone, Debug, Serialize)]
pub struct Move {
    pub first: u32,
    pub last: u32,
    pub group: u32,
}

#[derive(Clone, Debug, Serialize)]
pub struct ReplicaStatus {
    pub id: usize,
    pub name: String,
    pub region: String,
    pub addr: String,
    pub up: bool,
    /// Its own counts (absent if it did not answer).
    pub leads: Option<u32>,
    pub follows: Option<u32>,
    pub applied: Option<u64>,
    /// How far it trails, as the leaders that answered measure it: the
    /// most entries it lacks and the longest it has not been caught up,
    /// over every bucket it follows (absent if no leader measured it).
    pub lag_entries: Option<u64>,
    pub lag_ms: Option<u64>,
}

/// One group's failover readiness.
#[derive(Clone, Debug, Serialize)]
pub struct Readiness {
    pub group: u32,
    /// `ready`, `not-ready`, `unknown`, `no-buckets` or `no-async`.
    pub state: &'static str,
    /// The slowest async follower of its buckets, as their leaders
    /// measured it.
    pub slowest: Option<Slowest>,
    /// Async followers of its buckets that did not answer.
    pub silent_async: Vec<usize>,
    /// Leaders of its buckets that did not answer.
    pub silent_leaders: Vec<usize>,
    /// The verdict as `berth status` words it.
    pub text: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Slowest {
    pub follower: usize,
    pub bucket: u32,
    pub millis: u64,
    pub entries: u64,
    /// Buckets of the group on which async followers are over the budget.
    pub buckets_over: u32,
}

#[derive(Clone, Debug, Serialize)]
pub struct Dropped {
    pub member: String,
    #[serde(flatten)]
    pub counts: Drops,
}

/// Display names of `ids` without the "replica " prefix: "2 (madrid-b)".
pub fn short_names(config: &ClusterConfig, ids: &[Id]) -> String {
    ids.iter()
        .map(|id| {
            let name = config.name_of(*id);
            name.strip_prefix("replica ").unwrap_or(&name).to_owned()
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn numbers(ids: &[Id]) -> Vec<usize> {
    ids.iter().copied().map(usize::from).collect()
}

/// `reports` (by member) gathered.
pub fn overview(config: &ClusterConfig, reports: &BTreeMap<Id, Report>) -> Overview {
    let replica_reports: BTreeMap<usize, &ReplicaReport> = reports
        .iter()
        .filter_map(|(id, report)| match report {
            Report::Replica(replica) => Some((usize::from(*id), replica)),
            _ => None,
        })
        .collect();
    let mut overview = Overview {
        health: Health {
            leaders: Vec::new(),
            members_down: Vec::new(),
            failovers_in_progress: 0,
            moves_in_progress: 0,
        },
        controller: Member {
            addr: config.controller.addr.to_string(),
            up: false,
        },
        map_version: None,
        map: Vec::new(),
        detector_down: Vec::new(),
        failovers: Vec::new(),
        moves: Vec::new(),
        in_progress_left_out: 0,
        replicas: Vec::new(),
        projector: None,
        lag_budget_ms: config.lag_budget_ms,
        groups: Vec::new(),
        dropped: Vec::new(),
    };
    let mut map = None;
    if let Some(Report::Controller {
        map: controller_map,
        down,
        fencing,
        moving,
        left_out,
        ..
    }) = reports.get(&controller_id())
    {
        map = Some(controller_map);
        overview.controller.up = true;
        overview.map_version = Some(controller_map.version);
        overview.map = ranges(controller_map);
        overview.detector_down = down.clone();
        overview.failovers = fencing
            .iter()
            .map(|run: &Run<_>| Failover {
                first: run.first.0,
                last: run.last.0,
                epoch: run.value.0,
            })
            .collect();
        overview.moves = moving
            .iter()
            .map(|run| Move {
                first: run.first.0,
                last: run.last.0,
                group: run.value,
            })
            .collect();
        overview.in_progress_left_out = *left_out;
        overview.health.failovers_in_progress = fencing.iter().map(Run::len).sum();
        overview.health.moves_in_progress = moving.iter().map(Run::len).sum();
        overview.health.leaders = leaders(config, controller_map);
    } else {
        overview.health.members_down.push("controller".to_owned());
    }
    // Each follower's lag as its leaders measured it.
    let mut trailing: BTreeMap<usize, (u64, u64)> = BTreeMap::new();
    for report in replica_reports.values() {
        for follower in &report.followers {
            let worst = trailing.entry(follower.follower).or_default();
            worst.0 = worst.0.max(follower.entries);
            worst.1 = worst.1.max(follower.millis);
        }
    }
    for replica in &config.replicas {
        let report = replica_reports.get(&replica.id);
        let lag = trailing.get(&replica.id);
        let name = config.name_of(Id::from(replica.id));
        if report.is_none() {
            overview.health.members_down.push(name.clone());
        }
        overview.replicas.push(ReplicaStatus {
            id: replica.id,
            name,
            region: replica.region.clone(),
            addr: replica.addr.to_string(),
            up: report.is_some(),
            leads: report.map(|r| r.leads),
            follows: report.map(|r| r.follows),
            applied: report.map(|r| r.applied),
            lag_entries: lag.map(|l| l.0),
            lag_ms: lag.map(|l| l.1),
        });
    }
    if let (Some(entry), Some(id)) = (&config.projector, config.projector_id()) {
        let up = matches!(reports.get(&id), Some(Report::Projector { .. }));
        if !up {
            overview.health.members_down.push("projector".to_owned());
        }
        overview.projector = Some(Member {
            addr: entry.addr.to_string(),
            up,
        });
    }
    for (id, report) in reports {
        if report.dropped().total() > 0 {
            let member = match report {
                Report::Projector { .. } => "projector".to_owned(),
                _ => config.name_of(*id),
            };
            overview.dropped.push(Dropped {
                member,
                counts: report.dropped().clone(),
            });
        }
    }
    if let Some(map) = map {
        overview.groups = config
            .groups
            .iter()
            .map(|group| readiness(config, map, &replica_reports, group.id))
            .collect();
    }
    overview
}

/// The map as ranges of consecutive buckets placed alike.
fn ranges(map: &PlacementMap) -> Vec<Range> {
    let mut ranges = Vec::new();
    let mut start = 0usize;
    for index in 1..=map.buckets.len() {
        if index < map.buckets.len() && map.buckets[index] == map.buckets[start] {
            continue;
        }
        let placement: &BucketPlacement = &map.buckets[start];
        ranges.push(Range {
            first: start as u32,
            last: (index - 1) as u32,
            epoch: placement.epoch.0,
            group: placement.group.0,
            leader: usize::from(placement.leader),
            sync_followers: numbers(&placement.sync_followers),
            async_followers: numbers(&placement.async_followers),
        });
        start = index;
    }
    ranges
}

/// Per group of the configuration, who leads how many of its buckets.
fn leaders(config: &ClusterConfig, map: &PlacementMap) -> Vec<GroupLeaders> {
    let mut counts: BTreeMap<u32, BTreeMap<usize, u32>> = config
        .groups
        .iter()
        .map(|group| (group.id, BTreeMap::new()))
        .collect();
    for placement in map.buckets.iter() {
        *counts
            .entry(placement.group.0)
            .or_default()
            .entry(usize::from(placement.leader))
            .or_insert(0) += 1;
    }
    counts
        .into_iter()
        .map(|(group, leaders)| GroupLeaders {
            group,
            leaders: leaders
                .into_iter()
                .map(|(replica, buckets)| LeaderCount { replica, buckets })
                .collect(),
        })
        .collect()
}

/// Whether `group` is failover-ready: every async follower of every
/// bucket it leads within the RPO budget (`lag_budget_ms`), as the leaders
/// measured it. A group whose leaders did not report is unknown.
fn readiness(
    config: &ClusterConfig,
    map: &PlacementMap,
    reports: &BTreeMap<usize, &ReplicaReport>,
    group: u32,
) -> Readiness {
    let budget = config.lag_budget_ms;
    let led: Vec<&BucketPlacement> = map
        .buckets
        .iter()
        .filter(|placement| placement.group.0 == group)
        .collect();
    let leaders: BTreeSet<usize> = led.iter().map(|p| usize::from(p.leader)).collect();
    let silent_leaders: Vec<usize> = leaders
        .iter()
        .copied()
        .filter(|leader| !reports.contains_key(leader))
        .collect();
    let mut slowest: Option<Slowest> = None;
    let mut buckets_over = 0;
    for leader in &leaders {
        let Some(report) = reports.get(leader) else {
            continue;
        };
        for follower in report
            .followers
            .iter()
            .filter(|f| f.group == group && f.remote)
        {
            buckets_over += follower.over;
            if slowest.as_ref().is_none_or(|s| follower.millis > s.millis) {
                slowest = Some(Slowest {
                    follower: follower.follower,
                    bucket: follower.worst.0,
                    millis: follower.millis,
                    entries: follower.worst_entries,
                    buckets_over: 0,
                });
            }
        }
    }
    if let Some(slowest) = &mut slowest {
        slowest.buckets_over = buckets_over;
    }
    // Async followers of the group's buckets that do not answer: a remote
    // copy that is down is no copy to fail over to.
    let silent_async: Vec<usize> = led
        .iter()
        .flat_map(|placement| placement.async_followers.iter().copied().map(usize::from))
        .filter(|id| !reports.contains_key(id))
        .collect::<BTreeSet<usize>>()
        .into_iter()
        .collect();
    let seconds = |millis: u64| millis as f64 / 1000.0;
    let over = slowest.as_ref().filter(|s| s.millis > budget).map(|s| {
        let more = match s.buckets_over {
            0 | 1 => String::new(),
            n => format!(" (over the budget on {n} buckets)"),
        };
        format!(
            "replica {} is {:.1} s ({} entries) behind on b{}, over the budget{more}; planned moves of this group are refused",
            s.follower,
            seconds(s.millis),
            s.entries,
            s.bucket
        )
    });
    let (state, text) = if led.is_empty() {
        ("no-buckets", "leads no bucket".to_owned())
    } else if !silent_async.is_empty() {
        let silent: Vec<Id> = silent_async.iter().copied().map(Id::from).collect();
        let measured = over.as_ref().map(|o| format!("; {o}")).unwrap_or_default();
        (
            "not-ready",
            format!(
                "NOT failover-ready: async follower {} does not answer (down?), so the group has no remote copy within its budget{measured}",
                short_names(config, &silent)
            ),
        )
    } else if !silent_leaders.is_empty() {
        let silent: Vec<Id> = silent_leaders.iter().copied().map(Id::from).collect();
        (
            "unknown",
            format!(
                "UNKNOWN: no report from leader {}",
                short_names(config, &silent)
            ),
        )
    } else if let Some(over) = over {
        ("not-ready", format!("NOT failover-ready: {over}"))
    } else if let Some(s) = &slowest {
        (
            "ready",
            format!(
                "failover-ready (slowest async follower {:.1} s behind)",
                seconds(s.millis)
            ),
        )
    } else {
        (
            "no-async",
            "no async followers: no remote copy to fail over to".to_owned(),
        )
    };
    Readiness {
        group,
        state,
        slowest,
        silent_async,
        silent_leaders,
        text,
    }
}
