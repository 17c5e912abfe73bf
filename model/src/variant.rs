//! Broken designs the Harbor Point notes warn against (docs/protocol.md), as small switches in the real
//! protocol code. `Variant::Correct` is the design berth ships; every other
//! variant is a deliberate bug that the checker must refute (the
//! checker's `properties::expected_violations` names the properties that
//! refute each).

use serde::{Deserialize, Serialize};
use std::fmt;

/// Which design the actors follow.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Variant {
    /// The protocol berth ships (docs/protocol.md).
    #[default]
    Correct,
    /// The leader acknowledges a write before its sync follower made it
    /// durable. The Harbor Point notes: "The leader commits only after a
    /// same-region follower acknowledges the write" — this variant does not.
    AsyncAck,
    /// Failover promotes the remote async follower, which may lag behind
    /// the commit position. The Harbor Point notes: "promote only a replica that
    /// holds the durable replayed prefix"; "promote only from the
    /// set whose acks were counted" — this variant does not.
    PromoteLagging,
    /// Routing switches to the destination of a move before it applied
    /// through the source's barrier. The Harbor Point notes on moving state: "being
    /// caught up is necessary but not sufficient ... It makes sure
    /// timeline-12 applies that entry. Then the controller commits a new
    /// map" — this variant commits the map first.
    EarlySwitch,
    /// Replicas accept writes and appends whatever epoch they carry: a
    /// follower takes appends from any epoch, and a leader takes writes
    /// routed at any epoch, even after it sealed its epoch with a barrier.
    /// The Harbor Point notes: "Storage and replicas reject a write that claims the old
    /// epoch after the handoff" — these do not.
    UncheckedEpoch,
    /// The leader treats every request as a new action: it neither answers
    /// a decided token from the idempotency table nor waits on its pending
    /// entry, so a retry (or a duplicated datagram) is logged again. The
    /// Harbor Point notes: "the idempotency token ... is part of the storage
    /// contract"; a known failure: "retries that re-apply (TiDB auto-retry)".
    NoIdempotency,
    /// Failover publishes the sync follower as the new owner without
    /// fencing the old commit quorum first, so nobody checks that it holds
    /// the durable prefix. The Harbor Point notes, "Failover Uses The Same Authority
    /// Discipline": "checks which replicas have an acceptable state
    /// position ... and advances the ownership epoch" — this variant skips
    /// the check.
    NoFencing,
    /// Both regions accept writes: the remote region's replica of a bucket
    /// decides and confirms its own region's bookings on its own copy and
    /// merges them into the leader's log after the fact. The Harbor Point notes: Harbor
    /// Point "does not use multi-leader replication for the authoritative
    /// inventory path because "merge after conflict" is not a real answer
    /// once two agents believe cabin C14 is theirs".
    MultiLeader,
    /// A follower serves a session read from whatever it has applied,
    /// ignoring the caller's observed position. The Harbor Point notes: hold
    /// reads "read from a replica only if it has replayed the caller's
    /// observed version"; "the agent cannot safely see hold expiry move
    /// backward in the same session" — this variant lets it.
    IgnoreReadToken,
    /// The change stream serves a bucket's log as far as the replica has
    /// it, committed or not. The Harbor Point notes: search and itinerary views "are fed
    /// from change streams" of the leader's log — a derived view that
    /// shows a write the failover later discards is a lie the booking path
    /// never told.
    StreamUncommitted,
    /// A leader's resends, once spent, are never re-armed: a sign that a
    /// follower is behind (its recovery report, its answer to an append it
    /// cannot place) goes unanswered, and no heartbeat follows. The Harbor
    /// Point notes expect the remote replica to trail "within a lag
    /// budget"; a follower that lost its appends while the bucket is idle
    /// would trail forever.
    ResendsRunOut,
}

impl Variant {
    /// Every variant, the correct design first.
    pub const ALL: [Variant; 11] = [
        Variant::Correct,
        Variant::AsyncAck,
        Variant::PromoteLagging,
        Variant::EarlySwitch,
        Variant::UncheckedEpoch,
        Variant::NoIdempotency,
        Variant::NoFencing,
        Variant::MultiLeader,
        Variant::IgnoreReadToken,
        Variant::StreamUncommitted,
        Variant::ResendsRunOut,
    ];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Correct => "correct",
            Variant::AsyncAck => "async-ack",
            Variant::PromoteLagging => "promote-lagging",
            Variant::EarlySwitch => "early-switch",
            Variant::UncheckedEpoch => "unchecked-epoch",
            Variant::NoIdempotency => "no-idempotency",
            Variant::NoFencing => "no-fencing",
            Variant::MultiLeader => "multi-leader",
            Variant::IgnoreReadToken => "ignore-read-token",
            Variant::StreamUncommitted => "stream-uncommitted",
            Variant::ResendsRunOut => "resends-run-out",
        }
    }

    /// The design the variant stands for, in one line.
    pub fn design(self) -> &'static str {
        match self {
            Variant::Correct => "commit after every sync follower is durable; epochs fence",
            Variant::AsyncAck => "leader acknowledges before the sync follower is durable",
            Variant::PromoteLagging => "failover promotes the remote async follower",
            Variant::EarlySwitch => {
                "routing switches before the destination applied through the barrier"
            }
            Variant::UncheckedEpoch => {
                "replicas accept writes and appends whatever epoch they carry"
            }
            Variant::NoIdempotency => "retries after a timeout are new actions",
            Variant::NoFencing => "new owner published without fencing the old commit quorum",
            Variant::MultiLeader => "both regions accept writes, merged after the fact",
            Variant::IgnoreReadToken => {
                "a follower serves reads whatever position the caller observed"
            }
            Variant::StreamUncommitted => "the change stream serves entries before they commit",
            Variant::ResendsRunOut => "a leader's spent resends are never re-armed",
        }
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Variant {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Variant::ALL
            .into_iter()
            .find(|variant| variant.name() == text)
            .ok_or_else(|| {
                let names: Vec<_> = Variant::ALL.iter().map(|v| v.name()).collect();
                format!(
                    "unknown variant {text:?}; expected one of: {}",
                    names.join(", ")
                )
            })
    }
}
