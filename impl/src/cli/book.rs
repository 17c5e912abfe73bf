//! Writing, and learning what became of a write: `hold`, `book`,
//! `confirm`, `token`, and how their answers are printed (also `read`'s).

use super::args::{seconds, CabinArgs, ConfigArg};
use anyhow::Result;
use berth::client::{self, Ending, InFlight, Run, Session};
use berth::tokens::{parse_token, token_text};
use berth_model::messages::{ReadReply, Reply};
use berth_model::{Customer, InventoryUnit, Msg, Outcome, PositionToken, Task};
use clap::Args;
use std::path::Path;

#[derive(Args, Debug)]
pub struct UnitArgs {
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
pub struct ConfirmArgs {
    #[command(flatten)]
    unit: UnitArgs,
    /// The hold's token, as `berth hold` printed it.
    #[arg(long)]
    hold: String,
}

#[derive(Args, Debug)]
pub struct TokenArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// The token, as `hold`, `confirm` or `book` printed it (T<client>.<seq>@b<bucket>).
    token: String,
    /// Give up after this many seconds without an answer.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
}

/// `berth hold`.
pub fn hold(args: &UnitArgs) -> Result<u8> {
    unit_task(args, Task::Hold)
}

/// `berth book`: hold, then confirm.
pub fn book(args: &UnitArgs) -> Result<u8> {
    unit_task(args, Task::Book)
}

/// `berth confirm`: the hold's token is checked before anything else.
pub fn confirm(args: &ConfirmArgs) -> Result<u8> {
    let (hold, _) = parse_token(&args.hold)?;
    unit_task(&args.unit, |unit| Task::Confirm { unit, hold })
}

/// `berth token`: asks the token's bucket what became of its action.
pub fn token(args: &TokenArgs) -> Result<u8> {
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
pub fn report_answers(run: Run<Msg>, timeout: f64, config: &Path) -> Ending {
    let (answers, timed_out) = match run {
        Run::Done(answers) => (answers, None),
        Run::TimedOut { answers, in_flight } => (answers, Some(in_flight)),
    };
    let mut ending = Ending::Done;
    for answer in answers {
        match answer {
            Msg::Reply(Reply {
                bucket,
                epoch,
                position,
                token,
                unit,
                outcome,
            }) => {
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
            Msg::ReadReply(ReadReply {
                bucket,
                unit,
                position,
                status,
                path,
            }) => {
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

#[cfg(test)]
mod tests {
    use super::*;
    use berth_model::{Bucket, Token};

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
