//! Catching up a follower that is behind without waiting for new writes
//! (`ProtocolConfig::catch_up`; docs/protocol.md, "Catching up").
//!
//! A leader resends what a follower lacks on its timer, at most
//! `leader_resends` times in a row without progress. A follower that was
//! restarted, paused or lost a datagram while its bucket is idle would
//! otherwise never hear from the leader again. So every sign that a
//! follower is behind re-arms the leader's resends:
//!
//! - a recovering replica tells the leader of each bucket it follows how
//!   far it has committed (an `Appended` of its commit position: its
//!   committed prefix is durable and in every later leader's log);
//! - a follower that receives an append it cannot place (a gap: it lacks
//!   the entry the append follows) answers the same way;
//! - a leader that hears such an answer, short of its log or its commit,
//!   sends what the follower lacks and re-arms its resends;
//! - a leader whose resends ran out keeps telling each lagging follower
//!   where its log ends (an empty `Append`, on `Timeouts::heartbeat`), so
//!   that a follower back from a pause notices its gap and answers.

use super::{BucketReplica, ReplicaActor, ReplicaState};
use crate::messages::{Emits, Msg, Timer};
use crate::types::{Bucket, Position};
use crate::variant::Variant;
use stateright::actor::{Id, Out};

impl ReplicaActor {
    /// A recovering replica (`id`) asks the leader of each bucket it
    /// follows to catch it up, by telling how far it has committed.
    pub(super) fn ask_to_catch_up(&self, id: Id, state: &ReplicaState, o: &mut Out<impl Emits>) {
        if !self.config.catch_up {
            return;
        }
        for (bucket, replica) in &state.buckets {
            let durable = &replica.durable;
            if durable.placement.leader == id
                || durable.placement.role_of(id).is_none()
                || durable.promised_epoch != durable.placement.epoch
            {
                continue;
            }
            o.send(
                durable.placement.leader,
                Msg::Appended {
                    bucket: *bucket,
                    epoch: durable.placement.epoch,
                    position: durable.commit_position,
                },
            );
        }
    }

    /// A follower got an append from its leader that it cannot place: it
    /// answers with its commit position, which the leader takes as a sign
    /// that it is behind.
    pub(super) fn answer_gap(
        &self,
        src: Id,
        bucket: Bucket,
        replica: &BucketReplica,
        o: &mut Out<impl Emits>,
    ) {
        if !self.config.catch_up {
            return;
        }
        o.send(
            src,
            Msg::Appended {
                bucket,
                epoch: replica.durable.placement.epoch,
                position: replica.durable.commit_position,
            },
        );
    }

    /// The leader heard from `follower` that it is through `position`, no
    /// further than the leader already knew: if that is short of the
    /// leader's log, and the leader's resends have gone unanswered (or it
    /// has none), send it what it lacks (or the commit) and re-arm the
    /// resends.
    pub(super) fn follower_behind(
        &self,
        bucket: Bucket,
        replica: &mut BucketReplica,
        follower: Id,
        position: Position,
        o: &mut Out<impl Emits>,
    ) {
        let durable = &replica.durable;
        if position >= durable.log.last_position() {
            return;
        }
        let last = durable.log.last_position();
        if replica.leader.match_positions.get(&follower) >= Some(&last) {
            // It holds the log but not the commit (it missed an
            // announcement): tell it.
            if position < durable.commit_position {
                self.tell_commit(bucket, replica, |id| *id == follower, o);
            }
            return;
        }
        let resends = self.config.leader_resends;
        if resends > 0 && replica.leader.retransmits_left == resends {
            // Resends are under way and the follower progressed since the
            // last one: an echo of an append in flight, not a follower
            // left behind (answering every echo would keep appends and
            // answers circling for as long as writes continue).
            return;
        }
        if self.config.variant == Variant::ResendsRunOut {
            return;
        }
        replica.leader.retransmits_left = self.config.leader_resends;
        let learners = durable.learners();
        if let Some(next) = self.append_for(bucket, replica, follower, &learners) {
            o.send(follower, next);
        }
        if self.config.leader_resends > 0 {
            o.set_timer(
                Timer::Replicate(bucket),
                self.config.timeouts.replicate.clone(),
            );
        }
    }

    /// The resend timer fired with no resends left: tell every lagging
    /// follower where the log ends (it answers if it cannot place it),
    /// send lagging learners what they lack, and fire again while anyone
    /// lags.
    pub(super) fn heartbeat(
        &self,
        bucket: Bucket,
        replica: &mut BucketReplica,
        o: &mut Out<impl Emits>,
    ) {
        let last = replica.durable.log.last_position();
        let leader = &replica.leader;
        let lags = |id: &Id| leader.match_positions.get(id).is_none_or(|m| *m < last);
        let mut lagging = replica.durable.placement.followers().any(|id| lags(&id));
        self.tell_commit(bucket, replica, lags, o);
        let learners = replica.durable.learners();
        for learner in &learners {
            if let Some(next) = self.append_for(bucket, replica, *learner, &learners) {
                lagging = true;
                o.send(*learner, next);
            }
        }
        if lagging && self.config.variant != Variant::ResendsRunOut {
            o.set_timer(
                Timer::Replicate(bucket),
                self.config.timeouts.heartbeat.clone(),
            );
        }
    }
}
