//! Per-bucket write rates: how many client commands committed in each
//! bucket while this replica led it, over the last `WINDOW`.
//!
//! A measurement for `berth status --hot` and `berth rebalance`; it
//! decides nothing. The runtime watches the one bucket a `Request` or an
//! `Appended` names (the only messages on which a leader appends a client
//! command or commits one): it notes the bucket's commit position before
//! the step and, if the replica leads the bucket afterwards and the commit
//! advanced, counts the `Payload::Command` entries that became committed.
//! Counts go into one-second slots holding only the buckets written in
//! that second, so a step costs two map lookups and the entries it
//! committed, and the thousands of idle buckets cost nothing.

use berth_model::{Bucket, Msg, NodeState, Position};
use stateright::actor::Id;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

/// One slot of the sliding window.
const SLOT: Duration = Duration::from_secs(1);
/// The slots a rate is measured over.
const SLOTS: u64 = 10;
/// The span a rate is measured over: the last `SLOTS` whole seconds (the
/// second under way is not yet counted).
pub const WINDOW: Duration = Duration::from_secs(SLOTS);

/// Committed client commands per bucket, in one-second slots.
#[derive(Debug)]
pub struct WriteRates {
    started: Instant,
    /// (slot number since `started`, commands committed per bucket in it),
    /// oldest first; at most the current slot and the `SLOTS` before it.
    slots: VecDeque<(u64, HashMap<Bucket, u32>)>,
}

impl WriteRates {
    /// An empty measurement whose first slot starts at `now`.
    pub fn new(now: Instant) -> Self {
        WriteRates {
            started: now,
            slots: VecDeque::new(),
        }
    }

    fn slot_at(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.started).as_secs() / SLOT.as_secs()
    }

    /// Records `count` commands committed in `bucket` at `at`.
    pub fn record(&mut self, bucket: Bucket, count: u32, at: Instant) {
        let slot = self.slot_at(at);
        if self.slots.back().is_none_or(|(last, _)| *last != slot) {
            while self
                .slots
                .front()
                .is_some_and(|(first, _)| first + SLOTS < slot)
            {
                self.slots.pop_front();
            }
            self.slots.push_back((slot, HashMap::new()));
        }
        let (_, counts) = self.slots.back_mut().expect("just pushed");
        *counts.entry(bucket).or_insert(0) += count;
    }

    /// The commands committed per bucket over the `WINDOW` before `now`'s
    /// slot (only buckets with any).
    pub fn recent(&self, now: Instant) -> BTreeMap<Bucket, u32> {
        let current = self.slot_at(now);
        let mut totals = BTreeMap::new();
        for (slot, counts) in &self.slots {
            if *slot < current && slot + SLOTS >= current {
                for (bucket, count) in counts {
                    *totals.entry(*bucket).or_insert(0) += count;
                }
            }
        }
        totals
    }
}

/// The bucket whose client commands a step on `msg` may append or commit
/// at its leader, if any.
pub fn watched_bucket(msg: &Msg) -> Option<Bucket> {
    match msg {
        Msg::Request { bucket, .. } | Msg::Appended { bucket, .. } => Some(*bucket),
        _ => None,
    }
}

/// `bucket`'s commit position at the replica in `state`, if it holds the
/// bucket.
pub fn commit_of(state: &NodeState, bucket: Bucket) -> Option<Position> {
    let replica = state.as_replica()?;
    Some(replica.buckets.get(&bucket)?.durable.commit_position)
}

/// How many client commands in `bucket` became committed after `before`,
/// if `id` leads the bucket in `state` (0 otherwise).
pub fn committed_commands(state: &NodeState, id: Id, bucket: Bucket, before: Position) -> u32 {
    let Some(durable) = state
        .as_replica()
        .and_then(|replica| replica.buckets.get(&bucket))
        .map(|bucket_replica| &bucket_replica.durable)
    else {
        return 0;
    };
    let after = durable.commit_position;
    if after <= before || !durable.is_leader(id) {
        return 0;
    }
    // The entries in (before, after]: a slice, not a scan of the log.
    let from = before.max(durable.log.start());
    durable
        .log
        .entries_after(from)
        .iter()
        .take((after.0 - from.0) as usize)
        .filter(|entry| entry.as_command().is_some())
        .count() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: counts land in their second, the window is the last ten whole
    /// seconds, and older slots fall out.
    #[test]
    fn the_window_slides() {
        let start = Instant::now();
        let at = |secs: f64| start + Duration::from_secs_f64(secs);
        let mut rates = WriteRates::new(start);
        rates.record(Bucket(7), 2, at(0.1));
        rates.record(Bucket(7), 1, at(0.9));
        rates.record(Bucket(3), 5, at(1.5));
        // The second under way is not counted yet.
        assert!(rates.recent(at(0.95)).is_empty());
        assert_eq!(rates.recent(at(1.6)), BTreeMap::from([(Bucket(7), 3)]));
        assert_eq!(
            rates.recent(at(10.5)),
            BTreeMap::from([(Bucket(7), 3), (Bucket(3), 5)])
        );
        // Slot 0 leaves the window at 11 s, slot 1 at 12 s.
        assert_eq!(rates.recent(at(11.0)), BTreeMap::from([(Bucket(3), 5)]));
        assert!(rates.recent(at(12.0)).is_empty());
        // Recording long after drops what is out of the window.
        rates.record(Bucket(1), 1, at(30.2));
        assert_eq!(rates.slots.len(), 1);
        assert_eq!(rates.recent(at(31.0)), BTreeMap::from([(Bucket(1), 1)]));
    }
}
