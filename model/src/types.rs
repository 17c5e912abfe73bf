//! The vocabulary of docs/protocol.md as small value types.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// Per-bucket ownership number. Every change of leader or of group advances
/// it; every routed write and every replication message carries it.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Epoch(pub u64);

impl Epoch {
    /// The epoch a bucket is born with. Nothing was committed before it, so
    /// at this epoch every sync follower trivially holds the committed
    /// prefix of earlier epochs; at every later epoch the leader's
    /// epoch-start entry is the proof.
    pub const FIRST: Epoch = Epoch(1);

    /// The epoch after this one.
    pub fn next(self) -> Epoch {
        Epoch(self.0 + 1)
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "e{}", self.0)
    }
}

/// A 1-based position in a bucket log. Position 0 is "before the first entry".
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Position(pub u64);

impl Position {
    /// The position that follows this one.
    pub fn next(self) -> Position {
        Position(self.0 + 1)
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "p{}", self.0)
    }
}

/// A bucket: `hash(inventory unit) mod B`, the unit of ownership and movement.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Bucket(pub u32);

impl fmt::Display for Bucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "b{}", self.0)
    }
}

/// A replica group: the set of replicas that can hold a bucket.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct GroupId(pub u32);

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "G{}", self.0)
    }
}

/// The thing sold exactly once: a cabin on one trip instance.
///
/// The names are shared (`Arc<str>`): a unit is copied into every message,
/// log entry and idempotency record that mentions it, and the checker keeps
/// millions of states.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct InventoryUnit {
    pub trip: Arc<str>,
    pub cabin: Arc<str>,
}

impl InventoryUnit {
    pub fn new(trip: impl AsRef<str>, cabin: impl AsRef<str>) -> Self {
        InventoryUnit {
            trip: Arc::from(trip.as_ref()),
            cabin: Arc::from(cabin.as_ref()),
        }
    }
}

impl fmt::Display for InventoryUnit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.trip, self.cabin)
    }
}

/// A position token: "I have observed `bucket` through `position`". Every
/// write reply carries one; a follower read must not answer from state
/// older than it, and the trips view waits until it has applied through it.
/// Printed and parsed as `b<bucket>@p<position>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PositionToken {
    pub bucket: Bucket,
    pub position: Position,
}

impl fmt::Display for PositionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.bucket, self.position)
    }
}

impl std::str::FromStr for PositionToken {
    type Err = String;

    /// Parses the `Display` form, `b<bucket>@p<position>`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let expected = "expected b<bucket>@p<position>, as a write reply prints it";
        let (bucket, position) = text
            .split_once('@')
            .ok_or_else(|| format!("position token {text:?} has no '@' ({expected})"))?;
        let bucket = bucket
            .strip_prefix('b')
            .and_then(|number| number.parse().ok())
            .ok_or_else(|| {
                format!("position token {text:?}: bad bucket {bucket:?} ({expected})")
            })?;
        let position = position
            .strip_prefix('p')
            .and_then(|number| number.parse().ok())
            .ok_or_else(|| {
                format!("position token {text:?}: bad position {position:?} ({expected})")
            })?;
        Ok(PositionToken {
            bucket: Bucket(bucket),
            position: Position(position),
        })
    }
}

/// Who a hold (and the booking it becomes) is for: the key of the
/// customer-trips projection. Shared (`Arc<str>`) like the unit's names.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Customer(pub Arc<str>);

impl Customer {
    pub fn new(name: impl AsRef<str>) -> Self {
        Customer(Arc::from(name.as_ref()))
    }
}

impl fmt::Display for Customer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The client-chosen identity of one business action (a hold or a confirm).
///
/// Its outcome is bucket state: logged, replicated, snapshotted and moved
/// with the bucket, so a retry with the same token always gets the same
/// answer. The token of a granted hold is the hold's id; the token of a
/// confirmed booking is the booking's id.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Token {
    /// Chosen by the client: unique per client (a random number in the CLI,
    /// the actor index in the model).
    pub client: u64,
    /// The action's sequence number within that client.
    pub seq: u32,
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "T{}.{}", self.client, self.seq)
    }
}

impl std::str::FromStr for Token {
    type Err = String;

    /// Parses the `Display` form, `T<client>.<seq>`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let body = text.strip_prefix('T').ok_or_else(|| {
            format!("token {text:?} does not start with 'T' (expected T<client>.<seq>)")
        })?;
        let (client, seq) = body
            .split_once('.')
            .ok_or_else(|| format!("token {text:?} has no '.' (expected T<client>.<seq>)"))?;
        let client = client
            .parse()
            .map_err(|_| format!("token {text:?}: client part {client:?} is not a number"))?;
        let seq = seq
            .parse()
            .map_err(|_| format!("token {text:?}: sequence part {seq:?} is not a number"))?;
        Ok(Token { client, seq })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Goal: a token printed for a person parses back to itself, so a
        /// user can ask about an action by the token they were shown.
        #[test]
        fn token_display_parses_back(client in any::<u64>(), seq in any::<u32>()) {
            let token = Token { client, seq };
            prop_assert_eq!(token.to_string().parse::<Token>(), Ok(token));
        }
    }

    proptest! {
        /// Goal: a position token printed by a write reply parses back, so
        /// a user can pass it to `read --after` and `trips --after`.
        #[test]
        fn position_token_display_parses_back(bucket in any::<u32>(), position in any::<u64>()) {
            let token = PositionToken { bucket: Bucket(bucket), position: Position(position) };
            prop_assert_eq!(token.to_string().parse::<PositionToken>(), Ok(token));
        }
    }

    #[test]
    fn malformed_position_tokens_are_rejected_with_a_reason() {
        for (text, reason) in [
            ("b3p4", "no '@'"),
            ("3@p4", "bad bucket"),
            ("b3@4", "bad position"),
            ("b3@px", "bad position"),
        ] {
            let error = text.parse::<PositionToken>().unwrap_err();
            assert!(error.contains(reason), "{text}: {error}");
        }
    }

    #[test]
    fn malformed_tokens_are_rejected_with_a_reason() {
        for (text, reason) in [
            ("4.1", "does not start with 'T'"),
            ("T4", "has no '.'"),
            ("Tx.1", "client part"),
            ("T4.-1", "sequence part"),
        ] {
            let error = text.parse::<Token>().unwrap_err();
            assert!(error.contains(reason), "{text}: {error}");
        }
    }
}
