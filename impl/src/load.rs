//! Load for `berth bench`: many booking sessions at once in one process.
//!
//! Each session is a thread with its own socket. In the closed loop a
//! session books its next cabin as soon as the last one is answered; with
//! a rate (open loop) bookings are due at fixed times, shared out among
//! the sessions, and a booking's latency counts from when it was due, so
//! that a slow answer delays the measurement of everything queued behind
//! it instead of hiding it (coordinated omission).
//!
//! The driver knows nothing of berth: a [`Target`] books one cabin in a
//! session. [`BerthTarget`] books through the model's `ClientActor`;
//! `bench/etcd-grpc` books the same way in etcd, so that both systems are
//! measured by the same clients, clocks and percentiles.

use crate::client::{client_socket, outsider_auth};
use crate::config::{controller_id, ClusterConfig};
use crate::runtime::Runtime;
use anyhow::{bail, Result};
use berth_model::messages::Reply;
use berth_model::{
    BerthActor, ClientActor, Customer, InventoryUnit, Msg, NodeState, Outcome, PlacementMap, Task,
};
use serde::Serialize;
use stateright::actor::Id;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What to run.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Concurrent sessions.
    pub clients: usize,
    /// Bookings in all.
    pub bookings: usize,
    /// Bookings started per second in all (open loop); `None`: each
    /// session books as fast as it is answered (closed loop).
    pub rate: Option<f64>,
    /// A booking not answered within this counts as timed out; its session
    /// goes on with the next.
    pub patience: Duration,
    /// The whole run stops after this.
    pub deadline: Duration,
}

/// How one booking ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Booked {
    /// Confirmed, after `writes` committed writes (hold and confirm).
    Confirmed { writes: u32 },
    /// Refused, after `writes` committed writes.
    Refused { writes: u32 },
    /// No final answer in time: its outcome is unknown to the client.
    TimedOut { writes: u32 },
}

impl Booked {
    fn writes(self) -> u32 {
        match self {
            Booked::Confirmed { writes }
            | Booked::Refused { writes }
            | Booked::TimedOut { writes } => writes,
        }
    }
}

/// A system bookings are made in.
pub trait Target: Sync {
    /// One session's connection and state.
    type Session;
    /// What the report calls it.
    fn name(&self) -> &'static str;
    /// Opens a session.
    fn open(&self) -> Result<Self::Session>;
    /// Books cabin number `n`, giving up at `until`.
    fn book(&self, session: &mut Self::Session, n: usize, until: Instant) -> Result<Booked>;
}

/// The figures of one run (`berth bench --json` prints it).
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub target: &'static str,
    pub clients: usize,
    pub rate: Option<f64>,
    pub bookings: usize,
    pub confirmed: u64,
    pub refused: u64,
    pub timeouts: u64,
    /// Bookings not started before the deadline.
    pub not_started: u64,
    pub seconds: f64,
    /// Committed writes (a booking is two: the hold and the confirm).
    pub writes: u64,
    pub bookings_per_second: f64,
    pub writes_per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rate = match self.rate {
            Some(rate) => format!(", offered {rate:.0} bookings/s"),
            None => String::new(),
        };
        write!(
            f,
            "{}: {} of {} bookings confirmed in {:.2}s by {} clients{rate}: {:.0} confirmed bookings/s, {:.0} committed writes/s; latency of a booking p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms; {} refused, {} timed out",
            self.target,
            self.confirmed,
            self.bookings,
            self.seconds,
            self.clients,
            self.bookings_per_second,
            self.writes_per_second,
            self.p50_ms,
            self.p99_ms,
            self.p999_ms,
            self.max_ms,
            self.refused,
            self.timeouts,
        )?;
        if self.not_started > 0 {
            write!(f, "; {} not started by the deadline", self.not_started)?;
        }
        Ok(())
    }
}

/// Counters the sessions bump and the progress line reads.
#[derive(Default)]
struct Tally {
    confirmed: AtomicU64,
    refused: AtomicU64,
    timeouts: AtomicU64,
    writes: AtomicU64,
}

/// Runs `plan` against `target`; `progress` gets a line about once a
/// second.
pub fn drive<T: Target>(target: &T, plan: &Plan, progress: impl Fn(&str) + Sync) -> Result<Report> {
    if plan.clients == 0 || plan.bookings == 0 {
        bail!("a run needs at least one client and one booking");
    }
    let next = AtomicUsize::new(0);
    let tally = Tally::default();
    let latencies = Mutex::new(Vec::with_capacity(plan.bookings));
    let finished = AtomicBool::new(false);
    let started = Instant::now();
    let deadline = started + plan.deadline;
    let sessions: Vec<Result<()>> = std::thread::scope(|scope| {
        let reporter = scope.spawn(|| {
            let mut last = 0;
            while !finished.load(Ordering::Relaxed) {
                // The progress line's period; the stop flag is looked at
                // every 100 ms so the run ends promptly.
                for _ in 0..10 {
                    std::thread::sleep(Duration::from_millis(100));
                    if finished.load(Ordering::Relaxed) {
                        return;
                    }
                }
                let confirmed = tally.confirmed.load(Ordering::Relaxed);
                progress(&format!(
                    "{:.0}s: {confirmed} confirmed ({}/s), {} refused, {} timed out",
                    started.elapsed().as_secs_f64(),
                    confirmed - last,
                    tally.refused.load(Ordering::Relaxed),
                    tally.timeouts.load(Ordering::Relaxed),
                ));
                last = confirmed;
            }
        });
        let handles: Vec<_> = (0..plan.clients)
            .map(|_| {
                scope.spawn(|| -> Result<()> {
                    let mut session = target.open()?;
                    let mut mine = Vec::new();
                    loop {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        if n >= plan.bookings {
                            break;
                        }
                        let due = match plan.rate {
                            Some(rate) => started + Duration::from_secs_f64(n as f64 / rate),
                            None => Instant::now(),
                        };
                        if due >= deadline {
                            break;
                        }
                        if let Some(wait) = due.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait); // open loop: not due yet
                        }
                        let until = (Instant::now() + plan.patience).min(deadline);
                        let booked = target.book(&mut session, n, until)?;
                        mine.push(due.elapsed());
                        tally
                            .writes
                            .fetch_add(booked.writes().into(), Ordering::Relaxed);
                        let counter = match booked {
                            Booked::Confirmed { .. } => &tally.confirmed,
                            Booked::Refused { .. } => &tally.refused,
                            Booked::TimedOut { .. } => &tally.timeouts,
                        };
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                    latencies.lock().expect("no session panics").extend(mine);
                    Ok(())
                })
            })
            .collect();
        let results = handles
            .into_iter()
            .map(|handle| handle.join().expect("a session thread panicked"))
            .collect();
        finished.store(true, Ordering::Relaxed);
        reporter.join().expect("the progress thread panicked");
        results
    });
    for session in sessions {
        session?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let mut latencies = latencies.into_inner().expect("no session panics");
    latencies.sort();
    let percentile = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p).ceil() as usize).saturating_sub(1))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    let confirmed = tally.confirmed.into_inner();
    let writes = tally.writes.into_inner();
    Ok(Report {
        target: target.name(),
        clients: plan.clients,
        rate: plan.rate,
        bookings: plan.bookings,
        confirmed,
        refused: tally.refused.into_inner(),
        timeouts: tally.timeouts.into_inner(),
        not_started: (plan.bookings - latencies.len()) as u64,
        seconds,
        writes,
        bookings_per_second: confirmed as f64 / seconds,
        writes_per_second: writes as f64 / seconds,
        p50_ms: percentile(0.50),
        p99_ms: percentile(0.99),
        p999_ms: percentile(0.999),
        max_ms: percentile(1.0),
    })
}

/// Bookings in a berth cluster: each through a `ClientActor` (hold, then
/// confirm, retried with the same token), on the session's socket.
pub struct BerthTarget<'a> {
    pub config: &'a ClusterConfig,
    /// The cabins: `units(n)` is booking `n`'s.
    pub units: &'a (dyn Fn(usize) -> InventoryUnit + Sync),
    pub customer: Customer,
}

/// A berth session: its runtime (socket, keys) and the newest map it saw.
pub struct BerthSession {
    runtime: Option<Runtime>,
    map: PlacementMap,
}

impl Target for BerthTarget<'_> {
    type Session = BerthSession;

    fn name(&self) -> &'static str {
        "berth"
    }

    fn open(&self) -> Result<BerthSession> {
        Ok(BerthSession {
            runtime: None,
            map: self.config.initial_map(),
        })
    }

    fn book(&self, session: &mut BerthSession, n: usize, until: Instant) -> Result<Booked> {
        let actor = ClientActor {
            // A client id per booking, from a space large enough that two
            // never meet: its tokens are this booking's alone.
            client: fastrand::u64(1..),
            controller: controller_id(),
            customer: self.customer.clone(),
            tasks: vec![Task::Book((self.units)(n))],
            observed: Default::default(),
            reader: None,
            initial_map: session.map.clone(),
            regional_replica: None,
            config: self.config.protocol(),
        };
        let done_actor = actor.clone();
        let runtime = match &mut session.runtime {
            Some(runtime) => {
                runtime.restart(BerthActor::Client(actor))?;
                runtime
            }
            None => {
                let socket = client_socket(self.config)?;
                let SocketAddr::V4(addr) = socket.local_addr()? else {
                    bail!("berth clients use IPv4");
                };
                session.runtime.insert(Runtime::start(
                    Id::from(addr),
                    BerthActor::Client(actor),
                    socket,
                    self.config.clone(),
                    None,
                    None,
                    outsider_auth(self.config)?,
                )?)
            }
        };
        let stop = AtomicBool::new(false);
        let done = runtime.run(&stop, Some(until), |state| match state {
            NodeState::Client(client) => client.done(&done_actor),
            _ => true,
        })?;
        let NodeState::Client(client) = &runtime.state else {
            unreachable!("a client runs a client state");
        };
        session.map = client.map.clone();
        let mut writes = 0;
        let mut refused = false;
        for answer in &client.answers {
            if let Msg::Reply(Reply { outcome, .. }) = answer {
                match outcome {
                    Outcome::Held | Outcome::Confirmed => writes += 1,
                    Outcome::Refused(_) => refused = true,
                }
            }
        }
        let confirmed = client.answers.iter().any(|answer| {
            matches!(
                answer,
                Msg::Reply(Reply {
                    outcome: Outcome::Confirmed,
                    ..
                })
            )
        });
        Ok(match (done, confirmed, refused) {
            (true, true, _) => Booked::Confirmed { writes },
            (true, false, true) => Booked::Refused { writes },
            _ => Booked::TimedOut { writes },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A target that answers from a script, to test the driver alone.
    struct Scripted;

    impl Target for Scripted {
        type Session = ();
        fn name(&self) -> &'static str {
            "scripted"
        }
        fn open(&self) -> Result<()> {
            Ok(())
        }
        fn book(&self, _: &mut (), n: usize, _: Instant) -> Result<Booked> {
            Ok(match n % 10 {
                0 => Booked::Refused { writes: 0 },
                1 => Booked::TimedOut { writes: 1 },
                _ => Booked::Confirmed { writes: 2 },
            })
        }
    }

    /// Goal: every booking is counted once, by how it ended, and its
    /// writes are summed.
    #[test]
    fn the_driver_counts_every_booking_once() {
        let plan = Plan {
            clients: 7,
            bookings: 1000,
            rate: None,
            patience: Duration::from_secs(1),
            deadline: Duration::from_secs(60),
        };
        let report = drive(&Scripted, &plan, |_| {}).unwrap();
        assert_eq!(
            (report.confirmed, report.refused, report.timeouts),
            (800, 100, 100)
        );
        assert_eq!(report.writes, 800 * 2 + 100);
        assert_eq!(report.not_started, 0);
        assert!(report.p50_ms <= report.p99_ms && report.p99_ms <= report.max_ms);
    }

    /// Goal: in the open loop bookings start at the offered rate, so a run
    /// of N bookings at R/s lasts about N/R seconds however fast the
    /// target answers; a deadline before the end leaves the rest unstarted.
    #[test]
    fn the_open_loop_keeps_to_its_rate() {
        let plan = Plan {
            clients: 4,
            bookings: 50,
            rate: Some(100.0),
            patience: Duration::from_secs(1),
            deadline: Duration::from_secs(60),
        };
        let report = drive(&Scripted, &plan, |_| {}).unwrap();
        assert!(report.seconds >= 0.49, "{report}");
        let cut = Plan {
            deadline: Duration::from_millis(250),
            ..plan
        };
        let report = drive(&Scripted, &cut, |_| {}).unwrap();
        assert!(
            report.not_started > 0 && report.not_started < 50,
            "{report}"
        );
    }
}
