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
//! Every datagram is sealed and opened by [`crate::auth`]: a member
//! believes a member's message only under the member key, an outsider's
//! (client, operator) only the requests its key allows, and answers an
//! outsider under the key it asked with. What is dropped — oversize,
//! undecodable, bad MAC, replayed, unexpected — is counted by reason and
//! logged a few times per window ([`crate::guard`]).

use crate::auth::{self, Auth, KeyKind, Refusal};
use crate::config::ClusterConfig;
use crate::guard::{DropLog, DropReason};
use crate::lag::LagMeter;
use crate::projector::Projections;
use crate::rates::{self, WriteRates};
use crate::storage::Store;
use crate::wire::{self, Datagram, Report};
use anyhow::{Context, Result};
use berth_model::{BerthActor, Msg, NodeState, Storage, Timer};
use stateright::actor::{Actor, Command, Id, Out};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
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
    reports: Vec<(Id, Report)>,
    misses: u8,
    buffer: Vec<u8>,
    /// Client commands committed per bucket led here (for status reports).
    rates: WriteRates,
    /// How far the followers of the buckets led here trail.
    lag: LagMeter,
    /// The projections' clocks, when this runtime is the projector.
    projections: Option<Projections>,
    /// Answers to projection queries to send with the batch.
    replies: Vec<(Id, Datagram)>,
    /// Who this process is and whom it believes.
    auth: Auth,
    /// Outsiders heard from (by the id of their address): the key kind and
    /// sender id to answer them under.
    outsiders: HashMap<Id, (KeyKind, u64)>,
    /// Datagrams dropped, by reason.
    drops: DropLog,
    /// When set, datagrams are kept here instead of sent (the fuzzer).
    captured: Option<Vec<(SocketAddrV4, Vec<u8>)>>,
}

/// Outsiders remembered for answers at most (an older one is forgotten:
/// its answers are dropped and its retry introduces it again).
const OUTSIDERS: usize = 4096;

/// Whether an outsider holding the `kind` key may send `msg` to a member:
/// clients make requests, queries and reads and fetch the map; operators
/// also move buckets and fail them over. Everything else is member-only.
fn permitted(kind: KeyKind, msg: &Msg) -> bool {
    let client = matches!(
        msg,
        Msg::Request { .. } | Msg::Query { .. } | Msg::FetchMap | Msg::Read { .. }
    );
    match kind {
        KeyKind::Member => true,
        KeyKind::Operator => client || matches!(msg, Msg::MoveBucket { .. } | Msg::Failover { .. }),
        KeyKind::Client => client,
    }
}

/// Whether `msg` is an answer a member sends an outsider (what a client
/// or operator process accepts).
fn answer(msg: &Msg) -> bool {
    matches!(
        msg,
        Msg::Reply { .. }
            | Msg::Redirect { .. }
            | Msg::NotDecided { .. }
            | Msg::Map(_)
            | Msg::MoveRefused { .. }
            | Msg::ReadReply { .. }
            | Msg::ReadBehind { .. }
    )
}

impl Runtime {
    /// Starts `actor` as `id` on `socket`, recovering from `saved`, sealing
    /// and opening datagrams with `auth`.
    pub fn start(
        id: Id,
        actor: BerthActor,
        socket: UdpSocket,
        config: ClusterConfig,
        store: Option<Store>,
        saved: Option<Storage>,
        auth: Auth,
    ) -> Result<Runtime> {
        let mut runtime = Runtime::new(id, actor, socket, config, store, saved, auth);
        runtime.flush()?;
        Ok(runtime)
    }

    /// A runtime that sends nothing: what it would send is kept for
    /// [`Runtime::take_sent`] (the fuzzer routes it by hand). Its socket
    /// is bound but never used.
    pub fn captured(
        id: Id,
        actor: BerthActor,
        config: ClusterConfig,
        auth: Auth,
    ) -> Result<Runtime> {
        let socket = UdpSocket::bind("127.0.0.1:0").context("cannot open a UDP socket")?;
        let mut runtime = Runtime::new(id, actor, socket, config, None, None, auth);
        runtime.captured = Some(Vec::new());
        runtime.flush()?;
        Ok(runtime)
    }

    fn new(
        id: Id,
        actor: BerthActor,
        socket: UdpSocket,
        config: ClusterConfig,
        store: Option<Store>,
        saved: Option<Storage>,
        auth: Auth,
    ) -> Runtime {
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
            auth,
            outsiders: HashMap::new(),
            drops: DropLog::default(),
            captured: None,
        };
        runtime.absorb(out);
        runtime
    }

    /// What a captured runtime would have sent since the last call: the
    /// recipient's address and the sealed datagram.
    pub fn take_sent(&mut self) -> Vec<(SocketAddrV4, Vec<u8>)> {
        self.captured
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Handles `bytes` from `from` as if received, then finishes the batch
    /// (save, send): one datagram's whole effect.
    pub fn deliver(&mut self, bytes: &[u8], from: SocketAddr) -> Result<()> {
        self.handle(bytes, from);
        self.measure(Instant::now());
        self.flush()
    }

    /// Fires every timer now, whatever its deadline (the fuzzer's clock),
    /// and finishes the batch.
    pub fn fire_timers(&mut self) -> Result<()> {
        let timers: Vec<Timer> = std::mem::take(&mut self.timers).into_keys().collect();
        self.deadlines.clear();
        for timer in timers {
            let mut out = Out::new();
            let mut state = Cow::Borrowed(&self.state);
            self.actor.on_timeout(self.id, &mut state, &timer, &mut out);
            if let Cow::Owned(next) = state {
                self.state = next;
            }
            self.absorb(out);
        }
        self.flush()
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
        let buffer = std::mem::take(&mut self.buffer);
        self.handle(&buffer[..length], from);
        self.buffer = buffer;
        Ok(true)
    }

    /// Handles one received datagram from `from`: opens it, decides who
    /// sent it and whether they may, and runs what it carries. Whatever the
    /// bytes, this neither panics nor allocates beyond their size: what is
    /// not believed is counted and dropped.
    pub fn handle(&mut self, bytes: &[u8], from: SocketAddr) {
        if bytes.len() > wire::MAX_DATAGRAM {
            let length = bytes.len();
            return self.drops.drop(DropReason::Oversize, || {
                format!("{length} bytes from {from}")
            });
        }
        let (header, payload) = match auth::open(&self.auth.keys, bytes) {
            Ok(opened) => opened,
            Err(refusal) => {
                let (reason, what) = match refusal {
                    Refusal::Malformed => (DropReason::Undecodable, "not berth's format"),
                    Refusal::BadMac => (DropReason::BadMac, "its MAC does not verify"),
                };
                let length = bytes.len();
                return self
                    .drops
                    .drop(reason, || format!("{length} bytes from {from}: {what}"));
            }
        };
        if header.recipient != self.auth.sender.id {
            return self.drops.drop(DropReason::Unexpected, || {
                format!(
                    "from {from}: addressed to {}, not to this process",
                    header.recipient
                )
            });
        }
        // Who sent it: a member by the id its key vouches for; an outsider
        // by the address to answer (its key says what it may ask).
        let member_sender = header.kind == KeyKind::Member;
        let src = if self.auth.is_member() && !member_sender {
            match from {
                SocketAddr::V4(addr) if !addr.ip().is_unspecified() => Id::from(addr),
                _ => {
                    return self.drops.drop(DropReason::Unexpected, || {
                        format!("an outsider at {from}: berth answers IPv4 only")
                    })
                }
            }
        } else {
            let id = Id::from(header.sender as usize);
            if !self.config.is_member(id)
                || id == self.id
                || (!self.auth.is_member() && header.kind != self.auth.sender.kind)
            {
                return self.drops.drop(DropReason::Unexpected, || {
                    format!(
                        "from {from}: sender {} under the {} key is not a member",
                        header.sender, header.kind
                    )
                });
            }
            id
        };
        if !self.auth.replay.admit(&header) {
            return self.drops.drop(DropReason::Replay, || {
                format!("from {from} (sender {})", header.sender)
            });
        }
        let datagram = match wire::decode(payload) {
            Ok(datagram) => datagram,
            Err(reason) => {
                return self
                    .drops
                    .drop(DropReason::Undecodable, || format!("from {from}: {reason}"))
            }
        };
        let outsider = self.auth.is_member() && !member_sender;
        if outsider {
            if self.outsiders.len() >= OUTSIDERS && !self.outsiders.contains_key(&src) {
                if let Some(old) = self.outsiders.keys().next().copied() {
                    self.outsiders.remove(&old);
                }
            }
            self.outsiders.insert(src, (header.kind, header.sender));
        }
        self.dispatch(datagram, src, from, header.kind, outsider);
    }

    /// Runs what an opened datagram carries, from `src` (an outsider if
    /// `outsider`, under the `kind` key).
    fn dispatch(
        &mut self,
        datagram: Datagram,
        src: Id,
        from: SocketAddr,
        kind: KeyKind,
        outsider: bool,
    ) {
        match datagram {
            Datagram::StatusRequest if self.auth.is_member() => {
                let writes = self.rates.recent(Instant::now());
                let mut report = Report::of(
                    self.id,
                    &self.state,
                    self.misses,
                    &writes,
                    &self.drops.drops,
                );
                if let Report::Replica { buckets, .. } = &mut report {
                    self.lag.fill(buckets);
                }
                self.reports.push((src, report));
            }
            Datagram::Search { trip } if self.projections.is_some() => {
                let projections = self.projections.as_ref().expect("checked");
                let answer = projections.search(&self.state, &trip, Instant::now());
                self.replies.push((src, answer));
            }
            Datagram::Trips {
                customer,
                after,
                wait_ms,
            } if self.projections.is_some() => {
                let projections = self.projections.as_mut().expect("checked");
                projections.ask_trips(
                    src,
                    customer,
                    after,
                    Duration::from_millis(wait_ms.min(60_000)),
                    Instant::now(),
                );
            }
            Datagram::Protocol(msgs) => {
                for msg in msgs {
                    let allowed = if !self.auth.is_member() {
                        answer(&msg)
                    } else {
                        !outsider || permitted(kind, &msg)
                    };
                    if !allowed || !wire::within(&msg, self.config.buckets) {
                        let what = msg.to_string();
                        self.drops.drop(DropReason::Unexpected, || {
                            format!("from {from} under the {kind} key: {what}")
                        });
                        continue;
                    }
                    self.step(src, msg);
                }
            }
            other => {
                let what = match other {
                    Datagram::StatusRequest => "a status request to a non-member",
                    Datagram::Search { .. } | Datagram::Trips { .. } => {
                        "a projection query to a member that is not the projector"
                    }
                    _ => "an unrequested answer",
                };
                self.drops
                    .drop(DropReason::Unexpected, || format!("from {from}: {what}"));
            }
        }
    }

    /// One protocol step: `msg` from `src` through the actor.
    fn step(&mut self, src: Id, msg: Msg) {
        // Measured, not decided: the commit position of the bucket this
        // step may commit client commands in.
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
                let count = rates::committed_commands(&self.state, self.id, bucket, before);
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

    /// Datagrams dropped so far, by reason.
    pub fn drops(&self) -> &crate::guard::Drops {
        &self.drops.drops
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
            let (datagrams, refused) = wire::pack(&msgs);
            for (msg, reason) in refused {
                tracing::error!(dst = usize::from(dst), %msg, %reason, "cannot send a message");
            }
            for bytes in datagrams {
                self.send_sealed(dst, &bytes);
            }
        }
        for (dst, report) in std::mem::take(&mut self.reports) {
            self.send_to(dst, &Datagram::Status(report));
        }
        for (dst, reply) in std::mem::take(&mut self.replies) {
            self.send_to(dst, &reply);
        }
        Ok(())
    }

    /// Seals `payload` for `dst` and sends it: to a member at its
    /// configured address under this process's own key; to an outsider at
    /// its address under the key it asked with.
    fn send_sealed(&mut self, dst: Id, payload: &[u8]) {
        let (addr, bytes) = if let Some(addr) = self.config.addr_of(dst) {
            let bytes = self.auth.sender.seal(usize::from(dst) as u64, payload);
            (addr, bytes)
        } else if let Some((kind, sender)) = self.outsiders.get(&dst).copied() {
            let Some(key) = self.auth.keys.get(kind) else {
                return; // only kinds it opened are remembered
            };
            let key = key.clone();
            let bytes = self.auth.sender.seal_as(kind, &key, sender, payload);
            (SocketAddrV4::from(dst), bytes)
        } else {
            tracing::debug!(
                dst = usize::from(dst),
                "no route to a recipient (an outsider forgotten or never heard)"
            );
            return;
        };
        if let Some(captured) = &mut self.captured {
            captured.push((addr, bytes));
            return;
        }
        if let Err(error) = self.socket.send_to(&bytes, addr) {
            tracing::debug!(%addr, %error, "send failed");
        }
    }

    fn send_to(&mut self, dst: Id, datagram: &Datagram) {
        match wire::encode(datagram) {
            Ok(bytes) => self.send_sealed(dst, &bytes),
            Err(reason) => {
                tracing::error!(dst = usize::from(dst), %reason, "cannot send a message")
            }
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
