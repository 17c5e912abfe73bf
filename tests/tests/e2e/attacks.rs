//! Attacks from outside the cluster, each refused: forged, replayed,
//! oversized-on-decode and flooded datagrams against a running cluster (and
//! forged answers against a client), as a stranger without the member or
//! operator key would send them. Each test checks that the members stay up,
//! that nothing the attack asked for happened, and that `berth status`
//! counts what was dropped.

use crate::cluster::{booking_token, cabins_in, drops, placement_line, Cluster, TRIP};
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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
        buckets: vec![placement],
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

/// Goal: a map bomb — a datagram of about 15 bytes claiming a placement
/// map of 2^31 buckets — sent raw and sealed with the client key to a
/// replica, the controller and the projector is refused without the
/// allocation it asks for: every member stays up, the cluster still books,
/// and status counts the drops. (Sealed with the client key it reaches the
/// decoder: this fails, with the member aborting on a huge allocation,
/// until decoding refuses maps of more than 65,536 buckets.)
#[test]
fn a_map_bomb_is_refused() {
    let cluster = Cluster::start();
    let config = config_of(&cluster);
    // The splice is what it claims: with a small count it decodes to a
    // map of that many buckets.
    let small = wire::decode(&map_bomb(3)).unwrap();
    let Datagram::Protocol(msgs) = &small else {
        panic!("{small:?}")
    };
    assert!(matches!(&msgs[..], [Msg::Map(map)] if map.bucket_count() == 3));
    let bomb = map_bomb(1 << 31);
    assert!(bomb.len() < 24, "{} bytes", bomb.len());
    let client = key_of(&cluster, KeyKind::Client);
    let projector = config.projector_id().unwrap();
    let socket = udp();
    for target in [Id::from(1), Id::from(0), projector] {
        let addr = config.addr_of(target).unwrap();
        socket.send_to(&bomb, addr).unwrap();
        let sealed = seal(
            &client,
            KeyKind::Client,
            Sender::client_id(),
            id_number(target),
            &bomb,
        );
        socket.send_to(&sealed, addr).unwrap();
    }
    // Give a member that would abort the time to do so.
    std::thread::sleep(Duration::from_secs(1));
    assert_all_up(&cluster);
    let booked = cluster.book("M1");
    assert_eq!(booked.status.code(), Some(0), "{}", stdout(&booked));
    let status = cluster.wait_until(Duration::from_secs(10), "the bombs counted", |status| {
        ["replica 1", "controller", "projector"]
            .iter()
            .all(|member| dropped_total(status, member) >= 2)
    });
    eprintln!("{status}");
    assert_all_up(&cluster);
}

/// Goal: operator commands (`Failover`, `MoveBucket`) for every bucket,
/// forged unsealed, sealed with the client key, and sealed with the client
/// key but labelled as the operator's, change nothing: the map's version
/// and every placement stay as they were, and the controller counts the
/// drops. The same failover with the operator key (`berth failover`)
/// works.
#[test]
fn forged_operator_commands_change_nothing() {
    let cluster = Cluster::start();
    let config = config_of(&cluster);
    let controller = config.controller.addr;
    let before = map_section(&cluster.status());
    let commands: Vec<Msg> = (0..64)
        .flat_map(|bucket| {
            [
                Msg::Failover {
                    bucket: Bucket(bucket),
                },
                Msg::MoveBucket {
                    bucket: Bucket(bucket),
                    group: GroupId(3 - home_group(bucket)),
                },
            ]
        })
        .collect();
    let payload = protocol(commands);
    let sealed = seal(
        &key_of(&cluster, KeyKind::Client),
        KeyKind::Client,
        Sender::client_id(),
        0,
        &payload,
    );
    let socket = udp();
    socket.send_to(&payload, controller).unwrap();
    socket.send_to(&sealed, controller).unwrap();
    socket.send_to(&relabelled(&sealed, 1), controller).unwrap();
    // Time for a failover or a move to show, had one started.
    std::thread::sleep(Duration::from_secs(2));
    let status = cluster.wait_until(Duration::from_secs(10), "the drops counted", |status| {
        dropped(status, "controller", "unexpected") >= 128
            && dropped(status, "controller", "undecodable") >= 1
            && dropped(status, "controller", "bad MAC") >= 1
    });
    assert_eq!(map_section(&status), before, "{status}");
    // Control: the operator key does what the forgeries could not.
    let failover = cluster.berth(&["failover", "--bucket", "3"]);
    assert_eq!(failover.status.code(), Some(0), "{}", stdout(&failover));
    let status = cluster.wait_until(Duration::from_secs(10), "bucket 3 failed over", |status| {
        placement_line(status, 3).contains("leader 2 (madrid-b)")
    });
    assert_ne!(map_section(&status), before);
    assert_all_up(&cluster);
}

/// `berth search` on the shared trip.
fn search(cluster: &Cluster) -> Output {
    let (route, date) = TRIP.split_at(7);
    cluster.berth(&[
        "search",
        "--route",
        route,
        "--date",
        date.trim_start_matches('-'),
    ])
}

/// The cabins `search` printed on its line starting `label` ("available",
/// "held", "sold").
fn listed(output: &Output, label: &str) -> Vec<String> {
    let text = stdout(output);
    text.lines()
        .find(|line| line.starts_with(&format!("{label} (")))
        .and_then(|line| line.split_once(": "))
        .map(|(_, cabins)| cabins.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_else(|| panic!("no {label} line in: {text}"))
}

/// Goal: a forged change stream — `Changes` claiming a cabin sold, sent to
/// the projector unsealed, sealed with the client key under replica 1's
/// sender id, and relabelled as a member's — is not believed: `berth
/// search` still shows the cabin available (while a real booking made
/// after the forgery shows as sold), and the projector counts the drops.
#[test]
fn a_forged_change_stream_is_not_believed() {
    let cluster = Cluster::start();
    let config = config_of(&cluster);
    let projector = config.projector_id().unwrap();
    let projector_addr = config.addr_of(projector).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while search(&cluster).status.code() != Some(0) {
        assert!(Instant::now() < deadline, "the search view never got fresh");
        // Polling: the projection catches up on its own clock.
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(listed(&search(&cluster), "available").contains(&"C7".to_owned()));
    let unit = InventoryUnit::new(TRIP, "C7");
    let bucket = bucket_of(&unit, 64);
    let hold = Token {
        client: 666,
        seq: 1,
    };
    let mut state = BucketState::default();
    state.units.insert(
        unit.clone(),
        UnitStatus::Booked {
            hold,
            booking: Token {
                client: 666,
                seq: 2,
            },
            customer: Customer::new("mallory"),
        },
    );
    let forged = protocol(vec![Msg::Changes(Arc::new(vec![Changes {
        bucket,
        epoch: Epoch(1),
        leads: true,
        after: Position(0),
        reset: Some((Position(1_000), state)),
        entries: Vec::new(),
        commit_position: Position(1_000),
    }]))]);
    let sealed = seal(
        &key_of(&cluster, KeyKind::Client),
        KeyKind::Client,
        1,
        id_number(projector),
        &forged,
    );
    let socket = udp();
    socket.send_to(&forged, projector_addr).unwrap();
    socket.send_to(&sealed, projector_addr).unwrap();
    socket
        .send_to(&relabelled(&sealed, 0), projector_addr)
        .unwrap();
    // Control: a real booking, made after the forgery, shows as sold.
    let booked = cluster.book("C8");
    assert_eq!(booked.status.code(), Some(0), "{}", stdout(&booked));
    let deadline = Instant::now() + Duration::from_secs(30);
    let answer = loop {
        let answer = search(&cluster);
        if listed(&answer, "sold").contains(&"C8".to_owned()) {
            break answer;
        }
        assert!(
            Instant::now() < deadline,
            "the real booking never showed: {}",
            stdout(&answer)
        );
        // Polling, as above.
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        listed(&answer, "available").contains(&"C7".to_owned()),
        "{}",
        stdout(&answer)
    );
    assert!(
        !listed(&answer, "sold").contains(&"C7".to_owned()),
        "{}",
        stdout(&answer)
    );
    let status = cluster.wait_until(Duration::from_secs(10), "the drops counted", |status| {
        dropped(status, "projector", "unexpected") >= 1
            && dropped(status, "projector", "undecodable") >= 1
            && dropped(status, "projector", "bad MAC") >= 1
    });
    eprintln!("{status}");
    assert_all_up(&cluster);
}

/// How a fake member seals its forged answers.
#[derive(Clone, Copy, Debug)]
enum Seal {
    /// Not at all.
    None,
    /// Under random keys (a client's and a member's kind), not the
    /// cluster's.
    WrongKeys,
    /// Under the cluster's client key: the control (a client-key holder
    /// can forge answers to other clients, see docs/security.md).
    ClientKey,
}

/// Runs `berth book` against the fake cluster at `config_path` whose
/// members are `sockets` (member id, socket); answers every request it
/// sends with a forged newer map and a forged `Confirmed` reply, sealed as
/// `how`. Returns the client's output and how many forged datagrams were
/// sent.
fn book_against_fakes(
    config_path: &Path,
    sockets: &[(Id, UdpSocket)],
    client_key: &Key,
    map: &PlacementMap,
    how: Seal,
) -> (Output, usize) {
    let keys = Keys::default().with(KeyKind::Client, client_key.clone());
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let client = scope.spawn(|| {
            let output = run_bounded(
                Command::new(binary("berth"))
                    .args(["book", "--trip", TRIP, "--cabin", "C1", "--timeout", "3"])
                    .arg("--config")
                    .arg(config_path),
                Duration::from_secs(30),
            );
            done.store(true, Ordering::Relaxed);
            output
        });
        let mut forged = 0;
        let mut buffer = vec![0u8; 65_536];
        let mut last_unit = InventoryUnit::new(TRIP, "C1");
        while !done.load(Ordering::Relaxed) {
            let mut idle = true;
            for (member, socket) in sockets {
                let Ok((length, from)) = socket.recv_from(&mut buffer) else {
                    continue;
                };
                idle = false;
                // The fake members hold the client key (it is this fake
                // cluster's): they read the request to forge a fitting
                // answer.
                let Ok((header, payload)) = auth::open(&keys, &buffer[..length]) else {
                    continue;
                };
                let Ok(Datagram::Protocol(msgs)) = wire::decode(payload) else {
                    continue;
                };
                let mut answers = vec![Msg::Map(map.clone())];
                for msg in msgs {
                    let (bucket, epoch, token, unit) = match msg {
                        Msg::Request {
                            bucket,
                            epoch,
                            command,
                        } => (bucket, epoch, command.token, command.op.unit().clone()),
                        Msg::Query {
                            bucket,
                            epoch,
                            token,
                        } => (bucket, epoch, token, last_unit.clone()),
                        _ => continue,
                    };
                    last_unit = unit.clone();
                    answers.push(Msg::Reply(Reply {
                        bucket,
                        epoch,
                        position: Position(1),
                        token,
                        unit,
                        outcome: Outcome::Confirmed,
                    }));
                }
                let payload = protocol(answers);
                let me = id_number(*member);
                let datagrams = match how {
                    Seal::None => vec![payload],
                    Seal::WrongKeys => vec![
                        seal(
                            &Key::generate().unwrap(),
                            KeyKind::Client,
                            me,
                            header.sender,
                            &payload,
                        ),
                        seal(
                            &Key::generate().unwrap(),
                            KeyKind::Member,
                            me,
                            header.sender,
                            &payload,
                        ),
                    ],
                    Seal::ClientKey => vec![seal(
                        client_key,
                        KeyKind::Client,
                        me,
                        header.sender,
                        &payload,
                    )],
                };
                for datagram in datagrams {
                    socket.send_to(&datagram, from).unwrap();
                    forged += 1;
                }
            }
            if idle {
                // Polling the fake members' sockets (non-blocking).
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        (client.join().unwrap(), forged)
    })
}

/// Goal: a client believes only answers sealed with its own key by a
/// configured member: against a fake cluster (sockets the test holds at
/// every member's address) answering each request with a newer map and a
/// `Confirmed` reply, unsealed or sealed with keys that are not the
/// cluster's, `berth book` prints no confirmation and exits 3
/// (unreachable). Control: the same forgery sealed with the cluster's
/// client key is believed.
#[test]
fn forged_answers_do_not_fool_a_client() {
    let dir = tempfile::tempdir().unwrap();
    let (base, sockets) = (0..200)
        .find_map(|attempt| {
            let base =
                20_000 + ((std::process::id() as u16).wrapping_mul(7) % 40_000) + attempt * 97;
            let sockets: Vec<UdpSocket> = (0..8)
                .map_while(|offset| UdpSocket::bind(("127.0.0.1", base + offset)).ok())
                .collect();
            (sockets.len() == 8).then_some((base, sockets))
        })
        .expect("8 free UDP ports in a row");
    let config = ClusterConfig::local(64, 2, 3, base).unwrap();
    let path = dir.path().join("cluster.toml");
    std::fs::write(&path, config.to_toml()).unwrap();
    let keys = run_bounded(
        Command::new(binary("berth"))
            .args(["keys", "--dir"])
            .arg(dir.path()),
        Duration::from_secs(30),
    );
    assert_eq!(keys.status.code(), Some(0), "{}", stdout(&keys));
    let config = ClusterConfig::load(&path).unwrap();
    let client_key = Keys::require(&config.keys_dir(), KeyKind::Client).unwrap();
    let members: Vec<(Id, UdpSocket)> = sockets
        .into_iter()
        .map(|socket| {
            let SocketAddr::V4(addr) = socket.local_addr().unwrap() else {
                unreachable!("bound on IPv4")
            };
            let id = if addr == config.controller.addr {
                Id::from(0)
            } else if Some(Id::from(addr)) == config.projector_id() {
                Id::from(addr)
            } else {
                let replica = config.replicas.iter().find(|r| r.addr == addr).unwrap();
                Id::from(replica.id)
            };
            socket.set_nonblocking(true).unwrap();
            (id, socket)
        })
        .collect();
    let mut map = config.initial_map();
    map.version = 99;
    for how in [Seal::None, Seal::WrongKeys] {
        let started = Instant::now();
        let (output, forged) = book_against_fakes(&path, &members, &client_key, &map, how);
        let text = stdout(&output);
        assert!(forged > 0, "{how:?}: the client never asked");
        assert!(!text.contains("confirmed:"), "{how:?}: {text}");
        assert_eq!(output.status.code(), Some(3), "{how:?}: {text}");
        // The timed-out client says which write may have happened and how
        // to find out.
        assert!(
            text.contains("in flight: hold of") && text.contains("berth token T"),
            "{how:?}: {text}"
        );
        eprintln!(
            "{how:?}: {forged} forged answers ignored; exit 3 after {:?}",
            started.elapsed()
        );
    }
    let (output, _) = book_against_fakes(&path, &members, &client_key, &map, Seal::ClientKey);
    assert!(
        stdout(&output).contains("confirmed:"),
        "the control forgery is well-formed: {}",
        stdout(&output)
    );
}

/// Goal: a stranger that takes a crashed leader's port — replica 1, killed
/// with -9 — and echoes every datagram it gets back to its sender and to
/// the controller for ~10 s (replays of genuine sealed traffic) does not
/// stop the controller from failing the leader's buckets over: a booking
/// on bucket 0 (group 1) is confirmed, and the controller counts the
/// echoes as dropped.
#[test]
fn a_stranger_on_a_crashed_members_port_is_ignored() {
    let cluster = Cluster::start();
    let config = config_of(&cluster);
    let port = config.addr_of(Id::from(1)).unwrap();
    let controller = config.controller.addr;
    let cabin = cabins_in(0, 1).remove(0);
    let pid = cluster.pid("replica 1");
    // SAFETY: killing a member this test started.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGKILL);
    }
    let killed = Instant::now();
    let stranger = loop {
        match UdpSocket::bind(port) {
            Ok(socket) => break socket,
            Err(error) => {
                assert!(
                    killed.elapsed() < Duration::from_secs(10),
                    "{port} never came free: {error}"
                );
                // Polling: the port frees when the kernel reaps the socket.
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    };
    let echoed = AtomicU64::new(0);
    let (booked, took) = std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut buffer = vec![0u8; 65_536];
            let deadline = Instant::now() + Duration::from_secs(10);
            stranger
                .set_read_timeout(Some(Duration::from_millis(50)))
                .unwrap();
            while Instant::now() < deadline {
                let Ok((length, from)) = stranger.recv_from(&mut buffer) else {
                    continue;
                };
                stranger.send_to(&buffer[..length], from).ok();
                stranger.send_to(&buffer[..length], controller).ok();
                echoed.fetch_add(1, Ordering::Relaxed);
            }
        });
        let booked = book_within(&cluster, &cabin, 60);
        (booked, killed.elapsed())
    });
    let echoed = echoed.into_inner();
    eprintln!("the stranger echoed {echoed} datagrams; kill -9 to a confirmed booking on b0 took {took:?}");
    assert_eq!(booked.status.code(), Some(0), "{}", stdout(&booked));
    assert!(echoed > 0, "nothing reached the stranger");
    let status = cluster.wait_until(Duration::from_secs(10), "the echoes counted", |status| {
        dropped(status, "controller", "unexpected") + dropped(status, "controller", "replay") > 0
    });
    assert!(
        placement_line(&status, 0).contains("leader 2 (madrid-b)"),
        "{status}"
    );
    for (name, pid) in cluster.members() {
        if !name.starts_with("replica 1 ") {
            assert!(alive(*pid), "{name} (pid {pid}) died");
        }
    }
    cluster.assert_logs_clean();
}

/// Goal: the same sealed `StatusRequest` sent twice to replica 2 is
/// answered once; status then shows `1 replay` for replica 2.
#[test]
fn a_replayed_request_is_answered_once() {
    let cluster = Cluster::start();
    let config = config_of(&cluster);
    let replica = config.addr_of(Id::from(2)).unwrap();
    let key = key_of(&cluster, KeyKind::Client);
    let mut sender = Sender::new(KeyKind::Client, Sender::client_id(), key.clone());
    let bytes = sender.seal(2, &encode(&Datagram::StatusRequest));
    let socket = udp();
    socket.send_to(&bytes, replica).unwrap();
    socket.send_to(&bytes, replica).unwrap();
    let keys = Keys::default().with(KeyKind::Client, key);
    let answers = receive_for(&socket, Duration::from_secs(2))
        .iter()
        .filter(|bytes| {
            auth::open(&keys, bytes).is_ok_and(|(header, payload)| {
                header.sender == 2
                    && header.recipient == sender.id
                    && matches!(wire::decode(payload), Ok(Datagram::Status(_)))
            })
        })
        .count();
    assert_eq!(answers, 1);
    let status = cluster.wait_until(Duration::from_secs(10), "the replay counted", |status| {
        dropped(status, "replica 2", "replay") >= 1
    });
    assert_eq!(dropped(&status, "replica 2", "replay"), 1, "{status}");
    assert_all_up(&cluster);
}

/// Goal: no amplification: a ~24 KB `Pull` (member-only) naming bucket 0
/// 12,000 times, sealed with the client key or unsealed, draws not one
/// byte from replica 1 within a second (a status request from the same
/// socket is answered: the route works).
#[test]
fn a_large_pull_from_outside_draws_no_answer() {
    let cluster = Cluster::start();
    let config = config_of(&cluster);
    let replica = config.addr_of(Id::from(1)).unwrap();
    let key = key_of(&cluster, KeyKind::Client);
    let pull = protocol(vec![Msg::Pull {
        from: vec![(Bucket(0), Position(0)); 12_000],
    }]);
    assert!(pull.len() >= 24_000, "{} bytes", pull.len());
    let mut sender = Sender::new(KeyKind::Client, Sender::client_id(), key);
    let socket = udp();
    socket.send_to(&sender.seal(1, &pull), replica).unwrap();
    let answers = receive_for(&socket, Duration::from_secs(1));
    let bytes: usize = answers.iter().map(Vec::len).sum();
    assert_eq!(bytes, 0, "sealed: {} answers", answers.len());
    socket.send_to(&pull, replica).unwrap();
    let answers = receive_for(&socket, Duration::from_secs(1));
    let bytes: usize = answers.iter().map(Vec::len).sum();
    assert_eq!(bytes, 0, "unsealed: {} answers", answers.len());
    // Control: the same socket and sender are answered when they may be.
    socket
        .send_to(&sender.seal(1, &encode(&Datagram::StatusRequest)), replica)
        .unwrap();
    assert!(!receive_for(&socket, Duration::from_secs(2)).is_empty());
    let status = cluster.wait_until(Duration::from_secs(10), "the pulls counted", |status| {
        dropped(status, "replica 1", "unexpected") >= 1
            && dropped(status, "replica 1", "undecodable") >= 1
    });
    eprintln!("{status}");
    assert_all_up(&cluster);
}

/// The total size of the files in `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().metadata().unwrap().len())
        .sum()
}

/// The flood's size: at least this many datagrams, unless 60 s pass first.
const FLOOD: u64 = 1_000_000;
const FLOOD_LIMIT: Duration = Duration::from_secs(60);

/// Goal: a flood of at least 1,000,000 malformed datagrams (random bytes
/// of random lengths, berth's header with garbage, bit-flipped copies of
/// genuine sealed datagrams) over every member's port from two sockets,
/// while a client books 20 cabins: every member survives, all 20 bookings
/// are confirmed, and the members' logs grow by less than 1 MB in all
/// (drops are counted, warnings rate-limited). Prints the datagrams sent,
/// the seconds taken and the log bytes written.
#[test]
fn a_flood_of_junk_is_absorbed() {
    let cluster = Cluster::start();
    let config = config_of(&cluster);
    let key = key_of(&cluster, KeyKind::Client);
    let mut targets: Vec<(Id, SocketAddrV4)> = vec![(Id::from(0), config.controller.addr)];
    targets.extend(
        config
            .replicas
            .iter()
            .map(|replica| (Id::from(replica.id), replica.addr)),
    );
    let projector = config.projector_id().unwrap();
    targets.push((projector, config.addr_of(projector).unwrap()));
    // A genuine sealed datagram for each target, to flip bits in.
    let genuine: Vec<Vec<u8>> = targets
        .iter()
        .map(|(id, _)| {
            seal(
                &key,
                KeyKind::Client,
                Sender::client_id(),
                id_number(*id),
                &protocol(vec![Msg::FetchMap]),
            )
        })
        .collect();
    let logs = cluster.dir.path().join("logs");
    let logs_before = dir_bytes(&logs);
    let cabins: Vec<String> = (0..20).map(|n| format!("F{n}")).collect();
    let sent = AtomicU64::new(0);
    let started = Instant::now();
    let ((bookings, booked_in), flood_took) = std::thread::scope(|scope| {
        let booker = scope.spawn(|| {
            let bookings = cabins
                .iter()
                .map(|cabin| book_within(&cluster, cabin, 120))
                .collect::<Vec<_>>();
            (bookings, started.elapsed())
        });
        let flooders: Vec<_> = (0..2u64)
            .map(|seed| {
                let (targets, genuine, sent) = (&targets, &genuine, &sent);
                scope.spawn(move || {
                    let socket = udp();
                    let mut rng = fastrand::Rng::with_seed(seed);
                    let mut buffer = [0u8; 1500];
                    let share = FLOOD / 2;
                    let mut mine = 0;
                    while mine < share && started.elapsed() < FLOOD_LIMIT {
                        for _ in 0..1000 {
                            let target = rng.usize(0..targets.len());
                            let bytes: &[u8] = match rng.u8(0..3) {
                                0 => {
                                    let length = rng.usize(0..1500);
                                    rng.fill(&mut buffer[..length]);
                                    &buffer[..length]
                                }
                                1 => {
                                    let length = rng.usize(2..1500);
                                    rng.fill(&mut buffer[..length]);
                                    buffer[0] = 0xB1;
                                    buffer[1] = 2;
                                    &buffer[..length]
                                }
                                _ => {
                                    let real = &genuine[target];
                                    let length = real.len();
                                    buffer[..length].copy_from_slice(real);
                                    for _ in 0..rng.usize(1..4) {
                                        let bit = rng.usize(0..length * 8);
                                        buffer[bit / 8] ^= 1 << (bit % 8);
                                    }
                                    &buffer[..length]
                                }
                            };
                            // A full receive buffer drops it: so be it.
                            socket.send_to(bytes, targets[target].1).ok();
                        }
                        mine += 1000;
                    }
                    sent.fetch_add(mine, Ordering::Relaxed);
                })
            })
            .collect();
        for flooder in flooders {
            flooder.join().unwrap();
        }
        let flood_took = started.elapsed();
        (booker.join().unwrap(), flood_took)
    });
    let sent = sent.into_inner();
    // The rate-limited warnings' summaries come at the next window (10 s).
    std::thread::sleep(Duration::from_secs(1));
    let logs_after = dir_bytes(&logs);
    let status = cluster.status();
    let counted: u64 = ["controller", "projector"]
        .into_iter()
        .map(str::to_owned)
        .chain((1..=6).map(|n| format!("replica {n}")))
        .map(|member| dropped_total(&status, &member))
        .sum();
    eprintln!(
        "flood: {sent} datagrams in {:.1} s ({:.0}/s); the members counted {counted} drops; \
         the 20 bookings took {:.1} s; the logs grew {} bytes",
        flood_took.as_secs_f64(),
        sent as f64 / flood_took.as_secs_f64(),
        booked_in.as_secs_f64(),
        logs_after - logs_before
    );
    assert!(
        sent >= FLOOD,
        "only {sent} datagrams within {FLOOD_LIMIT:?}"
    );
    for (cabin, output) in cabins.iter().zip(&bookings) {
        assert_eq!(output.status.code(), Some(0), "{cabin}: {}", stdout(output));
        booking_token(output);
    }
    assert!(
        logs_after - logs_before < 1_000_000,
        "the logs grew {} bytes",
        logs_after - logs_before
    );
    assert!(counted > 0, "{status}");
    assert_all_up(&cluster);
}

/// The ones'-complement sum of `bytes` (IPv4 and UDP checksums).
fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for chunk in bytes.chunks(2) {
        let word = u16::from_be_bytes([chunk[0], *chunk.get(1).unwrap_or(&0)]);
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4 packet carrying a UDP datagram from `src` to `dst`.
fn udp_packet(src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8]) -> Vec<u8> {
    let udp_length = 8 + payload.len();
    let total = 20 + udp_length;
    let mut packet = Vec::with_capacity(total);
    packet.extend_from_slice(&[0x45, 0]);
    packet.extend_from_slice(&(total as u16).to_be_bytes());
    packet.extend_from_slice(&fastrand::u16(1..).to_be_bytes());
    packet.extend_from_slice(&[0x40, 0, 64, libc::IPPROTO_UDP as u8, 0, 0]);
    packet.extend_from_slice(&src.ip().octets());
    packet.extend_from_slice(&dst.ip().octets());
    let ip_sum = checksum(&packet[..20]);
    packet[10..12].copy_from_slice(&ip_sum.to_be_bytes());
    let mut udp = Vec::with_capacity(udp_length);
    udp.extend_from_slice(&src.port().to_be_bytes());
    udp.extend_from_slice(&dst.port().to_be_bytes());
    udp.extend_from_slice(&(udp_length as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(payload);
    let mut pseudo = Vec::with_capacity(12 + udp.len());
    pseudo.extend_from_slice(&src.ip().octets());
    pseudo.extend_from_slice(&dst.ip().octets());
    pseudo.extend_from_slice(&[0, libc::IPPROTO_UDP as u8]);
    pseudo.extend_from_slice(&(udp_length as u16).to_be_bytes());
    pseudo.extend_from_slice(&udp);
    let udp_sum = match checksum(&pseudo) {
        0 => 0xffff,
        sum => sum,
    };
    udp[6..8].copy_from_slice(&udp_sum.to_be_bytes());
    packet.extend_from_slice(&udp);
    packet
}

/// A raw IPv4 socket (the caller writes the IP header), or `None` without
/// the privilege.
fn raw_socket() -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: a plain socket(2) call; the descriptor is owned below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW) };
    // SAFETY: `fd` is a fresh descriptor nothing else owns.
    (fd >= 0).then(|| unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// Sends `packet` (IP header included) on the raw socket `socket` to `dst`.
fn send_raw(socket: &std::os::fd::OwnedFd, packet: &[u8], dst: SocketAddrV4) {
    use std::os::fd::AsRawFd;
    let address = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(dst.ip().octets()),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: `packet` and `address` outlive the call; the lengths are
    // theirs.
    let sent = unsafe {
        libc::sendto(
            socket.as_raw_fd(),
            packet.as_ptr().cast(),
            packet.len(),
            0,
            (&address as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    assert_eq!(
        sent,
        packet.len() as isize,
        "sendto: {}",
        std::io::Error::last_os_error()
    );
}

/// Goal: the source address proves nothing: a `Placement` that would take
/// bucket 2 from replica 1, sent in packets whose source is the
/// controller's address and port (a raw socket), unsealed, sealed with the
/// client key, and relabelled as a member's, is dropped: the bucket stays
/// at replica 1 and writable, and replica 1 counts the drops. Needs root
/// (a raw socket); otherwise it says it skipped.
#[test]
fn a_spoofed_source_address_is_not_believed() {
    let Some(raw) = raw_socket() else {
        eprintln!("skipped: needs root for a raw socket");
        return;
    };
    let cluster = Cluster::start();
    let config = config_of(&cluster);
    let controller = config.controller.addr;
    let replica = config.addr_of(Id::from(1)).unwrap();
    let bucket = 2;
    let before = placement_line(&cluster.status(), bucket);
    let steal = protocol(vec![Msg::Placement {
        bucket: Bucket(bucket),
        placement: BucketPlacement {
            epoch: Epoch(1_000),
            group: GroupId(2),
            leader: Id::from(4),
            sync_followers: vec![Id::from(5)],
            async_followers: vec![Id::from(6)],
        },
    }]);
    let sealed = seal(
        &key_of(&cluster, KeyKind::Client),
        KeyKind::Client,
        0,
        1,
        &steal,
    );
    for payload in [steal.clone(), sealed.clone(), relabelled(&sealed, 0)] {
        send_raw(&raw, &udp_packet(controller, replica, &payload), replica);
    }
    let status = cluster.wait_until(Duration::from_secs(10), "the drops counted", |status| {
        dropped(status, "replica 1", "undecodable") >= 1
            && dropped(status, "replica 1", "unexpected") >= 1
            && dropped(status, "replica 1", "bad MAC") >= 1
    });
    eprintln!("{status}");
    let cabin = cabins_in(bucket, 1).remove(0);
    let booked = cluster.book(&cabin);
    assert_eq!(booked.status.code(), Some(0), "{}", stdout(&booked));
    assert!(
        stdout(&booked).contains(&format!("bucket {bucket} at e1;")),
        "{}",
        stdout(&booked)
    );
    assert_eq!(placement_line(&cluster.status(), bucket), before);
    let status = cluster.status();
    let replica_1 = drops(&status, "replica 1");
    assert!(
        replica_1.values().sum::<u64>() >= 3,
        "{replica_1:?}\n{status}"
    );
    assert_all_up(&cluster);
}
