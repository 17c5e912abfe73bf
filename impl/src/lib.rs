//! # berth: the runtime
//!
//! This crate will run the `berth-model` actors over real UDP sockets with
//! crash-safe, fsync'd storage: `berth node`, `berth controller`,
//! `berth cluster up` and the client commands. Until that lands it holds
//! only the command-line surface that says so; it decides nothing about the
//! protocol, which lives in `berth-model`.

/// What the runtime will offer, shown by `berth --help`.
pub const PLANNED: &str = "\
Not yet available in this build. Planned subcommands:
  berth cluster up --dir DIR     launch a local cluster on 127.0.0.1
  berth controller / berth node  run one member of a cluster
  berth status                   placement map, positions, lag, members down
  berth hold|confirm|book|token  client commands with idempotency tokens
  berth move / berth failover    live bucket cutover, planned failover
Today, use `berth-check` to model-check the protocol these will run.";
