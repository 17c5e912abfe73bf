//! The controller: the one authority over the placement map.
//!
//! It serves the map to routers and, when failover is enabled, changes a
//! bucket's placement only by advancing its epoch, always in the same order:
//! decide, make the new map durable, then publish it (the Harbor Point notes, "Failover
//! Uses The Same Authority Discipline"; docs/protocol.md, "Failover").
//!
//! - **Leader suspected** (`Timer::SuspectLeader`): fence the commit quorum
//!   at epoch N+1 — every sync follower promises N+1, after which the old
//!   leader can no longer commit — and wait for a sync follower's report of
//!   its durable log. Promote it only if it holds the durable replayed
//!   prefix: its log ends in an entry of epoch N (so it holds N's epoch-start
//!   entry and everything the leader of N started with, plus every entry
//!   committed at N, since commits wait for it), or N is the bucket's first
//!   epoch. The old leader becomes its sync follower. Otherwise the failover
//!   aborts: the old leader keeps the bucket at N+1 and writes wait for it.
//! - **Sync follower suspected** (`Timer::SuspectSyncFollower`): reconfigure
//!   through epoch N+1, the first async follower taking the sync role and
//!   the suspected follower becoming async. The leader cannot commit at N+1
//!   before the new sync follower holds the new epoch-start entry, so the
//!   group never silently degrades to async-only commits; writes wait until
//!   the new sync follower has caught up.
//!
//! A controller that crashed between saving and publishing does not
//! announce again: a replica that meets a newer epoch than its own (in a
//! routed request or an append) fetches the placement from the controller.
//!
//! Changes run one at a time per bucket; different buckets change
//! concurrently (a node that leads a thousand buckets fails over all of
//! them at once).
//!
//! **Who suspects.** In the checker (`Detector::Anytime`) the suspicion
//! timers fire at any moment, so every detector, including one that
//! suspects a live leader, is explored; safety never depends on it. The
//! runtime uses `Detector::Probes`: on every `Timer::Probe` the controller
//! probes each replica, and a replica it has not heard from for `misses`
//! probes in a row is down: each bucket it leads fails over, and each
//! bucket it serves as sync follower is reconfigured. The operator's
//! `Msg::Failover` runs the same failover on a live leader (planned).
//!
//! The files: this one holds the actor and its state, routes each message
//! and timer, and publishes placements; `detector` the probes and what
//! they heard; `patience` how many probe rounds a replica may miss;
//! `failover` the leader and sync-follower changes; `moves` the
//! operator's moves (cutover).

mod detector;
mod failover;
mod moves;
mod patience;
#[cfg(test)]
mod tests;

pub use detector::Liveness;
pub use moves::Moving;

use crate::config::{Detector, ProtocolConfig};
use crate::messages::{batches, Emits, Msg, Timer};
use crate::placement::{BucketPlacement, GroupLayout, PlacementMap};
use crate::types::{Bucket, Epoch};
use serde::{Deserialize, Serialize};
use stateright::actor::{Id, Out};
use std::collections::{BTreeMap, BTreeSet};

/// What one controller step tells the replicas, gathered per recipient so
/// that a decision about many buckets is one message per replica rather
/// than one per bucket (`ControllerActor::flush` sends it).
#[derive(Default)]
pub(crate) struct Outbox {
    placements: BTreeMap<Id, Vec<(Bucket, BucketPlacement)>>,
    fences: BTreeMap<Id, Vec<(Bucket, Epoch)>>,
    /// The buckets whose placement the step changed.
    published: Vec<Bucket>,
}

impl Outbox {
    /// Queues `bucket`'s placement for `replica`.
    fn placement(&mut self, replica: Id, bucket: Bucket, placement: &BucketPlacement) {
        self.placements
            .entry(replica)
            .or_default()
            .push((bucket, placement.clone()));
    }

    /// Queues a fence of `bucket` at `epoch` for `follower`.
    fn fence(&mut self, follower: Id, bucket: Bucket, epoch: Epoch) {
        self.fences
            .entry(follower)
            .or_default()
            .push((bucket, epoch));
    }
}

/// When the controller may change placements.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FailoverPolicy {
    /// The controller advances no bucket beyond this epoch. The checker sets
    /// it to keep the state space finite; a real cluster has none.
    pub epoch_limit: Option<Epoch>,
}

/// The controller process.
#[derive(Clone, Debug)]
pub struct ControllerActor {
    /// The map the controller starts with before it has saved one.
    pub initial_map: PlacementMap,
    pub config: ProtocolConfig,
    /// `None`: no failover.
    pub failover: Option<FailoverPolicy>,
    /// The replica groups buckets may move to.
    pub groups: Vec<GroupLayout>,
}

/// The controller's state. Durable: the map, and the failovers and moves in
/// progress, saved before their first message is sent so that a restarted
/// controller resumes them instead of starting others. Volatile: what the
/// failure detector heard (`Liveness`), which a restart forgets.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ControllerState {
    pub map: PlacementMap,
    /// Failovers in progress: the epoch each bucket's sync followers are
    /// asked to promise.
    pub fencing: BTreeMap<Bucket, Epoch>,
    /// Moves in progress.
    pub moving: BTreeMap<Bucket, Moving>,
    #[serde(skip)]
    pub liveness: Liveness,
}

impl ControllerState {
    /// Whether the durable part differs from `other`'s.
    pub fn durable_differs(&self, other: &ControllerState) -> bool {
        self.map != other.map || self.fencing != other.fencing || self.moving != other.moving
    }
}

impl ControllerActor {
    pub fn on_start(
        &self,
        _id: Id,
        storage: Option<&ControllerState>,
        o: &mut Out<impl Emits>,
    ) -> ControllerState {
        let mut state = storage.cloned().unwrap_or_else(|| ControllerState {
            map: self.initial_map.clone(),
            fencing: BTreeMap::new(),
            moving: BTreeMap::new(),
            liveness: Liveness::default(),
        });
        state.liveness = Liveness::default();
        match self.config.detector {
            Detector::Anytime => {
                for index in 0..state.map.bucket_count() {
                    self.arm_suspicion(&state.map, Bucket(index), o);
                }
            }
            Detector::Probes { .. } => {
                o.set_timer(Timer::Probe, self.config.timeouts.probe.clone());
            }
        }
        state
    }

    pub fn on_msg(
        &self,
        _id: Id,
        state: &mut ControllerState,
        src: Id,
        msg: Msg,
        o: &mut Out<impl Emits>,
    ) {
        let mut out = Outbox::default();
        if let Detector::Probes { .. } = self.config.detector {
            // Any message is a sign of life (only replicas are counted).
            state.liveness.heard.insert(src);
        }
        match msg {
            Msg::FetchMap => o.send(src, Msg::Map(state.map.clone())),
            Msg::Failover { bucket } => {
                self.suspect_leader(state, bucket, &mut out);
            }
            Msg::FetchPlacement { bucket } => {
                if let Some(placement) = state.map.placement(bucket) {
                    out.placement(src, bucket, placement);
                }
            }
            Msg::Fenced(reports) => self.on_fenced(state, src, &reports, &mut out),
            Msg::Alive { lagging } => state.liveness.lagging_reported(src, lagging),
            Msg::MoveBucket { bucket, group } => {
                if let Err(reason) = self.may_move(state, bucket, group) {
                    tracing::warn!(%bucket, group = group.0, %reason, "move refused");
                    o.send(src, Msg::MoveRefused { bucket, reason });
                    return;
                }
                self.start_move(state, bucket, group, &mut out, o)
            }
            Msg::MovedOut {
                bucket,
                epoch,
                barrier: _,
            } => self.on_moved_out(state, src, bucket, epoch, &mut out),
            _ => {}
        }
        self.flush(state, out, o);
    }

    pub fn on_timeout(
        &self,
        _id: Id,
        state: &mut ControllerState,
        timer: &Timer,
        o: &mut Out<impl Emits>,
    ) {
        let mut out = Outbox::default();
        match timer {
            Timer::SuspectLeader(bucket) => {
                if !self.suspect_leader(state, *bucket, &mut out) {
                    o.set_timer(timer.clone(), self.config.timeouts.suspect.clone());
                }
            }
            Timer::SuspectSyncFollower(bucket, index) => {
                let suspect = state
                    .map
                    .placement(*bucket)
                    .and_then(|placement| placement.sync_followers.get(usize::from(*index)))
                    .copied();
                let settled = suspect.is_none_or(|suspect| {
                    self.suspect_sync_follower(state, *bucket, suspect, &BTreeSet::new(), &mut out)
                });
                if !settled {
                    o.set_timer(timer.clone(), self.config.timeouts.suspect.clone());
                }
            }
            Timer::Probe => self.probe(state, &mut out, o),
            Timer::ClientRetry
            | Timer::Replicate(_)
            | Timer::HoldExpiry(..)
            | Timer::Pull
            | Timer::AnnounceCommit(_) => {}
        }
        self.flush(state, out, o);
    }

    /// Changes `bucket` to `next` in the map (the step saves it before any
    /// send) and queues its announcement to every replica of the old and
    /// the new placement; the step's `flush` advances the map's version
    /// once, sends, and re-arms suspicion.
    fn publish(
        &self,
        state: &mut ControllerState,
        bucket: Bucket,
        next: BucketPlacement,
        out: &mut Outbox,
    ) {
        let buckets = state.map.buckets_mut();
        let previous = std::mem::replace(&mut buckets[bucket.0 as usize], next);
        let current = &buckets[bucket.0 as usize];
        let recipients: BTreeSet<Id> = previous.members().chain(current.members()).collect();
        for replica in recipients {
            out.placement(replica, bucket, current);
        }
        state.fencing.remove(&bucket);
        state.moving.remove(&bucket);
        out.published.push(bucket);
    }

    /// Ends a step: one new map version for everything it published, then
    /// the placements and fences it queued, one message per replica (or a
    /// few, `ProtocolConfig::max_batch` buckets each), then suspicion
    /// re-armed for what changed.
    fn flush(&self, state: &mut ControllerState, out: Outbox, o: &mut Out<impl Emits>) {
        if !out.published.is_empty() {
            state.map.version += 1;
        }
        for (replica, fences) in out.fences {
            for batch in batches(fences, self.config.max_batch) {
                o.send(replica, Msg::Fence(batch));
            }
        }
        for (replica, placements) in out.placements {
            for batch in batches(placements, self.config.max_batch) {
                o.send(replica, Msg::Placements(batch));
            }
        }
        let hold_down = self.hold_down_rounds();
        for bucket in out.published {
            self.arm_suspicion(&state.map, bucket, o);
            // Whoever the change gave new work — a promoted leader, a new
            // sync follower — gets time to take it on before it can be
            // suspected (the probe detector only). A replica that did not
            // answer the last probe is given no such grace.
            // (`hold_down` of no rounds, as with `Detector::Anytime`, holds
            // nobody down.)
            if let Some(placement) = state.map.placement(bucket) {
                for id in placement.members() {
                    if state.liveness.answered_last(id) {
                        state.liveness.hold_down(id, hold_down);
                    }
                }
            }
        }
    }

    /// Sets both suspicion timers of `bucket`, or cancels them once the
    /// bucket may not advance any more.
    fn arm_suspicion(&self, map: &PlacementMap, bucket: Bucket, o: &mut Out<impl Emits>) {
        let Some(placement) = map.placement(bucket) else {
            return;
        };
        if self.failover.is_none() || self.config.detector != Detector::Anytime {
            return;
        }
        let sync_followers = (0..placement.sync_followers.len())
            .map(|index| Timer::SuspectSyncFollower(bucket, index as u8));
        for timer in std::iter::once(Timer::SuspectLeader(bucket)).chain(sync_followers) {
            if self.may_advance(placement) {
                o.set_timer(timer, self.config.timeouts.suspect.clone());
            } else {
                o.cancel_timer(timer);
            }
        }
    }

    /// Whether failover is enabled and `placement` may take another epoch.
    fn may_advance(&self, placement: &BucketPlacement) -> bool {
        match &self.failover {
            None => false,
            Some(policy) => policy
                .epoch_limit
                .is_none_or(|limit| placement.epoch < limit),
        }
    }
}
