//! `BerthActor`, the one `stateright::actor::Actor` that the checker runs in
//! an `ActorModel` and the runtime runs over UDP: it joins the roles
//! (controller, replica, client, subscriber), their states (`NodeState`)
//! and their durable state (`Storage`).
//!
//! Handlers never touch sockets, clocks or randomness: they change state and
//! push commands into `Out`. A replica's step that changes its durable state
//! emits `Save` *before* any `Send` of the same step; the runtime must make
//! the save durable before it sends.

use crate::client::{ClientActor, ClientState};
use crate::controller::{ControllerActor, ControllerState};
use crate::replica::{BucketChange, ReplicaActor, ReplicaState, ReplicaStorage};
use crate::stream::{SubscriberActor, SubscriberState};
use serde::{Deserialize, Serialize};
use stateright::actor::{Actor, Id, Out};
use std::borrow::Cow;
use std::sync::Arc;

pub use crate::config::{Detector, ProtocolConfig, Timeouts};
pub use crate::messages::{Changes, FollowerLag, Msg, ReadPath, Snapshot, Timer};

/// Durable state: exactly what survives a crash.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Storage {
    Replica(ReplicaStorage),
    Controller(ControllerState),
}

/// What changed in durable state since the runtime last took it
/// (`NodeState::take_storage_change`): a replica's changed buckets (each
/// as it is now; `None` if dropped), or the whole state of a controller
/// (small). The runtime's store records exactly these, so a save costs
/// what changed, not how many buckets the replica holds.
#[derive(Clone, Debug)]
pub enum StorageChange {
    Buckets(
        Vec<(
            crate::types::Bucket,
            Option<Arc<crate::replica::DurableBucket>>,
        )>,
    ),
    Whole(Storage),
}

/// One berth process: the controller, a replica, a client (router), or a
/// change-stream subscriber (the projections' feed).
#[derive(Clone, Debug)]
pub enum BerthActor {
    Controller(ControllerActor),
    Replica(ReplicaActor),
    Client(ClientActor),
    Subscriber(SubscriberActor),
}

/// The state of a `BerthActor`, by role.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum NodeState {
    Controller(ControllerState),
    Replica(ReplicaState),
    Client(ClientState),
    Subscriber(SubscriberState),
}

impl NodeState {
    pub fn as_replica(&self) -> Option<&ReplicaState> {
        match self {
            NodeState::Replica(state) => Some(state),
            _ => None,
        }
    }

    pub fn as_controller(&self) -> Option<&ControllerState> {
        match self {
            NodeState::Controller(state) => Some(state),
            _ => None,
        }
    }

    /// What survives a crash, for a role that keeps anything.
    pub fn storage(&self) -> Option<Storage> {
        match self {
            NodeState::Replica(replica) => Some(Storage::Replica(replica.storage())),
            NodeState::Controller(controller) => Some(Storage::Controller(controller.clone())),
            NodeState::Client(_) | NodeState::Subscriber(_) => None,
        }
    }

    /// What the in-place steps changed in durable state since the last
    /// call (`None` for the roles that keep nothing).
    pub fn take_storage_change(&mut self) -> Option<StorageChange> {
        match self {
            NodeState::Replica(replica) => {
                let changed = replica.buckets.take_unsaved();
                Some(StorageChange::Buckets(
                    changed
                        .into_iter()
                        .map(|bucket| {
                            let durable =
                                replica.buckets.get(&bucket).map(|r| Arc::clone(&r.durable));
                            (bucket, durable)
                        })
                        .collect(),
                ))
            }
            NodeState::Controller(controller) => Some(StorageChange::Whole(Storage::Controller(
                controller.clone(),
            ))),
            NodeState::Client(_) | NodeState::Subscriber(_) => None,
        }
    }
}

/// An event delivered to an actor.
enum Event<'a> {
    Msg(Id, Msg),
    Timeout(&'a Timer),
}

impl BerthActor {
    /// Runs one event on an owned copy of the state and keeps the copy only
    /// if something changed, so that ignored events stay no-ops for the
    /// checker. A replica or controller step that changed durable state
    /// saves it first.
    fn step(&self, id: Id, state: &mut Cow<NodeState>, event: Event<'_>, o: &mut Out<Self>) {
        let mut next = (**state).clone();
        let mut sends: Out<Self> = Out::new();
        if let NodeState::Replica(replica) = &next {
            // A replica steps the runtime's way (in place, noting the
            // buckets it takes for change) and saves what the runtime's
            // store would then hold: so the checker runs the runtime's
            // save path, and a crash recovers what the runtime would.
            let durable_before = replica.storage();
            self.step_in_place(id, &mut next, event, &mut sends);
            let NodeState::Replica(replica) = &mut next else {
                unreachable!("a replica's step keeps it a replica")
            };
            replica.validate(&durable_before);
            let stored = stored_after(&durable_before, replica);
            if stored != durable_before {
                o.save(Storage::Replica(stored));
            }
            o.append(&mut sends);
            if next != **state {
                *state = Cow::Owned(next);
            }
            return;
        }
        match (self, &mut next, event) {
            (BerthActor::Controller(actor), NodeState::Controller(controller), event) => {
                let before = controller.clone();
                match event {
                    Event::Msg(src, msg) => actor.on_msg(id, controller, src, msg, &mut sends),
                    Event::Timeout(timer) => actor.on_timeout(id, controller, timer, &mut sends),
                }
                if controller.durable_differs(&before) {
                    o.save(Storage::Controller(controller.clone()));
                }
            }
            (BerthActor::Client(actor), NodeState::Client(client), event) => match event {
                Event::Msg(src, msg) => actor.on_msg(id, client, src, msg, &mut sends),
                Event::Timeout(timer) => actor.on_timeout(id, client, timer, &mut sends),
            },
            (BerthActor::Subscriber(actor), NodeState::Subscriber(subscriber), event) => {
                match event {
                    Event::Msg(src, msg) => actor.on_msg(id, subscriber, src, msg, &mut sends),
                    Event::Timeout(timer) => actor.on_timeout(id, subscriber, timer, &mut sends),
                }
            }
            (actor, state, _) => unreachable!("actor {actor:?} runs with foreign state {state:?}"),
        }
        o.append(&mut sends);
        if next != **state {
            *state = Cow::Owned(next);
        }
    }
}

/// What the runtime's store holds after it records the buckets `replica`'s
/// in-place steps noted since the last save (`take_storage_change`), each
/// as its `BucketChange` against what the store held before (`before`),
/// rebuilt the way recovery rebuilds it (`BucketChange::apply`). Where the
/// record rebuilds the bucket exactly, the replica's own copy is kept (one
/// copy in the checker's state, not two); where it does not, the rebuilt
/// one is, and `saved state is durable state` fails.
fn stored_after(before: &ReplicaStorage, replica: &mut ReplicaState) -> ReplicaStorage {
    let mut stored = before.clone();
    for bucket in replica.buckets.take_unsaved() {
        let Some(now) = replica.buckets.get(&bucket).map(|copy| &copy.durable) else {
            stored.remove(&bucket);
            continue;
        };
        let recorded = match before.get(&bucket) {
            Some(old) => match BucketChange::between(old, now) {
                Some(change) => change.apply(Some(old)),
                None => Some(Arc::clone(old)),
            },
            None => BucketChange::Whole(Arc::clone(now)).apply(None),
        };
        match recorded {
            Some(rebuilt) if rebuilt == *now => stored.insert(bucket, Arc::clone(now)),
            Some(rebuilt) => stored.insert(bucket, rebuilt),
            None => stored.remove(&bucket),
        };
    }
    stored
}

/// The runtime's steps: the same handlers, run on the state in place.
///
/// The checker's step (`Actor::on_msg`) copies the state to tell an ignored
/// event from a change, then runs these same in-place steps on the copy
/// and saves what the runtime's store would hold (`stored_after`); the
/// copy costs what the whole state costs, thousands of buckets in a real
/// replica. These run the handlers on the state itself and return,
/// instead of emitting `Save`, whether durable state may have changed: a
/// replica's step, whether it took any bucket for change (`Buckets`; the
/// buckets are noted for `take_storage_change`); a controller's, whether
/// its durable part differs. The runtime saves once per batch, before the
/// batch's sends, and its store records only the buckets that did change
/// (`BucketChange::since`): what the checker's last `Save` of the batch
/// would have held. Telling a change exactly here would mean holding each
/// bucket's state from before the step, and that second reference makes
/// the step's own change copy the bucket.
impl BerthActor {
    /// `msg` from `src`, in place. Returns whether durable state may have changed.
    pub fn on_msg_in_place(
        &self,
        id: Id,
        state: &mut NodeState,
        src: Id,
        msg: Msg,
        o: &mut Out<Self>,
    ) -> bool {
        self.step_in_place(id, state, Event::Msg(src, msg), o)
    }

    /// `timer`, in place. Returns whether durable state may have changed.
    pub fn on_timeout_in_place(
        &self,
        id: Id,
        state: &mut NodeState,
        timer: &Timer,
        o: &mut Out<Self>,
    ) -> bool {
        self.step_in_place(id, state, Event::Timeout(timer), o)
    }

    fn step_in_place(
        &self,
        id: Id,
        state: &mut NodeState,
        event: Event<'_>,
        o: &mut Out<Self>,
    ) -> bool {
        match (self, state, event) {
            (BerthActor::Replica(actor), NodeState::Replica(replica), event) => {
                replica.buckets.take_touched();
                match event {
                    Event::Msg(src, msg) => actor.on_msg(id, replica, src, msg, o),
                    Event::Timeout(timer) => actor.on_timeout(id, replica, timer, o),
                }
                let touched = replica.buckets.take_touched();
                replica.validate_touched(&touched);
                for bucket in &touched {
                    replica.buckets.note_unsaved(*bucket);
                }
                !touched.is_empty()
            }
            (BerthActor::Controller(actor), NodeState::Controller(controller), event) => {
                let before = controller.clone();
                match event {
                    Event::Msg(src, msg) => actor.on_msg(id, controller, src, msg, o),
                    Event::Timeout(timer) => actor.on_timeout(id, controller, timer, o),
                }
                controller.durable_differs(&before)
            }
            (BerthActor::Client(actor), NodeState::Client(client), event) => {
                match event {
                    Event::Msg(src, msg) => actor.on_msg(id, client, src, msg, o),
                    Event::Timeout(timer) => actor.on_timeout(id, client, timer, o),
                }
                false
            }
            (BerthActor::Subscriber(actor), NodeState::Subscriber(subscriber), event) => {
                match event {
                    Event::Msg(src, msg) => actor.on_msg(id, subscriber, src, msg, o),
                    Event::Timeout(timer) => actor.on_timeout(id, subscriber, timer, o),
                }
                false
            }
            (actor, state, _) => unreachable!("actor {actor:?} runs with foreign state {state:?}"),
        }
    }
}

impl Actor for BerthActor {
    type Msg = Msg;
    type State = NodeState;
    type Timer = Timer;
    type Random = ();
    type Storage = Storage;

    fn name(&self) -> String {
        match self {
            BerthActor::Controller(_) => "controller".to_owned(),
            BerthActor::Replica(actor) => format!("replica {}", actor.region),
            BerthActor::Client(_) => "client".to_owned(),
            BerthActor::Subscriber(_) => "subscriber".to_owned(),
        }
    }

    fn on_start(&self, id: Id, storage: &Option<Storage>, o: &mut Out<Self>) -> NodeState {
        match self {
            BerthActor::Controller(actor) => {
                let map = match storage {
                    Some(Storage::Controller(map)) => Some(map),
                    _ => None,
                };
                NodeState::Controller(actor.on_start(id, map, o))
            }
            BerthActor::Replica(actor) => {
                let durable = match storage {
                    Some(Storage::Replica(durable)) => Some(durable),
                    _ => None,
                };
                let replica = actor.on_start(id, durable, o);
                if durable.is_none() {
                    // A first start saves its placements at once: a
                    // restart then always recovers from storage and asks
                    // to be caught up, even one that crashed before its
                    // first write while its leader's first append to it
                    // was in flight (a fresh start and such a restart
                    // would otherwise look the same).
                    o.save(Storage::Replica(replica.storage()));
                }
                NodeState::Replica(replica)
            }
            BerthActor::Client(actor) => NodeState::Client(actor.on_start(id, o)),
            BerthActor::Subscriber(actor) => NodeState::Subscriber(actor.on_start(id, o)),
        }
    }

    fn on_msg(&self, id: Id, state: &mut Cow<NodeState>, src: Id, msg: Msg, o: &mut Out<Self>) {
        self.step(id, state, Event::Msg(src, msg), o);
    }

    fn on_timeout(&self, id: Id, state: &mut Cow<NodeState>, timer: &Timer, o: &mut Out<Self>) {
        self.step(id, state, Event::Timeout(timer), o);
    }
}
