//! # berth: the runtime
//!
//! Runs the `berth-model` actors over real UDP sockets with crash-safe,
//! fsync'd storage. The runtime moves bytes, timers and durable state; it
//! decides nothing about the protocol, which lives in `berth-model` and is
//! the code `berth-check` explores.
//!
//! - [`config`]: `cluster.toml`, members, addresses, groups, the initial map.
//! - [`wire`]: datagrams (JSON) and status reports.
//! - [`storage`]: one member's durable state, saved atomically.
//! - [`runtime`]: the event loop (batch, one fsync, then send).
//! - [`member`]: running the controller or a replica.
//! - [`client`]: clients and operator requests.
//! - [`cluster`]: `berth cluster up`.

pub mod client;
pub mod cluster;
pub mod config;
pub mod member;
pub mod runtime;
pub mod status;
pub mod storage;
pub mod wire;
