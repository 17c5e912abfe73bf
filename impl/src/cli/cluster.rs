//! Running a cluster: `cluster up` launches one locally; `controller`,
//! `node` and `projector` run one member each until SIGINT or SIGTERM;
//! `keys` creates the keys a cluster run by hand needs.

use super::args::ConfigArg;
use anyhow::{Context, Result};
use berth::cluster::{self, Layout};
use berth::config::Member;
use berth::member;
use berth_model::placement::MAX_BUCKETS;
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Write DIR/cluster.toml (unless it exists), start the controller and every replica on 127.0.0.1, and stop them all on Ctrl-C or SIGTERM.
    Up(UpArgs),
}

#[derive(Args, Debug)]
pub struct UpArgs {
    /// The cluster's directory: its configuration, data and logs.
    #[arg(long)]
    dir: PathBuf,
    /// Replica groups.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    groups: u32,
    /// Replicas per group: a leader, a sync follower in its region, then async followers in a remote region.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=9))]
    replicas: u32,
    /// Buckets the inventory hashes into: 1 to 65536 (up to that, every message a cluster sends at start-up and every status report fits a datagram).
    #[arg(long, default_value_t = 2048, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_BUCKETS)))]
    buckets: u32,
    /// The controller's port; replica N listens on base + N.
    #[arg(long, default_value_t = 7000, value_parser = clap::value_parser!(u16).range(1..))]
    base_port: u16,
    /// How long a hold lasts before it expires, in seconds.
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..))]
    hold_ttl: u64,
    /// The RPO budget of async followers, in milliseconds: further behind, a group is not failover-ready and planned moves of it are refused.
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..))]
    lag_budget_ms: u64,
}

#[derive(Args, Debug)]
pub struct NodeArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Which replica to run (its id in the configuration).
    #[arg(long)]
    id: usize,
}

#[derive(Args, Debug)]
pub struct KeysArgs {
    /// The cluster's directory (the keys go to DIR/keys).
    #[arg(long)]
    dir: PathBuf,
}

/// Sets the returned flag on SIGINT or SIGTERM; a member (`second_exits`)
/// exits at once (code 1) on a second one, whatever it is doing.
fn stop_flag(second_exits: bool) -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if second_exits {
            // Registered first: it sees the flag as the previous signal left it.
            signal_hook::flag::register_conditional_shutdown(signal, 1, Arc::clone(&stop))
                .context("cannot install the signal handler")?;
        }
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .context("cannot install the signal handler")?;
    }
    Ok(stop)
}

/// `berth cluster up`.
pub fn up(args: &UpArgs) -> Result<u8> {
    let stop = stop_flag(false)?;
    cluster::up(
        &args.dir,
        &Layout {
            groups: args.groups,
            replicas: args.replicas as usize,
            buckets: args.buckets,
            base_port: args.base_port,
            hold_ttl_seconds: args.hold_ttl,
            lag_budget_ms: args.lag_budget_ms,
        },
        &stop,
    )?;
    Ok(0)
}

/// `berth controller`.
pub fn controller(args: &ConfigArg) -> Result<u8> {
    let config = args.load()?;
    member::run(config, Member::Controller, stop_flag(true)?)?;
    Ok(0)
}

/// `berth node`.
pub fn node(args: &NodeArgs) -> Result<u8> {
    let config = args.config.load()?;
    member::run(config, Member::Replica(args.id), stop_flag(true)?)?;
    Ok(0)
}

/// `berth projector`.
pub fn projector(args: &ConfigArg) -> Result<u8> {
    let config = args.load()?;
    member::run_projector(config, stop_flag(true)?)?;
    Ok(0)
}

/// `berth keys`.
pub fn keys(args: &KeysArgs) -> Result<u8> {
    let dir = args.dir.join("keys");
    let made = berth::auth::Keys::create_missing(&dir)?;
    if made.is_empty() {
        println!("{} already holds every key", dir.display());
    } else {
        let names: Vec<String> = made.iter().map(ToString::to_string).collect();
        println!(
            "wrote the {} keys in {} (owner-only)",
            names.join(", "),
            dir.display()
        );
    }
    Ok(0)
}
