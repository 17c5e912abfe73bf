//! The wire format: one datagram per message, in postcard (a compact
//! binary serde format; JSON cannot carry the maps keyed by tokens). Besides the protocol's
//! own `Msg`, a member answers status requests (observability, not
//! protocol: the report is read off the member's state and decides
//! nothing).

use berth_model::controller::ControllerState;
use berth_model::placement::PlacementMap;
use berth_model::{Bucket, Epoch, Msg, NodeState, Position, Role};
use serde::{Deserialize, Serialize};
use stateright::actor::Id;

/// The largest datagram berth sends or accepts (the UDP payload limit over
/// IPv4).
pub const MAX_DATAGRAM: usize = 65_507;

/// Everything that travels between berth processes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Datagram {
    Protocol(Msg),
    /// Anyone → member: report your state.
    StatusRequest,
    Status(Report),
}

/// What a member reports about itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Report {
    Controller {
        map: PlacementMap,
        /// Replicas the failure detector considers down.
        down: Vec<usize>,
        /// Buckets being failed over, and the epoch their quorum is fenced at.
        fencing: Vec<(Bucket, Epoch)>,
        /// Buckets being moved, and the group they go to.
        moving: Vec<(Bucket, u32)>,
    },
    Replica {
        buckets: Vec<BucketReport>,
    },
}

/// One bucket at one replica.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketReport {
    pub bucket: Bucket,
    pub epoch: Epoch,
    pub role: Option<Role>,
    /// The last position in its log.
    pub last: Position,
    /// Committed and applied through this position.
    pub applied: Position,
}

impl Report {
    /// The report of a member in `state`, whose detector counts a replica
    /// down after `misses` probes.
    pub fn of(id: Id, state: &NodeState, misses: u8) -> Option<Report> {
        match state {
            NodeState::Controller(controller) => Some(controller_report(controller, misses)),
            NodeState::Replica(replica) => Some(Report::Replica {
                buckets: replica
                    .buckets
                    .iter()
                    .map(|(bucket, bucket_replica)| {
                        let durable = &bucket_replica.durable;
                        BucketReport {
                            bucket: *bucket,
                            epoch: durable.placement.epoch,
                            role: durable.placement.role_of(id),
                            last: durable.log.last_position(),
                            applied: durable.commit_position,
                        }
                    })
                    .collect(),
            }),
            NodeState::Client(_) => None,
        }
    }
}

fn controller_report(controller: &ControllerState, misses: u8) -> Report {
    Report::Controller {
        map: controller.map.clone(),
        down: controller
            .down(misses)
            .into_iter()
            .map(usize::from)
            .collect(),
        fencing: controller
            .fencing
            .iter()
            .map(|(bucket, epoch)| (*bucket, *epoch))
            .collect(),
        moving: controller
            .moving
            .iter()
            .map(|(bucket, moving)| (*bucket, moving.destination.group.0))
            .collect(),
    }
}

/// Encodes `datagram`, or says why it cannot be sent.
pub fn encode(datagram: &Datagram) -> Result<Vec<u8>, String> {
    let bytes = postcard::to_stdvec(datagram).map_err(|error| error.to_string())?;
    if bytes.len() > MAX_DATAGRAM {
        return Err(format!(
            "{} bytes exceed the {MAX_DATAGRAM}-byte datagram limit",
            bytes.len()
        ));
    }
    Ok(bytes)
}

/// Decodes one received datagram, or says why it is not one of ours.
pub fn decode(bytes: &[u8]) -> Result<Datagram, String> {
    if bytes.len() > MAX_DATAGRAM {
        return Err(format!("{} bytes: oversized", bytes.len()));
    }
    postcard::from_bytes(bytes).map_err(|error| error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_model::{Command, InventoryUnit, Op, Token};
    use proptest::prelude::*;

    /// Goal: every message survives the wire unchanged.
    #[test]
    fn protocol_messages_round_trip() {
        let msg = Msg::Request {
            bucket: Bucket(7),
            epoch: Epoch(3),
            command: Command {
                token: Token { client: 9, seq: 2 },
                op: Op::Hold {
                    unit: InventoryUnit::new("BCN-JFK-2026-07-14", "C14"),
                },
            },
        };
        let datagram = Datagram::Protocol(msg);
        assert_eq!(decode(&encode(&datagram).unwrap()).unwrap(), datagram);
    }

    proptest! {
        /// Goal: arbitrary bytes never panic the decoder; they decode or
        /// are refused with a reason.
        #[test]
        fn garbage_is_refused_not_panicked_on(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&bytes);
        }
    }

    /// Goal: an oversized datagram is refused on both sides.
    #[test]
    fn oversized_datagrams_are_refused() {
        assert!(decode(&vec![0; MAX_DATAGRAM + 1])
            .unwrap_err()
            .contains("oversized"));
        let huge = Datagram::Protocol(Msg::Request {
            bucket: Bucket(0),
            epoch: Epoch(1),
            command: Command {
                token: Token { client: 1, seq: 1 },
                op: Op::Hold {
                    unit: InventoryUnit::new("T".repeat(70_000), "C1"),
                },
            },
        });
        assert!(encode(&huge).unwrap_err().contains("datagram limit"));
    }
}
