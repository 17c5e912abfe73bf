//! The runtime: one `BerthActor` over one UDP socket.
//!
//! It moves bytes, timers and durable state, and decides nothing: every
//! event goes to the actor's `on_msg` / `on_timeout` (the very code the
//! checker explores), and the runtime carries out the commands it returns.
//!
//! Each turn of the loop takes a batch of events (the first datagram or
//! due timer, then whatever else is already waiting, up to `BATCH`), runs
//! them one by one, then — group commit — makes the batch's last `Save`
//! durable with one fsync, and only then sends the batch's messages. A
//! message is therefore never sent before the state it depends on is on
//! disk.
//!
//! A datagram that does not decode, is oversized, or carries a
//! member-to-member message from an address that is not a member is
//! dropped with a warning.

use crate::config::ClusterConfig;
use crate::lag::LagMeter;
use crate::projector::Projections;
use crate::rates::{self, WriteRates};
use crate::storage::Store;
use crate::wire::{self, Datagram, Report};
use anyhow::{Context, Result};
use berth_model::{BerthActor, Msg, NodeState, Storage, Timer};
use stateright::actor::{Actor, Command, Id, Out};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::io::ErrorKind;
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Events handled per batch (per fsync) at most.
const BATCH: usize = 256;
/// The longest the loop sleeps, so that a stop request is seen promptly.
const TICK: Duration = Duration::from_millis(50);

/// One actor, its socket, its timers and (for a member) its store.
pub struct Runtime {
    pub id: Id,
    actor: BerthActor,
    pub state: NodeState,
    socket: UdpSocket,
    config: ClusterConfig,
    store: Option<Store>,
    timers: BTreeMap<Timer, Instant>,
    /// The same timers ordered by deadline.
    deadlines: BTreeSet<(Instant, Timer)>,
    /// Messages to send once the batch's save is durable.
    outbox: Vec<(Id, Msg)>,
    /// The batch's latest save, not yet durable.
    unsaved: Option<Storage>,
    /// Status replies to send with the batch.
    reports: Vec<(SocketAddr, Report)>,
    misses: u8,
    buffer: Vec<u8>,
    /// Client commands committed per bucket led here (for status reports).
    rates: WriteRates,
    /// How far the followers of the buckets led here trail.
    lag: LagMeter,
    /// The projections' clocks, when this runtime is the projector.
    projections: Option<Projections>,
    /// Answers to projection queries to send with the batch.
    replies: Vec<(SocketAddr, Datagram)>,
}

/// Whether a message may come from outside the cluster (clients and
/// operators), or only from a member.
fn from_anyone(msg: &Msg) -> bool {
    matches!(
        msg,
        Msg::Request { .. }
            | Msg::Query { .. }
            | Msg::FetchMap
            | Msg::MoveBucket { .. }
            | Msg::Failover { .. }
            | Msg::Reply { .. }
            | Msg::Redirect { .. }
            | Msg::NotDecided { .. }
            | Msg::Map(_)
            | Msg::MoveRefused { .. }
            | Msg::Read { .. }
            | Msg::ReadReply { .. }
            | Msg::ReadBehind { .. }
            | Msg::Pull { .. }
            | Msg::Changes(_)
    )
}

impl Runtime {
    /// Starts `actor` as `id` on `socket`, recovering from `saved`.
    pub fn start(
        id: Id,
        actor: BerthActor,
        socket: UdpSocket,
        config: ClusterConfig,
        store: Option<Store>,
        saved: Option<Storage>,
    ) -> Result<Runtime> {
        let misses = match config.protocol().detector {
            berth_model::actor::Detector::Probes { misses } => misses,
            berth_model::actor::Detector::Anytime => 1,
        };
        let mut out = Out::new();
        let state = actor.on_start(id, &saved, &mut out);
        let mut runtime = Runtime {
            id,
            actor,
            state,
            socket,
            config,
            store,
            timers: BTreeMap::new(),
            deadlines: BTreeSet::new(),
            outbox: Vec::new(),
            unsaved: None,
            reports: Vec::new(),
            misses,
            buffer: vec![0; wire::MAX_DATAGRAM + 1],
            rates: WriteRates::new(Instant::now()),
            lag: LagMeter::default(),
            projections: None,
            replies: Vec::new(),
        };
        runtime.absorb(out);
        runtime.flush()?;
        Ok(runtime)
    }

    /// Makes this runtime (running a `SubscriberActor`) the projector: it
    /// answers search and trips queries from the subscriber's state.
    pub fn serve_projections(&mut self, projections: Projections) {
        self.projections = Some(projections);
    }

    /// Runs until `stop` is set, `done` holds, or `deadline` passes.
    /// Returns whether `done` held.
    pub fn run(
        &mut self,
        stop: &AtomicBool,
        deadline: Option<Instant>,
        done: impl Fn(&NodeState) -> bool,
    ) -> Result<bool> {
        loop {
            if done(&self.state) {
                return Ok(true);
            }
            if stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(false);
            }
            self.turn(deadline)?;
        }
    }

    /// One batch: wait for the first event, take what else is waiting, run
    /// them all, save once, send.
    fn turn(&mut self, deadline: Option<Instant>) -> Result<()> {
        let now = Instant::now();
        let mut wait = TICK;
        if let Some((next, _)) = self.deadlines.first() {
            wait = wait.min(next.saturating_duration_since(now));
        }
        if let Some(deadline) = deadline {
            wait = wait.min(deadline.saturating_duration_since(now));
        }
        let mut handled = 0;
        if !wait.is_zero() {
            self.socket.set_read_timeout(Some(wait))?;
            if self.receive_one()? {
                handled += 1;
            }
        }
        self.socket.set_nonblocking(true)?;
        while handled < BATCH {
            if !self.receive_one()? {
                break;
            }
            handled += 1;
        }
        self.socket.set_nonblocking(false)?;
        let now = Instant::now();
        let mut due = Vec::new();
        while let Some((at, _)) = self.deadlines.first() {
            if *at > now {
                break;
            }
            let (_, timer) = self.deadlines.pop_first().expect("just looked");
            self.timers.remove(&timer);
            due.push(timer);
        }
        for timer in due {
            let mut out = Out::new();
            let mut state = Cow::Borrowed(&self.state);
            self.actor.on_timeout(self.id, &mut state, &timer, &mut out);
            if let Cow::Owned(next) = state {
                self.state = next;
            }
            self.absorb(out);
        }
        self.measure(now);
        self.flush()
    }

    /// The measurements and clocks of a turn's end: lag at a leader (the
    /// followers over budget go to the replica's state, which reports them
    /// to the controller), and trips queries whose wait is over.
    fn measure(&mut self, now: Instant) {
        if let NodeState::Replica(_) = &self.state {
            if self.lag.due(now) {
                let budget = Duration::from_millis(self.config.lag_budget_ms);
                let lagging = self.lag.measure(self.id, &self.state, now, budget);
                if let NodeState::Replica(replica) = &mut self.state {
                    if replica.lagging != lagging {
                        for lag in &lagging {
                            tracing::warn!(bucket = %lag.bucket, %lag, "over the lag budget");
                        }
                        replica.lagging = lagging;
                    }
                }
            }
        }
        if let Some(projections) = &mut self.projections {
            let ready = projections.ready(&self.state, now);
            self.replies.extend(ready);
        }
    }

    /// Receives and handles one datagram; false if none was waiting.
    fn receive_one(&mut self) -> Result<bool> {
        let (length, from) = match self.socket.recv_from(&mut self.buffer) {
            Ok(received) => received,
            Err(error)
                if matches!(
                    error.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                return Ok(false)
            }
            // A previous send to a closed port surfaces here on some
            // systems; it is not this socket's failure.
            Err(error) if error.kind() == ErrorKind::ConnectionRefused => return Ok(true),
            Err(error) => return Err(error).context("cannot receive"),
        };
        if length > wire::MAX_DATAGRAM {
            tracing::warn!(%from, length, "dropped an oversized datagram");
            return Ok(true);
        }
        let datagram = match wire::decode(&self.buffer[..length]) {
            Ok(datagram) => datagram,
            Err(reason) => {
                tracing::warn!(%from, %reason, "dropped a datagram that does not decode");
                return Ok(true);
            }
        };
        let member = self.config.member_at(from);
        match datagram {
            Datagram::StatusRequest => {
                let writes = self.rates.recent(Instant::now());
                if let Some(mut report) = Report::of(self.id, &self.state, self.misses, &writes) {
                    if let Report::Replica { buckets } = &mut report {
                        self.lag.fill(buckets);
                    }
                    self.reports.push((from, report));
                }
            }
            Datagram::Search { trip } => match &self.projections {
                Some(projections) => {
                    let answer = projections.search(&self.state, &trip, Instant::now());
                    self.replies.push((from, answer));
                }
                None => {
                    tracing::warn!(%from, "dropped a search sent to a member that is not the projector")
                }
            },
            Datagram::Trips {
                customer,
                after,
                wait_ms,
            } => match &mut self.projections {
                Some(projections) => projections.ask_trips(
                    from,
                    customer,
                    after,
                    Duration::from_millis(wait_ms.min(60_000)),
                    Instant::now(),
                ),
                None => {
                    tracing::warn!(%from, "dropped a trips query sent to a member that is not the projector")
                }
            },
            Datagram::SearchResult(_) | Datagram::TripsResult(_) => {
                tracing::warn!(%from, "dropped an unrequested projection answer");
            }
            Datagram::Status(_) => {
                tracing::warn!(%from, "dropped an unrequested status report");
            }
            Datagram::Protocol(msgs) => {
                for msg in msgs {
                    let src = match (member, from) {
                        (Some(id), _) => id,
                        (None, SocketAddr::V4(addr)) if from_anyone(&msg) => Id::from(addr),
                        _ => {
                            tracing::warn!(%from, %msg, "dropped a member's message from a non-member address");
                            continue;
                        }
                    };
                    // Measured, not decided: the commit position of the
                    // bucket this step may commit client commands in.
                    let watched = rates::watched_bucket(&msg)
                        .and_then(|bucket| Some((bucket, rates::commit_of(&self.state, bucket)?)));
                    let streamed: Vec<_> = match &msg {
                        Msg::Changes(batch) => batch.iter().map(|c| c.bucket).collect(),
                        _ => Vec::new(),
                    };
                    let mut out = Out::new();
                    let mut state = Cow::Borrowed(&self.state);
                    self.actor.on_msg(self.id, &mut state, src, msg, &mut out);
                    if let Cow::Owned(next) = state {
                        self.state = next;
                        if let Some((bucket, before)) = watched {
                            let count =
                                rates::committed_commands(&self.state, self.id, bucket, before);
                            if count > 0 {
                                self.rates.record(bucket, count, Instant::now());
                            }
                        }
                    }
                    if let Some(projections) = &mut self.projections {
                        let now = Instant::now();
                        for bucket in streamed {
                            projections.heard(&self.state, bucket, now);
                        }
                    }
                    self.absorb(out);
                }
            }
        }
        Ok(true)
    }

    /// Takes a step's commands: timers now, the save and the sends for the
    /// end of the batch.
    fn absorb(&mut self, out: Out<BerthActor>) {
        for command in out {
            match command {
                Command::Send(dst, msg) => self.outbox.push((dst, msg)),
                Command::SetTimer(timer, range) => {
                    let at = Instant::now() + pick(&range);
                    if let Some(old) = self.timers.insert(timer.clone(), at) {
                        self.deadlines.remove(&(old, timer.clone()));
                    }
                    self.deadlines.insert((at, timer));
                }
                Command::CancelTimer(timer) => {
                    if let Some(old) = self.timers.remove(&timer) {
                        self.deadlines.remove(&(old, timer));
                    }
                }
                Command::Save(storage) => self.unsaved = Some(storage),
                Command::ChooseRandom(..) => {}
            }
        }
    }

    /// Makes the batch's save durable, then sends its messages.
    fn flush(&mut self) -> Result<()> {
        if let Some(storage) = self.unsaved.take() {
            if let Some(store) = &mut self.store {
                store.save(&storage)?;
            }
        }
        // Per recipient, in the order sent, packed into few datagrams.
        let mut by_recipient: BTreeMap<Id, Vec<Msg>> = BTreeMap::new();
        for (dst, msg) in std::mem::take(&mut self.outbox) {
            by_recipient.entry(dst).or_default().push(msg);
        }
        for (dst, msgs) in by_recipient {
            let Some(addr) = self.address_of(dst) else {
                tracing::warn!(dst = usize::from(dst), "no address for a recipient");
                continue;
            };
            let (datagrams, refused) = wire::pack(&msgs);
            for (msg, reason) in refused {
                tracing::error!(%addr, %msg, %reason, "cannot send a message");
            }
            for bytes in datagrams {
                if let Err(error) = self.socket.send_to(&bytes, addr) {
                    tracing::debug!(%addr, %error, "send failed");
                }
            }
        }
        for (addr, report) in std::mem::take(&mut self.reports) {
            self.send_to(addr, &Datagram::Status(report));
        }
        for (addr, reply) in std::mem::take(&mut self.replies) {
            self.send_to(addr, &reply);
        }
        Ok(())
    }

    fn address_of(&self, id: Id) -> Option<SocketAddr> {
        if let Some(addr) = self.config.addr_of(id) {
            return Some(SocketAddr::V4(addr));
        }
        // Not a member: a client, whose id is its address.
        let addr = SocketAddrV4::from(id);
        (!addr.ip().is_unspecified()).then_some(SocketAddr::V4(addr))
    }

    fn send_to(&self, addr: SocketAddr, datagram: &Datagram) {
        match wire::encode(datagram) {
            Ok(bytes) => {
                if let Err(error) = self.socket.send_to(&bytes, addr) {
                    tracing::debug!(%addr, %error, "send failed");
                }
            }
            Err(reason) => tracing::error!(%addr, %reason, "cannot send a message"),
        }
    }
}

/// A duration in `range`, uniformly.
fn pick(range: &Range<Duration>) -> Duration {
    if range.end <= range.start {
        return range.start;
    }
    let span = (range.end - range.start).as_nanos() as u64;
    range.start + Duration::from_nanos(fastrand::u64(0..span))
}
