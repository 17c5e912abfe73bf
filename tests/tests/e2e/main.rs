//! End-to-end tests: berth's binaries as real processes (the checker's
//! CLI, the Explorer in a browser, clusters on loopback, attacks on them
//! from outside).
//!
//! One test binary (ripgrep style); `util` finds the workspace's binaries,
//! which `cargo test --workspace` builds alongside the tests.

mod attacks;
mod big_bucket;
mod checker_cli;
mod cluster;
mod explorer_browser;
mod hot;
mod reads;
mod scale;
mod supervise;
mod util;
