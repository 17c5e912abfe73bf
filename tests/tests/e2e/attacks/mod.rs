//! Attacks from outside the cluster, each refused: forged, replayed,
//! oversized-on-decode and flooded datagrams against a running cluster (and
//! forged answers against a client), as a stranger without the member or
//! operator key would send them. Each test checks that the members stay up,
//! that nothing the attack asked for happened, and that `berth status`
//! counts what was dropped.

use crate::cluster::{cabins_in, drops, placement_line, Cluster, TRIP};
use crate::util::{binary, run_bounded, stdout};
use berth::auth::{self, Key, KeyKind, Keys, Sender};
use berth::config::ClusterConfig;
use berth::wire::{self, Datagram};
use berth_model::actor::Changes;
use berth_model::bucket::UnitStatus;
use berth_model::hashing::bucket_of;
use berth_model::messages::Reply;
use berth_model::{
    Bucket, BucketPlacement, BucketState, Customer, Epoch, GroupId, InventoryUnit, Msg, Outcome,
    PlacementMap, Position, Token,
};
use stateright::actor::Id;
use std::io::ErrorKind;
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
mod flood;
mod forged;
mod replay;
mod spoof;

/// The cluster's configuration, as its members read it.
fn config_of(cluster: &Cluster) -> ClusterConfig {
    ClusterConfig::load(&cluster.config).unwrap()
}

/// The cluster's `kind` key (what a holder of that key file has).
fn key_of(cluster: &Cluster, kind: KeyKind) -> Key {
    Keys::require(&cluster.dir.path().join("keys"), kind).unwrap()
}

fn encode(datagram: &Datagram) -> Vec<u8> {
    wire::encode(datagram).unwrap()
}

fn protocol(msgs: Vec<Msg>) -> Vec<u8> {
    encode(&Datagram::Protocol(msgs))
}

/// `payload` sealed under `key` (of `kind`) by a fresh sender `sender`,
/// for `recipient`.
fn seal(key: &Key, kind: KeyKind, sender: u64, recipient: u64, payload: &[u8]) -> Vec<u8> {
    Sender::new(kind, sender, key.clone()).seal(recipient, payload)
}

/// `sealed` with its key-kind byte changed to claim `kind`: berth's format,
/// but a MAC no key verifies.
fn relabelled(sealed: &[u8], kind: u8) -> Vec<u8> {
    let mut bytes = sealed.to_vec();
    bytes[1] = kind;
    bytes
}

fn id_number(id: Id) -> u64 {
    usize::from(id) as u64
}

fn udp() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").unwrap()
}

/// Whether process `pid` runs (exists and is not a zombie).
fn alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    if unsafe { libc::kill(pid as libc::pid_t, 0) } != 0 {
        return false;
    }
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    })
}

/// Every member's process runs, `berth status` hears every member, and
/// no log shows a panic or a failed allocation.
fn assert_all_up(cluster: &Cluster) {
    let dead: Vec<String> = cluster
        .members()
        .iter()
        .filter(|(_, pid)| !alive(*pid))
        .map(|(name, pid)| {
            format!(
                "{name} (pid {pid}), its log ending:\n{}",
                log_tail(cluster, name)
            )
        })
        .collect();
    assert!(dead.is_empty(), "members died:\n{}", dead.join("\n"));
    cluster.wait_until(Duration::from_secs(30), "every member answers", |status| {
        !status.contains("DOWN")
    });
    cluster.assert_logs_clean();
}

/// The panic in, or else the last lines of, the log of the member `cluster up` named `name`
/// ("controller", "replica 1 (madrid-a)", "projector (search, trips)").
fn log_tail(cluster: &Cluster, name: &str) -> String {
    let file = match name.split_whitespace().collect::<Vec<_>>()[..] {
        ["replica", id, ..] => format!("replica-{id}.log"),
        [first, ..] => format!("{first}.log"),
        [] => unreachable!("members have names"),
    };
    let log = std::fs::read(cluster.dir.path().join("logs").join(file)).unwrap_or_default();
    let log = String::from_utf8_lossy(&log);
    let lines: Vec<&str> = log.lines().collect();
    // A panic's message, else the last lines (a backtrace follows it).
    match lines
        .iter()
        .position(|line| line.contains("panicked") || line.contains("memory allocation"))
    {
        Some(at) => lines[at..lines.len().min(at + 3)].join("\n"),
        None => lines[lines.len().saturating_sub(5)..].join("\n"),
    }
}

/// All the datagrams `member` dropped, whatever the reason.
fn dropped_total(status: &str, member: &str) -> u64 {
    drops(status, member).values().sum()
}

/// How many `member` dropped for `reason`.
fn dropped(status: &str, member: &str, reason: &str) -> u64 {
    drops(status, member).get(reason).copied().unwrap_or(0)
}

/// The placement map as `berth status` prints it (its version, every
/// bucket's placement, failovers and moves in progress).
fn map_section(status: &str) -> String {
    let start = status
        .find("placement map version")
        .unwrap_or_else(|| panic!("no map in:\n{status}"));
    let end = status.find("replicas:").expect("a replicas section");
    status[start..end].to_owned()
}

/// Receives on `socket` for `wait`; the bytes of every datagram received.
fn receive_for(socket: &UdpSocket, wait: Duration) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + wait;
    let mut buffer = vec![0u8; 65_536];
    let mut received = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return received;
        }
        socket.set_read_timeout(Some(left)).unwrap();
        match socket.recv_from(&mut buffer) {
            Ok((length, _)) => received.push(buffer[..length].to_vec()),
            Err(error)
                if matches!(
                    error.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(error) => panic!("receive: {error}"),
        }
    }
}

/// Books `cabin` on the shared trip, waiting up to `seconds` for the
/// cluster.
fn book_within(cluster: &Cluster, cabin: &str, seconds: u64) -> Output {
    run_bounded(
        Command::new(binary("berth"))
            .args(["book", "--trip", TRIP, "--cabin", cabin, "--timeout"])
            .arg(seconds.to_string())
            .arg("--config")
            .arg(&cluster.config),
        Duration::from_secs(seconds + 30),
    )
}

/// The group a bucket starts on (buckets 0-31 on group 1, 32-63 on 2).
fn home_group(bucket: u32) -> u32 {
    if bucket < 32 {
        1
    } else {
        2
    }
}

/// A `Datagram::Protocol(vec![Msg::Map(..)])` whose map is one run of
/// `count` identical buckets: a few bytes on the wire however large `count`.
fn map_bomb(count: u32) -> Vec<u8> {
    let placement = ClusterConfig::local(64, 2, 3, 7000)
        .unwrap()
        .initial_map()
        .buckets[0]
        .clone();
    let one = protocol(vec![Msg::Map(PlacementMap {
        version: 1,
        buckets: vec![placement].into(),
    })]);
    // postcard: Protocol (variant 0), one message, Map (variant 6),
    // version 1, one run, of one bucket, then the placement.
    assert_eq!(one[..6], [0, 1, 6, 1, 1, 1], "the map's layout changed");
    let mut bomb = one[..5].to_vec();
    let mut rest = count;
    loop {
        let byte = (rest & 0x7f) as u8;
        rest >>= 7;
        if rest == 0 {
            bomb.push(byte);
            break;
        }
        bomb.push(byte | 0x80);
    }
    bomb.extend_from_slice(&one[6..]);
    bomb
}
