//! `berth bench`: booking sessions book fresh cabins and the command
//! prints confirmed bookings and committed writes per second and the
//! latency of a booking. `--clients N` runs N sessions at once (closed
//! loop), `--rate R` offers R bookings a second whatever the answers
//! (open loop); `bench/vs-etcd.sh` runs the same load against etcd. With
//! `--move-bucket` one client books in a bucket while it is moved (the
//! write pause of a cutover under load).

use super::args::{check_bucket, seconds, ConfigArg};
use super::operate::move_bucket;
use anyhow::{bail, Result};
use berth::client::{self, Ending, Run, Session};
use berth::config::ClusterConfig;
use berth::load::{self, BerthTarget, Plan, Report};
use berth_model::hashing::bucket_of;
use berth_model::messages::Reply;
use berth_model::{Bucket, Customer, GroupId, InventoryUnit, Msg, Outcome, Task};
use clap::Args;
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// The cluster configuration (DIR/cluster.toml).
    #[command(flatten)]
    config: ConfigArg,
    /// How many cabins to book (in all, over every client).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    bookings: u32,
    /// Booking sessions at once, each booking its next cabin when the last is answered.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=4096))]
    clients: u32,
    /// Offer this many bookings a second in all, shared out among the clients, whatever the answers (open loop); latency counts from when each booking was due.
    #[arg(long, conflicts_with = "move_bucket")]
    rate: Option<f64>,
    /// Count a booking unanswered after this many seconds as timed out and go on.
    #[arg(long, default_value_t = 15.0)]
    patience: f64,
    /// Print the figures as one JSON object.
    #[arg(long)]
    json: bool,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 300.0)]
    timeout: f64,
    /// Book only cabins of this bucket and move it to `--to-group` while booking (measures the write pause of a cutover under load; one client).
    #[arg(long, requires = "to_group", conflicts_with = "clients")]
    move_bucket: Option<u32>,
    /// Book only cabins of this bucket (makes it hot, for `status --hot` and `rebalance`).
    #[arg(long, conflicts_with = "move_bucket")]
    bucket: Option<u32>,
    /// The group `--move-bucket` goes to.
    #[arg(long, requires = "move_bucket")]
    to_group: Option<u32>,
}

/// `berth bench`.
pub fn bench(args: &BenchArgs) -> Result<u8> {
    // Fresh cabins on a trip of their own, so that each run books
    // what it measures.
    let trip = format!("BENCH-{:08x}", fastrand::u32(..));
    let plan = Plan {
        clients: args.clients as usize,
        bookings: args.bookings as usize,
        rate: match args.rate {
            Some(rate) if !(rate.is_finite() && rate > 0.0) => {
                bail!("--rate {rate} is not a positive number of bookings a second")
            }
            rate => rate,
        },
        patience: seconds(args.patience)?,
        deadline: seconds(args.timeout)?,
    };
    let config = args.config.load()?;
    if args.move_bucket.is_some() {
        return bench_move(args, &config, &trip);
    }
    let units = cabins(&config, &trip, args.bucket, plan.bookings)?;
    let target = BerthTarget {
        config: &config,
        units: &|n| units(n),
        customer: Customer::new("bench"),
    };
    let report = load::drive(&target, &plan, |line| eprintln!("{line}"))?;
    print_report(&report, args.json)?;
    Ok(if report.confirmed == args.bookings as u64 {
        0
    } else {
        1
    })
}

fn print_report(report: &Report, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(report)?);
    } else {
        println!("{report}");
    }
    Ok(())
}

/// The cabins a run books: the n-th is the n-th fresh cabin of `trip`,
/// or with `bucket`, of those of the trip that hash into it (found before
/// the run, so that the search is not timed).
fn cabins(
    config: &ClusterConfig,
    trip: &str,
    bucket: Option<u32>,
    bookings: usize,
) -> Result<Box<dyn Fn(usize) -> InventoryUnit + Sync>> {
    let trip = trip.to_owned();
    let unit = move |n: usize| InventoryUnit::new(trip.as_str(), format!("C{n}"));
    let Some(bucket) = bucket else {
        return Ok(Box::new(unit));
    };
    check_bucket(config, bucket)?;
    let units: Vec<InventoryUnit> = (0..)
        .map(unit)
        .filter(|unit| bucket_of(unit, config.buckets).0 == bucket)
        .take(bookings)
        .collect();
    Ok(Box::new(move |n| units[n].clone()))
}

/// One client books cabins of `--move-bucket` while the bucket moves.
fn bench_move(args: &BenchArgs, config: &ClusterConfig, trip: &str) -> Result<u8> {
    let (Some(bucket), Some(group)) = (args.move_bucket, args.to_group) else {
        unreachable!("clap requires --to-group with --move-bucket");
    };
    let units = cabins(config, trip, Some(bucket), args.bookings as usize)?;
    let tasks: Vec<Task> = (0..args.bookings as usize)
        .map(|n| Task::Book(units(n)))
        .collect();
    let timeout = seconds(args.timeout)?;
    let started = Instant::now();
    let (answers, moved) = std::thread::scope(|scope| {
        let mover = scope.spawn(move || {
            // Let the bookings get going, then move under them (a
            // benchmark's warm-up: the move must start while the client
            // is mid-stream, not before).
            std::thread::sleep(Duration::from_millis(300));
            let asked = Instant::now();
            let code = move_bucket(config, Bucket(bucket), GroupId(group), timeout);
            (code, asked.elapsed())
        });
        let session = Session {
            customer: Customer::new("bench"),
            ..Session::default()
        };
        let answers = client::run_tasks_timed(config, &session, tasks, timeout);
        (answers, mover.join().expect("the mover thread"))
    });
    let answers = answers?;
    let elapsed = started.elapsed().as_secs_f64();
    let (code, took) = moved;
    if code? != 0 {
        println!("the move did not complete");
        return Ok(Ending::Unreachable.exit_code());
    }
    println!(
        "the move completed {:.0} ms after it was asked for",
        took.as_secs_f64() * 1000.0
    );
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
        if let Msg::Reply(Reply { outcome, .. }) = answer {
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
