//! A replica as leader: it takes client writes and token queries, appends
//! at its epoch and sends each follower what it lacks (resending on its
//! timer), commits once every sync follower holds an entry (the commit
//! rule), answers the clients waiting on what committed, and expires holds.

use super::durable::recorded_reply;
use super::{
    BucketReplica, Delivery, DurableBucket, LeaderState, ReplicaActor, ReplicaState, Waiter,
};
use crate::bucket::Command;
use crate::log::Entry;
use crate::messages::{Emits, Msg, Timer};
use crate::types::{Bucket, Epoch, Position, Token};
use crate::variant::Variant;
use stateright::actor::{Id, Out};

/// Which followers an append goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum FollowerSet {
    All,
    /// Only the commit quorum.
    Sync,
}

impl BucketReplica {
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

impl ReplicaActor {
    /// A leader (re)starts the clock of every active hold of `bucket`.
    pub(super) fn arm_hold_expiries(
        &self,
        bucket: Bucket,
        durable: &DurableBucket,
        o: &mut Out<impl Emits>,
    ) {
        let Some(ttl) = &self.config.hold_ttl else {
            return;
        };
        for (_, hold) in durable.state_through_last().holds() {
            o.set_timer(Timer::HoldExpiry(bucket, hold), ttl.clone());
        }
    }

    /// A hold's time ran out: if it is still active, the leader ends it with
    /// an `Expire` entry, committed like any write.
    pub(super) fn expire_hold(
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

    /// A follower (or a destination member) durably matches the leader's
    /// log through `position`: record it, send the next bounded append,
    /// commit what the sync followers hold, and drive a move out.
    pub(super) fn on_appended(
        &self,
        delivery: Delivery,
        state: &mut ReplicaState,
        epoch: Epoch,
        position: Position,
        o: &mut Out<impl Emits>,
    ) {
        let Delivery { id, src, bucket } = delivery;
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
            if self.config.catch_up {
                // Not progress, but a sign: the follower says how far it
                // is; if that is short of this log or its commit, resend.
                self.follower_behind(bucket, replica, src, position, o);
            }
            return; // ignore_duplicate_appended
        }
        let was_moved_out = Self::moved_out(replica);
        replica.leader.match_positions.insert(src, position);
        if replica
            .leader
            .snapshots
            .get(&src)
            .is_some_and(|sending| position >= sending.position)
        {
            replica.leader.snapshots.remove(&src); // installed
        }
        replica.leader.retransmits_left = self.config.leader_resends;
        if self.config.max_append_entries.is_some() || self.config.catch_up {
            // Catching up in bounded appends (or after a sign that the
            // follower is behind): send the next one.
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

    /// A follower refused an append because it promised a newer epoch.
    pub(super) fn on_append_refused(&self, state: &mut ReplicaState, bucket: Bucket, epoch: Epoch) {
        let Some(replica) = state.buckets.get_mut(&bucket) else {
            return;
        };
        // A follower promised a newer epoch: this leader is fenced and
        // must never append at its old epoch again.
        if epoch > replica.durable.promised_epoch {
            DurableBucket::edit(&mut replica.durable).promised_epoch = epoch;
            replica.leader = LeaderState::new(&self.config);
        }
    }

    /// The resend timer: send each follower that lags what it lacks, and
    /// arm the timer again while one lags and resends are left.
    pub(super) fn on_replicate(
        &self,
        id: Id,
        state: &mut ReplicaState,
        bucket: Bucket,
        o: &mut Out<impl Emits>,
    ) {
        let Some(replica) = state.buckets.get_mut(&bucket) else {
            return;
        };
        if !replica.durable.is_leader(id) {
            return;
        }
        if replica.leader.retransmits_left == 0 {
            if self.config.catch_up {
                self.heartbeat(bucket, replica, o);
            }
            return;
        }
        let lagging = self.send_appends(bucket, replica, FollowerSet::All, o);
        if lagging {
            replica.leader.retransmits_left -= 1;
            o.set_timer(
                Timer::Replicate(bucket),
                self.config.timeouts.replicate.clone(),
            );
        }
    }

    /// The leader appends the entry `entry` makes at its epoch (the step
    /// saves it), arms its resend timer, and sends every follower what it
    /// lacks. Returns the entry's position.
    pub(super) fn append_as_leader(
        &self,
        bucket: Bucket,
        replica: &mut BucketReplica,
        entry: impl FnOnce(Epoch) -> Entry,
        o: &mut Out<impl Emits>,
    ) -> Position {
        let durable = DurableBucket::edit(&mut replica.durable);
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

    /// `bucket` if this replica leads it at the client's `epoch`. Otherwise
    /// the client is redirected with the newest epoch this replica knows
    /// (and refreshes its map and retries with the same token); an epoch
    /// newer than this replica's placement makes it ask the controller.
    pub(super) fn leading<'a>(
        &self,
        delivery: Delivery,
        state: &'a mut ReplicaState,
        epoch: Epoch,
        token: Token,
        o: &mut Out<impl Emits>,
    ) -> Option<&'a mut BucketReplica> {
        let Delivery {
            id,
            src: client,
            bucket,
        } = delivery;
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
    pub(super) fn on_query(
        &self,
        delivery: Delivery,
        state: &mut ReplicaState,
        epoch: Epoch,
        token: Token,
        o: &mut Out<impl Emits>,
    ) {
        let Delivery {
            src: client,
            bucket,
            ..
        } = delivery;
        let Some(replica) = self.leading(delivery, state, epoch, token, o) else {
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
                self.append_as_leader(bucket, replica, |epoch| Entry::void(epoch, token), o)
            }
        };
        replica.leader.waiters.insert(Waiter {
            position,
            client,
            token,
        });
        self.commit_and_reply(bucket, replica, o);
    }

    /// A client's write: redirected unless this replica leads the bucket at
    /// the client's epoch; a decided token answered from the idempotency
    /// table; a pending one waits for its entry (and the commit quorum is
    /// sent what it lacks); otherwise the command is appended. The client
    /// is answered once its entry commits.
    pub(super) fn on_request(
        &self,
        delivery: Delivery,
        state: &mut ReplicaState,
        epoch: Epoch,
        command: Command,
        o: &mut Out<impl Emits>,
    ) {
        let Delivery {
            id,
            src: client,
            bucket,
        } = delivery;
        let token = command.token;
        if self.config.variant == Variant::MultiLeader {
            if let Some(replica) = state.buckets.get_mut(&bucket).filter(|replica| {
                replica.durable.placement.epoch == epoch
                    && replica.durable.placement.async_followers.contains(&id)
            }) {
                return Self::accept_regional_write(bucket, replica, client, command, o);
            }
        }
        let Some(replica) = self.leading(delivery, state, epoch, token, o) else {
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
    pub(super) fn accept_regional_write(
        bucket: Bucket,
        replica: &mut BucketReplica,
        client: Id,
        command: Command,
        o: &mut Out<impl Emits>,
    ) {
        if recorded_reply(bucket, &replica.durable, command.token).is_none() {
            let durable = DurableBucket::edit(&mut replica.durable);
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
    pub(super) fn send_appends(
        &self,
        bucket: Bucket,
        replica: &mut BucketReplica,
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
    /// `Append` after the position it last matched, or a snapshot (or its
    /// next chunk) if it is a learner yet unheard from or behind the
    /// leader's own snapshot; at most `max_append_entries` entries. `None`
    /// if it lacks nothing.
    pub(super) fn append_for(
        &self,
        bucket: Bucket,
        replica: &mut BucketReplica,
        follower: Id,
        learners: &[Id],
    ) -> Option<Msg> {
        let durable = &replica.durable;
        let matched = replica.leader.match_positions.get(&follower).copied();
        if matched.is_some_and(|matched| matched >= durable.log.last_position()) {
            return None;
        }
        let matched = matched.unwrap_or_default();
        let unknown_learner =
            learners.contains(&follower) && !replica.leader.match_positions.contains_key(&follower);
        if unknown_learner || matched < durable.log.start() {
            // A destination of a move starts from a snapshot; so does a
            // follower behind this leader's own snapshot.
            return Some(self.snapshot_for(bucket, replica, follower));
        }
        Some(Msg::Append {
            bucket,
            epoch: durable.placement.epoch,
            prev_position: matched,
            prev_epoch: durable
                .log
                .epoch_at(matched)
                .expect("matched entries exist"),
            entries: self.limited(durable.log.entries_after(matched)),
            commit_position: durable.commit_position,
        })
    }

    /// Commits what the sync followers hold and answers the clients whose
    /// entries are now committed.
    pub(super) fn commit_and_reply(
        &self,
        bucket: Bucket,
        replica: &mut BucketReplica,
        o: &mut Out<impl Emits>,
    ) {
        let quorum = replica.quorum_position(self.config.variant);
        let before = replica.durable.commit_position;
        if quorum > before {
            DurableBucket::edit(&mut replica.durable).commit_through(quorum);
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
                let committed = durable
                    .log
                    .iter_after(before)
                    .take_while(|(position, _)| *position <= durable.commit_position);
                for (_, entry) in committed {
                    let Some(command) = entry.as_command() else {
                        continue;
                    };
                    if let crate::bucket::Op::Confirm { hold, .. } = &command.op {
                        // A confirmed hold no longer expires.
                        o.cancel_timer(Timer::HoldExpiry(bucket, *hold));
                        continue;
                    }
                    if matches!(command.op, crate::bucket::Op::Hold { .. })
                        && durable
                            .applied
                            .recorded(&command.token)
                            .is_some_and(|r| r.outcome == crate::Outcome::Held)
                    {
                        o.set_timer(Timer::HoldExpiry(bucket, command.token), ttl.clone());
                    }
                }
            }
            // Entries a follower still lacks stay (within a bound).
            let needed = replica
                .durable
                .placement
                .followers()
                .map(|id| {
                    let matched = replica.leader.match_positions.get(&id);
                    matched.copied().unwrap_or_default()
                })
                .min()
                .unwrap_or(replica.durable.commit_position);
            let retained = self.config.retained_entries;
            DurableBucket::edit(&mut replica.durable).fold_keeping(retained, needed);
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

    /// Tells every follower that already holds the leader's whole log the
    /// new commit position, with an empty `Append` (the others learn it
    /// with the entries they still lack). Without it a follower learns a
    /// commit only with the next write, and cannot serve a read of it.
    pub(super) fn announce_commit(
        &self,
        bucket: Bucket,
        replica: &BucketReplica,
        o: &mut Out<impl Emits>,
    ) {
        let last = replica.durable.log.last_position();
        let matched = |follower: &Id| replica.leader.match_positions.get(follower) == Some(&last);
        self.tell_commit(bucket, replica, matched, o);
    }

    /// Sends the followers that `to` selects an empty `Append` after the
    /// leader's last entry, carrying its commit position: a follower that
    /// holds the whole log takes the commit and acknowledges; one that does
    /// not ignores it (the leader's appends catch it up).
    pub(super) fn tell_commit(
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
