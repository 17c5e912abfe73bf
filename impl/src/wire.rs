//! The wire format: one datagram per message, in postcard (a compact
//! binary serde format; JSON cannot carry the maps keyed by tokens). Besides the protocol's
//! own `Msg`, a member answers status requests with a [`Report`]
//! (observability, not protocol: see [`crate::report`]).

pub use crate::report::Report;
use berth_model::messages::{ReadReply, Reply};
use berth_model::{Msg, PositionToken};
use serde::{Deserialize, Serialize};

/// The largest datagram berth sends or accepts (the UDP payload limit over
/// IPv4).
pub const MAX_DATAGRAM: usize = 65_507;
/// The largest payload: a datagram less its authentication header.
pub const MAX_PAYLOAD: usize = MAX_DATAGRAM - crate::auth::HEADER;

/// Everything that travels between berth processes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Datagram {
    /// Protocol messages for one recipient, in the order they were sent
    /// (several per datagram: a failover of a thousand buckets is a few
    /// datagrams, not thousands that overflow a receive buffer).
    Protocol(Vec<Msg>),
    /// Anyone → member: report your state.
    StatusRequest,
    Status(Report),
    /// Anyone → projector: the cabins of `trip` (route and date).
    Search {
        trip: String,
    },
    SearchResult(SearchResult),
    /// Anyone → projector: the trips of `customer`, once the projection
    /// has applied every bucket through the position of each `after` token
    /// (waiting up to `wait_ms` for it).
    Trips {
        customer: String,
        after: Vec<PositionToken>,
        wait_ms: u64,
    },
    TripsResult(TripsResult),
}

/// The search view's answer (the Harbor Point notes: "bounded staleness, up to 2s"; docs/reads.md).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchResult {
    pub trip: String,
    pub available: Vec<String>,
    pub held: Vec<String>,
    pub sold: Vec<String>,
    /// How old the data is: the time since the projection was last caught
    /// up with the leader of the bucket it heard from longest ago; `None`
    /// if some bucket has never been caught up.
    pub age_ms: Option<u64>,
    pub budget_ms: u64,
}

/// One trip of a customer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trip {
    pub unit: String,
    /// "confirmed" or "held".
    pub status: String,
    /// The booking's (or hold's) token, as `berth token` takes it.
    pub token: String,
}

/// The customer-trips view's answer (the Harbor Point notes: "wait for the trip
/// projection to catch up" to the dependency token).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TripsResult {
    pub customer: String,
    pub trips: Vec<Trip>,
    /// The `after` tokens the projection had not reached when it answered
    /// (empty: every dependency is reflected).
    pub missing: Vec<PositionToken>,
    pub waited_ms: u64,
}

/// Whether every bucket `msg` names is one of the cluster's `buckets`, and
/// a map it carries has exactly that many: the model indexes by bucket,
/// so nothing from outside the cluster's range reaches it.
pub fn within(msg: &Msg, buckets: u32) -> bool {
    let bucket = match msg {
        Msg::Request { bucket, .. }
        | Msg::Reply(Reply { bucket, .. })
        | Msg::Redirect { bucket, .. }
        | Msg::Query { bucket, .. }
        | Msg::NotDecided { bucket, .. }
        | Msg::Append { bucket, .. }
        | Msg::Appended { bucket, .. }
        | Msg::AppendRefused { bucket, .. }
        | Msg::FetchPlacement { bucket }
        | Msg::MoveBucket { bucket, .. }
        | Msg::MoveOut { bucket, .. }
        | Msg::MovedOut { bucket, .. }
        | Msg::Failover { bucket }
        | Msg::MoveRefused { bucket, .. }
        | Msg::Read { bucket, .. }
        | Msg::ReadReply(ReadReply { bucket, .. })
        | Msg::ReadBehind { bucket, .. }
        | Msg::SnapshotReceived { bucket, .. } => *bucket,
        Msg::Snapshot(snapshot) => snapshot.bucket,
        Msg::Map(map) => return map.bucket_count() == buckets,
        Msg::Pull { from } => {
            return from.len() <= buckets as usize && from.iter().all(|(b, _)| b.0 < buckets)
        }
        Msg::Changes(changes) => return changes.iter().all(|c| c.bucket.0 < buckets),
        Msg::Alive { lagging } => return lagging.iter().all(|lag| lag.bucket.0 < buckets),
        Msg::Placements(placements) => {
            return placements.iter().all(|(bucket, _)| bucket.0 < buckets)
        }
        Msg::Fence(fences) => return fences.iter().all(|(bucket, _)| bucket.0 < buckets),
        Msg::Fenced(reports) => return reports.iter().all(|report| report.bucket.0 < buckets),
        Msg::FetchMap | Msg::Probe => return true,
    };
    bucket.0 < buckets
}

/// Encodes `datagram`, or says why it cannot be sent.
pub fn encode(datagram: &Datagram) -> Result<Vec<u8>, String> {
    let bytes = postcard::to_stdvec(datagram).map_err(|error| error.to_string())?;
    if bytes.len() > MAX_PAYLOAD {
        return Err(format!(
            "{} bytes exceed the {MAX_PAYLOAD}-byte payload limit",
            bytes.len()
        ));
    }
    Ok(bytes)
}

/// The most buckets one `Msg::Pull` carries on the wire: 4,096 pairs of a
/// bucket and a position are at most 53 KB, whatever the positions.
pub const PULL_BUCKETS: usize = 4096;

/// `msgs` with every `Pull` of more than `PULL_BUCKETS` buckets split into
/// consecutive `Pull`s of at most that many. A pull's buckets are
/// independent requests (each is answered on its own, by bucket), so the
/// split carries the same request as the subscriber's one message, in
/// datagrams that fit: a subscriber following 65,536 buckets led by one
/// replica asks in one pull.
pub fn split_pulls(msgs: &[Msg]) -> Vec<Msg> {
    let mut out = Vec::with_capacity(msgs.len());
    for msg in msgs {
        match msg {
            Msg::Pull { from } if from.len() > PULL_BUCKETS => {
                out.extend(from.chunks(PULL_BUCKETS).map(|chunk| Msg::Pull {
                    from: chunk.to_vec(),
                }));
            }
            _ => out.push(msg.clone()),
        }
    }
    out
}

/// Packs `msgs` (for one recipient, in order) into as few datagrams as
/// fit, splitting large pulls ([`split_pulls`]). A message too large for
/// any datagram is returned apart, with the reason, to be reported and
/// dropped.
pub fn pack(msgs: &[Msg]) -> (Vec<Vec<u8>>, Vec<(Msg, String)>) {
    let split;
    let msgs = if msgs
        .iter()
        .any(|msg| matches!(msg, Msg::Pull { from } if from.len() > PULL_BUCKETS))
    {
        split = split_pulls(msgs);
        &split[..]
    } else {
        msgs
    };
    // postcard encodes `Datagram::Protocol(vec)` as the variant index
    // (varint 0), the length (varint), then each message: so messages are
    // encoded once and concatenated.
    let mut datagrams = Vec::new();
    let mut refused = Vec::new();
    let mut batch: Vec<Vec<u8>> = Vec::new();
    let mut batch_bytes = 0;
    let finish = |batch: &mut Vec<Vec<u8>>, datagrams: &mut Vec<Vec<u8>>| {
        if batch.is_empty() {
            return;
        }
        let mut bytes = vec![0u8];
        let mut count = batch.len();
        loop {
            let byte = (count & 0x7f) as u8;
            count >>= 7;
            if count == 0 {
                bytes.push(byte);
                break;
            }
            bytes.push(byte | 0x80);
        }
        for msg in batch.drain(..) {
            bytes.extend_from_slice(&msg);
        }
        datagrams.push(bytes);
    };
    // Room for the variant index and a length of up to three varint bytes.
    const HEADER: usize = 4;
    for msg in msgs {
        let encoded = match postcard::to_stdvec(msg) {
            Ok(encoded) => encoded,
            Err(error) => {
                refused.push((msg.clone(), error.to_string()));
                continue;
            }
        };
        if encoded.len() + HEADER > MAX_PAYLOAD {
            refused.push((
                msg.clone(),
                format!(
                    "{} bytes exceed the {MAX_PAYLOAD}-byte payload limit",
                    encoded.len()
                ),
            ));
            continue;
        }
        if batch_bytes + encoded.len() + HEADER > MAX_PAYLOAD {
            finish(&mut batch, &mut datagrams);
            batch_bytes = 0;
        }
        batch_bytes += encoded.len();
        batch.push(encoded);
    }
    finish(&mut batch, &mut datagrams);
    (datagrams, refused)
}

/// Decodes one received datagram, or says why it is not one of ours.
pub fn decode(bytes: &[u8]) -> Result<Datagram, String> {
    if bytes.len() > MAX_PAYLOAD {
        return Err(format!("{} bytes: oversized", bytes.len()));
    }
    postcard::from_bytes(bytes).map_err(|error| error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_model::placement::{BucketPlacement, PlacementMap};
    use berth_model::{Bucket, Command, Epoch, GroupId, InventoryUnit, Op, Token};
    use proptest::prelude::*;
    use stateright::actor::Id;

    /// A hold request for `trip`'s cabin C14 on `bucket`.
    fn hold_request(bucket: u32, trip: &str) -> Msg {
        Msg::Request {
            bucket: Bucket(bucket),
            epoch: Epoch(3),
            command: Command {
                token: Token { client: 9, seq: 2 },
                op: Op::Hold {
                    unit: InventoryUnit::new(trip, "C14"),
                    customer: berth_model::Customer::new("alice"),
                },
            },
        }
    }

    /// Goal: every message survives the wire unchanged.
    #[test]
    fn protocol_messages_round_trip() {
        let msg = hold_request(7, "BCN-JFK-2026-07-14");
        let datagram = Datagram::Protocol(vec![msg.clone()]);
        assert_eq!(decode(&encode(&datagram).unwrap()).unwrap(), datagram);
        // Packed: many messages, few datagrams, each decoding to its share
        // in order.
        let many: Vec<Msg> = (0..3000)
            .map(|bucket| hold_request(bucket, "BCN-JFK-2026-07-14"))
            .collect();
        let (datagrams, refused) = pack(&many);
        assert!(refused.is_empty());
        assert!(
            datagrams.len() > 1 && datagrams.len() < 10,
            "{}",
            datagrams.len()
        );
        let mut unpacked = Vec::new();
        for bytes in &datagrams {
            assert!(bytes.len() <= MAX_PAYLOAD);
            match decode(bytes).unwrap() {
                Datagram::Protocol(msgs) => unpacked.extend(msgs),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(unpacked, many);
    }

    proptest! {
        /// Goal: arbitrary bytes never panic the decoder; they decode or
        /// are refused with a reason.
        #[test]
        fn garbage_is_refused_not_panicked_on(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&bytes);
        }
    }

    /// Goal: a datagram of a few bytes whose placement map claims billions
    /// of buckets is refused with a reason, not expanded (which would abort
    /// the process on allocation); so are runs adding up past the cap.
    #[test]
    fn placement_map_bombs_are_refused() {
        let placement = BucketPlacement {
            epoch: Epoch(1),
            group: GroupId(0),
            leader: Id::from(1),
            sync_followers: vec![Id::from(2)],
            async_followers: vec![Id::from(3)],
        };
        let map = PlacementMap::uniform(1, placement.clone());
        let honest = encode(&Datagram::Protocol(vec![Msg::Map(map.clone())])).unwrap();
        assert_eq!(
            decode(&honest).unwrap(),
            Datagram::Protocol(vec![Msg::Map(map.clone())])
        );
        // The map is the datagram's tail: swap in hand-made runs, encoded
        // as the map's own (version, runs) form.
        let map_bytes = postcard::to_stdvec(&map).unwrap();
        assert!(honest.ends_with(&map_bytes));
        let prefix = &honest[..honest.len() - map_bytes.len()];
        let with_runs = |runs: Vec<(u32, BucketPlacement)>| {
            let mut bytes = prefix.to_vec();
            bytes.extend(postcard::to_stdvec(&(1u64, runs)).unwrap());
            bytes
        };
        let started = std::time::Instant::now();
        let bomb = with_runs(vec![(u32::MAX, placement.clone())]);
        assert!(bomb.len() < 32, "{} bytes", bomb.len());
        assert!(decode(&bomb).is_err());
        let runs = vec![(30_000, placement.clone()); 3];
        assert!(decode(&with_runs(runs)).is_err());
        assert!(decode(&with_runs(vec![(0, placement.clone())])).is_err());
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        // The same bytes with an honest count decode.
        assert_eq!(
            decode(&with_runs(vec![(2, placement.clone())])).unwrap(),
            Datagram::Protocol(vec![Msg::Map(PlacementMap::uniform(2, placement))])
        );
    }

    /// Goal: an oversized datagram is refused on both sides.
    #[test]
    fn oversized_datagrams_are_refused() {
        assert!(decode(&vec![0; MAX_PAYLOAD + 1])
            .unwrap_err()
            .contains("oversized"));
        let huge_msg = hold_request(0, &"T".repeat(70_000));
        let huge = Datagram::Protocol(vec![huge_msg.clone()]);
        assert!(encode(&huge).unwrap_err().contains("payload limit"));
        let (datagrams, refused) = pack(&[huge_msg]);
        assert!(datagrams.is_empty());
        assert!(refused[0].1.contains("payload limit"));
    }
}
