//! `berth status`: the map, each replica's positions and lag, who is down.

use crate::client::request_status;
use crate::config::{controller_id, ClusterConfig};
use crate::wire::Report;
use anyhow::Result;
use berth_model::placement::BucketPlacement;
use berth_model::{Bucket, Position, Role};
use stateright::actor::Id;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

/// The status as text, asking every member and waiting up to `timeout`.
pub fn status(config: &ClusterConfig, timeout: Duration) -> Result<String> {
    let mut members = vec![controller_id()];
    members.extend(config.replicas.iter().map(|r| Id::from(r.id)));
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
        if let Report::Replica { buckets } = report {
            for bucket in buckets {
                if bucket.role == Some(Role::Leader) {
                    leader_last.insert(bucket.bucket, bucket.last);
                }
            }
        }
    }
    writeln!(out, "replicas:").unwrap();
    for replica in &config.replicas {
        let id = Id::from(replica.id);
        let name = config.name_of(id);
        match reports.get(&id) {
            Some(Report::Replica { buckets }) => {
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
                writeln!(
                    out,
                    "  {name:<24} {:<16} up    leads {leads:<5} follows {follows:<5} applied entries {applied:<7} max lag {max_lag} entries",
                    replica.addr
                )
                .unwrap();
            }
            _ => writeln!(out, "  {name:<24} {:<16} DOWN (no answer)", replica.addr).unwrap(),
        }
    }
    if map.is_none() {
        writeln!(out, "(the map is unknown while the controller is down)").unwrap();
    }
    out
}
