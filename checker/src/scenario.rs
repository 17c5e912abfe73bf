//! Scenarios: which actors, which network, which faults. A scenario turns a
//! `ScenarioConfig` into the `ActorModel` the checker explores.

use berth_model::actor::ProtocolConfig;
use berth_model::placement::{BucketPlacement, PlacementMap};
use berth_model::properties::{self, BerthModel, BerthState, PropertySpec, RunControl};
use berth_model::Epoch;
use berth_model::{
    BerthActor, ClientActor, ControllerActor, GroupId, InventoryUnit, ReplicaActor, Variant,
};
use serde::Serialize;
use stateright::actor::{Id, LossyNetwork, Network};
use std::fmt;

/// The scenarios `berth-check` knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// One bucket, one replica group (leader, sync follower, async follower),
    /// a static placement map, and clients racing to book one cabin.
    Replication,
}

/// How the simulated network treats messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkKind {
    /// Messages arrive in any order, each at most once.
    Unordered,
    /// Messages arrive in any order and may arrive more than once.
    UnorderedDuplicating,
    /// Messages between two actors arrive in the order they were sent.
    Ordered,
    /// Messages arrive in any order, at most once, or are lost.
    Lossy,
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scenario::Replication => "replication",
        })
    }
}

impl fmt::Display for NetworkKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NetworkKind::Unordered => "unordered",
            NetworkKind::UnorderedDuplicating => "unordered-duplicating",
            NetworkKind::Ordered => "ordered",
            NetworkKind::Lossy => "lossy",
        })
    }
}

/// Everything that decides the model's state space.
#[derive(Clone, Debug, Serialize)]
pub struct ScenarioConfig {
    pub scenario: Scenario,
    pub variant: Variant,
    pub clients: usize,
    pub network: NetworkKind,
    /// How many replicas may be crashed at once.
    pub crashes: usize,
    /// How many times a client resends one request on its retry timer.
    /// The duplicating network already delivers a request twice, which is
    /// what a retry looks like to the leader, at a fraction of the cost:
    /// timer-driven retries multiply the state space (about 150x for one
    /// retry with two clients), so they are opt-in.
    pub retries: u8,
}

impl Default for ScenarioConfig {
    fn default() -> Self {
        ScenarioConfig {
            scenario: Scenario::Replication,
            variant: Variant::Correct,
            clients: 2,
            network: NetworkKind::Unordered,
            crashes: 0,
            retries: 0,
        }
    }
}

/// The trip and cabin every client of the replication scenario wants.
pub fn contended_unit() -> InventoryUnit {
    InventoryUnit::new("BCN-JFK-2026-07-14", "C14")
}

/// The actor ids of the replication scenario's layout.
pub mod layout {
    use stateright::actor::Id;

    pub const CONTROLLER: usize = 0;
    /// Leader, sync follower (same region), async follower (remote).
    pub const REPLICAS: [usize; 3] = [1, 2, 3];
    pub const REGIONS: [&str; 3] = ["madrid-a", "madrid-b", "newyork-a"];
    pub const FIRST_CLIENT: usize = 4;

    pub fn id(index: usize) -> Id {
        Id::from(index)
    }
}

impl ScenarioConfig {
    /// The properties this scenario checks.
    pub fn properties(&self) -> Vec<PropertySpec> {
        match self.scenario {
            Scenario::Replication => properties::replication_properties(),
        }
    }

    /// Builds the model to check.
    pub fn build(&self) -> BerthModel {
        self.build_with(RunControl::default())
    }

    /// Builds the model to check, stoppable through `control`.
    pub fn build_with(&self, control: RunControl) -> BerthModel {
        let protocol = ProtocolConfig {
            variant: self.variant,
            client_retries: self.retries,
            leader_resends: 0,
            timeouts: Default::default(),
        };
        let placement = BucketPlacement {
            epoch: Epoch(1),
            group: GroupId(1),
            leader: layout::id(layout::REPLICAS[0]),
            sync_followers: vec![layout::id(layout::REPLICAS[1])],
            async_followers: vec![layout::id(layout::REPLICAS[2])],
        };
        let map = PlacementMap::uniform(1, placement);

        let mut model = BerthModel::new(control, Default::default())
            .actor(BerthActor::Controller(ControllerActor {
                initial_map: map.clone(),
            }))
            .actors(layout::REGIONS.iter().map(|region| {
                BerthActor::Replica(ReplicaActor {
                    initial_map: map.clone(),
                    region: (*region).to_owned(),
                    config: protocol.clone(),
                })
            }))
            .actors((0..self.clients).map(|offset| {
                BerthActor::Client(ClientActor {
                    client: (layout::FIRST_CLIENT + offset) as u64,
                    controller: layout::id(layout::CONTROLLER),
                    units: vec![contended_unit()],
                    initial_map: map.clone(),
                    config: protocol.clone(),
                })
            }))
            .init_network(match self.network {
                NetworkKind::Unordered | NetworkKind::Lossy => {
                    Network::new_unordered_nonduplicating([])
                }
                NetworkKind::UnorderedDuplicating => Network::new_unordered_duplicating([]),
                NetworkKind::Ordered => Network::new_ordered([]),
            })
            .lossy_network(if self.network == NetworkKind::Lossy {
                LossyNetwork::Yes
            } else {
                LossyNetwork::No
            })
            .max_crashes(self.crashes)
            .record_msg_in(properties::record_msg_in)
            .within_boundary(within_boundary);
        for property in self.properties() {
            model = model.property(property.expectation, property.name, property.condition);
        }
        model
    }
}

/// Clients and the controller do not crash in these scenarios: a crash is
/// about what a replica keeps on disk. A stopped run has no boundary left.
fn within_boundary(control: &RunControl, state: &BerthState) -> bool {
    !control.is_stopped()
        && state
            .crashed
            .iter()
            .zip(&state.actor_states)
            .all(|(crashed, node)| !crashed || node.as_replica().is_some())
}

/// A human name for actor `id` in `model`: its role and index, and a
/// replica's region.
pub fn actor_name(model: &BerthModel, id: Id) -> String {
    let index = usize::from(id);
    match model.actors.get(index) {
        Some(BerthActor::Controller(_)) => format!("controller {index}"),
        Some(BerthActor::Replica(replica)) => format!("replica {index} ({})", replica.region),
        Some(BerthActor::Client(_)) => format!("client {index}"),
        None => format!("actor {index}"),
    }
}
