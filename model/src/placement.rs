//! The placement map: bucket → (epoch, group, roles).
//!
//! The controller owns the map and changes it only by advancing a bucket's
//! epoch; routers cache it and refresh it when a replica tells them their
//! epoch is stale. The map's `version` orders whole maps, so a router never
//! replaces a newer cache with an older reply.

use crate::hashing::bucket_of;
use crate::types::{Bucket, Epoch, GroupId, InventoryUnit};
use serde::{Deserialize, Serialize};
use stateright::actor::Id;
use std::fmt;
use std::sync::Arc;

/// A replica's job for one bucket at one epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Accepts writes at its epoch; commits once every sync follower is durable.
    Leader,
    /// Same region as the leader, in the commit quorum.
    SyncFollower,
    /// Remote; trails behind and never holds up a commit.
    AsyncFollower,
}

/// Who holds one bucket at one epoch.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BucketPlacement {
    pub epoch: Epoch,
    pub group: GroupId,
    pub leader: Id,
    pub sync_followers: Vec<Id>,
    pub async_followers: Vec<Id>,
}

impl BucketPlacement {
    /// The role of `replica` in this placement, if it has one.
    pub fn role_of(&self, replica: Id) -> Option<Role> {
        if self.leader == replica {
            Some(Role::Leader)
        } else if self.sync_followers.contains(&replica) {
            Some(Role::SyncFollower)
        } else if self.async_followers.contains(&replica) {
            Some(Role::AsyncFollower)
        } else {
            None
        }
    }

    /// The leader and every follower.
    pub fn members(&self) -> impl Iterator<Item = Id> + '_ {
        std::iter::once(self.leader).chain(self.followers())
    }

    /// Every follower, sync first.
    pub fn followers(&self) -> impl Iterator<Item = Id> + '_ {
        self.sync_followers
            .iter()
            .chain(self.async_followers.iter())
            .copied()
    }
}

impl fmt::Display for BucketPlacement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids = |ids: &[Id]| {
            ids.iter()
                .map(|id| usize::from(*id).to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        write!(
            f,
            "{} {} leader {} sync [{}] async [{}]",
            self.epoch,
            self.group,
            usize::from(self.leader),
            ids(&self.sync_followers),
            ids(&self.async_followers)
        )
    }
}

/// The largest number of buckets a cluster may have. A decoded map is
/// refused beyond it, before anything is allocated: a few bytes from the
/// network must not make a member allocate without bound.
pub const MAX_BUCKETS: u32 = 65_536;

/// A replica group: who takes which role for the buckets placed on it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct GroupLayout {
    pub group: GroupId,
    pub leader: Id,
    pub sync_followers: Vec<Id>,
    pub async_followers: Vec<Id>,
}

impl GroupLayout {
    /// The placement of a bucket on this group at `epoch`.
    pub fn placement_at(&self, epoch: Epoch) -> BucketPlacement {
        BucketPlacement {
            epoch,
            group: self.group,
            leader: self.leader,
            sync_followers: self.sync_followers.clone(),
            async_followers: self.async_followers.clone(),
        }
    }
}

/// The versioned table bucket → placement.
///
/// Serialised run-length encoded (runs of consecutive buckets with equal
/// placements), so that a map of thousands of buckets on a few groups fits
/// one datagram and a small file. Decoding refuses a map of no buckets, of
/// more than `MAX_BUCKETS`, or with an empty run.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(try_from = "EncodedMap")]
pub struct PlacementMap {
    /// Advances with every change to any bucket's placement.
    pub version: u64,
    /// Indexed by bucket number; its length is the bucket count B. Shared
    /// (`Arc`, copy-on-write): copying a map — every step of the
    /// controller starts from a copy of its state — costs one pointer, and
    /// a change copies the table once per decision, however many buckets
    /// it changes (`PlacementMap::buckets_mut`).
    pub buckets: Arc<Vec<BucketPlacement>>,
}

/// `PlacementMap` on the wire and on disk: `(run length, placement)` pairs.
#[derive(Clone, Deserialize)]
struct EncodedMap {
    version: u64,
    runs: Vec<(u32, BucketPlacement)>,
}

/// `EncodedMap` by reference: a map is encoded (every `Map` answer, every
/// save of the controller) without copying a placement.
#[derive(Serialize)]
#[serde(rename = "EncodedMap")]
struct EncodedMapRef<'a> {
    version: u64,
    runs: Vec<(u32, &'a BucketPlacement)>,
}

impl Serialize for PlacementMap {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut runs: Vec<(u32, &BucketPlacement)> = Vec::new();
        for placement in self.buckets.iter() {
            match runs.last_mut() {
                Some((count, last)) if *last == placement => *count += 1,
                _ => runs.push((1, placement)),
            }
        }
        EncodedMapRef {
            version: self.version,
            runs,
        }
        .serialize(serializer)
    }
}

impl TryFrom<EncodedMap> for PlacementMap {
    type Error = String;

    /// Expands the runs, once their lengths are known to add up to a
    /// bucket count a cluster may have: the counts come from the network
    /// and are checked before anything is allocated.
    fn try_from(encoded: EncodedMap) -> Result<Self, String> {
        let mut total: u32 = 0;
        for (count, _) in &encoded.runs {
            if *count == 0 {
                return Err("placement map: a run of 0 buckets".to_owned());
            }
            total = total
                .checked_add(*count)
                .filter(|total| *total <= MAX_BUCKETS)
                .ok_or_else(|| format!("placement map: more than {MAX_BUCKETS} buckets"))?;
        }
        if total == 0 {
            return Err("placement map: no buckets".to_owned());
        }
        let mut buckets = Vec::with_capacity(total as usize);
        for (count, placement) in encoded.runs {
            buckets.extend(std::iter::repeat_n(placement, count as usize));
        }
        Ok(PlacementMap {
            version: encoded.version,
            buckets: Arc::new(buckets),
        })
    }
}

impl PlacementMap {
    /// A map that places every one of `bucket_count` buckets identically at
    /// epoch 1.
    pub fn uniform(bucket_count: u32, placement: BucketPlacement) -> Self {
        PlacementMap {
            version: 1,
            buckets: Arc::new(vec![placement; bucket_count as usize]),
        }
    }

    /// The table to change: a copy of it if another map shares it.
    pub fn buckets_mut(&mut self) -> &mut Vec<BucketPlacement> {
        Arc::make_mut(&mut self.buckets)
    }

    /// The number of buckets, B.
    pub fn bucket_count(&self) -> u32 {
        self.buckets.len() as u32
    }

    /// The placement of `bucket`, if the map has it.
    pub fn placement(&self, bucket: Bucket) -> Option<&BucketPlacement> {
        self.buckets.get(bucket.0 as usize)
    }

    /// Routes `unit`: its bucket and that bucket's placement.
    pub fn route(&self, unit: &InventoryUnit) -> (Bucket, &BucketPlacement) {
        let bucket = bucket_of(unit, self.bucket_count());
        (bucket, &self.buckets[bucket.0 as usize])
    }

    /// The buckets in which `replica` has a role, with that role.
    pub fn roles_of(&self, replica: Id) -> impl Iterator<Item = (Bucket, Role)> + '_ {
        self.buckets
            .iter()
            .enumerate()
            .filter_map(move |(index, placement)| {
                placement
                    .role_of(replica)
                    .map(|role| (Bucket(index as u32), role))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn placement(epoch: u64, leader: usize) -> BucketPlacement {
        BucketPlacement {
            epoch: Epoch(epoch),
            group: GroupId(leader as u32),
            leader: Id::from(leader),
            sync_followers: vec![Id::from(leader + 1)],
            async_followers: vec![Id::from(leader + 2)],
        }
    }

    proptest! {
        /// Goal: a router always lands on the placement of the unit's own
        /// bucket, whatever the map's size and contents.
        #[test]
        fn route_returns_the_units_bucket(cabin in "C[0-9]{1,3}", leaders in prop::collection::vec(0usize..9, 1..40)) {
            let map = PlacementMap {
                version: 7,
                buckets: leaders.iter().enumerate().map(|(epoch, leader)| placement(epoch as u64, *leader)).collect::<Vec<_>>().into(),
            };
            let unit = InventoryUnit::new("BCN-JFK-2026-07-14", cabin);
            let (bucket, routed) = map.route(&unit);
            prop_assert_eq!(bucket, bucket_of(&unit, map.bucket_count()));
            prop_assert_eq!(routed, map.placement(bucket).unwrap());
        }

        /// Goal: the run-length encoding loses nothing, and a map of many
        /// buckets on few placements stays small.
        #[test]
        fn encoding_round_trips(leaders in prop::collection::vec(0usize..3, 1..300)) {
            let map = PlacementMap {
                version: 3,
                buckets: leaders.iter().map(|leader| placement(1, *leader)).collect::<Vec<_>>().into(),
            };
            let json = serde_json::to_string(&map).unwrap();
            prop_assert_eq!(serde_json::from_str::<PlacementMap>(&json).unwrap(), map);
            let uniform = PlacementMap::uniform(2048, placement(1, 1));
            prop_assert!(serde_json::to_string(&uniform).unwrap().len() < 200);
        }

        /// Goal: maps of any run lengths up to the cap decode to what was
        /// encoded.
        #[test]
        fn maps_of_any_runs_round_trip(runs in prop::collection::vec((1u32..3000, 0usize..4), 1..20)) {
            let map = PlacementMap {
                version: 9,
                buckets: runs
                    .iter()
                    .flat_map(|(count, leader)| std::iter::repeat_n(placement(2, *leader), *count as usize))
                    .collect::<Vec<_>>()
                    .into(),
            };
            let json = serde_json::to_string(&map).unwrap();
            prop_assert_eq!(serde_json::from_str::<PlacementMap>(&json).unwrap(), map);
        }

        /// Goal: every replica named in a placement has exactly one role in it.
        #[test]
        fn each_member_has_one_role(leader in 0usize..5) {
            let map = PlacementMap::uniform(4, placement(1, leader));
            for replica in [leader, leader + 1, leader + 2] {
                prop_assert_eq!(map.roles_of(Id::from(replica)).count(), 4);
            }
            prop_assert_eq!(map.roles_of(Id::from(leader + 3)).count(), 0);
            prop_assert_eq!(map.placement(Bucket(0)).unwrap().role_of(Id::from(leader)), Some(Role::Leader));
        }
    }

    /// The JSON of a one-bucket map whose runs are patched to `counts`
    /// (as a hostile peer could send them).
    fn with_runs(counts: &[u64]) -> String {
        let map = PlacementMap::uniform(1, placement(1, 1));
        let mut value = serde_json::to_value(&map).unwrap();
        let run = value["runs"][0].clone();
        value["runs"] = counts
            .iter()
            .map(|count| {
                let mut run = run.clone();
                run[0] = (*count).into();
                run
            })
            .collect();
        value.to_string()
    }

    /// Goal: a map whose runs claim more buckets than a cluster may have,
    /// or none, is refused before anything is allocated (a run of
    /// u32::MAX would otherwise ask for hundreds of gigabytes and abort
    /// the process).
    #[test]
    fn oversized_and_empty_maps_are_refused_without_allocating() {
        let started = std::time::Instant::now();
        let refused = |counts: &[u64]| {
            serde_json::from_str::<PlacementMap>(&with_runs(counts))
                .unwrap_err()
                .to_string()
        };
        assert!(refused(&[u32::MAX as u64]).contains("more than 65536 buckets"));
        assert!(refused(&[40_000, 40_000]).contains("more than 65536 buckets"));
        assert!(refused(&[u32::MAX as u64, u32::MAX as u64, 1]).contains("more than"));
        assert!(refused(&[u64::from(MAX_BUCKETS) + 1]).contains("more than"));
        assert!(refused(&[3, 0, 2]).contains("a run of 0 buckets"));
        assert!(refused(&[]).contains("no buckets"));
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        // The cap itself is a map a cluster may have.
        let largest = serde_json::from_str::<PlacementMap>(&with_runs(&[60_000, 5_536])).unwrap();
        assert_eq!(largest.bucket_count(), MAX_BUCKETS);
    }
}
