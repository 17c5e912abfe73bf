//! `berth bench`: one client books fresh cabins one after another and
//! prints confirmed bookings per second and the latency of a booking;
//! optionally it moves the bucket it books in meanwhile (the write pause
//! of a cutover under load).

use super::args::{check_bucket, seconds, ConfigArg};
use super::operate::move_bucket;
use anyhow::Result;
use berth::client::{self, Ending, Run, Session};
use berth_model::hashing::bucket_of;
use berth_model::messages::Reply;
use berth_model::{Bucket, Customer, GroupId, InventoryUnit, Msg, Outcome, Task};
use clap::Args;
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct BenchArgs {
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

/// `berth bench`.
pub fn bench(args: &BenchArgs) -> Result<u8> {
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
