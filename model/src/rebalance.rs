//! Rebalancing: a plan of bucket moves that evens the write load of the
//! replica groups.
//!
//! A pure function of the placement map and each bucket's measured load
//! (the runtime counts committed client commands per bucket; any unit
//! works, as long as all buckets use the same one). It proposes moves and
//! nothing more: each move is carried out, or refused, by the controller's
//! cutover protocol like any operator's `MoveBucket`.
//!
//! The plan is greedy. Each step looks at the most loaded groups and the
//! least loaded ones and takes, among the buckets of a most loaded group,
//! the one whose load is closest to half the gap between the two, provided
//! it is strictly smaller than the gap. Both groups then end strictly
//! inside the old range, so the spread (most minus least loaded) never
//! grows, and the sum of squared group loads strictly falls, so no step
//! undoes another. A bucket already being moved, a bucket without load or
//! lighter than the minimum, and a bucket already in the plan are never
//! proposed. The plan stops once the spread is within the tolerance, after
//! `max_moves` moves, or when no bucket fits. (A move costs a cutover:
//! evening out noise, or moving crumbs, is not worth one.)

use crate::placement::PlacementMap;
use crate::types::{Bucket, GroupId};
use std::collections::{BTreeMap, BTreeSet};

/// One proposed move: `bucket` from group `from` to group `to`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Move {
    pub bucket: Bucket,
    pub from: GroupId,
    pub to: GroupId,
    /// The bucket's load.
    pub load: u64,
    /// The load of `from` before this move and after it.
    pub from_load: (u64, u64),
    /// The load of `to` before this move and after it.
    pub to_load: (u64, u64),
}

/// How far a plan goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Propose at most this many moves.
    pub max_moves: usize,
    /// Stop once the spread is at most this (in the loads' unit).
    pub tolerance: u64,
    /// Never move a bucket whose load is below this.
    pub min_load: u64,
}

/// The moves, in the order to carry them out, and each group's load before
/// and after all of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub moves: Vec<Move>,
    pub before: BTreeMap<GroupId, u64>,
    pub after: BTreeMap<GroupId, u64>,
}

impl Plan {
    /// The spread of the group loads before the plan.
    pub fn spread_before(&self) -> u64 {
        spread(&self.before)
    }

    /// The spread of the group loads once every move is done.
    pub fn spread_after(&self) -> u64 {
        spread(&self.after)
    }
}

/// The most loaded group's load minus the least loaded one's (0 without
/// groups).
pub fn spread(loads: &BTreeMap<GroupId, u64>) -> u64 {
    let max = loads.values().max().copied().unwrap_or(0);
    let min = loads.values().min().copied().unwrap_or(0);
    max - min
}

/// Each group's load: the sum of the loads of the buckets `map` places on
/// it. Every group of `groups` appears, with 0 if it holds no load, and so
/// does every group the map names. A bucket missing from `loads` has none.
pub fn group_loads(
    map: &PlacementMap,
    groups: &[GroupId],
    loads: &BTreeMap<Bucket, u64>,
) -> BTreeMap<GroupId, u64> {
    let mut totals: BTreeMap<GroupId, u64> = groups.iter().map(|group| (*group, 0)).collect();
    for placement in map.buckets.iter() {
        totals.entry(placement.group).or_insert(0);
    }
    for (bucket, load) in loads {
        if let Some(placement) = map.placement(*bucket) {
            *totals.entry(placement.group).or_insert(0) += load;
        }
    }
    totals
}

/// Plans moves that even the load of the groups (those of `groups` and
/// those `map` names), within `limits`. `moving` are the buckets whose move
/// is already in progress: their load counts where the map places them,
/// and they are not moved again.
pub fn plan(
    map: &PlacementMap,
    groups: &[GroupId],
    loads: &BTreeMap<Bucket, u64>,
    moving: &BTreeSet<Bucket>,
    limits: Limits,
) -> Plan {
    let before = group_loads(map, groups, loads);
    let mut current = before.clone();
    // The movable buckets of each group, with their loads.
    let mut movable: BTreeMap<GroupId, Vec<(Bucket, u64)>> = BTreeMap::new();
    for (bucket, load) in loads {
        if *load == 0 || *load < limits.min_load || moving.contains(bucket) {
            continue;
        }
        if let Some(placement) = map.placement(*bucket) {
            movable
                .entry(placement.group)
                .or_default()
                .push((*bucket, *load));
        }
    }
    let mut moves = Vec::new();
    while moves.len() < limits.max_moves && spread(&current) > limits.tolerance {
        let Some(step) = best_step(&current, &movable) else {
            break;
        };
        let from_load = current[&step.from];
        let to_load = current[&step.to];
        current.insert(step.from, from_load - step.load);
        current.insert(step.to, to_load + step.load);
        if let Some(buckets) = movable.get_mut(&step.from) {
            buckets.retain(|(bucket, _)| *bucket != step.bucket);
        }
        moves.push(Move {
            bucket: step.bucket,
            from: step.from,
            to: step.to,
            load: step.load,
            from_load: (from_load, from_load - step.load),
            to_load: (to_load, to_load + step.load),
        });
    }
    Plan {
        moves,
        before,
        after: current,
    }
}

/// A candidate step of the plan.
struct Step {
    bucket: Bucket,
    from: GroupId,
    to: GroupId,
    load: u64,
}

/// The step that best evens a most loaded group against a least loaded
/// one, or `None` when no bucket fits (or the loads are already even).
fn best_step(
    current: &BTreeMap<GroupId, u64>,
    movable: &BTreeMap<GroupId, Vec<(Bucket, u64)>>,
) -> Option<Step> {
    let max = *current.values().max()?;
    let min = *current.values().min()?;
    let gap = max - min;
    if gap == 0 {
        return None;
    }
    let mut best: Option<(u64, Step)> = None;
    for (from, _) in current.iter().filter(|(_, load)| **load == max) {
        let Some(buckets) = movable.get(from) else {
            continue;
        };
        // The destination: the least loaded group with the smallest id (any
        // of them fits equally well).
        let to = *current
            .iter()
            .find(|(_, load)| **load == min)
            .expect("the minimum is some group's")
            .0;
        for (bucket, load) in buckets {
            if *load >= gap {
                continue;
            }
            // How far apart the two groups end: |(max - load) - (min + load)|.
            let left = (gap as i128 - 2 * *load as i128).unsigned_abs() as u64;
            let better = match &best {
                None => true,
                // Closer to even; then the hotter bucket (fewer moves for
                // the same evenness); then the lower bucket number (groups
                // and buckets are visited in order, so ties go to the
                // first seen).
                Some((best_left, step)) => {
                    left < *best_left || (left == *best_left && *load > step.load)
                }
            };
            if better {
                best = Some((
                    left,
                    Step {
                        bucket: *bucket,
                        from: *from,
                        to,
                        load: *load,
                    },
                ));
            }
        }
    }
    best.map(|(_, step)| step)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::placement::BucketPlacement;
    use crate::types::Epoch;
    use proptest::prelude::*;
    use stateright::actor::Id;

    /// A map of `groups` (group `g` is 1-based), bucket `b` on
    /// `groups[b]`.
    fn map_of(groups: &[u32]) -> PlacementMap {
        PlacementMap {
            version: 1,
            buckets: groups
                .iter()
                .map(|group| BucketPlacement {
                    epoch: Epoch(1),
                    group: GroupId(*group),
                    leader: Id::from(*group as usize),
                    sync_followers: vec![],
                    async_followers: vec![],
                })
                .collect::<Vec<_>>()
                .into(),
        }
    }

    /// At most `max_moves` moves, down to an even spread.
    fn moves(max_moves: usize) -> Limits {
        Limits {
            max_moves,
            tolerance: 0,
            min_load: 0,
        }
    }

    fn loads_of(loads: &[(u32, u64)]) -> BTreeMap<Bucket, u64> {
        loads
            .iter()
            .map(|(bucket, load)| (Bucket(*bucket), *load))
            .collect()
    }

    /// Goal: one hot group and an idle one: the plan moves the bucket that
    /// evens them best (not merely the hottest, nor many small ones), and
    /// reports the loads before and after.
    #[test]
    fn a_hot_group_sheds_the_bucket_that_evens_it_best() {
        // Buckets 0-3 on group 1 (loads 60, 30, 10, 0), 4-7 on group 2 (idle).
        let map = map_of(&[1, 1, 1, 1, 2, 2, 2, 2]);
        let loads = loads_of(&[(0, 60), (1, 30), (2, 10)]);
        let plan = plan(&map, &[], &loads, &BTreeSet::new(), moves(8));
        // Gap 100: bucket 0 (60) leaves 40 against 60, bucket 1 (30) 70
        // against 30. Then group 2 leads by 20 but holds no movable bucket
        // (bucket 0 is planned already): no subset of {60, 30, 10} does
        // better than 40/60 anyway.
        assert_eq!(
            plan.moves,
            vec![Move {
                bucket: Bucket(0),
                from: GroupId(1),
                to: GroupId(2),
                load: 60,
                from_load: (100, 40),
                to_load: (0, 60),
            }]
        );
        assert_eq!(plan.spread_before(), 100);
        assert_eq!(plan.spread_after(), 20);
        assert_eq!(
            plan.after,
            BTreeMap::from([(GroupId(1), 40), (GroupId(2), 60)])
        );
    }

    /// Goal: a bucket that carries the whole gap or more is not moved:
    /// moving it would only swap which group is hot.
    #[test]
    fn a_bucket_as_hot_as_the_gap_stays() {
        let map = map_of(&[1, 1, 2, 2]);
        let plan = plan(
            &map,
            &[],
            &loads_of(&[(0, 100)]),
            &BTreeSet::new(),
            moves(8),
        );
        assert!(plan.moves.is_empty(), "{plan:?}");
        assert_eq!(plan.spread_after(), 100);
        // Already even: nothing to do either.
        let even = loads_of(&[(0, 5), (2, 5)]);
        assert!(plan_of(&map, &even, 8).moves.is_empty());
    }

    fn plan_of(map: &PlacementMap, loads: &BTreeMap<Bucket, u64>, max_moves: usize) -> Plan {
        plan(map, &[], loads, &BTreeSet::new(), moves(max_moves))
    }

    /// Goal: buckets being moved, and buckets without load, are never
    /// proposed; the next best bucket is.
    #[test]
    fn moving_and_idle_buckets_are_left_alone() {
        let map = map_of(&[1, 1, 1, 2]);
        let loads = loads_of(&[(0, 40), (1, 20), (2, 0)]);
        let moving = BTreeSet::from([Bucket(0)]);
        let plan = plan(&map, &[], &loads, &moving, moves(8));
        // Bucket 0 still counts for group 1 (60 against 0), but only
        // bucket 1 may go.
        assert_eq!(plan.moves.len(), 1, "{plan:?}");
        assert_eq!(plan.moves[0].bucket, Bucket(1));
        assert_eq!(plan.before[&GroupId(1)], 60);
        assert_eq!(
            plan.after,
            BTreeMap::from([(GroupId(1), 40), (GroupId(2), 20)])
        );
    }

    /// Goal: `max_moves` bounds the plan; ties go to the lowest bucket.
    #[test]
    fn the_plan_stops_at_max_moves() {
        let map = map_of(&[1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2]);
        let loads: BTreeMap<Bucket, u64> = (0..10).map(|bucket| (Bucket(bucket), 10)).collect();
        let bounded = plan_of(&map, &loads, 2);
        let moved: Vec<u32> = bounded.moves.iter().map(|m| m.bucket.0).collect();
        assert_eq!(moved, vec![0, 1]);
        assert_eq!(bounded.after[&GroupId(2)], 20);
        let full = plan_of(&map, &loads, 100);
        assert_eq!(full.moves.len(), 5, "{full:?}");
        assert_eq!(full.spread_after(), 0);
    }

    /// Goal: within the tolerance nothing moves; beyond it the plan stops
    /// as soon as the spread is within it.
    #[test]
    fn a_spread_within_the_tolerance_is_left_alone() {
        // 42 against 38: bucket 2 would even it exactly, unless a spread
        // of 4 is within the tolerance.
        let map = map_of(&[1, 1, 1, 2]);
        let loads = loads_of(&[(0, 30), (1, 10), (2, 2), (3, 38)]);
        let within = Limits {
            tolerance: 4,
            ..moves(8)
        };
        assert!(plan(&map, &[], &loads, &BTreeSet::new(), within)
            .moves
            .is_empty());
        let even = plan(&map, &[], &loads, &BTreeSet::new(), moves(8));
        assert_eq!(even.moves.len(), 1, "{even:?}");
        assert_eq!(even.moves[0].bucket, Bucket(2));
        assert_eq!(even.spread_after(), 0);
        // A looser bound stops after the first move that gets within it.
        let map = map_of(&[1, 1, 1, 1, 1, 1, 2]);
        let loads: BTreeMap<Bucket, u64> = (0..6).map(|bucket| (Bucket(bucket), 10)).collect();
        let loose = Limits {
            tolerance: 25,
            ..moves(8)
        };
        let plan = super::plan(&map, &[], &loads, &BTreeSet::new(), loose);
        // 60/0 → 50/10 → 40/20 (spread 20, within 25).
        assert_eq!(plan.moves.len(), 2, "{plan:?}");
        assert_eq!(plan.spread_after(), 20);
    }

    /// Goal: buckets below the minimum load stay, however many of them
    /// could even the groups.
    #[test]
    fn crumbs_are_not_moved() {
        let map = map_of(&[1, 1, 1, 1, 1, 2]);
        // 48 against 32: four moves of 2 even them.
        let loads = loads_of(&[(0, 40), (1, 2), (2, 2), (3, 2), (4, 2), (5, 32)]);
        let limits = Limits {
            min_load: 3,
            ..moves(8)
        };
        let plan = plan(&map, &[], &loads, &BTreeSet::new(), limits);
        assert!(plan.moves.is_empty(), "{plan:?}");
        let unlimited = super::plan(&map, &[], &loads, &BTreeSet::new(), moves(8));
        assert_eq!(unlimited.moves.len(), 4, "{unlimited:?}");
        assert_eq!(unlimited.spread_after(), 0);
    }

    /// Goal: a group that holds no bucket (all moved away, or new) is a
    /// destination too, when the caller names it.
    #[test]
    fn an_empty_group_takes_load() {
        let map = map_of(&[1, 1, 2, 2]);
        let loads = loads_of(&[(0, 30), (1, 30), (2, 30), (3, 30)]);
        let plan = plan(&map, &[GroupId(3)], &loads, &BTreeSet::new(), moves(8));
        assert_eq!(plan.before[&GroupId(3)], 0);
        assert_eq!(plan.moves[0].to, GroupId(3));
        assert_eq!(plan.moves[0].from, GroupId(1));
        assert!(plan.spread_after() < plan.spread_before());
    }

    proptest! {
        /// Goal: whatever the map and the loads, the plan never increases
        /// the spread (after any prefix of its moves), never proposes a
        /// no-op, a bucket twice, a bucket being moved, one below the
        /// minimum load or one from a group that does not hold it, moves
        /// nothing once within the tolerance,
        /// stays within `max_moves`, adds up, and is the same every time.
        #[test]
        fn plans_never_widen_the_spread(
            groups in prop::collection::vec(1u32..5, 1..40),
            raw_loads in prop::collection::vec(0u64..1000, 40),
            moving_mask in prop::collection::vec(any::<bool>(), 40),
            extra_group in prop::option::of(5u32..7),
            max_moves in 0usize..12,
            tolerance in prop::sample::select(vec![0u64, 0, 50, 400]),
            min_load in prop::sample::select(vec![0u64, 0, 100, 600]),
        ) {
            let limits = Limits { max_moves, tolerance, min_load };
            let map = map_of(&groups);
            let loads: BTreeMap<Bucket, u64> = (0..groups.len() as u32)
                .map(|bucket| (Bucket(bucket), raw_loads[bucket as usize]))
                .collect();
            let moving: BTreeSet<Bucket> = (0..groups.len() as u32)
                .filter(|bucket| moving_mask[*bucket as usize])
                .map(Bucket)
                .collect();
            let named: Vec<GroupId> = extra_group.into_iter().map(GroupId).collect();
            let plan = plan(&map, &named, &loads, &moving, limits);
            prop_assert!(plan.moves.len() <= max_moves);
            prop_assert_eq!(&plan, &super::plan(&map, &named, &loads, &moving, limits));
            let mut current = plan.before.clone();
            let mut seen = BTreeSet::new();
            for step in &plan.moves {
                prop_assert!(step.from != step.to, "{:?}", step);
                prop_assert!(step.load > 0 && step.load >= min_load, "{:?}", step);
                prop_assert_eq!(step.load, loads[&step.bucket]);
                prop_assert!(!moving.contains(&step.bucket), "{:?}", step);
                prop_assert!(seen.insert(step.bucket), "{:?} twice", step.bucket);
                prop_assert_eq!(map.placement(step.bucket).unwrap().group, step.from);
                let spread_before = spread(&current);
                prop_assert!(spread_before > tolerance, "{:?} within tolerance", step);
                prop_assert_eq!(step.from_load.0, current[&step.from]);
                prop_assert_eq!(step.to_load.0, current[&step.to]);
                *current.get_mut(&step.from).unwrap() -= step.load;
                *current.get_mut(&step.to).unwrap() += step.load;
                prop_assert_eq!(step.from_load.1, current[&step.from]);
                prop_assert_eq!(step.to_load.1, current[&step.to]);
                prop_assert!(spread(&current) <= spread_before, "{:?} widened {:?}", step, current);
            }
            prop_assert_eq!(&current, &plan.after);
            prop_assert!(plan.spread_after() <= plan.spread_before());
            prop_assert_eq!(plan.before.values().sum::<u64>(), plan.after.values().sum::<u64>());
        }
    }
}
