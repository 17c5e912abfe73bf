//! The client (router): runs its tasks one after another.
//!
//! A `Task::Book` sends `Hold`, then `Confirm` with the granted hold, each
//! under its own idempotency token; `Task::Hold` and `Task::Confirm` are its
//! halves, and `Task::Query` asks what became of a token. The client routes
//! with its cached placement map and the bucket's epoch; on `Redirect` it
//! fetches the map from the controller and resends the same message, with
//! the same token, once the map is newer; on its retry timer it resends the
//! same message too. It therefore never turns one business action into two.
//! Every answer that ends a task is kept in `ClientState::answers`, in
//! order, for whoever runs the client; `session reads` checks them.
//!
//! The client's session: for each bucket, the newest position it has
//! observed (`ClientState::observed`), from the position every write reply
//! and read reply carries. A `Task::Read` asks a follower first (the
//! `reader`, or the bucket's remote follower), naming that position; a
//! follower that has not applied through it answers `ReadBehind`, and the
//! client reads at the leader instead.

use crate::bucket::{Command, Op, Outcome};
use crate::config::ProtocolConfig;
use crate::messages::{Emits, Msg, Timer};
use crate::messages::{ReadReply, Reply};
use crate::placement::PlacementMap;
use crate::types::{Bucket, Customer, InventoryUnit, Position, Token};
use crate::variant::Variant;
use serde::{Deserialize, Serialize};
use stateright::actor::{Id, Out};
use std::collections::BTreeMap;

/// One thing a client does.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Task {
    /// Hold `unit`, then confirm the hold.
    Book(InventoryUnit),
    /// Hold `unit`; the hold's id is the action's token.
    Hold(InventoryUnit),
    /// Confirm the hold `hold` on `unit`.
    Confirm { unit: InventoryUnit, hold: Token },
    /// Ask `bucket`'s leader what became of `token`.
    Query { bucket: Bucket, token: Token },
    /// Read `unit`'s status, at a follower if it has applied through the
    /// client's observed position of the unit's bucket.
    Read(InventoryUnit),
    /// Send `msg` to actor `to` as it is, and go straight on (no answer is
    /// awaited): a client that does not follow the protocol. The checker's
    /// outsider sends with it what only the controller or a bucket's
    /// leader may send, and the protocol must ignore that: a replica acts
    /// on who sent a message (the runtime authenticates the sender), never
    /// on what the message claims.
    Send { to: Id, msg: Msg },
}

/// A client process and its script.
#[derive(Clone, Debug)]
pub struct ClientActor {
    /// The client part of every token this client issues.
    pub client: u64,
    pub controller: Id,
    /// Who the client's holds are for.
    pub customer: Customer,
    /// What to do, in order.
    pub tasks: Vec<Task>,
    /// Positions the client's session has already observed (a position
    /// token from an earlier session, given on the command line).
    pub observed: BTreeMap<Bucket, Position>,
    /// The replica to read from first; `None`: the bucket's first async
    /// follower, else its first sync follower, else its leader.
    pub reader: Option<Id>,
    /// The map the router starts with (from its configuration).
    pub initial_map: PlacementMap,
    /// `Variant::MultiLeader` only: the replica in this client's region,
    /// which takes the region's writes. In every other design writes go to
    /// the bucket's leader.
    pub regional_replica: Option<Id>,
    pub config: ProtocolConfig,
}

/// The message in flight and what it is for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    Command(Command),
    Query {
        bucket: Bucket,
        token: Token,
    },
    /// A read of `unit` in `bucket`, no older than `after`; `at_leader`
    /// once a follower sent the client to the leader.
    Read {
        bucket: Bucket,
        unit: InventoryUnit,
        after: Position,
        at_leader: bool,
    },
}

impl Action {
    /// The token of a write or query (reads have none).
    fn token(&self) -> Option<Token> {
        match self {
            Action::Command(command) => Some(command.token),
            Action::Query { token, .. } => Some(*token),
            Action::Read { .. } => None,
        }
    }
}

/// The action in flight.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Pending {
    pub action: Action,
    pub retries_left: u8,
}

/// A client's state.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClientState {
    /// The cached placement map.
    pub map: PlacementMap,
    /// Index into `tasks` of the task under way.
    pub task_index: usize,
    /// The sequence number of the next token.
    pub next_seq: u32,
    pub pending: Option<Pending>,
    /// The `Reply`, `NotDecided` or `ReadReply` that ended each finished
    /// step, in order.
    pub answers: Vec<Msg>,
    /// The session: per bucket, the newest position observed.
    pub observed: BTreeMap<Bucket, Position>,
}

impl ClientState {
    /// Whether every task has been answered. (An action is pending only
    /// for the task at `task_index`: past the last task nothing is.)
    pub fn done(&self, actor: &ClientActor) -> bool {
        self.task_index >= actor.tasks.len()
    }
}

impl ClientActor {
    pub fn on_start(&self, _id: Id, o: &mut Out<impl Emits>) -> ClientState {
        let mut state = ClientState {
            map: self.initial_map.clone(),
            task_index: 0,
            next_seq: 0,
            pending: None,
            answers: Vec::new(),
            observed: self.observed.clone(),
        };
        self.start_task(&mut state, o);
        state
    }

    pub fn on_msg(
        &self,
        _id: Id,
        state: &mut ClientState,
        _src: Id,
        msg: Msg,
        o: &mut Out<impl Emits>,
    ) {
        match msg {
            Msg::Reply(Reply {
                token,
                outcome,
                bucket,
                position,
                ..
            }) => {
                let Some(pending) = &state.pending else {
                    return; // ignore_reply_when_idle (a duplicate)
                };
                if pending.action.token() != Some(token) {
                    return; // ignore_reply_for_other_token (a duplicate)
                }
                observe(state, bucket, position);
                let Some(pending) = &state.pending else {
                    unreachable!("checked above")
                };
                let book = matches!(self.tasks.get(state.task_index), Some(Task::Book(_)));
                let next = match (&pending.action, outcome) {
                    (
                        Action::Command(Command {
                            op: Op::Hold { unit, .. },
                            ..
                        }),
                        Outcome::Held,
                    ) if book => Some(Op::Confirm {
                        unit: unit.clone(),
                        hold: token,
                    }),
                    _ => None,
                };
                state.answers.push(msg);
                match next {
                    Some(op) => {
                        let command = self.command(state, op);
                        self.start(state, Action::Command(command), o);
                    }
                    None => self.finish_task(state, o),
                }
            }
            Msg::NotDecided { token, .. }
                if state.pending.as_ref().and_then(|p| p.action.token()) == Some(token) =>
            {
                state.answers.push(msg);
                self.finish_task(state, o);
            }
            Msg::Redirect { token, .. }
                if state.pending.as_ref().and_then(|p| p.action.token()) == Some(token) =>
            {
                o.send(self.controller, Msg::FetchMap);
            }
            Msg::ReadReply(ReadReply {
                bucket,
                ref unit,
                position,
                ..
            }) if reading(state, bucket, unit) => {
                observe(state, bucket, position);
                state.answers.push(msg);
                self.finish_task(state, o);
            }
            Msg::ReadBehind {
                bucket, ref unit, ..
            } if reading(state, bucket, unit) => {
                let Some(Pending {
                    action: Action::Read { at_leader, .. },
                    ..
                }) = &mut state.pending
                else {
                    unreachable!("reading() checked the pending action")
                };
                if *at_leader {
                    // The leader itself is behind (just promoted) or is no
                    // longer the leader: refresh the map; the retry timer
                    // reads again.
                    o.send(self.controller, Msg::FetchMap);
                } else {
                    *at_leader = true;
                    self.send_pending(state, o);
                }
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
        o: &mut Out<impl Emits>,
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
        if let Action::Read { at_leader, .. } = &mut pending.action {
            // The follower did not answer (it may be down): read at the
            // leader instead.
            *at_leader = true;
        }
        // No answer: the leader may be down and the route stale. From the
        // second retry on, ask for the map as well; a newer one re-routes
        // the pending action; the last retry always asks. (One silence is
        // as likely a busy leader as a dead one, and every client of a busy
        // cluster asking the controller at once would bury it.)
        if self.config.client_retries - pending.retries_left >= 2 || pending.retries_left == 0 {
            o.send(self.controller, Msg::FetchMap);
        }
        self.send_pending(state, o);
    }

    fn finish_task(&self, state: &mut ClientState, o: &mut Out<impl Emits>) {
        state.task_index += 1;
        state.pending = None;
        o.cancel_timer(Timer::ClientRetry);
        self.start_task(state, o);
    }

    fn start_task(&self, state: &mut ClientState, o: &mut Out<impl Emits>) {
        while let Some(Task::Send { to, msg }) = self.tasks.get(state.task_index) {
            o.send(*to, msg.clone());
            state.task_index += 1;
        }
        let action = match self.tasks.get(state.task_index) {
            None | Some(Task::Send { .. }) => return,
            Some(Task::Book(unit) | Task::Hold(unit)) => Action::Command(self.command(
                state,
                Op::Hold {
                    unit: unit.clone(),
                    customer: self.customer.clone(),
                },
            )),
            Some(Task::Confirm { unit, hold }) => Action::Command(self.command(
                state,
                Op::Confirm {
                    unit: unit.clone(),
                    hold: *hold,
                },
            )),
            Some(Task::Query { bucket, token }) => Action::Query {
                bucket: *bucket,
                token: *token,
            },
            Some(Task::Read(unit)) => {
                let (bucket, _) = state.map.route(unit);
                Action::Read {
                    bucket,
                    unit: unit.clone(),
                    after: state.observed.get(&bucket).copied().unwrap_or_default(),
                    at_leader: false,
                }
            }
        };
        self.start(state, action, o);
    }

    /// A command under a fresh token.
    fn command(&self, state: &mut ClientState, op: Op) -> Command {
        let token = Token {
            client: self.client,
            seq: state.next_seq,
        };
        state.next_seq += 1;
        Command { token, op }
    }

    fn start(&self, state: &mut ClientState, action: Action, o: &mut Out<impl Emits>) {
        state.pending = Some(Pending {
            action,
            retries_left: self.config.client_retries,
        });
        self.send_pending(state, o);
    }

    /// Routes the pending action with the cached map and sends it.
    fn send_pending(&self, state: &ClientState, o: &mut Out<impl Emits>) {
        let Some(pending) = &state.pending else {
            return;
        };
        let (bucket, placement) = match &pending.action {
            Action::Command(command) => state.map.route(command.op.unit()),
            Action::Query { bucket, .. } | Action::Read { bucket, .. } => {
                match state.map.placement(*bucket) {
                    Some(placement) => (*bucket, placement),
                    None => return, // a bucket the map does not have
                }
            }
        };
        let writer = match (&pending.action, self.regional_replica) {
            (
                Action::Read {
                    at_leader: false, ..
                },
                _,
            ) => self.reader.unwrap_or_else(|| {
                *placement
                    .async_followers
                    .first()
                    .or(placement.sync_followers.first())
                    .unwrap_or(&placement.leader)
            }),
            (Action::Command(_), Some(replica)) if self.config.variant == Variant::MultiLeader => {
                replica
            }
            _ => placement.leader,
        };
        let msg = match &pending.action {
            Action::Command(command) => Msg::Request {
                bucket,
                epoch: placement.epoch,
                command: command.clone(),
            },
            Action::Query { token, .. } => Msg::Query {
                bucket,
                epoch: placement.epoch,
                token: *token,
            },
            Action::Read { unit, after, .. } => Msg::Read {
                bucket,
                unit: unit.clone(),
                after: *after,
            },
        };
        o.send(writer, msg);
        if pending.retries_left > 0 {
            o.set_timer(Timer::ClientRetry, self.backoff(pending.retries_left));
        }
    }

    /// How long to wait for an answer with `retries_left` retries left:
    /// the configured interval, doubled per earlier try up to 4 times it. An answer
    /// that is late because the leader is busy is not fetched sooner by
    /// asking again, and every resend (with its map request to the
    /// controller) adds to the queue it waits in: backing off keeps an
    /// overloaded cluster's throughput flat instead of collapsing. (The
    /// checker fires timers whenever it likes, so this changes no state
    /// it explores.)
    fn backoff(&self, retries_left: u8) -> std::ops::Range<std::time::Duration> {
        let attempt = self.config.client_retries - retries_left;
        let factor = 1u32 << attempt.min(2);
        let base = &self.config.timeouts.client_retry;
        base.start * factor..base.end * factor
    }
}

/// Whether the client's pending action is a read of `unit` in `bucket`.
fn reading(state: &ClientState, bucket: Bucket, unit: &InventoryUnit) -> bool {
    matches!(
        &state.pending,
        Some(Pending { action: Action::Read { bucket: b, unit: u, .. }, .. }) if *b == bucket && u == unit
    )
}

/// Records that the session has observed `bucket` through `position`.
fn observe(state: &mut ClientState, bucket: Bucket, position: Position) {
    let observed = state.observed.entry(bucket).or_default();
    *observed = (*observed).max(position);
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
