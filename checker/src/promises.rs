//! What berth promises a client about its own actions, checked against the
//! committed history (every replica's committed state), action by action:
//! an answer is a fact about the history, not only about one token's
//! other answers.

use crate::history::{BerthModel, BerthState};
use crate::properties::PropertySpec;
use berth_model::bucket::{Refusal, UnitStatus};
use berth_model::{Msg, Outcome, Token};
use stateright::actor::Id;

pub const ANSWERS_MATCH_HISTORY: &str = "answers match the history";
pub const NOT_DECIDED_IS_FINAL: &str = "not decided is final";
pub const TOKEN_QUERY_ANSWERED: &str = "token query answered";
pub const ONE_ANSWER_PER_ACTION: &str = "one answer per action";
pub const CLIENTS_DO_AS_ASKED: &str = "clients do as asked";

/// The promise properties every scenario checks.
pub fn promise_properties() -> Vec<PropertySpec> {
    vec![
        PropertySpec::always(
            ANSWERS_MATCH_HISTORY,
            |_, state| answer_against_history(state).is_none(),
            |_, state| answer_against_history(state),
            "every answer a client receives is what the committed history decided for that action, at that position; a client told `refused` holds nothing by that action",
        ),
        PropertySpec::always(
            NOT_DECIDED_IS_FINAL,
            |_, state| decided_after_not_decided(state).is_none(),
            |_, state| decided_after_not_decided(state),
            "a token a client was told is not decided never takes effect later: every replica that decides it commits the void, no client is told an outcome for it",
        ),
        PropertySpec::always(
            ONE_ANSWER_PER_ACTION,
            |_, state| answer_taken_twice(state).is_none(),
            |_, state| answer_taken_twice(state),
            "a client takes one answer for each of its actions: a duplicate or late answer for a token it already has, or is not waiting on, never ends a step",
        ),
        PropertySpec::always(
            CLIENTS_DO_AS_ASKED,
            |model, state| step_not_asked(model, state).is_none(),
            step_not_asked,
            "a client takes exactly the steps its tasks ask for, each about the task's cabin: a booking is a hold and, once held, its confirm; a hold, a confirm, a query or a read is one step; and it is done (the runtime's client stops) exactly when it is through them",
        ),
    ]
}

/// A client that kept two answers for one token (a duplicate taken for
/// the answer to the step under way), named in one sentence. The network
/// may deliver an answer twice, or long after the client moved on; only
/// the answer to the action in flight may end a step.
pub fn answer_taken_twice(state: &BerthState) -> Option<String> {
    state
        .actor_states
        .iter()
        .enumerate()
        .find_map(|(index, node)| {
            let berth_model::NodeState::Client(client) = &**node else {
                return None;
            };
            let tokens: Vec<Token> = client
                .answers
                .iter()
                .filter_map(|answer| match answer {
                    Msg::Reply(reply) => Some(reply.token),
                    Msg::NotDecided { token, .. } => Some(*token),
                    _ => None,
                })
                .collect();
            tokens.iter().enumerate().find_map(|(at, token)| {
                tokens[..at]
                    .contains(token)
                    .then(|| format!("client {index} took two answers for {token}"))
            })
        })
}

/// A client whose answers are not those of the steps its script asks for,
/// named in one sentence. The client's answers (one per finished step) are
/// walked beside its tasks: a `Book` is a hold and, if the answer was
/// `Held`, its confirm; every other task one step. An answer left over is a
/// step nobody asked for (a hold confirmed as if it were a booking, a late
/// read reply taken for a step); an answer about another cabin, or another
/// token than the one queried, is a step about the wrong thing. And a
/// client is `done` (what the runtime's client loop stops on) exactly when
/// its answers cover its script and nothing is in flight: a stop test that
/// says otherwise stops a client early or never.
pub fn step_not_asked(model: &BerthModel, state: &BerthState) -> Option<String> {
    use berth_model::{BerthActor, NodeState, Task};
    state
        .actor_states
        .iter()
        .enumerate()
        .find_map(|(index, node)| {
            let (NodeState::Client(client), Some(BerthActor::Client(actor))) =
                (&**node, model.actors.get(index))
            else {
                return None;
            };
            let mut answers = client.answers.iter();
            // A `Send` awaits no answer.
            let asking = actor
                .tasks
                .iter()
                .filter(|task| !matches!(task, Task::Send { .. }));
            // Whether the answers cover every task: with nothing in flight,
            // the client is through its script.
            let mut through = true;
            for task in asking {
                // Answers so far are a prefix of the script's: fine.
                let Some(answer) = answers.next() else {
                    through = false;
                    break;
                };
                let about = |what: &str| {
                    Some(format!(
                        "client {index} took {answer} as the answer to its task to {what}"
                    ))
                };
                match (task, answer) {
                    (Task::Book(unit), Msg::Reply(reply)) if reply.unit == *unit => {
                        if reply.outcome == Outcome::Held {
                            match answers.next() {
                                Some(Msg::Reply(confirm)) if confirm.unit == *unit => {}
                                Some(Msg::NotDecided { .. }) => {}
                                None => through = false,
                                Some(other) => {
                                    return Some(format!(
                                        "client {index} took {other} as the answer to the confirm of its booking of {unit}"
                                    ))
                                }
                            }
                        }
                    }
                    (Task::Book(unit) | Task::Hold(unit) | Task::Confirm { unit, .. }, _) => {
                        if !matches!(answer, Msg::Reply(reply) if reply.unit == *unit)
                            && !matches!(answer, Msg::NotDecided { .. })
                        {
                            return about(&format!("act on {unit}"));
                        }
                    }
                    (Task::Query { token, .. }, _) => {
                        let answered = match answer {
                            Msg::Reply(reply) => reply.token == *token,
                            Msg::NotDecided { token: asked, .. } => asked == token,
                            _ => false,
                        };
                        if !answered {
                            return about(&format!("ask about {token}"));
                        }
                    }
                    (Task::Read(unit), _) => {
                        if !matches!(answer, Msg::ReadReply(read) if read.unit == *unit) {
                            return about(&format!("read {unit}"));
                        }
                    }
                    (Task::Send { .. }, _) => {}
                }
            }
            if let Some(extra) = answers.next() {
                return Some(format!(
                    "client {index} took {extra}, an answer none of its {} tasks asks for",
                    actor.tasks.len()
                ));
            }
            // The runtime's client stops when `done` says so: it must say
            // so exactly when the client is through its script.
            let through = through && client.pending.is_none();
            (client.done(actor) != through).then(|| {
                format!(
                    "client {index} is {}through its script, yet its stop test says it is {}done",
                    if through { "" } else { "not " },
                    if through { "not " } else { "" }
                )
            })
        })
}

/// The sometimes-property of scenarios with a token query.
pub fn query_property() -> PropertySpec {
    PropertySpec::sometimes(
        TOKEN_QUERY_ANSWERED,
        |_: &BerthModel, state: &BerthState| !state.history.not_decided.is_empty(),
        "a client asking what became of a token is told it is not decided",
    )
}

fn replicas(state: &BerthState) -> impl Iterator<Item = (Id, &berth_model::replica::ReplicaState)> {
    state
        .actor_states
        .iter()
        .enumerate()
        .filter_map(|(index, node)| node.as_replica().map(|replica| (Id::from(index), replica)))
}

/// `answers match the history`: for every answer, every replica that has
/// committed the bucket through the answer's position recorded the same
/// outcome at the same position for the token, and if the answer was a
/// refusal, no committed unit is held or booked by that token.
pub fn answer_against_history(state: &BerthState) -> Option<String> {
    for ack in &state.history.acknowledgements {
        for (id, replica) in replicas(state) {
            let Some(bucket) = replica.buckets.get(&ack.bucket) else {
                continue;
            };
            let durable = &bucket.durable;
            if durable.commit_position < ack.position {
                continue;
            }
            let recorded = durable.applied.recorded(&ack.token);
            let agrees = recorded.as_ref().is_some_and(|recorded| {
                recorded.outcome == ack.outcome
                    && recorded.position == ack.position
                    && recorded.unit == ack.unit
            });
            if !agrees {
                return Some(format!(
                    "{ack}, but replica {} committed {} through {} with {}",
                    usize::from(id),
                    ack.bucket,
                    durable.commit_position,
                    recorded.map_or("no outcome for it".to_owned(), |r| format!(
                        "{} → {} at {}",
                        r.unit, r.outcome, r.position
                    ))
                ));
            }
            if matches!(ack.outcome, Outcome::Refused(_)) {
                let holds = durable
                    .applied
                    .units
                    .get(&ack.unit)
                    .is_some_and(|status| by_token(status, ack.token));
                if holds {
                    return Some(format!(
                        "{ack}, but replica {} committed {} to that action",
                        usize::from(id),
                        ack.unit
                    ));
                }
            }
        }
    }
    None
}

/// Whether `status` is the effect of the action `token`.
fn by_token(status: &UnitStatus, token: Token) -> bool {
    match status {
        UnitStatus::Held { hold, .. } => *hold == token,
        UnitStatus::Booked { hold, booking, .. } => *hold == token || *booking == token,
    }
}

/// `not decided is final`: a token answered `NotDecided` has no outcome
/// answer, and every replica that committed a decision for it committed
/// the void (`Refusal::Voided`): the action never takes effect.
pub fn decided_after_not_decided(state: &BerthState) -> Option<String> {
    for (token, bucket) in &state.history.not_decided {
        if let Some(ack) = state
            .history
            .acknowledgements
            .iter()
            .find(|ack| ack.token == *token)
        {
            return Some(format!("{token} was answered not decided, yet {ack}"));
        }
        for (id, replica) in replicas(state) {
            let Some(copy) = replica.buckets.get(bucket) else {
                continue;
            };
            let durable = &copy.durable;
            if let Some(recorded) = durable.applied.recorded(token).filter(|recorded| {
                recorded.position <= durable.commit_position
                    && recorded.outcome != Outcome::Refused(Refusal::Voided)
            }) {
                return Some(format!(
                    "{token} was answered not decided, yet replica {} committed it: {} → {} at {}",
                    usize::from(id),
                    recorded.unit,
                    recorded.outcome,
                    recorded.position
                ));
            }
        }
    }
    None
}
