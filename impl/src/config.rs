//! `cluster.toml`: who the members are, where they listen, which groups
//! they form, and where each keeps its data. Written by `berth cluster up`,
//! read by every member and client.
//!
//! ```toml
//! buckets = 2048
//!
//! [controller]
//! addr = "127.0.0.1:7000"
//! dir = "controller"
//!
//! [[replicas]]
//! id = 1
//! addr = "127.0.0.1:7001"
//! region = "madrid-a"
//! dir = "node-1"
//!
//! [[groups]]
//! id = 1
//! leader = 1
//! sync = [2]
//! async = [3]
//!
//! [projector]            # optional: the change-stream projections
//! addr = "127.0.0.1:7004"
//! ```
//!
//! Optional settings: `hold_ttl_seconds` (600), `lag_budget_ms` (5000: an
//! async follower further behind than this voids the group's RPO claim and
//! pauses planned moves), `search_staleness_ms` (2000: the search view's
//! freshness budget), `cabins` (the cabins of every trip, for "available"
//! in search; C1 to C40).
//!
//! Member ids are the model's actor ids: the controller is 0, replicas are
//! 1 and up. Data directories are relative to the file's directory.

use anyhow::{bail, Context, Result};
use berth_model::actor::{Detector, ProtocolConfig, Timeouts};

/// Committed entries a replica keeps in each bucket's log before folding
/// older ones into the bucket's state: records, memory and copies stay
/// bounded however long the bucket's history.
const RETAINED_ENTRIES: usize = 512;
/// Units plus outcomes per snapshot chunk: a chunk of long names still
/// fits a datagram.
const SNAPSHOT_CHUNK: usize = 200;
use berth_model::placement::{BucketPlacement, GroupLayout, PlacementMap, MAX_BUCKETS};
use berth_model::{Epoch, GroupId};
use serde::{Deserialize, Serialize};
use stateright::actor::Id;
use std::collections::BTreeSet;
use std::net::SocketAddrV4;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The controller's actor id.
pub fn controller_id() -> Id {
    Id::from(0)
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControllerEntry {
    pub addr: SocketAddrV4,
    pub dir: PathBuf,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicaEntry {
    pub id: usize,
    pub addr: SocketAddrV4,
    pub region: String,
    pub dir: PathBuf,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupEntry {
    pub id: u32,
    pub leader: usize,
    #[serde(default)]
    pub sync: Vec<usize>,
    #[serde(default, rename = "async")]
    pub remote: Vec<usize>,
}

/// The whole cluster, as written in `cluster.toml`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    pub buckets: u32,
    /// How long a hold lasts before its leader expires it, in seconds.
    #[serde(default = "default_hold_ttl")]
    pub hold_ttl_seconds: u64,
    /// The RPO budget of async followers: a follower that has not caught
    /// up with its leader for longer is over budget (`berth status`), and
    /// the controller refuses planned moves of its group.
    #[serde(default = "default_lag_budget")]
    pub lag_budget_ms: u64,
    /// The search view's freshness budget: older data is labelled stale.
    #[serde(default = "default_search_staleness")]
    pub search_staleness_ms: u64,
    /// The cabins every trip has (search lists the unsold ones).
    #[serde(default = "default_cabins")]
    pub cabins: Vec<String>,
    pub controller: ControllerEntry,
    pub replicas: Vec<ReplicaEntry>,
    pub groups: Vec<GroupEntry>,
    /// The projector: follows every bucket's change stream and serves
    /// `berth search` and `berth trips`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projector: Option<ProjectorEntry>,
    /// The directory the file was read from (data directories are relative
    /// to it); not written.
    #[serde(skip)]
    pub base: PathBuf,
    /// Where the cluster's keys are, if not `base/keys` (`--keys`); not
    /// written.
    #[serde(skip)]
    pub keys: Option<PathBuf>,
}

fn default_hold_ttl() -> u64 {
    600
}

fn default_lag_budget() -> u64 {
    5000
}

fn default_search_staleness() -> u64 {
    2000
}

fn default_cabins() -> Vec<String> {
    (1..=40).map(|n| format!("C{n}")).collect()
}

/// Where the projector listens.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectorEntry {
    pub addr: SocketAddrV4,
}

/// Which member a process runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Member {
    Controller,
    Replica(usize),
}

impl ClusterConfig {
    /// A local cluster: `groups` groups of `replicas` replicas each on
    /// 127.0.0.1 from `base_port` (the controller first). In each group the
    /// leader and the sync follower share a region; further replicas are
    /// async followers in a remote region. Buckets are split into
    /// contiguous ranges, one per group.
    pub fn local(buckets: u32, groups: u32, replicas: usize, base_port: u16) -> Result<Self> {
        if buckets == 0 || groups == 0 || replicas == 0 {
            bail!("--buckets, --groups and --replicas must each be at least 1");
        }
        if groups > buckets {
            bail!(
                "{groups} groups cannot share {buckets} buckets: use at most one group per bucket"
            );
        }
        let members = groups as usize * replicas;
        if base_port as usize + members + 1 > u16::MAX as usize {
            bail!(
                "--base-port {base_port} leaves no room for {members} replicas and the controller"
            );
        }
        const REGIONS: [&str; 6] = ["madrid", "paris", "lisbon", "milan", "berlin", "dublin"];
        let addr =
            |offset: usize| SocketAddrV4::new([127, 0, 0, 1].into(), base_port + offset as u16);
        let mut config = ClusterConfig {
            buckets,
            hold_ttl_seconds: default_hold_ttl(),
            lag_budget_ms: default_lag_budget(),
            search_staleness_ms: default_search_staleness(),
            cabins: default_cabins(),
            controller: ControllerEntry {
                addr: addr(0),
                dir: PathBuf::from("controller"),
            },
            replicas: Vec::new(),
            groups: Vec::new(),
            projector: Some(ProjectorEntry {
                addr: addr(members + 1),
            }),
            base: PathBuf::new(),
            keys: None,
        };
        for group in 0..groups as usize {
            let home = REGIONS[group % REGIONS.len()];
            let first = group * replicas + 1;
            for index in 0..replicas {
                let id = first + index;
                let region = match index {
                    0 => format!("{home}-a"),
                    1 => format!("{home}-b"),
                    _ => format!("newyork-{}", group + 1),
                };
                config.replicas.push(ReplicaEntry {
                    id,
                    addr: addr(id),
                    region,
                    dir: PathBuf::from(format!("node-{id}")),
                });
            }
            config.groups.push(GroupEntry {
                id: group as u32 + 1,
                leader: first,
                sync: (first + 1..first + replicas.min(2)).collect(),
                remote: (first + 2..first + replicas).collect(),
            });
        }
        config.validate()?;
        Ok(config)
    }

    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the cluster configuration {}", path.display()))?;
        let mut config: ClusterConfig = toml::from_str(&text)
            .with_context(|| format!("{} is not a valid cluster configuration", path.display()))?;
        config.base = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        config
            .validate()
            .with_context(|| format!("{} is not a valid cluster configuration", path.display()))?;
        Ok(config)
    }

    /// The file's text.
    pub fn to_toml(&self) -> String {
        format!(
            "# A berth cluster: `berth node --config THIS --id N`, `berth controller --config THIS`.\n{}",
            toml::to_string_pretty(self).expect("a cluster configuration serialises")
        )
    }

    /// Every member has a distinct id and address, every group names known
    /// replicas, and no replica serves in two groups.
    pub fn validate(&self) -> Result<()> {
        if self.buckets == 0 || self.buckets > MAX_BUCKETS {
            bail!(
                "buckets = {}: a cluster has 1 to {MAX_BUCKETS} buckets",
                self.buckets
            );
        }
        if self.hold_ttl_seconds == 0 {
            bail!("hold_ttl_seconds must be at least 1");
        }
        if self.lag_budget_ms == 0 || self.search_staleness_ms == 0 {
            bail!("lag_budget_ms and search_staleness_ms must be at least 1");
        }
        if self.groups.is_empty() {
            bail!("at least one group is needed");
        }
        if self.groups.len() > self.buckets as usize {
            bail!(
                "more groups ({}) than buckets ({})",
                self.groups.len(),
                self.buckets
            );
        }
        let mut ids = BTreeSet::new();
        let mut addrs = BTreeSet::from([self.controller.addr]);
        for replica in &self.replicas {
            if replica.id == 0 {
                bail!("replica ids start at 1 (0 is the controller)");
            }
            if !ids.insert(replica.id) {
                bail!("replica id {} appears twice", replica.id);
            }
            if !addrs.insert(replica.addr) {
                bail!("address {} is used twice", replica.addr);
            }
        }
        if let Some(projector) = &self.projector {
            if !addrs.insert(projector.addr) {
                bail!("address {} is used twice (projector)", projector.addr);
            }
        }
        let mut placed = BTreeSet::new();
        let mut group_ids = BTreeSet::new();
        for group in &self.groups {
            if !group_ids.insert(group.id) {
                bail!("group {} appears twice", group.id);
            }
            for id in std::iter::once(&group.leader)
                .chain(&group.sync)
                .chain(&group.remote)
            {
                if !ids.contains(id) {
                    bail!(
                        "group {} names replica {id}, which is not configured",
                        group.id
                    );
                }
                if !placed.insert(*id) {
                    bail!(
                        "replica {id} serves in two groups or twice in group {}",
                        group.id
                    );
                }
            }
        }
        Ok(())
    }

    /// The replica groups as the model knows them.
    pub fn layouts(&self) -> Vec<GroupLayout> {
        self.groups
            .iter()
            .map(|group| GroupLayout {
                group: GroupId(group.id),
                leader: Id::from(group.leader),
                sync_followers: group.sync.iter().copied().map(Id::from).collect(),
                async_followers: group.remote.iter().copied().map(Id::from).collect(),
            })
            .collect()
    }

    /// The map every member starts from: contiguous bucket ranges, one per
    /// group, at the first epoch.
    pub fn initial_map(&self) -> PlacementMap {
        let layouts = self.layouts();
        let groups = layouts.len() as u64;
        let buckets: Vec<BucketPlacement> = (0..self.buckets as u64)
            .map(|bucket| {
                let group = (bucket * groups / self.buckets as u64) as usize;
                layouts[group].placement_at(Epoch::FIRST)
            })
            .collect();
        PlacementMap {
            version: 1,
            buckets: buckets.into(),
        }
    }

    /// The protocol settings of a real cluster: bounded resends, the probe
    /// detector, appends that fit a datagram, holds that expire.
    pub fn protocol(&self) -> ProtocolConfig {
        let ttl = Duration::from_secs(self.hold_ttl_seconds);
        ProtocolConfig {
            hold_ttl: Some(ttl..ttl + Duration::from_millis(1)),
            // A client resends (and refreshes its map) every 100-150 ms for
            // about 12 s: short enough that a redirect during a cutover,
            // before the new map is published, costs little.
            client_retries: 100,
            leader_resends: 30,
            resend_unanswered: true,
            announce_commits: true,
            detector: Detector::Probes { misses: 6 },
            max_append_entries: Some(32),
            // About 15 bytes a placement: 1,024 fit a datagram many times.
            max_batch: Some(1024),
            catch_up: true,
            retained_entries: Some(RETAINED_ENTRIES),
            snapshot_chunk: Some(SNAPSHOT_CHUNK),
            timeouts: Timeouts {
                client_retry: Duration::from_millis(100)..Duration::from_millis(150),
                ..Timeouts::default()
            },
            ..ProtocolConfig::default()
        }
    }

    /// The directory of the cluster's keys: `--keys`, else `keys` beside
    /// the file.
    pub fn keys_dir(&self) -> PathBuf {
        self.keys.clone().unwrap_or_else(|| self.base.join("keys"))
    }

    /// The projector's actor id (its address, as the model's router ids
    /// of non-replicas are), if the cluster has one.
    pub fn projector_id(&self) -> Option<Id> {
        self.projector.as_ref().map(|entry| Id::from(entry.addr))
    }

    /// The address of member `id` (the controller, a replica or the
    /// projector), if it is a member.
    pub fn addr_of(&self, id: Id) -> Option<SocketAddrV4> {
        if id == controller_id() {
            return Some(self.controller.addr);
        }
        if let Some(entry) = &self.projector {
            if Id::from(entry.addr) == id {
                return Some(entry.addr);
            }
        }
        self.replicas
            .iter()
            .find(|replica| Id::from(replica.id) == id)
            .map(|replica| replica.addr)
    }

    /// Whether `id` is a member: the controller, a replica or the
    /// projector.
    pub fn is_member(&self, id: Id) -> bool {
        self.addr_of(id).is_some()
    }

    pub fn replica(&self, id: usize) -> Option<&ReplicaEntry> {
        self.replicas.iter().find(|replica| replica.id == id)
    }

    /// A person's name for member `id`.
    pub fn name_of(&self, id: Id) -> String {
        if id == controller_id() {
            return "controller".to_owned();
        }
        match self
            .replicas
            .iter()
            .find(|replica| Id::from(replica.id) == id)
        {
            Some(replica) => format!("replica {} ({})", replica.id, replica.region),
            None => format!("client {}", SocketAddrV4::from(id)),
        }
    }

    /// Where `member` keeps its data.
    pub fn data_dir(&self, member: Member) -> Result<PathBuf> {
        let dir = match member {
            Member::Controller => &self.controller.dir,
            Member::Replica(id) => match self.replica(id) {
                Some(replica) => &replica.dir,
                None => bail!("replica {id} is not in the cluster configuration"),
            },
        };
        Ok(self.base.join(dir))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: a generated local cluster round-trips through its file and
    /// maps every bucket to a group, in contiguous ranges.
    #[test]
    fn local_cluster_round_trips_and_splits_buckets() {
        let config = ClusterConfig::local(2048, 2, 3, 7000).unwrap();
        let text = config.to_toml();
        let back: ClusterConfig = toml::from_str(&text).unwrap();
        assert_eq!(back, config);
        let map = config.initial_map();
        assert_eq!(map.bucket_count(), 2048);
        assert_eq!(map.buckets[0].leader, Id::from(1));
        assert_eq!(map.buckets[1023].leader, Id::from(1));
        assert_eq!(map.buckets[1024].leader, Id::from(4));
        assert_eq!(config.groups[0].sync, vec![2]);
        assert_eq!(config.groups[0].remote, vec![3]);
        assert_eq!(config.replicas[2].region, "newyork-1");
        assert_eq!(
            config.addr_of(Id::from(5)),
            Some("127.0.0.1:7005".parse().unwrap())
        );
        assert!(config.is_member(config.projector_id().unwrap()));
        assert!(!config.is_member(Id::from(99)));
    }

    /// Goal: a configuration that names an unknown replica, reuses an
    /// address or an id is refused with a reason.
    #[test]
    fn inconsistent_configurations_are_refused() {
        let mut config = ClusterConfig::local(8, 1, 3, 7000).unwrap();
        config.groups[0].sync = vec![9];
        assert!(config
            .validate()
            .unwrap_err()
            .to_string()
            .contains("replica 9"));
        let mut config = ClusterConfig::local(8, 1, 3, 7000).unwrap();
        config.replicas[1].addr = config.replicas[0].addr;
        assert!(config
            .validate()
            .unwrap_err()
            .to_string()
            .contains("used twice"));
        assert!(ClusterConfig::local(2, 3, 3, 7000).is_err());
        let mut config = ClusterConfig::local(8, 1, 3, 7000).unwrap();
        config.buckets = MAX_BUCKETS + 1;
        assert!(config
            .validate()
            .unwrap_err()
            .to_string()
            .contains("1 to 65536 buckets"));
        config.buckets = MAX_BUCKETS;
        assert!(config.validate().is_ok());
        let bad: Result<ClusterConfig, _> = toml::from_str("buckets = 4\nsurprise = 1\n");
        assert!(bad.is_err());
    }
}
