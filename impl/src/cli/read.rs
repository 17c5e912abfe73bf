//! Reading: `read` (a session read of one cabin, at a follower that has
//! caught up with the caller, else at the leader), and the change-stream
//! views at the projector, `search` and `trips`.

use super::args::{check_bucket, seconds, CabinArgs, ConfigArg};
use super::book::report_answers;
use anyhow::Result;
use berth::client::{self, Ending, Session};
use berth::wire::Datagram;
use berth_model::hashing::bucket_of;
use berth_model::{PositionToken, Task};
use clap::Args;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct ReadArgs {
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
pub struct SearchArgs {
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
pub struct TripsArgs {
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

/// Parses position tokens given on the command line.
fn position_tokens(texts: &[String]) -> Result<Vec<PositionToken>> {
    texts
        .iter()
        .map(|text| text.parse::<PositionToken>().map_err(anyhow::Error::msg))
        .collect()
}

/// `berth read`: a session read of one cabin.
pub fn read(args: &ReadArgs) -> Result<u8> {
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
pub fn search(args: &SearchArgs) -> Result<u8> {
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
pub fn trips(args: &TripsArgs) -> Result<u8> {
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
