//! What a replica keeps on disk for each bucket (`DurableBucket`), how a
//! replica's state is saved (`ReplicaState::storage`), and the invariants
//! checked after every step that changed it (`ReplicaState::validate`).

use super::ReplicaState;
use crate::bucket::{BucketState, Outcome, Refusal};
use crate::log::{Log, Payload};
use crate::memo::HashMemo;
use crate::messages::Msg;
use crate::messages::Reply;
use crate::placement::BucketPlacement;
use crate::types::{Bucket, Epoch, Position, Token};
use serde::{Deserialize, Serialize};
use stateright::actor::Id;
use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

/// What a replica keeps on disk for one bucket.
///
/// Shared (`Arc`) and changed copy-on-write, only through
/// `DurableBucket::edit`, which also forgets the memoised hash (the
/// checker's fingerprint of an unchanged bucket costs one word).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DurableBucket {
    /// The placement this replica serves in.
    pub placement: BucketPlacement,
    /// The newest epoch this replica promised; it never acts for an older one.
    pub promised_epoch: Epoch,
    pub log: Log,
    /// Every entry through this position is committed and applied.
    pub commit_position: Position,
    /// The bucket state at `commit_position`, idempotency table included.
    pub applied: BucketState,
    /// While this replica, as leader, moves the bucket out (cutover): the
    /// destination placement, whose members it streams the bucket to.
    /// Saved, so that a restarted leader keeps streaming.
    pub moving_to: Option<BucketPlacement>,
    /// The hash of the fields above, once computed (never saved).
    #[serde(skip)]
    memo: HashMemo,
}

impl Hash for DurableBucket {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.content_hash());
    }
}

impl DurableBucket {
    /// Every field but the memo, named so that a new field cannot be left
    /// out of the hash.
    fn hash_content(&self, h: &mut DefaultHasher) {
        let DurableBucket {
            placement,
            promised_epoch,
            log,
            commit_position,
            applied,
            moving_to,
            memo: _,
        } = self;
        placement.hash(h);
        promised_epoch.hash(h);
        log.hash(h);
        commit_position.hash(h);
        applied.hash(h);
        moving_to.hash(h);
    }

    /// The hash of the content (memoised): the checker keys what it
    /// already knows of a bucket by it.
    pub fn content_hash(&self) -> u64 {
        self.memo.get_or_compute(|h| self.hash_content(h))
    }

    /// Whether the memoised hash, if any, is the hash of the content now
    /// (the checker's test that no change skipped `edit`).
    pub fn memo_is_current(&self) -> bool {
        self.memo.known().is_none_or(|known| {
            known == HashMemo::default().get_or_compute(|h| self.hash_content(h))
        })
    }
}

/// How many times `retained_entries` a leader keeps for followers that
/// still lack them (`DurableBucket::fold_keeping`).
const FOLD_SLACK: u64 = 8;

/// A replica's durable state: its buckets. Shared (`Arc`), so that taking
/// a replica's storage or comparing it after a step costs one pointer per
/// bucket, and a step copies only the bucket it changes.
pub type ReplicaStorage = BTreeMap<Bucket, Arc<DurableBucket>>;

impl DurableBucket {
    /// The state after applying every entry in the log, committed or not:
    /// what the leader decides new commands against.
    pub fn state_through_last(&self) -> BucketState {
        let mut state = self.applied.clone();
        for (position, entry) in self.log.iter_after(self.commit_position) {
            state.apply_entry(position, entry);
        }
        state
    }

    /// The position of the uncommitted entry deciding `token`, if any.
    pub fn uncommitted_position(&self, token: &Token) -> Option<Position> {
        self.log
            .iter_after(self.commit_position)
            .find(|(_, entry)| entry.token() == Some(*token))
            .map(|(position, _)| position)
    }

    /// Advances the commit position to `position` (clamped to the log) and
    /// applies the newly committed entries.
    pub(super) fn commit_through(&mut self, position: Position) {
        let target = position.min(self.log.last_position());
        while self.commit_position < target {
            let next = self.commit_position.next();
            let entry = self
                .log
                .entry(next)
                .expect("committed entries are in the log");
            self.applied.apply_entry(next, entry);
            self.commit_position = next;
        }
    }

    /// Folds the committed entries beyond the newest `retained` into the
    /// committed state (`ProtocolConfig::retained_entries`): the log then
    /// starts after them, so that it does not grow with the bucket's
    /// history. `None`: keep everything.
    pub fn fold(&mut self, retained: Option<usize>) {
        self.fold_keeping(retained, self.commit_position);
    }

    /// As `fold`, but keeping the entries after `needed` (what a leader's
    /// followers still lack) unless that would keep more than
    /// `FOLD_SLACK` times `retained` committed entries: a follower a
    /// little further behind is sent entries, not a snapshot, while one
    /// that is down does not make the log grow without bound.
    pub fn fold_keeping(&mut self, retained: Option<usize>, needed: Position) {
        let Some(retained) = retained else {
            return;
        };
        let commit = self.commit_position.0;
        let cap = commit.saturating_sub(FOLD_SLACK * retained as u64);
        // The last entry always stays: whether it is a barrier decides
        // whether the bucket is sealed.
        let through = commit
            .saturating_sub(retained as u64)
            .min(needed.0.max(cap))
            .min(self.log.last_position().0.saturating_sub(1));
        // Through the log's start or before it: nothing to fold
        // (`compact_through` leaves the log as it is).
        self.log.compact_through(Position(through));
    }

    /// A fresh replica of a bucket placed at `placement`: empty log.
    pub fn empty(placement: BucketPlacement) -> Self {
        DurableBucket {
            promised_epoch: placement.epoch,
            placement,
            log: Log::default(),
            commit_position: Position(0),
            applied: BucketState::default(),
            moving_to: None,
            memo: HashMemo::default(),
        }
    }

    /// The bucket, to change: copied first if shared, and its memoised
    /// hash forgotten. Every change to a `DurableBucket` behind an `Arc`
    /// goes through here.
    pub fn edit(this: &mut Arc<DurableBucket>) -> &mut DurableBucket {
        let durable = Arc::make_mut(this);
        durable.memo.clear();
        durable
    }

    /// Whether the bucket is sealed at this replica's epoch: its log ends
    /// with a barrier of the current epoch, after which nothing may be
    /// appended at that epoch.
    pub fn sealed(&self) -> bool {
        self.log.last_entry().is_some_and(|entry| {
            *entry.payload == Payload::Barrier && entry.epoch == self.placement.epoch
        })
    }

    /// The destination members a moving leader streams to.
    pub fn learners(&self) -> Vec<Id> {
        self.moving_to
            .iter()
            .flat_map(|destination| destination.members())
            .filter(|id| self.placement.role_of(*id).is_none())
            .collect()
    }

    /// Whether `replica` leads this bucket now: it is the placement's leader
    /// and has promised no newer epoch.
    pub fn is_leader(&self, replica: Id) -> bool {
        self.placement.leader == replica && self.promised_epoch == self.placement.epoch
    }
}

impl ReplicaState {
    /// Exactly what survives a crash.
    pub fn storage(&self) -> ReplicaStorage {
        self.buckets
            .iter()
            .map(|(bucket, replica)| (*bucket, Arc::clone(&replica.durable)))
            .collect()
    }

    /// Asserts the invariants of every bucket changed since `before` (debug
    /// builds only): `commit ≤ last`, the promised epoch is at least the
    /// placement's, and the idempotency table holds exactly the committed
    /// decisions.
    pub fn validate(&self, before: &ReplicaStorage) {
        if !cfg!(debug_assertions) {
            return;
        }
        for (bucket, replica) in &self.buckets {
            if before
                .get(bucket)
                .is_some_and(|old| Arc::ptr_eq(old, &replica.durable))
            {
                continue;
            }
            validate_bucket(*bucket, &replica.durable);
        }
    }

    /// `validate` for the buckets a step touched (`Buckets::take_touched`).
    pub fn validate_touched(&self, touched: &std::collections::BTreeSet<Bucket>) {
        if !cfg!(debug_assertions) {
            return;
        }
        for bucket in touched {
            if let Some(replica) = self.buckets.get(bucket) {
                validate_bucket(*bucket, &replica.durable);
            }
        }
    }
}

/// The invariants of one bucket's durable state (see `validate`); panics
/// on the first broken one.
fn validate_bucket(bucket: Bucket, durable: &DurableBucket) {
    if let Some(broken) = durable.invariant_violation() {
        panic!("{bucket}: {broken}");
    }
}

impl DurableBucket {
    /// The first invariant of this durable state that does not hold, in one
    /// sentence: `commit ≤ last`, the promised epoch is at least the
    /// placement's, and the idempotency table holds exactly the committed
    /// decisions. The runtime asserts them in debug builds
    /// (`ReplicaState::validate`); the checker evaluates them in every
    /// state of every scenario, release builds included (the property
    /// `replica invariants`).
    pub fn invariant_violation(&self) -> Option<String> {
        if self.commit_position > self.log.last_position() {
            return Some(format!(
                "commit {} beyond the log's end {}",
                self.commit_position,
                self.log.last_position()
            ));
        }
        if self.promised_epoch < self.placement.epoch {
            return Some(format!(
                "promised {} older than the placement's {}",
                self.promised_epoch, self.placement.epoch
            ));
        }
        if let Some((token, recorded)) = self
            .applied
            .outcomes
            .iter()
            .find(|(_, recorded)| recorded.position > self.commit_position)
        {
            return Some(format!(
                "the idempotency table holds {token} decided at {}, beyond the commit {}",
                recorded.position, self.commit_position
            ));
        }
        for (position, entry) in self.log.iter_through(self.commit_position) {
            let Some(token) = entry.token() else {
                continue;
            };
            let recorded = self.applied.recorded(&token);
            if recorded.is_none_or(|recorded| recorded.position > position) {
                return Some(format!(
                    "committed entry {entry} at {position} is missing from the idempotency table"
                ));
            }
        }
        None
    }
}

/// The `Reply` telling the recorded outcome of `token`, if it is committed.
/// A token a query closed (`Refusal::Voided`) is told `NotDecided`.
pub(super) fn recorded_reply(bucket: Bucket, durable: &DurableBucket, token: Token) -> Option<Msg> {
    let recorded = durable.applied.recorded(&token)?;
    if recorded.outcome == Outcome::Refused(Refusal::Voided) {
        return Some(Msg::NotDecided {
            bucket,
            epoch: durable.placement.epoch,
            token,
        });
    }
    Some(Msg::Reply(Reply {
        bucket,
        epoch: durable.placement.epoch,
        position: recorded.position,
        token,
        unit: recorded.unit,
        outcome: recorded.outcome,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::Entry;
    use crate::test_support::{placement, ASYNC, LEADER, SYNC};

    /// A bucket of `committed` committed no-op entries, none folded.
    fn committed(committed: u64) -> DurableBucket {
        let mut durable = DurableBucket::empty(placement(1, LEADER, SYNC, ASYNC));
        for _ in 0..committed {
            durable.log.push(Entry::noop(Epoch::FIRST));
        }
        durable.commit_through(Position(committed));
        durable
    }

    /// Goal: a leader keeps the entries a follower still lacks, but never
    /// more than `FOLD_SLACK` × `retained` committed ones (a follower that
    /// far behind is sent a snapshot); a follower folds all but `retained`.
    /// The checker's logs are a few entries long, far inside the slack, so
    /// the bound is tested here.
    #[test]
    fn a_leader_keeps_what_followers_lack_within_the_slack() {
        // Needed from 30: within the slack (8 × 2 = 16 committed entries),
        // kept from there.
        let mut leader = committed(40);
        leader.fold_keeping(Some(2), Position(30));
        assert_eq!(leader.log.start(), Position(30));
        // Needed from 5: beyond the slack, folded through 40 − 16.
        let mut leader = committed(40);
        leader.fold_keeping(Some(2), Position(5));
        assert_eq!(leader.log.start(), Position(24));
        // A follower keeps `retained`.
        let mut follower = committed(40);
        follower.fold(Some(2));
        assert_eq!(follower.log.start(), Position(38));
        // `None`: everything stays.
        let mut whole = committed(40);
        whole.fold(None);
        assert_eq!(whole.log.start(), Position(0));
    }
}
