//! `messages within bounds`: what a replica sends fits the bounds the
//! runtime sets on it — a datagram holds at most `max_append_entries`
//! entries and a snapshot chunk at most `snapshot_chunk` items — and a
//! chunk carries the log's entries only when it completes its snapshot
//! (the receiver takes them only with that one; on any other they are
//! bytes for nothing). A message over its bound works in the checker and
//! fails at runtime, where it no longer fits a datagram, so only a
//! property on what is in flight can tell.

use crate::history::{BerthModel, BerthState};
use crate::properties::PropertySpec;
use berth_model::{BerthActor, Msg, ProtocolConfig};
use stateright::actor::Network;

pub const WITHIN_BOUNDS: &str = "messages within bounds";

/// The property, checked where the scenario sets a bound.
pub fn bounds_property() -> PropertySpec {
    PropertySpec::always(
        WITHIN_BOUNDS,
        |model, state| over_bound(model, state).is_none(),
        over_bound,
        "every append and snapshot in flight fits the entries and chunk size the runtime allows, and only a snapshot's last chunk carries log entries",
    )
}

fn config(model: &BerthModel) -> Option<&ProtocolConfig> {
    model.actors.iter().find_map(|actor| match actor {
        BerthActor::Replica(replica) => Some(&replica.config),
        _ => None,
    })
}

/// What is wrong with `msg` under `config`, in one sentence.
fn wrong(config: &ProtocolConfig, msg: &Msg) -> Option<String> {
    let too_many = |entries: usize| {
        config
            .max_append_entries
            .is_some_and(|most| entries > most.max(1))
    };
    match msg {
        Msg::Append { entries, .. } if too_many(entries.len()) => Some(format!(
            "an append carries {} entries: {msg}",
            entries.len()
        )),
        Msg::Snapshot(snapshot) => {
            if too_many(snapshot.entries.len()) {
                return Some(format!(
                    "a snapshot carries {} entries: {msg}",
                    snapshot.entries.len()
                ));
            }
            let chunk = snapshot.chunk?;
            let items = snapshot.state.units.len() + snapshot.state.outcomes.len();
            if config
                .snapshot_chunk
                .is_some_and(|size| items > size.max(1))
            {
                return Some(format!("a chunk carries {items} items: {msg}"));
            }
            (chunk.index + 1 < chunk.count && !snapshot.entries.is_empty())
                .then(|| format!("a chunk before the last carries log entries: {msg}"))
        }
        _ => None,
    }
}

/// The first message in flight over its bound, named in one sentence.
pub fn over_bound(model: &BerthModel, state: &BerthState) -> Option<String> {
    let config = config(model)?;
    match &state.network {
        Network::Ordered(channels) => channels
            .values()
            .flat_map(|queue| queue.iter())
            .find_map(|msg| wrong(config, msg)),
        Network::UnorderedNonDuplicating(envelopes) => envelopes
            .keys()
            .find_map(|envelope| wrong(config, &envelope.msg)),
        Network::UnorderedDuplicating(envelopes, _) => envelopes
            .iter()
            .find_map(|envelope| wrong(config, &envelope.msg)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_model::log::Entry;
    use berth_model::messages::{Chunk, Snapshot};
    use berth_model::types::{Bucket, Epoch, Position};
    use berth_model::BucketState;
    use std::sync::Arc;

    fn snapshot(chunk: Chunk, entries: usize) -> Msg {
        let placement = crate::scenario::ScenarioConfig::default()
            .build()
            .actors
            .iter()
            .find_map(|actor| match actor {
                BerthActor::Controller(controller) => {
                    controller.initial_map.placement(Bucket(0)).cloned()
                }
                _ => None,
            })
            .unwrap();
        Msg::Snapshot(Arc::new(Snapshot {
            bucket: Bucket(0),
            epoch: Epoch::FIRST,
            placement,
            position: Position(0),
            position_epoch: Epoch::FIRST,
            state: BucketState::default(),
            entries: vec![Entry::barrier(Epoch::FIRST); entries],
            commit_position: Position(0),
            chunk: Some(chunk),
        }))
    }

    /// Goal: entries over `max_append_entries`, and entries on a chunk
    /// before the last, are each named; a last chunk within the bound is
    /// not.
    #[test]
    fn entries_over_the_bound_or_before_the_last_chunk_are_wrong() {
        let config = ProtocolConfig {
            max_append_entries: Some(1),
            snapshot_chunk: Some(1),
            ..ProtocolConfig::default()
        };
        let last = Chunk { index: 1, count: 2 };
        let first = Chunk { index: 0, count: 2 };
        assert_eq!(wrong(&config, &snapshot(last, 1)), None);
        assert!(wrong(&config, &snapshot(last, 2)).is_some_and(|what| what.contains("2 entries")));
        assert!(wrong(&config, &snapshot(first, 1))
            .is_some_and(|what| what.contains("before the last")));
        assert_eq!(wrong(&config, &snapshot(first, 0)), None);
    }
}
