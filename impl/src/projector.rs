//! The projections fed by the change stream (the Harbor Point notes, docs/reads.md: "the
//! leader's log feeds a search index keyed by route and departure date,
//! and it feeds a trip projection keyed by customer").
//!
//! The projector process runs the model's `SubscriberActor` (pulling every
//! bucket's committed entries from its leader, resuming at the new owner
//! after failovers and moves) and answers two queries from what it has
//! applied:
//!
//! - **search** (`berth search`): the cabins of a trip, available, held or
//!   sold, with the data's age — the time since the projection was last
//!   caught up with the leader it heard from longest ago. Over the
//!   configured budget (2 s) the answer says it is stale; it never serves
//!   stale data silently.
//! - **customer trips** (`berth trips`): a customer's bookings and holds,
//!   answered only once the projection has applied each bucket named by the
//!   caller's dependency tokens through the token's position (the position
//!   a confirm returned), or once the caller's wait is over, saying which
//!   dependencies are not reflected yet.
//!
//! Nothing here is protocol: the stream's rules live in
//! `berth_model::stream`; this module only reads the subscriber's state
//! and keeps time.

use crate::tokens::token_text;
use crate::wire::{Datagram, SearchResult, Trip, TripsResult};
use berth_model::bucket::UnitStatus;
use berth_model::stream::SubscriberState;
use berth_model::{Bucket, NodeState, PositionToken};
use stateright::actor::Id;
use std::time::{Duration, Instant};

/// Trips queries waiting at most.
const MAX_WAITING: usize = 1024;

/// A trips query waiting for its dependencies.
#[derive(Debug)]
struct Waiting {
    from: Id,
    customer: String,
    after: Vec<PositionToken>,
    asked: Instant,
    deadline: Instant,
}

/// The projector's clock-keeping around the subscriber's state.
#[derive(Debug)]
pub struct Projections {
    /// Per bucket: when the projection was last caught up with its leader.
    fresh_at: Vec<Option<Instant>>,
    budget: Duration,
    cabins: Vec<String>,
    waiting: Vec<Waiting>,
}

impl Projections {
    pub fn new(buckets: u32, budget: Duration, cabins: Vec<String>) -> Self {
        Projections {
            fresh_at: vec![None; buckets as usize],
            budget,
            cabins,
            waiting: Vec::new(),
        }
    }

    /// Notes, after the subscriber applied an answer for `bucket`, whether
    /// it left the projection caught up with the leader.
    pub fn heard(&mut self, state: &NodeState, bucket: Bucket, now: Instant) {
        let NodeState::Subscriber(subscriber) = state else {
            return;
        };
        if subscriber
            .streams
            .get(&bucket)
            .is_some_and(|stream| stream.caught_up)
        {
            if let Some(slot) = self.fresh_at.get_mut(bucket.0 as usize) {
                *slot = Some(now);
            }
        }
    }

    /// The data's age at `now`: since the least recently caught-up bucket
    /// was caught up; `None` if one never was.
    pub fn age(&self, now: Instant) -> Option<Duration> {
        let oldest = self.fresh_at.iter().copied().min()??;
        Some(now.duration_since(oldest))
    }

    /// Answers a search for `trip`.
    pub fn search(&self, state: &NodeState, trip: &str, now: Instant) -> Datagram {
        let mut held = Vec::new();
        let mut sold = Vec::new();
        if let NodeState::Subscriber(subscriber) = state {
            for stream in subscriber.streams.values() {
                for (unit, status) in &stream.state.units {
                    if &*unit.trip != trip {
                        continue;
                    }
                    match status {
                        UnitStatus::Held { .. } => held.push(unit.cabin.to_string()),
                        UnitStatus::Booked { .. } => sold.push(unit.cabin.to_string()),
                    }
                }
            }
        }
        held.sort_by_key(|cabin| natural(cabin));
        sold.sort_by_key(|cabin| natural(cabin));
        let available = self
            .cabins
            .iter()
            .filter(|cabin| !held.contains(cabin) && !sold.contains(cabin))
            .cloned()
            .collect();
        Datagram::SearchResult(SearchResult {
            trip: trip.to_owned(),
            available,
            held,
            sold,
            age_ms: self.age(now).map(|age| age.as_millis() as u64),
            budget_ms: self.budget.as_millis() as u64,
        })
    }

    /// Takes a trips query: answered now if its dependencies are applied
    /// (or it does not wait), else when they are or its wait ends.
    pub fn ask_trips(
        &mut self,
        from: Id,
        customer: String,
        after: Vec<PositionToken>,
        wait: Duration,
        now: Instant,
    ) {
        // Bounded: past this many, the oldest query is answered at once
        // (with what it still misses) instead of growing the list.
        if self.waiting.len() >= MAX_WAITING {
            if let Some(oldest) = self.waiting.first_mut() {
                oldest.deadline = now;
            }
        }
        self.waiting.push(Waiting {
            from,
            customer,
            after,
            asked: now,
            deadline: now + wait,
        });
    }

    /// The answers to trips queries that are ready at `now`.
    pub fn ready(&mut self, state: &NodeState, now: Instant) -> Vec<(Id, Datagram)> {
        let NodeState::Subscriber(subscriber) = state else {
            return Vec::new();
        };
        let mut answers = Vec::new();
        self.waiting.retain(|waiting| {
            let missing = missing(subscriber, &waiting.after);
            if !missing.is_empty() && now < waiting.deadline {
                return true;
            }
            answers.push((
                waiting.from,
                Datagram::TripsResult(TripsResult {
                    customer: waiting.customer.clone(),
                    trips: trips_of(subscriber, &waiting.customer),
                    missing,
                    waited_ms: now.duration_since(waiting.asked).as_millis() as u64,
                }),
            ));
            false
        });
        answers
    }
}

/// The tokens whose bucket the projection has not applied through.
fn missing(subscriber: &SubscriberState, after: &[PositionToken]) -> Vec<PositionToken> {
    after
        .iter()
        .filter(|token| {
            subscriber
                .streams
                .get(&token.bucket)
                .is_none_or(|stream| stream.position < token.position)
        })
        .copied()
        .collect()
}

/// A customer's bookings and holds, in trip and cabin order.
fn trips_of(subscriber: &SubscriberState, customer: &str) -> Vec<Trip> {
    let mut trips: Vec<Trip> = subscriber
        .streams
        .iter()
        .flat_map(|(bucket, stream)| {
            stream
                .state
                .units
                .iter()
                .filter(|(_, status)| &*status.customer().0 == customer)
                .map(|(unit, status)| {
                    let (state, token) = match status {
                        UnitStatus::Held { hold, .. } => ("held", *hold),
                        UnitStatus::Booked { booking, .. } => ("confirmed", *booking),
                    };
                    Trip {
                        unit: unit.to_string(),
                        status: state.to_owned(),
                        token: token_text(token, *bucket),
                    }
                })
        })
        .collect();
    trips.sort_by(|a, b| a.unit.cmp(&b.unit));
    trips
}

/// Sorts "C9" before "C10".
fn natural(cabin: &str) -> (String, u64, String) {
    let split = cabin
        .find(|c: char| c.is_ascii_digit())
        .unwrap_or(cabin.len());
    let (prefix, rest) = cabin.split_at(split);
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    (
        prefix.to_owned(),
        digits.parse().unwrap_or(0),
        rest[digits.len()..].to_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_model::stream::BucketStream;
    use berth_model::{BucketState, Command, Customer, InventoryUnit, Op, Position, Token};

    fn subscriber_with(units: &[(&str, &str)], position: u64) -> NodeState {
        let mut state = BucketState::default();
        for (seq, (cabin, customer)) in units.iter().enumerate() {
            let hold = Command {
                token: Token {
                    client: 1,
                    seq: seq as u32 * 2,
                },
                op: Op::Hold {
                    unit: InventoryUnit::new("BCN-JFK-2026-07-14", cabin),
                    customer: Customer::new(customer),
                },
            };
            state.apply(Position(seq as u64 * 2 + 1), &hold);
            let confirm = Command {
                token: Token {
                    client: 1,
                    seq: seq as u32 * 2 + 1,
                },
                op: Op::Confirm {
                    unit: InventoryUnit::new("BCN-JFK-2026-07-14", cabin),
                    hold: hold.token,
                },
            };
            state.apply(Position(seq as u64 * 2 + 2), &confirm);
        }
        NodeState::Subscriber(SubscriberState {
            map: berth_model::PlacementMap {
                version: 1,
                buckets: Vec::new().into(),
            },
            streams: [(
                Bucket(0),
                std::sync::Arc::new(BucketStream {
                    position: Position(position),
                    state,
                    caught_up: true,
                    staged: None,
                }),
            )]
            .into(),
            awaiting: Default::default(),
            pulls: 0,
        })
    }

    /// Goal: search lists sold cabins apart from available ones, in cabin
    /// order, and reports the age since the projection was caught up.
    #[test]
    fn search_lists_cabins_and_the_data_age() {
        let state = subscriber_with(&[("C10", "alice"), ("C2", "bob")], 4);
        let mut projections =
            Projections::new(1, Duration::from_secs(2), vec!["C1".into(), "C2".into()]);
        let now = Instant::now();
        let Datagram::SearchResult(result) = projections.search(&state, "BCN-JFK-2026-07-14", now)
        else {
            unreachable!()
        };
        assert_eq!(result.sold, ["C2", "C10"]);
        assert_eq!(result.available, ["C1"]);
        assert_eq!(result.age_ms, None, "never caught up yet");
        projections.heard(&state, Bucket(0), now);
        let Datagram::SearchResult(result) = projections.search(
            &state,
            "BCN-JFK-2026-07-14",
            now + Duration::from_millis(2500),
        ) else {
            unreachable!()
        };
        assert_eq!(result.age_ms, Some(2500));
    }

    /// Goal: a trips query waits until the projection has applied its
    /// dependency token, then lists the customer's trips; at its deadline
    /// it answers anyway, naming what is missing.
    #[test]
    fn trips_wait_for_their_dependency_token() {
        let behind = subscriber_with(&[("C10", "alice")], 1);
        let mut projections = Projections::new(1, Duration::from_secs(2), Vec::new());
        let now = Instant::now();
        let from = Id::from(9);
        let token = PositionToken {
            bucket: Bucket(0),
            position: Position(2),
        };
        projections.ask_trips(
            from,
            "alice".into(),
            vec![token],
            Duration::from_secs(1),
            now,
        );
        assert!(projections.ready(&behind, now).is_empty(), "it waits");
        let caught_up = subscriber_with(&[("C10", "alice")], 2);
        let answers = projections.ready(&caught_up, now);
        let [(_, Datagram::TripsResult(result))] = answers.as_slice() else {
            panic!("{answers:?}")
        };
        assert!(result.missing.is_empty());
        assert_eq!(result.trips.len(), 1);
        assert_eq!(result.trips[0].status, "confirmed");
        // A query whose dependency never arrives is answered at its deadline.
        projections.ask_trips(
            from,
            "alice".into(),
            vec![token],
            Duration::from_secs(1),
            now,
        );
        let answers = projections.ready(&behind, now + Duration::from_secs(2));
        let [(_, Datagram::TripsResult(result))] = answers.as_slice() else {
            panic!("{answers:?}")
        };
        assert_eq!(result.missing, [token]);
    }
}
