//! Client commands: a `ClientActor` (the model's router) run over UDP
//! until its tasks are answered, and the small request/poll helpers of the
//! operator commands (`status`, `move`, `failover`).

use crate::config::{controller_id, ClusterConfig};
use crate::runtime::Runtime;
use crate::wire::{self, Datagram, Report};
use anyhow::{bail, Context, Result};
use berth_model::{
    BerthActor, Bucket, ClientActor, Customer, Msg, NodeState, Position, Task, Token,
};
use stateright::actor::Id;
use std::collections::BTreeMap;
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
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

/// A token as people pass it around: `T<client>.<seq>@b<bucket>`, so that
/// a later `berth token` or `berth confirm` knows where to ask.
pub fn token_text(token: Token, bucket: Bucket) -> String {
    format!("{token}@b{}", bucket.0)
}

/// Parses `token_text`'s form.
pub fn parse_token(text: &str) -> Result<(Token, Bucket)> {
    let (token, bucket) = text
        .split_once("@b")
        .with_context(|| format!("{text:?} is not a berth token (expected T<client>.<seq>@b<bucket>, as printed by hold and book)"))?;
    let token: Token = token
        .parse()
        .map_err(|error| anyhow::anyhow!("{text:?} is not a berth token: {error}"))?;
    let bucket: u32 = bucket
        .parse()
        .with_context(|| format!("{text:?} is not a berth token: bad bucket number"))?;
    Ok((token, Bucket(bucket)))
}

/// A socket to talk to `config`'s cluster from.
fn client_socket(config: &ClusterConfig) -> Result<UdpSocket> {
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

/// Runs `tasks` as a client of `config`'s cluster in `session`; returns
/// the answers (`Reply`, `NotDecided` or `ReadReply`, in order), or `None`
/// if the cluster did not answer everything within `timeout`.
pub fn run_tasks(
    config: &ClusterConfig,
    session: &Session,
    tasks: Vec<Task>,
    timeout: Duration,
) -> Result<Option<Vec<Msg>>> {
    Ok(run_tasks_timed(config, session, tasks, timeout)?
        .map(|answers| answers.into_iter().map(|(msg, _)| msg).collect()))
}

/// As `run_tasks`, with the moment each answer arrived (to within one turn
/// of the event loop).
pub fn run_tasks_timed(
    config: &ClusterConfig,
    session: &Session,
    tasks: Vec<Task>,
    timeout: Duration,
) -> Result<Option<Vec<(Msg, Instant)>>> {
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
    Ok(done.then(|| {
        client
            .answers
            .iter()
            .cloned()
            .zip(arrivals.into_inner())
            .collect()
    }))
}

/// Sends `datagram` to each of `targets` and collects the status reports
/// that come back within `timeout` (all of them, or fewer).
pub fn request_status(
    config: &ClusterConfig,
    targets: &[Id],
    timeout: Duration,
) -> Result<BTreeMap<Id, Report>> {
    let socket = client_socket(config)?;
    let request = wire::encode(&Datagram::StatusRequest).map_err(anyhow::Error::msg)?;
    let deadline = Instant::now() + timeout;
    let mut reports = BTreeMap::new();
    let mut buffer = vec![0; wire::MAX_DATAGRAM + 1];
    let mut next_send = Instant::now();
    while reports.len() < targets.len() {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        if now >= next_send {
            // Datagrams get lost: ask those who have not answered again.
            for target in targets.iter().filter(|t| !reports.contains_key(*t)) {
                if let Some(addr) = config.addr_of(*target) {
                    socket.send_to(&request, addr).ok();
                }
            }
            next_send = now + Duration::from_millis(200);
        }
        let wait = deadline
            .min(next_send)
            .saturating_duration_since(Instant::now());
        socket.set_read_timeout(Some(wait.max(Duration::from_millis(1))))?;
        let Ok((length, from)) = socket.recv_from(&mut buffer) else {
            continue;
        };
        let (Some(member), Ok(Datagram::Status(report))) =
            (config.member_at(from), wire::decode(&buffer[..length]))
        else {
            continue;
        };
        reports.insert(member, report);
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
    let Some(projector) = &config.projector else {
        bail!("the cluster configuration has no [projector] section: this cluster runs no projections");
    };
    let socket = client_socket(config)?;
    let bytes = wire::encode(request).map_err(anyhow::Error::msg)?;
    let deadline = Instant::now() + timeout;
    let mut buffer = vec![0; wire::MAX_DATAGRAM + 1];
    let mut next_send = Instant::now();
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        if now >= next_send {
            socket.send_to(&bytes, projector.addr).ok();
            next_send = now + resend;
        }
        let wait = deadline.min(next_send).saturating_duration_since(now);
        socket.set_read_timeout(Some(wait.max(Duration::from_millis(1))))?;
        let Ok((length, from)) = socket.recv_from(&mut buffer) else {
            continue;
        };
        if from != SocketAddr::V4(projector.addr) {
            continue;
        }
        match wire::decode(&buffer[..length]) {
            Ok(answer @ (Datagram::SearchResult(_) | Datagram::TripsResult(_))) => {
                return Ok(Some(answer))
            }
            _ => continue,
        }
    }
}

/// An operator's line to the controller: one socket, so that the
/// controller's answers (a `MoveRefused`) come back to it.
pub struct ControllerLink {
    socket: UdpSocket,
    addr: SocketAddrV4,
    buffer: Vec<u8>,
}

impl ControllerLink {
    pub fn open(config: &ClusterConfig) -> Result<Self> {
        Ok(ControllerLink {
            socket: client_socket(config)?,
            addr: config.controller.addr,
            buffer: vec![0; wire::MAX_DATAGRAM + 1],
        })
    }

    /// Sends `msg` to the controller.
    pub fn send(&self, msg: Msg) -> Result<()> {
        let bytes = wire::encode(&Datagram::Protocol(vec![msg])).map_err(anyhow::Error::msg)?;
        self.socket
            .send_to(&bytes, self.addr)
            .context("cannot reach the controller")?;
        Ok(())
    }

    /// The reason the controller refused a move of `bucket`, if it said
    /// so within `wait`.
    pub fn refusal(&mut self, bucket: Bucket, wait: Duration) -> Result<Option<String>> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            self.socket
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))?;
            let Ok((length, from)) = self.socket.recv_from(&mut self.buffer) else {
                return Ok(None);
            };
            if from != SocketAddr::V4(self.addr) {
                continue;
            }
            if let Ok(Datagram::Protocol(msgs)) = wire::decode(&self.buffer[..length]) {
                for msg in msgs {
                    if let Msg::MoveRefused { bucket: b, reason } = msg {
                        if b == bucket {
                            return Ok(Some(reason));
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

    /// Goal: printed tokens parse back; malformed ones get a reason.
    #[test]
    fn tokens_round_trip_through_text() {
        let token = Token {
            client: 123,
            seq: 4,
        };
        let text = token_text(token, Bucket(17));
        assert_eq!(text, "T123.4@b17");
        assert_eq!(parse_token(&text).unwrap(), (token, Bucket(17)));
        assert!(parse_token("T123.4").is_err());
        assert!(parse_token("X@b1").is_err());
        assert!(parse_token("T1.2@bx").is_err());
    }
}
