//! `berth`: launch a cluster, run its members, book on it, inspect it,
//! move buckets and fail them over.

use anyhow::{Context, Result};
use berth::client::{self, Ending, InFlight, Run, Session};
use berth::cluster::{self, Layout};
use berth::config::{ClusterConfig, Member};
use berth::tokens::{parse_token, token_text};
use berth::wire::Datagram;
use berth::wire::Report;
use berth::{member, status};
use berth_model::hashing::bucket_of;
use berth_model::placement::MAX_BUCKETS;
use berth_model::rebalance;
use berth_model::{Bucket, Customer, GroupId, InventoryUnit, Msg, Outcome, PositionToken, Task};
use clap::{Args, Parser, Subcommand};
use std::path::{Path, PathBuf};
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
    /// Measure: one client books N fresh cabins one after another; prints confirmed bookings per second.
    Bench(BenchArgs),
    /// Create the cluster's keys in DIR/keys (member, operator, client; owner-only) where missing: `cluster up` does this itself, a cluster run by hand needs it once.
    Keys(KeysArgs),
    /// Fuzz the receive path: a whole cluster in this process fed real, mutated, forged and replayed datagrams (no network); fails on the first panic, with the input.
    Fuzz(FuzzArgs),
}

#[derive(Args, Debug)]
struct FuzzArgs {
    /// How many inputs.
    #[arg(long, default_value_t = 10_000_000)]
    inputs: u64,
    /// The random seed (a run is repeatable from its seed).
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Args, Debug)]
struct KeysArgs {
    /// The cluster's directory (the keys go to DIR/keys).
    #[arg(long)]
    dir: PathBuf,
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
    /// Book only cabins of this bucket (makes it hot, for `status --hot` and `rebalance`).
    #[arg(long, conflicts_with = "move_bucket")]
    bucket: Option<u32>,
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
struct ConfigArg {
    /// The cluster configuration (DIR/cluster.toml).
    #[arg(long)]
    config: PathBuf,
    /// The directory of the cluster's keys (default: DIR/keys, beside the configuration).
    #[arg(long)]
    keys: Option<PathBuf>,
}

impl ConfigArg {
    /// The configuration, with `--keys` applied.
    fn load(&self) -> Result<ClusterConfig> {
        let mut config = ClusterConfig::load(&self.config)?;
        config.keys = self.keys.clone();
        Ok(config)
    }
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
    /// List the hottest buckets (client writes per second over the last 10 s) and their share of their group's writes, instead of the map.
    #[arg(long)]
    hot: bool,
    /// How many buckets --hot lists.
    #[arg(long, default_value_t = 10, requires = "hot", value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_BUCKETS)))]
    top: u32,
}

#[derive(Args, Debug)]
struct RebalanceArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Print the plan and stop.
    #[arg(long)]
    dry_run: bool,
    /// Propose at most this many moves.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1000))]
    max_moves: u32,
    /// Leave a spread (most minus least loaded group) of up to this percentage of the mean group load alone, and never move a bucket carrying less than that.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(0..=1000))]
    tolerance: u32,
    /// How long to wait for members to answer the status request, in seconds.
    #[arg(long, default_value_t = 1.0)]
    status_timeout: f64,
    /// Give up waiting for each move after this many seconds.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
}

#[derive(Args, Debug)]
struct CabinArgs {
    /// The trip, e.g. BCN-JFK-2026-07-14.
    #[arg(long)]
    trip: String,
    /// The cabin, e.g. C14.
    #[arg(long)]
    cabin: String,
}

impl CabinArgs {
    /// The inventory unit named, refused if a name is empty.
    fn unit(&self) -> Result<InventoryUnit> {
        if self.trip.is_empty() || self.cabin.is_empty() {
            anyhow::bail!("--trip and --cabin must not be empty");
        }
        Ok(InventoryUnit::new(self.trip.as_str(), self.cabin.as_str()))
    }
}

#[derive(Args, Debug)]
struct UnitArgs {
    #[command(flatten)]
    config: ConfigArg,
    #[command(flatten)]
    cabin: CabinArgs,
    /// Who the hold and booking are for (the key of `berth trips`).
    #[arg(long, default_value = "guest")]
    customer: String,
    /// Give up after this many seconds without an answer.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
}

#[derive(Args, Debug)]
struct ReadArgs {
    #[command(flatten)]
    config: ConfigArg,
    #[command(flatten)]
    cabin: CabinArgs,
    /// A position token you observed (b<bucket>@p<position>, as hold, confirm, book and read print it); repeatable. The read never returns older state.
    #[arg(long = "after")]
    after: Vec<String>,
    /// Read at this replica first (default: the bucket's remote follower).
    #[arg(long = "from")]
    from: Option<usize>,
    /// Give up after this many seconds without an answer.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
}

#[derive(Args, Debug)]
struct SearchArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// The route, e.g. BCN-JFK.
    #[arg(long)]
    route: String,
    /// The departure date, e.g. 2026-07-14.
    #[arg(long)]
    date: String,
    /// Give up after this many seconds without an answer.
    #[arg(long, default_value_t = 5.0)]
    timeout: f64,
}

#[derive(Args, Debug)]
struct TripsArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// The customer, as given to hold or book.
    #[arg(long)]
    customer: String,
    /// A dependency token (b<bucket>@p<position>, as confirm prints it): answer only once the view reflects it. Repeatable.
    #[arg(long = "after")]
    after: Vec<String>,
    /// How long the view may take to reflect the tokens, in seconds.
    #[arg(long, default_value_t = 5.0)]
    wait: f64,
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
                    lag_budget_ms: args.lag_budget_ms,
                },
                &stop,
            )?;
            Ok(0)
        }
        Command::Controller(args) => {
            let config = args.load()?;
            member::run(config, Member::Controller, stop_flag()?)?;
            Ok(0)
        }
        Command::Node(args) => {
            let config = args.config.load()?;
            member::run(config, Member::Replica(args.id), stop_flag()?)?;
            Ok(0)
        }
        Command::Status(args) => {
            let config = args.config.load()?;
            if args.hot {
                print!(
                    "{}",
                    status::hot(&config, seconds(args.timeout)?, args.top as usize)?
                );
            } else {
                print!("{}", status::status(&config, seconds(args.timeout)?)?);
            }
            Ok(0)
        }
        Command::Projector(args) => {
            let config = args.load()?;
            member::run_projector(config, stop_flag()?)?;
            Ok(0)
        }
        Command::Read(args) => read(&args),
        Command::Search(args) => search(&args),
        Command::Trips(args) => trips(&args),
        Command::Hold(args) => unit_task(&args, Task::Hold),
        Command::Book(args) => unit_task(&args, Task::Book),
        Command::Confirm(args) => {
            let (hold, _) = parse_token(&args.hold)?;
            unit_task(&args.unit, |unit| Task::Confirm { unit, hold })
        }
        Command::Token(args) => {
            let config = args.config.load()?;
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
                &Session::default(),
                vec![Task::Query { bucket, token }],
                seconds(args.timeout)?,
            )?;
            Ok(report_answers(answers, args.timeout, &args.config.config).exit_code())
        }
        Command::Move(args) => {
            let config = args.config.load()?;
            check_bucket(&config, args.bucket)?;
            if !config.groups.iter().any(|g| g.id == args.to_group) {
                anyhow::bail!("the cluster has no group {}", args.to_group);
            }
            move_bucket(
                &config,
                Bucket(args.bucket),
                GroupId(args.to_group),
                seconds(args.timeout)?,
            )
        }
        Command::Rebalance(args) => rebalance(&args),
        Command::Fuzz(args) => {
            let report = berth::fuzz::run(args.inputs, args.seed, Some(1_000_000))?;
            println!("{report}");
            Ok(0)
        }
        Command::Keys(args) => {
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
        Command::Bench(args) => {
            let config = args.config.load()?;
            // Fresh cabins on a trip of their own, so that each run books
            // what it measures.
            let trip = format!("BENCH-{:08x}", fastrand::u32(..));
            let units = (0..).map(|n| InventoryUnit::new(trip.as_str(), format!("C{n}")));
            let tasks: Vec<Task> = match args.move_bucket.or(args.bucket) {
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
                        let code = move_bucket(config, Bucket(bucket), GroupId(group), timeout);
                        (code, asked.elapsed())
                    })
                });
                let session = Session {
                    customer: Customer::new("bench"),
                    ..Session::default()
                };
                let answers = client::run_tasks_timed(&config, &session, tasks, timeout);
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
            let Run::Done(answers) = answers else {
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
            let config = args.config.load()?;
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
    let config = args.config.load()?;
    let unit = args.cabin.unit()?;
    if args.customer.trim().is_empty() {
        anyhow::bail!("--customer must not be empty");
    }
    let session = Session {
        customer: Customer::new(args.customer.trim()),
        ..Session::default()
    };
    let answers = client::run_tasks(&config, &session, vec![task(unit)], seconds(args.timeout)?)?;
    Ok(report_answers(answers, args.timeout, &args.config.config).exit_code())
}

/// Prints one line per answer; says how the command ended. Out of time,
/// it prints the answers received, then says so, then names the write in
/// flight and how to learn its outcome (`config` is the configuration
/// path as given, for the command it suggests).
fn report_answers(run: Run<Msg>, timeout: f64, config: &Path) -> Ending {
    let (answers, timed_out) = match run {
        Run::Done(answers) => (answers, None),
        Run::TimedOut { answers, in_flight } => (answers, Some(in_flight)),
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
                let at = format!(
                    "bucket {} at {epoch}; position token {}",
                    bucket.0,
                    PositionToken { bucket, position }
                );
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
            Msg::ReadReply {
                bucket,
                unit,
                position,
                status,
                path,
            } => {
                let status = status.map_or("available".to_owned(), |s| s.to_string());
                println!(
                    "{unit}: {status} (read from the {path}; state as of position token {})",
                    PositionToken { bucket, position }
                );
            }
            other => println!("unexpected answer: {other}"),
        }
    }
    if let Some(in_flight) = timed_out {
        println!("unreachable: no answer from the cluster within {timeout}s");
        if let Some(in_flight) = in_flight {
            println!("{}", in_flight_line(&in_flight, config));
        }
        return Ending::Unreachable;
    }
    ending
}

/// What to tell the user about a write sent and not answered in time.
fn in_flight_line(in_flight: &InFlight, config: &Path) -> String {
    let token = token_text(in_flight.token, in_flight.bucket);
    format!(
        "in flight: {}, token {token}: it may or may not have committed; `berth token {token} --config {}` tells which",
        in_flight.what,
        config.display()
    )
}

/// Parses position tokens given on the command line.
fn position_tokens(texts: &[String]) -> Result<Vec<PositionToken>> {
    texts
        .iter()
        .map(|text| text.parse::<PositionToken>().map_err(anyhow::Error::msg))
        .collect()
}

/// `berth read`: a session read of one cabin.
fn read(args: &ReadArgs) -> Result<u8> {
    let config = args.config.load()?;
    let unit = args.cabin.unit()?;
    let bucket = bucket_of(&unit, config.buckets);
    let mut session = Session::default();
    for token in position_tokens(&args.after)? {
        check_bucket(&config, token.bucket.0)?;
        let seen = session.observed.entry(token.bucket).or_default();
        *seen = (*seen).max(token.position);
    }
    if let Some(from) = args.from {
        if config.replica(from).is_none() {
            anyhow::bail!("--from {from}: the cluster has no replica {from}");
        }
        session.reader = Some(stateright::actor::Id::from(from));
    }
    if !session.observed.is_empty() && !session.observed.contains_key(&bucket) {
        println!(
            "note: {unit} is in {bucket}; the tokens given are for other buckets and do not constrain this read"
        );
    }
    let answers = client::run_tasks(
        &config,
        &session,
        vec![Task::Read(unit)],
        seconds(args.timeout)?,
    )?;
    Ok(report_answers(answers, args.timeout, &args.config.config).exit_code())
}

/// `berth search`: the search view's answer, with the data's age; over
/// the staleness budget it says so (exit 1).
fn search(args: &SearchArgs) -> Result<u8> {
    let config = args.config.load()?;
    if args.route.trim().is_empty() || args.date.trim().is_empty() {
        anyhow::bail!("--route and --date must not be empty");
    }
    let trip = format!("{}-{}", args.route.trim(), args.date.trim());
    let answer = client::ask_projector(
        &config,
        &Datagram::Search { trip: trip.clone() },
        Duration::from_millis(500),
        seconds(args.timeout)?,
    )?;
    let Some(Datagram::SearchResult(result)) = answer else {
        println!(
            "unreachable: no answer from the projector within {}s",
            args.timeout
        );
        return Ok(Ending::Unreachable.exit_code());
    };
    let budget = result.budget_ms as f64 / 1000.0;
    let fresh = result.age_ms.is_some_and(|age| age <= result.budget_ms);
    match result.age_ms {
        Some(age) if fresh => println!(
            "search {trip}: data {:.2} s old (within its {budget:.1} s staleness budget; revalidated at booking)",
            age as f64 / 1000.0
        ),
        Some(age) => println!(
            "STALE: search {trip}: data {:.2} s old, over its {budget:.1} s staleness budget (the projection is not keeping up with every bucket's leader)",
            age as f64 / 1000.0
        ),
        None => println!(
            "STALE: search {trip}: the projection has not yet caught up with every bucket's leader (staleness budget {budget:.1} s)"
        ),
    }
    let list = |cabins: &[String]| {
        if cabins.is_empty() {
            "-".to_owned()
        } else {
            cabins.join(" ")
        }
    };
    println!(
        "available ({}): {}",
        result.available.len(),
        list(&result.available)
    );
    println!("held ({}): {}", result.held.len(), list(&result.held));
    println!("sold ({}): {}", result.sold.len(), list(&result.sold));
    Ok(if fresh {
        0
    } else {
        Ending::Refused.exit_code()
    })
}

/// `berth trips`: the trips view, once it reflects the dependency tokens.
fn trips(args: &TripsArgs) -> Result<u8> {
    let config = args.config.load()?;
    if args.customer.trim().is_empty() {
        anyhow::bail!("--customer must not be empty");
    }
    let after = position_tokens(&args.after)?;
    for token in &after {
        check_bucket(&config, token.bucket.0)?;
    }
    let wait = seconds(args.wait)?;
    let request = Datagram::Trips {
        customer: args.customer.trim().to_owned(),
        after,
        wait_ms: wait.as_millis() as u64,
    };
    let answer = client::ask_projector(
        &config,
        &request,
        wait + Duration::from_millis(500),
        wait + Duration::from_secs(3),
    )?;
    let Some(Datagram::TripsResult(result)) = answer else {
        println!("unreachable: no answer from the projector");
        return Ok(Ending::Unreachable.exit_code());
    };
    if !result.missing.is_empty() {
        let missing: Vec<String> = result.missing.iter().map(ToString::to_string).collect();
        println!(
            "not yet reflected after {:.2} s: {} (the trips below may lack what those positions hold)",
            result.waited_ms as f64 / 1000.0,
            missing.join(", ")
        );
    } else if !args.after.is_empty() {
        println!(
            "reflects {} (waited {:.2} s)",
            args.after.join(", "),
            result.waited_ms as f64 / 1000.0
        );
    }
    println!("trips of {} ({}):", result.customer, result.trips.len());
    for trip in &result.trips {
        println!("  {} {} ({})", trip.unit, trip.status, trip.token);
    }
    Ok(if result.missing.is_empty() {
        0
    } else {
        Ending::Refused.exit_code()
    })
}

/// Moves `bucket` to `group` (live cutover), waiting up to `timeout` until
/// the map shows it there: `berth move`, and each move of `berth
/// rebalance`. Returns the exit code.
fn move_bucket(
    config: &ClusterConfig,
    bucket: Bucket,
    group: GroupId,
    timeout: Duration,
) -> Result<u8> {
    change(
        config,
        Msg::MoveBucket { bucket, group },
        bucket,
        timeout,
        |before, now| now.group == group && now.epoch > before.epoch,
    )
}

/// `berth rebalance`: measures, plans, prints the plan, and (unless
/// `--dry-run`) carries out its moves one after another with
/// `move_bucket`, stopping at the first that does not complete.
fn rebalance(args: &RebalanceArgs) -> Result<u8> {
    let config = args.config.load()?;
    let timeout = seconds(args.timeout)?;
    let reports = client::request_status(
        &config,
        &status::members(&config),
        seconds(args.status_timeout)?,
    )?;
    let Some(load) = status::Load::of(&config, &reports) else {
        println!(
            "unreachable: the controller at {} does not answer",
            config.controller.addr
        );
        return Ok(Ending::Unreachable.exit_code());
    };
    if !load.silent.is_empty() {
        let silent: Vec<String> = load.silent.iter().map(|id| config.name_of(*id)).collect();
        println!(
            "no answer from {}: their writes are not counted",
            silent.join(", ")
        );
    }
    let moving = load.moving.keys().copied().collect();
    let group_writes = load.group_writes(&config);
    let total: u64 = group_writes.values().sum();
    let tolerance = total * u64::from(args.tolerance) / (100 * group_writes.len().max(1) as u64);
    let plan = rebalance::plan(
        &load.map,
        &status::Load::groups(&config),
        &load.writes,
        &moving,
        rebalance::Limits {
            max_moves: args.max_moves as usize,
            tolerance,
            // A bucket lighter than the tolerated spread is not worth a
            // cutover.
            min_load: tolerance.max(1),
        },
    );
    let loads = |loads: &std::collections::BTreeMap<GroupId, u64>| {
        loads
            .iter()
            .map(|(group, writes)| format!("group {} {:.1}", group.0, status::per_second(*writes)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "group load (client writes/s, last {} s): {} (spread {:.1}; tolerated {:.1}, {}% of the mean)",
        berth::rates::WINDOW.as_secs(),
        loads(&plan.before),
        status::per_second(plan.spread_before()),
        status::per_second(tolerance),
        args.tolerance
    );
    if plan.moves.is_empty() {
        if plan.spread_before() <= tolerance {
            println!("nothing to move: the spread is within the tolerance");
        } else {
            println!("nothing to move: no bucket heavy enough to be worth a move would narrow the spread");
        }
        return Ok(0);
    }
    println!("proposed moves:");
    for (index, step) in plan.moves.iter().enumerate() {
        println!(
            "  {}. b{}: group {} → group {}, {:.1} writes/s; group {} {:.1} → {:.1}, group {} {:.1} → {:.1}",
            index + 1,
            step.bucket.0,
            step.from.0,
            step.to.0,
            status::per_second(step.load),
            step.from.0,
            status::per_second(step.from_load.0),
            status::per_second(step.from_load.1),
            step.to.0,
            status::per_second(step.to_load.0),
            status::per_second(step.to_load.1),
        );
    }
    println!(
        "after the plan: {} (spread {:.1})",
        loads(&plan.after),
        status::per_second(plan.spread_after())
    );
    if args.dry_run {
        println!("dry run: nothing moved");
        return Ok(0);
    }
    let count = plan.moves.len();
    for (index, step) in plan.moves.iter().enumerate() {
        println!(
            "move {} of {count}: b{} to group {}",
            index + 1,
            step.bucket.0,
            step.to.0
        );
        let code = move_bucket(&config, step.bucket, step.to, timeout)?;
        if code != 0 {
            println!(
                "move {} of {count} did not complete; {} not attempted",
                index + 1,
                count - index - 1
            );
            return Ok(code);
        }
    }
    println!(
        "rebalanced: {count} move{} done",
        if count == 1 { "" } else { "s" }
    );
    Ok(0)
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
    let mut link = client::ControllerLink::open(config)?;
    let mut next_send = Instant::now();
    while Instant::now() < deadline {
        if Instant::now() >= next_send {
            link.send(msg.clone())?;
            next_send = Instant::now() + Duration::from_secs(1);
        }
        if let Some(reason) = link.refusal(bucket, Duration::from_millis(20))? {
            println!("refused: the controller did not start the move of {bucket}: {reason}");
            return Ok(Ending::Refused.exit_code());
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

#[cfg(test)]
mod tests {
    use super::*;
    use berth_model::Token;

    /// Goal: a write left in flight by a timeout is named with its token
    /// and bucket, and the user is told the exact command that resolves it.
    #[test]
    fn in_flight_line_names_the_token_and_the_command() {
        let in_flight = InFlight {
            token: Token {
                client: 123,
                seq: 2,
            },
            bucket: Bucket(17),
            what: "confirm of BCN-JFK-2026-07-14/C14".to_owned(),
        };
        assert_eq!(
            in_flight_line(&in_flight, Path::new("/tmp/berth/cluster.toml")),
            "in flight: confirm of BCN-JFK-2026-07-14/C14, token T123.2@b17: it may or may not have committed; `berth token T123.2@b17 --config /tmp/berth/cluster.toml` tells which"
        );
    }
}
