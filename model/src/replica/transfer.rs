//! Snapshots in chunks (`ProtocolConfig::snapshot_chunk`; docs/protocol.md,
//! "Catching up"). A bucket's committed state can outgrow any one message,
//! so a leader that must send a snapshot (to a destination of a move, or to
//! a follower behind its log's start) pins its committed state once and
//! sends it chunk by chunk, each holding at most `snapshot_chunk` units
//! plus outcomes. The receiver stages the chunks in order (volatile) and
//! answers `SnapshotReceived` with how many it holds; only the last chunk,
//! which carries the entries that follow, installs the snapshot, through
//! the same code as a whole one. A lost chunk or answer is resent on the
//! leader's timer (or any sign the receiver is behind); a receiver that
//! restarted answers `0` and the leader starts again from the first chunk.

use super::{BucketReplica, Delivery, ReplicaActor, ReplicaState};
use crate::bucket::BucketState;
use crate::log::Entry;
use crate::messages::{Chunk, Emits, Msg, Snapshot};
use crate::placement::BucketPlacement;
use crate::types::{Bucket, Epoch, Position};
use stateright::actor::{Id, Out};
use std::sync::Arc;

/// A leader's snapshot for one receiver: the committed state it pinned
/// at `position`, and how many chunks the receiver acknowledged.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Sending {
    pub position: Position,
    pub position_epoch: Epoch,
    pub state: BucketState,
    pub acked: u32,
    pub count: u32,
}

/// A receiver's chunks of one snapshot so far. A snapshot is known by its
/// epoch and position: an epoch has one placement, so one leader, which
/// sends the bucket's committed state at `position`, the same every time
/// (the entry there, and how the state falls into chunks, with it).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Staged {
    pub epoch: Epoch,
    pub placement: BucketPlacement,
    pub position: Position,
    pub position_epoch: Epoch,
    pub count: u32,
    /// The units and outcomes of the chunks before `next`.
    pub state: BucketState,
    pub next: u32,
}

/// Chunk `index` of `state` in chunks of `size` units plus outcomes (the
/// units first, then the outcomes, each in key order).
pub(crate) fn chunk_of(state: &BucketState, index: u32, size: usize) -> BucketState {
    let start = index as usize * size;
    let units: crate::chunked::ChunkedMap<_, _> = state
        .units
        .iter()
        .skip(start)
        .take(size)
        .map(|(unit, status)| (unit.clone(), status.clone()))
        .collect();
    let outcomes = state
        .outcomes
        .iter()
        .skip(start.saturating_sub(state.units.len()))
        .take(size - units.len())
        .map(|(token, recorded)| (*token, recorded.clone()))
        .collect();
    BucketState { units, outcomes }
}

impl ReplicaActor {
    /// At most `max_append_entries` of `entries`.
    pub(super) fn limited(&self, entries: &[Entry]) -> Vec<Entry> {
        let count = self
            .config
            .max_append_entries
            .map_or(entries.len(), |limit| limit.min(entries.len()));
        entries[..count].to_vec()
    }

    /// The snapshot `follower` needs: the whole committed state and the
    /// entries after it, or with `snapshot_chunk` the next chunk of the
    /// state pinned for it (pinned now if none is).
    pub(super) fn snapshot_for(
        &self,
        bucket: Bucket,
        replica: &mut BucketReplica,
        follower: Id,
    ) -> Msg {
        let durable = &replica.durable;
        let epoch = durable.placement.epoch;
        let commit = durable.commit_position;
        let commit_epoch = || {
            durable
                .log
                .epoch_at(commit)
                .expect("the commit position is in the log or its snapshot")
        };
        let Some(size) = self.config.snapshot_chunk else {
            return Msg::Snapshot(Arc::new(Snapshot {
                bucket,
                epoch,
                placement: durable.placement.clone(),
                position: commit,
                position_epoch: commit_epoch(),
                state: durable.applied.clone(),
                entries: self.limited(durable.log.entries_after(commit)),
                commit_position: commit,
                chunk: None,
            }));
        };
        let size = size.max(1);
        let sending = replica.leader.snapshots.entry(follower).or_insert_with(|| {
            let items = durable.applied.units.len() + durable.applied.outcomes.len();
            Sending {
                position: commit,
                position_epoch: commit_epoch(),
                state: durable.applied.clone(),
                acked: 0,
                count: items.div_ceil(size).max(1) as u32,
            }
        });
        // Below `count`: a receiver reports the chunks it holds of a
        // snapshot it has not completed (`stage`), never all of them.
        let index = sending.acked;
        let last = index + 1 == sending.count;
        let entries = if last && sending.position >= durable.log.start() {
            self.limited(durable.log.entries_after(sending.position))
        } else {
            Vec::new()
        };
        Msg::Snapshot(Arc::new(Snapshot {
            bucket,
            epoch,
            placement: durable.placement.clone(),
            position: sending.position,
            position_epoch: sending.position_epoch,
            state: chunk_of(&sending.state, index, size),
            entries,
            commit_position: sending.position,
            chunk: Some(Chunk {
                index,
                count: sending.count,
            }),
        }))
    }

    /// A receiver holds the first `chunks` chunks of the snapshot this
    /// leader pinned for it at `position`: send the next (or, with nothing
    /// pinned for it, what it lacks).
    pub(super) fn on_snapshot_received(
        &self,
        delivery: Delivery,
        state: &mut ReplicaState,
        epoch: Epoch,
        position: Position,
        chunks: u32,
        o: &mut Out<impl Emits>,
    ) {
        let Delivery { id, src, bucket } = delivery;
        let Some(replica) = state.buckets.get_mut(&bucket) else {
            return;
        };
        if !replica.durable.is_leader(id) || epoch != replica.durable.placement.epoch {
            return;
        }
        if let Some(sending) = replica.leader.snapshots.get_mut(&src) {
            if sending.position != position {
                return;
            }
            sending.acked = chunks;
            replica.leader.retransmits_left = self.config.leader_resends;
        }
        // With no snapshot pinned for it, the receiver installed it already
        // and has since dropped a later copy of its last chunk, with the
        // entries that copy carried (it holds no staging for it), or this
        // leader restarted: either way, send what the receiver lacks.
        // Without this only a resend repaired the drop, and a move whose
        // last chunk went out twice stalled where there are none.
        let learners = replica.durable.learners();
        if let Some(next) = self.append_for(bucket, replica, src, &learners) {
            o.send(src, next);
        }
    }

    /// Stages a chunk of a snapshot from `src` (already admitted): returns
    /// the whole snapshot once its last chunk arrived in order, else tells
    /// the sender how many chunks are held. A whole snapshot passes as is.
    pub(super) fn stage(
        &self,
        state: &mut ReplicaState,
        src: Id,
        snapshot: Snapshot,
        o: &mut Out<impl Emits>,
    ) -> Option<Snapshot> {
        let Some(chunk) = snapshot.chunk else {
            return Some(snapshot);
        };
        let bucket = snapshot.bucket;
        // The same snapshot (`Staged`): its sender, placement, chunk count
        // and the entry at its position follow from these two, since
        // `admit_snapshot` takes a snapshot only from the leader of the
        // placement it names.
        let same = |staged: &Staged| {
            staged.epoch == snapshot.epoch && staged.position == snapshot.position
        };
        let answer = |chunks: u32, o: &mut Out<_>| {
            o.send(
                src,
                Msg::SnapshotReceived {
                    bucket,
                    epoch: snapshot.epoch,
                    position: snapshot.position,
                    chunks,
                },
            )
        };
        match state.staging.get(&bucket) {
            Some(staged) if same(staged) => {
                if chunk.index != staged.next {
                    answer(staged.next, o);
                    return None;
                }
            }
            _ if chunk.index != 0 => {
                answer(0, o);
                return None;
            }
            _ => {
                state.staging.insert(
                    bucket,
                    Staged {
                        epoch: snapshot.epoch,
                        placement: snapshot.placement.clone(),
                        position: snapshot.position,
                        position_epoch: snapshot.position_epoch,
                        count: chunk.count,
                        state: BucketState::default(),
                        next: 0,
                    },
                );
            }
        }
        let staged = state.staging.get_mut(&bucket).expect("staged above");
        let Snapshot {
            state: part,
            entries,
            commit_position,
            ..
        } = snapshot;
        for (unit, status) in part.units.iter() {
            staged.state.units.insert(unit.clone(), status.clone());
        }
        for (token, recorded) in part.outcomes.iter() {
            staged.state.outcomes.insert(*token, recorded.clone());
        }
        staged.next += 1;
        if staged.next < staged.count {
            answer(staged.next, o);
            return None;
        }
        let staged = state.staging.remove(&bucket).expect("staged above");
        Some(Snapshot {
            bucket,
            epoch: staged.epoch,
            placement: staged.placement,
            position: staged.position,
            position_epoch: staged.position_epoch,
            state: staged.state,
            entries,
            commit_position,
            chunk: None,
        })
    }
}
