//! What the checker proves, as functions of the system state plus a ghost
//! history of what clients were told (DESIGN.md, "What the checker must
//! prove"). The names are the ones the checker prints.

use crate::actor::{BerthActor, Msg, Storage};
use crate::bucket::{BucketState, Outcome};
use crate::replica::DurableBucket;
use crate::types::{Bucket, Epoch, InventoryUnit, Position, Token};
use stateright::actor::{ActorModel, ActorModelState, Envelope, Id};
use stateright::Expectation;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// One reply a client received: the ghost record of what it was told.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Acknowledgement {
    pub client: Id,
    pub token: Token,
    pub unit: InventoryUnit,
    pub outcome: Outcome,
    pub bucket: Bucket,
    pub epoch: Epoch,
    pub position: Position,
}

impl fmt::Display for Acknowledgement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "client {} was told {} {} → {} ({}@{} at {})",
            usize::from(self.client),
            self.token,
            self.unit,
            self.outcome,
            self.bucket,
            self.epoch,
            self.position
        )
    }
}

/// The ghost history: every reply any client received. A set, so that the
/// order in which replies arrived does not split otherwise equal states.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct History {
    pub acknowledgements: BTreeSet<Acknowledgement>,
}

/// The model the checker runs.
pub type BerthModel = ActorModel<BerthActor, (), History>;
/// One state of that model.
pub type BerthState = ActorModelState<BerthActor, History>;

/// Records each `Reply` as it reaches its client.
pub fn record_msg_in(_: &(), history: &History, envelope: Envelope<&Msg>) -> Option<History> {
    let Msg::Reply {
        bucket,
        epoch,
        position,
        token,
        unit,
        outcome,
    } = envelope.msg
    else {
        return None;
    };
    let acknowledgement = Acknowledgement {
        client: envelope.dst,
        token: *token,
        unit: unit.clone(),
        outcome: *outcome,
        bucket: *bucket,
        epoch: *epoch,
        position: *position,
    };
    if history.acknowledgements.contains(&acknowledgement) {
        return None;
    }
    let mut next = history.clone();
    next.acknowledgements.insert(acknowledgement);
    Some(next)
}

pub const NO_SPLIT_OWNERSHIP: &str = "no split ownership";
pub const NO_LOST_CONFIRMED_BOOKING: &str = "no lost confirmed booking";
pub const NO_DOUBLE_SALE: &str = "no double sale";
pub const ONE_OUTCOME_PER_TOKEN: &str = "one outcome per token";
pub const COMMIT_QUORUM_DURABLE: &str = "commit quorum durable";
pub const BOOKING_CONFIRMED: &str = "booking confirmed";
pub const CABIN_CONTENDED: &str = "cabin contended";

/// A property as the checker registers it.
pub struct PropertySpec {
    pub expectation: Expectation,
    pub name: &'static str,
    pub condition: fn(&BerthModel, &BerthState) -> bool,
    /// One sentence a person reads next to a counterexample.
    pub meaning: &'static str,
}

/// The properties of the replication scenario.
pub fn replication_properties() -> Vec<PropertySpec> {
    vec![
        PropertySpec {
            expectation: Expectation::Always,
            name: NO_SPLIT_OWNERSHIP,
            condition: no_split_ownership,
            meaning: "never two leaders of one bucket at one epoch, and a log position never holds two different acknowledged entries",
        },
        PropertySpec {
            expectation: Expectation::Always,
            name: NO_LOST_CONFIRMED_BOOKING,
            condition: no_lost_confirmed_booking,
            meaning: "every booking acknowledged as confirmed is in the durable state of the bucket's current owner",
        },
        PropertySpec {
            expectation: Expectation::Always,
            name: NO_DOUBLE_SALE,
            condition: no_double_sale,
            meaning: "no inventory unit is confirmed to two different bookings",
        },
        PropertySpec {
            expectation: Expectation::Always,
            name: ONE_OUTCOME_PER_TOKEN,
            condition: one_outcome_per_token,
            meaning: "a client never receives two different outcomes for one token, and no log holds one token twice",
        },
        PropertySpec {
            expectation: Expectation::Always,
            name: COMMIT_QUORUM_DURABLE,
            condition: commit_quorum_durable,
            meaning: "every entry acknowledged at the bucket's current epoch is durable on every sync follower of that epoch",
        },
        PropertySpec {
            expectation: Expectation::Sometimes,
            name: BOOKING_CONFIRMED,
            condition: booking_confirmed,
            meaning: "some client is told its booking is confirmed",
        },
        PropertySpec {
            expectation: Expectation::Sometimes,
            name: CABIN_CONTENDED,
            condition: cabin_contended,
            meaning: "two clients compete for one cabin and one of them is refused",
        },
    ]
}

/// Every replica's id and state (crashed replicas keep their last state).
fn replicas(state: &BerthState) -> impl Iterator<Item = (Id, &crate::replica::ReplicaState)> {
    state
        .actor_states
        .iter()
        .enumerate()
        .filter_map(|(index, node)| node.as_replica().map(|replica| (Id::from(index), replica)))
}

/// The controller's current placement map.
fn controller_map(state: &BerthState) -> Option<&crate::placement::PlacementMap> {
    state
        .actor_states
        .iter()
        .find_map(|node| node.as_controller())
        .map(|controller| &controller.map)
}

/// What `replica` has on disk for `bucket`.
fn durable_bucket(state: &BerthState, replica: Id, bucket: Bucket) -> Option<&DurableBucket> {
    match state.actor_storages.get(usize::from(replica))? {
        Some(Storage::Replica(storage)) => storage.get(&bucket),
        _ => None,
    }
}

fn confirmed(history: &History) -> impl Iterator<Item = &Acknowledgement> {
    history
        .acknowledgements
        .iter()
        .filter(|ack| ack.outcome == Outcome::Confirmed)
}

/// Never two leaders of one bucket at one epoch, and a log position never
/// holds two different acknowledged entries (in the history, or in any
/// replica's committed prefix).
pub fn no_split_ownership(_: &BerthModel, state: &BerthState) -> bool {
    let mut leaders: BTreeMap<(Bucket, Epoch), Id> = BTreeMap::new();
    for (id, replica) in replicas(state) {
        for (bucket, bucket_replica) in &replica.buckets {
            if bucket_replica.durable.is_leader(id) {
                let epoch = bucket_replica.durable.placement.epoch;
                if let Some(other) = leaders.insert((*bucket, epoch), id) {
                    if other != id {
                        return false;
                    }
                }
            }
        }
    }
    let mut acknowledged: BTreeMap<(Bucket, Position), Token> = BTreeMap::new();
    for ack in &state.history.acknowledgements {
        if let Some(other) = acknowledged.insert((ack.bucket, ack.position), ack.token) {
            if other != ack.token {
                return false;
            }
        }
    }
    replicas(state).all(|(_, replica)| {
        replica.buckets.iter().all(|(bucket, bucket_replica)| {
            let durable = &bucket_replica.durable;
            durable
                .log
                .iter()
                .take(durable.commit_position.0 as usize)
                .all(
                    |(position, entry)| match acknowledged.get(&(*bucket, position)) {
                        Some(token) => *token == entry.command.token,
                        None => true,
                    },
                )
        })
    })
}

/// Every booking acknowledged as confirmed is in the durable state of the
/// bucket's current owner (its durable log replayed over its applied state).
pub fn no_lost_confirmed_booking(_: &BerthModel, state: &BerthState) -> bool {
    let Some(map) = controller_map(state) else {
        return true;
    };
    confirmed(&state.history).all(|ack| {
        let Some(placement) = map.placement(ack.bucket) else {
            return false;
        };
        let owner_state: Option<BucketState> = durable_bucket(state, placement.leader, ack.bucket)
            .map(DurableBucket::state_through_last);
        owner_state.is_some_and(|owner| owner.booking_of(&ack.unit) == Some(ack.token))
    })
}

/// No inventory unit is confirmed to two different bookings.
pub fn no_double_sale(_: &BerthModel, state: &BerthState) -> bool {
    let mut booking_of: BTreeMap<&InventoryUnit, Token> = BTreeMap::new();
    confirmed(&state.history)
        .all(|ack| *booking_of.entry(&ack.unit).or_insert(ack.token) == ack.token)
}

/// A client never receives two different outcomes for one token, and no
/// replica's log holds two entries for one token (a retry never creates a
/// second effect).
pub fn one_outcome_per_token(_: &BerthModel, state: &BerthState) -> bool {
    let mut outcome_of: BTreeMap<Token, Outcome> = BTreeMap::new();
    for ack in &state.history.acknowledgements {
        if *outcome_of.entry(ack.token).or_insert(ack.outcome) != ack.outcome {
            return false;
        }
    }
    replicas(state).all(|(_, replica)| {
        replica.buckets.values().all(|bucket_replica| {
            let mut seen = BTreeSet::new();
            bucket_replica
                .durable
                .log
                .iter()
                .all(|(_, entry)| seen.insert(entry.command.token))
        })
    })
}

/// Every entry acknowledged at a bucket's current epoch is durable on every
/// sync follower of that epoch: the commit rule, checked directly.
pub fn commit_quorum_durable(_: &BerthModel, state: &BerthState) -> bool {
    let Some(map) = controller_map(state) else {
        return true;
    };
    state.history.acknowledgements.iter().all(|ack| {
        let Some(placement) = map.placement(ack.bucket) else {
            return false;
        };
        if placement.epoch != ack.epoch {
            return true;
        }
        placement.sync_followers.iter().all(|follower| {
            durable_bucket(state, *follower, ack.bucket)
                .and_then(|durable| durable.log.entry(ack.position))
                .is_some_and(|entry| entry.command.token == ack.token)
        })
    })
}

/// Some client is told its booking is confirmed.
pub fn booking_confirmed(_: &BerthModel, state: &BerthState) -> bool {
    confirmed(&state.history).next().is_some()
}

/// Two clients were answered about one cabin, and one of them was refused.
pub fn cabin_contended(_: &BerthModel, state: &BerthState) -> bool {
    let acks = &state.history.acknowledgements;
    acks.iter().any(|refused| {
        matches!(refused.outcome, Outcome::Refused(_))
            && acks.iter().any(|winner| {
                winner.unit == refused.unit
                    && winner.client != refused.client
                    && matches!(winner.outcome, Outcome::Held | Outcome::Confirmed)
            })
    })
}
