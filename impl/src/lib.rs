//! # berth: the runtime
//!
//! Runs the `berth-model` actors over real UDP sockets with crash-safe,
//! fsync'd storage. The runtime moves bytes, timers and durable state; it
//! decides nothing about the protocol, which lives in `berth-model` and is
//! the code `berth-check` explores.
//!
//! - [`config`]: `cluster.toml`, members, addresses, groups, the initial map.
//! - [`wire`]: datagrams (postcard), projection answers.
//! - [`report`]: status reports, each one datagram at any bucket count.
//! - [`auth`]: keys, sealing and opening datagrams, refusing replays.
//! - [`guard`]: dropped datagrams counted by reason; rate-limited warnings.
//! - [`storage`]: one member's durable state, saved atomically.
//! - [`runtime`]: the event loop (batch, one fsync, then send).
//! - [`receive`]: the loop's receive side: opening, identifying, authorising.
//! - [`services`]: status reports, projection answers, measurements.
//! - [`rates`]: per-bucket write rates, measured by the event loop.
//! - [`lag`]: how far each leader's followers trail, measured by the loop.
//! - [`projector`]: the search and customer-trips views over the stream.
//! - [`member`]: running the controller, a replica or the projector.
//! - [`client`]: clients and operator requests.
//! - [`load`]: many booking sessions at once (`berth bench --clients`).
//! - [`tokens`]: action tokens as text (`T<client>.<seq>@b<bucket>`).
//! - [`overview`]: `berth status` as data (the text and `--json`).
//! - [`status`]: `berth status` and `--hot`, and the load `rebalance` uses.
//! - [`cluster`]: `berth cluster up`.
//! - [`fuzz`]: the receive-path fuzzer.
//!
//! The `berth` binary is `main.rs` (the command line) and `cli/` (each
//! command's body).

pub mod auth;
pub mod client;
pub mod cluster;
pub mod config;
pub mod fuzz;
pub mod guard;
pub mod lag;
pub mod load;
pub mod member;
pub mod overview;
pub mod projector;
pub mod rates;
pub mod receive;
pub mod report;
pub mod runtime;
pub mod services;
pub mod status;
pub mod storage;
pub mod tokens;
pub mod wire;

#[cfg(test)]
#[path = "limits_tests.rs"]
mod limits;
