//! Reads at one replica: session reads, served from the committed state
//! once it reaches the caller's observed position, and the change stream's
//! pulls, answered with committed entries.

use super::{Delivery, ReplicaActor, ReplicaState};
use crate::messages::ReadReply;
use crate::messages::{Emits, Msg, ReadPath};
use crate::stream;
use crate::types::{Bucket, InventoryUnit, Position};
use crate::variant::Variant;
use stateright::actor::{Id, Out};

impl ReplicaActor {
    /// A session read (the Harbor Point notes: "read from a replica only if it
    /// has replayed the caller's observed version"): any replica of the
    /// bucket answers from its committed state if it has applied through
    /// the caller's position; otherwise it sends the caller to the leader.
    /// A leader that has not applied through it either (just promoted, its
    /// inherited entries not yet committed) says the same; the client
    /// retries.
    pub(super) fn on_read(
        &self,
        delivery: Delivery,
        state: &ReplicaState,
        unit: InventoryUnit,
        after: Position,
        o: &mut Out<impl Emits>,
    ) {
        let Delivery {
            id,
            src: client,
            bucket,
        } = delivery;
        let Some(durable) = state.buckets.get(&bucket).map(|replica| &replica.durable) else {
            o.send(
                client,
                Msg::ReadBehind {
                    bucket,
                    unit,
                    position: Position(0),
                },
            );
            return;
        };
        let position = durable.commit_position;
        // The broken variant serves whatever it has applied.
        let ignore_token = self.config.variant == Variant::IgnoreReadToken;
        if position < after && !ignore_token {
            o.send(
                client,
                Msg::ReadBehind {
                    bucket,
                    unit,
                    position,
                },
            );
            return;
        }
        let path = if durable.is_leader(id) {
            ReadPath::Leader
        } else {
            ReadPath::Follower
        };
        let status = durable.applied.units.get(&unit).cloned();
        o.send(
            client,
            Msg::ReadReply(ReadReply {
                bucket,
                unit,
                position,
                status,
                path,
            }),
        );
    }

    /// A subscriber pulls the change stream: for each bucket it names that
    /// this replica holds, the committed entries after the position given
    /// (`stream::changes_of`), in messages that fit a datagram.
    pub(super) fn on_pull(
        &self,
        id: Id,
        state: &ReplicaState,
        src: Id,
        from: Vec<(Bucket, Position)>,
        o: &mut Out<impl Emits>,
    ) {
        let mut answers = Vec::new();
        // Each bucket is answered once, however often the pull names it
        // (else a pull naming one bucket thousands of times draws
        // megabytes: amplification). The first position given for it wins:
        // a subscriber names each bucket once, so only a malformed pull has
        // duplicates, and answering the first keeps the answer what the
        // pull would get without the repeats, in the order it asked.
        let mut answered = std::collections::BTreeSet::new();
        for (bucket, after) in from {
            if !answered.insert(bucket) {
                continue;
            }
            let Some(replica) = state.buckets.get(&bucket) else {
                continue; // not a replica of it: no answer
            };
            let durable = &replica.durable;
            let leads = durable.is_leader(id) && !durable.sealed();
            answers.push(stream::changes_of(
                bucket,
                durable,
                leads,
                after,
                self.config.max_append_entries,
                self.config.variant,
            ));
        }
        // Packed into messages that fit a datagram (framing, in `stream`).
        for message in stream::in_datagrams(answers, self.config.snapshot_chunk) {
            o.send(src, message);
        }
    }
}
