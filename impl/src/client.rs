//! Client commands: a `ClientActor` (the model's router) run over UDP
//! until its tasks are answered, and the small request/poll helpers of the
//! operator commands (`status`, `move`, `failover`).

use crate::auth::{self, Auth, KeyKind};
use crate::config::{controller_id, ClusterConfig};
use crate::runtime::Runtime;
use crate::wire::{self, Datagram, Report};
use anyhow::{bail, Context, Result};
use berth_model::client::{Action, Pending};
use berth_model::hashing::bucket_of;
use berth_model::{
    BerthActor, Bucket, ClientActor, Command, Customer, Msg, NodeState, Op, Position, Task, Token,
};
use stateright::actor::Id;
use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

/// How a command ended, as its exit code says.
#[derive(Debug, PartialEq, Eq)]
pub enum Ending {
    /// Every task answered, none refused.
    Done,
    /// The cluster refused an action (exit 1).
    Refused,
    /// No answer in time (exit 3).
    Unreachable,
}

impl Ending {
    pub fn exit_code(&self) -> u8 {
        match self {
            Ending::Done => 0,
            Ending::Refused => 1,
            Ending::Unreachable => 3,
        }
    }
}

/// A socket to talk to `config`'s cluster from.
pub(crate) fn client_socket(config: &ClusterConfig) -> Result<UdpSocket> {
    let local = if config.controller.addr.ip().is_loopback() {
        "127.0.0.1:0"
    } else {
        "0.0.0.0:0"
    };
    UdpSocket::bind(local).context("cannot open a UDP socket")
}

/// Who a client acts for and what its session has seen.
#[derive(Clone, Debug, Default)]
pub struct Session {
    /// Who its holds are for.
    pub customer: Customer,
    /// Positions already observed (position tokens given on the command
    /// line): reads must not return older state.
    pub observed: BTreeMap<Bucket, Position>,
    /// The replica to read from first (default: the bucket's remote
    /// follower).
    pub reader: Option<Id>,
}

/// How a client run ended: every task answered, or out of time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Run<A> {
    /// Every task was answered; the answers, in order.
    Done(Vec<A>),
    /// Time ran out: the answers received until then, in order, and the
    /// write that was in flight, whose outcome the client does not know.
    TimedOut {
        answers: Vec<A>,
        in_flight: Option<InFlight>,
    },
}

impl<A> Run<A> {
    /// The answers received, whether or not the run finished.
    pub fn answers(&self) -> &[A] {
        match self {
            Run::Done(answers) | Run::TimedOut { answers, .. } => answers,
        }
    }

    /// The same run with each answer mapped.
    pub fn map<B>(self, f: impl FnMut(A) -> B) -> Run<B> {
        match self {
            Run::Done(answers) => Run::Done(answers.into_iter().map(f).collect()),
            Run::TimedOut { answers, in_flight } => Run::TimedOut {
                answers: answers.into_iter().map(f).collect(),
                in_flight,
            },
        }
    }
}

/// A write sent and not answered in time: it may or may not have
/// committed, and its token tells which (`berth token`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InFlight {
    pub token: Token,
    pub bucket: Bucket,
    /// What the write was: "hold of <unit>" or "confirm of <unit>".
    pub what: String,
}

impl InFlight {
    /// The write `pending` stands for, if it is one (queries and reads
    /// change nothing, so nothing about them is left to resolve).
    fn of(pending: &Pending, buckets: u32) -> Option<InFlight> {
        let Action::Command(Command { token, op }) = &pending.action else {
            return None;
        };
        let what = match op {
            Op::Hold { unit, .. } => format!("hold of {unit}"),
            Op::Confirm { unit, .. } => format!("confirm of {unit}"),
        };
        Some(InFlight {
            token: *token,
            bucket: bucket_of(op.unit(), buckets),
            what,
        })
    }
}

/// Runs `tasks` as a client of `config`'s cluster in `session`; returns
/// the answers (`Reply`, `NotDecided` or `ReadReply`, in order), and if the
/// cluster did not answer everything within `timeout`, the write in flight.
pub fn run_tasks(
    config: &ClusterConfig,
    session: &Session,
    tasks: Vec<Task>,
    timeout: Duration,
) -> Result<Run<Msg>> {
    Ok(run_tasks_timed(config, session, tasks, timeout)?.map(|(msg, _)| msg))
}

/// As `run_tasks`, with the moment each answer arrived (to within one turn
/// of the event loop).
pub fn run_tasks_timed(
    config: &ClusterConfig,
    session: &Session,
    tasks: Vec<Task>,
    timeout: Duration,
) -> Result<Run<(Msg, Instant)>> {
    let auth = outsider_auth(config)?;
    let socket = client_socket(config)?;
    let id = match socket.local_addr()? {
        SocketAddr::V4(addr) => Id::from(addr),
        SocketAddr::V6(_) => bail!("berth clients use IPv4"),
    };
    let actor = ClientActor {
        // Tokens must not collide across client processes.
        client: fastrand::u64(1..u64::from(u32::MAX)),
        controller: controller_id(),
        customer: session.customer.clone(),
        tasks,
        observed: session.observed.clone(),
        reader: session.reader,
        initial_map: config.initial_map(),
        regional_replica: None,
        config: config.protocol(),
    };
    let done_actor = actor.clone();
    let mut runtime = Runtime::start(
        id,
        BerthActor::Client(actor),
        socket,
        config.clone(),
        None,
        None,
        auth,
    )?;
    let stop = AtomicBool::new(false);
    let arrivals = std::cell::RefCell::new(Vec::new());
    let done = runtime.run(&stop, Some(Instant::now() + timeout), |state| match state {
        NodeState::Client(client) => {
            let mut arrivals = arrivals.borrow_mut();
            while arrivals.len() < client.answers.len() {
                arrivals.push(Instant::now());
            }
            client.done(&done_actor)
        }
        _ => true,
    })?;
    let NodeState::Client(client) = &runtime.state else {
        unreachable!("a client runs a client state");
    };
    let answers = client
        .answers
        .iter()
        .cloned()
        .zip(arrivals.into_inner())
        .collect();
    Ok(if done {
        Run::Done(answers)
    } else {
        Run::TimedOut {
            answers,
            in_flight: client
                .pending
                .as_ref()
                .and_then(|pending| InFlight::of(pending, config.buckets)),
        }
    })
}

/// A client's authentication: the client key, else the operator key (an
/// operator may do whatever a client may).
pub(crate) fn outsider_auth(config: &ClusterConfig) -> Result<Auth> {
    let dir = config.keys_dir();
    if dir.join(KeyKind::Client.file_name()).exists() {
        Auth::outsider(&dir, KeyKind::Client)
    } else if dir.join(KeyKind::Operator.file_name()).exists() {
        Auth::outsider(&dir, KeyKind::Operator)
    } else {
        Auth::outsider(&dir, KeyKind::Client)
    }
}

/// An outsider's line to the cluster's members: one socket, datagrams
/// sealed with the outsider's key, and only answers a member sealed with
/// it for this process believed.
pub struct Link<'a> {
    config: &'a ClusterConfig,
    socket: UdpSocket,
    auth: Auth,
    buffer: Vec<u8>,
}

impl<'a> Link<'a> {
    /// A link under the `kind` key.
    pub fn open(config: &'a ClusterConfig, kind: KeyKind) -> Result<Link<'a>> {
        Link::with(config, Auth::outsider(&config.keys_dir(), kind)?)
    }

    /// A link under the client key, else the operator key.
    pub fn open_client(config: &'a ClusterConfig) -> Result<Link<'a>> {
        Link::with(config, outsider_auth(config)?)
    }

    fn with(config: &'a ClusterConfig, auth: Auth) -> Result<Link<'a>> {
        Ok(Link {
            config,
            socket: client_socket(config)?,
            auth,
            buffer: vec![0; wire::MAX_DATAGRAM + 1],
        })
    }

    /// Sends `datagram` to member `to`.
    pub fn send(&mut self, to: Id, datagram: &Datagram) -> Result<()> {
        let addr = self
            .config
            .addr_of(to)
            .with_context(|| format!("{} is not a member", usize::from(to)))?;
        let payload = wire::encode(datagram).map_err(anyhow::Error::msg)?;
        let bytes = self.auth.sender.seal(usize::from(to) as u64, &payload);
        self.socket
            .send_to(&bytes, addr)
            .with_context(|| format!("cannot send to {addr}"))?;
        Ok(())
    }

    /// The next authentic datagram a member sent this process, waiting up
    /// to `wait`; anything else received meanwhile is ignored.
    pub fn receive(&mut self, wait: Duration) -> Result<Option<(Id, Datagram)>> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.socket.set_read_timeout(Some(left))?;
            let Ok((length, _)) = self.socket.recv_from(&mut self.buffer) else {
                continue;
            };
            let Ok((header, payload)) = auth::open(&self.auth.keys, &self.buffer[..length]) else {
                continue;
            };
            let member = Id::from(header.sender as usize);
            if header.kind != self.auth.sender.kind
                || header.recipient != self.auth.sender.id
                || !self.config.is_member(member)
                || !self.auth.replay.admit(&header)
            {
                continue;
            }
            if let Ok(datagram) = wire::decode(payload) {
                return Ok(Some((member, datagram)));
            }
        }
    }
}

/// Sends a status request to each of `targets` and collects the reports
/// that come back within `timeout` (all of them, or fewer).
pub fn request_status(
    config: &ClusterConfig,
    targets: &[Id],
    timeout: Duration,
) -> Result<BTreeMap<Id, Report>> {
    let mut link = Link::open_client(config)?;
    let deadline = Instant::now() + timeout;
    let mut reports = BTreeMap::new();
    let mut next_send = Instant::now();
    while reports.len() < targets.len() {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        if now >= next_send {
            // Datagrams get lost: ask those who have not answered again.
            for target in targets.iter().filter(|t| !reports.contains_key(*t)) {
                link.send(*target, &Datagram::StatusRequest).ok();
            }
            next_send = now + Duration::from_millis(200);
        }
        let wait = deadline.min(next_send).saturating_duration_since(now);
        if let Some((member, Datagram::Status(report))) =
            link.receive(wait.max(Duration::from_millis(1)))?
        {
            if targets.contains(&member) {
                reports.insert(member, report);
            }
        }
    }
    Ok(reports)
}

/// Sends `request` to the projector and returns its first answer, resent
/// every `resend` (datagrams get lost); `None` if nothing came back within
/// `timeout`.
pub fn ask_projector(
    config: &ClusterConfig,
    request: &Datagram,
    resend: Duration,
    timeout: Duration,
) -> Result<Option<Datagram>> {
    let Some(projector) = config.projector_id() else {
        bail!("the cluster configuration has no [projector] section: this cluster runs no projections");
    };
    let mut link = Link::open_client(config)?;
    let deadline = Instant::now() + timeout;
    let mut next_send = Instant::now();
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        if now >= next_send {
            link.send(projector, request).ok();
            next_send = now + resend;
        }
        let wait = deadline.min(next_send).saturating_duration_since(now);
        match link.receive(wait.max(Duration::from_millis(1)))? {
            Some((from, answer @ (Datagram::SearchResult(_) | Datagram::TripsResult(_))))
                if from == projector =>
            {
                return Ok(Some(answer))
            }
            _ => continue,
        }
    }
}

/// An operator's line to the controller, under the operator key: one
/// socket, so that the controller's answers (a `MoveRefused`) come back
/// to it.
pub struct ControllerLink<'a> {
    link: Link<'a>,
}

impl<'a> ControllerLink<'a> {
    pub fn open(config: &'a ClusterConfig) -> Result<Self> {
        Ok(ControllerLink {
            link: Link::open(config, KeyKind::Operator)?,
        })
    }

    /// Sends `msg` to the controller.
    pub fn send(&mut self, msg: Msg) -> Result<()> {
        self.link
            .send(controller_id(), &Datagram::Protocol(vec![msg]))
            .context("cannot reach the controller")
    }

    /// The reason the controller refused a move of `bucket`, if it said
    /// so within `wait`.
    pub fn refusal(&mut self, bucket: Bucket, wait: Duration) -> Result<Option<String>> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some((from, datagram)) = self.link.receive(left.max(Duration::from_millis(1)))?
            else {
                return Ok(None);
            };
            if from == controller_id() {
                if let Datagram::Protocol(msgs) = datagram {
                    for msg in msgs {
                        if let Msg::MoveRefused { bucket: b, reason } = msg {
                            if b == bucket {
                                return Ok(Some(reason));
                            }
                        }
                    }
                }
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
        }
    }
}

/// The controller's report, or `None` if it does not answer in `timeout`.
pub fn controller_report(config: &ClusterConfig, timeout: Duration) -> Result<Option<Report>> {
    Ok(request_status(config, &[controller_id()], timeout)?.remove(&controller_id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: a write in flight is named with its token and its unit's
    /// bucket; a query or read in flight leaves nothing to resolve.
    #[test]
    fn in_flight_names_writes_only() {
        let unit = berth_model::InventoryUnit::new("BCN-JFK-2026-07-14", "C14");
        let token = Token { client: 5, seq: 1 };
        let pending = |action| Pending {
            action,
            retries_left: 0,
        };
        let confirm = pending(Action::Command(Command {
            token,
            op: Op::Confirm {
                unit: unit.clone(),
                hold: Token { client: 5, seq: 0 },
            },
        }));
        assert_eq!(
            InFlight::of(&confirm, 2048),
            Some(InFlight {
                token,
                bucket: bucket_of(&unit, 2048),
                what: "confirm of BCN-JFK-2026-07-14/C14".to_owned(),
            })
        );
        let hold = pending(Action::Command(Command {
            token,
            op: Op::Hold {
                unit: unit.clone(),
                customer: Customer::new("alice"),
            },
        }));
        assert_eq!(
            InFlight::of(&hold, 2048).unwrap().what,
            "hold of BCN-JFK-2026-07-14/C14"
        );
        let query = pending(Action::Query {
            bucket: Bucket(3),
            token,
        });
        assert_eq!(InFlight::of(&query, 2048), None);
    }
}
