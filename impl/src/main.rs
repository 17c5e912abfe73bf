//! `berth`: the runtime's command line (the UDP runtime is not built yet).

use clap::Parser;
use std::process::ExitCode;

/// berth — bucket replication, live cutover and failover for a booking system.
#[derive(Parser, Debug)]
#[command(name = "berth", version, after_help = berth::PLANNED)]
struct Cli {}

fn main() -> ExitCode {
    let _cli = Cli::parse();
    eprintln!(
        "berth: the UDP runtime is not built yet.\n\n{}",
        berth::PLANNED
    );
    ExitCode::from(2)
}
