//! Operating a cluster: `status` (the map, positions, lag, who is down;
//! or the hottest buckets), `move` (live cutover), `failover` (planned),
//! and `rebalance` (plan moves from the write load, then carry them out).

use super::args::{check_bucket, seconds, ConfigArg};
use anyhow::Result;
use berth::client::{self, Ending};
use berth::config::ClusterConfig;
use berth::status;
use berth::wire::Report;
use berth_model::placement::MAX_BUCKETS;
use berth_model::rebalance;
use berth_model::{Bucket, BucketPlacement, GroupId, Msg};
use clap::Args;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// How long to wait for members to answer, in seconds.
    #[arg(long, default_value_t = 1.0)]
    timeout: f64,
    /// List the hottest buckets (client writes per second over the last 10 s) and their share of their group's writes, instead of the map.
    #[arg(long)]
    hot: bool,
    /// Print the status as JSON (for tools; the fields are listed in docs/operations.md).
    #[arg(long, conflicts_with = "hot")]
    json: bool,
    /// How many buckets --hot lists.
    #[arg(long, default_value_t = 10, requires = "hot", value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_BUCKETS)))]
    top: u32,
}

#[derive(Args, Debug)]
pub struct MoveArgs {
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
pub struct FailoverArgs {
    #[command(flatten)]
    config: ConfigArg,
    #[arg(long)]
    bucket: u32,
    /// Give up waiting after this many seconds.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
}

#[derive(Args, Debug)]
pub struct RebalanceArgs {
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

/// `berth status`, and with `--hot` the hottest buckets.
pub fn status(args: &StatusArgs) -> Result<u8> {
    let config = args.config.load()?;
    if args.hot {
        print!(
            "{}",
            status::hot(&config, seconds(args.timeout)?, args.top as usize)?
        );
    } else {
        print!(
            "{}",
            status::status(&config, seconds(args.timeout)?, args.json)?
        );
    }
    Ok(0)
}

/// `berth move` (`move_`: `move` is a keyword).
pub fn move_(args: &MoveArgs) -> Result<u8> {
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

/// `berth failover`: done once the bucket's epoch has moved on.
pub fn failover(args: &FailoverArgs) -> Result<u8> {
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

/// Moves `bucket` to `group` (live cutover), waiting up to `timeout` until
/// the map shows it there: `berth move`, and each move of `berth
/// rebalance`. Returns the exit code.
pub fn move_bucket(
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
pub fn rebalance(args: &RebalanceArgs) -> Result<u8> {
    let config = args.config.load()?;
    let timeout = seconds(args.timeout)?;
    let reports = client::request_status(
        &config,
        &status::members(&config),
        seconds(args.status_timeout)?,
    )?;
    let Some(load) = status::Load::of(&config, &reports) else {
        return Ok(controller_silent(&config));
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
    let loads = |loads: &BTreeMap<GroupId, u64>| {
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
    changed: impl Fn(&BucketPlacement, &BucketPlacement) -> bool,
) -> Result<u8> {
    let deadline = Instant::now() + timeout;
    let placement_now = |wait: Duration| -> Result<Option<BucketPlacement>> {
        Ok(match client::controller_report(config, wait)? {
            Some(Report::Controller { map, .. }) => map.placement(bucket).cloned(),
            _ => None,
        })
    };
    let Some(before) = placement_now(Duration::from_secs(2))? else {
        return Ok(controller_silent(config));
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

/// Says that the controller does not answer; returns the exit code.
fn controller_silent(config: &ClusterConfig) -> u8 {
    println!(
        "unreachable: the controller at {} does not answer",
        config.controller.addr
    );
    Ending::Unreachable.exit_code()
}
