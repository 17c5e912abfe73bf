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
//! The runtime measures every `PERIOD`. The async followers over the RPO
//! budget go to the replica (`ReplicaState::lagging`, reported to the
//! controller with every `Alive`; the controller decides what to refuse),
//! as each follower's worst bucket per group ([`worst_per_group`]), so
//! that an `Alive` stays one small datagram however many buckets lag.
//! Status reports carry the same figures summarised per group and follower
//! ([`LagMeter::summary`]). The log says when the set of followers over the
//! budget changes, in one line ([`LagMeter::note`]); each bucket's crossing
//! is at `debug`.

use crate::report::FollowerSummary;
use crate::status::grouped;
use berth_model::actor::FollowerLag;
use berth_model::{Bucket, GroupId, NodeState, Position};
use stateright::actor::Id;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// How often the runtime measures.
pub const PERIOD: Duration = Duration::from_millis(100);

/// One follower of one bucket, as last measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Lag {
    group: GroupId,
    remote: bool,
    entries: u64,
    millis: u64,
}

/// An async follower over the budget on one bucket, and the bucket's group.
pub type Over = (GroupId, FollowerLag);

/// The last moment each follower matched its leader's whole log.
#[derive(Debug, Default)]
pub struct LagMeter {
    caught_up_at: HashMap<(Bucket, Id), Instant>,
    /// The latest figures per (bucket, follower).
    latest: HashMap<(Bucket, Id), Lag>,
    last_run: Option<Instant>,
    /// The (bucket, follower) pairs over the budget at the last `note`.
    noted: BTreeSet<(Bucket, Id)>,
}

impl LagMeter {
    /// Whether a measurement is due at `now`.
    pub fn due(&self, now: Instant) -> bool {
        self.last_run
            .is_none_or(|last| now.duration_since(last) >= PERIOD)
    }

    /// Measures every follower of every bucket `id` leads in `state`, and
    /// returns the async followers over `budget`, one per bucket. A
    /// follower never seen caught up since this leader started leading
    /// counts from then.
    pub fn measure(
        &mut self,
        id: Id,
        state: &NodeState,
        now: Instant,
        budget: Duration,
    ) -> Vec<Over> {
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
                let group = placement.group;
                latest.insert(
                    key,
                    Lag {
                        group,
                        remote,
                        entries,
                        millis,
                    },
                );
                if remote && millis > budget.as_millis() as u64 {
                    let lag = FollowerLag {
                        bucket: *bucket,
                        follower: *follower,
                        entries,
                        millis,
                    };
                    over.push((group, lag));
                }
            }
        }
        // Forget buckets this replica no longer leads.
        self.caught_up_at.retain(|key, _| latest.contains_key(key));
        self.latest = latest;
        over
    }

    /// Notes the followers `over` the budget (as `measure` returned them)
    /// and returns the line to log if the *set* of lagging followers
    /// changed since the last note: how many, and for each, on how many
    /// buckets and its worst; or that lag is back within budget. Buckets
    /// that crossed either way are logged at `debug` here.
    pub fn note(&mut self, over: &[Over]) -> Option<String> {
        let now: BTreeSet<(Bucket, Id)> = over
            .iter()
            .map(|(_, lag)| (lag.bucket, lag.follower))
            .collect();
        if now == self.noted {
            return None;
        }
        for (bucket, follower) in now.difference(&self.noted) {
            tracing::debug!(%bucket, follower = usize::from(*follower), "over the lag budget");
        }
        for (bucket, follower) in self.noted.difference(&now) {
            tracing::debug!(%bucket, follower = usize::from(*follower), "back within the lag budget");
        }
        let followers = |set: &BTreeSet<(Bucket, Id)>| -> BTreeSet<Id> {
            set.iter().map(|(_, follower)| *follower).collect()
        };
        let changed = followers(&now) != followers(&self.noted);
        self.noted = now;
        if !changed {
            return None;
        }
        if over.is_empty() {
            return Some("lag back within budget: no follower over the lag budget".to_owned());
        }
        Some(describe(over))
    }

    /// The latest figures per (group, follower) over the buckets led here:
    /// what a status report carries instead of one line per bucket.
    pub fn summary(&self, budget: Duration) -> Vec<FollowerSummary> {
        let budget = budget.as_millis() as u64;
        let mut by: BTreeMap<(GroupId, Id), FollowerSummary> = BTreeMap::new();
        for ((bucket, follower), lag) in &self.latest {
            let summary = by.entry((lag.group, *follower)).or_insert(FollowerSummary {
                group: lag.group.0,
                follower: usize::from(*follower),
                remote: lag.remote,
                buckets: 0,
                over: 0,
                entries: 0,
                millis: 0,
                worst: *bucket,
                worst_entries: lag.entries,
            });
            summary.buckets += 1;
            summary.remote |= lag.remote;
            if lag.remote && lag.millis > budget {
                summary.over += 1;
            }
            summary.entries = summary.entries.max(lag.entries);
            let worse = (lag.millis, std::cmp::Reverse(*bucket))
                > (summary.millis, std::cmp::Reverse(summary.worst));
            if worse {
                summary.millis = lag.millis;
                summary.worst = *bucket;
                summary.worst_entries = lag.entries;
            }
        }
        by.into_values().collect()
    }
}

/// "2 followers over the lag budget: replica 3 on 1,024 buckets (worst
/// 4.2 s, 17 entries, on b5); replica 6 on 1 bucket (worst ...)".
fn describe(over: &[Over]) -> String {
    let mut by: BTreeMap<Id, (u64, &FollowerLag)> = BTreeMap::new();
    for (_, lag) in over {
        let entry = by.entry(lag.follower).or_insert((0, lag));
        entry.0 += 1;
        if lag.millis > entry.1.millis {
            entry.1 = lag;
        }
    }
    let parts: Vec<String> = by
        .iter()
        .map(|(follower, (count, worst))| {
            format!(
                "replica {} on {} bucket{} (worst {:.1} s, {} entries, on {})",
                usize::from(*follower),
                grouped(*count),
                if *count == 1 { "" } else { "s" },
                worst.millis as f64 / 1000.0,
                worst.entries,
                worst.bucket
            )
        })
        .collect();
    format!(
        "{} follower{} over the lag budget: {}",
        by.len(),
        if by.len() == 1 { "" } else { "s" },
        parts.join("; ")
    )
}

/// What the replica reports to the controller: each async follower's worst
/// bucket per group (the controller refuses moves of a group with any
/// follower over its budget, so one per group and follower decides the
/// same and keeps an `Alive` small at any bucket count).
pub fn worst_per_group(over: &[Over]) -> Vec<FollowerLag> {
    let mut worst: BTreeMap<(GroupId, Id), FollowerLag> = BTreeMap::new();
    for (group, lag) in over {
        let entry = worst
            .entry((*group, lag.follower))
            .or_insert_with(|| lag.clone());
        if lag.millis > entry.millis {
            *entry = lag.clone();
        }
    }
    worst.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_model::actor::ProtocolConfig;
    use berth_model::placement::{BucketPlacement, PlacementMap};
    use berth_model::{BerthActor, ReplicaActor};
    use stateright::actor::{Actor, Out};

    fn leader_state(buckets: u32) -> NodeState {
        let placement = BucketPlacement {
            epoch: berth_model::Epoch(1),
            group: GroupId(1),
            leader: Id::from(1),
            sync_followers: vec![Id::from(2)],
            async_followers: vec![Id::from(3)],
        };
        let actor = BerthActor::Replica(ReplicaActor {
            initial_map: PlacementMap::uniform(buckets, placement),
            region: "madrid-a".into(),
            controller: Id::from(0),
            config: ProtocolConfig::default(),
        });
        actor.on_start(Id::from(1), &None, &mut Out::new())
    }

    /// The leader appends three entries to `bucket` that only the sync
    /// follower acknowledges.
    fn append_unacknowledged(state: &mut NodeState, bucket: u32) {
        let NodeState::Replica(replica) = state else {
            unreachable!()
        };
        let bucket = replica.buckets.get_mut(&Bucket(bucket)).unwrap();
        let durable = berth_model::replica::DurableBucket::edit(&mut bucket.durable);
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

    /// Goal: a follower that matches the log is never lagging; one that
    /// stops acknowledging while the log grows is over budget once the
    /// budget has passed, with the entries it lacks — and only async
    /// followers count against the RPO budget.
    #[test]
    fn lag_grows_from_the_last_time_a_follower_was_caught_up() {
        let mut state = leader_state(1);
        let mut meter = LagMeter::default();
        let start = Instant::now();
        let budget = Duration::from_millis(500);
        assert!(meter.measure(Id::from(1), &state, start, budget).is_empty());
        append_unacknowledged(&mut state, 0);
        let later = start + Duration::from_millis(400);
        assert!(meter.measure(Id::from(1), &state, later, budget).is_empty());
        let late = start + Duration::from_millis(900);
        let over = meter.measure(Id::from(1), &state, late, budget);
        assert_eq!(over.len(), 1, "{over:?}");
        let (group, lag) = &over[0];
        assert_eq!(*group, GroupId(1));
        assert_eq!(lag.follower, Id::from(3));
        assert_eq!(lag.entries, 3);
        assert_eq!(lag.millis, 900);
        let summary = meter.summary(budget);
        assert_eq!(summary.len(), 2, "{summary:?}");
        assert_eq!(summary[0].follower, 2);
        assert_eq!(summary[0].millis, 0, "the sync follower matches");
        assert!(!summary[0].remote);
        assert_eq!(
            (
                summary[1].follower,
                summary[1].over,
                summary[1].worst_entries
            ),
            (3, 1, 3)
        );
    }

    /// Goal: with a thousand buckets lagging, the log gets one line when
    /// the set of lagging followers changes (not one per bucket per
    /// measurement), one line when lag is back within budget, and the
    /// controller is told one lag per group and follower.
    #[test]
    fn lag_is_logged_once_per_change_of_the_lagging_set() {
        let mut state = leader_state(1024);
        let mut meter = LagMeter::default();
        let start = Instant::now();
        let budget = Duration::from_millis(500);
        meter.measure(Id::from(1), &state, start, budget);
        for bucket in 0..1024 {
            append_unacknowledged(&mut state, bucket);
        }
        let mut lines = Vec::new();
        for tick in 1..=30 {
            let now = start + PERIOD * tick;
            let over = meter.measure(Id::from(1), &state, now, budget);
            lines.extend(meter.note(&over));
            if tick > 5 {
                assert_eq!(over.len(), 1024);
                let worst = worst_per_group(&over);
                assert_eq!(worst.len(), 1, "{worst:?}");
                assert_eq!(worst[0].follower, Id::from(3));
            }
        }
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0]
                .starts_with("1 follower over the lag budget: replica 3 on 1,024 buckets (worst"),
            "{}",
            lines[0]
        );
        // Caught up again: one line.
        meter.measure(Id::from(1), &leader_state(1024), start, budget);
        assert_eq!(
            meter.note(&[]).as_deref(),
            Some("lag back within budget: no follower over the lag budget")
        );
        assert_eq!(meter.note(&[]), None);
    }
}
