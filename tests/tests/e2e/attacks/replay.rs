//! Old or borrowed traffic: a stranger on a crashed member's port, a
//! replayed request, and a pull that would amplify.

use super::*;
use std::sync::atomic::AtomicU64;

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
