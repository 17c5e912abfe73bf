//! `Buckets`, a replica's buckets, which remembers which of them a step
//! handed out for change.
//!
//! A replica holds thousands of buckets and a step changes one or a few.
//! The checker detects a step's changes by comparing the state with a copy
//! of it, which is cheap for its one-bucket scenarios and would cost a
//! copy of every bucket per event in a real replica. So every mutable
//! access goes through `get_mut` or `entry`, which note the bucket; the
//! runtime's in-place step (`BerthActor::on_msg_in_place`) hands those to
//! the store as the buckets that may have changed, and the store tells
//! which did (`BucketChange::since`). Nothing here holds a bucket's durable
//! state: a second reference would make the step's own change of it copy
//! the whole bucket (`Arc::make_mut`). A step's cost depends on what it
//! changes, not on how many buckets the replica holds nor on their history.

use super::BucketReplica;
use crate::types::Bucket;
use std::collections::btree_map::{BTreeMap, Entry};
use std::collections::BTreeSet;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

/// A replica's buckets. Equality and hashing look at the buckets only.
#[derive(Debug, Default)]
pub struct Buckets {
    map: BTreeMap<Bucket, BucketReplica>,
    /// The buckets handed out mutably since the last `take_touched`.
    touched: BTreeSet<Bucket>,
    /// The buckets the in-place steps handed out mutably since the runtime
    /// last saved (`take_unsaved`): those whose durable state may have
    /// changed. Empty in the checker, whose steps compare whole copies.
    unsaved: BTreeSet<Bucket>,
}

impl Buckets {
    /// `bucket`'s replica, to change.
    pub fn get_mut(&mut self, bucket: &Bucket) -> Option<&mut BucketReplica> {
        self.touch(*bucket);
        self.map.get_mut(bucket)
    }

    /// `bucket`'s entry, to change or insert.
    pub fn entry(&mut self, bucket: Bucket) -> Entry<'_, Bucket, BucketReplica> {
        self.touch(bucket);
        self.map.entry(bucket)
    }

    fn touch(&mut self, bucket: Bucket) {
        self.touched.insert(bucket);
    }

    /// The buckets handed out mutably since the last call; forgets them.
    pub fn take_touched(&mut self) -> BTreeSet<Bucket> {
        std::mem::take(&mut self.touched)
    }

    /// Notes that a step may have changed `bucket`'s durable state.
    pub fn note_unsaved(&mut self, bucket: Bucket) {
        self.unsaved.insert(bucket);
    }

    /// The buckets changed since the last call; forgets them.
    pub fn take_unsaved(&mut self) -> BTreeSet<Bucket> {
        std::mem::take(&mut self.unsaved)
    }
}

impl Deref for Buckets {
    type Target = BTreeMap<Bucket, BucketReplica>;

    fn deref(&self) -> &Self::Target {
        &self.map
    }
}

impl FromIterator<(Bucket, BucketReplica)> for Buckets {
    fn from_iter<I: IntoIterator<Item = (Bucket, BucketReplica)>>(iter: I) -> Self {
        Buckets {
            map: iter.into_iter().collect(),
            touched: BTreeSet::new(),
            unsaved: BTreeSet::new(),
        }
    }
}

impl Clone for Buckets {
    /// A copy of the buckets; what the original handed out is its own.
    fn clone(&self) -> Self {
        Buckets {
            map: self.map.clone(),
            touched: BTreeSet::new(),
            unsaved: BTreeSet::new(),
        }
    }
}

impl PartialEq for Buckets {
    fn eq(&self, other: &Self) -> bool {
        self.map == other.map
    }
}

impl Eq for Buckets {}

impl Hash for Buckets {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.map.hash(state);
    }
}

impl<'a> IntoIterator for &'a Buckets {
    type Item = (&'a Bucket, &'a BucketReplica);
    type IntoIter = std::collections::btree_map::Iter<'a, Bucket, BucketReplica>;

    fn into_iter(self) -> Self::IntoIter {
        self.map.iter()
    }
}

#[cfg(test)]
mod tests {
    use crate::actor::{BerthActor, NodeState, StorageChange};
    use crate::bucket::{Command, Op};
    use crate::messages::Msg;
    use crate::placement::PlacementMap;
    use crate::replica::ReplicaActor;
    use crate::test_support::{self, placement, ASYNC, CLIENT, CONTROLLER, LEADER, SYNC};
    use crate::types::{Bucket, Epoch, InventoryUnit, Token};
    use stateright::actor::Id;

    /// Goal: a step that changes one bucket of several notes that bucket,
    /// and only it, for the runtime's store (`test_support::deliver` checks
    /// that the buckets named are exactly the changed ones). Every checker
    /// scenario has one bucket, so only a test with two tells "the bucket
    /// changed" from "bucket 0".
    #[test]
    fn a_step_notes_the_bucket_it_changed_among_several() {
        let actor = BerthActor::Replica(ReplicaActor {
            initial_map: PlacementMap::uniform(2, placement(1, LEADER, SYNC, ASYNC)),
            region: "madrid-a".into(),
            controller: Id::from(CONTROLLER),
            config: Default::default(),
        });
        let mut leader = test_support::start(&actor, LEADER);
        let request = Msg::Request {
            bucket: Bucket(1),
            epoch: Epoch(1),
            command: Command {
                token: Token { client: 4, seq: 1 },
                op: Op::Hold {
                    unit: InventoryUnit::new("BCN-JFK-2026-07-14", "C1"),
                    customer: crate::Customer::new("alice"),
                },
            },
        };
        let mut in_place = leader.clone();
        test_support::deliver(&actor, &mut leader, LEADER, CLIENT, request.clone());
        let NodeState::Replica(replica) = &leader else {
            unreachable!("a replica")
        };
        assert_eq!(replica.buckets[&Bucket(1)].durable.log.last_position().0, 1);
        assert_eq!(replica.buckets[&Bucket(0)].durable.log.last_position().0, 0);
        // The runtime's own step names the bucket for its store.
        let changed = actor.on_msg_in_place(
            Id::from(LEADER),
            &mut in_place,
            Id::from(CLIENT),
            request,
            &mut stateright::actor::Out::new(),
        );
        assert!(changed);
        let Some(StorageChange::Buckets(named)) = in_place.take_storage_change() else {
            unreachable!("a replica's change is by bucket")
        };
        let named: Vec<Bucket> = named.into_iter().map(|(bucket, _)| bucket).collect();
        assert_eq!(named, vec![Bucket(1)]);
    }
}
