//! The model the checker runs: Stateright's `ActorModel` of the
//! `berth-model` actors, with one change to what a crash means.
//!
//! In Stateright's `ActorModel` a message sent to an actor that is crashed
//! waits in the network and is delivered once the actor recovers, as if
//! the network held it for the whole outage. A berth process is not so
//! lucky: its datagrams go to a UDP socket, and whatever was in flight to
//! it, in its socket's buffer or sent while it was down is gone when it
//! comes back. A protocol that counts on those messages (a follower that
//! waits for an append its leader sent while it was down) would pass every
//! check and stall in the runtime. So here a crash loses every message
//! addressed to the crashed actor, and its recovery every message sent to
//! it while it was down: the network the checker explores loses exactly
//! what a restart loses, even where it otherwise loses nothing.

use crate::history::{History, RunControl};
use berth_model::{BerthActor, Msg};
use stateright::actor::{ActorModel, ActorModelAction, ActorModelState, Id, Network};
use stateright::{Expectation, Model, Path, Property};
use std::ops::Deref;

/// The actors in Stateright's model, plus what a restart loses.
pub struct BerthModel {
    inner: ActorModel<BerthActor, RunControl, History>,
    properties: Vec<Property<BerthModel>>,
}

/// One state of that model.
pub type BerthState = ActorModelState<BerthActor, History>;
/// One step of that model.
pub type BerthAction = ActorModelAction<Msg, berth_model::Timer, ()>;

impl BerthModel {
    /// `inner`, whose crashes lose what is addressed to the crashed actor.
    pub fn new(inner: ActorModel<BerthActor, RunControl, History>) -> Self {
        BerthModel {
            inner,
            properties: Vec::new(),
        }
    }

    /// Adds a property (Stateright's `ActorModel::property`).
    pub fn with_property(
        mut self,
        expectation: Expectation,
        name: &'static str,
        condition: fn(&BerthModel, &BerthState) -> bool,
    ) -> Self {
        self.properties.push(Property {
            expectation,
            name,
            condition,
        });
        self
    }
}

impl Clone for BerthModel {
    fn clone(&self) -> Self {
        BerthModel {
            inner: self.inner.clone(),
            properties: Model::properties(self),
        }
    }
}

impl Deref for BerthModel {
    type Target = ActorModel<BerthActor, RunControl, History>;

    fn deref(&self) -> &Self::Target {
        &self.inner
    }
}

/// Removes from `network` every message addressed to `dst`.
pub fn lose_messages_to(network: &mut Network<Msg>, dst: Id) {
    match network {
        Network::UnorderedDuplicating(envelopes, last) => {
            envelopes.retain(|envelope| envelope.dst != dst);
            if last.as_ref().is_some_and(|envelope| envelope.dst == dst) {
                *last = None;
            }
        }
        Network::UnorderedNonDuplicating(envelopes) => {
            envelopes.retain(|envelope, _| envelope.dst != dst);
        }
        Network::Ordered(channels) => channels.retain(|(_, to), _| *to != dst),
    }
}

impl Model for BerthModel {
    type State = BerthState;
    type Action = BerthAction;

    fn init_states(&self) -> Vec<Self::State> {
        Model::init_states(&self.inner)
    }

    fn actions(&self, state: &Self::State, actions: &mut Vec<Self::Action>) {
        Model::actions(&self.inner, state, actions)
    }

    fn next_state(&self, last: &Self::State, action: Self::Action) -> Option<Self::State> {
        // An actor sends nothing to itself when it recovers, so what is
        // addressed to it after the step is what was sent before.
        let restarted = match &action {
            ActorModelAction::Crash(id) | ActorModelAction::Recover(id) => Some(*id),
            _ => None,
        };
        let mut next = Model::next_state(&self.inner, last, action)?;
        if let Some(id) = restarted {
            lose_messages_to(&mut next.network, id);
        }
        Some(next)
    }

    fn format_action(&self, action: &Self::Action) -> String {
        Model::format_action(&self.inner, action)
    }

    fn format_step(&self, last: &Self::State, action: Self::Action) -> Option<String> {
        Model::format_step(&self.inner, last, action)
    }

    fn as_svg(&self, path: Path<Self::State, Self::Action>) -> Option<String> {
        Model::as_svg(&self.inner, path)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        self.properties
            .iter()
            .map(|property| Property {
                expectation: property.expectation.clone(),
                name: property.name,
                condition: property.condition,
            })
            .collect()
    }

    fn within_boundary(&self, state: &Self::State) -> bool {
        Model::within_boundary(&self.inner, state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{NetworkKind, ScenarioConfig};

    /// Goal: a crash loses what is in flight to the crashed actor (here
    /// the clients' first requests to the leader), where Stateright's own
    /// model keeps it for delivery after the recovery.
    #[test]
    fn a_crash_loses_what_is_addressed_to_the_crashed_actor() {
        let model = ScenarioConfig {
            network: NetworkKind::Ordered,
            crashes: 1,
            ..ScenarioConfig::default()
        }
        .build();
        let init = model.init_states().remove(0);
        let leader = Id::from(1);
        // (Stateright 0.31's `Network::iter_all` does not end on an
        // ordered network: count the channels' queues instead.)
        let to_leader = |state: &BerthState| match &state.network {
            Network::Ordered(channels) => channels
                .iter()
                .filter(|((_, dst), _)| *dst == leader)
                .map(|(_, queue)| queue.len())
                .sum::<usize>(),
            _ => unreachable!("an ordered network"),
        };
        assert!(to_leader(&init) > 0, "the clients' requests are in flight");
        let crash = ActorModelAction::Crash(leader);
        let kept = Model::next_state(&model.inner, &init, crash.clone()).unwrap();
        assert_eq!(to_leader(&kept), to_leader(&init), "Stateright keeps them");
        let crashed = model.next_state(&init, crash).unwrap();
        assert_eq!(to_leader(&crashed), 0);
        let recovered = model
            .next_state(&crashed, ActorModelAction::Recover(leader))
            .unwrap();
        assert_eq!(to_leader(&recovered), 0);
    }
}
