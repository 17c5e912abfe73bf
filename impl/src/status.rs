//! `berth status`: a one-line health summary, the map by bucket range,
//! each replica's positions and lag, who is down, work in progress, each
//! group's failover readiness (text, or `--json` for tools); `berth status
//! --hot`: the buckets with the most writes.

use crate::client::request_status;
use crate::config::{controller_id, ClusterConfig};
use crate::overview::{self, short_names, Overview};
use crate::rates;
use crate::report::{ReplicaReport, Report};
use anyhow::Result;
use berth_model::placement::PlacementMap;
use berth_model::rebalance;
use berth_model::{Bucket, GroupId};
use stateright::actor::Id;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

/// The status, asking every member and waiting up to `timeout`: as text,
/// or as JSON with `json`.
pub fn status(config: &ClusterConfig, timeout: Duration, json: bool) -> Result<String> {
    let mut members = members(config);
    members.extend(config.projector_id());
    let reports = request_status(config, &members, timeout)?;
    if json {
        let overview = overview::overview(config, &reports);
        return Ok(serde_json::to_string_pretty(&overview)? + "\n");
    }
    Ok(render(config, &reports))
}

fn ids(config: &ClusterConfig, ids: &[Id]) -> String {
    short_names(config, ids)
}

/// `n` with a comma every three digits: "1,024".
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// Renders `reports` (by member) as the text `berth status` prints.
pub fn render(config: &ClusterConfig, reports: &BTreeMap<Id, Report>) -> String {
    render_overview(config, &overview::overview(config, reports))
}

/// The health line: who leads each group, who is down, what is in
/// progress, and each group's readiness.
fn health(config: &ClusterConfig, overview: &Overview) -> String {
    let health = &overview.health;
    let leaders = if overview.controller.up {
        health
            .leaders
            .iter()
            .map(|group| {
                let led: Vec<String> = group
                    .leaders
                    .iter()
                    .map(|l| {
                        format!(
                            "{} on {} bucket{}",
                            ids(config, &[Id::from(l.replica)]),
                            grouped(u64::from(l.buckets)),
                            if l.buckets == 1 { "" } else { "s" }
                        )
                    })
                    .collect();
                if led.is_empty() {
                    format!("group {} leads no bucket", group.group)
                } else {
                    format!("group {} led by {}", group.group, led.join(" and "))
                }
            })
            .collect::<Vec<_>>()
            .join("; ")
    } else {
        "leaders unknown (no map)".to_owned()
    };
    let down = if health.members_down.is_empty() {
        "none".to_owned()
    } else {
        health.members_down.join(", ")
    };
    let count = |n: u32, what: &str| match n {
        0 => format!("no {what}s"),
        1 => format!("1 {what}"),
        n => format!("{} {what}s", grouped(u64::from(n))),
    };
    let mut readiness: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for group in &overview.groups {
        let label = match group.state {
            "ready" => "failover-ready",
            "not-ready" => "NOT failover-ready",
            "unknown" => "readiness unknown",
            "no-async" => "no remote copy",
            _ => "no buckets",
        };
        readiness
            .entry(label)
            .or_default()
            .push(group.group.to_string());
    }
    let readiness = if readiness.is_empty() {
        "readiness unknown (no map)".to_owned()
    } else {
        readiness
            .iter()
            .map(|(label, groups)| {
                let s = if groups.len() == 1 { "" } else { "s" };
                format!("{label}: group{s} {}", groups.join(", "))
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    format!(
        "health: {leaders} | members down: {down} | in progress: {}, {} | {readiness}",
        count(health.failovers_in_progress, "failover"),
        count(health.moves_in_progress, "move"),
    )
}

/// Renders an overview as text.
pub fn render_overview(config: &ClusterConfig, overview: &Overview) -> String {
    let mut out = String::new();
    writeln!(out, "{}", health(config, overview)).unwrap();
    let controller = &overview.controller;
    if let Some(version) = overview.map_version {
        writeln!(out, "controller {}: up", controller.addr).unwrap();
        writeln!(out, "placement map version {version}:").unwrap();
        for range in &overview.map {
            let name = if range.first == range.last {
                format!("b{}", range.first)
            } else {
                format!("b{}-b{}", range.first, range.last)
            };
            let names = |list: &[usize]| {
                let list: Vec<Id> = list.iter().copied().map(Id::from).collect();
                ids(config, &list)
            };
            writeln!(
                out,
                "  {name:<12} {:<4} group {:<3} leader {:<14} sync [{}]  async [{}]",
                format!("e{}", range.epoch),
                range.group,
                ids(config, &[Id::from(range.leader)]),
                names(&range.sync_followers),
                names(&range.async_followers),
            )
            .unwrap();
        }
        if !overview.detector_down.is_empty() {
            let down: Vec<Id> = overview
                .detector_down
                .iter()
                .copied()
                .map(Id::from)
                .collect();
            writeln!(out, "detector: down [{}]", ids(config, &down)).unwrap();
        }
        let range = |first: u32, last: u32| {
            if first == last {
                format!("b{first}")
            } else {
                format!("b{first}-b{last}")
            }
        };
        for failover in &overview.failovers {
            writeln!(
                out,
                "in progress: failover of {} (quorum fenced at e{})",
                range(failover.first, failover.last),
                failover.epoch
            )
            .unwrap();
        }
        for moving in &overview.moves {
            writeln!(
                out,
                "in progress: move of {} to group {}",
                range(moving.first, moving.last),
                moving.group
            )
            .unwrap();
        }
        if overview.in_progress_left_out > 0 {
            writeln!(
                out,
                "in progress: {} more buckets not listed",
                grouped(u64::from(overview.in_progress_left_out))
            )
            .unwrap();
        }
    } else {
        writeln!(out, "controller {}: DOWN (no answer)", controller.addr).unwrap();
    }
    writeln!(out, "replicas:").unwrap();
    for replica in &overview.replicas {
        let name = &replica.name;
        if replica.up {
            writeln!(
                out,
                "  {name:<24} {:<16} up    leads {:<5} follows {:<5} applied entries {:<7} max lag {} entries, {:.1} s",
                replica.addr,
                replica.leads.unwrap_or(0),
                replica.follows.unwrap_or(0),
                replica.applied.unwrap_or(0),
                replica.lag_entries.unwrap_or(0),
                replica.lag_ms.unwrap_or(0) as f64 / 1000.0,
            )
            .unwrap();
        } else {
            let measured = match (replica.lag_entries, replica.lag_ms) {
                (Some(entries), Some(millis)) => format!(
                    "; its leaders see it {entries} entries, {:.1} s behind",
                    millis as f64 / 1000.0
                ),
                _ => String::new(),
            };
            writeln!(
                out,
                "  {name:<24} {:<16} DOWN (no answer){measured}",
                replica.addr
            )
            .unwrap();
        }
    }
    if let Some(projector) = &overview.projector {
        let state = if projector.up {
            "up"
        } else {
            "DOWN (no answer)"
        };
        writeln!(
            out,
            "  {:<24} {:<16} {state}",
            "projector (search, trips)", projector.addr
        )
        .unwrap();
    }
    if !overview.dropped.is_empty() {
        writeln!(out, "dropped datagrams (since each member started):").unwrap();
        for dropped in &overview.dropped {
            writeln!(out, "  {:<24} {}", dropped.member, dropped.counts).unwrap();
        }
    }
    if overview.map_version.is_some() {
        writeln!(
            out,
            "groups (RPO budget: async followers within {:.1} s):",
            overview.lag_budget_ms as f64 / 1000.0
        )
        .unwrap();
        for group in &overview.groups {
            writeln!(out, "  group {:<4} {}", group.group, group.text).unwrap();
        }
    } else {
        writeln!(out, "(the map is unknown while the controller is down)").unwrap();
    }
    out
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
    /// Writes of buckets the replicas did not list one by one (beyond
    /// their `report::HOTTEST` busiest), per group: counted in the groups'
    /// loads, never moved.
    pub other: BTreeMap<GroupId, u64>,
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
        let mut other: BTreeMap<GroupId, u64> = BTreeMap::new();
        let mut silent = Vec::new();
        for replica in &config.replicas {
            let id = Id::from(replica.id);
            match reports.get(&id) {
                Some(Report::Replica(ReplicaReport {
                    hottest,
                    other_writes,
                    ..
                })) => {
                    for (bucket, count) in hottest {
                        *writes.entry(*bucket).or_insert(0) += u64::from(*count);
                    }
                    for (group, count) in other_writes {
                        *other.entry(GroupId(*group)).or_insert(0) += count;
                    }
                }
                _ => silent.push(id),
            }
        }
        Some(Load {
            map: map.clone(),
            moving: moving
                .iter()
                .flat_map(|run| {
                    (run.first.0..=run.last.0).map(move |b| (Bucket(b), GroupId(run.value)))
                })
                .collect(),
            writes,
            other,
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
        let mut loads = rebalance::group_loads(&self.map, &Load::groups(config), &self.writes);
        for (group, writes) in &self.other {
            if let Some(load) = loads.get_mut(group) {
                *load += writes;
            }
        }
        loads
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

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
