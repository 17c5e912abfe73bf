//! Forged datagrams: a map bomb, operator commands, a change stream and a
//! client's answers, sent without the key they need.

use super::*;

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
    let bucket = bucket_of(&unit, crate::cluster::BUCKETS);
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
        reset_part: None,
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
