//! The messages and timers of the protocol: what berth actors say to one
//! another (`Msg` and its payload types) and the timers they set (`Timer`).
//! The wire format is `Msg` as serde encodes it.

use crate::bucket::{BucketState, Command, Outcome, UnitStatus};
use crate::log::Entry;
use crate::placement::{BucketPlacement, PlacementMap};
use crate::types::{Bucket, Epoch, GroupId, InventoryUnit, Position, Token};
use serde::{Deserialize, Serialize};
use stateright::actor::{Actor, Id};
use std::fmt;
use std::sync::Arc;

/// An actor whose steps emit berth's messages and timers: the roles'
/// handlers write into its `Out` (in practice `BerthActor`'s), so that a
/// role need not know the actor that joins them.
pub trait Emits: Actor<Msg = Msg, Timer = Timer> {}

impl<A: Actor<Msg = Msg, Timer = Timer>> Emits for A {}

/// Leader → client: the committed outcome of `token`, decided by the entry
/// at `position` (`Msg::Reply`; a struct so that its fields are named once).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Reply {
    pub bucket: Bucket,
    pub epoch: Epoch,
    pub position: Position,
    pub token: Token,
    pub unit: InventoryUnit,
    pub outcome: Outcome,
}

/// Replica → client: `unit`'s status in the bucket's committed state through
/// `position`, and which serving path answered (`Msg::ReadReply`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ReadReply {
    pub bucket: Bucket,
    pub unit: InventoryUnit,
    pub position: Position,
    pub status: Option<UnitStatus>,
    pub path: ReadPath,
}

/// Every message of the protocol. Verb pairs: `Request`/`Reply`,
/// `Query`/`Reply` or `NotDecided`, `FetchMap`/`Map`,
/// `FetchPlacement`/`Placement`, `Append`/`Appended`, `Fence`/`Fenced`.
///
/// `Debug` prints the same compact form as `Display`, because the Explorer
/// and assertion messages show messages through `Debug`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Msg {
    /// Client → leader: perform `command` on `bucket`, routed at `epoch`.
    Request {
        bucket: Bucket,
        epoch: Epoch,
        command: Command,
    },
    /// Leader → client: the committed outcome of `token`, decided by the
    /// entry at `position`.
    Reply(Reply),
    /// Replica → client: "I do not lead `bucket` at your epoch"; `epoch` is
    /// the newest epoch this replica knows. The client refreshes its map and
    /// retries with the same token.
    Redirect {
        bucket: Bucket,
        epoch: Epoch,
        token: Token,
    },
    /// Client → leader: what became of `token`? Answered with the recorded
    /// `Reply` (at once, or when its entry commits) or with `NotDecided`.
    Query {
        bucket: Bucket,
        epoch: Epoch,
        token: Token,
    },
    /// Leader → client: the current leader has committed no outcome for
    /// `token` and holds none pending, and everything it inherited is
    /// committed, so no earlier attempt can still take effect. Resending the
    /// action with the same token decides it now.
    NotDecided {
        bucket: Bucket,
        epoch: Epoch,
        token: Token,
    },
    /// Router → controller: send me the current placement map.
    FetchMap,
    /// Controller → router: the current placement map.
    Map(PlacementMap),
    /// Leader → follower: `entries` follow the entry at `prev_position`,
    /// which has epoch `prev_epoch`; everything through `commit_position`
    /// is committed.
    Append {
        bucket: Bucket,
        epoch: Epoch,
        prev_position: Position,
        prev_epoch: Epoch,
        entries: Vec<Entry>,
        commit_position: Position,
    },
    /// Follower → leader: my log matches yours through `position`, durably.
    Appended {
        bucket: Bucket,
        epoch: Epoch,
        position: Position,
    },
    /// Follower → leader: I promised `epoch`, newer than your append's.
    AppendRefused { bucket: Bucket, epoch: Epoch },
    /// Replica → controller: I saw `bucket` at an epoch newer than my
    /// placement; send me its placement.
    FetchPlacement { bucket: Bucket },
    /// Controller → replica: the placements of these buckets (published
    /// only after the controller made them durable). One decision about
    /// many buckets — a failed leader's thousand — is one message per
    /// replica (`ProtocolConfig::max_batch` buckets at most), not one per
    /// bucket.
    Placements(Vec<(Bucket, BucketPlacement)>),
    /// Controller → sync follower: for each bucket, promise the epoch
    /// (never act for an older one again) and report your durable log.
    /// Batched as `Placements` is.
    Fence(Vec<(Bucket, Epoch)>),
    /// Operator → controller: move `bucket` to `group` (live cutover).
    MoveBucket { bucket: Bucket, group: GroupId },
    /// Controller → the bucket's leader at `epoch`: stream the bucket to
    /// the members of `destination` (its placement once moved), then seal it
    /// with a barrier.
    MoveOut {
        bucket: Bucket,
        epoch: Epoch,
        destination: BucketPlacement,
    },
    /// Leader → a replica that lacks the prefix of its log: install a
    /// snapshot, then append what follows it. Shared (`Arc`), because the
    /// checker copies every message in flight into every state.
    Snapshot(Arc<Snapshot>),
    /// Source leader → controller: the barrier at `barrier` is committed in
    /// the source group and durable on every member of the destination.
    MovedOut {
        bucket: Bucket,
        epoch: Epoch,
        barrier: Position,
    },
    /// Sync follower → controller: the answer to one `Fence`, a report per
    /// bucket it fenced.
    Fenced(Vec<FenceReport>),
    /// Operator → controller: fail `bucket` over from its leader now
    /// (planned failover: the same fence-and-promote as for a suspected
    /// leader).
    Failover { bucket: Bucket },
    /// Controller → replica (`Detector::Probes`): are you there?
    Probe,
    /// Replica → controller: the answer to `Probe`, with the followers of
    /// the buckets it leads that are over their lag budget (as the runtime
    /// measured them; the checker never measures lag).
    Alive { lagging: Vec<FollowerLag> },
    /// Controller → operator: the planned move of `bucket` was not started.
    MoveRefused { bucket: Bucket, reason: String },
    /// Client → any replica of `bucket` (a session read): the status of
    /// `unit`, from state no older than `after`, the newest position of the
    /// bucket the client has observed.
    Read {
        bucket: Bucket,
        unit: InventoryUnit,
        after: Position,
    },
    /// Replica → client: `unit`'s status in the bucket's committed state
    /// through `position` (never before the read's `after`), and which
    /// serving path answered.
    ReadReply(ReadReply),
    /// Replica → client: I have applied `bucket` only through `position`,
    /// short of the read's `after`: read at the leader.
    ReadBehind {
        bucket: Bucket,
        unit: InventoryUnit,
        position: Position,
    },
    // --- Chunked snapshots (`ProtocolConfig::snapshot_chunk`).
    /// Receiver → leader: of your snapshot of `bucket` at `position`, I
    /// hold the first `chunks` chunks (staged, not yet installed): send
    /// the next. `0` when it holds none of it (it restarted, say).
    SnapshotReceived {
        bucket: Bucket,
        epoch: Epoch,
        position: Position,
        chunks: u32,
    },
    /// Subscriber → replica: the committed entries of each bucket after
    /// the position given (the change stream, pulled).
    Pull { from: Vec<(Bucket, Position)> },
    /// Replica → subscriber: the answer to `Pull`, for some of its buckets
    /// (a large answer comes in several messages).
    Changes(Arc<Vec<Changes>>),
}

/// Which serving path answered a read (the Harbor Point notes, docs/reads.md: every endpoint is
/// labelled with its path).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ReadPath {
    /// The bucket's leader.
    Leader,
    /// A follower that has applied through the caller's observed position.
    Follower,
}

impl fmt::Display for ReadPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReadPath::Leader => "leader",
            ReadPath::Follower => "follower",
        })
    }
}

/// A follower of a bucket whose lag is over the budget, as its leader
/// measured it: it has not been caught up with the leader's log for
/// `millis`, and lacks `entries` entries.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FollowerLag {
    pub bucket: Bucket,
    pub follower: Id,
    pub entries: u64,
    pub millis: u64,
}

impl fmt::Display for FollowerLag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "replica {} is {:.1} s ({} entries) behind on {}",
            usize::from(self.follower),
            self.millis as f64 / 1000.0,
            self.entries,
            self.bucket
        )
    }
}

/// The contents of `Msg::Changes`: `bucket`'s committed entries following
/// `after`, or — when the sender's log no longer keeps them (it started
/// from a snapshot) — its committed state at `reset`'s position and the
/// entries following that.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Changes {
    pub bucket: Bucket,
    /// The sender's epoch of the bucket, and whether it leads the bucket
    /// at that epoch (and has not sealed it): if not, the subscriber asks
    /// the controller for a newer map and pulls from the new owner.
    pub epoch: Epoch,
    pub leads: bool,
    pub after: Position,
    pub reset: Option<(Position, BucketState)>,
    /// A reset too large for one message travels in parts: this one is
    /// part `.0` of `.1` (`reset` holds that part's units and outcomes;
    /// only the last part carries `entries`). `None`: the whole reset.
    pub reset_part: Option<(u32, u32)>,
    pub entries: Vec<Entry>,
    /// The sender's commit position: a subscriber that reached it is caught
    /// up with the sender.
    pub commit_position: Position,
}

impl Changes {
    /// The position the entries follow.
    pub fn first_after(&self) -> Position {
        self.reset
            .as_ref()
            .map_or(self.after, |(position, _)| *position)
    }

    /// The position of the last entry carried.
    pub fn through(&self) -> Position {
        Position(self.first_after().0 + self.entries.len() as u64)
    }
}

impl fmt::Display for Msg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Msg::Request {
                bucket,
                epoch,
                command,
            } => write!(f, "Request {{ {bucket}@{epoch} {command} }}"),
            Msg::Failover { bucket } => write!(f, "Failover {{ {bucket} }}"),
            Msg::Probe => f.write_str("Probe"),
            Msg::Alive { lagging } => {
                let lagging: Vec<String> = lagging.iter().map(ToString::to_string).collect();
                write!(f, "Alive {{ lagging [{}] }}", lagging.join("; "))
            }
            Msg::MoveRefused { bucket, reason } => {
                write!(f, "MoveRefused {{ {bucket}: {reason} }}")
            }
            Msg::Read {
                bucket,
                unit,
                after,
            } => write!(f, "Read {{ {bucket} {unit} after {after} }}"),
            Msg::ReadReply(ReadReply {
                bucket,
                unit,
                position,
                status,
                path,
            }) => {
                let status = status
                    .as_ref()
                    .map_or("available".to_owned(), |s| s.to_string());
                write!(
                    f,
                    "ReadReply {{ {bucket} {unit} {status} at {position} from {path} }}"
                )
            }
            Msg::ReadBehind {
                bucket,
                unit,
                position,
            } => write!(
                f,
                "ReadBehind {{ {bucket} {unit}: applied only through {position} }}"
            ),
            Msg::Pull { from } => {
                let from: Vec<String> =
                    from.iter().map(|(b, p)| format!("{b} after {p}")).collect();
                write!(f, "Pull {{ {} }}", from.join(", "))
            }
            Msg::Changes(batch) => {
                let parts: Vec<String> = batch
                    .iter()
                    .map(|changes| {
                        let entries: Vec<String> =
                            changes.entries.iter().map(ToString::to_string).collect();
                        let reset = match &changes.reset {
                            Some((position, _)) => format!(" state at {position} then"),
                            None => String::new(),
                        };
                        format!(
                            "{}@{} after {}{reset} [{}] commit {}",
                            changes.bucket,
                            changes.epoch,
                            changes.after,
                            entries.join(", "),
                            changes.commit_position
                        )
                    })
                    .collect();
                write!(f, "Changes {{ {} }}", parts.join("; "))
            }
            Msg::Reply(Reply {
                bucket,
                epoch,
                position,
                token,
                unit,
                outcome,
            }) => write!(
                f,
                "Reply {{ {bucket}@{epoch} {token} {unit} → {outcome} at {position} }}"
            ),
            Msg::Redirect {
                bucket,
                epoch,
                token,
            } => write!(f, "Redirect {{ {bucket} {token}: replica knows {epoch} }}"),
            Msg::Query {
                bucket,
                epoch,
                token,
            } => write!(f, "Query {{ {bucket}@{epoch} {token} }}"),
            Msg::NotDecided {
                bucket,
                epoch,
                token,
            } => write!(f, "NotDecided {{ {bucket}@{epoch} {token} }}"),
            Msg::FetchMap => f.write_str("FetchMap"),
            Msg::Map(map) => write!(f, "Map {{ version {} }}", map.version),
            Msg::Append {
                bucket,
                epoch,
                prev_position,
                prev_epoch,
                entries,
                commit_position,
            } => {
                let entries: Vec<String> = entries.iter().map(ToString::to_string).collect();
                write!(
                    f,
                    "Append {{ {bucket}@{epoch} after {prev_position}/{prev_epoch} [{}] commit {commit_position} }}",
                    entries.join(", ")
                )
            }
            Msg::Appended {
                bucket,
                epoch,
                position,
            } => write!(f, "Appended {{ {bucket}@{epoch} through {position} }}"),
            Msg::AppendRefused { bucket, epoch } => {
                write!(f, "AppendRefused {{ {bucket}: promised {epoch} }}")
            }
            Msg::FetchPlacement { bucket } => write!(f, "FetchPlacement {{ {bucket} }}"),
            Msg::MoveBucket { bucket, group } => write!(f, "MoveBucket {{ {bucket} to {group} }}"),
            Msg::MoveOut {
                bucket,
                epoch,
                destination,
            } => write!(f, "MoveOut {{ {bucket}@{epoch} to {destination} }}"),
            Msg::Snapshot(snapshot) => {
                let Snapshot {
                    bucket,
                    epoch,
                    position,
                    position_epoch,
                    entries,
                    commit_position,
                    chunk,
                    ..
                } = snapshot.as_ref();
                let entries: Vec<String> = entries.iter().map(ToString::to_string).collect();
                let chunk = chunk.map_or(String::new(), |chunk| {
                    format!(" chunk {}/{}", chunk.index + 1, chunk.count)
                });
                write!(
                    f,
                    "Snapshot {{ {bucket}@{epoch} state at {position}/{position_epoch}{chunk} then [{}] commit {commit_position} }}",
                    entries.join(", ")
                )
            }
            Msg::SnapshotReceived {
                bucket,
                epoch,
                position,
                chunks,
            } => write!(
                f,
                "SnapshotReceived {{ {bucket}@{epoch} state at {position}: {chunks} chunks }}"
            ),
            Msg::MovedOut {
                bucket,
                epoch,
                barrier,
            } => write!(f, "MovedOut {{ {bucket}@{epoch} barrier at {barrier} }}"),
            Msg::Placements(placements) => {
                let items: Vec<String> = placements
                    .iter()
                    .map(|(bucket, placement)| format!("{bucket}: {placement}"))
                    .collect();
                batch(f, "Placement", &items)
            }
            Msg::Fence(fences) => {
                let items: Vec<String> = fences
                    .iter()
                    .map(|(bucket, epoch)| format!("{bucket}: promise {epoch}"))
                    .collect();
                batch(f, "Fence", &items)
            }
            Msg::Fenced(reports) => {
                let items: Vec<String> = reports.iter().map(ToString::to_string).collect();
                batch(f, "Fenced", &items)
            }
        }
    }
}

/// Writes a batched message: `Name { item }` for one bucket (as a trace
/// shows the checker's single-bucket scenarios), `Names { n buckets: … }`
/// for more.
fn batch(f: &mut fmt::Formatter<'_>, name: &str, items: &[String]) -> fmt::Result {
    match items {
        [one] => write!(f, "{name} {{ {one} }}"),
        _ => write!(
            f,
            "{name}s {{ {} buckets: {} }}",
            items.len(),
            items.join("; ")
        ),
    }
}

/// One bucket of a `Msg::Fenced`: the follower promised `epoch`; its
/// durable log ends at `last_position` with an entry of `last_epoch`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FenceReport {
    pub bucket: Bucket,
    pub epoch: Epoch,
    pub last_position: Position,
    pub last_epoch: Epoch,
}

impl fmt::Display for FenceReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let FenceReport {
            bucket,
            epoch,
            last_position,
            last_epoch,
        } = self;
        write!(
            f,
            "{bucket}: promised {epoch}, log ends {last_position}/{last_epoch}"
        )
    }
}

/// Splits `items` into messages of at most `max` (`None`: one message).
pub fn batches<T>(items: Vec<T>, max: Option<usize>) -> Vec<Vec<T>> {
    let max = max.unwrap_or(usize::MAX).max(1);
    if items.len() <= max {
        return if items.is_empty() {
            Vec::new()
        } else {
            vec![items]
        };
    }
    let mut out = Vec::new();
    let mut items = items.into_iter().peekable();
    while items.peek().is_some() {
        out.push(items.by_ref().take(max).collect());
    }
    out
}

/// The contents of `Msg::Snapshot`: the bucket state (idempotency table
/// included) at `position`, whose entry has `position_epoch`, then the
/// `entries` after it. `placement` is the sender's placement at `epoch`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Snapshot {
    pub bucket: Bucket,
    pub epoch: Epoch,
    pub placement: BucketPlacement,
    pub position: Position,
    pub position_epoch: Epoch,
    pub state: BucketState,
    pub entries: Vec<Entry>,
    pub commit_position: Position,
    /// Which part of a chunked snapshot this is (`None`: the whole). A
    /// chunk's `state` holds only its units and outcomes; the last chunk
    /// carries the `entries`.
    pub chunk: Option<Chunk>,
}

/// Chunk `index` (from 0) of the `count` chunks of one snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Chunk {
    pub index: u32,
    pub count: u32,
}

impl fmt::Debug for Msg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Every timer of the protocol.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Timer {
    /// Client: no reply yet; resend the pending request with the same token.
    ClientRetry,
    /// Leader: resend appends to followers that have not acknowledged.
    Replicate(Bucket),
    /// Controller: the bucket's leader is suspected to have failed; fail
    /// over. The checker fires it at any moment, so a false suspicion of a
    /// live leader is explored like a real crash.
    SuspectLeader(Bucket),
    /// Controller: the bucket's sync follower at this index of its
    /// placement's sync followers is suspected to have failed; reconfigure
    /// the commit quorum through a new epoch (one timer per sync follower,
    /// so that in a group of two either may be the one suspected).
    SuspectSyncFollower(Bucket, u8),
    /// Controller (`Detector::Probes`): probe every replica, count who did
    /// not answer the last probe, act on those that are down.
    Probe,
    /// Subscriber: pull the change stream of every followed bucket.
    Pull,
    /// Leader (`announce_commits`): tell the caught-up followers of the
    /// bucket its commit position. Re-armed on every commit, so under load
    /// (when the next append carries the commit anyway) it waits until the
    /// writes pause.
    AnnounceCommit(Bucket),
    /// Leader: the hold `Token` on a unit of the bucket has run out of
    /// time; end it with a `Payload::Expire` entry (if still active). The
    /// checker fires it at any moment when holds expire.
    HoldExpiry(Bucket, Token),
}

impl fmt::Display for Timer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Timer::ClientRetry => f.write_str("client retry"),
            Timer::Replicate(bucket) => write!(f, "replicate {bucket}"),
            Timer::SuspectLeader(bucket) => write!(f, "suspect leader of {bucket}"),
            Timer::SuspectSyncFollower(bucket, index) => {
                write!(f, "suspect sync follower {index} of {bucket}")
            }
            Timer::Probe => f.write_str("probe"),
            Timer::Pull => f.write_str("pull"),
            Timer::AnnounceCommit(bucket) => write!(f, "announce the commit of {bucket}"),
            Timer::HoldExpiry(bucket, hold) => write!(f, "expiry of hold {hold} in {bucket}"),
        }
    }
}
