//! The bodies of `berth`'s commands, grouped by what they do; `main.rs`
//! only parses the command line and calls one of them.
//!
//! Each returns the exit code: 0 done, 1 refused (or stale, or short of
//! its target), 3 unreachable (no answer in time); an error is exit 2 (bad
//! input, or a local failure), printed by `main`.

pub mod args;
pub mod bench;
pub mod book;
pub mod cluster;
pub mod fuzz;
pub mod operate;
pub mod read;
