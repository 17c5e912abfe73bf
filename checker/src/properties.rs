//! What the checker proves, as functions of the system state plus the
//! ghost history of what clients were told (docs/protocol.md, "What the
//! checker proves"). The names are the ones the checker prints.

use crate::history::{Acknowledgement, BerthModel, BerthState, History};
use berth_model::bucket::{Refusal, UnitStatus};
use berth_model::client::ClientState;
use berth_model::messages::ReadPath;
use berth_model::messages::{ReadReply, Reply};
use berth_model::replica::{DurableBucket, ReplicaState};
use berth_model::stream::SubscriberState;
use berth_model::{
    BerthActor, Bucket, BucketPlacement, BucketState, Epoch, InventoryUnit, Msg, NodeState,
    Outcome, PlacementMap, Position, Storage, Token, Variant,
};
use stateright::actor::Id;
use stateright::Expectation;
use std::collections::{BTreeMap, BTreeSet};

pub const NO_SPLIT_OWNERSHIP: &str = "no split ownership";
pub const NO_LOST_CONFIRMED_BOOKING: &str = "no lost confirmed booking";
pub const NO_DOUBLE_SALE: &str = "no double sale";
pub const ONE_OUTCOME_PER_TOKEN: &str = "one outcome per token";
pub const COMMIT_QUORUM_DURABLE: &str = "commit quorum durable";
pub const BOOKING_CONFIRMED: &str = "booking confirmed";
pub const CABIN_CONTENDED: &str = "cabin contended";
pub const VIOLATED_WHILE_LEADER_DOWN: &str = "violated while the leader is down";
pub const FAILOVER_COMPLETED: &str = "failover completed";
pub const BOOKING_CONFIRMED_AFTER_FAILOVER: &str = "booking confirmed after failover";
pub const SYNC_FOLLOWER_REPLACED: &str = "sync follower replaced";
pub const CUTOVER_COMPLETED: &str = "cutover completed";
pub const BOOKING_CONFIRMED_BY_NEW_OWNER: &str = "booking confirmed by new owner";
pub const STALE_ROUTER_REDIRECTED: &str = "stale router redirected";
pub const HOLD_EXPIRED: &str = "hold expired";
pub const SESSION_READS: &str = "session reads";
pub const CHANGE_STREAM_EXACT: &str = "change stream exact";
pub const STREAM_FOLLOWED_NEW_OWNER: &str = "stream followed new owner";
pub const REPLICA_INVARIANTS: &str = "replica invariants";

/// The properties of scenarios with a change-stream subscriber.
pub fn stream_properties() -> Vec<PropertySpec> {
    vec![
        PropertySpec::always(
            CHANGE_STREAM_EXACT,
            |_, state| inexact_stream(state).is_none(),
            |_, state| inexact_stream(state),
            "a subscriber's stream holds exactly the committed history: every outcome a client was told through its position, and nothing a replica committed differently",
        ),
        PropertySpec::sometimes(
            STREAM_FOLLOWED_NEW_OWNER,
            |_, state| stream_followed_new_owner(state),
            "the subscriber applied an entry written at a newer epoch (after a failover or a cutover)",
        ),
    ]
}

fn subscribers(state: &BerthState) -> impl Iterator<Item = (usize, &SubscriberState)> {
    state
        .actor_states
        .iter()
        .enumerate()
        .filter_map(|(index, node)| match &**node {
            NodeState::Subscriber(subscriber) => Some((index, subscriber)),
            _ => None,
        })
}

/// `change stream exact`: for each subscriber and followed bucket, (1) no
/// gap: every outcome acknowledged to a client at a position the stream has
/// passed is in the stream's state, with that outcome and position; (2)
/// nothing uncommitted: every outcome in the stream's state agrees with
/// every replica that has committed past its position.
pub fn inexact_stream(state: &BerthState) -> Option<String> {
    for (index, subscriber) in subscribers(state) {
        for (bucket, stream) in &subscriber.streams {
            for ack in &state.history.acknowledgements {
                if ack.bucket != *bucket || ack.position > stream.position {
                    continue;
                }
                let recorded = stream.state.recorded(&ack.token);
                if recorded
                    .as_ref()
                    .is_none_or(|r| r.outcome != ack.outcome || r.position != ack.position)
                {
                    return Some(format!(
                        "subscriber {index} followed {bucket} through {}, but lacks what {ack}",
                        stream.position
                    ));
                }
            }
            for (token, recorded) in &stream.state.outcomes {
                for (id, replica) in replicas(state) {
                    let Some(durable) = replica.buckets.get(bucket).map(|b| &b.durable) else {
                        continue;
                    };
                    if durable.commit_position < recorded.position {
                        continue;
                    }
                    let agrees = durable
                        .applied
                        .recorded(token)
                        .is_some_and(|committed| committed == *recorded);
                    if !agrees {
                        return Some(format!(
                            "subscriber {index} applied {token} {} → {} at {}, but replica {} committed {bucket} through {} without it",
                            recorded.unit,
                            recorded.outcome,
                            recorded.position,
                            usize::from(id),
                            durable.commit_position
                        ));
                    }
                }
            }
        }
    }
    None
}

/// `stream followed new owner`: a subscriber's stream passed an entry of
/// an epoch after the first (what a new leader or a new owner wrote).
fn stream_followed_new_owner(state: &BerthState) -> bool {
    subscribers(state).any(|(_, subscriber)| {
        subscriber.streams.iter().any(|(bucket, stream)| {
            replicas(state).any(|(_, replica)| {
                replica.buckets.get(bucket).is_some_and(|b| {
                    let log = &b.durable.log;
                    b.durable.commit_position >= stream.position
                        && log
                            .epoch_at(stream.position)
                            .is_some_and(|epoch| epoch > Epoch::FIRST)
                })
            })
        })
    })
}
pub const FOLLOWER_READ_SERVED: &str = "follower read served";
pub const LAGGING_FOLLOWER_BYPASSED: &str = "lagging follower bypassed";

/// The session-read properties of scenarios whose clients read: the
/// always-property and the two serving paths it must be seen through.
pub fn session_read_properties() -> Vec<PropertySpec> {
    vec![
        PropertySpec::always(
            SESSION_READS,
            |_, state| stale_session_read(state).is_none(),
            |_, state| stale_session_read(state),
            "a read never returns state older than what the same client already observed",
        ),
        PropertySpec::sometimes(
            FOLLOWER_READ_SERVED,
            |_, state| read_served_by(state, ReadPath::Follower, true),
            "a follower serves a read that reflects a write the client made",
        ),
        PropertySpec::sometimes(
            LAGGING_FOLLOWER_BYPASSED,
            |_, state| read_served_by(state, ReadPath::Leader, true),
            "a follower behind the client's position sends the read to the leader, which serves it",
        ),
    ]
}

/// Whether some client's read was served on `path` after the client had
/// observed a write (so the position token mattered).
fn read_served_by(state: &BerthState, path: ReadPath, after_write: bool) -> bool {
    clients(state).any(|client| {
        let mut wrote = false;
        client.answers.iter().any(|answer| match answer {
            Msg::Reply(_) => {
                wrote = true;
                false
            }
            Msg::ReadReply(ReadReply { path: served, .. }) => {
                *served == path && (wrote || !after_write)
            }
            _ => false,
        })
    })
}

fn clients(state: &BerthState) -> impl Iterator<Item = &ClientState> {
    state.actor_states.iter().filter_map(|node| match &**node {
        NodeState::Client(client) => Some(client),
        _ => None,
    })
}

/// `session reads`: every read a client accepted reflects everything the
/// same client observed before it — its position is no older than any
/// position of that bucket the client was told of earlier, and a booking
/// the client was told is confirmed shows as sold in it.
pub fn stale_session_read(state: &BerthState) -> Option<String> {
    state
        .actor_states
        .iter()
        .enumerate()
        .find_map(|(index, node)| {
            let NodeState::Client(client) = &**node else {
                return None;
            };
            let mut observed: BTreeMap<Bucket, Position> = BTreeMap::new();
            let mut booked: BTreeMap<&InventoryUnit, Token> = BTreeMap::new();
            for answer in &client.answers {
                match answer {
                    Msg::Reply(Reply {
                        bucket,
                        position,
                        unit,
                        outcome,
                        token,
                        ..
                    }) => {
                        let seen = observed.entry(*bucket).or_default();
                        *seen = (*seen).max(*position);
                        if *outcome == Outcome::Confirmed {
                            booked.insert(unit, *token);
                        }
                    }
                    Msg::ReadReply(ReadReply {
                        bucket,
                        unit,
                        position,
                        status,
                        path,
                    }) => {
                        let seen = observed.entry(*bucket).or_default();
                        if *position < *seen {
                            return Some(format!(
                                "client {index} read {unit} at {position} from a {path}, older than {seen}, which it had already observed"
                            ));
                        }
                        if let Some(booking) = booked.get(unit) {
                            let sold = matches!(status, Some(UnitStatus::Booked { booking: b, .. }) if b == booking);
                            if !sold {
                                return Some(format!(
                                    "client {index} was told booking {booking} of {unit} is confirmed, then read {unit} as {} from a {path}",
                                    status.as_ref().map_or("available".to_owned(), ToString::to_string)
                                ));
                            }
                        }
                        *seen = *position;
                    }
                    _ => {}
                }
            }
            None
        })
}

/// The sometimes-property of scenarios whose holds expire: a client's
/// confirm was refused because its hold had expired.
pub fn hold_expired_property() -> PropertySpec {
    PropertySpec::sometimes(
        HOLD_EXPIRED,
        |_, state| {
            state
                .history
                .acknowledgements
                .iter()
                .any(|ack| ack.outcome == Outcome::Refused(Refusal::HoldExpired))
        },
        "a hold expires before its confirm, which is refused",
    )
}

/// A property as the checker registers it.
/// Names what violates a property in a state of a model, in one sentence,
/// or `None` where it holds. The model is there for what the state does not
/// carry: each actor's script (a client's tasks), the scenario's layout.
pub type Violation = fn(&BerthModel, &BerthState) -> Option<String>;

pub struct PropertySpec {
    pub expectation: Expectation,
    pub name: &'static str,
    pub condition: fn(&BerthModel, &BerthState) -> bool,
    /// For an always-property: names what violates it in a state, in one
    /// sentence, or `None` where it holds.
    pub violation: Option<Violation>,
    /// One sentence a person reads next to the property's status.
    pub meaning: &'static str,
    /// A liveness property stated at rest (`liveness`): `violation` names
    /// what is missing in any state, but only a state at rest violates it.
    pub at_rest: bool,
}

impl PropertySpec {
    pub fn always(
        name: &'static str,
        condition: fn(&BerthModel, &BerthState) -> bool,
        violation: Violation,
        meaning: &'static str,
    ) -> Self {
        PropertySpec {
            expectation: Expectation::Always,
            name,
            condition,
            violation: Some(violation),
            meaning,
            at_rest: false,
        }
    }

    /// An always-property whose condition is "at rest, the goal holds"
    /// (`liveness`).
    pub fn at_rest(
        name: &'static str,
        condition: fn(&BerthModel, &BerthState) -> bool,
        missing: Violation,
        meaning: &'static str,
    ) -> Self {
        PropertySpec {
            at_rest: true,
            ..PropertySpec::always(name, condition, missing, meaning)
        }
    }

    pub fn sometimes(
        name: &'static str,
        condition: fn(&BerthModel, &BerthState) -> bool,
        meaning: &'static str,
    ) -> Self {
        PropertySpec {
            expectation: Expectation::Sometimes,
            name,
            condition,
            violation: None,
            meaning,
            at_rest: false,
        }
    }
}

/// The properties of the replication scenario.
pub fn replication_properties() -> Vec<PropertySpec> {
    vec![
        PropertySpec::always(
            NO_SPLIT_OWNERSHIP,
            |_, state| split_ownership(state).is_none(),
            |_, state| split_ownership(state),
            "never two leaders of one bucket at one epoch, and a log position never holds two different acknowledged entries",
        ),
        PropertySpec::always(
            NO_LOST_CONFIRMED_BOOKING,
            |_, state| lost_confirmed_booking(state).is_none(),
            |_, state| lost_confirmed_booking(state),
            "every booking acknowledged as confirmed is in the durable state of the bucket's current owner",
        ),
        PropertySpec::always(
            NO_DOUBLE_SALE,
            |_, state| double_sale(state).is_none(),
            |_, state| double_sale(state),
            "no inventory unit is confirmed to two different bookings",
        ),
        PropertySpec::always(
            ONE_OUTCOME_PER_TOKEN,
            |_, state| second_outcome(state).is_none(),
            |_, state| second_outcome(state),
            "a client never receives two different outcomes for one token, and no log holds one token twice",
        ),
        PropertySpec::always(
            COMMIT_QUORUM_DURABLE,
            |_, state| commit_quorum_gap(state).is_none(),
            |_, state| commit_quorum_gap(state),
            "every entry acknowledged at the bucket's current epoch is durable on every sync follower of that epoch",
        ),
        PropertySpec::always(
            REPLICA_INVARIANTS,
            |_, state| broken_replica_invariant(state).is_none(),
            |_, state| broken_replica_invariant(state),
            "every replica's durable state keeps its own invariants: commit within the log, a promise no older than the placement, an idempotency table of exactly the committed decisions",
        ),
        crate::roles::roles_property(),
        PropertySpec::sometimes(
            BOOKING_CONFIRMED,
            |_, state| booking_confirmed(state),
            "some client is told its booking is confirmed",
        ),
        PropertySpec::sometimes(
            CABIN_CONTENDED,
            |_, state| cabin_contended(state),
            "two clients compete for one cabin and one of them is refused",
        ),
    ]
}

/// The properties of the failover scenario: every property of replication
/// (split ownership, lost bookings and double sales now across epochs and
/// crashes), plus the failover's interesting states.
pub fn failover_properties() -> Vec<PropertySpec> {
    let mut properties = replication_properties();
    properties.push(PropertySpec::sometimes(
        FAILOVER_COMPLETED,
        failover_completed,
        "the controller promoted a new leader, which committed what it inherited under its own epoch",
    ));
    properties.push(PropertySpec::sometimes(
        SYNC_FOLLOWER_REPLACED,
        sync_follower_replaced,
        "a remote follower took the sync role through a new epoch and the leader committed with it",
    ));
    properties.push(PropertySpec::sometimes(
        BOOKING_CONFIRMED_AFTER_FAILOVER,
        booking_confirmed_after_failover,
        "a promoted leader tells a client its booking is confirmed",
    ));
    properties.push(crate::fence::fence_property());
    properties
}

/// The property behind `RunControl::witness`: fails in a state that violates
/// the witness's property while a replica that was leading when it crashed
/// is still down.
pub fn violated_while_leader_down_property() -> PropertySpec {
    PropertySpec::always(
        VIOLATED_WHILE_LEADER_DOWN,
        |model, state| {
            model
                .cfg
                .witness
                .is_none_or(|violation| !leader_down(state) || violation(model, state).is_none())
        },
        |_, _| None,
        "the witnessed violation happens while the leader is down",
    )
}

/// Whether a replica that led a bucket when it crashed is still down (a
/// crashed actor keeps the state it crashed with).
fn leader_down(state: &BerthState) -> bool {
    replicas(state).any(|(id, replica)| {
        state.crashed[usize::from(id)]
            && replica
                .buckets
                .values()
                .any(|bucket| bucket.durable.is_leader(id))
    })
}

/// The properties of the cutover scenario: every property of replication,
/// now across a move, plus the move's interesting states.
pub fn cutover_properties() -> Vec<PropertySpec> {
    let mut properties = replication_properties();
    properties.extend(cutover_sometimes());
    properties
}

/// Replication, failover and cutover together.
pub fn all_properties() -> Vec<PropertySpec> {
    let mut properties = failover_properties();
    properties.extend(cutover_sometimes());
    properties
}

fn cutover_sometimes() -> Vec<PropertySpec> {
    vec![
        PropertySpec::sometimes(
            CUTOVER_COMPLETED,
            cutover_completed,
            "the bucket moved to another group, whose leader committed under the new epoch",
        ),
        PropertySpec::sometimes(
            BOOKING_CONFIRMED_BY_NEW_OWNER,
            booking_confirmed_by_new_owner,
            "a replica of the destination group tells a client its booking is confirmed",
        ),
        PropertySpec::sometimes(
            STALE_ROUTER_REDIRECTED,
            stale_router_redirected,
            "a client routed with the old epoch is redirected, refreshes, and is answered by the new owner with the same token",
        ),
    ]
}

/// Whether `replica` was a member of `bucket`'s initial placement.
fn initial_member(model: &BerthModel, bucket: Bucket, replica: Id) -> bool {
    initial_placement(model, bucket).is_some_and(|initial| initial.role_of(replica).is_some())
}

/// `cutover completed`: the controller's map places a bucket on another
/// group than it started on, and that group's leader has committed an entry
/// of the new epoch.
pub fn cutover_completed(model: &BerthModel, state: &BerthState) -> bool {
    let Some(map) = controller_map(state) else {
        return false;
    };
    map.buckets.iter().enumerate().any(|(index, placement)| {
        let bucket = Bucket(index as u32);
        initial_placement(model, bucket).is_some_and(|initial| initial.group != placement.group)
            && committed_at_current_epoch(state, bucket, placement)
    })
}

/// `booking confirmed by new owner`: a replica outside the bucket's initial
/// placement told a client its booking is confirmed.
pub fn booking_confirmed_by_new_owner(model: &BerthModel, state: &BerthState) -> bool {
    confirmed(&state.history).any(|ack| !initial_member(model, ack.bucket, ack.leader))
}

/// `stale router redirected`: a token was redirected by a replica that knew
/// a newer epoch, and later answered by a replica outside the initial
/// placement.
pub fn stale_router_redirected(model: &BerthModel, state: &BerthState) -> bool {
    state.history.acknowledgements.iter().any(|ack| {
        state.history.redirected.contains(&ack.token)
            && !initial_member(model, ack.bucket, ack.leader)
    })
}

/// The placement of `bucket` in the map the controller started with.
pub fn initial_placement(model: &BerthModel, bucket: Bucket) -> Option<&BucketPlacement> {
    model.actors.iter().find_map(|actor| match actor {
        BerthActor::Controller(controller) => controller.initial_map.placement(bucket),
        _ => None,
    })
}

/// The leader of `bucket` in the map the controller started with.
fn initial_leader(model: &BerthModel, bucket: Bucket) -> Option<Id> {
    initial_placement(model, bucket).map(|placement| placement.leader)
}

/// Whether the leader `placement` names has committed an entry of the
/// placement's epoch: the new commit quorum works.
pub(crate) fn committed_at_current_epoch(
    state: &BerthState,
    bucket: Bucket,
    placement: &BucketPlacement,
) -> bool {
    durable_bucket(state, placement.leader, bucket).is_some_and(|durable| {
        durable.placement.epoch == placement.epoch
            && durable.log.epoch_at(durable.commit_position) == Some(placement.epoch)
    })
}

/// `sync follower replaced`: a replica that started as an async follower is
/// a sync follower in the controller's map, and the leader has committed an
/// entry of that epoch (which needed the new sync follower's copy).
pub fn sync_follower_replaced(model: &BerthModel, state: &BerthState) -> bool {
    let Some(map) = controller_map(state) else {
        return false;
    };
    map.buckets.iter().enumerate().any(|(index, placement)| {
        let bucket = Bucket(index as u32);
        initial_placement(model, bucket).is_some_and(|initial| {
            placement
                .sync_followers
                .iter()
                .any(|id| initial.async_followers.contains(id))
        }) && committed_at_current_epoch(state, bucket, placement)
    })
}

/// `failover completed`: the controller's map names a leader other than the
/// initial one, and that leader has committed an entry of its own epoch.
pub fn failover_completed(model: &BerthModel, state: &BerthState) -> bool {
    let Some(map) = controller_map(state) else {
        return false;
    };
    map.buckets.iter().enumerate().any(|(index, placement)| {
        let bucket = Bucket(index as u32);
        initial_leader(model, bucket) != Some(placement.leader)
            && committed_at_current_epoch(state, bucket, placement)
    })
}

/// `booking confirmed after failover`: a replica other than the bucket's
/// initial leader told a client its booking is confirmed.
pub fn booking_confirmed_after_failover(model: &BerthModel, state: &BerthState) -> bool {
    confirmed(&state.history)
        .any(|ack| initial_leader(model, ack.bucket).is_some_and(|initial| initial != ack.leader))
}

/// Every replica's id and state (crashed replicas keep their last state).
pub(crate) fn replicas(state: &BerthState) -> impl Iterator<Item = (Id, &ReplicaState)> {
    state
        .actor_states
        .iter()
        .enumerate()
        .filter_map(|(index, node)| node.as_replica().map(|replica| (Id::from(index), replica)))
}

/// The controller's current placement map.
pub fn controller_map(state: &BerthState) -> Option<&PlacementMap> {
    state
        .actor_states
        .iter()
        .find_map(|node| node.as_controller())
        .map(|controller| &controller.map)
}

/// What `replica` has on disk for `bucket`.
fn durable_bucket(state: &BerthState, replica: Id, bucket: Bucket) -> Option<&DurableBucket> {
    match state.actor_storages.get(usize::from(replica))? {
        Some(Storage::Replica(storage)) => storage.get(&bucket).map(|durable| &**durable),
        _ => None,
    }
}

fn confirmed(history: &History) -> impl Iterator<Item = &Acknowledgement> {
    history
        .acknowledgements
        .iter()
        .filter(|ack| ack.outcome == Outcome::Confirmed)
}

/// `no split ownership`: never two leaders of one bucket at one epoch, and a
/// log position never holds two different acknowledged entries (in the
/// history, or in any replica's committed prefix).
pub fn split_ownership(state: &BerthState) -> Option<String> {
    let mut leaders: BTreeMap<(Bucket, Epoch), Id> = BTreeMap::new();
    for (id, replica) in replicas(state) {
        for (bucket, bucket_replica) in &replica.buckets {
            if bucket_replica.durable.is_leader(id) {
                let epoch = bucket_replica.durable.placement.epoch;
                if let Some(other) = leaders.insert((*bucket, epoch), id) {
                    return Some(format!(
                        "replicas {} and {} both lead {bucket} at {epoch}",
                        usize::from(other),
                        usize::from(id)
                    ));
                }
            }
        }
    }
    let mut acknowledged: BTreeMap<(Bucket, Position), &Acknowledgement> = BTreeMap::new();
    for ack in &state.history.acknowledgements {
        if let Some(other) = acknowledged.insert((ack.bucket, ack.position), ack) {
            if other.token != ack.token {
                return Some(format!(
                    "{} holds two acknowledged entries: {other}; {ack}",
                    ack.position
                ));
            }
        }
    }
    for (id, replica) in replicas(state) {
        for (bucket, bucket_replica) in &replica.buckets {
            let durable = &bucket_replica.durable;
            for (position, entry) in durable.log.iter_through(durable.commit_position) {
                if let Some(ack) = acknowledged.get(&(*bucket, position)) {
                    if Some(ack.token) != crate::rules::decided_token(entry) {
                        return Some(format!(
                            "replica {} committed {entry} at {bucket} {position}, but {ack}",
                            usize::from(id)
                        ));
                    }
                }
            }
        }
    }
    None
}

/// `replica invariants`: what `ReplicaState::validate` asserts in debug
/// builds, evaluated in every state (the checker runs in release).
pub fn broken_replica_invariant(state: &BerthState) -> Option<String> {
    replicas(state).find_map(|(id, replica)| {
        replica.buckets.iter().find_map(|(bucket, bucket_replica)| {
            bucket_replica
                .durable
                .invariant_violation()
                .map(|broken| format!("replica {} {bucket}: {broken}", usize::from(id)))
        })
    })
}

/// `no lost confirmed booking`: every booking acknowledged as confirmed is in
/// the durable state of the bucket's current owner (its durable log replayed
/// over its applied state).
pub fn lost_confirmed_booking(state: &BerthState) -> Option<String> {
    let map = controller_map(state)?;
    confirmed(&state.history).find_map(|ack| {
        let Some(placement) = map.placement(ack.bucket) else {
            return Some(format!("{ack}, but the map has no {}", ack.bucket));
        };
        let owner = placement.leader;
        let owner_state: Option<BucketState> =
            durable_bucket(state, owner, ack.bucket).map(DurableBucket::state_through_last);
        match owner_state.and_then(|owner_state| owner_state.booking_of(&ack.unit)) {
            Some(booking) if booking == ack.token => None,
            Some(booking) => Some(format!(
                "{ack}, but the current owner, replica {} at {}, has {} booked by {booking}",
                usize::from(owner),
                placement.epoch,
                ack.unit
            )),
            None => Some(format!(
                "{ack}, but the current owner, replica {} at {}, has no such booking on disk",
                usize::from(owner),
                placement.epoch
            )),
        }
    })
}

/// `no double sale`: no inventory unit is confirmed to two different bookings.
pub fn double_sale(state: &BerthState) -> Option<String> {
    let mut booking_of: BTreeMap<&InventoryUnit, &Acknowledgement> = BTreeMap::new();
    confirmed(&state.history).find_map(|ack| {
        let first = booking_of.entry(&ack.unit).or_insert(ack);
        (first.token != ack.token).then(|| format!("{} was sold twice: {first}; {ack}", ack.unit))
    })
}

/// `one outcome per token`: a client never receives two different outcomes
/// for one token, and no replica's log holds two entries for one token (a
/// retry never creates a second effect).
pub fn second_outcome(state: &BerthState) -> Option<String> {
    let mut outcome_of: BTreeMap<Token, &Acknowledgement> = BTreeMap::new();
    for ack in &state.history.acknowledgements {
        let first = outcome_of.entry(ack.token).or_insert(ack);
        if first.outcome != ack.outcome {
            return Some(format!("{} got two outcomes: {first}; {ack}", ack.token));
        }
    }
    for (id, replica) in replicas(state) {
        for (bucket, bucket_replica) in &replica.buckets {
            let mut seen = BTreeSet::new();
            for (position, entry) in bucket_replica.durable.log.iter() {
                let Some(token) = crate::rules::decided_token(entry) else {
                    continue;
                };
                if !seen.insert(token) {
                    return Some(format!(
                        "replica {} logged {token} a second time, at {bucket} {position}",
                        usize::from(id),
                    ));
                }
            }
        }
    }
    None
}

/// `commit quorum durable`: every entry acknowledged at a bucket's current
/// epoch is durable on every sync follower of that epoch — the commit rule,
/// checked directly.
pub fn commit_quorum_gap(state: &BerthState) -> Option<String> {
    let map = controller_map(state)?;
    state.history.acknowledgements.iter().find_map(|ack| {
        let placement = map.placement(ack.bucket)?;
        if placement.epoch != ack.epoch {
            return None;
        }
        // An answer from the idempotency table about an entry an earlier
        // epoch wrote (and its own commit quorum made durable) is a fact
        // about that epoch: the current sync followers may still be
        // catching up to it, and no promotion takes one that has not.
        let written = durable_bucket(state, ack.leader, ack.bucket)
            .and_then(|durable| durable.log.epoch_at(ack.position));
        if written.is_some_and(|written| written != ack.epoch) {
            return None;
        }
        placement.sync_followers.iter().find_map(|follower| {
            let durable = durable_bucket(state, *follower, ack.bucket)
                .is_some_and(|durable| holds(durable, ack.position, ack.token));
            (!durable).then(|| {
                format!(
                    "{ack}, but sync follower replica {} does not have it on disk",
                    usize::from(*follower)
                )
            })
        })
    })
}

/// Whether `durable` holds the entry deciding `token` at `position`: in
/// its log, or compacted into its snapshot (the entry itself is gone then;
/// the idempotency table's record of the token at that position stands
/// for it).
fn holds(durable: &DurableBucket, position: Position, token: Token) -> bool {
    match durable.log.entry(position) {
        Some(entry) => entry.token() == Some(token),
        None => {
            position <= durable.log.start()
                && durable
                    .applied
                    .recorded(&token)
                    .is_some_and(|recorded| recorded.position == position)
        }
    }
}

/// `booking confirmed`: some client is told its booking is confirmed.
pub fn booking_confirmed(state: &BerthState) -> bool {
    confirmed(&state.history).next().is_some()
}

/// `cabin contended`: two clients were answered about one cabin, and one of
/// them was refused.
pub fn cabin_contended(state: &BerthState) -> bool {
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

/// The always-properties `variant` must break (docs/protocol.md's gallery); none
/// for the correct design.
pub fn expected_violations(variant: Variant) -> &'static [&'static str] {
    match variant {
        Variant::Correct => &[],
        Variant::AsyncAck | Variant::PromoteLagging | Variant::EarlySwitch => {
            &[NO_LOST_CONFIRMED_BOOKING]
        }
        Variant::UncheckedEpoch => &[NO_SPLIT_OWNERSHIP],
        Variant::NoIdempotency => &[ONE_OUTCOME_PER_TOKEN],
        Variant::MultiLeader => &[NO_DOUBLE_SALE],
        Variant::IgnoreReadToken => &[SESSION_READS],
        Variant::StreamUncommitted => &[CHANGE_STREAM_EXACT],
        Variant::ResendsRunOut => &[crate::liveness::FOLLOWERS_CATCH_UP],
        Variant::NoFencing => &[
            NO_SPLIT_OWNERSHIP,
            NO_DOUBLE_SALE,
            NO_LOST_CONFIRMED_BOOKING,
        ],
    }
}
