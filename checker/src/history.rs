//! The model the checker runs: the `berth-model` actors in Stateright's
//! `ActorModel`, plus a ghost history of what clients were told, which the
//! properties read (docs/protocol.md, "What the checker proves"), and the
//! run's controls, which the actors never see.

use berth_model::messages::Reply;
use berth_model::{Bucket, Epoch, InventoryUnit, Msg, Outcome, Position, Token};
use stateright::actor::{Envelope, Id};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// One reply a client received: the ghost record of what it was told.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Acknowledgement {
    pub client: Id,
    /// The replica that replied (the leader of `epoch`).
    pub leader: Id,
    pub token: Token,
    pub unit: InventoryUnit,
    pub outcome: Outcome,
    pub bucket: Bucket,
    pub epoch: Epoch,
    pub position: Position,
}

impl fmt::Display for Acknowledgement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "client {} was told {} {} → {} by replica {} ({}@{} at {})",
            usize::from(self.client),
            self.token,
            self.unit,
            self.outcome,
            usize::from(self.leader),
            self.bucket,
            self.epoch,
            self.position
        )
    }
}

/// The ghost history: every reply any client received. A set, so that the
/// order in which replies arrived does not split otherwise equal states.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct History {
    pub acknowledgements: BTreeSet<Acknowledgement>,
    /// Tokens whose request a replica redirected because it knew a newer
    /// epoch than the bucket's first: a stale router was told to refresh.
    pub redirected: BTreeSet<Token>,
    /// Tokens (and their bucket) a client was told are not decided.
    pub not_decided: BTreeSet<(Token, Bucket)>,
    /// Per bucket, fencing epoch and reporter, the lowest log end a sync follower
    /// reported on promising it (holding the first entry of the epoch it
    /// closes): `a fence closes the epoch` (crate::fence).
    pub fence_reports: BTreeMap<(Bucket, Epoch, Id), Position>,
}

/// Control of a model-checking run, outside the protocol: the actors never
/// see it.
#[derive(Clone, Debug, Default)]
pub struct RunControl {
    /// Once set, no new state is inside the boundary, so the checker drains
    /// its queue and stops. Stateright's own timeout is only looked at
    /// between work batches of a thread, which a single-threaded BFS may
    /// never finish; this flag is how a timeout stops any run promptly.
    pub stop: Arc<AtomicBool>,
    /// When set, the model checks only `VIOLATED_WHILE_LEADER_DOWN`: the
    /// checker uses it to look for a counterexample of this violation in
    /// which the leader has really crashed, not merely been suspected.
    pub witness: Option<crate::properties::Violation>,
}

impl RunControl {
    pub fn is_stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

pub use crate::checked::{BerthAction, BerthModel, BerthState};

/// Records each fence report as its follower sends it: the promise is made
/// then, whenever (or whether) the report arrives.
pub fn record_msg_out(
    _: &RunControl,
    history: &History,
    envelope: Envelope<&Msg>,
) -> Option<History> {
    let Msg::Fenced(reports) = envelope.msg else {
        return None;
    };
    let mut next: Option<History> = None;
    for report in reports {
        if let Some(recorded) =
            crate::fence::record_report(next.as_ref().unwrap_or(history), envelope.src, report)
        {
            next = Some(recorded);
        }
    }
    next
}

/// Records each `Reply` as it reaches its client.
pub fn record_msg_in(
    _: &RunControl,
    history: &History,
    envelope: Envelope<&Msg>,
) -> Option<History> {
    if let Msg::Redirect { epoch, token, .. } = envelope.msg {
        if *epoch <= Epoch::FIRST || history.redirected.contains(token) {
            return None;
        }
        let mut next = history.clone();
        next.redirected.insert(*token);
        return Some(next);
    }
    if let Msg::NotDecided { bucket, token, .. } = envelope.msg {
        if history.not_decided.contains(&(*token, *bucket)) {
            return None;
        }
        let mut next = history.clone();
        next.not_decided.insert((*token, *bucket));
        return Some(next);
    }
    let Msg::Reply(Reply {
        bucket,
        epoch,
        position,
        token,
        unit,
        outcome,
    }) = envelope.msg
    else {
        return None;
    };
    let acknowledgement = Acknowledgement {
        client: envelope.dst,
        leader: envelope.src,
        token: *token,
        unit: unit.clone(),
        outcome: *outcome,
        bucket: *bucket,
        epoch: *epoch,
        position: *position,
    };
    if history.acknowledgements.contains(&acknowledgement) {
        return None;
    }
    let mut next = history.clone();
    next.acknowledgements.insert(acknowledgement);
    Some(next)
}
