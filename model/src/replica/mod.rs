//! The replica: leader, sync follower or async follower of each bucket it
//! holds.
//!
//! Write path (docs/protocol.md, "The write path and the commit rule"):
//!
//! 1. The leader rejects a request routed at another epoch with `Redirect`.
//! 2. It answers a token it already decided with the recorded outcome.
//! 3. Otherwise it appends the command at its epoch, saves it, and sends
//!    each follower the log suffix it lacks. The outcome is decided by the
//!    entry's place in the log: every replica applies committed entries in
//!    log order to the same `BucketState`, so all agree on it. A retry of a
//!    command still waiting for its quorum resends to the sync followers.
//! 4. Followers refuse appends from an epoch older than the one they
//!    promised, keep entries they already have, truncate a divergent suffix
//!    only above their committed position, save, and report the position
//!    through which they match.
//! 5. The leader commits a position once every sync follower of its epoch
//!    matches it durably, and only then replies. Async followers never hold
//!    up a commit.
//!
//! The files, one concern each: this one holds the actor and its state and
//! routes each message and timer to its handler; `durable` what a replica
//! keeps on disk per bucket; `leader` client writes and queries, appends,
//! resends and the commit rule; `follower` appends, fences and new
//! placements; `mover` cutover (move out, barrier, snapshots); `reads`
//! session reads and the change stream's pulls.

mod buckets;
mod catch_up;
mod delta;
mod durable;
mod follower;
mod leader;
mod mover;
mod reads;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_catch_up;
mod transfer;

pub use buckets::Buckets;
pub use delta::{BucketChange, BucketDelta, SavedBucket};
pub use durable::{DurableBucket, ReplicaStorage};
pub(crate) use transfer::chunk_of;
pub use transfer::{Sending, Staged};

use crate::config::ProtocolConfig;
use crate::log_lines::Tally;
use crate::messages::{Emits, FollowerLag, Msg, Timer};
use crate::placement::PlacementMap;
use crate::types::{Bucket, Position, Token};
use follower::LogSuffix;
use stateright::actor::{Id, Out};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// A replica process.
#[derive(Clone, Debug)]
pub struct ReplicaActor {
    /// The placement every replica starts from before it has saved anything.
    pub initial_map: PlacementMap,
    /// A label for people: the region the replica runs in.
    pub region: String,
    /// The controller: the only source of fences and placements.
    pub controller: Id,
    pub config: ProtocolConfig,
}

/// A client waiting for the commit of the entry that decides its token.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Waiter {
    pub position: Position,
    pub client: Id,
    pub token: Token,
}

/// What a leader keeps in memory only; lost on a crash.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct LeaderState {
    /// For each follower, the position through which it durably matches.
    pub match_positions: BTreeMap<Id, Position>,
    pub waiters: BTreeSet<Waiter>,
    /// Resends left before the leader waits for progress.
    pub retransmits_left: u8,
    /// The chunked snapshot each follower (or learner) is being sent.
    pub snapshots: BTreeMap<Id, Sending>,
}

/// One bucket at one replica.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BucketReplica {
    /// Copy-on-write: shared with the last saved storage until changed.
    pub durable: Arc<DurableBucket>,
    pub leader: LeaderState,
}

/// A replica's state: its buckets.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ReplicaState {
    pub buckets: Buckets,
    /// The followers of buckets this replica leads that are over their lag
    /// budget, as the runtime last measured them (volatile; reported to
    /// the controller with every `Alive`). The checker never measures lag.
    pub lagging: Vec<FollowerLag>,
    /// The chunks of a snapshot received so far, per bucket (volatile: a
    /// restarted receiver starts the snapshot over).
    pub staging: BTreeMap<Bucket, Staged>,
}

/// A message delivered to this replica (`id`) from `src` about `bucket`:
/// what the handlers of client and leader messages share.
#[derive(Clone, Copy, Debug)]
struct Delivery {
    id: Id,
    src: Id,
    bucket: Bucket,
}

impl LeaderState {
    fn new(config: &ProtocolConfig) -> Self {
        LeaderState {
            retransmits_left: config.leader_resends,
            ..LeaderState::default()
        }
    }
}

impl BucketReplica {
    fn new(durable: Arc<DurableBucket>, config: &ProtocolConfig) -> Self {
        BucketReplica {
            durable,
            leader: LeaderState::new(config),
        }
    }
}

impl ReplicaActor {
    pub fn on_start(
        &self,
        id: Id,
        storage: Option<&ReplicaStorage>,
        o: &mut Out<impl Emits>,
    ) -> ReplicaState {
        let durable: ReplicaStorage = match storage {
            Some(storage) => storage.clone(),
            None => self
                .initial_map
                .roles_of(id)
                .map(|(bucket, _role)| {
                    let placement = self.initial_map.buckets[bucket.0 as usize].clone();
                    (bucket, Arc::new(DurableBucket::empty(placement)))
                })
                .collect(),
        };
        let state = ReplicaState {
            buckets: durable
                .into_iter()
                .map(|(bucket, durable)| (bucket, BucketReplica::new(durable, &self.config)))
                .collect(),
            lagging: Vec::new(),
            staging: BTreeMap::new(),
        };
        for (bucket, replica) in &state.buckets {
            if replica.durable.is_leader(id) {
                self.arm_hold_expiries(*bucket, &replica.durable, o);
                if self.config.announce_commits && replica.durable.log.last_position() > Position(0)
                {
                    // A restarted leader knows nothing of its followers:
                    // ask those that hold its whole log to say so (and learn
                    // the commit), and resend to the others on its timer.
                    self.tell_commit(*bucket, replica, |_| true, o);
                    o.set_timer(
                        Timer::Replicate(*bucket),
                        self.config.timeouts.replicate.clone(),
                    );
                }
            }
        }
        if storage.is_some() {
            self.ask_to_catch_up(id, &state, o);
        }
        state
    }

    pub fn on_msg(
        &self,
        id: Id,
        state: &mut ReplicaState,
        src: Id,
        msg: Msg,
        o: &mut Out<impl Emits>,
    ) {
        match msg {
            Msg::Request {
                bucket,
                epoch,
                command,
            } => self.on_request(Delivery { id, src, bucket }, state, epoch, command, o),
            Msg::Append {
                bucket,
                epoch,
                prev_position,
                prev_epoch,
                entries,
                commit_position,
            } => {
                let suffix = LogSuffix {
                    prev_position,
                    prev_epoch,
                    entries,
                    commit_position,
                };
                self.on_append(state, src, bucket, epoch, suffix, o)
            }
            Msg::Appended {
                bucket,
                epoch,
                position,
            } => self.on_appended(Delivery { id, src, bucket }, state, epoch, position, o),
            Msg::AppendRefused { bucket, epoch } => self.on_append_refused(state, bucket, epoch),
            Msg::Fence(fences) if src == self.controller => self.on_fence(state, src, &fences, o),
            Msg::Placements(placements) if src == self.controller => {
                let count = placements.len();
                let mut leading = Tally::default();
                for (bucket, placement) in placements {
                    leading.count_if(self.on_placement(id, state, bucket, placement, o));
                }
                leading.log_if_any(|leading| {
                    tracing::info!(
                        "leading {leading} bucket(s) at a new epoch ({count} placement(s) published)"
                    )
                });
            }
            Msg::Query {
                bucket,
                epoch,
                token,
            } => self.on_query(Delivery { id, src, bucket }, state, epoch, token, o),
            Msg::MoveOut {
                bucket,
                epoch,
                destination,
            } if src == self.controller => {
                self.on_move_out(id, state, bucket, epoch, destination, o)
            }
            Msg::Snapshot(snapshot) => {
                self.on_snapshot(id, state, src, Arc::unwrap_or_clone(snapshot), o)
            }
            Msg::SnapshotReceived {
                bucket,
                epoch,
                position,
                chunks,
            } => self.on_snapshot_received(
                Delivery { id, src, bucket },
                state,
                epoch,
                position,
                chunks,
                o,
            ),
            Msg::Probe if src == self.controller => o.send(
                src,
                Msg::Alive {
                    lagging: state.lagging.clone(),
                },
            ),
            Msg::Read {
                bucket,
                unit,
                after,
            } => self.on_read(Delivery { id, src, bucket }, state, unit, after, o),
            Msg::Pull { from } => self.on_pull(id, state, src, from, o),
            Msg::MoveOut { .. }
            | Msg::Probe
            | Msg::Alive { .. }
            | Msg::MoveRefused { .. }
            | Msg::ReadReply(_)
            | Msg::ReadBehind { .. }
            | Msg::Changes(_)
            | Msg::Failover { .. }
            | Msg::MoveBucket { .. }
            | Msg::MovedOut { .. }
            | Msg::Fence(_)
            | Msg::Placements(_)
            | Msg::Fenced(_)
            | Msg::FetchPlacement { .. }
            | Msg::NotDecided { .. }
            | Msg::Reply(_)
            | Msg::Redirect { .. }
            | Msg::FetchMap
            | Msg::Map(_) => {}
        }
    }

    pub fn on_timeout(
        &self,
        id: Id,
        state: &mut ReplicaState,
        timer: &Timer,
        o: &mut Out<impl Emits>,
    ) {
        match timer {
            Timer::HoldExpiry(bucket, hold) => self.expire_hold(id, state, *bucket, *hold, o),
            Timer::AnnounceCommit(bucket) => {
                if let Some(replica) = state.buckets.get(bucket) {
                    if replica.durable.is_leader(id) {
                        self.announce_commit(*bucket, replica, o);
                    }
                }
            }
            Timer::Replicate(bucket) => self.on_replicate(id, state, *bucket, o),
            Timer::ClientRetry
            | Timer::SuspectLeader(_)
            | Timer::SuspectSyncFollower(..)
            | Timer::Probe
            | Timer::Pull => {}
        }
    }
}
