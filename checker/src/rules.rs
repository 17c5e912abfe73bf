//! The booking rules, written a second time: a naive reference the
//! checker replays every replica's committed log through, so that a bug in
//! the bucket state machine (`berth_model::bucket`) that every replica
//! shares — and that therefore never shows as two replicas disagreeing —
//! still breaks a property. The reference answers each question by
//! scanning the history so far; it shares no code with the model's
//! `BucketState` beyond the log entry types.

use crate::history::BerthState;
use crate::properties::PropertySpec;
use berth_model::bucket::{Op, Refusal, UnitStatus};
use berth_model::log::{Entry, Payload};
use berth_model::replica::DurableBucket;
use berth_model::Bucket;
use berth_model::{Customer, InventoryUnit, Outcome, Position, Token};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};

pub const FOLLOWS_THE_RULES: &str = "committed state follows the booking rules";

/// The property, checked in every scenario.
pub fn rules_property() -> PropertySpec {
    PropertySpec::always(
        FOLLOWS_THE_RULES,
        |_, state| against_the_rules(state).is_none(),
        |_, state| against_the_rules(state),
        "every replica's committed state (units and idempotency table) is what the booking rules make of its committed log",
    )
}

/// One decided action of the reference history.
struct Decided {
    token: Token,
    unit: InventoryUnit,
    outcome: Outcome,
    position: Position,
}

/// What happened to one unit, in log order.
enum Event {
    /// A hold granted, a booking confirmed, a hold's expiry committed.
    Held {
        hold: Token,
        customer: Customer,
    },
    Booked {
        hold: Token,
        booking: Token,
    },
    Expired {
        hold: Token,
    },
}

/// The reference: the whole history, replayed.
#[derive(Default)]
struct Reference {
    decided: Vec<Decided>,
    events: Vec<(InventoryUnit, Event)>,
}

impl Reference {
    fn outcome_of(&self, token: Token) -> Option<&Decided> {
        self.decided.iter().find(|decided| decided.token == token)
    }

    /// The unit's status now: its last event that left it held or sold.
    fn status(&self, unit: &InventoryUnit) -> Option<UnitStatus> {
        let mut status = None;
        for (at, event) in &self.events {
            if at != unit {
                continue;
            }
            status = match event {
                Event::Held { hold, customer } => Some(UnitStatus::Held {
                    hold: *hold,
                    customer: customer.clone(),
                }),
                Event::Booked { hold, booking } => {
                    // The customer of the hold it confirms, read here, not
                    // through the model's `UnitStatus::customer`.
                    let customer = match &status {
                        Some(
                            UnitStatus::Held { customer, .. } | UnitStatus::Booked { customer, .. },
                        ) => customer.clone(),
                        None => Customer::default(),
                    };
                    Some(UnitStatus::Booked {
                        hold: *hold,
                        booking: *booking,
                        customer,
                    })
                }
                Event::Expired { hold } => match status {
                    Some(UnitStatus::Held { hold: active, .. }) if active == *hold => None,
                    other => other,
                },
            };
        }
        status
    }

    fn apply(&mut self, position: Position, entry: &Entry) {
        match &*entry.payload {
            Payload::Command(command) => {
                if self.outcome_of(command.token).is_some() {
                    return;
                }
                let unit = command.op.unit().clone();
                let status = self.status(&unit);
                let outcome = match (&command.op, &status) {
                    (Op::Hold { customer, .. }, None) => {
                        self.events.push((
                            unit.clone(),
                            Event::Held {
                                hold: command.token,
                                customer: customer.clone(),
                            },
                        ));
                        Outcome::Held
                    }
                    (Op::Hold { .. }, Some(UnitStatus::Held { .. })) => {
                        Outcome::Refused(Refusal::UnitHeld)
                    }
                    (_, Some(UnitStatus::Booked { .. })) => Outcome::Refused(Refusal::UnitSold),
                    (Op::Confirm { hold, .. }, Some(UnitStatus::Held { hold: active, .. }))
                        if active == hold =>
                    {
                        self.events.push((
                            unit.clone(),
                            Event::Booked {
                                hold: *hold,
                                booking: command.token,
                            },
                        ));
                        Outcome::Confirmed
                    }
                    (Op::Confirm { hold, .. }, _) => {
                        let granted_here = self.outcome_of(*hold).is_some_and(|granted| {
                            granted.outcome == Outcome::Held && granted.unit == unit
                        });
                        Outcome::Refused(if granted_here {
                            Refusal::HoldExpired
                        } else {
                            Refusal::NoMatchingHold
                        })
                    }
                };
                self.decided.push(Decided {
                    token: command.token,
                    unit,
                    outcome,
                    position,
                });
            }
            Payload::Expire { unit, hold } => {
                self.events
                    .push((unit.clone(), Event::Expired { hold: *hold }));
            }
            Payload::Void(token) => {
                if self.outcome_of(*token).is_none() {
                    self.decided.push(Decided {
                        token: *token,
                        unit: InventoryUnit::new("", ""),
                        outcome: Outcome::Refused(Refusal::Voided),
                        position,
                    });
                }
            }
            Payload::EpochStart | Payload::Noop | Payload::Barrier => {}
        }
    }
}

/// `committed state follows the booking rules`: for every replica whose
/// log is whole (nothing compacted, no snapshot installed: the reference
/// needs the history from its start), the committed state equals the
/// reference's replay of the log through the commit position.
pub fn against_the_rules(state: &BerthState) -> Option<String> {
    for (index, node) in state.actor_states.iter().enumerate() {
        let Some(replica) = node.as_replica() else {
            continue;
        };
        for (bucket, copy) in &replica.buckets {
            let durable = &copy.durable;
            if durable.log.start() != Position(0) {
                continue;
            }
            // A bucket's verdict depends on its content alone, and most
            // states share most buckets with the states they came from:
            // each content is replayed once (per checker thread), known
            // by its memoised hash.
            let content = durable.content_hash();
            if FOLLOWS.with(|known| known.borrow().contains(&content)) {
                continue;
            }
            if let Some(broken) = bucket_against_the_rules(index, *bucket, durable) {
                return Some(broken);
            }
            FOLLOWS.with(|known| known.borrow_mut().insert(content));
        }
    }
    None
}

thread_local! {
    /// The content hashes of the buckets found to follow the rules.
    static FOLLOWS: RefCell<HashSet<u64>> = RefCell::new(HashSet::new());
}

/// Whether one replica's (`index`) copy of `bucket`, whose log is whole,
/// follows the rules.
fn bucket_against_the_rules(
    index: usize,
    bucket: Bucket,
    durable: &DurableBucket,
) -> Option<String> {
    let mut reference = Reference::default();
    for (position, entry) in durable.log.iter_through(durable.commit_position) {
        reference.apply(position, entry);
    }
    let applied = &durable.applied;
    let mut units = BTreeMap::new();
    for (unit, _) in &reference.events {
        if let Some(status) = reference.status(unit) {
            units.insert(unit.clone(), status);
        }
    }
    let model_units: BTreeMap<_, _> = applied
        .units
        .iter()
        .map(|(unit, status)| (unit.clone(), status.clone()))
        .collect();
    if units != model_units {
        return Some(format!(
            "replica {index} committed {bucket} through {} with units {model_units:?}; the rules make {units:?}",
            durable.commit_position
        ));
    }
    let outcomes = applied.outcomes.iter().count();
    if outcomes != reference.decided.len() {
        return Some(format!(
            "replica {index} committed {bucket} through {} with {outcomes} decided tokens; the rules decide {}",
            durable.commit_position,
            reference.decided.len()
        ));
    }
    for decided in &reference.decided {
        let agrees = applied.recorded(&decided.token).is_some_and(|recorded| {
            recorded.outcome == decided.outcome
                && recorded.unit == decided.unit
                && recorded.position == decided.position
        });
        if !agrees {
            return Some(format!(
                "replica {index} committed {bucket} through {}: {} is recorded as {:?}; the rules make it {} {} at {}",
                durable.commit_position,
                decided.token,
                applied.recorded(&decided.token),
                decided.unit,
                decided.outcome,
                decided.position
            ));
        }
    }
    None
}

/// The token an entry decides, read from its payload rather than
/// through the model's `Entry::token`, so that a mistake there cannot hide
/// itself from the properties that use it.
pub fn decided_token(entry: &Entry) -> Option<Token> {
    match &*entry.payload {
        Payload::Command(command) => Some(command.token),
        Payload::Void(token) => Some(*token),
        Payload::EpochStart | Payload::Noop | Payload::Expire { .. } | Payload::Barrier => None,
    }
}
