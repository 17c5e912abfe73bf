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
/// one datagram and a small file.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "EncodedMap", from = "EncodedMap")]
pub struct PlacementMap {
    /// Advances with every change to any bucket's placement.
    pub version: u64,
    /// Indexed by bucket number; its length is the bucket count B.
    pub buckets: Vec<BucketPlacement>,
}

/// `PlacementMap` on the wire and on disk: `(run length, placement)` pairs.
#[derive(Clone, Serialize, Deserialize)]
struct EncodedMap {
    version: u64,
    runs: Vec<(u32, BucketPlacement)>,
}

impl From<PlacementMap> for EncodedMap {
    fn from(map: PlacementMap) -> Self {
        let mut runs: Vec<(u32, BucketPlacement)> = Vec::new();
        for placement in map.buckets {
            match runs.last_mut() {
                Some((count, last)) if *last == placement => *count += 1,
                _ => runs.push((1, placement)),
            }
        }
        EncodedMap {
            version: map.version,
            runs,
        }
    }
}

impl From<EncodedMap> for PlacementMap {
    fn from(encoded: EncodedMap) -> Self {
        PlacementMap {
            version: encoded.version,
            buckets: encoded
                .runs
                .into_iter()
                .flat_map(|(count, placement)| std::iter::repeat_n(placement, count as usize))
                .collect(),
        }
    }
}

impl PlacementMap {
    /// A map that places every one of `bucket_count` buckets identically at
    /// epoch 1.
    pub fn uniform(bucket_count: u32, placement: BucketPlacement) -> Self {
        PlacementMap {
            version: 1,
            buckets: vec![placement; bucket_count as usize],
        }
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
                buckets: leaders.iter().enumerate().map(|(epoch, leader)| placement(epoch as u64, *leader)).collect(),
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
                buckets: leaders.iter().map(|leader| placement(1, *leader)).collect(),
            };
            let json = serde_json::to_string(&map).unwrap();
            prop_assert_eq!(serde_json::from_str::<PlacementMap>(&json).unwrap(), map);
            let uniform = PlacementMap::uniform(2048, placement(1, 1));
            prop_assert!(serde_json::to_string(&uniform).unwrap().len() < 200);
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
}
