//! The replica: leader, sync follower or async follower of each bucket it
//! holds.
//!
//! Write path (seed 000, Part 2; DESIGN.md "The protocol contract"):
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

use crate::bucket::{BucketState, Command};
use crate::config::ProtocolConfig;
use crate::log::{Entry, Log, Payload};
use crate::messages::{Emits, FollowerLag, Msg, ReadPath, Snapshot, Timer};
use crate::placement::{BucketPlacement, PlacementMap};
use crate::stream;
use crate::types::{Bucket, Epoch, InventoryUnit, Position, Token};
use crate::variant::Variant;
use serde::{Deserialize, Serialize};
use stateright::actor::{Id, Out};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Which followers an append goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FollowerSet {
    All,
    /// Only the commit quorum.
    Sync,
}

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

/// What a replica keeps on disk for one bucket.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
}

/// A replica's durable state: its buckets. Shared (`Arc`), so that taking
/// a replica's storage or comparing it after a step costs one pointer per
/// bucket, and a step copies only the bucket it changes.
pub type ReplicaStorage = BTreeMap<Bucket, Arc<DurableBucket>>;

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
    pub buckets: BTreeMap<Bucket, BucketReplica>,
    /// The followers of buckets this replica leads that are over their lag
    /// budget, as the runtime last measured them (volatile; reported to
    /// the controller with every `Alive`). The checker never measures lag.
    pub lagging: Vec<FollowerLag>,
}

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

    /// Whether this replica durably holds the entry deciding `token` at
    /// `position`: in its log, or compacted into its snapshot.
    pub fn holds(&self, position: Position, token: Token) -> bool {
        match self.log.entry(position) {
            Some(entry) => entry.token() == Some(token),
            None => {
                position <= self.log.start()
                    && self
                        .applied
                        .recorded(&token)
                        .is_some_and(|recorded| recorded.position == position)
            }
        }
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
    fn commit_through(&mut self, position: Position) {
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

    /// A fresh replica of a bucket placed at `placement`: empty log.
    pub fn empty(placement: BucketPlacement) -> Self {
        DurableBucket {
            promised_epoch: placement.epoch,
            placement,
            log: Log::default(),
            commit_position: Position(0),
            applied: BucketState::default(),
            moving_to: None,
        }
    }

    /// Whether the bucket is sealed at this replica's epoch: its log ends
    /// with a barrier of the current epoch, after which nothing may be
    /// appended at that epoch.
    pub fn sealed(&self) -> bool {
        self.log.last_entry().is_some_and(|entry| {
            entry.payload == Payload::Barrier && entry.epoch == self.placement.epoch
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

    /// Whether everything this replica's log inherited from earlier epochs
    /// is committed: its commit position reached an entry of the current
    /// epoch (the epoch-start entry at the latest), or the bucket is at its
    /// first epoch. Only then does the committed state hold every outcome
    /// that was ever acknowledged.
    pub fn inherited_committed(&self) -> bool {
        self.placement.epoch == Epoch::FIRST
            || self.log.epoch_at(self.commit_position) == Some(self.placement.epoch)
    }

    /// Whether `replica` leads this bucket now: it is the placement's leader
    /// and has promised no newer epoch.
    pub fn is_leader(&self, replica: Id) -> bool {
        self.placement.leader == replica && self.promised_epoch == self.placement.epoch
    }
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

    /// The highest position every sync follower durably matches, counting
    /// only entries of the leader's own epoch (an entry inherited from an
    /// older epoch commits when a later entry of this epoch does).
    fn quorum_position(&self, variant: Variant) -> Position {
        let durable = &self.durable;
        let last = durable.log.last_position();
        let position = if variant == Variant::AsyncAck {
            // The broken commit rule: the leader's own disk is enough.
            last
        } else {
            durable
                .placement
                .sync_followers
                .iter()
                .map(|follower| {
                    self.leader
                        .match_positions
                        .get(follower)
                        .copied()
                        .unwrap_or_default()
                })
                .min()
                .unwrap_or(last)
        };
        if durable.log.epoch_at(position) == Some(durable.placement.epoch) {
            position
        } else {
            durable.commit_position
        }
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
            let durable = &replica.durable;
            assert!(
                durable.commit_position <= durable.log.last_position(),
                "{bucket}: commit beyond the log"
            );
            assert!(
                durable.promised_epoch >= durable.placement.epoch,
                "{bucket}: promised epoch older than the placement"
            );
            assert!(
                durable
                    .applied
                    .outcomes
                    .values()
                    .all(|recorded| recorded.position <= durable.commit_position),
                "{bucket}: idempotency table holds an uncommitted decision"
            );
            for (position, entry) in durable.log.iter_through(durable.commit_position) {
                let Some(token) = entry.token() else {
                    continue;
                };
                let recorded = durable.applied.recorded(&token);
                assert!(
                    recorded.is_some_and(|recorded| recorded.position <= position),
                    "{bucket}: committed entry {entry} at {position} is missing from the idempotency table"
                );
            }
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
        state
    }

    /// A leader (re)starts the clock of every active hold of `bucket`.
    fn arm_hold_expiries(&self, bucket: Bucket, durable: &DurableBucket, o: &mut Out<impl Emits>) {
        let Some(ttl) = &self.config.hold_ttl else {
            return;
        };
        for (_, hold) in durable.state_through_last().holds() {
            o.set_timer(Timer::HoldExpiry(bucket, hold), ttl.clone());
        }
    }

    /// A hold's time ran out: if it is still active, the leader ends it with
    /// an `Expire` entry, committed like any write.
    fn expire_hold(
        &self,
        id: Id,
        state: &mut ReplicaState,
        bucket: Bucket,
        hold: Token,
        o: &mut Out<impl Emits>,
    ) {
        let Some(replica) = state.buckets.get_mut(&bucket) else {
            return;
        };
        if !replica.durable.is_leader(id) || replica.durable.sealed() {
            return; // the next leader restarts the clock
        }
        let Some(unit) = replica
            .durable
            .state_through_last()
            .holds()
            .find(|(_, active)| *active == hold)
            .map(|(unit, _)| unit.clone())
        else {
            return; // confirmed, or already expiring
        };
        self.append_as_leader(bucket, replica, |epoch| Entry::expire(epoch, unit, hold), o);
        self.commit_and_reply(bucket, replica, o);
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
            } => self.on_request(id, state, src, bucket, epoch, command, o),
            Msg::Append {
                bucket,
                epoch,
                prev_position,
                prev_epoch,
                entries,
                commit_position,
            } => {
                let Some(replica) = state.buckets.get_mut(&bucket) else {
                    return; // ignore_append_for_unknown_bucket
                };
                let durable = &replica.durable;
                let checked = self.config.variant != Variant::UncheckedEpoch;
                if checked && epoch < durable.promised_epoch {
                    tracing::info!(
                        %bucket,
                        %epoch,
                        promised = %durable.promised_epoch,
                        "stale epoch rejected: append from an older leader"
                    );
                    o.send(
                        src,
                        Msg::AppendRefused {
                            bucket,
                            epoch: durable.promised_epoch,
                        },
                    );
                    return;
                }
                if checked && epoch > durable.placement.epoch {
                    // A leader of an epoch this replica has not been told
                    // about: ask the controller, the only authority.
                    o.send(self.controller, Msg::FetchPlacement { bucket });
                    return;
                }
                if checked && (epoch != durable.placement.epoch || src != durable.placement.leader)
                {
                    return; // ignore_append_from_unknown_epoch: not our placement's leader
                }
                let durable = Arc::make_mut(&mut replica.durable);
                let Ok(position) = durable.log.append_after(
                    prev_position,
                    prev_epoch,
                    &entries,
                    durable.commit_position,
                ) else {
                    // ignore_append_out_of_order: the leader resends from the
                    // position we last acknowledged.
                    return;
                };
                durable.commit_through(commit_position.min(position));
                o.send(
                    src,
                    Msg::Appended {
                        bucket,
                        epoch,
                        position,
                    },
                );
            }
            Msg::Appended {
                bucket,
                epoch,
                position,
            } => {
                let Some(replica) = state.buckets.get_mut(&bucket) else {
                    return;
                };
                if !replica.durable.is_leader(id) || epoch != replica.durable.placement.epoch {
                    return; // ignore_stale_appended
                }
                if replica.durable.placement.role_of(src).is_none()
                    && !replica.durable.learners().contains(&src)
                {
                    return; // ignore_appended_from_stranger
                }
                if replica
                    .leader
                    .match_positions
                    .get(&src)
                    .is_some_and(|matched| position <= *matched)
                {
                    return; // ignore_duplicate_appended
                }
                let was_moved_out = Self::moved_out(replica);
                replica.leader.match_positions.insert(src, position);
                replica.leader.retransmits_left = self.config.leader_resends;
                if self.config.max_append_entries.is_some() {
                    // Catching up in bounded appends: send the next one.
                    let learners = replica.durable.learners();
                    if let Some(next) = self.append_for(bucket, replica, src, &learners) {
                        o.send(src, next);
                    }
                }
                let commit_before = replica.durable.commit_position;
                self.commit_and_reply(bucket, replica, o);
                if self.config.announce_commits
                    && replica.durable.commit_position == commit_before
                    && position == replica.durable.log.last_position()
                {
                    // A follower that caught up without moving the commit
                    // (an async one) learns the commit at the next
                    // announcement, not only with the next write.
                    o.set_timer(
                        Timer::AnnounceCommit(bucket),
                        self.config.timeouts.announce.clone(),
                    );
                }
                self.advance_move(bucket, replica, was_moved_out, o);
            }
            Msg::AppendRefused { bucket, epoch } => {
                let Some(replica) = state.buckets.get_mut(&bucket) else {
                    return;
                };
                // A follower promised a newer epoch: this leader is fenced and
                // must never append at its old epoch again.
                if epoch > replica.durable.promised_epoch {
                    Arc::make_mut(&mut replica.durable).promised_epoch = epoch;
                    replica.leader = LeaderState::new(&self.config);
                }
            }
            Msg::Fence { bucket, epoch } if src == self.controller => {
                self.on_fence(state, src, bucket, epoch, o)
            }
            Msg::Placement { bucket, placement } if src == self.controller => {
                self.on_placement(id, state, bucket, placement, o)
            }
            Msg::Query {
                bucket,
                epoch,
                token,
            } => self.on_query(id, state, src, bucket, epoch, token, o),
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
            } => self.on_read(id, state, src, bucket, unit, after, o),
            Msg::Pull { from } => {
                let mut batch = Vec::new();
                let mut entries = 0;
                for (bucket, after) in from {
                    let Some(replica) = state.buckets.get(&bucket) else {
                        continue; // not a replica of it: no answer
                    };
                    let durable = &replica.durable;
                    let leads = durable.is_leader(id) && !durable.sealed();
                    let changes = stream::changes_of(
                        bucket,
                        durable,
                        leads,
                        after,
                        self.config.max_append_entries,
                        self.config.variant,
                    );
                    entries += changes.entries.len();
                    batch.push(changes);
                    // Answers in messages that fit a datagram.
                    if batch.len() >= stream::BATCH_BUCKETS || entries >= stream::BATCH_ENTRIES {
                        o.send(src, stream::changes_msg(std::mem::take(&mut batch)));
                        entries = 0;
                    }
                }
                if !batch.is_empty() {
                    o.send(src, stream::changes_msg(batch));
                }
            }
            Msg::MoveOut { .. }
            | Msg::Probe
            | Msg::Alive { .. }
            | Msg::MoveRefused { .. }
            | Msg::ReadReply { .. }
            | Msg::ReadBehind { .. }
            | Msg::Changes(_)
            | Msg::Failover { .. }
            | Msg::MoveBucket { .. }
            | Msg::MovedOut { .. }
            | Msg::Fence { .. }
            | Msg::Placement { .. }
            | Msg::Fenced { .. }
            | Msg::FetchPlacement { .. }
            | Msg::NotDecided { .. }
            | Msg::Reply { .. }
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
        if let Timer::HoldExpiry(bucket, hold) = timer {
            return self.expire_hold(id, state, *bucket, *hold, o);
        }
        if let Timer::AnnounceCommit(bucket) = timer {
            if let Some(replica) = state.buckets.get(bucket) {
                if replica.durable.is_leader(id) {
                    self.announce_commit(*bucket, replica, o);
                }
            }
            return;
        }
        let Timer::Replicate(bucket) = timer else {
            return;
        };
        let Some(replica) = state.buckets.get_mut(bucket) else {
            return;
        };
        if !replica.durable.is_leader(id) || replica.leader.retransmits_left == 0 {
            return;
        }
        let lagging = self.send_appends(*bucket, replica, FollowerSet::All, o);
        if lagging {
            replica.leader.retransmits_left -= 1;
            o.set_timer(
                Timer::Replicate(*bucket),
                self.config.timeouts.replicate.clone(),
            );
        }
    }

    /// The controller asks this sync follower to promise `epoch`: from now
    /// on it refuses appends of older epochs, so the old leader can no
    /// longer commit. It reports its durable log so that the controller can
    /// tell whether it holds the committed prefix.
    fn on_fence(
        &self,
        state: &mut ReplicaState,
        controller: Id,
        bucket: Bucket,
        epoch: Epoch,
        o: &mut Out<impl Emits>,
    ) {
        let Some(replica) = state.buckets.get_mut(&bucket) else {
            return;
        };
        if epoch <= replica.durable.placement.epoch || epoch < replica.durable.promised_epoch {
            return; // ignore_stale_fence: that epoch is already settled
        }
        if epoch > replica.durable.promised_epoch {
            Arc::make_mut(&mut replica.durable).promised_epoch = epoch;
            replica.leader = LeaderState::new(&self.config);
            tracing::info!(%bucket, %epoch, "fenced: promised the new epoch");
        }
        let durable = &replica.durable;
        o.send(
            controller,
            Msg::Fenced {
                bucket,
                epoch,
                last_position: durable.log.last_position(),
                last_epoch: durable.log.last_epoch(),
            },
        );
    }

    /// The controller published a placement. A newer epoch replaces this
    /// replica's placement and promise; its volatile leader state is
    /// dropped (clients retry by token). A replica that now leads appends
    /// its epoch-start entry and sends every follower what it lacks; it
    /// commits what it inherited once its sync followers hold that entry.
    fn on_placement(
        &self,
        id: Id,
        state: &mut ReplicaState,
        bucket: Bucket,
        placement: BucketPlacement,
        o: &mut Out<impl Emits>,
    ) {
        let replica = match state.buckets.entry(bucket) {
            std::collections::btree_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::btree_map::Entry::Vacant(entry) => {
                if placement.role_of(id).is_none() {
                    return; // ignore_placement_of_foreign_bucket
                }
                // A replica new to the bucket starts empty, one epoch behind,
                // so that the placement below is adopted.
                let mut fresh = DurableBucket::empty(placement.clone());
                fresh.placement.epoch = Epoch(placement.epoch.0.saturating_sub(1));
                fresh.promised_epoch = fresh.placement.epoch;
                entry.insert(BucketReplica::new(Arc::new(fresh), &self.config))
            }
        };
        if placement.epoch <= replica.durable.placement.epoch
            || placement.epoch < replica.durable.promised_epoch
        {
            return; // ignore_older_placement
        }
        let durable = Arc::make_mut(&mut replica.durable);
        let epoch = placement.epoch;
        durable.placement = placement;
        durable.promised_epoch = epoch;
        durable.moving_to = None;
        replica.leader = LeaderState::new(&self.config);
        if !durable.is_leader(id) {
            return;
        }
        tracing::info!(%bucket, %epoch, "leading");
        self.arm_hold_expiries(bucket, durable, o);
        self.append_as_leader(bucket, replica, Entry::epoch_start, o);
        self.commit_and_reply(bucket, replica, o);
    }

    /// The leader appends the entry `entry` makes at its epoch (the step
    /// saves it), arms its resend timer, and sends every follower what it
    /// lacks. Returns the entry's position.
    fn append_as_leader(
        &self,
        bucket: Bucket,
        replica: &mut BucketReplica,
        entry: impl FnOnce(Epoch) -> Entry,
        o: &mut Out<impl Emits>,
    ) -> Position {
        let durable = Arc::make_mut(&mut replica.durable);
        let position = durable.log.push(entry(durable.placement.epoch));
        if self.config.leader_resends > 0 {
            o.set_timer(
                Timer::Replicate(bucket),
                self.config.timeouts.replicate.clone(),
            );
        }
        self.send_appends(bucket, replica, FollowerSet::All, o);
        position
    }

    /// The controller asks this leader to move `bucket` out to
    /// `destination`: stream it there (a snapshot, then the log), and seal
    /// it with a barrier once the destination has caught up.
    fn on_move_out(
        &self,
        id: Id,
        state: &mut ReplicaState,
        bucket: Bucket,
        epoch: Epoch,
        destination: BucketPlacement,
        o: &mut Out<impl Emits>,
    ) {
        let Some(replica) = state.buckets.get_mut(&bucket) else {
            return;
        };
        let durable = &replica.durable;
        if !durable.is_leader(id)
            || durable.placement.epoch != epoch
            || durable.moving_to.is_some()
            || durable.sealed()
        {
            return; // ignore_stale_move_out: not this epoch's leader, or already moving
        }
        Arc::make_mut(&mut replica.durable).moving_to = Some(destination);
        self.send_appends(bucket, replica, FollowerSet::All, o);
        self.advance_move(bucket, replica, false, o);
    }

    /// A leader sent the bucket from a snapshot: a destination of a move
    /// (a learner, not a member of the sender's placement) installs it and
    /// follows the sender's log; a member behind the leader's snapshot does
    /// the same at its own placement's epoch.
    fn on_snapshot(
        &self,
        id: Id,
        state: &mut ReplicaState,
        src: Id,
        snapshot: Snapshot,
        o: &mut Out<impl Emits>,
    ) {
        let Snapshot {
            bucket,
            epoch,
            placement,
            position,
            position_epoch,
            state: bucket_state,
            entries,
            commit_position,
        } = snapshot;
        if placement.epoch != epoch || placement.leader != src {
            return; // ignore_inconsistent_snapshot
        }
        let member = placement.role_of(id).is_some();
        match state.buckets.get(&bucket).map(|replica| &replica.durable) {
            Some(durable) if epoch < durable.promised_epoch => {
                if member {
                    o.send(
                        src,
                        Msg::AppendRefused {
                            bucket,
                            epoch: durable.promised_epoch,
                        },
                    );
                }
                return;
            }
            Some(durable) if member => {
                if epoch > durable.placement.epoch {
                    o.send(self.controller, Msg::FetchPlacement { bucket });
                    return;
                }
                if epoch != durable.placement.epoch || src != durable.placement.leader {
                    return;
                }
            }
            Some(durable) if durable.placement.epoch == epoch && durable.placement != placement => {
                return; // ignore_snapshot_of_another_history
            }
            Some(_) => {}
            None if member => {
                o.send(self.controller, Msg::FetchPlacement { bucket });
                return;
            }
            None => {}
        }
        let replica = state.buckets.entry(bucket).or_insert_with(|| {
            BucketReplica::new(
                Arc::new(DurableBucket::empty(placement.clone())),
                &self.config,
            )
        });
        let durable = Arc::make_mut(&mut replica.durable);
        if !member {
            durable.placement = placement;
            durable.promised_epoch = epoch;
        }
        let has_prefix = durable.commit_position >= position
            || durable.log.epoch_at(position) == Some(position_epoch);
        if !has_prefix {
            durable.log = Log::after_snapshot(position, position_epoch);
            durable.applied = bucket_state;
            durable.commit_position = position;
        }
        let Ok(matched) =
            durable
                .log
                .append_after(position, position_epoch, &entries, durable.commit_position)
        else {
            return; // ignore_snapshot_out_of_order
        };
        durable.commit_through(commit_position.min(matched));
        o.send(
            src,
            Msg::Appended {
                bucket,
                epoch,
                position: matched,
            },
        );
    }

    /// `bucket` if this replica leads it at the client's `epoch`. Otherwise
    /// the client is redirected with the newest epoch this replica knows
    /// (and refreshes its map and retries with the same token); an epoch
    /// newer than this replica's placement makes it ask the controller.
    #[allow(clippy::too_many_arguments)]
    fn leading<'a>(
        &self,
        id: Id,
        state: &'a mut ReplicaState,
        client: Id,
        bucket: Bucket,
        epoch: Epoch,
        token: Token,
        o: &mut Out<impl Emits>,
    ) -> Option<&'a mut BucketReplica> {
        let known = match state.buckets.get_mut(&bucket) {
            Some(replica)
                if replica.durable.is_leader(id)
                    && ((epoch == replica.durable.placement.epoch
                        && !replica.durable.sealed())
                        || self.config.variant == Variant::UncheckedEpoch) =>
            {
                return Some(replica);
            }
            Some(replica) => {
                if epoch > replica.durable.placement.epoch {
                    o.send(self.controller, Msg::FetchPlacement { bucket });
                }
                tracing::debug!(
                    %bucket,
                    %epoch,
                    known = %replica.durable.promised_epoch,
                    "redirected: not the leader at that epoch"
                );
                replica.durable.promised_epoch
            }
            None => Epoch(0),
        };
        o.send(
            client,
            Msg::Redirect {
                bucket,
                epoch: known,
                token,
            },
        );
        None
    }

    /// A client asks what became of `token`. The leader answers with the
    /// recorded outcome, or when the token's pending entry commits, or —
    /// once everything it inherited is committed — `NotDecided`: no earlier
    /// attempt can take effect any more, because only this leader commits.
    #[allow(clippy::too_many_arguments)]
    fn on_query(
        &self,
        id: Id,
        state: &mut ReplicaState,
        client: Id,
        bucket: Bucket,
        epoch: Epoch,
        token: Token,
        o: &mut Out<impl Emits>,
    ) {
        let Some(replica) = self.leading(id, state, client, bucket, epoch, token, o) else {
            return;
        };
        let durable = &replica.durable;
        if let Some(reply) = recorded_reply(bucket, durable, token) {
            // A committed outcome is a fact, whoever still holds it.
            o.send(client, reply);
            return;
        }
        let position = match durable.uncommitted_position(&token) {
            Some(position) => {
                self.send_appends(bucket, replica, FollowerSet::Sync, o);
                position
            }
            None => {
                // Nothing here decides the token. That is only an answer if
                // this replica still leads (a deposed leader that does not
                // know it yet would answer from a stale log) and everything
                // it inherited is committed: both hold once a fresh entry of
                // its epoch commits through its commit quorum.
                self.append_as_leader(bucket, replica, Entry::noop, o)
            }
        };
        replica.leader.waiters.insert(Waiter {
            position,
            client,
            token,
        });
        self.commit_and_reply(bucket, replica, o);
    }

    /// A session read (seed 000, Part 1: "read from a replica only if it
    /// has replayed the caller's observed version"): any replica of the
    /// bucket answers from its committed state if it has applied through
    /// the caller's position; otherwise it sends the caller to the leader.
    /// A leader that has not applied through it either (just promoted, its
    /// inherited entries not yet committed) says the same; the client
    /// retries.
    #[allow(clippy::too_many_arguments)]
    fn on_read(
        &self,
        id: Id,
        state: &ReplicaState,
        client: Id,
        bucket: Bucket,
        unit: InventoryUnit,
        after: Position,
        o: &mut Out<impl Emits>,
    ) {
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
            Msg::ReadReply {
                bucket,
                unit,
                position,
                status,
                path,
            },
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn on_request(
        &self,
        id: Id,
        state: &mut ReplicaState,
        client: Id,
        bucket: Bucket,
        epoch: Epoch,
        command: Command,
        o: &mut Out<impl Emits>,
    ) {
        let token = command.token;
        if self.config.variant == Variant::MultiLeader {
            if let Some(replica) = state.buckets.get_mut(&bucket).filter(|replica| {
                replica.durable.placement.epoch == epoch
                    && replica.durable.placement.async_followers.contains(&id)
            }) {
                return Self::accept_regional_write(bucket, replica, client, command, o);
            }
        }
        let Some(replica) = self.leading(id, state, client, bucket, epoch, token, o) else {
            return;
        };
        let durable = &replica.durable;
        let idempotent = self.config.variant != Variant::NoIdempotency;
        if let Some(reply) = recorded_reply(bucket, durable, token).filter(|_| idempotent) {
            // A retry of a committed action: the recorded outcome, no new effect.
            o.send(client, reply);
            return;
        }
        let pending = durable.uncommitted_position(&token).filter(|_| idempotent);
        let position = match pending {
            Some(position) => {
                // A retry of an action still waiting for its quorum: an
                // append may have been lost, so resend to the commit quorum.
                self.send_appends(bucket, replica, FollowerSet::Sync, o);
                position
            }
            None => {
                self.append_as_leader(bucket, replica, |epoch| Entry::command(epoch, command), o)
            }
        };
        replica.leader.waiters.insert(Waiter {
            position,
            client,
            token,
        });
        self.commit_and_reply(bucket, replica, o);
    }

    /// `Variant::MultiLeader` only: the remote region's replica takes its
    /// region's writes itself. It decides on its own copy, commits at once
    /// (nobody in its region to wait for), answers the client, and forwards
    /// the action to the bucket's leader to merge after the fact — by then
    /// the other region may have sold the same cabin.
    fn accept_regional_write(
        bucket: Bucket,
        replica: &mut BucketReplica,
        client: Id,
        command: Command,
        o: &mut Out<impl Emits>,
    ) {
        if recorded_reply(bucket, &replica.durable, command.token).is_none() {
            let durable = Arc::make_mut(&mut replica.durable);
            let epoch = durable.placement.epoch;
            let position = durable.log.push(Entry::command(epoch, command.clone()));
            durable.commit_through(position);
            o.send(
                durable.placement.leader,
                Msg::Request {
                    bucket,
                    epoch,
                    command: command.clone(),
                },
            );
        }
        if let Some(reply) = recorded_reply(bucket, &replica.durable, command.token) {
            o.send(client, reply);
        }
    }

    /// Sends each follower in `set` the suffix it lacks. Returns whether any
    /// lagged.
    fn send_appends(
        &self,
        bucket: Bucket,
        replica: &BucketReplica,
        set: FollowerSet,
        o: &mut Out<impl Emits>,
    ) -> bool {
        let durable = &replica.durable;
        let mut lagging = false;
        let mut followers: Vec<Id> = match set {
            FollowerSet::All => durable.placement.followers().collect(),
            FollowerSet::Sync => durable.placement.sync_followers.clone(),
        };
        let learners = durable.learners();
        if set == FollowerSet::All {
            followers.extend(learners.iter().copied());
        }
        for follower in followers {
            if let Some(message) = self.append_for(bucket, replica, follower, &learners) {
                lagging = true;
                o.send(follower, message);
            }
        }
        lagging
    }

    /// What `follower` (or learner) lacks of the leader's log, as an
    /// `Append` after the position it last matched, or a `Snapshot` if it
    /// is a learner yet unheard from or behind the leader's own snapshot;
    /// at most `max_append_entries` entries. `None` if it lacks nothing.
    fn append_for(
        &self,
        bucket: Bucket,
        replica: &BucketReplica,
        follower: Id,
        learners: &[Id],
    ) -> Option<Msg> {
        let durable = &replica.durable;
        let matched = replica.leader.match_positions.get(&follower).copied();
        if matched.is_some_and(|matched| matched >= durable.log.last_position()) {
            return None;
        }
        let matched = matched.unwrap_or_default();
        let limit = |entries: &[Entry]| -> Vec<Entry> {
            let count = self
                .config
                .max_append_entries
                .map_or(entries.len(), |limit| limit.min(entries.len()));
            entries[..count].to_vec()
        };
        let unknown_learner =
            learners.contains(&follower) && !replica.leader.match_positions.contains_key(&follower);
        Some(if unknown_learner || matched < durable.log.start() {
            // A destination of a move starts from a snapshot; so does a
            // follower behind this leader's own snapshot.
            let position = durable.commit_position;
            Msg::Snapshot(Arc::new(Snapshot {
                bucket,
                epoch: durable.placement.epoch,
                placement: durable.placement.clone(),
                position,
                position_epoch: durable
                    .log
                    .epoch_at(position)
                    .expect("the commit position is in the log or its snapshot"),
                state: durable.applied.clone(),
                entries: limit(durable.log.entries_after(position)),
                commit_position: position,
            }))
        } else {
            Msg::Append {
                bucket,
                epoch: durable.placement.epoch,
                prev_position: matched,
                prev_epoch: durable
                    .log
                    .epoch_at(matched)
                    .expect("matched entries exist"),
                entries: limit(durable.log.entries_after(matched)),
                commit_position: durable.commit_position,
            }
        })
    }

    /// Whether a moving leader's barrier is committed in its own group and
    /// durable on every destination member: the move may be published.
    fn moved_out(replica: &BucketReplica) -> bool {
        let durable = &replica.durable;
        let barrier = durable.log.last_position();
        durable.sealed()
            && durable.commit_position >= barrier
            && durable.learners().iter().all(|learner| {
                replica
                    .leader
                    .match_positions
                    .get(learner)
                    .is_some_and(|matched| *matched >= barrier)
            })
    }

    /// Drives a move out after the leader learned of progress: once every
    /// destination member has caught up, seal the bucket with the barrier;
    /// once the barrier is everywhere it must be, tell the controller.
    fn advance_move(
        &self,
        bucket: Bucket,
        replica: &mut BucketReplica,
        was_moved_out: bool,
        o: &mut Out<impl Emits>,
    ) {
        let durable = &replica.durable;
        if durable.moving_to.is_none() {
            return;
        }
        if !durable.sealed() {
            let last = durable.log.last_position();
            let caught_up = durable.learners().iter().all(|learner| {
                replica
                    .leader
                    .match_positions
                    .get(learner)
                    .is_some_and(|matched| *matched >= last)
            });
            if caught_up {
                let epoch = durable.placement.epoch;
                Arc::make_mut(&mut replica.durable)
                    .log
                    .push(Entry::barrier(epoch));
                self.send_appends(bucket, replica, FollowerSet::All, o);
                self.commit_and_reply(bucket, replica, o);
            }
        }
        if !was_moved_out && Self::moved_out(replica) {
            o.send(
                self.controller,
                Msg::MovedOut {
                    bucket,
                    epoch: replica.durable.placement.epoch,
                    barrier: replica.durable.log.last_position(),
                },
            );
        }
    }

    /// Commits what the sync followers hold and answers the clients whose
    /// entries are now committed.
    fn commit_and_reply(
        &self,
        bucket: Bucket,
        replica: &mut BucketReplica,
        o: &mut Out<impl Emits>,
    ) {
        let quorum = replica.quorum_position(self.config.variant);
        let before = replica.durable.commit_position;
        if quorum > before {
            Arc::make_mut(&mut replica.durable).commit_through(quorum);
            if self.config.announce_commits {
                o.set_timer(
                    Timer::AnnounceCommit(bucket),
                    self.config.timeouts.announce.clone(),
                );
            }
            if let Some(ttl) = &self.config.hold_ttl {
                // Every hold granted by the entries just committed starts
                // its clock.
                let durable = &replica.durable;
                for (_, entry) in durable.log.iter_after(before) {
                    let Some(command) = entry.as_command() else {
                        continue;
                    };
                    if let crate::bucket::Op::Confirm { hold, .. } = &command.op {
                        // A confirmed hold no longer expires.
                        if entry_committed(durable, command.token) {
                            o.cancel_timer(Timer::HoldExpiry(bucket, *hold));
                        }
                        continue;
                    }
                    if matches!(command.op, crate::bucket::Op::Hold { .. })
                        && durable
                            .applied
                            .recorded(&command.token)
                            .is_some_and(|r| r.outcome == crate::Outcome::Held)
                        && entry_committed(durable, command.token)
                    {
                        o.set_timer(Timer::HoldExpiry(bucket, command.token), ttl.clone());
                    }
                }
            }
        }
        let durable = &replica.durable;
        let committed: Vec<Waiter> = replica
            .leader
            .waiters
            .iter()
            .filter(|waiter| waiter.position <= durable.commit_position)
            .cloned()
            .collect();
        for waiter in committed {
            replica.leader.waiters.remove(&waiter);
            // A command's entry records its token when it commits; a query
            // that found nothing waits on a no-op entry, and its commit
            // proves no earlier attempt can take effect any more.
            let reply = recorded_reply(bucket, durable, waiter.token).unwrap_or(Msg::NotDecided {
                bucket,
                epoch: durable.placement.epoch,
                token: waiter.token,
            });
            o.send(waiter.client, reply);
        }
    }
}

impl ReplicaActor {
    /// Tells every follower that already holds the leader's whole log the
    /// new commit position, with an empty `Append` (the others learn it
    /// with the entries they still lack). Without it a follower learns a
    /// commit only with the next write, and cannot serve a read of it.
    fn announce_commit(&self, bucket: Bucket, replica: &BucketReplica, o: &mut Out<impl Emits>) {
        let last = replica.durable.log.last_position();
        let matched = |follower: &Id| replica.leader.match_positions.get(follower) == Some(&last);
        self.tell_commit(bucket, replica, matched, o);
    }

    /// Sends the followers that `to` selects an empty `Append` after the
    /// leader's last entry, carrying its commit position: a follower that
    /// holds the whole log takes the commit and acknowledges; one that does
    /// not ignores it (the leader's appends catch it up).
    fn tell_commit(
        &self,
        bucket: Bucket,
        replica: &BucketReplica,
        to: impl Fn(&Id) -> bool,
        o: &mut Out<impl Emits>,
    ) {
        let durable = &replica.durable;
        let last = durable.log.last_position();
        let Some(last_epoch) = durable.log.epoch_at(last) else {
            return;
        };
        for follower in durable.placement.followers() {
            if to(&follower) {
                o.send(
                    follower,
                    Msg::Append {
                        bucket,
                        epoch: durable.placement.epoch,
                        prev_position: last,
                        prev_epoch: last_epoch,
                        entries: Vec::new(),
                        commit_position: durable.commit_position,
                    },
                );
            }
        }
    }
}

/// Whether `token`'s entry is at or below the commit position.
fn entry_committed(durable: &DurableBucket, token: Token) -> bool {
    durable
        .applied
        .recorded(&token)
        .is_some_and(|recorded| recorded.position <= durable.commit_position)
}

/// The `Reply` telling the recorded outcome of `token`, if it is committed.
fn recorded_reply(bucket: Bucket, durable: &DurableBucket, token: Token) -> Option<Msg> {
    let recorded = durable.applied.recorded(&token)?;
    Some(Msg::Reply {
        bucket,
        epoch: durable.placement.epoch,
        position: recorded.position,
        token,
        unit: recorded.unit,
        outcome: recorded.outcome,
    })
}

#[cfg(test)]
mod tests {
    //! Engine tests in the openraft style: drive one replica through the
    //! `Actor` trait and compare the commands it emitted.

    use super::*;
    use crate::actor::{BerthActor, NodeState, Storage};
    use crate::bucket::{Op, UnitStatus};
    use crate::test_support::{self, placement, sent, ASYNC, CLIENT, CONTROLLER, LEADER, SYNC};
    use crate::types::InventoryUnit;
    use stateright::actor::Command as Cmd;

    fn replica() -> BerthActor {
        BerthActor::Replica(ReplicaActor {
            initial_map: PlacementMap::uniform(1, placement(1, LEADER, SYNC, ASYNC)),
            region: "madrid-a".into(),
            controller: Id::from(CONTROLLER),
            config: ProtocolConfig::default(),
        })
    }

    fn hold_request() -> Msg {
        Msg::Request {
            bucket: Bucket(0),
            epoch: Epoch(1),
            command: Command {
                token: Token { client: 4, seq: 0 },
                op: Op::Hold {
                    unit: InventoryUnit::new("BCN-JFK-2026-07-14", "C14"),
                    customer: crate::Customer::new("alice"),
                },
            },
        }
    }

    /// Delivers `msg` from `src` to the replica with id `id`; returns the
    /// emitted commands.
    fn deliver(state: &mut NodeState, id: usize, src: usize, msg: Msg) -> test_support::Commands {
        test_support::deliver(&replica(), state, id, src, msg)
    }

    fn start(id: usize) -> NodeState {
        test_support::start(&replica(), id)
    }

    fn replies(commands: &[Cmd<Msg, Timer, (), Storage>]) -> usize {
        commands
            .iter()
            .filter(|c| matches!(c, Cmd::Send(_, Msg::Reply { .. })))
            .count()
    }

    /// Goal: DESIGN.md's commit rule — the leader saves, replicates, and
    /// replies only once the sync follower (not the async one) is durable.
    #[test]
    fn leader_replies_only_after_the_sync_follower_is_durable() {
        let mut leader = start(LEADER);
        let commands = deliver(&mut leader, LEADER, CLIENT, hold_request());
        assert!(
            matches!(commands[0], Cmd::Save(_)),
            "save comes first: {commands:?}"
        );
        let appends = commands
            .iter()
            .filter(|c| matches!(c, Cmd::Send(_, Msg::Append { .. })))
            .count();
        assert_eq!(appends, 2);
        assert_eq!(replies(&commands), 0);

        let appended = |position| Msg::Appended {
            bucket: Bucket(0),
            epoch: Epoch(1),
            position: Position(position),
        };
        let commands = deliver(&mut leader, LEADER, ASYNC, appended(1));
        assert_eq!(
            replies(&commands),
            0,
            "an async follower never completes a commit"
        );
        let commands = deliver(&mut leader, LEADER, SYNC, appended(1));
        assert_eq!(replies(&commands), 1);
        assert!(
            matches!(commands[0], Cmd::Save(_)),
            "the commit is saved first"
        );
    }

    /// Goal: a follower refuses an append from an epoch older than it
    /// promised, and the refused leader is fenced: it never serves at the
    /// old epoch again.
    #[test]
    fn stale_epoch_append_is_refused_and_fences_the_leader() {
        let mut follower = start(SYNC);
        if let crate::actor::NodeState::Replica(state) = &mut follower {
            Arc::make_mut(&mut state.buckets.get_mut(&Bucket(0)).unwrap().durable).promised_epoch =
                Epoch(2);
        }
        let before = follower.clone();
        let stale_append = Msg::Append {
            bucket: Bucket(0),
            epoch: Epoch(1),
            prev_position: Position(0),
            prev_epoch: Epoch(0),
            entries: vec![],
            commit_position: Position(0),
        };
        let commands = deliver(&mut follower, SYNC, LEADER, stale_append);
        assert_eq!(follower, before, "a refused append changes nothing");
        assert!(matches!(
            commands.as_slice(),
            [Cmd::Send(
                _,
                Msg::AppendRefused {
                    epoch: Epoch(2),
                    ..
                }
            )]
        ));

        let mut leader = start(LEADER);
        let refused = Msg::AppendRefused {
            bucket: Bucket(0),
            epoch: Epoch(2),
        };
        let commands = deliver(&mut leader, LEADER, SYNC, refused);
        assert!(
            matches!(commands.as_slice(), [Cmd::Save(_)]),
            "the promise is durable"
        );
        let commands = deliver(&mut leader, LEADER, CLIENT, hold_request());
        assert!(
            matches!(
                commands.as_slice(),
                [Cmd::Send(
                    _,
                    Msg::Redirect {
                        epoch: Epoch(2),
                        ..
                    }
                )]
            ),
            "{commands:?}"
        );
    }

    // The failover path at one replica: fence, adopt a newer placement,
    // truncate only what was never acknowledged, answer token queries.

    fn durable(state: &NodeState) -> &DurableBucket {
        &state.as_replica().unwrap().buckets[&Bucket(0)].durable
    }

    fn command(seq: u32) -> Command {
        Command {
            token: Token { client: 4, seq },
            op: Op::Hold {
                unit: InventoryUnit::new("BCN-JFK-2026-07-14", format!("C{seq}")),
                customer: crate::Customer::new("alice"),
            },
        }
    }

    fn request(epoch: u64, seq: u32) -> Msg {
        Msg::Request {
            bucket: Bucket(0),
            epoch: Epoch(epoch),
            command: command(seq),
        }
    }

    fn append(epoch: u64, prev: u64, prev_epoch: u64, entries: Vec<Entry>, commit: u64) -> Msg {
        Msg::Append {
            bucket: Bucket(0),
            epoch: Epoch(epoch),
            prev_position: Position(prev),
            prev_epoch: Epoch(prev_epoch),
            entries,
            commit_position: Position(commit),
        }
    }

    fn appended(epoch: u64, position: u64) -> Msg {
        Msg::Appended {
            bucket: Bucket(0),
            epoch: Epoch(epoch),
            position: Position(position),
        }
    }

    /// Goal: a fenced sync follower promises the new epoch durably, reports
    /// its log, and from then on refuses the old leader's appends.
    #[test]
    fn fence_promises_reports_and_refuses_the_old_epoch() {
        let mut follower = start(SYNC);
        let entry = Entry::command(Epoch(1), command(0));
        deliver(&mut follower, SYNC, LEADER, append(1, 0, 0, vec![entry], 0));
        let fence = Msg::Fence {
            bucket: Bucket(0),
            epoch: Epoch(2),
        };
        let commands = deliver(&mut follower, SYNC, CONTROLLER, fence.clone());
        assert!(matches!(commands[0], Cmd::Save(_)), "{commands:?}");
        assert_eq!(
            sent(&commands),
            [&Msg::Fenced {
                bucket: Bucket(0),
                epoch: Epoch(2),
                last_position: Position(1),
                last_epoch: Epoch(1),
            }]
        );
        assert_eq!(durable(&follower).promised_epoch, Epoch(2));

        let late = Entry::command(Epoch(1), command(1));
        let commands = deliver(&mut follower, SYNC, LEADER, append(1, 1, 1, vec![late], 1));
        assert_eq!(
            sent(&commands),
            [&Msg::AppendRefused {
                bucket: Bucket(0),
                epoch: Epoch(2),
            }]
        );
        assert_eq!(durable(&follower).log.last_position(), Position(1));

        // Only the controller fences.
        let before = follower.clone();
        let forged = Msg::Fence {
            bucket: Bucket(0),
            epoch: Epoch(3),
        };
        assert!(deliver(&mut follower, SYNC, CLIENT, forged).is_empty());
        assert_eq!(follower, before);
    }

    /// Goal: a replica promoted by a newer placement appends its
    /// epoch-start entry, sends followers the whole log, commits what it
    /// inherited only once its sync follower holds the epoch-start entry,
    /// and answers a client waiting on an inherited entry with the outcome
    /// that entry decides.
    #[test]
    fn promoted_leader_commits_inherited_entries_under_its_epoch() {
        let mut new_leader = start(SYNC);
        let inherited = Entry::command(Epoch(1), command(0));
        deliver(
            &mut new_leader,
            SYNC,
            LEADER,
            append(1, 0, 0, vec![inherited], 0),
        );
        assert_eq!(durable(&new_leader).commit_position, Position(0));

        let promoted = Msg::Placement {
            bucket: Bucket(0),
            placement: placement(2, SYNC, LEADER, ASYNC),
        };
        let commands = deliver(&mut new_leader, SYNC, CONTROLLER, promoted);
        assert!(matches!(commands[0], Cmd::Save(_)));
        let log = &durable(&new_leader).log;
        assert_eq!(log.last_position(), Position(2));
        assert_eq!(log.entry(Position(2)), Some(&Entry::epoch_start(Epoch(2))));
        let appends: Vec<_> = sent(&commands)
            .into_iter()
            .filter(|msg| matches!(msg, Msg::Append { prev_position: Position(0), entries, .. } if entries.len() == 2))
            .collect();
        assert_eq!(appends.len(), 2, "both followers get the whole log");

        // The client's retry of the inherited token waits for the commit.
        let commands = deliver(&mut new_leader, SYNC, CLIENT, request(2, 0));
        assert!(
            sent(&commands)
                .iter()
                .all(|m| !matches!(m, Msg::Reply { .. })),
            "{commands:?}"
        );
        // The old leader, now sync follower, acknowledges the inherited entry
        // only: nothing commits, because it is not of epoch 2.
        let commands = deliver(&mut new_leader, SYNC, LEADER, appended(2, 1));
        assert!(sent(&commands).is_empty(), "{commands:?}");
        assert_eq!(durable(&new_leader).commit_position, Position(0));
        // Through the epoch-start entry: both commit, the client is answered.
        let commands = deliver(&mut new_leader, SYNC, LEADER, appended(2, 2));
        assert_eq!(durable(&new_leader).commit_position, Position(2));
        assert!(matches!(
            sent(&commands).as_slice(),
            [Msg::Reply {
                position: Position(1),
                outcome: crate::Outcome::Held,
                ..
            }]
        ));
    }

    /// Goal: the old leader, told of the newer epoch, becomes a follower and
    /// replaces its never-acknowledged suffix with the new leader's log,
    /// keeping everything it had committed.
    #[test]
    fn old_leader_truncates_only_unacknowledged_entries() {
        let mut old = start(LEADER);
        deliver(&mut old, LEADER, CLIENT, request(1, 0));
        deliver(&mut old, LEADER, SYNC, appended(1, 1));
        assert_eq!(durable(&old).commit_position, Position(1));
        deliver(&mut old, LEADER, CLIENT, request(1, 1)); // never acknowledged
        assert_eq!(durable(&old).log.last_position(), Position(2));

        let demoted = Msg::Placement {
            bucket: Bucket(0),
            placement: placement(2, SYNC, LEADER, ASYNC),
        };
        deliver(&mut old, LEADER, CONTROLLER, demoted);
        assert!(!durable(&old).is_leader(Id::from(LEADER)));
        let committed = durable(&old).log.entry(Position(1)).cloned().unwrap();

        // The new leader's log: the committed entry, then its epoch start.
        let new_log = vec![committed.clone(), Entry::epoch_start(Epoch(2))];
        let commands = deliver(&mut old, LEADER, SYNC, append(2, 0, 0, new_log, 0));
        assert_eq!(sent(&commands), [&appended(2, 2)]);
        let log = &durable(&old).log;
        assert_eq!(log.entry(Position(1)), Some(&committed));
        assert_eq!(log.entry(Position(2)), Some(&Entry::epoch_start(Epoch(2))));

        // A log that contradicts the committed entry is refused outright.
        let mut other = start(LEADER);
        deliver(&mut other, LEADER, CLIENT, request(1, 0));
        deliver(&mut other, LEADER, SYNC, appended(1, 1));
        let demoted = Msg::Placement {
            bucket: Bucket(0),
            placement: placement(2, SYNC, LEADER, ASYNC),
        };
        deliver(&mut other, LEADER, CONTROLLER, demoted);
        let before = other.clone();
        let contradicting = vec![Entry::epoch_start(Epoch(2))];
        let commands = deliver(&mut other, LEADER, SYNC, append(2, 0, 0, contradicting, 0));
        assert!(sent(&commands).is_empty());
        assert_eq!(other, before);
    }

    /// Goal: a replica that meets an epoch newer than its placement asks
    /// the controller for the placement instead of trusting the sender.
    #[test]
    fn newer_epoch_in_an_append_fetches_the_placement() {
        let mut old = start(LEADER);
        let entries = vec![Entry::epoch_start(Epoch(2))];
        let commands = deliver(&mut old, LEADER, SYNC, append(2, 0, 0, entries, 0));
        assert_eq!(
            sent(&commands),
            [&Msg::FetchPlacement { bucket: Bucket(0) }]
        );
        assert_eq!(durable(&old).log.last_position(), Position(0));
    }

    /// Goal: a token query gets the recorded outcome, waits for a pending
    /// entry, and gets `NotDecided` for a token nobody logged.
    #[test]
    fn token_query_answers_recorded_pending_and_unknown() {
        let mut leader = start(LEADER);
        let query = |seq| Msg::Query {
            bucket: Bucket(0),
            epoch: Epoch(1),
            token: Token { client: 4, seq },
        };
        deliver(&mut leader, LEADER, CLIENT, request(1, 0));
        let commands = deliver(&mut leader, LEADER, CLIENT, query(0));
        assert!(
            sent(&commands)
                .iter()
                .all(|m| !matches!(m, Msg::Reply { .. })),
            "pending: no answer yet"
        );
        let commands = deliver(&mut leader, LEADER, SYNC, appended(1, 1));
        let replies = sent(&commands)
            .into_iter()
            .filter(|m| matches!(m, Msg::Reply { .. }))
            .count();
        assert_eq!(replies, 1, "one waiter per client and token");
        let commands = deliver(&mut leader, LEADER, CLIENT, query(0));
        assert!(matches!(
            sent(&commands).as_slice(),
            [Msg::Reply {
                outcome: crate::Outcome::Held,
                ..
            }]
        ));
        // An unknown token: no answer until a fresh no-op entry commits
        // through the sync follower, which proves this leader still leads.
        let commands = deliver(&mut leader, LEADER, CLIENT, query(9));
        assert!(
            sent(&commands)
                .iter()
                .all(|m| !matches!(m, Msg::NotDecided { .. })),
            "no NotDecided before the quorum confirms: {commands:?}"
        );
        let commands = deliver(&mut leader, LEADER, SYNC, appended(1, 2));
        assert!(
            matches!(sent(&commands).as_slice(), [.., Msg::NotDecided { .. }]),
            "{commands:?}"
        );
    }

    /// Goal: a leader deposed without knowing it (it restarted with an old
    /// placement while a newer epoch took over) never tells a client that
    /// a token is undecided: its sync follower refuses its no-op entry, and
    /// the refusal fences it.
    #[test]
    fn deposed_leader_never_answers_not_decided() {
        let mut leader = start(LEADER);
        let query = Msg::Query {
            bucket: Bucket(0),
            epoch: Epoch(1),
            token: Token { client: 4, seq: 7 },
        };
        let commands = deliver(&mut leader, LEADER, CLIENT, query.clone());
        assert!(sent(&commands)
            .iter()
            .all(|m| !matches!(m, Msg::NotDecided { .. })));
        // The sync follower promised epoch 3 and refuses.
        let refused = Msg::AppendRefused {
            bucket: Bucket(0),
            epoch: Epoch(3),
        };
        let commands = deliver(&mut leader, LEADER, SYNC, refused);
        assert!(sent(&commands)
            .iter()
            .all(|m| !matches!(m, Msg::NotDecided { .. })));
        // Asked again, it no longer leads: a redirect, not an answer.
        let commands = deliver(&mut leader, LEADER, CLIENT, query);
        assert!(
            matches!(sent(&commands).as_slice(), [Msg::Redirect { .. }]),
            "{commands:?}"
        );
    }

    // Cutover at one replica: stream to the destination, seal with the
    // barrier, report; install a snapshot as a destination.

    const DEST_LEADER: usize = 5;
    const DEST_SYNC: usize = 6;

    fn move_out() -> Msg {
        Msg::MoveOut {
            bucket: Bucket(0),
            epoch: Epoch(1),
            destination: placement(2, DEST_LEADER, DEST_SYNC, ASYNC),
        }
    }

    /// Goal: a moving leader sends each destination member a snapshot of
    /// its committed state plus the entries after it, seals the bucket with
    /// a barrier once both have caught up, redirects writes from then on,
    /// and tells the controller exactly once when the barrier is committed
    /// in its group and durable at the destination.
    #[test]
    fn moving_leader_streams_seals_and_reports_once() {
        let mut leader = start(LEADER);
        deliver(&mut leader, LEADER, CLIENT, request(1, 0));
        deliver(&mut leader, LEADER, SYNC, appended(1, 1));
        deliver(&mut leader, LEADER, CLIENT, request(1, 1)); // pending at p2

        let commands = deliver(&mut leader, LEADER, CONTROLLER, move_out());
        assert!(matches!(commands[0], Cmd::Save(_)), "moving_to is durable");
        let snapshots: Vec<_> = commands
            .iter()
            .filter_map(|c| match c {
                Cmd::Send(to, Msg::Snapshot(snapshot)) => {
                    Some((usize::from(*to), snapshot.position, snapshot.entries.len()))
                }
                _ => None,
            })
            .collect();
        assert_eq!(
            snapshots,
            [(DEST_LEADER, Position(1), 1), (DEST_SYNC, Position(1), 1)]
        );
        assert!(!durable(&leader).sealed());

        deliver(&mut leader, LEADER, DEST_LEADER, appended(1, 2));
        assert!(
            !durable(&leader).sealed(),
            "one destination member still lags"
        );
        let commands = deliver(&mut leader, LEADER, DEST_SYNC, appended(1, 2));
        assert!(durable(&leader).sealed());
        assert_eq!(
            durable(&leader).log.last_entry(),
            Some(&Entry::barrier(Epoch(1)))
        );
        assert!(sent(&commands)
            .iter()
            .all(|m| !matches!(m, Msg::MovedOut { .. })));

        // Sealed: a new write is redirected, not logged.
        let commands = deliver(&mut leader, LEADER, CLIENT, request(1, 7));
        assert!(matches!(sent(&commands).as_slice(), [Msg::Redirect { .. }]));
        assert_eq!(durable(&leader).log.last_position(), Position(3));

        deliver(&mut leader, LEADER, DEST_LEADER, appended(1, 3));
        deliver(&mut leader, LEADER, DEST_SYNC, appended(1, 3));
        let commands = deliver(&mut leader, LEADER, SYNC, appended(1, 3));
        assert_eq!(
            sent(&commands)
                .iter()
                .filter(|m| matches!(
                    m,
                    Msg::MovedOut {
                        barrier: Position(3),
                        ..
                    }
                ))
                .count(),
            1,
            "{commands:?}"
        );
        let commands = deliver(&mut leader, LEADER, ASYNC, appended(1, 3));
        assert!(sent(&commands)
            .iter()
            .all(|m| !matches!(m, Msg::MovedOut { .. })));
    }

    /// Goal: a destination member installs the snapshot (bucket state and
    /// idempotency table included) and the entries after it, follows the
    /// source's appends, and — once published as leader — answers a retry
    /// of a token committed before the move with the original outcome.
    #[test]
    fn destination_installs_the_snapshot_and_keeps_outcomes() {
        let mut source = start(LEADER);
        deliver(&mut source, LEADER, CLIENT, request(1, 0));
        deliver(&mut source, LEADER, SYNC, appended(1, 1));
        let commands = deliver(&mut source, LEADER, CONTROLLER, move_out());
        let snapshot = commands
            .into_iter()
            .find_map(|c| match c {
                Cmd::Send(to, msg @ Msg::Snapshot(_)) if usize::from(to) == DEST_LEADER => {
                    Some(msg)
                }
                _ => None,
            })
            .unwrap();

        let mut destination = start(DEST_LEADER);
        assert!(destination.as_replica().unwrap().buckets.is_empty());
        let commands = deliver(&mut destination, DEST_LEADER, LEADER, snapshot);
        assert!(matches!(commands[0], Cmd::Save(_)));
        assert_eq!(sent(&commands), [&appended(1, 1)]);
        let copy = durable(&destination);
        assert_eq!(copy.log.start(), Position(1));
        assert_eq!(copy.commit_position, Position(1));
        assert!(copy.applied.recorded(&command(0).token).is_some());

        let barrier = append(1, 1, 1, vec![Entry::barrier(Epoch(1))], 1);
        assert_eq!(
            sent(&deliver(&mut destination, DEST_LEADER, LEADER, barrier)),
            [&appended(1, 2)]
        );
        let published = Msg::Placement {
            bucket: Bucket(0),
            placement: placement(2, DEST_LEADER, DEST_SYNC, ASYNC),
        };
        deliver(&mut destination, DEST_LEADER, CONTROLLER, published);
        assert!(durable(&destination).is_leader(Id::from(DEST_LEADER)));
        let commands = deliver(&mut destination, DEST_LEADER, CLIENT, request(2, 0));
        assert!(
            matches!(
                sent(&commands).as_slice(),
                [Msg::Reply {
                    position: Position(1),
                    outcome: crate::Outcome::Held,
                    ..
                }]
            ),
            "{commands:?}"
        );
    }

    /// Goal: a session read is served by a follower only once it has
    /// applied (committed) through the caller's observed position; before
    /// that it sends the caller to the leader, whatever it holds
    /// uncommitted. Served reads are labelled with their path, and the
    /// broken variant serves the stale state.
    #[test]
    fn follower_reads_wait_for_the_observed_position() {
        let unit = InventoryUnit::new("BCN-JFK-2026-07-14", "C0");
        let read = |after| Msg::Read {
            bucket: Bucket(0),
            unit: unit.clone(),
            after: Position(after),
        };
        let mut follower = start(ASYNC);
        // The hold is in the follower's log but not yet known committed.
        let hold = Entry::command(Epoch(1), command(0));
        deliver(
            &mut follower,
            ASYNC,
            LEADER,
            append(1, 0, 0, vec![hold.clone()], 0),
        );
        let commands = deliver(&mut follower, ASYNC, CLIENT, read(1));
        assert!(
            matches!(
                sent(&commands).as_slice(),
                [Msg::ReadBehind {
                    position: Position(0),
                    ..
                }]
            ),
            "{commands:?}"
        );
        // A client with no observed position may read the old state here.
        let commands = deliver(&mut follower, ASYNC, CLIENT, read(0));
        assert!(
            matches!(
                sent(&commands).as_slice(),
                [Msg::ReadReply {
                    position: Position(0),
                    status: None,
                    path: ReadPath::Follower,
                    ..
                }]
            ),
            "{commands:?}"
        );
        // Once the commit position reaches it, the follower serves the hold.
        deliver(&mut follower, ASYNC, LEADER, append(1, 1, 1, vec![], 1));
        let commands = deliver(&mut follower, ASYNC, CLIENT, read(1));
        match sent(&commands).as_slice() {
            [Msg::ReadReply {
                position: Position(1),
                status: Some(UnitStatus::Held { customer, .. }),
                path: ReadPath::Follower,
                ..
            }] => assert_eq!(customer.to_string(), "alice"),
            other => panic!("{other:?}"),
        }
        // The leader labels its answers as the leader's.
        let mut leader = start(LEADER);
        let commands = deliver(&mut leader, LEADER, CLIENT, read(0));
        assert!(matches!(
            sent(&commands).as_slice(),
            [Msg::ReadReply {
                path: ReadPath::Leader,
                ..
            }]
        ));
        // The broken variant answers a read it is behind on.
        let broken = BerthActor::Replica(ReplicaActor {
            config: ProtocolConfig {
                variant: Variant::IgnoreReadToken,
                ..ProtocolConfig::default()
            },
            ..match replica() {
                BerthActor::Replica(actor) => actor,
                _ => unreachable!(),
            }
        });
        let mut stale = test_support::start(&broken, ASYNC);
        let commands = test_support::deliver(&broken, &mut stale, ASYNC, CLIENT, read(5));
        assert!(matches!(
            sent(&commands).as_slice(),
            [Msg::ReadReply {
                position: Position(0),
                ..
            }]
        ));
    }

    /// Goal: a pull is answered with committed entries only, from the
    /// position asked, labelled with whether the sender leads; a replica
    /// whose log starts after a snapshot answers a pull from before it with
    /// its committed state.
    #[test]
    fn pulls_are_answered_with_committed_entries_only() {
        let mut follower = start(SYNC);
        let entries = vec![
            Entry::command(Epoch(1), command(0)),
            Entry::command(Epoch(1), command(1)),
        ];
        deliver(&mut follower, SYNC, LEADER, append(1, 0, 0, entries, 1));
        let pull = |after| Msg::Pull {
            from: vec![(Bucket(0), Position(after))],
        };
        let commands = deliver(&mut follower, SYNC, 9, pull(0));
        match sent(&commands).as_slice() {
            [Msg::Changes(batch)] => {
                let changes = &batch[0];
                assert_eq!(changes.entries.len(), 1, "only the committed entry");
                assert_eq!(changes.commit_position, Position(1));
                assert!(!changes.leads);
                assert!(changes.reset.is_none());
            }
            other => panic!("{other:?}"),
        }
        // A replica that started from a snapshot at p1.
        {
            let NodeState::Replica(state) = &mut follower else {
                unreachable!()
            };
            let durable = Arc::make_mut(&mut state.buckets.get_mut(&Bucket(0)).unwrap().durable);
            durable.log = Log::after_snapshot(Position(1), Epoch(1));
        }
        let commands = deliver(&mut follower, SYNC, 9, pull(0));
        match sent(&commands).as_slice() {
            [Msg::Changes(batch)] => {
                let (position, state) = batch[0].reset.as_ref().expect("a reset");
                assert_eq!(*position, Position(1));
                assert_eq!(state.units.len(), 1);
            }
            other => panic!("{other:?}"),
        }
        // Not a replica of the bucket: no answer.
        let commands = deliver(
            &mut follower,
            SYNC,
            9,
            Msg::Pull {
                from: vec![(Bucket(7), Position(0))],
            },
        );
        assert!(sent(&commands).is_empty());
    }
}
