//! The bucket log: ordered entries, each stamped with the epoch of the
//! leader that appended it.
//!
//! Appends follow the rules of docs/protocol.md: an append names the position and
//! epoch of the entry before it, entries already present with the same epoch
//! are kept (they are the same entry), and a divergent suffix is truncated —
//! but never at or below the committed position, because a committed entry
//! may have been acknowledged to a client.

use crate::bucket::{BucketState, Command};
use crate::types::{Epoch, InventoryUnit, Position, Token};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// What a log entry records.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Payload {
    /// A client's business action.
    Command(Command),
    /// The first entry a leader appends at a new epoch, before anything
    /// else. It commits what the leader inherited under the leader's own
    /// epoch (an entry commits only when an entry of the current epoch
    /// does), and a follower holding it provably holds the whole prefix the
    /// leader started the epoch with: that is what makes it promotable.
    EpochStart,
    /// The leader ends the hold `hold` on `unit` (its time ran out); no
    /// effect if the hold is no longer active. Decided by the leader and
    /// fenced like any write.
    Expire { unit: InventoryUnit, hold: Token },
    /// No effect: a leader appends it to learn, through its commit quorum,
    /// that it still leads.
    Noop,
    /// A token query found nothing for this token: like `Noop` it proves,
    /// once committed, that the leader still leads and inherited nothing
    /// that decides the token; and it closes the token (`Refusal::Voided`)
    /// so that the action, should its request still arrive, never takes
    /// effect. The query is answered `NotDecided` once it commits, and that
    /// answer stays true.
    Void(Token),
    /// The final entry of a bucket's owner before it hands the bucket to
    /// another group (cutover): nothing follows it at its epoch, so once it
    /// is committed the old commit quorum can no longer commit, and the
    /// destination must hold it before it may write.
    Barrier,
}

/// One log entry.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Entry {
    /// The epoch of the leader that appended the entry.
    pub epoch: Epoch,
    /// Shared: an entry is copied into every copy of a bucket's log (a
    /// replica copies a bucket it changes while a save still holds the old
    /// one), into appends and into saved changes, and a copy must cost a
    /// pointer, not the command's strings. Comparing two copies of one
    /// entry is a pointer comparison.
    pub payload: Arc<Payload>,
}

impl Entry {
    /// An entry recording `command` at `epoch`.
    pub fn command(epoch: Epoch, command: Command) -> Self {
        Entry {
            epoch,
            payload: Arc::new(Payload::Command(command)),
        }
    }

    /// The barrier entry of `epoch`.
    pub fn barrier(epoch: Epoch) -> Self {
        Entry {
            epoch,
            payload: Arc::new(Payload::Barrier),
        }
    }

    /// The epoch-start entry of `epoch`.
    pub fn epoch_start(epoch: Epoch) -> Self {
        Entry {
            epoch,
            payload: Arc::new(Payload::EpochStart),
        }
    }

    /// A `Payload::Expire` entry of `epoch`.
    pub fn expire(epoch: Epoch, unit: InventoryUnit, hold: Token) -> Self {
        Entry {
            epoch,
            payload: Arc::new(Payload::Expire { unit, hold }),
        }
    }

    /// A `Payload::Void` entry of `epoch` closing `token`.
    pub fn void(epoch: Epoch, token: Token) -> Self {
        Entry {
            epoch,
            payload: Arc::new(Payload::Void(token)),
        }
    }

    /// A `Payload::Noop` entry of `epoch`.
    pub fn noop(epoch: Epoch) -> Self {
        Entry {
            epoch,
            payload: Arc::new(Payload::Noop),
        }
    }

    /// The business action the entry records, if it records one.
    pub fn as_command(&self) -> Option<&Command> {
        match &*self.payload {
            Payload::Command(command) => Some(command),
            Payload::EpochStart
            | Payload::Noop
            | Payload::Void(_)
            | Payload::Expire { .. }
            | Payload::Barrier => None,
        }
    }

    /// The idempotency token the entry decides, if it decides one (a
    /// command, or the void that closes a token).
    pub fn token(&self) -> Option<Token> {
        match &*self.payload {
            Payload::Void(token) => Some(*token),
            _ => self.as_command().map(|command| command.token),
        }
    }
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.payload {
            Payload::Command(command) => write!(f, "{}:{}", self.epoch, command),
            Payload::EpochStart => write!(f, "{}:epoch start", self.epoch),
            Payload::Noop => write!(f, "{}:no-op", self.epoch),
            Payload::Void(token) => write!(f, "{}:void {token}", self.epoch),
            Payload::Expire { unit, hold } => write!(f, "{}:expire {hold} on {unit}", self.epoch),
            Payload::Barrier => write!(f, "{}:barrier", self.epoch),
        }
    }
}

/// The bucket state machine knows commands; the log knows entries. Applying
/// an entry lives here, so that the state machine need not know the log.
impl BucketState {
    /// Applies the log entry at `position`: a command, or the expiry of a
    /// hold; the other payloads change no bucket state.
    pub fn apply_entry(&mut self, position: Position, entry: &Entry) {
        match &*entry.payload {
            Payload::Command(command) => {
                self.apply(position, command);
            }
            Payload::Expire { unit, hold } => self.expire(unit, *hold),
            Payload::Void(token) => self.void(position, *token),
            _ => {}
        }
    }
}

/// Why an append was not applied. The log is unchanged in every case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppendError {
    /// The entry before the appended ones is missing or from another epoch:
    /// the sender must send from an earlier position.
    PrefixMismatch,
    /// Applying the append would remove an entry at or below `committed`.
    WouldTruncateCommitted { position: Position },
}

/// A bucket log. It may start after a snapshot: then the entries through
/// `start` are not kept (they are committed, and their effect is in the
/// snapshot's bucket state), and entry `i` of `entries` is at position
/// `start + i + 1`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Log {
    /// The position the kept entries follow (0: the log is whole).
    start: Position,
    /// The epoch of the entry at `start`.
    start_epoch: Epoch,
    entries: Vec<Entry>,
}

impl Log {
    /// An empty log that continues a snapshot taken at `position`, whose
    /// entry had `epoch`.
    pub fn after_snapshot(position: Position, epoch: Epoch) -> Self {
        Log {
            start: position,
            start_epoch: epoch,
            entries: Vec::new(),
        }
    }

    /// The position the kept entries follow (0 unless the log starts after
    /// a snapshot).
    pub fn start(&self) -> Position {
        self.start
    }

    /// The position of the last entry (0 for an empty log).
    pub fn last_position(&self) -> Position {
        Position(self.start.0 + self.entries.len() as u64)
    }

    /// The entry at `position`, if the log keeps it.
    pub fn entry(&self, position: Position) -> Option<&Entry> {
        if position <= self.start {
            return None;
        }
        self.entries.get((position.0 - self.start.0) as usize - 1)
    }

    /// The epoch of the entry at `position`: `Epoch(0)` for position 0,
    /// `None` past the end or before the snapshot.
    pub fn epoch_at(&self, position: Position) -> Option<Epoch> {
        if position == self.start {
            return Some(self.start_epoch);
        }
        self.entry(position).map(|entry| entry.epoch)
    }

    /// The entries after `position`, in order (from the start of the kept
    /// entries if `position` is before it).
    pub fn entries_after(&self, position: Position) -> &[Entry] {
        let skip = (position.0.saturating_sub(self.start.0) as usize).min(self.entries.len());
        &self.entries[skip..]
    }

    /// The last kept entry, if any.
    pub fn last_entry(&self) -> Option<&Entry> {
        self.entries.last()
    }

    /// The epoch of the last entry (`Epoch(0)` for an empty log).
    pub fn last_epoch(&self) -> Epoch {
        self.entries
            .last()
            .map_or(self.start_epoch, |entry| entry.epoch)
    }

    /// Kept entries with their positions, in order.
    pub fn iter(&self) -> impl Iterator<Item = (Position, &Entry)> {
        let start = self.start.0;
        self.entries
            .iter()
            .enumerate()
            .map(move |(index, entry)| (Position(start + index as u64 + 1), entry))
    }

    /// Kept entries after `position`, with their positions.
    pub fn iter_after(&self, position: Position) -> impl Iterator<Item = (Position, &Entry)> {
        self.iter().filter(move |(at, _)| *at > position)
    }

    /// Kept entries through `position`, with their positions.
    pub fn iter_through(&self, position: Position) -> impl Iterator<Item = (Position, &Entry)> {
        self.iter().take_while(move |(at, _)| *at <= position)
    }

    /// Forgets the entries through `position` (committed, their effect in
    /// the bucket state): the log then starts after them.
    pub fn compact_through(&mut self, position: Position) {
        if position <= self.start || position > self.last_position() {
            return;
        }
        let epoch = self.epoch_at(position).expect("within the kept entries");
        self.entries.drain(..(position.0 - self.start.0) as usize);
        self.start = position;
        self.start_epoch = epoch;
    }

    /// Forgets the entries after `position` (a replay of a saved change;
    /// the protocol truncates only through `append_after`).
    pub fn truncate_after(&mut self, position: Position) {
        let keep = position.0.saturating_sub(self.start.0) as usize;
        self.entries.truncate(keep);
    }

    /// Appends a new entry at the end (the leader's path).
    pub fn push(&mut self, entry: Entry) -> Position {
        self.entries.push(entry);
        self.last_position()
    }

    /// Appends `entries` after `prev_position` (the follower's path), whose
    /// entry must carry `prev_epoch`. Returns the position through which this
    /// log now matches the sender's. Entries at or before this log's
    /// snapshot are committed here and taken as the same entries.
    pub fn append_after(
        &mut self,
        mut prev_position: Position,
        mut prev_epoch: Epoch,
        mut entries: &[Entry],
        committed: Position,
    ) -> Result<Position, AppendError> {
        let matched = Position(prev_position.0 + entries.len() as u64);
        if prev_position < self.start {
            let covered = (self.start.0 - prev_position.0) as usize;
            if covered >= entries.len() {
                return Ok(matched);
            }
            if entries[covered - 1].epoch != self.start_epoch {
                return Err(AppendError::PrefixMismatch);
            }
            prev_position = self.start;
            prev_epoch = self.start_epoch;
            entries = &entries[covered..];
        }
        if self.epoch_at(prev_position) != Some(prev_epoch) {
            return Err(AppendError::PrefixMismatch);
        }
        // Find the first entry that is not already present; check before
        // changing anything so that a refused append leaves the log intact.
        let mut first_new = entries.len();
        for (offset, entry) in entries.iter().enumerate() {
            let position = Position(prev_position.0 + 1 + offset as u64);
            match self.epoch_at(position) {
                Some(epoch) if epoch == entry.epoch => continue,
                Some(_) if position <= committed => {
                    return Err(AppendError::WouldTruncateCommitted { position });
                }
                _ => {
                    first_new = offset;
                    break;
                }
            }
        }
        if first_new < entries.len() {
            let keep = (prev_position.0 - self.start.0) as usize + first_new;
            self.entries.truncate(keep);
            self.entries.extend_from_slice(&entries[first_new..]);
        }
        Ok(matched)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bucket::Op;
    use crate::types::InventoryUnit;
    use proptest::prelude::*;

    fn entry(epoch: u64, seq: u32) -> Entry {
        Entry::command(
            Epoch(epoch),
            Command {
                token: Token { client: epoch, seq },
                op: Op::Hold {
                    unit: InventoryUnit::new("T", "C"),
                    customer: crate::Customer::new("alice"),
                },
            },
        )
    }

    /// Goal: compacting through the log's start, before it, or beyond its
    /// end changes nothing (a leader folds through what its slowest
    /// follower lacks, which may be before the start).
    #[test]
    fn compacting_outside_the_kept_entries_changes_nothing() {
        let mut log = Log::default();
        for seq in 0..4 {
            log.push(entry(1, seq));
        }
        log.compact_through(Position(2));
        let before = log.clone();
        for position in [0, 1, 2, 5] {
            log.compact_through(Position(position));
            assert_eq!(log, before, "through {position}");
        }
        log.compact_through(Position(3));
        assert_eq!(log.start(), Position(3));
    }

    #[test]
    fn divergent_uncommitted_suffix_is_replaced() {
        let mut log = Log::default();
        log.push(entry(1, 0));
        log.push(entry(1, 1));
        let replacement = [entry(2, 0)];
        let matched = log.append_after(Position(1), Epoch(1), &replacement, Position(1));
        assert_eq!(matched, Ok(Position(2)));
        assert_eq!(log.entry(Position(2)), Some(&replacement[0]));
    }

    #[test]
    fn committed_entry_is_never_truncated() {
        let mut log = Log::default();
        log.push(entry(1, 0));
        log.push(entry(1, 1));
        let before = log.clone();
        let result = log.append_after(Position(1), Epoch(1), &[entry(2, 0)], Position(2));
        assert_eq!(
            result,
            Err(AppendError::WouldTruncateCommitted {
                position: Position(2)
            })
        );
        assert_eq!(log, before);
    }

    #[test]
    fn gap_is_refused() {
        let mut log = Log::default();
        let result = log.append_after(Position(1), Epoch(1), &[entry(1, 1)], Position(0));
        assert_eq!(result, Err(AppendError::PrefixMismatch));
        assert_eq!(log.last_position(), Position(0));
    }

    /// Goal: a log that starts after a snapshot numbers its entries from
    /// the snapshot on, takes entries at or before the snapshot as the same
    /// committed entries, and refuses a sender whose entry at the snapshot
    /// has another epoch.
    #[test]
    fn log_after_snapshot_continues_its_positions() {
        let mut whole = Log::default();
        for seq in 0..4 {
            whole.push(entry(1, seq));
        }
        let mut log = Log::after_snapshot(Position(2), Epoch(1));
        assert_eq!(log.last_position(), Position(2));
        assert_eq!(log.epoch_at(Position(2)), Some(Epoch(1)));
        assert_eq!(log.epoch_at(Position(1)), None);
        assert_eq!(log.entry(Position(2)), None);
        // The sender starts from the beginning: entries 1 and 2 are covered.
        let all = whole.entries_after(Position(0));
        assert_eq!(
            log.append_after(Position(0), Epoch(0), all, Position(2)),
            Ok(Position(4))
        );
        assert_eq!(log.entry(Position(3)), whole.entry(Position(3)));
        assert_eq!(
            log.entries_after(Position(1)),
            whole.entries_after(Position(2))
        );
        assert_eq!(
            log.iter().map(|(position, _)| position).collect::<Vec<_>>(),
            [Position(3), Position(4)]
        );
        // Wholly covered by the snapshot: nothing to do.
        assert_eq!(
            log.append_after(Position(0), Epoch(0), &all[..1], Position(4)),
            Ok(Position(1))
        );
        // Another history at the snapshot position.
        let mut other = Log::after_snapshot(Position(2), Epoch(1));
        let foreign = [entry(1, 0), entry(2, 1), entry(2, 2)];
        assert_eq!(
            other.append_after(Position(0), Epoch(0), &foreign, Position(2)),
            Err(AppendError::PrefixMismatch)
        );
        assert_eq!(other, Log::after_snapshot(Position(2), Epoch(1)));
    }

    proptest! {
        /// Goal: delivering a leader's appends in any order, with duplicates,
        /// never loses or reorders what the follower already matched, and the
        /// follower ends with exactly the leader's log once the longest append
        /// arrives.
        #[test]
        fn reordered_appends_converge(order in Just((0..6usize).collect::<Vec<_>>()).prop_shuffle(),
                                      duplicates in prop::collection::vec(0..6usize, 0..4)) {
            let mut leader = Log::default();
            for seq in 0..6 {
                leader.push(entry(1, seq));
            }
            let mut follower = Log::default();
            let mut matched = Position(0);
            for length in order.iter().chain(duplicates.iter()) {
                let entries = &leader.entries_after(Position(0))[..=*length];
                let result = follower.append_after(Position(0), Epoch(0), entries, Position(0));
                let through = result.expect("same-epoch appends never conflict");
                matched = matched.max(through);
                prop_assert!(follower.last_position() >= matched);
                for (position, entry) in follower.iter() {
                    prop_assert_eq!(Some(entry), leader.entry(position));
                }
            }
            prop_assert_eq!(&follower, &leader);
        }
    }
}
