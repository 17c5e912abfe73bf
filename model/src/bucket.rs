//! The bucket state machine: holds, bookings, and the idempotency table.
//!
//! Every replica applies the same log entries in the same order to a
//! `BucketState`, so every replica computes the same outcome for every
//! token. The idempotency table is part of this state (the Harbor Point notes, docs/protocol.md:
//! "the idempotency token ... is part of the storage contract"): it is
//! logged, replicated, snapshotted and moved with the bucket.

use crate::chunked::ChunkedMap;
use crate::types::{Customer, InventoryUnit, Position, Token};
use serde::{Deserialize, Serialize};
use std::fmt;

/// What a client asks the bucket leader to do.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Op {
    /// Hold `unit` for `customer`. The hold's id is the action's token.
    Hold {
        unit: InventoryUnit,
        customer: Customer,
    },
    /// Turn the active hold `hold` on `unit` into a booking. The booking's id
    /// is the action's token.
    Confirm { unit: InventoryUnit, hold: Token },
}

impl Op {
    /// The inventory unit the operation is about.
    pub fn unit(&self) -> &InventoryUnit {
        match self {
            Op::Hold { unit, .. } | Op::Confirm { unit, .. } => unit,
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Hold { unit, customer } => write!(f, "Hold {unit} for {customer}"),
            Op::Confirm { unit, hold } => write!(f, "Confirm {unit} with hold {hold}"),
        }
    }
}

/// One business action: an operation under its idempotency token.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Command {
    pub token: Token,
    pub op: Op,
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.token, self.op)
    }
}

/// Why the state machine refused an action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Refusal {
    /// Somebody else holds the unit.
    UnitHeld,
    /// The unit is already sold.
    UnitSold,
    /// A confirm named a hold that is not the unit's active hold.
    NoMatchingHold,
    /// A confirm named a hold that was granted on this unit and has since
    /// expired.
    HoldExpired,
    /// A token query found nothing and closed the action: it arrived
    /// after the query was told it is not decided, so it never takes
    /// effect (answered `NotDecided`, like the query).
    Voided,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::UnitHeld => "cabin is held by another customer",
            Refusal::UnitSold => "cabin already sold",
            Refusal::NoMatchingHold => "no matching hold was ever granted",
            Refusal::HoldExpired => "hold expired",
            Refusal::Voided => "not decided: a token query closed the action before it arrived",
        })
    }
}

/// The decided result of one action, as recorded in the idempotency table
/// and told to the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Outcome {
    /// The hold was granted; its id is the action's token.
    Held,
    /// The booking is confirmed; its id is the action's token.
    Confirmed,
    /// The action was refused and changed nothing.
    Refused(Refusal),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Held => f.write_str("Held"),
            Outcome::Confirmed => f.write_str("Confirmed"),
            Outcome::Refused(reason) => write!(f, "Refused({reason})"),
        }
    }
}

/// The state of one inventory unit. Absent from the map means available.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum UnitStatus {
    Held {
        hold: Token,
        customer: Customer,
    },
    Booked {
        hold: Token,
        booking: Token,
        customer: Customer,
    },
}

impl UnitStatus {
    /// The customer the unit is held or booked for.
    pub fn customer(&self) -> &Customer {
        match self {
            UnitStatus::Held { customer, .. } | UnitStatus::Booked { customer, .. } => customer,
        }
    }
}

impl fmt::Display for UnitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnitStatus::Held { hold, customer } => write!(f, "held by {customer} (hold {hold})"),
            UnitStatus::Booked {
                booking, customer, ..
            } => write!(f, "sold to {customer} (booking {booking})"),
        }
    }
}

/// An outcome together with the unit it is about and the log position of
/// the entry that decided it: enough to answer a retry even after the entry
/// itself was compacted into a snapshot.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Recorded {
    pub outcome: Outcome,
    pub unit: InventoryUnit,
    pub position: Position,
}

/// Everything a bucket knows: unit statuses and the idempotency table.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BucketState {
    /// Chunked (`ChunkedMap`): both grow with the bucket's history, and a
    /// replica copies the state whenever it changes a shared copy.
    pub units: ChunkedMap<InventoryUnit, UnitStatus>,
    /// The idempotency table: every decided token and its outcome.
    pub outcomes: ChunkedMap<Token, Recorded>,
}

impl BucketState {
    /// The recorded outcome of `token`, if it was ever decided.
    pub fn recorded(&self, token: &Token) -> Option<Recorded> {
        self.outcomes.get(token).cloned()
    }

    /// A committed `Payload::Void`: `token`, if still undecided, is closed
    /// — recorded as `Refusal::Voided` (with no unit: the query that
    /// closed it did not know one), so that the action, should it arrive
    /// later, is refused and never takes effect.
    pub fn void(&mut self, position: Position, token: Token) {
        if self.outcomes.get(&token).is_none() {
            self.outcomes.insert(
                token,
                Recorded {
                    outcome: Outcome::Refused(Refusal::Voided),
                    unit: InventoryUnit::new("", ""),
                    position,
                },
            );
        }
    }

    /// The outcome `command` would have if applied now, without applying it.
    /// A token that is already recorded keeps its recorded outcome.
    pub fn decide(&self, command: &Command) -> Outcome {
        if let Some(recorded) = self.recorded(&command.token) {
            return recorded.outcome;
        }
        match (&command.op, self.units.get(command.op.unit())) {
            (Op::Hold { .. }, None) => Outcome::Held,
            (Op::Hold { .. }, Some(UnitStatus::Held { .. })) => Outcome::Refused(Refusal::UnitHeld),
            (Op::Hold { .. }, Some(UnitStatus::Booked { .. })) => {
                Outcome::Refused(Refusal::UnitSold)
            }
            (Op::Confirm { hold, .. }, Some(UnitStatus::Held { hold: active, .. }))
                if hold == active =>
            {
                Outcome::Confirmed
            }
            (Op::Confirm { .. }, Some(UnitStatus::Booked { .. })) => {
                Outcome::Refused(Refusal::UnitSold)
            }
            (Op::Confirm { unit, hold }, _)
                if self.outcomes.get(hold).is_some_and(|granted| {
                    granted.outcome == Outcome::Held && granted.unit == *unit
                }) =>
            {
                // Granted on this unit, no longer active, not sold: it
                // expired.
                Outcome::Refused(Refusal::HoldExpired)
            }
            (Op::Confirm { .. }, _) => Outcome::Refused(Refusal::NoMatchingHold),
        }
    }

    /// Applies the entry at `position` and returns its outcome. Applying a
    /// token a second time changes nothing and returns the first outcome:
    /// a retry never creates a second effect.
    pub fn apply(&mut self, position: Position, command: &Command) -> Outcome {
        if let Some(recorded) = self.recorded(&command.token) {
            return recorded.outcome;
        }
        let outcome = self.decide(command);
        match (&command.op, outcome) {
            (Op::Hold { unit, customer }, Outcome::Held) => {
                self.units.insert(
                    unit.clone(),
                    UnitStatus::Held {
                        hold: command.token,
                        customer: customer.clone(),
                    },
                );
            }
            (Op::Confirm { unit, hold }, Outcome::Confirmed) => {
                let customer = self
                    .units
                    .get(unit)
                    .map(|status| status.customer().clone())
                    .unwrap_or_default();
                self.units.insert(
                    unit.clone(),
                    UnitStatus::Booked {
                        hold: *hold,
                        booking: command.token,
                        customer,
                    },
                );
            }
            _ => {}
        }
        self.outcomes.insert(
            command.token,
            Recorded {
                outcome,
                unit: command.op.unit().clone(),
                position,
            },
        );
        outcome
    }

    /// Ends the hold `hold` on `unit` if it is still the unit's active hold
    /// (a committed `Payload::Expire` entry); otherwise changes nothing.
    pub fn expire(&mut self, unit: &InventoryUnit, hold: Token) {
        if matches!(self.units.get(unit), Some(UnitStatus::Held { hold: active, .. }) if *active == hold)
        {
            self.units.remove(unit);
        }
    }

    /// The active holds: unit and hold token.
    pub fn holds(&self) -> impl Iterator<Item = (&InventoryUnit, Token)> {
        self.units.iter().filter_map(|(unit, status)| match status {
            UnitStatus::Held { hold, .. } => Some((unit, *hold)),
            UnitStatus::Booked { .. } => None,
        })
    }

    /// The booking that holds `unit`, if it is sold.
    pub fn booking_of(&self, unit: &InventoryUnit) -> Option<Token> {
        match self.units.get(unit) {
            Some(UnitStatus::Booked { booking, .. }) => Some(*booking),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A deliberately naive reference: replays the whole history for every
    /// question, with no idempotency table of its own.
    fn reference_outcomes(commands: &[Command]) -> Vec<Outcome> {
        let mut outcomes: Vec<Outcome> = Vec::new();
        for (index, command) in commands.iter().enumerate() {
            if let Some(first) = commands[..index]
                .iter()
                .position(|earlier| earlier.token == command.token)
            {
                outcomes.push(outcomes[first]);
                continue;
            }
            let unit = command.op.unit();
            // The unit's status is decided by the earlier effective actions on it.
            let mut held_by = None;
            let mut sold = false;
            for (earlier_index, (earlier, outcome)) in
                commands[..index].iter().zip(&outcomes).enumerate()
            {
                let is_retry = commands[..earlier_index]
                    .iter()
                    .any(|first| first.token == earlier.token);
                if is_retry || earlier.op.unit() != unit {
                    continue;
                }
                match (&earlier.op, outcome) {
                    (Op::Hold { .. }, Outcome::Held) => held_by = Some(earlier.token),
                    (Op::Confirm { .. }, Outcome::Confirmed) => sold = true,
                    _ => {}
                }
            }
            let outcome = match &command.op {
                Op::Hold { .. } if sold => Outcome::Refused(Refusal::UnitSold),
                Op::Hold { .. } if held_by.is_some() => Outcome::Refused(Refusal::UnitHeld),
                Op::Hold { .. } => Outcome::Held,
                Op::Confirm { .. } if sold => Outcome::Refused(Refusal::UnitSold),
                Op::Confirm { hold, .. } if held_by == Some(*hold) => Outcome::Confirmed,
                Op::Confirm { .. } => Outcome::Refused(Refusal::NoMatchingHold),
            };
            outcomes.push(outcome);
        }
        outcomes
    }

    fn arb_command() -> impl Strategy<Value = Command> {
        let unit = (0..2u8).prop_map(|cabin| InventoryUnit::new("T", format!("C{cabin}")));
        let token = (0..3u64, 0..3u32).prop_map(|(client, seq)| Token { client, seq });
        (token, unit, prop::option::of((0..3u64, 0..3u32))).prop_map(|(token, unit, hold)| {
            let op = match hold {
                None => Op::Hold {
                    unit,
                    customer: Customer::new("alice"),
                },
                Some((client, seq)) => Op::Confirm {
                    unit,
                    hold: Token { client, seq },
                },
            };
            Command { token, op }
        })
    }

    proptest! {
        /// Goal: the state machine agrees with the naive reference on every
        /// outcome, and never sells a unit twice.
        #[test]
        fn state_machine_matches_reference(commands in prop::collection::vec(arb_command(), 0..12)) {
            let mut state = BucketState::default();
            let outcomes: Vec<Outcome> = commands
                .iter()
                .enumerate()
                .map(|(index, command)| state.apply(Position(index as u64 + 1), command))
                .collect();
            prop_assert_eq!(&outcomes, &reference_outcomes(&commands));
            // Count each token's first command only: a later command with
            // the same token is a retry and has no effect of its own.
            let confirmed_per_unit = |cabin: &str| commands
                .iter()
                .zip(&outcomes)
                .enumerate()
                .filter(|(index, (command, outcome))| {
                    !commands[..*index].iter().any(|earlier| earlier.token == command.token)
                        && &*command.op.unit().cabin == cabin
                        && **outcome == Outcome::Confirmed
                })
                .map(|(_, pair)| pair)
                .map(|(command, _)| command.token)
                .collect::<std::collections::BTreeSet<_>>()
                .len();
            prop_assert!(confirmed_per_unit("C0") <= 1);
            prop_assert!(confirmed_per_unit("C1") <= 1);
        }

        /// Goal: applying a prefix again (a replayed retry) changes nothing.
        #[test]
        fn reapplying_is_idempotent(commands in prop::collection::vec(arb_command(), 0..10)) {
            let mut state = BucketState::default();
            for (index, command) in commands.iter().enumerate() {
                state.apply(Position(index as u64 + 1), command);
            }
            let before = state.clone();
            for (index, command) in commands.iter().enumerate() {
                state.apply(Position(100 + index as u64), command);
            }
            prop_assert_eq!(before, state);
        }
    }

    /// Goal: an expired hold frees the unit for another customer, and its
    /// late confirm is refused as expired; expiring a hold that was
    /// confirmed (or replaced) changes nothing.
    #[test]
    fn expired_hold_frees_the_unit_and_refuses_its_confirm() {
        let unit = InventoryUnit::new("BCN-JFK-2026-07-14", "C14");
        let hold = |client, seq, unit: &InventoryUnit| Command {
            token: Token { client, seq },
            op: Op::Hold {
                unit: unit.clone(),
                customer: Customer::new("alice"),
            },
        };
        let first = Token { client: 1, seq: 0 };
        let mut state = BucketState::default();
        assert_eq!(state.apply(Position(1), &hold(1, 0, &unit)), Outcome::Held);
        state.expire(&unit, first);
        assert_eq!(state.holds().count(), 0);
        assert_eq!(state.apply(Position(2), &hold(2, 0, &unit)), Outcome::Held);
        // A late expiry of the first hold does not end the second.
        state.expire(&unit, first);
        assert_eq!(state.holds().count(), 1);
        let late = Command {
            token: Token { client: 1, seq: 1 },
            op: Op::Confirm {
                unit: unit.clone(),
                hold: first,
            },
        };
        assert_eq!(
            state.apply(Position(3), &late),
            Outcome::Refused(Refusal::HoldExpired)
        );
        // A hold never granted on this unit is not "expired".
        let stranger = Command {
            token: Token { client: 3, seq: 1 },
            op: Op::Confirm {
                unit: unit.clone(),
                hold: Token { client: 3, seq: 0 },
            },
        };
        assert_eq!(
            state.apply(Position(4), &stranger),
            Outcome::Refused(Refusal::NoMatchingHold)
        );
    }

    #[test]
    fn hold_then_confirm_books_the_unit() {
        let unit = InventoryUnit::new("BCN-JFK-2026-07-14", "C14");
        let hold = Token { client: 1, seq: 0 };
        let booking = Token { client: 1, seq: 1 };
        let mut state = BucketState::default();
        let hold_cmd = Command {
            token: hold,
            op: Op::Hold {
                unit: unit.clone(),
                customer: Customer::new("alice"),
            },
        };
        assert_eq!(state.apply(Position(1), &hold_cmd), Outcome::Held);
        let rival = Command {
            token: Token { client: 2, seq: 0 },
            op: Op::Hold {
                unit: unit.clone(),
                customer: Customer::new("alice"),
            },
        };
        assert_eq!(
            state.apply(Position(2), &rival),
            Outcome::Refused(Refusal::UnitHeld)
        );
        let confirm = Command {
            token: booking,
            op: Op::Confirm {
                unit: unit.clone(),
                hold,
            },
        };
        assert_eq!(state.apply(Position(3), &confirm), Outcome::Confirmed);
        assert_eq!(state.booking_of(&unit), Some(booking));
        assert_eq!(state.recorded(&booking).unwrap().position, Position(3));
    }
}
