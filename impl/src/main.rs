//! `berth`: launch a cluster, run its members, book on it, inspect it,
//! move buckets and fail them over.

use anyhow::{Context, Result};
use berth::client::{self, parse_token, token_text, Ending};
use berth::cluster::{self, Layout};
use berth::config::{ClusterConfig, Member};
use berth::wire::Report;
use berth::{member, status};
use berth_model::hashing::bucket_of;
use berth_model::{Bucket, GroupId, InventoryUnit, Msg, Outcome, Task};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    /// Show the placement map, each replica's positions and lag, and which members are down.
    Status(StatusArgs),
    /// Hold a cabin; prints the hold's token for `confirm`.
    Hold(UnitArgs),
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
    /// Measure: one client books N fresh cabins one after another; prints confirmed bookings per second.
    Bench(BenchArgs),
}

#[derive(Args, Debug)]
struct BenchArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// How many cabins to book.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    bookings: u32,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 300.0)]
    timeout: f64,
    /// Book only cabins of this bucket and move it to `--to-group` while booking (measures the write pause of a cutover under load).
    #[arg(long, requires = "to_group")]
    move_bucket: Option<u32>,
    /// The group `--move-bucket` goes to.
    #[arg(long, requires = "move_bucket")]
    to_group: Option<u32>,
}

#[derive(Subcommand, Debug)]
enum ClusterCommand {
    /// Write DIR/cluster.toml (unless it exists), start the controller and every replica on 127.0.0.1, and stop them all on Ctrl-C or SIGTERM.
    Up(UpArgs),
}

#[derive(Args, Debug)]
struct UpArgs {
    /// The cluster's directory: its configuration, data and logs.
    #[arg(long)]
    dir: PathBuf,
    /// Replica groups.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    groups: u32,
    /// Replicas per group: a leader, a sync follower in its region, then async followers in a remote region.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=9))]
    replicas: u32,
    /// Buckets the inventory hashes into.
    #[arg(long, default_value_t = 2048, value_parser = clap::value_parser!(u32).range(1..=65536))]
    buckets: u32,
    /// The controller's port; replica N listens on base + N.
    #[arg(long, default_value_t = 7000, value_parser = clap::value_parser!(u16).range(1..))]
    base_port: u16,
    /// How long a hold lasts before it expires, in seconds.
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..))]
    hold_ttl: u64,
}

#[derive(Args, Debug)]
struct ConfigArg {
    /// The cluster configuration (DIR/cluster.toml).
    #[arg(long)]
    config: PathBuf,
}

#[derive(Args, Debug)]
struct NodeArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Which replica to run (its id in the configuration).
    #[arg(long)]
    id: usize,
}

#[derive(Args, Debug)]
struct StatusArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// How long to wait for members to answer, in seconds.
    #[arg(long, default_value_t = 1.0)]
    timeout: f64,
}

#[derive(Args, Debug)]
struct UnitArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// The trip, e.g. BCN-JFK-2026-07-14.
    #[arg(long)]
    trip: String,
    /// The cabin, e.g. C14.
    #[arg(long)]
    cabin: String,
    /// Give up after this many seconds without an answer.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
}

#[derive(Args, Debug)]
struct ConfirmArgs {
    #[command(flatten)]
    unit: UnitArgs,
    /// The hold's token, as `berth hold` printed it.
    #[arg(long)]
    hold: String,
}

#[derive(Args, Debug)]
struct TokenArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// The token, as `hold`, `confirm` or `book` printed it (T<client>.<seq>@b<bucket>).
    token: String,
    /// Give up after this many seconds without an answer.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
}

#[derive(Args, Debug)]
struct MoveArgs {
    #[command(flatten)]
    config: ConfigArg,
    #[arg(long)]
    bucket: u32,
    /// The group to move it to.
    #[arg(long)]
    to_group: u32,
    /// Give up waiting after this many seconds.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
}

#[derive(Args, Debug)]
struct FailoverArgs {
    #[command(flatten)]
    config: ConfigArg,
    #[arg(long)]
    bucket: u32,
    /// Give up waiting after this many seconds.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
}

fn seconds(value: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(value)
        .ok()
        .filter(|d| !d.is_zero())
        .with_context(|| format!("{value} is not a positive number of seconds"))
}

/// Sets the returned flag on SIGINT or SIGTERM.
fn stop_flag() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .context("cannot install the signal handler")?;
    }
    Ok(stop)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
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

fn run(command: Command) -> Result<u8> {
    match command {
        Command::Cluster(ClusterCommand::Up(args)) => {
            let stop = stop_flag()?;
            cluster::up(
                &args.dir,
                &Layout {
                    groups: args.groups,
                    replicas: args.replicas as usize,
                    buckets: args.buckets,
                    base_port: args.base_port,
                    hold_ttl_seconds: args.hold_ttl,
                },
                &stop,
            )?;
            Ok(0)
        }
        Command::Controller(args) => {
            let config = ClusterConfig::load(&args.config)?;
            member::run(config, Member::Controller, stop_flag()?)?;
            Ok(0)
        }
        Command::Node(args) => {
            let config = ClusterConfig::load(&args.config.config)?;
            member::run(config, Member::Replica(args.id), stop_flag()?)?;
            Ok(0)
        }
        Command::Status(args) => {
            let config = ClusterConfig::load(&args.config.config)?;
            print!("{}", status::status(&config, seconds(args.timeout)?)?);
            Ok(0)
        }
        Command::Hold(args) => unit_task(&args, Task::Hold),
        Command::Book(args) => unit_task(&args, Task::Book),
        Command::Confirm(args) => {
            let (hold, _) = parse_token(&args.hold)?;
            unit_task(&args.unit, |unit| Task::Confirm { unit, hold })
        }
        Command::Token(args) => {
            let config = ClusterConfig::load(&args.config.config)?;
            let (token, bucket) = parse_token(&args.token)?;
            if bucket.0 >= config.buckets {
                anyhow::bail!(
                    "{} names bucket {}, but the cluster has {} buckets",
                    args.token,
                    bucket.0,
                    config.buckets
                );
            }
            let answers = client::run_tasks(
                &config,
                vec![Task::Query { bucket, token }],
                seconds(args.timeout)?,
            )?;
            Ok(report_answers(answers, args.timeout).exit_code())
        }
        Command::Move(args) => {
            let config = ClusterConfig::load(&args.config.config)?;
            check_bucket(&config, args.bucket)?;
            if !config.groups.iter().any(|g| g.id == args.to_group) {
                anyhow::bail!("the cluster has no group {}", args.to_group);
            }
            let bucket = Bucket(args.bucket);
            let msg = Msg::MoveBucket {
                bucket,
                group: GroupId(args.to_group),
            };
            change(
                &config,
                msg,
                bucket,
                seconds(args.timeout)?,
                |before, now| now.group.0 == args.to_group && now.epoch > before.epoch,
            )
        }
        Command::Bench(args) => {
            let config = ClusterConfig::load(&args.config.config)?;
            // Fresh cabins on a trip of their own, so that each run books
            // what it measures.
            let trip = format!("BENCH-{:08x}", fastrand::u32(..));
            let units = (0..).map(|n| InventoryUnit::new(trip.as_str(), format!("C{n}")));
            let tasks: Vec<Task> = match args.move_bucket {
                None => units.take(args.bookings as usize).map(Task::Book).collect(),
                Some(bucket) => {
                    check_bucket(&config, bucket)?;
                    units
                        .filter(|unit| bucket_of(unit, config.buckets).0 == bucket)
                        .take(args.bookings as usize)
                        .map(Task::Book)
                        .collect()
                }
            };
            let timeout = seconds(args.timeout)?;
            let started = Instant::now();
            let (answers, moved) = std::thread::scope(|scope| {
                let mover = args.move_bucket.zip(args.to_group).map(|(bucket, group)| {
                    let config = &config;
                    scope.spawn(move || {
                        // Let the bookings get going, then move under them
                        // (a benchmark's warm-up: the move must start while
                        // the client is mid-stream, not before).
                        std::thread::sleep(Duration::from_millis(300));
                        let asked = Instant::now();
                        let code = change(
                            config,
                            Msg::MoveBucket {
                                bucket: Bucket(bucket),
                                group: GroupId(group),
                            },
                            Bucket(bucket),
                            timeout,
                            |before, now| now.group.0 == group && now.epoch > before.epoch,
                        );
                        (code, asked.elapsed())
                    })
                });
                let answers = client::run_tasks_timed(&config, tasks, timeout);
                (
                    answers,
                    mover.map(|mover| mover.join().expect("the mover thread")),
                )
            });
            let answers = answers?;
            let elapsed = started.elapsed().as_secs_f64();
            if let Some((code, took)) = moved {
                if code? != 0 {
                    println!("the move did not complete");
                    return Ok(Ending::Unreachable.exit_code());
                }
                println!(
                    "the move completed {:.0} ms after it was asked for",
                    took.as_secs_f64() * 1000.0
                );
            }
            let Some(answers) = answers else {
                println!(
                    "unreachable: the bookings did not finish within {}s",
                    args.timeout
                );
                return Ok(Ending::Unreachable.exit_code());
            };
            // A booking ends with its confirm's answer and the next one
            // starts right then: its latency is the gap between the two.
            let mut latencies = Vec::new();
            let mut confirmed = 0;
            let mut previous = started;
            for (answer, at) in &answers {
                if let Msg::Reply { outcome, .. } = answer {
                    if *outcome == Outcome::Held {
                        continue;
                    }
                    if *outcome == Outcome::Confirmed {
                        confirmed += 1;
                    }
                }
                latencies.push(at.duration_since(previous));
                previous = *at;
            }
            latencies.sort();
            let percentile = |p: f64| {
                latencies
                    .get(((latencies.len() as f64 * p).ceil() as usize).saturating_sub(1))
                    .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
            };
            println!(
                "{confirmed} of {} bookings confirmed in {elapsed:.2}s by one client: {:.0} confirmed bookings/s; latency of a booking (hold and confirm, fsync on) p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                args.bookings,
                confirmed as f64 / elapsed,
                percentile(0.50),
                percentile(0.99),
                percentile(1.0),
            );
            Ok(if confirmed == args.bookings as usize {
                0
            } else {
                1
            })
        }
        Command::Failover(args) => {
            let config = ClusterConfig::load(&args.config.config)?;
            check_bucket(&config, args.bucket)?;
            let bucket = Bucket(args.bucket);
            change(
                &config,
                Msg::Failover { bucket },
                bucket,
                seconds(args.timeout)?,
                |before, now| now.epoch > before.epoch,
            )
        }
    }
}

fn check_bucket(config: &ClusterConfig, bucket: u32) -> Result<()> {
    if bucket >= config.buckets {
        anyhow::bail!(
            "the cluster has buckets 0 to {}; there is no bucket {bucket}",
            config.buckets - 1
        );
    }
    Ok(())
}

/// Runs one task on the unit `args` names and prints the answers.
fn unit_task(args: &UnitArgs, task: impl FnOnce(InventoryUnit) -> Task) -> Result<u8> {
    let config = ClusterConfig::load(&args.config.config)?;
    if args.trip.is_empty() || args.cabin.is_empty() {
        anyhow::bail!("--trip and --cabin must not be empty");
    }
    let unit = InventoryUnit::new(args.trip.as_str(), args.cabin.as_str());
    let answers = client::run_tasks(&config, vec![task(unit)], seconds(args.timeout)?)?;
    Ok(report_answers(answers, args.timeout).exit_code())
}

/// Prints one line per answer; says how the command ended.
fn report_answers(answers: Option<Vec<Msg>>, timeout: f64) -> Ending {
    let Some(answers) = answers else {
        println!("unreachable: no answer from the cluster within {timeout}s");
        return Ending::Unreachable;
    };
    let mut ending = Ending::Done;
    for answer in answers {
        match answer {
            Msg::Reply {
                bucket,
                epoch,
                position,
                token,
                unit,
                outcome,
            } => {
                let at = format!("bucket {} at {epoch}, {position}", bucket.0);
                let token = token_text(token, bucket);
                match outcome {
                    Outcome::Held => println!("held: {unit}, hold {token} ({at})"),
                    Outcome::Confirmed => println!("confirmed: {unit}, booking {token} ({at})"),
                    Outcome::Refused(reason) => {
                        println!("refused: {unit}: {reason} ({token}, {at})");
                        ending = Ending::Refused;
                    }
                }
            }
            Msg::NotDecided { bucket, token, .. } => {
                println!(
                    "not decided: {} has no outcome and none can appear any more; resending the action decides it",
                    token_text(token, bucket)
                );
                ending = Ending::Refused;
            }
            other => println!("unexpected answer: {other}"),
        }
    }
    ending
}

/// Asks the controller for a change of `bucket` and waits until the map
/// shows it (`changed(before, now)`), resending the request each second.
fn change(
    config: &ClusterConfig,
    msg: Msg,
    bucket: Bucket,
    timeout: Duration,
    changed: impl Fn(&berth_model::BucketPlacement, &berth_model::BucketPlacement) -> bool,
) -> Result<u8> {
    let deadline = Instant::now() + timeout;
    let placement_now = |wait: Duration| -> Result<Option<berth_model::BucketPlacement>> {
        Ok(match client::controller_report(config, wait)? {
            Some(Report::Controller { map, .. }) => map.placement(bucket).cloned(),
            _ => None,
        })
    };
    let Some(before) = placement_now(Duration::from_secs(2))? else {
        println!(
            "unreachable: the controller at {} does not answer",
            config.controller.addr
        );
        return Ok(Ending::Unreachable.exit_code());
    };
    let mut next_send = Instant::now();
    while Instant::now() < deadline {
        if Instant::now() >= next_send {
            client::send_to_controller(config, msg.clone())?;
            next_send = Instant::now() + Duration::from_secs(1);
        }
        if let Some(now) = placement_now(Duration::from_millis(300))? {
            if changed(&before, &now) {
                println!(
                    "{}: {} → {} (leader {})",
                    bucket,
                    before,
                    now,
                    config.name_of(now.leader)
                );
                return Ok(0);
            }
        }
        // Polling: the controller announces changes only to replicas.
        std::thread::sleep(Duration::from_millis(100));
    }
    println!(
        "unreachable: {bucket} did not change within {}s",
        timeout.as_secs_f64()
    );
    Ok(Ending::Unreachable.exit_code())
}
