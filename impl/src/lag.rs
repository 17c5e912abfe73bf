//! Lag measurement at a leader (a measurement, not a decision).
//!
//! For each bucket a replica leads and each of its followers, the leader
//! remembers when the follower last matched its whole log (the follower's
//! acknowledged position reached the leader's last position). The lag in
//! time is how long ago that was — zero while it matches; the lag in
//! entries is what it lacks. This is Kafka's "time since the follower was
//! last caught up": a follower of an idle bucket is not lagging however
//! long ago the last write was, and one that stopped acknowledging while
//! writes continue falls further behind by the second.
//!
//! The runtime measures every `PERIOD`, hands the followers over the RPO
//! budget to the replica (`ReplicaState::lagging`, reported to the
//! controller with every `Alive`; the controller decides what to refuse)
//! and adds the per-follower figures to status reports.

use crate::wire::{BucketReport, FollowerReport};
use berth_model::actor::FollowerLag;
use berth_model::{Bucket, NodeState, Position};
use stateright::actor::Id;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How often the runtime measures.
pub const PERIOD: Duration = Duration::from_millis(100);

/// The last moment each follower matched its leader's whole log.
#[derive(Debug, Default)]
pub struct LagMeter {
    caught_up_at: HashMap<(Bucket, Id), Instant>,
    /// The latest figures: (bucket, follower) → (entries, millis).
    latest: HashMap<(Bucket, Id), (u64, u64)>,
    last_run: Option<Instant>,
}

impl LagMeter {
    /// Whether a measurement is due at `now`.
    pub fn due(&self, now: Instant) -> bool {
        self.last_run
            .is_none_or(|last| now.duration_since(last) >= PERIOD)
    }

    /// Measures every follower of every bucket `id` leads in `state`, and
    /// returns the async followers over `budget`. A follower never seen
    /// caught up since this leader started leading counts from then.
    pub fn measure(
        &mut self,
        id: Id,
        state: &NodeState,
        now: Instant,
        budget: Duration,
    ) -> Vec<FollowerLag> {
        self.last_run = Some(now);
        let NodeState::Replica(replica) = state else {
            return Vec::new();
        };
        let mut over = Vec::new();
        let mut latest = HashMap::new();
        for (bucket, bucket_replica) in &replica.buckets {
            let durable = &bucket_replica.durable;
            if !durable.is_leader(id) {
                continue;
            }
            let last = durable.log.last_position();
            let placement = &durable.placement;
            let followers = placement
                .sync_followers
                .iter()
                .map(|f| (f, false))
                .chain(placement.async_followers.iter().map(|f| (f, true)));
            for (follower, remote) in followers {
                let matched = bucket_replica
                    .leader
                    .match_positions
                    .get(follower)
                    .copied()
                    .unwrap_or(Position(0));
                let key = (*bucket, *follower);
                let since = if matched >= last {
                    self.caught_up_at.insert(key, now);
                    now
                } else {
                    *self.caught_up_at.entry(key).or_insert(now)
                };
                let entries = last.0.saturating_sub(matched.0);
                let millis = now.duration_since(since).as_millis() as u64;
                latest.insert(key, (entries, millis));
                if remote && millis > budget.as_millis() as u64 {
                    over.push(FollowerLag {
                        bucket: *bucket,
                        follower: *follower,
                        entries,
                        millis,
                    });
                }
            }
        }
        // Forget buckets this replica no longer leads.
        self.caught_up_at.retain(|key, _| latest.contains_key(key));
        self.latest = latest;
        over
    }

    /// Adds the latest figures to a status report's buckets.
    pub fn fill(&self, buckets: &mut [BucketReport]) {
        for report in buckets {
            let mut followers: Vec<FollowerReport> = self
                .latest
                .iter()
                .filter(|((bucket, _), _)| *bucket == report.bucket)
                .map(|((_, follower), (entries, millis))| FollowerReport {
                    follower: usize::from(*follower),
                    entries: *entries,
                    millis: *millis,
                })
                .collect();
            followers.sort_by_key(|f| f.follower);
            report.followers = followers;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_model::actor::ProtocolConfig;
    use berth_model::placement::{BucketPlacement, PlacementMap};
    use berth_model::{BerthActor, GroupId, ReplicaActor};
    use stateright::actor::{Actor, Out};

    fn leader_state() -> NodeState {
        let placement = BucketPlacement {
            epoch: berth_model::Epoch(1),
            group: GroupId(1),
            leader: Id::from(1),
            sync_followers: vec![Id::from(2)],
            async_followers: vec![Id::from(3)],
        };
        let actor = BerthActor::Replica(ReplicaActor {
            initial_map: PlacementMap::uniform(1, placement),
            region: "madrid-a".into(),
            controller: Id::from(0),
            config: ProtocolConfig::default(),
        });
        actor.on_start(Id::from(1), &None, &mut Out::new())
    }

    /// Goal: a follower that matches the log is never lagging; one that
    /// stops acknowledging while the log grows is over budget once the
    /// budget has passed, with the entries it lacks — and only async
    /// followers count against the RPO budget.
    #[test]
    fn lag_grows_from_the_last_time_a_follower_was_caught_up() {
        let mut state = leader_state();
        let mut meter = LagMeter::default();
        let start = Instant::now();
        let budget = Duration::from_millis(500);
        assert!(meter.measure(Id::from(1), &state, start, budget).is_empty());
        // The leader appends three entries nobody acknowledged.
        {
            let NodeState::Replica(replica) = &mut state else {
                unreachable!()
            };
            let bucket = replica.buckets.get_mut(&Bucket(0)).unwrap();
            let durable = std::sync::Arc::make_mut(&mut bucket.durable);
            for _ in 0..3 {
                durable
                    .log
                    .push(berth_model::log::Entry::noop(berth_model::Epoch(1)));
            }
            bucket
                .leader
                .match_positions
                .insert(Id::from(2), Position(3));
        }
        let later = start + Duration::from_millis(400);
        assert!(meter.measure(Id::from(1), &state, later, budget).is_empty());
        let late = start + Duration::from_millis(900);
        let over = meter.measure(Id::from(1), &state, late, budget);
        assert_eq!(over.len(), 1, "{over:?}");
        assert_eq!(over[0].follower, Id::from(3));
        assert_eq!(over[0].entries, 3);
        assert_eq!(over[0].millis, 900);
        let mut reports = vec![BucketReport {
            bucket: Bucket(0),
            epoch: berth_model::Epoch(1),
            role: None,
            last: Position(3),
            applied: Position(0),
            writes: 0,
            followers: Vec::new(),
        }];
        meter.fill(&mut reports);
        assert_eq!(reports[0].followers.len(), 2);
        assert_eq!(
            reports[0].followers[0].millis, 0,
            "the sync follower matches"
        );
    }
}
