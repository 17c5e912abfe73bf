//! Tests of `berth status`'s rendering and of the reports' size.

use super::*;
use crate::guard::Drops;
use crate::report::{FollowerSummary, Run};
use berth_model::Epoch;

fn replica_report() -> Report {
    Report::Replica(ReplicaReport::default())
}

fn controller_report(map: PlacementMap, fencing: Vec<Run<Epoch>>, dropped: Drops) -> Report {
    Report::Controller {
        map,
        down: Vec::new(),
        fencing,
        moving: Vec::new(),
        left_out: 0,
        dropped,
    }
}

/// Goal: a group whose only async follower does not answer is not
/// called failover-ready, and members that dropped datagrams are listed
/// with their reasons.
#[test]
fn a_silent_async_follower_voids_readiness() {
    let config = ClusterConfig::local(8, 1, 3, 7000).unwrap();
    let mut reports = BTreeMap::new();
    let dropped = Drops {
        bad_mac: 5,
        ..Drops::default()
    };
    reports.insert(
        controller_id(),
        controller_report(config.initial_map(), Vec::new(), dropped),
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

/// The reports of a default cluster (2,048 buckets, two groups) in which
/// replica 1, leader of group 1, is down and its 1,024 buckets are being
/// failed over: half already promoted (replica 2 leads them at e2), half
/// still fenced.
fn failover_reports(config: &ClusterConfig) -> BTreeMap<Id, Report> {
    let mut map = config.initial_map();
    for placement in map.buckets_mut().iter_mut().take(512) {
        placement.epoch = Epoch(2);
        placement.leader = Id::from(2);
        placement.sync_followers = vec![Id::from(3)];
        placement.async_followers = vec![Id::from(1)];
    }
    map.version += 512;
    let (fencing, _) = Run::runs((512..1024).map(|b| (Bucket(b), Epoch(2))), 100);
    let mut reports = BTreeMap::new();
    let mut controller = controller_report(map, fencing, Drops::default());
    if let Report::Controller { down, .. } = &mut controller {
        down.push(1);
    }
    reports.insert(controller_id(), controller);
    for id in 2..=6 {
        let mut report = ReplicaReport::default();
        if id == 4 {
            report.leads = 1024;
            report.followers = vec![FollowerSummary {
                group: 2,
                follower: 6,
                remote: true,
                buckets: 1024,
                over: 1024,
                entries: 40,
                millis: 7_300,
                worst: Bucket(1500),
                worst_entries: 12,
            }];
        }
        reports.insert(Id::from(id), Report::Replica(report));
    }
    reports
}

/// Goal: a failover of 1,024 buckets stays a screenful: the map and the
/// work in progress in ranges, a health line first that says who leads,
/// who is down, what is in progress and each group's readiness.
#[test]
fn a_failover_of_a_thousand_buckets_renders_in_ranges() {
    let config = ClusterConfig::local(2048, 2, 3, 7000).unwrap();
    let text = render(&config, &failover_reports(&config));
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() < 25, "{} lines:\n{text}", lines.len());
    let health = lines[0];
    assert!(health.starts_with("health: "), "{text}");
    for part in [
        "group 1 led by 1 (madrid-a) on 512 buckets and 2 (madrid-b) on 512 buckets",
        "group 2 led by 4 (paris-a) on 1,024 buckets",
        "members down: replica 1 (madrid-a), projector",
        "in progress: 512 failovers, no moves",
        "NOT failover-ready: groups 1, 2",
    ] {
        assert!(health.contains(part), "{part:?} not in {health}");
    }
    assert!(text.contains("\n  b0-b511      e2   group 1"), "{text}");
    assert!(text.contains("\n  b512-b1023   e1   group 1"), "{text}");
    assert!(
        text.contains("in progress: failover of b512-b1023 (quorum fenced at e2)"),
        "{text}"
    );
    assert!(
        text.contains("group 2    NOT failover-ready: replica 6 is 7.3 s (12 entries) behind on b1500, over the budget (over the budget on 1024 buckets)"),
        "{text}"
    );
    assert!(
        text.contains("replica 6 (newyork-2)") && text.contains("max lag 40 entries, 7.3 s"),
        "{text}"
    );
}

/// Goal: `--json` carries the same overview under stable field names.
#[test]
fn the_json_overview_has_stable_fields() {
    let config = ClusterConfig::local(2048, 2, 3, 7000).unwrap();
    let overview = overview::overview(&config, &failover_reports(&config));
    let json: serde_json::Value = serde_json::to_value(&overview).unwrap();
    assert_eq!(json["health"]["failovers_in_progress"], 512);
    assert_eq!(json["health"]["members_down"][0], "replica 1 (madrid-a)");
    assert_eq!(json["health"]["leaders"][1]["leaders"][0]["replica"], 4);
    assert_eq!(json["health"]["leaders"][1]["leaders"][0]["buckets"], 1024);
    assert_eq!(json["controller"]["up"], true);
    assert_eq!(json["map"].as_array().unwrap().len(), 3);
    assert_eq!(json["map"][0]["last"], 511);
    assert_eq!(json["map"][0]["async_followers"][0], 1);
    assert_eq!(json["failovers"][0]["first"], 512);
    assert_eq!(json["replicas"][0]["up"], false);
    assert_eq!(json["replicas"][5]["lag_ms"], 7300);
    assert_eq!(json["groups"][1]["state"], "not-ready");
    assert_eq!(json["groups"][1]["slowest"]["bucket"], 1500);
    assert_eq!(json["projector"]["up"], false);
    assert_eq!(json["lag_budget_ms"], 5000);
}

/// Goal: `grouped` puts a comma every three digits.
#[test]
fn numbers_are_grouped_by_thousands() {
    assert_eq!(grouped(0), "0");
    assert_eq!(grouped(999), "999");
    assert_eq!(grouped(1024), "1,024");
    assert_eq!(grouped(1_234_567), "1,234,567");
}
