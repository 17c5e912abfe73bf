//! The change stream (CDC) and its subscriber.
//!
//! Any replica serves a bucket's *committed* entries after a position
//! (`Msg::Pull` → `Msg::Changes`): committed entries are the same at every
//! replica that has them, whoever leads now, so a subscriber resumes from
//! its last position at whichever replica owns the bucket today — after a
//! failover, at the promoted leader; after a cutover, at the destination —
//! without gaps and without duplicates. A replica whose log no longer keeps
//! the entries after that position (a destination that started from a
//! snapshot) sends its committed state at its commit position instead, and
//! the entries after it.
//!
//! `SubscriberActor` follows a set of buckets: on its pull timer it asks
//! each bucket's leader (by its cached map) for what follows its position,
//! applies what continues its stream exactly, and refreshes the map when a
//! replica says it no longer leads or nobody answered. What it keeps per
//! bucket — position and the `BucketState` there — is what the runtime's
//! projections (search, customer trips) read.

use crate::bucket::BucketState;
use crate::config::ProtocolConfig;
use crate::messages::{Changes, Emits, Msg, Timer};
use crate::placement::PlacementMap;
use crate::types::{Bucket, Position};
use crate::variant::Variant;
use stateright::actor::{Id, Out};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// A change-stream subscriber.
#[derive(Clone, Debug)]
pub struct SubscriberActor {
    pub controller: Id,
    /// The map the subscriber starts with (from its configuration).
    pub initial_map: PlacementMap,
    /// The buckets it follows.
    pub buckets: Vec<Bucket>,
    pub config: ProtocolConfig,
}

/// One followed bucket.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct BucketStream {
    /// Every committed entry through this position has been applied, each
    /// exactly once.
    pub position: Position,
    /// The bucket's committed state at `position`.
    pub state: BucketState,
    /// Whether the last answer came from the bucket's leader and left the
    /// stream at the leader's commit position (the runtime stamps the time
    /// of such answers to tell the data's age).
    pub caught_up: bool,
    /// The parts of a reset received so far (a reset in parts, see
    /// `Changes::reset_part`): its position, part count, and parts by index.
    pub staged: Option<(Position, u32, BTreeMap<u32, BucketState>)>,
}

/// A subscriber's state.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SubscriberState {
    pub map: PlacementMap,
    /// Shared (`Arc`), so that a step copies only the stream it changes:
    /// the runtime's projector follows thousands of buckets.
    pub streams: BTreeMap<Bucket, Arc<BucketStream>>,
    /// Buckets with a pull in flight.
    pub awaiting: BTreeSet<Bucket>,
    /// Pulls made (counted only where `ProtocolConfig::max_pulls` bounds
    /// them).
    pub pulls: u8,
}

impl SubscriberActor {
    pub fn on_start(&self, _id: Id, o: &mut Out<impl Emits>) -> SubscriberState {
        let mut state = SubscriberState {
            map: self.initial_map.clone(),
            streams: self
                .buckets
                .iter()
                .map(|bucket| (*bucket, Arc::new(BucketStream::default())))
                .collect(),
            awaiting: BTreeSet::new(),
            pulls: 0,
        };
        self.pull(&mut state, o);
        state
    }

    pub fn on_msg(
        &self,
        _id: Id,
        state: &mut SubscriberState,
        _src: Id,
        msg: Msg,
        o: &mut Out<impl Emits>,
    ) {
        match msg {
            Msg::Changes(batch) => {
                let mut stale_map = false;
                for changes in batch.iter() {
                    // ignore_unrelated_changes: a bucket not followed.
                    if apply(state, changes) && !changes.leads {
                        stale_map = true;
                    }
                }
                if stale_map {
                    o.send(self.controller, Msg::FetchMap);
                }
            }
            Msg::Map(map) if map.version > state.map.version => state.map = map,
            _ => {}
        }
    }

    pub fn on_timeout(
        &self,
        _id: Id,
        state: &mut SubscriberState,
        timer: &Timer,
        o: &mut Out<impl Emits>,
    ) {
        if *timer == Timer::Pull {
            if !state.awaiting.is_empty() && self.config.resend_unanswered {
                // Somebody did not answer: the leader may be down and the
                // route stale.
                o.send(self.controller, Msg::FetchMap);
            }
            self.pull(state, o);
        }
    }

    /// Sends each leader one `Pull` for the followed buckets it leads (by
    /// the cached map) that have no pull in flight — or all of them where
    /// unanswered pulls are resent — and sets the pull timer, until the
    /// pull budget (if any) is spent.
    fn pull(&self, state: &mut SubscriberState, o: &mut Out<impl Emits>) {
        if let Some(max) = self.config.max_pulls {
            if state.pulls >= max {
                return; // the checker's bound on pulls is reached
            }
        }
        let mut by_leader: BTreeMap<Id, Vec<(Bucket, Position)>> = BTreeMap::new();
        for (bucket, stream) in &state.streams {
            if state.awaiting.contains(bucket) && !self.config.resend_unanswered {
                continue;
            }
            if let Some(placement) = state.map.placement(*bucket) {
                by_leader
                    .entry(placement.leader)
                    .or_default()
                    .push((*bucket, stream.position));
            }
        }
        if !by_leader.is_empty() && self.config.max_pulls.is_some() {
            state.pulls += 1;
        }
        for (leader, from) in by_leader {
            state
                .awaiting
                .extend(from.iter().map(|(bucket, _)| *bucket));
            o.send(leader, Msg::Pull { from });
        }
        o.set_timer(Timer::Pull, self.config.timeouts.pull.clone());
    }
}

/// Applies `changes` to the subscriber's stream of its bucket: exactly the
/// entries that continue the stream, each once. Returns whether the answer
/// was for a followed bucket.
pub fn apply(state: &mut SubscriberState, changes: &Changes) -> bool {
    let Some(stream) = state.streams.get_mut(&changes.bucket) else {
        return false;
    };
    state.awaiting.remove(&changes.bucket);
    let stream = Arc::make_mut(stream);
    if let Some((position, snapshot)) = &changes.reset {
        if *position > stream.position {
            // The sender no longer keeps the entries we lack: its committed
            // state replaces ours (it contains everything we applied) —
            // once every part of it is here, if it came in parts.
            let whole = match changes.reset_part {
                None => Some(snapshot.clone()),
                Some((index, count)) => stage_part(stream, *position, index, count, snapshot),
            };
            if let Some(whole) = whole {
                stream.position = *position;
                stream.state = whole;
            }
        }
    }
    let first = changes.first_after();
    if first <= stream.position {
        for (offset, entry) in changes.entries.iter().enumerate() {
            let position = Position(first.0 + 1 + offset as u64);
            if position <= stream.position {
                continue; // already applied: no duplicates
            }
            stream.state.apply_entry(position, entry);
            stream.position = position;
        }
    }
    // An answer that starts past our position would leave a gap: skipped,
    // the next pull asks again from our position.
    stream.caught_up = changes.leads && stream.position >= changes.commit_position;
    true
}

/// Keeps part `index` of `count` of the reset at `position`, forgetting
/// parts of any other reset; returns the whole state once every part is
/// here. Until then the entries that follow the reset are skipped as a
/// gap, and the next pull brings the missing parts again.
fn stage_part(
    stream: &mut BucketStream,
    position: Position,
    index: u32,
    count: u32,
    part: &BucketState,
) -> Option<BucketState> {
    if index >= count {
        return None; // malformed: no such part
    }
    let staged = match &mut stream.staged {
        Some((at, of, parts)) if *at == position && *of == count => parts,
        _ => &mut stream.staged.insert((position, count, BTreeMap::new())).2,
    };
    staged.insert(index, part.clone());
    if staged.len() < count as usize {
        return None;
    }
    let (_, _, parts) = stream.staged.take().expect("just staged");
    Some(BucketState {
        units: parts
            .values()
            .flat_map(|part| part.units.iter())
            .map(|(unit, status)| (unit.clone(), status.clone()))
            .collect(),
        outcomes: parts
            .values()
            .flat_map(|part| part.outcomes.iter())
            .map(|(token, recorded)| (*token, recorded.clone()))
            .collect(),
    })
}

/// Splits an answer whose reset holds more than `chunk` units plus
/// outcomes into parts that each fit a message (`Changes::reset_part`);
/// any other answer, or `chunk` `None`, stays whole.
pub fn in_parts(changes: Changes, chunk: Option<usize>) -> Vec<Changes> {
    let (Some(size), Some((position, state))) = (chunk, &changes.reset) else {
        return vec![changes];
    };
    let size = size.max(1);
    let items = state.units.len() + state.outcomes.len();
    if items <= size {
        return vec![changes];
    }
    let count = items.div_ceil(size) as u32;
    (0..count)
        .map(|index| Changes {
            reset: Some((*position, crate::replica::chunk_of(state, index, size))),
            reset_part: Some((index, count)),
            entries: if index + 1 == count {
                changes.entries.clone()
            } else {
                Vec::new()
            },
            ..changes.clone()
        })
        .collect()
}

/// What a replica answers to a pull of `bucket` after `after`: its
/// committed entries after it (at most `limit`), or its committed state
/// and the entries after that if its log no longer keeps them.
pub fn changes_of(
    bucket: Bucket,
    durable: &crate::replica::DurableBucket,
    leads: bool,
    after: Position,
    limit: Option<usize>,
    variant: Variant,
) -> Changes {
    let committed = durable.commit_position;
    let through = if variant == Variant::StreamUncommitted {
        // The broken stream: whatever the log holds, committed or not.
        durable.log.last_position()
    } else {
        committed
    };
    let (reset, first) = if after < durable.log.start() {
        (Some((committed, durable.applied.clone())), committed)
    } else {
        (None, after.min(through))
    };
    let entries: Vec<_> = durable
        .log
        .iter_after(first)
        .take_while(|(position, _)| *position <= through)
        .take(limit.unwrap_or(usize::MAX))
        .map(|(_, entry)| entry.clone())
        .collect();
    Changes {
        bucket,
        epoch: durable.placement.epoch,
        leads,
        after,
        reset,
        reset_part: None,
        entries,
        commit_position: through,
    }
}

/// At most this many buckets' answers in one `Changes` message...
pub const BATCH_BUCKETS: usize = 64;
/// ...and at most about this many entries, so that it fits a datagram.
pub const BATCH_ENTRIES: usize = 128;

/// Packs the answers to one pull into messages that fit a datagram. A
/// reset split in parts (`in_parts`, with `chunk`) goes alone, one part a
/// message, so that one large bucket does not hold up the answers about
/// the others; the other answers go together, at most `BATCH_BUCKETS`
/// buckets and about `BATCH_ENTRIES` entries a message. Framing only: the
/// subscriber applies each answer on its own, whatever message carries
/// it, so no decision of the protocol depends on how they are packed.
pub fn in_datagrams(answers: Vec<Changes>, chunk: Option<usize>) -> Vec<Msg> {
    let mut messages = Vec::new();
    let mut batch = Vec::new();
    let mut entries = 0;
    for changes in answers {
        if changes.reset.is_some() && chunk.is_some() {
            messages.extend(
                in_parts(changes, chunk)
                    .into_iter()
                    .map(|part| changes_msg(vec![part])),
            );
            continue;
        }
        entries += changes.entries.len();
        batch.push(changes);
        if batch.len() >= BATCH_BUCKETS || entries >= BATCH_ENTRIES {
            messages.push(changes_msg(std::mem::take(&mut batch)));
            entries = 0;
        }
    }
    if !batch.is_empty() {
        messages.push(changes_msg(batch));
    }
    messages
}

/// Shares answers to a pull as one message.
pub fn changes_msg(batch: Vec<Changes>) -> Msg {
    Msg::Changes(Arc::new(batch))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actor::BerthActor;
    use crate::bucket::{Command, Op, UnitStatus};
    use crate::log::Entry;
    use crate::placement::BucketPlacement;
    use crate::replica::DurableBucket;
    use crate::test_support::placement;
    use crate::types::{Customer, Epoch, InventoryUnit, Token};
    use proptest::prelude::*;

    fn hold(seq: u32) -> Entry {
        Entry::command(
            Epoch(1),
            Command {
                token: Token { client: 4, seq },
                op: Op::Hold {
                    unit: InventoryUnit::new("BCN-JFK-2026-07-14", format!("C{seq}")),
                    customer: Customer::new("alice"),
                },
            },
        )
    }

    fn subscriber() -> SubscriberState {
        SubscriberState {
            map: PlacementMap::uniform(1, placement(1, 1, 2, 3)),
            streams: [(Bucket(0), Arc::new(BucketStream::default()))].into(),
            awaiting: BTreeSet::new(),
            pulls: 0,
        }
    }

    /// A replica's copy of bucket 0 with `count` committed holds.
    fn committed(count: u32, placement: BucketPlacement) -> DurableBucket {
        let mut durable = DurableBucket::empty(placement);
        for seq in 0..count {
            let position = durable.log.push(hold(seq));
            durable.applied.apply_entry(position, &hold(seq));
            durable.commit_position = position;
        }
        durable
    }

    proptest! {
        /// Goal: whatever the order, duplication and chunking of answers —
        /// from the old leader, the promoted one, or a destination that
        /// started from a snapshot, whose reset may come in parts, some
        /// lost or reordered — the subscriber ends at the same state as a
        /// replica that applied every committed entry once.
        #[test]
        fn streams_have_no_gaps_or_duplicates(
            answers in prop::collection::vec((0u64..8, 0usize..3, 1usize..4, any::<bool>(), 0usize..4, any::<u8>()), 1..30),
        ) {
            let full = committed(6, placement(1, 1, 2, 3));
            let mut snapshotted = full.clone();
            snapshotted.log = crate::log::Log::after_snapshot(Position(3), Epoch(1));
            for position in 4..=6 {
                snapshotted.log.push(full.log.entry(Position(position)).unwrap().clone());
            }
            let senders = [&full, &snapshotted];
            let mut state = subscriber();
            for (after, sender, limit, leads, chunk, shuffle) in answers {
                let changes = changes_of(
                    Bucket(0),
                    senders[sender % 2],
                    leads,
                    Position(after.min(6)),
                    Some(limit),
                    Variant::Correct,
                );
                let mut parts = in_parts(changes, (chunk > 0).then_some(chunk));
                if shuffle & 1 == 1 {
                    parts.reverse();
                }
                if shuffle & 2 == 2 && parts.len() > 1 {
                    parts.remove(usize::from(shuffle >> 2) % parts.len());
                }
                for part in &parts {
                    apply(&mut state, part);
                }
            }
            // Then the subscriber catches up by pulling from its position.
            for _ in 0..10 {
                let position = state.streams[&Bucket(0)].position;
                apply(&mut state, &changes_of(Bucket(0), &full, true, position, Some(2), Variant::Correct));
            }
            let stream = &state.streams[&Bucket(0)];
            prop_assert_eq!(stream.position, Position(6));
            prop_assert_eq!(&stream.state, &full.applied);
            prop_assert!(stream.caught_up);
        }
    }

    /// Goal: a reset in parts is installed only once every part is there,
    /// and then equals the sender's committed state; until then the
    /// stream stays where it was.
    #[test]
    fn a_reset_in_parts_installs_only_when_complete() {
        let full = committed(6, placement(1, 1, 2, 3));
        let mut snapshotted = full.clone();
        snapshotted.log = crate::log::Log::after_snapshot(Position(6), Epoch(1));
        let changes = changes_of(
            Bucket(0),
            &snapshotted,
            true,
            Position(0),
            None,
            Variant::Correct,
        );
        let parts = in_parts(changes, Some(5));
        assert_eq!(parts.len(), 3, "12 units and outcomes in parts of 5");
        let mut state = subscriber();
        for part in &parts[..2] {
            apply(&mut state, part);
            assert_eq!(state.streams[&Bucket(0)].position, Position(0));
        }
        apply(&mut state, &parts[2]);
        let stream = &state.streams[&Bucket(0)];
        assert_eq!(stream.position, Position(6));
        assert_eq!(stream.state, full.applied);
        assert!(stream.staged.is_none());
    }

    /// Goal: the answers to one pull fit datagrams: at most
    /// `BATCH_BUCKETS` buckets or about `BATCH_ENTRIES` entries a message,
    /// in the order asked, and a reset in parts goes alone, one part a
    /// message, without holding up the others.
    #[test]
    fn answers_are_packed_into_datagrams() {
        let sizes = |messages: &[Msg]| -> Vec<usize> {
            messages
                .iter()
                .map(|message| match message {
                    Msg::Changes(batch) => batch.len(),
                    other => panic!("not an answer: {other:?}"),
                })
                .collect()
        };
        let empty = committed(0, placement(1, 1, 2, 3));
        let answer = |bucket: u32, durable: &DurableBucket| {
            changes_of(
                Bucket(bucket),
                durable,
                true,
                Position(0),
                None,
                Variant::Correct,
            )
        };
        let quiet: Vec<Changes> = (0..150).map(|bucket| answer(bucket, &empty)).collect();
        let messages = in_datagrams(quiet, None);
        assert_eq!(sizes(&messages), vec![64, 64, 22]);
        let Msg::Changes(last) = &messages[2] else {
            unreachable!()
        };
        assert_eq!(last[0].bucket, Bucket(128), "in the order asked");
        // 50 entries each: the third fills the entry budget.
        let busy = committed(50, placement(1, 1, 2, 3));
        let full: Vec<Changes> = (0..4).map(|bucket| answer(bucket, &busy)).collect();
        assert_eq!(sizes(&in_datagrams(full, None)), vec![3, 1]);
        // A reset in 3 parts between two quiet buckets: 3 messages alone.
        let mut snapshotted = committed(6, placement(1, 1, 2, 3));
        snapshotted.log = crate::log::Log::after_snapshot(Position(6), Epoch(1));
        let mixed = vec![
            answer(0, &empty),
            answer(1, &snapshotted),
            answer(2, &empty),
        ];
        assert_eq!(
            sizes(&in_datagrams(mixed.clone(), Some(5))),
            vec![1, 1, 1, 2]
        );
        assert_eq!(
            sizes(&in_datagrams(mixed, None)),
            vec![3],
            "unchunked: together"
        );
    }

    /// Goal: a subscriber keeps what it has and asks the controller for a
    /// new map when the replica it pulled from no longer leads; it then
    /// pulls from the new leader, from where it stopped.
    #[test]
    fn subscriber_follows_the_new_leader_from_its_position() {
        let actor = BerthActor::Subscriber(SubscriberActor {
            controller: Id::from(0),
            initial_map: PlacementMap::uniform(1, placement(1, 1, 2, 3)),
            buckets: vec![Bucket(0)],
            config: ProtocolConfig::default(),
        });
        let mut state = crate::test_support::start(&actor, 9);
        let old = committed(2, placement(1, 1, 2, 3));
        let answer = changes_msg(vec![changes_of(
            Bucket(0),
            &old,
            false,
            Position(0),
            None,
            Variant::Correct,
        )]);
        let commands = crate::test_support::deliver(&actor, &mut state, 9, 1, answer);
        assert_eq!(
            crate::test_support::sent(&commands),
            [&Msg::FetchMap],
            "a replica that does not lead sends the subscriber to the map"
        );
        let mut map = PlacementMap::uniform(1, placement(2, 2, 1, 3));
        map.version = 2;
        crate::test_support::deliver(&actor, &mut state, 9, 0, Msg::Map(map));
        let commands = crate::test_support::fire(&actor, &mut state, 9, Timer::Pull);
        assert!(
            commands.iter().any(|command| matches!(
                command,
                stateright::actor::Command::Send(to, Msg::Pull { from })
                    if usize::from(*to) == 2 && from == &vec![(Bucket(0), Position(2))]
            )),
            "{commands:?}"
        );
        let crate::actor::NodeState::Subscriber(subscriber) = &state else {
            unreachable!()
        };
        let stream = &subscriber.streams[&Bucket(0)];
        assert!(matches!(
            stream.state.units.values().next(),
            Some(UnitStatus::Held { .. })
        ));
    }
}
