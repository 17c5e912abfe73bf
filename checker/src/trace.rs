//! Counterexamples as people read them: one numbered line per step.

use crate::history::{BerthAction, BerthModel, BerthState};
use crate::scenario::actor_name;
use stateright::actor::ActorModelAction;
use stateright::Path;

/// The action `action` as one line, with actors named by role.
pub fn describe_action(model: &BerthModel, action: &BerthAction) -> String {
    match action {
        ActorModelAction::Deliver { src, dst, msg } => format!(
            "{} → {}: {msg}",
            actor_name(model, *src),
            actor_name(model, *dst)
        ),
        ActorModelAction::Drop(envelope) => format!(
            "network drops {} → {}: {}",
            actor_name(model, envelope.src),
            actor_name(model, envelope.dst),
            envelope.msg
        ),
        ActorModelAction::Timeout(id, timer) => {
            format!("{}: {timer} timer fires", actor_name(model, *id))
        }
        ActorModelAction::Crash(id) => format!("crash {}", actor_name(model, *id)),
        ActorModelAction::Recover(id) => {
            format!("recover {} from its durable state", actor_name(model, *id))
        }
        ActorModelAction::SelectRandom { actor, random, .. } => {
            format!("{} chooses {random:?}", actor_name(model, *actor))
        }
    }
}

/// The whole path as numbered lines.
pub fn format_trace(model: &BerthModel, path: &Path<BerthState, BerthAction>) -> Vec<String> {
    path.clone()
        .into_actions()
        .iter()
        .enumerate()
        .map(|(index, action)| format!("{:>3}. {}", index + 1, describe_action(model, action)))
        .collect()
}
