//! `berth`: launch a cluster, run its members, book on it, inspect it,
//! move buckets and fail them over.
//!
//! This file is the command line and nothing else: what each command takes
//! and says in `--help`, and which function in [`cli`] runs it.

mod cli;

use clap::{Parser, Subcommand};
use cli::args::ConfigArg;
use cli::bench::BenchArgs;
use cli::book::{ConfirmArgs, TokenArgs, UnitArgs};
use cli::cluster::{ClusterCommand, KeysArgs, NodeArgs};
use cli::fuzz::FuzzArgs;
use cli::operate::{FailoverArgs, MoveArgs, RebalanceArgs, StatusArgs};
use cli::read::{ReadArgs, SearchArgs, TripsArgs};
use std::process::ExitCode;

/// berth: bucket replication, live cutover and failover for a booking
/// system, over real UDP.
#[derive(Parser, Debug)]
#[command(name = "berth", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Launch a local cluster.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Run the controller of a cluster.
    Controller(ConfigArg),
    /// Run one replica of a cluster.
    Node(NodeArgs),
    /// Show the placement map, each replica's positions and lag, and which members are down (with --hot: the buckets with the most writes).
    Status(StatusArgs),
    /// Run the projector: the search and customer-trips views, fed by every bucket's change stream.
    Projector(ConfigArg),
    /// Hold a cabin; prints the hold's token for `confirm`.
    Hold(UnitArgs),
    /// Read a cabin's status at a follower that has applied through your observed positions, else at the leader; says which path answered.
    Read(ReadArgs),
    /// Search a trip's cabins in the change-stream-fed search view (bounded staleness: says when over its budget).
    Search(SearchArgs),
    /// A customer's trips, once the trips view reflects the position tokens given (e.g. the one a confirm printed).
    Trips(TripsArgs),
    /// Confirm a hold.
    Confirm(ConfirmArgs),
    /// Hold, then confirm, a cabin.
    Book(UnitArgs),
    /// What became of an action (by the token `hold` or `book` printed).
    Token(TokenArgs),
    /// Move a bucket to another replica group (live cutover).
    Move(MoveArgs),
    /// Fail a bucket over from its leader to its sync follower (planned failover).
    Failover(FailoverArgs),
    /// Plan moves of hot buckets that even the groups' write load, and carry them out one by one (live cutover).
    Rebalance(RebalanceArgs),
    /// Measure: clients book N fresh cabins (`--clients` at once, `--rate` offered, `--etcd` against etcd); prints bookings and writes per second and latency percentiles.
    Bench(BenchArgs),
    /// Create the cluster's keys in DIR/keys (member, operator, client; owner-only) where missing: `cluster up` does this itself, a cluster run by hand needs it once.
    Keys(KeysArgs),
    /// Fuzz the receive path: a whole cluster in this process fed real, mutated, forged and replayed datagrams (no network); fails on the first panic, with the input.
    Fuzz(FuzzArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The fuzzer drives a whole cluster through hostile input: its members'
    // warnings are the expected refusals, so by default it shows errors only.
    let level = if matches!(cli.command, Command::Fuzz(_)) {
        "error"
    } else {
        "info"
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(cli.command) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("berth: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs `command`; returns its exit code.
fn run(command: Command) -> anyhow::Result<u8> {
    match command {
        Command::Cluster(ClusterCommand::Up(args)) => cli::cluster::up(&args),
        Command::Controller(args) => cli::cluster::controller(&args),
        Command::Node(args) => cli::cluster::node(&args),
        Command::Projector(args) => cli::cluster::projector(&args),
        Command::Keys(args) => cli::cluster::keys(&args),
        Command::Status(args) => cli::operate::status(&args),
        Command::Move(args) => cli::operate::move_(&args),
        Command::Failover(args) => cli::operate::failover(&args),
        Command::Rebalance(args) => cli::operate::rebalance(&args),
        Command::Hold(args) => cli::book::hold(&args),
        Command::Book(args) => cli::book::book(&args),
        Command::Confirm(args) => cli::book::confirm(&args),
        Command::Token(args) => cli::book::token(&args),
        Command::Read(args) => cli::read::read(&args),
        Command::Search(args) => cli::read::search(&args),
        Command::Trips(args) => cli::read::trips(&args),
        Command::Bench(args) => cli::bench::bench(&args),
        Command::Fuzz(args) => cli::fuzz::fuzz(&args),
    }
}
