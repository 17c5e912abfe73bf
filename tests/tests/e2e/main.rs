//! End-to-end tests: berth's binaries as real processes.
//!
//! One test binary (ripgrep style); `util` finds the workspace's binaries,
//! which `cargo test --workspace` builds alongside the tests.

mod checker_cli;
mod explorer_browser;
mod util;
