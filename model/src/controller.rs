//! The controller: owns the placement map and serves it to routers.
//!
//! In the replication scenario the map is static; failover and cutover
//! advance bucket epochs through the controller.

use crate::actor::{BerthActor, Msg};
use crate::placement::PlacementMap;
use stateright::actor::{Id, Out};

/// The controller process.
#[derive(Clone, Debug)]
pub struct ControllerActor {
    /// The map the controller starts with before it has saved one.
    pub initial_map: PlacementMap,
}

/// The controller's state.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ControllerState {
    pub map: PlacementMap,
}

impl ControllerActor {
    pub fn on_start(&self, storage: Option<&PlacementMap>) -> ControllerState {
        ControllerState {
            map: storage.unwrap_or(&self.initial_map).clone(),
        }
    }

    pub fn on_msg(
        &self,
        _id: Id,
        state: &mut ControllerState,
        src: Id,
        msg: Msg,
        o: &mut Out<BerthActor>,
    ) {
        if let Msg::FetchMap = msg {
            o.send(src, Msg::Map(state.map.clone()));
        }
    }
}
