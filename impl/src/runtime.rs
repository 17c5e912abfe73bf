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
//! The loop is all this module holds. Around it, in their own modules:
//! [`crate::receive`] opens each datagram and decides who sent it and
//! whether they may (the attack surface, read and fuzzed on its own);
//! [`crate::services`] answers what is not protocol (status, search,
//! trips) and takes the measurements (write rates, lag). Both are further
//! `impl Runtime` blocks, hence the `pub(crate)` fields below.

use crate::auth::{Auth, KeyKind};
use crate::config::ClusterConfig;
use crate::guard::DropLog;
use crate::lag::LagMeter;
use crate::projector::Projections;
use crate::rates::WriteRates;
use crate::storage::Store;
use crate::wire::{self, Datagram, Report};
use anyhow::{Context, Result};
use berth_model::{BerthActor, Msg, NodeState, Storage, Timer};
use stateright::actor::{Actor, Command, Id, Out};
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
    pub(crate) config: ClusterConfig,
    store: Option<Store>,
    timers: BTreeMap<Timer, Instant>,
    /// The same timers ordered by deadline.
    deadlines: BTreeSet<(Instant, Timer)>,
    /// Messages to send once the batch's save is durable.
    outbox: Vec<(Id, Msg)>,
    /// The batch's latest save, not yet durable.
    unsaved: Option<Storage>,
    /// Whether a step of this batch changed durable state (the in-place
    /// steps say so instead of emitting `Save`): the batch saves it.
    dirty: bool,
    /// Status replies to send with the batch.
    pub(crate) reports: Vec<(Id, Report)>,
    /// Probes missed in a row before a replica counts as down (for status
    /// reports).
    pub(crate) misses: u8,
    buffer: Vec<u8>,
    /// Client commands committed per bucket led here (for status reports).
    pub(crate) rates: WriteRates,
    /// How far the followers of the buckets led here trail.
    pub(crate) lag: LagMeter,
    /// The projections' clocks, when this runtime is the projector.
    pub(crate) projections: Option<Projections>,
    /// Answers to projection queries to send with the batch.
    pub(crate) replies: Vec<(Id, Datagram)>,
    /// Who this process is and whom it believes.
    pub(crate) auth: Auth,
    /// Outsiders heard from (by the id of their address): the key kind and
    /// sender id to answer them under.
    pub(crate) outsiders: HashMap<Id, (KeyKind, u64)>,
    /// Datagrams dropped, by reason.
    pub(crate) drops: DropLog,
    /// When set, datagrams are kept here instead of sent (the fuzzer).
    captured: Option<Vec<(SocketAddrV4, Vec<u8>)>>,
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
            dirty: false,
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

    /// Starts `actor` afresh in place of the one running, on the same
    /// socket and keys (a load generator's next session): its timers and
    /// unsent messages are dropped.
    pub fn restart(&mut self, actor: BerthActor) -> Result<()> {
        self.actor = actor;
        self.timers.clear();
        self.deadlines.clear();
        self.outbox.clear();
        self.unsaved = None;
        self.dirty = false;
        let mut out = Out::new();
        self.state = self.actor.on_start(self.id, &None, &mut out);
        self.absorb(out);
        self.flush()
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
            self.fire(&timer);
        }
        self.flush()
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
            self.turn(deadline, stop)?;
        }
    }

    /// One batch: wait for the first event, take what else is waiting, run
    /// them all, save once, send. A stop request ends the batch early
    /// (between events: what was handled is still saved before its sends),
    /// so that a busy member stops within an event, not a batch.
    fn turn(&mut self, deadline: Option<Instant>, stop: &AtomicBool) -> Result<()> {
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
        while handled < BATCH && !stop.load(Ordering::Relaxed) {
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
            if stop.load(Ordering::Relaxed) {
                break; // stopping: the remaining timers do not matter
            }
            self.fire(&timer);
        }
        self.measure(now);
        self.flush()
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

    /// One timer's step: `timer` through the actor.
    fn fire(&mut self, timer: &Timer) {
        let mut out = Out::new();
        let saved = self
            .actor
            .on_timeout_in_place(self.id, &mut self.state, timer, &mut out);
        self.dirty |= saved;
        self.absorb(out);
    }

    /// One protocol step: `msg` from `src` through the actor, watched
    /// for what the services measure ([`Runtime::watch`]).
    pub(crate) fn step(&mut self, src: Id, msg: Msg) {
        let watch = self.watch(&msg);
        let mut out = Out::new();
        let saved = self
            .actor
            .on_msg_in_place(self.id, &mut self.state, src, msg, &mut out);
        self.dirty |= saved;
        self.observe(watch, saved);
        self.absorb(out);
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
        let change = if std::mem::take(&mut self.dirty) {
            self.state.take_storage_change()
        } else {
            None
        };
        if let Some(store) = &mut self.store {
            if let Some(storage) = self.unsaved.take() {
                store.save(&storage)?;
            }
            if let Some(change) = change {
                let state = &self.state;
                let whole = || state.storage().expect("a member that saves has storage");
                if store.has_saved() {
                    store.save_change(change, whole)?;
                } else {
                    store.save(&whole())?;
                }
            }
        } else {
            self.unsaved = None;
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
