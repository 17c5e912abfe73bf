//! The controller: the one authority over the placement map.
//!
//! It serves the map to routers and, when failover is enabled, changes a
//! bucket's placement only by advancing its epoch, always in the same order:
//! decide, make the new map durable, then publish it (seed 004, "Failover
//! Uses The Same Authority Discipline"; DESIGN.md "Failover").
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

use crate::config::{Detector, ProtocolConfig};
use crate::messages::{Emits, FollowerLag, Msg, Timer};
use crate::placement::{BucketPlacement, GroupLayout, PlacementMap};
use crate::types::{Bucket, Epoch, GroupId};
use crate::variant::Variant;
use serde::{Deserialize, Serialize};
use stateright::actor::{Id, Out};
use std::collections::{BTreeMap, BTreeSet};

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
    /// Moves the operator planned: each fires once, on `Timer::PlannedMove`
    /// (the checker's stand-in for a `MoveBucket` request).
    pub planned_moves: Vec<(Bucket, GroupId)>,
}

/// A live move (cutover) waiting for the source's barrier.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Moving {
    pub bucket: Bucket,
    /// The source's epoch; the destination takes over at the next one.
    pub epoch: Epoch,
    pub destination: BucketPlacement,
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

/// The probe detector's memory (`Detector::Probes`; empty in the checker).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Liveness {
    /// Replicas heard from since the last probe.
    pub heard: BTreeSet<Id>,
    /// Probes in a row each replica has not answered.
    pub missed: BTreeMap<Id, u8>,
    /// The followers over their lag budget each leader reported in its
    /// last `Alive`.
    pub lagging: BTreeMap<Id, Vec<FollowerLag>>,
}

impl ControllerState {
    /// Whether the durable part differs from `other`'s.
    pub fn durable_differs(&self, other: &ControllerState) -> bool {
        self.map != other.map || self.fencing != other.fencing || self.moving != other.moving
    }

    /// The replicas the detector considers down after `misses` probes.
    pub fn down(&self, misses: u8) -> BTreeSet<Id> {
        self.liveness
            .missed
            .iter()
            .filter(|(_, missed)| **missed >= misses)
            .map(|(id, _)| *id)
            .collect()
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
        if storage.is_none() {
            for (bucket, _) in &self.planned_moves {
                o.set_timer(
                    Timer::PlannedMove(*bucket),
                    self.config.timeouts.suspect.clone(),
                );
            }
        }
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
        if let Detector::Probes { .. } = self.config.detector {
            // Any message is a sign of life (only replicas are counted).
            state.liveness.heard.insert(src);
        }
        match msg {
            Msg::FetchMap => o.send(src, Msg::Map(state.map.clone())),
            Msg::Failover { bucket } => {
                self.suspect_leader(state, bucket, o);
            }
            Msg::FetchPlacement { bucket } => {
                if let Some(placement) = state.map.placement(bucket) {
                    o.send(
                        src,
                        Msg::Placement {
                            bucket,
                            placement: placement.clone(),
                        },
                    );
                }
            }
            Msg::Fenced {
                bucket,
                epoch,
                last_epoch,
                ..
            } => self.on_fenced(state, src, bucket, epoch, last_epoch, o),
            Msg::Alive { lagging } => {
                if lagging.is_empty() {
                    state.liveness.lagging.remove(&src);
                } else {
                    state.liveness.lagging.insert(src, lagging);
                }
            }
            Msg::MoveBucket { bucket, group } => {
                if let Err(reason) = self.may_move(state, bucket, group) {
                    tracing::warn!(%bucket, group = group.0, %reason, "move refused");
                    o.send(src, Msg::MoveRefused { bucket, reason });
                    return;
                }
                self.start_move(state, bucket, group, o)
            }
            Msg::MovedOut {
                bucket,
                epoch,
                barrier: _,
            } => {
                let Some(moving) = state.moving.get(&bucket).cloned() else {
                    return; // ignore_moved_out_of_aborted_move
                };
                let current = state.map.placement(bucket).map(|p| p.epoch);
                if moving.epoch != epoch || current != Some(epoch) {
                    return; // compare-and-set on the epoch
                }
                if src != state.map.buckets[bucket.0 as usize].leader {
                    return;
                }
                tracing::info!(
                    %bucket,
                    epoch = %moving.destination.epoch,
                    group = moving.destination.group.0,
                    "moved"
                );
                self.publish(state, bucket, moving.destination, o);
            }
            _ => {}
        }
    }

    /// Whether the operator may start moving `bucket` to `group` now; if
    /// not, why. A planned move waits while a group involved is over its
    /// lag budget (seed 000, Part 3: lag budgets "can pause planned
    /// topology changes until the budget is back inside bounds"): moving
    /// load onto or off a group whose remote copy is behind widens the
    /// window of writes a regional loss would take.
    pub fn may_move(
        &self,
        state: &ControllerState,
        bucket: Bucket,
        group: GroupId,
    ) -> Result<(), String> {
        let Some(placement) = state.map.placement(bucket) else {
            return Err(format!("there is no bucket {bucket}"));
        };
        if !self.groups.iter().any(|layout| layout.group == group) {
            return Err(format!("there is no group {}", group.0));
        }
        if state.fencing.contains_key(&bucket) {
            return Err(format!("{bucket} is being failed over"));
        }
        let involved = [placement.group, group];
        let over: Vec<String> = state
            .liveness
            .lagging
            .values()
            .flatten()
            .filter(|lag| {
                state
                    .map
                    .placement(lag.bucket)
                    .is_some_and(|p| involved.contains(&p.group))
            })
            .map(ToString::to_string)
            .collect();
        if let Some(first) = over.first() {
            let more = match over.len() {
                1 => String::new(),
                n => format!(" (and {} more lagging followers)", n - 1),
            };
            return Err(format!(
                "a group involved (group {} or {}) is over its lag budget: {first}{more}; retry once it has caught up",
                placement.group.0, group.0
            ));
        }
        Ok(())
    }

    /// Starts moving `bucket` to `group`: the destination placement is
    /// saved, then the source leader is asked to stream the bucket and seal
    /// it with a barrier. The map changes only once the barrier is
    /// everywhere it must be (`MovedOut`).
    fn start_move(
        &self,
        state: &mut ControllerState,
        bucket: Bucket,
        group: GroupId,
        o: &mut Out<impl Emits>,
    ) {
        let Some(placement) = state.map.placement(bucket).cloned() else {
            return;
        };
        let Some(layout) = self.groups.iter().find(|layout| layout.group == group) else {
            return; // ignore_move_to_unknown_group
        };
        if placement.group == group
            || state.fencing.contains_key(&bucket)
            || state.moving.contains_key(&bucket)
        {
            return; // already there, or another change of it is in progress
        }
        let destination = layout.placement_at(placement.epoch.next());
        o.send(
            placement.leader,
            Msg::MoveOut {
                bucket,
                epoch: placement.epoch,
                destination: destination.clone(),
            },
        );
        if self.config.variant == Variant::EarlySwitch {
            // The broken hand-off: routing switches now, before the
            // destination holds anything.
            self.publish(state, bucket, destination, o);
            return;
        }
        state.moving.insert(
            bucket,
            Moving {
                bucket,
                epoch: placement.epoch,
                destination,
            },
        );
    }

    pub fn on_timeout(
        &self,
        _id: Id,
        state: &mut ControllerState,
        timer: &Timer,
        o: &mut Out<impl Emits>,
    ) {
        match timer {
            Timer::SuspectLeader(bucket) => {
                if !self.suspect_leader(state, *bucket, o) {
                    o.set_timer(timer.clone(), self.config.timeouts.suspect.clone());
                }
            }
            Timer::SuspectSyncFollower(bucket) => {
                if !self.suspect_sync_follower(state, *bucket, &BTreeSet::new(), o) {
                    o.set_timer(timer.clone(), self.config.timeouts.suspect.clone());
                }
            }
            Timer::PlannedMove(bucket) => {
                if state.fencing.contains_key(bucket) {
                    // One change of a bucket at a time: plan again later.
                    o.set_timer(timer.clone(), self.config.timeouts.suspect.clone());
                    return;
                }
                for (planned, group) in &self.planned_moves {
                    if planned == bucket {
                        self.start_move(state, *bucket, *group, o);
                    }
                }
            }
            Timer::Probe => self.probe(state, o),
            Timer::ClientRetry
            | Timer::Replicate(_)
            | Timer::HoldExpiry(..)
            | Timer::Pull
            | Timer::AnnounceCommit(_) => {}
        }
    }

    /// `Detector::Probes`: count the replicas that did not answer the last
    /// probe, fail over what a down replica leads and reconfigure what it
    /// serves as sync follower, resend what may have been lost, probe
    /// again.
    fn probe(&self, state: &mut ControllerState, o: &mut Out<impl Emits>) {
        let Detector::Probes { misses } = self.config.detector else {
            return;
        };
        let replicas: BTreeSet<Id> = state.map.buckets.iter().flat_map(members).collect();
        let heard = std::mem::take(&mut state.liveness.heard);
        let mut recovered = BTreeSet::new();
        for replica in &replicas {
            let missed = state.liveness.missed.entry(*replica).or_default();
            if heard.contains(replica) {
                if *missed >= misses {
                    recovered.insert(*replica);
                }
                *missed = 0;
            } else {
                *missed = missed.saturating_add(1);
            }
            o.send(*replica, Msg::Probe);
        }
        // A replica back from the dead may hold placements that changed
        // while it was away: tell it the current ones at once (it would
        // otherwise learn each when it meets a newer epoch).
        for replica in &recovered {
            for (index, placement) in state.map.buckets.iter().enumerate() {
                if placement.role_of(*replica).is_some() {
                    o.send(
                        *replica,
                        Msg::Placement {
                            bucket: Bucket(index as u32),
                            placement: placement.clone(),
                        },
                    );
                }
            }
        }
        if self.config.resend_unanswered {
            self.resend(state, o);
        }
        let down = state.down(misses);
        if self.failover.is_some() && !down.is_empty() {
            for index in 0..state.map.bucket_count() {
                let bucket = Bucket(index);
                let Some(placement) = state.map.placement(bucket) else {
                    continue;
                };
                if down.contains(&placement.leader) {
                    // Only a live sync follower can report what it holds;
                    // with every copy of the committed prefix down, wait.
                    if placement
                        .sync_followers
                        .iter()
                        .any(|follower| !down.contains(follower))
                    {
                        self.suspect_leader(state, bucket, o);
                    }
                } else if placement
                    .sync_followers
                    .iter()
                    .any(|follower| down.contains(follower))
                {
                    self.suspect_sync_follower(state, bucket, &down, o);
                }
            }
        }
        o.set_timer(Timer::Probe, self.config.timeouts.probe.clone());
    }

    /// Resends the fences and move requests in progress (UDP may have lost
    /// them; each is idempotent at the replica).
    fn resend(&self, state: &ControllerState, o: &mut Out<impl Emits>) {
        for (bucket, epoch) in &state.fencing {
            if let Some(placement) = state.map.placement(*bucket) {
                for follower in &placement.sync_followers {
                    o.send(
                        *follower,
                        Msg::Fence {
                            bucket: *bucket,
                            epoch: *epoch,
                        },
                    );
                }
            }
        }
        for (bucket, moving) in &state.moving {
            if let Some(placement) = state.map.placement(*bucket) {
                o.send(
                    placement.leader,
                    Msg::MoveOut {
                        bucket: *bucket,
                        epoch: moving.epoch,
                        destination: moving.destination.clone(),
                    },
                );
            }
        }
    }

    /// Fails `bucket` over from its leader: fence the commit quorum at N+1
    /// (the promotion follows their report, `on_fenced`). Returns whether
    /// the suspicion is settled (acted on, or moot because the bucket may
    /// not advance) rather than to be tried again later.
    fn suspect_leader(
        &self,
        state: &mut ControllerState,
        bucket: Bucket,
        o: &mut Out<impl Emits>,
    ) -> bool {
        let Some(placement) = state.map.placement(bucket).cloned() else {
            return true;
        };
        if !self.may_advance(&placement) {
            return true; // this bucket's epochs are spent
        }
        // A source leader suspected mid-move aborts the move (its
        // `MovedOut` will be ignored; the destination never became owner)
        // and fails over below.
        state.moving.remove(&bucket);
        if let Some(epoch) = state.fencing.get(&bucket) {
            // A failover of this bucket is in progress. A fence may have
            // been lost: resend it if so configured (see
            // `ProtocolConfig::resend_unanswered`; with probes, `resend` does).
            if self.config.resend_unanswered && self.config.detector == Detector::Anytime {
                for follower in &placement.sync_followers {
                    o.send(
                        *follower,
                        Msg::Fence {
                            bucket,
                            epoch: *epoch,
                        },
                    );
                }
            }
            return false;
        }
        if placement.sync_followers.is_empty() {
            // Nobody else holds the committed prefix: wait for the leader
            // to return.
            return false;
        }
        let epoch = placement.epoch.next();
        if self.config.variant == Variant::NoFencing {
            // The broken failover: promote the sync follower at once, never
            // asking what it holds.
            let mut next = placement.clone();
            next.epoch = epoch;
            next.leader = placement.sync_followers[0];
            next.sync_followers[0] = placement.leader;
            self.publish(state, bucket, next, o);
            return true;
        }
        state.fencing.insert(bucket, epoch);
        tracing::info!(%bucket, %epoch, leader = usize::from(placement.leader), "failing over: fencing the commit quorum");
        for follower in &placement.sync_followers {
            o.send(*follower, Msg::Fence { bucket, epoch });
        }
        true
    }

    /// Moves the first async follower of `bucket` that is not `down` into
    /// the sync role through epoch N+1; the suspected sync follower becomes
    /// async. Returns whether the suspicion is settled (see
    /// `suspect_leader`).
    fn suspect_sync_follower(
        &self,
        state: &mut ControllerState,
        bucket: Bucket,
        down: &BTreeSet<Id>,
        o: &mut Out<impl Emits>,
    ) -> bool {
        let Some(placement) = state.map.placement(bucket).cloned() else {
            return true;
        };
        if !self.may_advance(&placement) {
            return true;
        }
        if state.fencing.contains_key(&bucket) || state.moving.contains_key(&bucket) {
            return false; // one change of a bucket at a time
        }
        let (Some(suspect), Some(replacement)) = (
            placement.sync_followers.first().copied(),
            placement
                .async_followers
                .iter()
                .find(|follower| !down.contains(follower))
                .copied(),
        ) else {
            // No sync follower to replace, or nobody to replace it with: the
            // group keeps its quorum and writes wait.
            return false;
        };
        let mut next = placement.clone();
        next.epoch = placement.epoch.next();
        next.sync_followers[0] = replacement;
        next.async_followers.retain(|id| *id != replacement);
        next.async_followers.push(suspect);
        self.publish(state, bucket, next, o);
        true
    }

    /// A sync follower promised the fencing epoch and reported its log:
    /// choose the new leader and publish.
    fn on_fenced(
        &self,
        state: &mut ControllerState,
        follower: Id,
        bucket: Bucket,
        epoch: Epoch,
        last_epoch: Epoch,
        o: &mut Out<impl Emits>,
    ) {
        if state.fencing.get(&bucket) != Some(&epoch) {
            return; // ignore_stale_fenced: not the failover in progress
        }
        let Some(placement) = state.map.placement(bucket).cloned() else {
            return;
        };
        if placement.epoch.next() != epoch || !placement.sync_followers.contains(&follower) {
            return; // compare-and-set on the epoch and the quorum
        }
        let mut next = placement.clone();
        next.epoch = epoch;
        if self.config.variant == Variant::PromoteLagging {
            // The broken choice: the remote async follower, however far
            // behind it is.
            if let Some(remote) = placement.async_followers.first().copied() {
                next.leader = remote;
                next.async_followers.retain(|id| *id != remote);
                next.async_followers.push(placement.leader);
            }
        } else if last_epoch == placement.epoch || placement.epoch == Epoch::FIRST {
            // The follower holds the durable replayed prefix: promote it,
            // and the old leader takes its place in the commit quorum.
            next.leader = follower;
            for id in &mut next.sync_followers {
                if *id == follower {
                    *id = placement.leader;
                }
            }
        }
        // Otherwise the follower lacks the epoch-start entry of N and may
        // lack committed entries: the failover aborts, and the old leader
        // keeps the bucket at the new epoch.
        if next.leader != placement.leader {
            tracing::info!(%bucket, %epoch, leader = usize::from(next.leader), "promoted");
        } else {
            tracing::info!(%bucket, %epoch, "failover aborted: the sync follower lacks the prefix");
        }
        self.publish(state, bucket, next, o);
    }

    /// Changes `bucket` to `next` in the map (the step saves it before any
    /// send), tells every replica of the old and the new placement, and
    /// re-arms suspicion.
    fn publish(
        &self,
        state: &mut ControllerState,
        bucket: Bucket,
        next: BucketPlacement,
        o: &mut Out<impl Emits>,
    ) {
        let previous = state.map.buckets[bucket.0 as usize].clone();
        let former: BTreeSet<Id> = members(&previous).collect();
        state.map.buckets[bucket.0 as usize] = next;
        state.map.version += 1;
        state.fencing.remove(&bucket);
        state.moving.remove(&bucket);
        self.announce(&state.map, bucket, &former, o);
        self.arm_suspicion(&state.map, bucket, o);
    }

    /// Sends `bucket`'s placement to its members and to `also`.
    fn announce(
        &self,
        map: &PlacementMap,
        bucket: Bucket,
        also: &BTreeSet<Id>,
        o: &mut Out<impl Emits>,
    ) {
        let Some(placement) = map.placement(bucket) else {
            return;
        };
        let mut recipients: BTreeSet<Id> = members(placement).collect();
        recipients.extend(also.iter().copied());
        for replica in recipients {
            o.send(
                replica,
                Msg::Placement {
                    bucket,
                    placement: placement.clone(),
                },
            );
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
        for timer in [
            Timer::SuspectLeader(bucket),
            Timer::SuspectSyncFollower(bucket),
        ] {
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

/// The leader and every follower of `placement`.
fn members(placement: &BucketPlacement) -> impl Iterator<Item = Id> + '_ {
    std::iter::once(placement.leader).chain(placement.followers())
}

#[cfg(test)]
mod tests {
    //! Engine tests of the controller's failover decisions.

    use super::*;
    use crate::actor::{BerthActor, NodeState};
    use crate::test_support::{self, placement, Commands, ASYNC, CLIENT, CONTROLLER, LEADER, SYNC};
    use crate::types::Position;
    use stateright::actor::{Actor, Command as Cmd};

    fn controller(start_epoch: u64, variant: Variant) -> (BerthActor, NodeState) {
        let actor = BerthActor::Controller(ControllerActor {
            initial_map: PlacementMap::uniform(1, placement(start_epoch, LEADER, SYNC, ASYNC)),
            config: ProtocolConfig {
                variant,
                ..ProtocolConfig::default()
            },
            failover: Some(FailoverPolicy { epoch_limit: None }),
            groups: Vec::new(),
            planned_moves: Vec::new(),
        });
        let state = test_support::start(&actor, CONTROLLER);
        (actor, state)
    }

    /// A controller of `buckets` buckets, all led by `LEADER`, detecting
    /// failures by probes (down after two unanswered probes).
    fn probing_controller(buckets: u32) -> (BerthActor, NodeState) {
        let actor = BerthActor::Controller(ControllerActor {
            initial_map: PlacementMap::uniform(buckets, placement(1, LEADER, SYNC, ASYNC)),
            config: ProtocolConfig {
                detector: Detector::Probes { misses: 2 },
                resend_unanswered: true,
                ..ProtocolConfig::default()
            },
            failover: Some(FailoverPolicy { epoch_limit: None }),
            groups: Vec::new(),
            planned_moves: Vec::new(),
        });
        let state = test_support::start(&actor, CONTROLLER);
        (actor, state)
    }

    fn fences(commands: &Commands) -> Vec<(Bucket, Epoch)> {
        test_support::sent(commands)
            .into_iter()
            .filter_map(|msg| match msg {
                Msg::Fence { bucket, epoch } => Some((*bucket, *epoch)),
                _ => None,
            })
            .collect()
    }

    /// Goal: with the probe detector, a leader that stops answering is
    /// failed over — every bucket it leads at once — only after `misses`
    /// probes in a row go unanswered, while replicas that answer are never
    /// suspected; nothing fails over while everyone answers.
    #[test]
    fn probes_fail_over_every_bucket_of_a_silent_leader() {
        let (actor, mut state) = probing_controller(3);
        let probe = |state: &mut NodeState| fire(&actor, state, Timer::Probe);
        let answer = |state: &mut NodeState, from: usize| {
            deliver(&actor, state, from, alive());
        };
        // Everyone answers: probes go out, nobody is suspected.
        for _ in 0..3 {
            let commands = probe(&mut state);
            assert_eq!(
                test_support::sent(&commands)
                    .iter()
                    .filter(|msg| ***msg == Msg::Probe)
                    .count(),
                3
            );
            assert!(fences(&commands).is_empty());
            for replica in [LEADER, SYNC, ASYNC] {
                answer(&mut state, replica);
            }
        }
        // The leader falls silent: one missed probe is not enough.
        let commands = probe(&mut state);
        assert!(fences(&commands).is_empty(), "{commands:?}");
        answer(&mut state, SYNC);
        answer(&mut state, ASYNC);
        let commands = probe(&mut state);
        assert!(fences(&commands).is_empty(), "{commands:?}");
        answer(&mut state, SYNC);
        answer(&mut state, ASYNC);
        // The second missed probe: all three buckets fence at epoch 2.
        let commands = probe(&mut state);
        let fenced = fences(&commands);
        assert_eq!(
            fenced,
            vec![
                (Bucket(0), Epoch(2)),
                (Bucket(1), Epoch(2)),
                (Bucket(2), Epoch(2))
            ]
        );
        let controller = state.as_controller().unwrap();
        assert_eq!(controller.fencing.len(), 3);
        assert_eq!(
            controller.down(2).into_iter().collect::<Vec<_>>(),
            vec![Id::from(LEADER)]
        );
        // The fenced follower's reports promote it, bucket by bucket.
        for bucket in 0..3 {
            deliver(
                &actor,
                &mut state,
                SYNC,
                Msg::Fenced {
                    bucket: Bucket(bucket),
                    epoch: Epoch(2),
                    last_position: Position(0),
                    last_epoch: Epoch(0),
                },
            );
        }
        let controller = state.as_controller().unwrap();
        assert!(controller.fencing.is_empty());
        assert!(controller
            .map
            .buckets
            .iter()
            .all(|placement| placement.leader == Id::from(SYNC) && placement.epoch == Epoch(2)));
    }

    /// Goal: the probe detector never makes a change that cannot help: no
    /// failover while every sync follower is down too (nobody could report
    /// the committed prefix), and no down async follower is moved into the
    /// sync role.
    #[test]
    fn probes_do_not_act_on_dead_replacements() {
        let (actor, mut state) = probing_controller(1);
        let probe = |state: &mut NodeState| fire(&actor, state, Timer::Probe);
        // Leader and sync follower both silent; only the async follower
        // answers.
        for _ in 0..3 {
            let commands = probe(&mut state);
            assert!(fences(&commands).is_empty(), "{commands:?}");
            deliver(&actor, &mut state, ASYNC, alive());
        }
        assert!(state.as_controller().unwrap().fencing.is_empty());
        assert_eq!(state.as_controller().unwrap().map.version, 1);
        // Now the leader answers but the sync and async followers do not:
        // the sync follower is down, and so is the only replacement.
        let (actor, mut state) = probing_controller(1);
        for _ in 0..3 {
            fire(&actor, &mut state, Timer::Probe);
            deliver(&actor, &mut state, LEADER, alive());
        }
        assert_eq!(state.as_controller().unwrap().map.version, 1);
        // The async follower comes back: it replaces the down sync follower.
        deliver(&actor, &mut state, ASYNC, alive());
        deliver(&actor, &mut state, LEADER, alive());
        fire(&actor, &mut state, Timer::Probe);
        let map = &state.as_controller().unwrap().map;
        assert_eq!(map.version, 2);
        assert_eq!(map.buckets[0].sync_followers, vec![Id::from(ASYNC)]);
    }

    /// Goal: the operator's `Failover` fences a live leader's commit quorum
    /// at once (a planned failover), and a second request for the same
    /// bucket while it runs starts nothing new.
    #[test]
    fn operator_failover_fences_at_once() {
        let (actor, mut state) = probing_controller(2);
        let commands = deliver(
            &actor,
            &mut state,
            CLIENT,
            Msg::Failover { bucket: Bucket(1) },
        );
        assert_eq!(fences(&commands), vec![(Bucket(1), Epoch(2))]);
        assert!(commands.iter().any(|c| matches!(c, Cmd::Save(_))));
        let again = deliver(
            &actor,
            &mut state,
            CLIENT,
            Msg::Failover { bucket: Bucket(1) },
        );
        assert!(
            !again.iter().any(|c| matches!(c, Cmd::Save(_))),
            "{again:?}"
        );
        assert_eq!(state.as_controller().unwrap().fencing.len(), 1);
    }

    fn fire(actor: &BerthActor, state: &mut NodeState, timer: Timer) -> Commands {
        test_support::fire(actor, state, CONTROLLER, timer)
    }

    fn deliver(actor: &BerthActor, state: &mut NodeState, src: usize, msg: Msg) -> Commands {
        test_support::deliver(actor, state, CONTROLLER, src, msg)
    }

    fn fenced(epoch: u64, last_epoch: u64) -> Msg {
        Msg::Fenced {
            bucket: Bucket(0),
            epoch: Epoch(epoch),
            last_position: Position(3),
            last_epoch: Epoch(last_epoch),
        }
    }

    fn current(state: &NodeState) -> &BucketPlacement {
        &state.as_controller().unwrap().map.buckets[0]
    }

    /// Runs a leader failover of a bucket at `epoch` whose sync follower
    /// reports a log ending in an entry of `last_epoch`; returns the
    /// commands of the decision and the controller state.
    fn failover(epoch: u64, last_epoch: u64, variant: Variant) -> (Commands, NodeState) {
        let (actor, mut state) = controller(epoch, variant);
        let commands = fire(&actor, &mut state, Timer::SuspectLeader(Bucket(0)));
        assert!(
            matches!(commands[0], Cmd::Save(_)),
            "the fence is saved first"
        );
        assert!(commands.iter().any(|c| matches!(
            c,
            Cmd::Send(to, Msg::Fence { epoch: e, .. }) if *to == Id::from(SYNC) && e.0 == epoch + 1
        )));
        let commands = deliver(&actor, &mut state, SYNC, fenced(epoch + 1, last_epoch));
        (commands, state)
    }

    /// Goal: a fenced sync follower that holds the epoch's entries is
    /// promoted, the old leader takes its sync role, the map is saved before
    /// anyone hears of it, and every member is told.
    #[test]
    fn promotes_the_fenced_sync_follower_holding_the_prefix() {
        let (commands, state) = failover(3, 3, Variant::Correct);
        assert_eq!(current(&state), &placement(4, SYNC, LEADER, ASYNC));
        assert!(matches!(commands[0], Cmd::Save(_)), "{commands:?}");
        let told: Vec<usize> = commands
            .iter()
            .filter_map(|c| match c {
                Cmd::Send(to, Msg::Placement { .. }) => Some(usize::from(*to)),
                _ => None,
            })
            .collect();
        assert_eq!(told, [LEADER, SYNC, ASYNC]);
        assert_eq!(state.as_controller().unwrap().map.version, 2);
    }

    /// Goal: at the bucket's first epoch nothing precedes the log, so the
    /// sync follower is promotable even with an empty log.
    #[test]
    fn first_epoch_sync_follower_is_promotable() {
        let (_, state) = failover(1, 0, Variant::Correct);
        assert_eq!(current(&state).leader, Id::from(SYNC));
    }

    /// Goal: a sync follower without the current epoch's entries (it joined
    /// the quorum and has not caught up) is never promoted: the failover
    /// aborts and the old leader keeps the bucket at the new epoch.
    #[test]
    fn lagging_sync_follower_is_not_promoted() {
        let (_, state) = failover(3, 2, Variant::Correct);
        assert_eq!(current(&state), &placement(4, LEADER, SYNC, ASYNC));
    }

    /// Goal: the `promote-lagging` variant promotes the async follower
    /// regardless — the deviation the checker refutes.
    #[test]
    fn promote_lagging_variant_promotes_the_async_follower() {
        let (_, state) = failover(3, 3, Variant::PromoteLagging);
        assert_eq!(current(&state).leader, Id::from(ASYNC));
    }

    /// Goal: a stale report (another epoch, or from a replica outside the
    /// quorum) changes nothing: map changes are compare-and-set.
    #[test]
    fn stale_fenced_reports_are_ignored() {
        let (actor, mut state) = controller(3, Variant::Correct);
        fire(&actor, &mut state, Timer::SuspectLeader(Bucket(0)));
        let before = state.clone();
        assert!(deliver(&actor, &mut state, SYNC, fenced(5, 3)).is_empty());
        assert!(deliver(&actor, &mut state, ASYNC, fenced(4, 3)).is_empty());
        assert_eq!(state, before);
    }

    /// Goal: a suspected sync follower is replaced through a new epoch by the
    /// async follower; the leader stays.
    #[test]
    fn suspected_sync_follower_is_replaced_through_a_new_epoch() {
        let (actor, mut state) = controller(1, Variant::Correct);
        let commands = fire(&actor, &mut state, Timer::SuspectSyncFollower(Bucket(0)));
        assert!(matches!(commands[0], Cmd::Save(_)));
        assert_eq!(current(&state), &placement(2, LEADER, ASYNC, SYNC));
    }

    /// Goal: the epoch limit stops further changes, and a restarted
    /// controller resumes its saved failover rather than starting another.
    #[test]
    fn epoch_limit_and_restart() {
        let actor = BerthActor::Controller(ControllerActor {
            initial_map: PlacementMap::uniform(1, placement(2, LEADER, SYNC, ASYNC)),
            config: ProtocolConfig::default(),
            failover: Some(FailoverPolicy {
                epoch_limit: Some(Epoch(2)),
            }),
            groups: Vec::new(),
            planned_moves: Vec::new(),
        });
        let mut state = actor.on_start(Id::from(CONTROLLER), &None, &mut Out::new());
        let before = state.clone();
        let commands = fire(&actor, &mut state, Timer::SuspectLeader(Bucket(0)));
        assert!(commands.is_empty());
        assert_eq!(state, before);

        let (actor, mut state) = controller(1, Variant::Correct);
        let commands = fire(&actor, &mut state, Timer::SuspectLeader(Bucket(0)));
        let Cmd::Save(saved) = &commands[0] else {
            panic!("{commands:?}")
        };
        let mut restarted =
            actor.on_start(Id::from(CONTROLLER), &Some(saved.clone()), &mut Out::new());
        assert_eq!(restarted, state);
        let commands = fire(&actor, &mut restarted, Timer::SuspectLeader(Bucket(0)));
        assert!(
            commands.iter().all(|c| !matches!(c, Cmd::Send(..))),
            "no second fence: {commands:?}"
        );
        deliver(&actor, &mut restarted, SYNC, fenced(2, 0));
        assert_eq!(current(&restarted).leader, Id::from(SYNC));
    }

    /// A probe's answer with no lagging follower.
    fn alive() -> Msg {
        Msg::Alive {
            lagging: Vec::new(),
        }
    }

    const DEST_LEADER: usize = 5;
    const DEST_SYNC: usize = 6;

    fn mover(variant: Variant) -> (BerthActor, NodeState) {
        let actor = BerthActor::Controller(ControllerActor {
            initial_map: PlacementMap::uniform(1, placement(1, LEADER, SYNC, ASYNC)),
            config: ProtocolConfig {
                variant,
                ..ProtocolConfig::default()
            },
            failover: Some(FailoverPolicy { epoch_limit: None }),
            groups: vec![GroupLayout {
                group: GroupId(2),
                leader: Id::from(DEST_LEADER),
                sync_followers: vec![Id::from(DEST_SYNC)],
                async_followers: vec![],
            }],
            planned_moves: vec![],
        });
        let state = test_support::start(&actor, CONTROLLER);
        (actor, state)
    }

    fn move_request() -> Msg {
        Msg::MoveBucket {
            bucket: Bucket(0),
            group: GroupId(2),
        }
    }

    fn moved_out(epoch: u64) -> Msg {
        Msg::MovedOut {
            bucket: Bucket(0),
            epoch: Epoch(epoch),
            barrier: Position(4),
        }
    }

    /// Goal: while a leader reports an async follower of a group involved
    /// over its lag budget, the operator's move is refused with the reason
    /// and nothing is saved or sent to replicas; a move to an unknown group
    /// is refused too; once the leader reports no lag, the same move starts.
    #[test]
    fn move_is_refused_while_a_group_is_over_its_lag_budget() {
        let (actor, mut state) = mover(Variant::Correct);
        let lag = FollowerLag {
            bucket: Bucket(0),
            follower: Id::from(ASYNC),
            entries: 4,
            millis: 6_200,
        };
        deliver(
            &actor,
            &mut state,
            LEADER,
            Msg::Alive { lagging: vec![lag] },
        );
        let before = state.clone();
        let commands = deliver(&actor, &mut state, 99, move_request());
        match commands.as_slice() {
            [Cmd::Send(to, Msg::MoveRefused { bucket, reason })] => {
                assert_eq!(usize::from(*to), 99);
                assert_eq!(*bucket, Bucket(0));
                assert!(reason.contains("over its lag budget"), "{reason}");
                assert!(
                    reason.contains("replica 3 is 6.2 s (4 entries) behind on b0"),
                    "{reason}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(state, before, "a refused move changes nothing");
        let unknown = deliver(
            &actor,
            &mut state,
            99,
            Msg::MoveBucket {
                bucket: Bucket(0),
                group: GroupId(9),
            },
        );
        assert!(matches!(
            unknown.as_slice(),
            [Cmd::Send(_, Msg::MoveRefused { reason, .. })] if reason.contains("no group 9")
        ));
        deliver(&actor, &mut state, LEADER, alive());
        let commands = deliver(&actor, &mut state, 99, move_request());
        assert!(commands
            .iter()
            .any(|c| matches!(c, Cmd::Send(_, Msg::MoveOut { .. }))));
    }

    /// Goal: a move is saved and the source asked to move out; the map
    /// changes only on the source's `MovedOut` for that epoch, saved before
    /// it is published to the old and new members.
    #[test]
    fn move_publishes_only_after_the_barrier() {
        let (actor, mut state) = mover(Variant::Correct);
        let commands = deliver(&actor, &mut state, 99, move_request());
        assert!(matches!(commands[0], Cmd::Save(_)));
        assert!(commands.iter().any(|c| matches!(
            c,
            Cmd::Send(to, Msg::MoveOut { epoch: Epoch(1), .. }) if *to == Id::from(LEADER)
        )));
        assert_eq!(current(&state).group, GroupId(1), "routing unchanged");

        // A report from another epoch or another replica changes nothing.
        let before = state.clone();
        assert!(deliver(&actor, &mut state, LEADER, moved_out(2)).is_empty());
        assert!(deliver(&actor, &mut state, SYNC, moved_out(1)).is_empty());
        assert_eq!(state, before);

        let commands = deliver(&actor, &mut state, LEADER, moved_out(1));
        assert!(matches!(commands[0], Cmd::Save(_)));
        assert_eq!(
            current(&state),
            &BucketPlacement {
                epoch: Epoch(2),
                group: GroupId(2),
                leader: Id::from(DEST_LEADER),
                sync_followers: vec![Id::from(DEST_SYNC)],
                async_followers: vec![],
            }
        );
        let told: BTreeSet<usize> = commands
            .iter()
            .filter_map(|c| match c {
                Cmd::Send(to, Msg::Placement { .. }) => Some(usize::from(*to)),
                _ => None,
            })
            .collect();
        assert_eq!(
            told,
            BTreeSet::from([LEADER, SYNC, ASYNC, DEST_LEADER, DEST_SYNC])
        );
        assert!(state.as_controller().unwrap().moving.is_empty());
    }

    /// Goal: suspecting the source leader mid-move aborts the move and
    /// fences; a late `MovedOut` is then ignored.
    #[test]
    fn suspected_source_aborts_the_move() {
        let (actor, mut state) = mover(Variant::Correct);
        deliver(&actor, &mut state, 99, move_request());
        fire(&actor, &mut state, Timer::SuspectLeader(Bucket(0)));
        let controller = state.as_controller().unwrap();
        assert!(controller.moving.is_empty());
        assert!(!controller.fencing.is_empty());
        let before = state.clone();
        assert!(deliver(&actor, &mut state, LEADER, moved_out(1)).is_empty());
        assert_eq!(state, before);
    }

    /// Goal: the `early-switch` variant publishes the destination at once,
    /// before any barrier — the deviation the checker refutes.
    #[test]
    fn early_switch_variant_publishes_at_once() {
        let (actor, mut state) = mover(Variant::EarlySwitch);
        deliver(&actor, &mut state, 99, move_request());
        assert_eq!(current(&state).leader, Id::from(DEST_LEADER));
    }
}
