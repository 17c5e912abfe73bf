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
use berth_model::NodeState;
use stateright::actor::ActorModelAction;
use stateright::actor::Id;
use stateright::Model;

pub const FOLLOWERS_CATCH_UP: &str = "followers catch up";
pub const CLIENTS_FINISH: &str = "clients finish";

/// The liveness properties of the scenarios that run the runtime's
/// settings.
pub fn liveness_properties() -> Vec<PropertySpec> {
    vec![
        PropertySpec::at_rest(
            FOLLOWERS_CATCH_UP,
            |model, state| lagging_follower(state).is_none() || !at_rest(model, state),
            lagging_follower,
            "at rest, every live follower of a live leader holds the leader's whole log",
        ),
        PropertySpec::at_rest(
            CLIENTS_FINISH,
            |model, state| unfinished_client(state).is_none() || !at_rest(model, state),
            unfinished_client,
            "at rest, every client has its answers or has spent its retries (and says the outcome is unknown)",
        ),
    ]
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
                    // it with the next write (docs/verification.md,
                    // "Liveness").
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
