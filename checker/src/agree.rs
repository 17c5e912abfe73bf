//! `committed logs agree`: the replication's own safety property. Any two
//! copies of a bucket hold the same entry at every position both have
//! committed, and two copies committed through the same position hold the
//! same committed state. The other properties look at what clients were
//! told and at the leader's copy; this one looks at every copy, so a
//! follower that keeps an entry of a deposed leader where the new leader
//! has another (a divergent suffix not truncated) fails here at once, even
//! before a read or a promotion exposes it.

use crate::history::BerthState;
use crate::properties::PropertySpec;
use berth_model::replica::DurableBucket;
use berth_model::{Bucket, Position};

pub const COMMITTED_LOGS_AGREE: &str = "committed logs agree";

/// The property, checked in every scenario.
pub fn agreement_property() -> PropertySpec {
    PropertySpec::always(
        COMMITTED_LOGS_AGREE,
        |_, state| disagreement(state).is_none(),
        |_, state| disagreement(state),
        "any two copies of a bucket hold the same entry at every position both committed, and the same committed state when committed through the same position",
    )
}

/// Two copies of a bucket whose committed histories differ, named in one
/// sentence. Crashed replicas count: what they hold is what they recover.
pub fn disagreement(state: &BerthState) -> Option<String> {
    let copies: Vec<(usize, Bucket, &DurableBucket)> = state
        .actor_states
        .iter()
        .enumerate()
        .filter_map(|(index, node)| Some((index, node.as_replica()?)))
        .flat_map(|(index, replica)| {
            replica
                .buckets
                .iter()
                .map(move |(bucket, copy)| (index, *bucket, &*copy.durable))
        })
        .collect();
    for (at, (a, bucket, first)) in copies.iter().enumerate() {
        for (b, other_bucket, second) in &copies[at + 1..] {
            if bucket != other_bucket {
                continue;
            }
            let through = first.commit_position.min(second.commit_position);
            for (position, entry) in first.log.iter_through(through) {
                if second
                    .log
                    .entry(position)
                    .is_some_and(|other| other != entry)
                {
                    return Some(format!(
                        "replicas {a} and {b} both committed {bucket} through {position}, with different entries there"
                    ));
                }
            }
            // A whole log's committed state is its replay, which `committed
            // state follows the booking rules` checks: there equal entries
            // mean equal states. Only a copy that folded its log or
            // installed a snapshot needs the states compared (the costly
            // part of this property).
            let whole = first.log.start() == Position(0) && second.log.start() == Position(0);
            if !whole
                && first.commit_position == second.commit_position
                && first.applied != second.applied
            {
                return Some(format!(
                    "replicas {a} and {b} both committed {bucket} through {}, to different states",
                    first.commit_position
                ));
            }
        }
    }
    None
}
