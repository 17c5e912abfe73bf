//! `berth status`: the map, each replica's positions and lag, who is down;
//! `berth status --hot`: the buckets with the most writes.

use crate::client::request_status;
use crate::config::{controller_id, ClusterConfig};
use crate::rates;
use crate::wire::Report;
use anyhow::Result;
use berth_model::placement::{BucketPlacement, PlacementMap};
use berth_model::rebalance;
use berth_model::{Bucket, GroupId, Position, Role};
use stateright::actor::Id;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

/// The status as text, asking every member and waiting up to `timeout`.
pub fn status(config: &ClusterConfig, timeout: Duration) -> Result<String> {
    let mut members = members(config);
    members.extend(config.projector_id());
    let reports = request_status(config, &members, timeout)?;
    Ok(render(config, &reports))
}

fn ids(config: &ClusterConfig, ids: &[Id]) -> String {
    ids.iter()
        .map(|id| {
            let name = config.name_of(*id);
            name.strip_prefix("replica ").unwrap_or(&name).to_owned()
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Renders `reports` (by member) as the text `berth status` prints.
pub fn render(config: &ClusterConfig, reports: &BTreeMap<Id, Report>) -> String {
    let mut out = String::new();
    let controller = reports.get(&controller_id());
    let map = match controller {
        Some(Report::Controller {
            map,
            down,
            fencing,
            moving,
            ..
        }) => {
            writeln!(out, "controller {}: up", config.controller.addr).unwrap();
            writeln!(out, "placement map version {}:", map.version).unwrap();
            let mut start = 0usize;
            for index in 1..=map.buckets.len() {
                if index < map.buckets.len() && map.buckets[index] == map.buckets[start] {
                    continue;
                }
                let placement: &BucketPlacement = &map.buckets[start];
                let range = if index - 1 == start {
                    format!("b{start}")
                } else {
                    format!("b{start}-b{}", index - 1)
                };
                writeln!(
                    out,
                    "  {range:<12} {:<4} group {:<3} leader {:<14} sync [{}]  async [{}]",
                    placement.epoch.to_string(),
                    placement.group.0,
                    ids(config, &[placement.leader]),
                    ids(config, &placement.sync_followers),
                    ids(config, &placement.async_followers),
                )
                .unwrap();
                start = index;
            }
            if !down.is_empty() {
                let down: Vec<Id> = down.iter().copied().map(Id::from).collect();
                writeln!(out, "detector: down [{}]", ids(config, &down)).unwrap();
            }
            for (bucket, epoch) in fencing {
                writeln!(
                    out,
                    "in progress: failover of {bucket} (quorum fenced at {epoch})"
                )
                .unwrap();
            }
            for (bucket, group) in moving {
                writeln!(out, "in progress: move of {bucket} to group {group}").unwrap();
            }
            Some(map)
        }
        _ => {
            writeln!(
                out,
                "controller {}: DOWN (no answer)",
                config.controller.addr
            )
            .unwrap();
            None
        }
    };
    // Every leader's last position, to measure followers against.
    let mut leader_last: BTreeMap<Bucket, Position> = BTreeMap::new();
    for report in reports.values() {
        if let Report::Replica { buckets, .. } = report {
            for bucket in buckets {
                if bucket.role == Some(Role::Leader) {
                    leader_last.insert(bucket.bucket, bucket.last);
                }
            }
        }
    }
    // Each follower's lag as its leaders measured it: the most entries it
    // lacks and the longest it has not been caught up, over its buckets.
    let mut trailing: BTreeMap<usize, (u64, u64)> = BTreeMap::new();
    for report in reports.values() {
        if let Report::Replica { buckets, .. } = report {
            for bucket in buckets {
                for follower in &bucket.followers {
                    let worst = trailing.entry(follower.follower).or_default();
                    worst.0 = worst.0.max(follower.entries);
                    worst.1 = worst.1.max(follower.millis);
                }
            }
        }
    }
    writeln!(out, "replicas:").unwrap();
    for replica in &config.replicas {
        let id = Id::from(replica.id);
        let name = config.name_of(id);
        match reports.get(&id) {
            Some(Report::Replica { buckets, .. }) => {
                let mut leads = 0;
                let mut follows = 0;
                let mut applied = 0u64;
                let mut max_lag = 0u64;
                for bucket in buckets {
                    applied += bucket.applied.0;
                    match bucket.role {
                        Some(Role::Leader) => leads += 1,
                        Some(_) => {
                            follows += 1;
                            if let Some(last) = leader_last.get(&bucket.bucket) {
                                max_lag = max_lag.max(last.0.saturating_sub(bucket.last.0));
                            }
                        }
                        None => {}
                    }
                }
                let seconds = trailing
                    .get(&replica.id)
                    .map_or(0.0, |(_, millis)| *millis as f64 / 1000.0);
                writeln!(
                    out,
                    "  {name:<24} {:<16} up    leads {leads:<5} follows {follows:<5} applied entries {applied:<7} max lag {max_lag} entries, {seconds:.1} s",
                    replica.addr
                )
                .unwrap();
            }
            _ => {
                let measured = match trailing.get(&replica.id) {
                    Some((entries, millis)) => format!(
                        "; its leaders see it {entries} entries, {:.1} s behind",
                        *millis as f64 / 1000.0
                    ),
                    None => String::new(),
                };
                writeln!(
                    out,
                    "  {name:<24} {:<16} DOWN (no answer){measured}",
                    replica.addr
                )
                .unwrap()
            }
        }
    }
    if let (Some(entry), Some(id)) = (&config.projector, config.projector_id()) {
        let state = match reports.get(&id) {
            Some(Report::Projector { .. }) => "up",
            _ => "DOWN (no answer)",
        };
        writeln!(
            out,
            "  {:<24} {:<16} {state}",
            "projector (search, trips)", entry.addr
        )
        .unwrap();
    }
    render_drops(config, reports, &mut out);
    if let Some(map) = map {
        render_readiness(config, map, reports, &mut out);
    }
    if map.is_none() {
        writeln!(out, "(the map is unknown while the controller is down)").unwrap();
    }
    out
}

/// One line per member that dropped datagrams (refused as forged,
/// replayed, malformed or not its sender's to send), by reason.
fn render_drops(config: &ClusterConfig, reports: &BTreeMap<Id, Report>, out: &mut String) {
    let dropping: Vec<(Id, &Report)> = reports
        .iter()
        .filter(|(_, report)| report.dropped().total() > 0)
        .map(|(id, report)| (*id, report))
        .collect();
    if dropping.is_empty() {
        return;
    }
    writeln!(out, "dropped datagrams (since each member started):").unwrap();
    for (id, report) in dropping {
        let name = match report {
            Report::Projector { .. } => "projector".to_owned(),
            _ => config.name_of(id),
        };
        writeln!(out, "  {name:<24} {}", report.dropped()).unwrap();
    }
}

/// Every member but the projector: the controller, then the replicas.
pub fn members(config: &ClusterConfig) -> Vec<Id> {
    let mut members = vec![controller_id()];
    members.extend(config.replicas.iter().map(|r| Id::from(r.id)));
    members
}

/// The write load the members report: what `berth status --hot` shows and
/// `berth rebalance` plans with.
#[derive(Clone, Debug)]
pub struct Load {
    /// The controller's placement map.
    pub map: PlacementMap,
    /// Buckets whose move is in progress, and the group each goes to.
    pub moving: BTreeMap<Bucket, GroupId>,
    /// Client commands committed per bucket over the last `rates::WINDOW`
    /// (buckets without any are absent), summed over the replicas that
    /// answered: each command is counted once, by the replica that led the
    /// bucket when it committed, so a bucket that moved or failed over
    /// within the window keeps its earlier writes.
    pub writes: BTreeMap<Bucket, u64>,
    /// Replicas that did not answer: their writes are not counted.
    pub silent: Vec<Id>,
}

impl Load {
    /// The load in `reports`, or `None` without the controller's map.
    pub fn of(config: &ClusterConfig, reports: &BTreeMap<Id, Report>) -> Option<Load> {
        let Some(Report::Controller { map, moving, .. }) = reports.get(&controller_id()) else {
            return None;
        };
        let mut writes: BTreeMap<Bucket, u64> = BTreeMap::new();
        let mut silent = Vec::new();
        for replica in &config.replicas {
            let id = Id::from(replica.id);
            match reports.get(&id) {
                Some(Report::Replica { buckets, .. }) => {
                    for bucket in buckets.iter().filter(|bucket| bucket.writes > 0) {
                        *writes.entry(bucket.bucket).or_insert(0) += u64::from(bucket.writes);
                    }
                }
                _ => silent.push(id),
            }
        }
        Some(Load {
            map: map.clone(),
            moving: moving
                .iter()
                .map(|(bucket, group)| (*bucket, GroupId(*group)))
                .collect(),
            writes,
            silent,
        })
    }

    /// Every group of the configuration.
    pub fn groups(config: &ClusterConfig) -> Vec<GroupId> {
        config
            .groups
            .iter()
            .map(|group| GroupId(group.id))
            .collect()
    }

    /// Each group's writes over the window.
    pub fn group_writes(&self, config: &ClusterConfig) -> BTreeMap<GroupId, u64> {
        rebalance::group_loads(&self.map, &Load::groups(config), &self.writes)
    }
}

/// Writes over `rates::WINDOW` as writes per second.
pub fn per_second(writes: u64) -> f64 {
    writes as f64 / rates::WINDOW.as_secs_f64()
}

/// `berth status --hot` as text: the `top` hottest buckets, asking every
/// member and waiting up to `timeout`.
pub fn hot(config: &ClusterConfig, timeout: Duration, top: usize) -> Result<String> {
    let reports = request_status(config, &members(config), timeout)?;
    Ok(render_hot(config, &reports, top))
}

/// Renders the `top` hottest buckets in `reports`, each with its share of
/// its group's writes, then every group's writes.
pub fn render_hot(config: &ClusterConfig, reports: &BTreeMap<Id, Report>, top: usize) -> String {
    let mut out = String::new();
    let Some(load) = Load::of(config, reports) else {
        writeln!(
            out,
            "controller {}: DOWN (no answer); without its map the groups are unknown",
            config.controller.addr
        )
        .unwrap();
        return out;
    };
    let group_writes = load.group_writes(config);
    let mut hottest: Vec<(Bucket, u64)> = load.writes.iter().map(|(b, w)| (*b, *w)).collect();
    // Hottest first; equal ones by bucket number.
    hottest.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    hottest.truncate(top);
    let window = rates::WINDOW.as_secs();
    if hottest.is_empty() {
        writeln!(out, "no client writes committed in the last {window} s").unwrap();
    } else {
        writeln!(
            out,
            "hottest buckets (client writes committed per second, last {window} s):"
        )
        .unwrap();
        writeln!(
            out,
            "  {:<8} {:<6} {:<16} {:>9} {:>15}",
            "bucket", "group", "leader", "writes/s", "share of group"
        )
        .unwrap();
        for (bucket, writes) in hottest {
            let Some(placement) = load.map.placement(bucket) else {
                continue;
            };
            let total = group_writes.get(&placement.group).copied().unwrap_or(0);
            let share = if total == 0 {
                0.0
            } else {
                100.0 * writes as f64 / total as f64
            };
            writeln!(
                out,
                "  {:<8} {:<6} {:<16} {:>9.1} {:>14.1}%",
                format!("b{}", bucket.0),
                placement.group.0,
                ids(config, &[placement.leader]),
                per_second(writes),
                share
            )
            .unwrap();
        }
    }
    writeln!(out, "groups:").unwrap();
    for (group, writes) in &group_writes {
        let buckets = load
            .map
            .buckets
            .iter()
            .filter(|placement| placement.group == *group)
            .count();
        writeln!(
            out,
            "  group {:<3} {:>9.1} writes/s  {buckets} buckets",
            group.0,
            per_second(*writes)
        )
        .unwrap();
    }
    for (bucket, group) in &load.moving {
        writeln!(out, "in progress: move of {bucket} to group {}", group.0).unwrap();
    }
    if !load.silent.is_empty() {
        writeln!(
            out,
            "no answer from [{}]: their writes are not counted",
            ids(config, &load.silent)
        )
        .unwrap();
    }
    out
}

/// Per group: whether it is failover-ready — every async follower of every
/// bucket it leads within the RPO budget (`lag_budget_ms`), as the leaders
/// measured it. A group whose leaders did not report is unknown.
fn render_readiness(
    config: &ClusterConfig,
    map: &PlacementMap,
    reports: &BTreeMap<Id, Report>,
    out: &mut String,
) {
    let budget = config.lag_budget_ms;
    writeln!(
        out,
        "groups (RPO budget: async followers within {:.1} s):",
        budget as f64 / 1000.0
    )
    .unwrap();
    for group in &config.groups {
        let led: Vec<&BucketPlacement> = map
            .buckets
            .iter()
            .filter(|placement| placement.group.0 == group.id)
            .collect();
        let mut unknown = BTreeMap::new();
        let mut worst: Option<(u64, usize, Bucket, u64)> = None;
        for (index, placement) in map.buckets.iter().enumerate() {
            if placement.group.0 != group.id {
                continue;
            }
            let bucket = Bucket(index as u32);
            let Some(Report::Replica { buckets, .. }) = reports.get(&placement.leader) else {
                unknown.insert(placement.leader, ());
                continue;
            };
            let Some(report) = buckets.iter().find(|b| b.bucket == bucket) else {
                continue;
            };
            for follower in &report.followers {
                let remote = placement
                    .async_followers
                    .contains(&Id::from(follower.follower));
                if remote && worst.is_none_or(|(millis, ..)| follower.millis > millis) {
                    worst = Some((follower.millis, follower.follower, bucket, follower.entries));
                }
            }
        }
        // Async followers of the group's buckets that do not answer: a
        // remote copy that is down is no copy to fail over to.
        let silent_remote: std::collections::BTreeSet<Id> = led
            .iter()
            .flat_map(|placement| placement.async_followers.iter().copied())
            .filter(|id| !matches!(reports.get(id), Some(Report::Replica { .. })))
            .collect();
        let verdict = if led.is_empty() {
            "leads no bucket".to_owned()
        } else if !silent_remote.is_empty() {
            let silent: Vec<Id> = silent_remote.into_iter().collect();
            let measured = match worst {
                Some((millis, follower, bucket, entries)) if millis > budget => format!(
                    "; replica {follower} is {:.1} s ({entries} entries) behind on {bucket}, over the budget; planned moves of this group are refused",
                    millis as f64 / 1000.0
                ),
                _ => String::new(),
            };
            format!(
                "NOT failover-ready: async follower {} does not answer (down?), so the group has no remote copy within its budget{measured}",
                ids(config, &silent)
            )
        } else if !unknown.is_empty() {
            let silent: Vec<Id> = unknown.keys().copied().collect();
            format!("UNKNOWN: no report from leader {}", ids(config, &silent))
        } else {
            match worst {
                Some((millis, follower, bucket, entries)) if millis > budget => format!(
                    "NOT failover-ready: replica {follower} is {:.1} s ({entries} entries) behind on {bucket}, over the budget; planned moves of this group are refused",
                    millis as f64 / 1000.0
                ),
                Some((millis, ..)) => format!(
                    "failover-ready (slowest async follower {:.1} s behind)",
                    millis as f64 / 1000.0
                ),
                None => "no async followers: no remote copy to fail over to".to_owned(),
            }
        };
        writeln!(out, "  group {:<4} {verdict}", group.id).unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::Drops;

    fn replica_report() -> Report {
        Report::Replica {
            buckets: Vec::new(),
            dropped: Drops::default(),
        }
    }

    /// Goal: a group whose only async follower does not answer is not
    /// called failover-ready, and members that dropped datagrams are listed
    /// with their reasons.
    #[test]
    fn a_silent_async_follower_voids_readiness() {
        let config = ClusterConfig::local(8, 1, 3, 7000).unwrap();
        let mut reports = BTreeMap::new();
        reports.insert(
            controller_id(),
            Report::Controller {
                map: config.initial_map(),
                down: Vec::new(),
                fencing: Vec::new(),
                moving: Vec::new(),
                dropped: Drops {
                    bad_mac: 5,
                    ..Drops::default()
                },
            },
        );
        reports.insert(Id::from(1), replica_report());
        reports.insert(Id::from(2), replica_report());
        let text = render(&config, &reports);
        assert!(
            text.contains("group 1    NOT failover-ready: async follower 3"),
            "{text}"
        );
        assert!(
            text.contains("controller") && text.contains("5 bad MAC"),
            "{text}"
        );
        reports.insert(Id::from(3), replica_report());
        let text = render(&config, &reports);
        assert!(!text.contains("NOT failover-ready"), "{text}");
        assert!(text.contains("projector (search, trips)"), "{text}");
    }
}
