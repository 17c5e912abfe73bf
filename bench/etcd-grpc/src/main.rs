//! `berth-bench-etcd`: the bookings `berth bench` makes, made in etcd
//! over its native gRPC API, by the same load driver (`berth::load`):
//! the same sessions, clock, open or closed loop and percentiles, so that
//! `bench/vs-etcd.sh` compares the two systems and nothing else.
//!
//! A booking is two committed writes, as in berth: the hold is a
//! transaction that creates the cabin's key only if it does not exist (a
//! conditional write, as berth's hold is), the confirm puts it again.
//! Each session has its own connection, to the endpoints in turn.

use anyhow::{bail, Context, Result};
use berth::load::{self, Booked, Plan, Target};
use clap::Parser;
use etcd_client::{Client, Compare, CompareOp, Txn, TxnOp};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
struct Args {
    /// etcd's client endpoints, comma-separated (http://host:port).
    #[arg(long)]
    endpoints: String,
    /// How many cabins to book, in all.
    #[arg(long, default_value_t = 500)]
    bookings: usize,
    /// Sessions at once (closed loop).
    #[arg(long, default_value_t = 1)]
    clients: usize,
    /// Offer this many bookings a second in all (open loop).
    #[arg(long)]
    rate: Option<f64>,
    /// A booking unanswered after this many seconds counts as timed out.
    #[arg(long, default_value_t = 15.0)]
    patience: f64,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 300.0)]
    timeout: f64,
    /// Print the figures as one JSON object.
    #[arg(long)]
    json: bool,
}

struct Etcd {
    endpoints: Vec<String>,
    prefix: String,
    opened: AtomicUsize,
}

struct Session {
    runtime: tokio::runtime::Runtime,
    client: Client,
}

impl Target for Etcd {
    type Session = Session;

    fn name(&self) -> &'static str {
        "etcd"
    }

    fn open(&self) -> Result<Session> {
        let n = self.opened.fetch_add(1, Ordering::Relaxed);
        let endpoint = self.endpoints[n % self.endpoints.len()].clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let client = runtime
            .block_on(Client::connect([endpoint.as_str()], None))
            .with_context(|| format!("cannot connect to etcd at {endpoint}"))?;
        Ok(Session { runtime, client })
    }

    fn book(&self, session: &mut Session, n: usize, until: Instant) -> Result<Booked> {
        let key = format!("{}/C{n}", self.prefix);
        let left = until.saturating_duration_since(Instant::now());
        let client = &mut session.client;
        let booking = async {
            let hold = Txn::new()
                .when([Compare::create_revision(key.as_str(), CompareOp::Equal, 0)])
                .and_then([TxnOp::put(key.as_str(), "held by bench", None)]);
            if !client.txn(hold).await?.succeeded() {
                return Ok::<_, etcd_client::Error>(Booked::Refused { writes: 0 });
            }
            client
                .put(key.as_str(), "confirmed for bench", None)
                .await?;
            Ok(Booked::Confirmed { writes: 2 })
        };
        match session
            .runtime
            .block_on(async { tokio::time::timeout(left, booking).await })
        {
            Ok(booked) => Ok(booked?),
            // Whether the hold committed is unknown; counted as neither.
            Err(_) => Ok(Booked::TimedOut { writes: 0 }),
        }
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.clients == 0 || args.bookings == 0 {
        bail!("a run needs at least one client and one booking");
    }
    let target = Etcd {
        endpoints: args.endpoints.split(',').map(str::to_owned).collect(),
        prefix: format!("/berth-bench/BENCH-{:08x}", fastrand::u32(..)),
        opened: AtomicUsize::new(0),
    };
    let plan = Plan {
        clients: args.clients,
        bookings: args.bookings,
        rate: args.rate,
        patience: Duration::from_secs_f64(args.patience),
        deadline: Duration::from_secs_f64(args.timeout),
    };
    let report = load::drive(&target, &plan, |line| eprintln!("{line}"))?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("{report}");
    }
    Ok(())
}
