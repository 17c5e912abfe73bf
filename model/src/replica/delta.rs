//! What changed in one bucket between two saves (`BucketChange`), so that
//! a replica's storage records what changed — entries appended, the
//! truncation point, the commit, the fold, the placement — and not the
//! bucket's whole history. Recovery rebuilds the new bucket from the old
//! through the model's own code (`commit_through` applies the newly
//! committed entries, `fold` drops the oldest), so the record stays the
//! size of the change however long the bucket's log has been.

use super::DurableBucket;
use crate::log::Entry;
use crate::placement::BucketPlacement;
use crate::types::{Epoch, Position};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// One bucket's change between two saves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BucketChange {
    /// The whole bucket: new here, or its log replaced by a snapshot.
    Whole(Arc<DurableBucket>),
    /// What changed in the bucket saved before.
    Delta(BucketDelta),
}

/// The change of a bucket whose log continues the one saved before: the
/// log is kept through `kept_through`, `entries` follow, everything
/// through `commit_position` is committed, and the log starts after
/// `start`. `None` fields are unchanged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketDelta {
    pub placement: Option<BucketPlacement>,
    pub promised_epoch: Option<Epoch>,
    pub moving_to: Option<Option<BucketPlacement>>,
    pub kept_through: Position,
    pub entries: Vec<Entry>,
    pub commit_position: Position,
    pub start: Position,
}

/// What a store remembers of a bucket it saved: enough to tell what the
/// next save changed, without holding the bucket. Holding it (an `Arc`
/// shared with the replica) would make the replica's next change of the
/// bucket copy it, and every save then drop the old copy: a cost per write
/// that grows with the bucket's state. Committed entries never change (the
/// protocol's guarantee), so only the uncommitted suffix is kept to compare.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SavedBucket {
    placement: BucketPlacement,
    promised_epoch: Epoch,
    moving_to: Option<BucketPlacement>,
    commit_position: Position,
    start: Position,
    start_epoch: Epoch,
    last_position: Position,
    /// The entries after `commit_position` (or after `start`, if later).
    uncommitted: Vec<Entry>,
}

impl SavedBucket {
    /// What to remember of `bucket`, just saved.
    pub fn of(bucket: &DurableBucket) -> SavedBucket {
        let log = &bucket.log;
        SavedBucket {
            placement: bucket.placement.clone(),
            promised_epoch: bucket.promised_epoch,
            moving_to: bucket.moving_to.clone(),
            commit_position: bucket.commit_position,
            start: log.start(),
            start_epoch: log.epoch_at(log.start()).unwrap_or_default(),
            last_position: log.last_position(),
            uncommitted: log.entries_after(bucket.commit_position).to_vec(),
        }
    }

    /// The first position of `uncommitted`'s range.
    fn suffix_from(&self) -> Position {
        self.commit_position.max(self.start)
    }

    /// The entry at `position`, if it is in the uncommitted suffix.
    fn uncommitted_entry(&self, position: Position) -> Option<&Entry> {
        let from = self.suffix_from();
        if position <= from {
            return None;
        }
        self.uncommitted.get((position.0 - from.0) as usize - 1)
    }

    /// The epoch of the entry at `position`, where it can tell: the start,
    /// the uncommitted suffix; `None` past the end.
    fn epoch_at(&self, position: Position) -> Option<Epoch> {
        if position == self.start {
            return Some(self.start_epoch);
        }
        self.uncommitted_entry(position).map(|entry| entry.epoch)
    }
}

impl BucketChange {
    /// How `new` differs from `old`; `None` if it does not.
    pub fn between(old: &DurableBucket, new: &Arc<DurableBucket>) -> Option<BucketChange> {
        BucketChange::since(&SavedBucket::of(old), new)
    }

    /// How `new` differs from the bucket `old` remembers; `None` if it
    /// does not.
    pub fn since(old: &SavedBucket, new: &Arc<DurableBucket>) -> Option<BucketChange> {
        let whole = || Some(BucketChange::Whole(Arc::clone(new)));
        let new_log = &new.log;
        let start = new_log.start();
        // A log that does not continue the old one (a snapshot replaced
        // it, or the commit went back) is saved whole. Within the old
        // committed prefix the entries are the same, so only a start in
        // the old uncommitted suffix or past it is compared.
        let old_epoch = if start <= old.commit_position && start >= old.start {
            new_log.epoch_at(start)
        } else {
            old.epoch_at(start)
        };
        // (A start before the old one has no old epoch here: saved whole.)
        if old_epoch != new_log.epoch_at(start) || new.commit_position < old.commit_position {
            return whole();
        }
        let common = old.last_position.min(new_log.last_position());
        let mut kept = old.suffix_from().max(start).min(common);
        while kept < common && old.uncommitted_entry(kept.next()) == new_log.entry(kept.next()) {
            kept = kept.next();
        }
        // `kept` is not below the old commit (or the old log's end): the
        // new commit is not below the old one and the new log reaches its
        // commit, so the new log holds the whole old committed prefix.
        let changed = |same: bool| !same;
        let delta = BucketDelta {
            placement: changed(old.placement == new.placement).then(|| new.placement.clone()),
            promised_epoch: changed(old.promised_epoch == new.promised_epoch)
                .then_some(new.promised_epoch),
            moving_to: changed(old.moving_to == new.moving_to).then(|| new.moving_to.clone()),
            kept_through: kept,
            entries: new_log.entries_after(kept).to_vec(),
            commit_position: new.commit_position,
            start,
        };
        let unchanged = delta.placement.is_none()
            && delta.promised_epoch.is_none()
            && delta.moving_to.is_none()
            && kept == old.last_position
            && delta.entries.is_empty()
            && delta.commit_position == old.commit_position
            && start == old.start;
        (!unchanged).then_some(BucketChange::Delta(delta))
    }

    /// The bucket after this change, from the bucket saved before it
    /// (`None` if there was none, which only a whole change follows).
    pub fn apply(self, old: Option<&Arc<DurableBucket>>) -> Option<Arc<DurableBucket>> {
        let delta = match self {
            BucketChange::Whole(bucket) => return Some(bucket),
            BucketChange::Delta(delta) => delta,
        };
        let mut bucket = DurableBucket::clone(old?);
        if let Some(placement) = delta.placement {
            bucket.placement = placement;
        }
        if let Some(epoch) = delta.promised_epoch {
            bucket.promised_epoch = epoch;
        }
        if let Some(moving_to) = delta.moving_to {
            bucket.moving_to = moving_to;
        }
        bucket.log.truncate_after(delta.kept_through);
        for entry in delta.entries {
            bucket.log.push(entry);
        }
        bucket.commit_through(delta.commit_position);
        bucket.log.compact_through(delta.start);
        Some(Arc::new(bucket))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bucket::{BucketState, Command, Op};
    use crate::log::Log;
    use crate::test_support::placement;
    use crate::types::{InventoryUnit, Token};

    fn entry(epoch: u64, seq: u32) -> Entry {
        Entry::command(
            Epoch(epoch),
            Command {
                token: Token { client: 4, seq },
                op: Op::Hold {
                    unit: InventoryUnit::new("T", format!("C{seq}")),
                    customer: crate::Customer::new("alice"),
                },
            },
        )
    }

    fn bucket(entries: &[Entry], commit: u64) -> DurableBucket {
        let mut bucket = DurableBucket::empty(placement(1, 1, 2, 3));
        for entry in entries {
            bucket.log.push(entry.clone());
        }
        bucket.commit_through(Position(commit));
        bucket
    }

    /// `new` rebuilt from `old` and their change, which must be a delta
    /// (or whole, as `whole` says).
    fn round_trip(old: &DurableBucket, new: DurableBucket, whole: bool) {
        let new = Arc::new(new);
        let change = BucketChange::between(old, &new).expect("changed");
        assert_eq!(
            matches!(change, BucketChange::Whole(_)),
            whole,
            "{change:?}"
        );
        let old = Arc::new(old.clone());
        assert_eq!(change.apply(Some(&old)), Some(new));
    }

    /// Goal: appends, a truncated uncommitted suffix, commits, a fold and
    /// a placement change are saved as deltas that rebuild the bucket
    /// exactly, carrying only the new entries; a log replaced by a
    /// snapshot of another history is saved whole; no change, no record.
    #[test]
    fn changes_rebuild_the_bucket() {
        let old = bucket(&[entry(1, 0), entry(1, 1), entry(1, 2)], 1);
        assert_eq!(BucketChange::between(&old, &Arc::new(old.clone())), None);
        // Appended and committed.
        let mut new = old.clone();
        new.log.push(entry(1, 3));
        new.commit_through(Position(4));
        let change = BucketChange::between(&old, &Arc::new(new.clone()));
        assert!(
            matches!(&change, Some(BucketChange::Delta(d)) if d.entries.len() == 1),
            "{change:?}"
        );
        round_trip(&old, new.clone(), false);
        // Then folded.
        let mut folded = new.clone();
        folded.fold(Some(1));
        assert_eq!(folded.log.start(), Position(3));
        round_trip(&old, folded, false);
        // A divergent uncommitted suffix replaced, and a new placement.
        let mut replaced = old.clone();
        replaced
            .log
            .append_after(Position(1), Epoch(1), &[entry(2, 9)], Position(1))
            .unwrap();
        replaced.placement = placement(2, 2, 1, 3);
        replaced.promised_epoch = Epoch(2);
        round_trip(&old, replaced, false);
        // Folded inside the old committed prefix: still a delta.
        let mut long = bucket(&[entry(1, 0), entry(1, 1), entry(1, 2), entry(1, 3)], 3);
        let old_long = long.clone();
        long.log.push(entry(1, 4));
        long.commit_through(Position(5));
        long.log.compact_through(Position(2));
        round_trip(&old_long, long, false);
        // The commit going back (a snapshot of an older position of the
        // same history): saved whole, since a delta only moves it forward.
        let mut older = old_long.clone();
        older.log = Log::after_snapshot(Position(2), Epoch(1));
        older.commit_position = Position(2);
        round_trip(&old_long, older, true);
        // A log that starts before the old one (a snapshot of an older
        // position under a log that had been folded): saved whole.
        let mut folded_old = old_long.clone();
        folded_old.log.compact_through(Position(3));
        let mut earlier = folded_old.clone();
        earlier.log = Log::after_snapshot(Position(1), Epoch(1));
        earlier.log.push(entry(1, 1));
        earlier.log.push(entry(1, 2));
        earlier.log.push(entry(1, 3));
        round_trip(&folded_old, earlier, true);
        // A snapshot of another history.
        let mut installed = old.clone();
        installed.log = Log::after_snapshot(Position(2), Epoch(2));
        installed.applied = BucketState::default();
        installed.commit_position = Position(2);
        round_trip(&old, installed, true);
    }
}
