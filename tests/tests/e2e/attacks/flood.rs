//! A flood of malformed datagrams while the cluster books.

use super::*;
use crate::cluster::booking_token;
use std::sync::atomic::AtomicU64;

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
    // Let the members work through what is still queued before the logs
    // are measured.
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
