//! `one role per replica`: in every placement the controller publishes,
//! and in every placement a replica holds, no replica has two roles — the
//! leader is none of its own followers and no follower is named twice.
//!
//! A placement that names its leader as its own sync follower loses no
//! booking in the checker: the leader then waits for itself, and commits
//! with nobody else's copy. That is the failure the commit rule exists to
//! prevent (a confirmation durable on one machine), and no other property
//! sees it, since the checker's crashes lose no disk. Every change of
//! placement (a promotion, a replacement, a move) must keep the roles
//! apart.

use crate::history::BerthState;
use crate::properties::{controller_map, replicas, PropertySpec};
use berth_model::placement::BucketPlacement;
use std::collections::BTreeSet;

pub const ONE_ROLE_PER_REPLICA: &str = "one role per replica";

/// The property, stated in every scenario.
pub fn roles_property() -> PropertySpec {
    PropertySpec::always(
        ONE_ROLE_PER_REPLICA,
        |_, state| doubled_role(state).is_none(),
        |_, state| doubled_role(state),
        "no placement, published or held, names a replica twice: the leader is none of its followers, and no follower is named twice",
    )
}

/// Whether `placement` names some replica twice, and which.
fn doubled(placement: &BucketPlacement) -> Option<usize> {
    let mut seen = BTreeSet::new();
    std::iter::once(placement.leader)
        .chain(placement.followers())
        .find(|id| !seen.insert(*id))
        .map(usize::from)
}

/// The first placement naming a replica twice, named in one sentence.
pub fn doubled_role(state: &BerthState) -> Option<String> {
    if let Some(map) = controller_map(state) {
        for (bucket, placement) in map.buckets.iter().enumerate() {
            if let Some(id) = doubled(placement) {
                return Some(format!(
                    "the controller's map names replica {id} twice for b{bucket} at {}",
                    placement.epoch
                ));
            }
        }
    }
    replicas(state).find_map(|(id, replica)| {
        replica.buckets.iter().find_map(|(bucket, copy)| {
            let placement = &copy.durable.placement;
            doubled(placement).map(|doubled| {
                format!(
                    "replica {} holds a placement of {bucket} at {} naming replica {doubled} twice",
                    usize::from(id),
                    placement.epoch
                )
            })
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_model::{Epoch, GroupId};
    use stateright::actor::Id;

    fn placement(leader: usize, sync: &[usize], remote: &[usize]) -> BucketPlacement {
        BucketPlacement {
            epoch: Epoch::FIRST,
            group: GroupId::default(),
            leader: Id::from(leader),
            sync_followers: sync.iter().copied().map(Id::from).collect(),
            async_followers: remote.iter().copied().map(Id::from).collect(),
        }
    }

    /// Goal: a leader among its followers, or a follower named twice, is
    /// found; distinct roles are not.
    #[test]
    fn a_replica_named_twice_is_found() {
        assert_eq!(doubled(&placement(1, &[2], &[3])), None);
        assert_eq!(doubled(&placement(1, &[1], &[3])), Some(1));
        assert_eq!(doubled(&placement(1, &[2], &[2])), Some(2));
        assert_eq!(doubled(&placement(1, &[2, 3], &[3])), Some(3));
    }
}
