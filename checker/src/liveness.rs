//! Liveness: what must have happened once the faults stop.
//!
//! Stateright's `Property::eventually` is checked only at terminal states
//! (no successor at all), treats a return to a known state — a cycle, or
//! merely a join of two paths — as non-terminal, and does not keep which
//! paths already satisfied the property apart from the state, so a join
//! can hide a path that never does. A resend timer that keeps firing makes
//! every state of a correct run non-terminal, so `eventually` would check
//! nothing where it matters.
//!
//! berth states liveness at rest instead: a state is **at rest** when no
//! delivery and no timer can change anything (crashes, recoveries and
//! losses are faults, which have stopped). Every property here is an
//! always-property "at rest, the goal holds". In the checker's finite
//! scenarios every fair run whose faults stop comes to rest (every retry
//! loop is bounded there, and a loop that is not — the leader's heartbeat
//! while a follower lags — keeps the state from being at rest, so it
//! cannot hide a lagging follower). A run that circles forever without
//! resting — a livelock — is not caught here, nor a state whose every step
//! the boundary cuts off (`MAX_COPIES_IN_FLIGHT`): `recovery` checks those,
//! over the whole state graph.

use crate::history::{BerthModel, BerthState};
use crate::properties::PropertySpec;
use berth_model::controller::ControllerState;
use berth_model::NodeState;
use stateright::actor::ActorModelAction;
use stateright::actor::Id;
use stateright::Model;

pub const FOLLOWERS_CATCH_UP: &str = "followers catch up";
pub const CLIENTS_FINISH: &str = "clients finish";
pub const HOLDS_END: &str = "holds end";
pub const COMES_TO_REST: &str = "comes to rest";
pub const COMMITS_KNOWN: &str = "followers learn the commit";
pub const FAILOVERS_COMPLETE: &str = "failovers complete";
pub const MOVES_COMPLETE: &str = "moves complete";
pub const NOTHING_LEFT_STAGED: &str = "nothing left staged";

/// The liveness properties of the scenarios that run the runtime's
/// settings.
pub fn liveness_properties() -> Vec<PropertySpec> {
    vec![
        followers_catch_up_property(),
        clients_finish_property(),
        comes_to_rest_property(),
    ]
}

/// Once the faults stop, every live follower of a live leader holds the
/// leader's whole log. Where only crashes lose messages this needs
/// `ProtocolConfig::catch_up` (a restarted follower asks, the leader sends
/// what it lacks) and commit announcements (a restarted leader asks its
/// followers to report, since its own crash may have lost their request);
/// on a lossy network the leader's resends as well.
pub fn followers_catch_up_property() -> PropertySpec {
    PropertySpec::at_rest(
        FOLLOWERS_CATCH_UP,
        |model, state| lagging_follower(state).is_none() || !at_rest(model, state),
        |_, state| lagging_follower(state),
        "at rest, every live follower of a live leader holds the leader's whole log",
    )
}

/// A client with retries left keeps its retry timer while it waits, so it
/// never rests before it has its answers or has spent its retries: this
/// holds wherever clients retry, with or without the runtime's other
/// settings.
pub fn clients_finish_property() -> PropertySpec {
    PropertySpec::at_rest(
        CLIENTS_FINISH,
        |model, state| unfinished_client(state).is_none() || !at_rest(model, state),
        |_, state| unfinished_client(state),
        "at rest, every client has its answers or has spent its retries (and says the outcome is unknown)",
    )
}

/// Once the faults stop with every replica up, the cluster falls quiet: a
/// leader's resends and heartbeat stop once no follower lags. A heartbeat
/// that outlives its reason costs messages on every idle bucket and hides
/// from every property stated at rest (a state never at rest satisfies
/// them all). Only `recovery` can check it, over the whole state graph: at
/// rest it holds by definition, so the exploration's condition is `true`.
pub fn comes_to_rest_property() -> PropertySpec {
    PropertySpec {
        violation: None,
        ..PropertySpec::at_rest(
            COMES_TO_REST,
            |_, _| true,
            |_, _| None,
            "once faults stop with every replica up, some run comes to rest: resends and heartbeats stop once nothing lags",
        )
    }
}

/// On a network that loses nothing, a follower learns every commit: the
/// leader announces it once the commit moves, and again when a follower
/// completes its log without moving it. (On a lossy network a lost
/// announcement is repaired by the next write, not at rest: there a
/// follower may rest on an old commit, which `followers catch up` allows.)
pub fn commit_liveness_property() -> PropertySpec {
    PropertySpec::at_rest(
        COMMITS_KNOWN,
        |model, state| uninformed_follower(state).is_none() || !at_rest(model, state),
        |_, state| uninformed_follower(state),
        "at rest on a network that loses nothing, every live follower holding its leader's log holds its commit too",
    )
}

/// The liveness property of the scenarios whose holds expire: a hold's
/// clock survives what a leader goes through. A leader that recovers, or a
/// follower promoted in its place, restarts the clock of every hold it
/// inherits; without that the hold would keep its cabin forever.
pub fn hold_liveness_property() -> PropertySpec {
    PropertySpec::at_rest(
        HOLDS_END,
        |model, state| lasting_hold(state).is_none() || !at_rest(model, state),
        |_, state| lasting_hold(state),
        "at rest, no live leader keeps a committed hold that nothing in its log ends (each hold is confirmed or expires)",
    )
}

/// A failover the controller started ends once a sync follower it fenced
/// is up to answer: the controller resends the fence while it waits
/// (`ProtocolConfig::resend_unanswered`, the runtime's setting), so where
/// a fence can be lost it never rests with one unanswered. Stated where
/// the controller resends, and where nothing loses a fence (an ordered
/// network, no crash).
pub fn failovers_complete_property() -> PropertySpec {
    PropertySpec::at_rest(
        FAILOVERS_COMPLETE,
        |model, state| stuck_failover(state).is_none() || !at_rest(model, state),
        |_, state| stuck_failover(state),
        "at rest, the controller (if up) has no failover in progress whose bucket has a sync follower up to answer its fence",
    )
}

/// A failover in progress at a live controller while a sync follower of
/// the bucket is up, named in one sentence.
pub fn stuck_failover(state: &BerthState) -> Option<String> {
    let controller = live_controller(state)?;
    controller.fencing.iter().find_map(|(bucket, epoch)| {
        let placement = controller.map.placement(*bucket)?;
        let follower = placement
            .sync_followers
            .iter()
            .find(|follower| state.crashed.get(usize::from(**follower)) == Some(&false))?;
        Some(format!(
            "the failover of {bucket} to {epoch} never ends, though its sync follower replica {} is up",
            usize::from(*follower)
        ))
    })
}

/// The controller, if it is up (a scenario has one).
fn live_controller(state: &BerthState) -> Option<&ControllerState> {
    state
        .actor_states
        .iter()
        .enumerate()
        .find_map(|(index, node)| {
            node.as_controller()
                .filter(|_| state.crashed.get(index) == Some(&false))
        })
}

/// A move the operator started ends: the source streams the bucket to the
/// destination, seals it once the destination caught up, and reports the
/// barrier, and the controller publishes the new owner. Without resends
/// nothing repairs a lost message or what a crash loses, so this is
/// stated where nothing is lost (an ordered network, no crash). A transfer
/// that stops halfway (a chunk never asked for, a barrier never reported)
/// leaves the cluster at rest with the move in progress.
pub fn moves_complete_property() -> PropertySpec {
    PropertySpec::at_rest(
        MOVES_COMPLETE,
        |model, state| stuck_move(state).is_none() || !at_rest(model, state),
        |_, state| stuck_move(state),
        "at rest on a network that loses nothing, the controller has no move in progress: every move it started was published",
    )
}

/// A move in progress at a live controller, named in one sentence.
pub fn stuck_move(state: &BerthState) -> Option<String> {
    let (bucket, moving) = live_controller(state)?.moving.iter().next()?;
    Some(format!(
        "the move of {bucket} to group {} never ends",
        moving.destination.group.0
    ))
}

/// Once a move's transfer is over, no replica keeps part of a snapshot:
/// a partial snapshot that nothing will complete is memory the runtime
/// never gets back, one per bucket a late or repeated chunk reached.
/// Stated with chunked snapshots where nothing is lost.
pub fn nothing_left_staged_property() -> PropertySpec {
    PropertySpec::at_rest(
        NOTHING_LEFT_STAGED,
        |model, state| left_staged(state).is_none() || !at_rest(model, state),
        |_, state| left_staged(state),
        "at rest on a network that loses nothing, no replica holds part of a snapshot",
    )
}

/// A live replica that holds part of a snapshot, named in one sentence.
pub fn left_staged(state: &BerthState) -> Option<String> {
    state
        .actor_states
        .iter()
        .enumerate()
        .filter(|(index, _)| !state.crashed.get(*index).copied().unwrap_or(false))
        .find_map(|(index, node)| {
            let NodeState::Replica(replica) = &**node else {
                return None;
            };
            let (bucket, staged) = replica.staging.iter().next()?;
            Some(format!(
                "replica {index} keeps chunks {}..{} of a snapshot of {bucket} at {} that nothing completes",
                0, staged.next, staged.position
            ))
        })
}

/// Whether no delivery and no timer can change `state` (faults aside).
/// A step the scenario's boundary cuts off (a second copy of a message in
/// flight) still counts: the state is not at rest, only unexplored beyond.
pub fn at_rest(model: &BerthModel, state: &BerthState) -> bool {
    let mut actions = Vec::new();
    model.actions(state, &mut actions);
    actions.into_iter().all(|action| {
        matches!(
            action,
            ActorModelAction::Crash(_) | ActorModelAction::Recover(_) | ActorModelAction::Drop(_)
        ) || model.next_state(state, action).is_none()
    })
}

/// A live follower of a live leader that lacks part of the leader's log
/// or its commit, named in one sentence.
pub fn lagging_follower(state: &BerthState) -> Option<String> {
    let replica = |id: Id| {
        let index = usize::from(id);
        if state.crashed.get(index) != Some(&false) {
            return None;
        }
        state.actor_states.get(index)?.as_replica()
    };
    state
        .actor_states
        .iter()
        .enumerate()
        .find_map(|(index, node)| {
            let leader_id = Id::from(index);
            let leader = node.as_replica().filter(|_| !state.crashed[index])?;
            leader.buckets.iter().find_map(|(bucket, led)| {
                let durable = &led.durable;
                if !durable.is_leader(leader_id) {
                    return None;
                }
                durable.placement.followers().find_map(|follower_id| {
                    let follower = replica(follower_id)?;
                    let copy = &follower.buckets.get(bucket)?.durable;
                    if copy.placement.epoch != durable.placement.epoch {
                        return Some(format!(
                            "replica {} follows {bucket} at {}, its leader replica {index} is at {}",
                            usize::from(follower_id),
                            copy.placement.epoch,
                            durable.placement.epoch
                        ));
                    }
                    // The log, not the commit: a follower that holds the
                    // log but missed the last commit announcement learns
                    // it with the next write (docs/liveness.md).
                    let behind = copy.log.last_position() < durable.log.last_position();
                    behind.then(|| {
                        format!(
                            "replica {} holds {bucket} through {}, its leader replica {index} through {}",
                            usize::from(follower_id),
                            copy.log.last_position(),
                            durable.log.last_position(),
                        )
                    })
                })
            })
        })
}

/// A live follower of a live leader, at its epoch and holding its whole
/// log, that has not learned the leader's commit, named in one sentence.
pub fn uninformed_follower(state: &BerthState) -> Option<String> {
    let live = |index: usize| state.crashed.get(index) == Some(&false);
    state
        .actor_states
        .iter()
        .enumerate()
        .filter(|(index, _)| live(*index))
        .find_map(|(index, node)| {
            node.as_replica()?.buckets.iter().find_map(|(bucket, led)| {
                let durable = &led.durable;
                if !durable.is_leader(Id::from(index)) {
                    return None;
                }
                durable.placement.followers().find_map(|follower_id| {
                    let follower = usize::from(follower_id);
                    if !live(follower) {
                        return None;
                    }
                    let copy = &state.actor_states[follower]
                        .as_replica()?
                        .buckets
                        .get(bucket)?
                        .durable;
                    let holds_log = copy.placement.epoch == durable.placement.epoch
                        && copy.log.last_position() >= durable.log.last_position();
                    (holds_log && copy.commit_position < durable.commit_position).then(|| {
                        format!(
                            "replica {follower} holds {bucket}'s log through {} but committed only through {}, its leader replica {index} through {}",
                            copy.log.last_position(),
                            copy.commit_position,
                            durable.commit_position,
                        )
                    })
                })
            })
        })
}

/// A live leader whose bucket holds a cabin for a hold that was neither
/// confirmed nor expired, named in one sentence.
pub fn lasting_hold(state: &BerthState) -> Option<String> {
    state
        .actor_states
        .iter()
        .enumerate()
        .filter(|(index, _)| !state.crashed[*index])
        .find_map(|(index, node)| {
            node.as_replica()?.buckets.iter().find_map(|(bucket, led)| {
                let durable = &led.durable;
                if !durable.is_leader(Id::from(index)) {
                    return None;
                }
                // Committed, and no entry ending it in the log: a hold
                // whose own entry is still uncommitted, or whose end is,
                // waits for the log to move, which `followers catch up`
                // covers (without the runtime's resends, a lost append may
                // stop it for good).
                let last = durable.state_through_last();
                let (unit, hold) = durable
                    .applied
                    .holds()
                    .find(|(_, hold)| last.holds().any(|(_, active)| active == *hold))?;
                Some(format!(
                    "replica {index} leads {bucket} and still holds {unit} for {hold}, committed"
                ))
            })
        })
}

/// A client with a task left and retries left, named in one sentence.
pub fn unfinished_client(state: &BerthState) -> Option<String> {
    state
        .actor_states
        .iter()
        .enumerate()
        .find_map(|(index, node)| {
            let NodeState::Client(client) = &**node else {
                return None;
            };
            match &client.pending {
                Some(pending) if pending.retries_left > 0 => Some(format!(
                    "client {index} waits for an answer with {} retries left",
                    pending.retries_left
                )),
                Some(_) => None,
                None => (client.task_index == 0 && client.answers.is_empty())
                    .then(|| format!("client {index} never started")),
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{Scenario, ScenarioConfig};
    use berth_model::bucket::{Command, Op};
    use berth_model::log::Entry;
    use berth_model::replica::DurableBucket;
    use berth_model::types::{Bucket, Customer, Epoch, InventoryUnit, Position, Token};
    use std::sync::Arc;

    /// Goal: `holds end` names a live leader that keeps a committed hold,
    /// and not one whose log already ends it, nor a hold still uncommitted,
    /// nor a crashed leader's (a forged state: the run in which a
    /// promoted leader must restart the clock is in the battery).
    #[test]
    fn a_lasting_hold_is_a_committed_one_that_nothing_ends() {
        let config = ScenarioConfig {
            expiring_holds: true,
            ..ScenarioConfig::new(Scenario::Replication)
        };
        let mut state = config.build().init_states().remove(0);
        assert_eq!(lasting_hold(&state), None);
        let leader = 1;
        let unit = InventoryUnit::new("BCN-JFK", "C14");
        let hold = Token { client: 4, seq: 0 };
        let edit = |state: &mut BerthState, change: &dyn Fn(&mut DurableBucket)| {
            let mut node = (*state.actor_states[leader]).clone();
            let NodeState::Replica(replica) = &mut node else {
                unreachable!("replica 1 leads")
            };
            let bucket = replica.buckets.get_mut(&Bucket(0)).unwrap();
            change(DurableBucket::edit(&mut bucket.durable));
            state.actor_states[leader] = Arc::new(node);
        };
        let held = Entry::command(
            Epoch::FIRST,
            Command {
                token: hold,
                op: Op::Hold {
                    unit: unit.clone(),
                    customer: Customer::new("alice"),
                },
            },
        );
        edit(&mut state, &|durable| {
            durable.log.push(held.clone());
        });
        assert_eq!(lasting_hold(&state), None, "uncommitted");
        edit(&mut state, &|durable| {
            durable.applied.apply_entry(Position(1), &held);
            durable.commit_position = Position(1);
        });
        assert!(lasting_hold(&state).is_some_and(|what| what.contains("C14")));
        state.crashed[leader] = true;
        assert_eq!(lasting_hold(&state), None, "crashed");
        state.crashed[leader] = false;
        edit(&mut state, &|durable| {
            durable
                .log
                .push(Entry::expire(Epoch::FIRST, unit.clone(), hold));
        });
        assert_eq!(lasting_hold(&state), None, "its expiry is in the log");
    }

    /// Goal: `moves complete` names a move in progress at a live
    /// controller, and nothing once the controller is down or no move is
    /// in progress (a forged state; the run in which the correct design
    /// stalled is in the battery: docs/liveness.md).
    #[test]
    fn a_stuck_move_is_one_in_progress_at_a_live_controller() {
        let config = ScenarioConfig::new(Scenario::Cutover);
        let mut state = config.build().init_states().remove(0);
        assert_eq!(stuck_move(&state), None);
        let index = state
            .actor_states
            .iter()
            .position(|node| node.as_controller().is_some())
            .unwrap();
        let mut node = (*state.actor_states[index]).clone();
        let NodeState::Controller(controller) = &mut node else {
            unreachable!("found above")
        };
        let mut destination = controller.map.placement(Bucket(0)).unwrap().clone();
        destination.group = berth_model::types::GroupId(2);
        controller.moving.insert(
            Bucket(0),
            berth_model::controller::Moving {
                bucket: Bucket(0),
                epoch: Epoch::FIRST,
                destination,
            },
        );
        state.actor_states[index] = Arc::new(node);
        assert!(stuck_move(&state).is_some_and(|what| what.contains("group 2")));
        state.crashed[index] = true;
        assert_eq!(stuck_move(&state), None, "the controller is down");
    }

    /// Goal: `nothing left staged` names a live replica that keeps part of
    /// a snapshot, and none once it is down.
    #[test]
    fn a_partial_snapshot_at_a_live_replica_is_left_staged() {
        let config = ScenarioConfig::new(Scenario::Cutover);
        let mut state = config.build().init_states().remove(0);
        assert_eq!(left_staged(&state), None);
        let index = state
            .actor_states
            .iter()
            .position(|node| node.as_replica().is_some())
            .unwrap();
        let mut node = (*state.actor_states[index]).clone();
        let NodeState::Replica(replica) = &mut node else {
            unreachable!("found above")
        };
        let placement = replica
            .buckets
            .get(&Bucket(0))
            .unwrap()
            .durable
            .placement
            .clone();
        replica.staging.insert(
            Bucket(0),
            berth_model::replica::Staged {
                epoch: Epoch::FIRST,
                placement,
                position: Position(3),
                position_epoch: Epoch::FIRST,
                count: 2,
                state: Default::default(),
                next: 1,
            },
        );
        state.actor_states[index] = Arc::new(node);
        assert!(left_staged(&state).is_some_and(|what| what.contains("p3")));
        state.crashed[index] = true;
        assert_eq!(left_staged(&state), None, "the replica is down");
    }
}
