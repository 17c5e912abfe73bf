//! The client (router): books inventory units one after another.
//!
//! For each unit it sends `Hold`, then `Confirm` with the granted hold, each
//! under its own idempotency token. It routes with its cached placement map
//! and the bucket's epoch; on `Redirect` it fetches the map from the
//! controller and resends the same command, with the same token, once the
//! map is newer; on its retry timer it resends the same command too. It
//! therefore never turns one business action into two.

use crate::actor::{BerthActor, Msg, ProtocolConfig, Timer};
use crate::bucket::{Command, Op, Outcome};
use crate::placement::PlacementMap;
use crate::types::{InventoryUnit, Token};
use crate::variant::Variant;
use stateright::actor::{Id, Out};

/// A client process and its script.
#[derive(Clone, Debug)]
pub struct ClientActor {
    /// The client part of every token this client issues.
    pub client: u64,
    pub controller: Id,
    /// The units to book, in order.
    pub units: Vec<InventoryUnit>,
    /// The map the router starts with (from its configuration).
    pub initial_map: PlacementMap,
    /// `Variant::MultiLeader` only: the replica in this client's region,
    /// which takes the region's writes. In every other design writes go to
    /// the bucket's leader.
    pub regional_replica: Option<Id>,
    pub config: ProtocolConfig,
}

/// The action in flight.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Pending {
    pub command: Command,
    pub retries_left: u8,
}

/// A client's state.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClientState {
    /// The cached placement map.
    pub map: PlacementMap,
    /// Index into `units` of the unit being booked.
    pub unit_index: usize,
    /// The sequence number of the next token.
    pub next_seq: u32,
    pub pending: Option<Pending>,
}

impl ClientActor {
    pub fn on_start(&self, _id: Id, o: &mut Out<BerthActor>) -> ClientState {
        let mut state = ClientState {
            map: self.initial_map.clone(),
            unit_index: 0,
            next_seq: 0,
            pending: None,
        };
        self.start_hold(&mut state, o);
        state
    }

    pub fn on_msg(
        &self,
        _id: Id,
        state: &mut ClientState,
        _src: Id,
        msg: Msg,
        o: &mut Out<BerthActor>,
    ) {
        match msg {
            Msg::Reply { token, outcome, .. } => {
                let Some(pending) = &state.pending else {
                    return; // ignore_reply_when_idle (a duplicate)
                };
                if pending.command.token != token {
                    return; // ignore_reply_for_other_token (a duplicate)
                }
                match (&pending.command.op, outcome) {
                    (Op::Hold { unit }, Outcome::Held) => {
                        let op = Op::Confirm {
                            unit: unit.clone(),
                            hold: token,
                        };
                        self.start(state, op, o);
                    }
                    _ => {
                        state.unit_index += 1;
                        state.pending = None;
                        o.cancel_timer(Timer::ClientRetry);
                        self.start_hold(state, o);
                    }
                }
            }
            Msg::Redirect { token, .. }
                if state.pending.as_ref().map(|p| p.command.token) == Some(token) =>
            {
                o.send(self.controller, Msg::FetchMap);
            }
            Msg::Map(map) => {
                if map.version <= state.map.version {
                    return; // ignore_older_map: the retry timer resends
                }
                state.map = map;
                self.send_pending(state, o);
            }
            _ => {}
        }
    }

    pub fn on_timeout(
        &self,
        _id: Id,
        state: &mut ClientState,
        timer: &Timer,
        o: &mut Out<BerthActor>,
    ) {
        if *timer != Timer::ClientRetry {
            return;
        }
        let Some(pending) = &mut state.pending else {
            return;
        };
        if pending.retries_left == 0 {
            return; // the retry budget is spent: the outcome stays unknown
        }
        pending.retries_left -= 1;
        self.send_pending(state, o);
    }

    fn start_hold(&self, state: &mut ClientState, o: &mut Out<BerthActor>) {
        if let Some(unit) = self.units.get(state.unit_index) {
            self.start(state, Op::Hold { unit: unit.clone() }, o);
        }
    }

    fn start(&self, state: &mut ClientState, op: Op, o: &mut Out<BerthActor>) {
        let token = Token {
            client: self.client,
            seq: state.next_seq,
        };
        state.next_seq += 1;
        state.pending = Some(Pending {
            command: Command { token, op },
            retries_left: self.config.client_retries,
        });
        self.send_pending(state, o);
    }

    /// Routes the pending command with the cached map and sends it.
    fn send_pending(&self, state: &ClientState, o: &mut Out<BerthActor>) {
        let Some(pending) = &state.pending else {
            return;
        };
        let (bucket, placement) = state.map.route(pending.command.op.unit());
        let writer = match self.regional_replica {
            Some(replica) if self.config.variant == Variant::MultiLeader => replica,
            _ => placement.leader,
        };
        o.send(
            writer,
            Msg::Request {
                bucket,
                epoch: placement.epoch,
                command: pending.command.clone(),
            },
        );
        if pending.retries_left > 0 {
            o.set_timer(
                Timer::ClientRetry,
                self.config.timeouts.client_retry.clone(),
            );
        }
    }
}
