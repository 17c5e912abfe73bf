//! # berth-model: the protocol, free of I/O
//!
//! Inventory units `(trip, cabin)` hash into buckets. Each bucket has one
//! **leader** at a time, identified by the bucket's **epoch** in the
//! controller's **placement map**. The leader appends every decision to the
//! bucket log and acknowledges a client only after every **sync follower**
//! (same region) has made the entry durable; **async followers** (remote)
//! trail behind and never hold up a commit. Every replication message
//! carries the epoch, and a replica never acts for an epoch older than the
//! newest it promised — which is what fences a stale owner.
//!
//! The actors in this crate — [`ReplicaActor`], [`ControllerActor`] and
//! [`ClientActor`], joined in [`BerthActor`] — are plain
//! `stateright::actor::Actor`s: handlers change state and emit commands.
//! `berth-checker` runs them in Stateright's `ActorModel` against its
//! properties; the `berth` runtime runs the very same code over UDP.
//!
//! Module map:
//! - [`types`], [`hashing`], [`placement`]: the vocabulary and routing.
//! - [`bucket`], [`log`]: the bucket state machine and its replicated log;
//!   [`chunked`], the shared-chunk map its state grows in.
//! - [`messages`], [`config`]: what the actors say to one another (`Msg`,
//!   `Timer`) and the settings they share (`ProtocolConfig`).
//! - [`replica`], [`controller`], [`client`], [`stream`]: the roles (the
//!   last is the change-stream subscriber behind projections), and
//!   [`actor`], which joins them into one `BerthActor`.
//! - [`variant`]: the broken designs the checker must refute.
//! - [`rebalance`]: the planner of moves that even the groups' write load.

pub mod actor;
pub mod bucket;
pub mod chunked;
pub mod client;
pub mod config;
pub mod controller;
pub mod hashing;
pub mod log;
mod log_lines;
pub mod memo;
pub mod messages;
pub mod placement;
pub mod rebalance;
pub mod replica;
pub mod stream;
#[cfg(test)]
mod test_support;
pub mod types;
pub mod variant;

pub use actor::{BerthActor, NodeState, Storage, StorageChange};
pub use bucket::{BucketState, Command, Op, Outcome, Refusal};
pub use client::{ClientActor, ClientState, Task};
pub use config::{ProtocolConfig, Timeouts};
pub use controller::ControllerActor;
pub use messages::{Msg, Timer};
pub use placement::{BucketPlacement, PlacementMap, Role};
pub use replica::ReplicaActor;
pub use types::{Bucket, Customer, Epoch, GroupId, InventoryUnit, Position, PositionToken, Token};
pub use variant::Variant;
