//! The runtime end to end: `berth cluster up` as a real process tree on
//! loopback, clients as real processes, `kill -9`, moves, restarts.

use crate::util::{binary, run_bounded, stdout};
use berth_model::hashing::bucket_of;
use berth_model::InventoryUnit;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

pub(crate) const TRIP: &str = "BCN-JFK-2026-07-14";
/// Every end-to-end cluster runs at the default size users run.
pub(crate) const BUCKETS: u32 = 2048;

/// A running `berth cluster up` in a temporary directory.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    base_port: u16,
    hold_ttl: u64,
    lag_budget_ms: u64,
    buckets: u32,
    up: Option<Child>,
    /// The lines `cluster up` printed after "cluster up", as they come
    /// (kept, so that its stdout is drained for as long as it runs).
    lines: Option<Mutex<mpsc::Receiver<String>>>,
    /// Member name ("controller", "replica 1 (madrid-a)", ...) → pid.
    pids: Vec<(String, u32)>,
}

/// A base port with the controller's, six replicas' and the projector's
/// ports free.
fn free_base_port() -> u16 {
    for _ in 0..200 {
        let base = 20_000 + fastrand_port();
        let free = (0..8).all(|offset| UdpSocket::bind(("127.0.0.1", base + offset)).is_ok());
        if free {
            return base;
        }
    }
    panic!("no free block of UDP ports on 127.0.0.1");
}

/// A pseudo-random offset from the clock and pid (no extra dependency).
fn fastrand_port() -> u16 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    ((nanos ^ (std::process::id() << 7)) % 40_000) as u16
}

impl Cluster {
    /// Starts a cluster of two groups of three replicas over `BUCKETS`
    /// buckets and waits until every member answers.
    pub fn start() -> Cluster {
        Cluster::start_with_hold_ttl(600)
    }

    /// As `start`, with holds that expire after `hold_ttl` seconds.
    pub fn start_with_hold_ttl(hold_ttl: u64) -> Cluster {
        Cluster::start_with(hold_ttl, 5000)
    }

    /// As `start`, with holds that expire after `hold_ttl` seconds and an
    /// RPO budget of `lag_budget_ms` for async followers.
    pub fn start_with(hold_ttl: u64, lag_budget_ms: u64) -> Cluster {
        Cluster::start_sized(BUCKETS, hold_ttl, lag_budget_ms)
    }

    /// As `start_with`, over `buckets` buckets.
    pub fn start_sized(buckets: u32, hold_ttl: u64, lag_budget_ms: u64) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let base_port = free_base_port();
        let mut cluster = Cluster {
            config: dir.path().join("cluster.toml"),
            dir,
            base_port,
            hold_ttl,
            lag_budget_ms,
            buckets,
            up: None,
            lines: None,
            pids: Vec::new(),
        };
        cluster.up();
        cluster
    }

    /// (Re)starts `berth cluster up` on this cluster's directory.
    pub fn up(&mut self) {
        let mut child = Command::new(binary("berth"))
            .args(["cluster", "up", "--dir"])
            .arg(self.dir.path())
            .args(["--buckets", &self.buckets.to_string()])
            .args(["--base-port", &self.base_port.to_string()])
            .args(["--hold-ttl", &self.hold_ttl.to_string()])
            .args(["--lag-budget-ms", &self.lag_budget_ms.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn berth cluster up");
        let stdout = child.stdout.take().unwrap();
        let (lines, received) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        self.up = Some(child);
        self.pids.clear();
        loop {
            let line = received
                .recv_timeout(Duration::from_secs(30))
                .expect("cluster up prints its members within 30 s");
            if line.starts_with("cluster up") {
                self.lines = Some(Mutex::new(received));
                break;
            }
            if let Some((name, rest)) = line.split_once(" listening on ") {
                let pid = rest
                    .split(" pid ")
                    .nth(1)
                    .and_then(|tail| tail.split_whitespace().next())
                    .and_then(|pid| pid.parse().ok())
                    .expect("a pid on every member line");
                self.pids.push((name.trim().to_owned(), pid));
            }
        }
        self.wait_until(Duration::from_secs(30), "every member answers", |status| {
            !status.contains("DOWN")
        });
    }

    /// The pid of the member whose name starts with `name`.
    pub fn pid(&self, name: &str) -> u32 {
        self.pids
            .iter()
            .find(|(member, _)| member.starts_with(name))
            .unwrap_or_else(|| panic!("no member {name}: {:?}", self.pids))
            .1
    }

    /// The lines `cluster up` prints from now until one satisfies `last`
    /// (included), waiting at most `limit`.
    pub fn up_output_until(&self, limit: Duration, last: impl Fn(&str) -> bool) -> Vec<String> {
        let received = self
            .lines
            .as_ref()
            .expect("cluster up is running")
            .lock()
            .unwrap();
        let deadline = Instant::now() + limit;
        let mut lines = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match received.recv_timeout(left) {
                Ok(line) => {
                    let done = last(&line);
                    lines.push(line);
                    if done {
                        return lines;
                    }
                }
                Err(_) => panic!(
                    "not printed within {limit:?}; printed:\n{}",
                    lines.join("\n")
                ),
            }
        }
    }

    /// Sends `signal` to `cluster up` and waits up to `limit` for it to
    /// exit; returns how long that took.
    pub fn signal_up(&mut self, signal: libc::c_int, limit: Duration) -> Duration {
        let mut up = self.up.take().expect("cluster up is running");
        let started = Instant::now();
        // SAFETY: signalling our own child process, not yet reaped.
        unsafe {
            libc::kill(up.id() as libc::pid_t, signal);
        }
        while up.try_wait().unwrap().is_none() {
            if started.elapsed() > limit {
                up.kill().ok();
                panic!("cluster up did not exit within {limit:?} of signal {signal}");
            }
            // Polling: std has no wait-with-timeout for a child process.
            std::thread::sleep(Duration::from_millis(20));
        }
        started.elapsed()
    }

    /// Every member's name and pid, as `cluster up` printed them.
    pub fn members(&self) -> &[(String, u32)] {
        &self.pids
    }

    /// The logs of every member (`logs/*.log`) must not show a panic or a
    /// failed allocation.
    pub fn assert_logs_clean(&self) {
        let logs = self.dir.path().join("logs");
        for entry in std::fs::read_dir(&logs).unwrap() {
            let path = entry.unwrap().path();
            let log = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
            for sign in ["panicked", "memory allocation"] {
                assert!(
                    !log.contains(sign),
                    "{} shows {sign:?}:\n{}",
                    path.display(),
                    log.lines()
                        .filter(|line| line.contains(sign))
                        .collect::<Vec<_>>()
                        .join("\n")
                );
            }
        }
    }

    /// `berth ARGS --config CONFIG`, bounded to a minute.
    pub fn berth(&self, args: &[&str]) -> Output {
        run_bounded(
            Command::new(binary("berth"))
                .args(args)
                .arg("--config")
                .arg(&self.config),
            Duration::from_secs(60),
        )
    }

    /// Books `cabin` on the shared trip.
    pub fn book(&self, cabin: &str) -> Output {
        self.berth(&["book", "--trip", TRIP, "--cabin", cabin])
    }

    pub fn status(&self) -> String {
        stdout(&self.berth(&["status"]))
    }

    /// Asserts that `berth token` reports each of `tokens` confirmed.
    pub fn assert_confirmed(&self, tokens: &[String]) {
        for token in tokens {
            let answer = self.berth(&["token", token]);
            assert!(
                stdout(&answer).starts_with("confirmed:"),
                "{token}: {}",
                stdout(&answer)
            );
        }
    }

    /// Polls `berth status` until `ready` holds, at most `limit`.
    pub fn wait_until(&self, limit: Duration, what: &str, ready: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let status = self.status();
            if ready(&status) {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "not reached within {limit:?}: {what}\n{status}"
            );
            // Polling: the cluster offers no change notification.
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops `berth cluster up` with SIGINT (as Ctrl-C does) and waits.
    pub fn stop(&mut self) {
        let Some(mut up) = self.up.take() else {
            return;
        };
        // SAFETY: signalling our own child process.
        unsafe {
            libc::kill(up.id() as libc::pid_t, libc::SIGINT);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while up.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                up.kill().ok();
                panic!("cluster up did not stop within 20 s of SIGINT");
            }
            // Polling: std has no wait-with-timeout for a child process.
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(mut up) = self.up.take() {
            unsafe {
                libc::kill(up.id() as libc::pid_t, libc::SIGINT);
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while up.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                // Polling, as in `stop`.
                std::thread::sleep(Duration::from_millis(20));
            }
            up.kill().ok();
            up.wait().ok();
        }
        // Whatever survived (a member restarted by hand): no orphans.
        for (_, pid) in &self.pids {
            unsafe {
                libc::kill(*pid as libc::pid_t, libc::SIGKILL);
            }
        }
    }
}

/// The token `book` printed for the confirmed booking.
pub(crate) fn booking_token(output: &Output) -> String {
    let text = stdout(output);
    text.lines()
        .find(|line| line.starts_with("confirmed:"))
        .and_then(|line| line.split("booking ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no confirmed booking in: {text}"))
        .to_owned()
}

/// The line of `berth status` whose bucket range covers `bucket`.
pub(crate) fn placement_line(status: &str, bucket: u32) -> String {
    status
        .lines()
        .find(|line| {
            let Some(range) = line.split_whitespace().next() else {
                return false;
            };
            let bounds: Vec<u32> = range
                .split('-')
                .filter_map(|end| end.strip_prefix('b')?.parse().ok())
                .collect();
            match bounds.as_slice() {
                [only] => *only == bucket,
                [first, last] => (*first..=*last).contains(&bucket),
                _ => false,
            }
        })
        .unwrap_or_else(|| panic!("no placement of b{bucket} in:\n{status}"))
        .to_owned()
}

/// The datagrams `member` ("controller", "replica 2", "projector")
/// dropped by reason ("bad MAC", "replay", ...), as the "dropped datagrams"
/// section of `berth status` lists them (empty if it dropped none).
pub(crate) fn drops(status: &str, member: &str) -> BTreeMap<String, u64> {
    let Some((_, section)) = status.split_once("dropped datagrams (since each member started):")
    else {
        return BTreeMap::new();
    };
    let Some(line) = section
        .lines()
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        .find(|line| {
            line.trim_start()
                .strip_prefix(member)
                .is_some_and(|rest| rest.starts_with([' ', '(']) || rest.is_empty())
        })
    else {
        return BTreeMap::new();
    };
    // "  replica 1 (madrid-a)     1000 bad MAC, 2 replay": the name is
    // padded to 24 columns.
    let counts = line.get(27..).unwrap_or_default();
    counts
        .split(", ")
        .filter_map(|part| {
            let (count, reason) = part.trim().split_once(' ')?;
            Some((reason.to_owned(), count.parse().ok()?))
        })
        .collect()
}

/// `count` cabins whose units hash into `bucket`.
pub(crate) fn cabins_in(bucket: u32, count: usize) -> Vec<String> {
    (0..)
        .map(|n| format!("X{n}"))
        .filter(|cabin| bucket_of(&InventoryUnit::new(TRIP, cabin.as_str()), BUCKETS).0 == bucket)
        .take(count)
        .collect()
}

/// Goal: issue 6's first acceptance: a booking is confirmed (exit 0), a
/// second booking of the same cabin is refused with a reason (exit 1), the
/// token reports the first booking, and status shows the map.
#[test]
fn book_then_refuse_the_same_cabin() {
    let cluster = Cluster::start();
    let first = cluster.book("C14");
    assert_eq!(first.status.code(), Some(0), "{}", stdout(&first));
    let token = booking_token(&first);
    let second = cluster.book("C14");
    assert_eq!(second.status.code(), Some(1), "{}", stdout(&second));
    assert!(
        stdout(&second).contains("cabin already sold"),
        "{}",
        stdout(&second)
    );
    let answer = cluster.berth(&["token", &token]);
    assert_eq!(answer.status.code(), Some(0));
    assert!(stdout(&answer).starts_with("confirmed: BCN-JFK-2026-07-14/C14"));
    let status = cluster.status();
    assert!(status.contains("b0-b1023"), "{status}");
    assert!(status.contains("leader 1 (madrid-a)"), "{status}");
    // Bad input: a malformed token is a usage error, not a hang.
    let bad = cluster.berth(&["token", "not-a-token"]);
    assert_eq!(bad.status.code(), Some(2));
}

/// Goal: two clients race for one cabin as separate processes: exactly
/// one wins; the other is refused.
#[test]
fn two_clients_race_and_exactly_one_wins() {
    let cluster = Cluster::start();
    for round in 0..5 {
        let cabin = format!("R{round}");
        let (first, second) = std::thread::scope(|scope| {
            let a = scope.spawn(|| cluster.book(&cabin));
            let b = scope.spawn(|| cluster.book(&cabin));
            (a.join().unwrap(), b.join().unwrap())
        });
        let mut codes = [first.status.code(), second.status.code()];
        codes.sort();
        assert_eq!(
            codes,
            [Some(0), Some(1)],
            "{}\n{}",
            stdout(&first),
            stdout(&second)
        );
    }
}

/// Goal: `kill -9` of a bucket's leader loses no confirmed booking: the
/// controller fails over to the sync follower at a higher epoch, every
/// token still reports its booking, and new bookings on the bucket succeed.
/// Prints how long the failover took (kill to the next confirmed booking).
#[test]
fn kill_the_leader_and_lose_nothing() {
    let cluster = Cluster::start();
    let bucket = 3; // on group 1, led by replica 1
    let cabins = cabins_in(bucket, 6);
    let tokens: Vec<String> = cabins[..5]
        .iter()
        .map(|cabin| booking_token(&cluster.book(cabin)))
        .collect();
    let leader = cluster.pid("replica 1");
    let killed = Instant::now();
    unsafe {
        libc::kill(leader as libc::pid_t, libc::SIGKILL);
    }
    let after = cluster.book(&cabins[5]);
    let failover = killed.elapsed();
    assert_eq!(after.status.code(), Some(0), "{}", stdout(&after));
    println!("failover: kill -9 to the next confirmed booking took {failover:?}");
    cluster.assert_confirmed(&tokens);
    let status = cluster.wait_until(Duration::from_secs(10), "a new leader", |status| {
        placement_line(status, bucket).contains("leader 2 (madrid-b)")
    });
    assert!(
        !placement_line(&status, bucket).contains(" e1 "),
        "the epoch advanced: {status}"
    );
    assert!(
        status
            .lines()
            .any(|line| line.contains("replica 1 (madrid-a)") && line.contains("DOWN")),
        "{status}"
    );
    assert!(
        status.starts_with("health: ") && status.lines().next().unwrap().contains("replica 1"),
        "the health line comes first and names who is down: {status}"
    );
    // The same for tools, under the documented field names.
    let json = cluster.berth(&["status", "--json"]);
    assert_eq!(json.status.code(), Some(0), "{}", stdout(&json));
    let json: serde_json::Value = serde_json::from_str(&stdout(&json)).unwrap();
    assert!(
        json["health"]["members_down"]
            .as_array()
            .unwrap()
            .iter()
            .any(|name| name == "replica 1 (madrid-a)"),
        "{json}"
    );
    assert_eq!(json["controller"]["up"], true, "{json}");
    assert_eq!(json["replicas"][0]["id"], 1, "{json}");
    assert_eq!(json["replicas"][0]["up"], false, "{json}");
    let covering = json["map"]
        .as_array()
        .unwrap()
        .iter()
        .find(|range| range["first"].as_u64() <= Some(3) && range["last"].as_u64() >= Some(3))
        .expect("a range covers the bucket")
        .clone();
    assert_eq!(covering["leader"], 2, "{json}");
    assert!(covering["epoch"].as_u64().unwrap() > 1, "{json}");
    assert_eq!(json["groups"].as_array().unwrap().len(), 2, "{json}");
    assert_eq!(json["projector"]["up"], true, "{json}");
    // `cluster up` said which member died, and how.
    let said = cluster.up_output_until(Duration::from_secs(10), |line| {
        line.contains("exited unexpectedly")
    });
    let expected =
        format!("replica 1 (madrid-a) (pid {leader}) exited unexpectedly: signal SIGKILL");
    assert!(said.last().unwrap().contains(&expected), "{said:?}");
}

/// Goal: a bucket moves to the other group while a client keeps booking on
/// it; every booking confirmed before, during and after the move is there
/// at the new owner.
#[test]
fn move_a_bucket_while_booking() {
    let cluster = Cluster::start();
    let bucket = 5;
    let cabins = cabins_in(bucket, 16);
    // Some bookings before the move, the rest while it runs.
    let mut tokens: Vec<String> = cabins[..4]
        .iter()
        .map(|cabin| booking_token(&cluster.book(cabin)))
        .collect();
    let during = std::thread::scope(|scope| {
        let booking = scope.spawn(|| {
            cabins[4..]
                .iter()
                .map(|cabin| booking_token(&cluster.book(cabin)))
                .collect::<Vec<_>>()
        });
        let moved = cluster.berth(&["move", "--bucket", "5", "--to-group", "2"]);
        assert_eq!(moved.status.code(), Some(0), "{}", stdout(&moved));
        assert!(
            stdout(&moved).contains("leader replica 4 (paris-a)"),
            "{}",
            stdout(&moved)
        );
        booking.join().unwrap()
    });
    tokens.extend(during);
    assert_eq!(tokens.len(), 16);
    cluster.assert_confirmed(&tokens);
    let status = cluster.status();
    assert!(
        placement_line(&status, bucket).contains("leader 4 (paris-a)"),
        "{status}"
    );
}

/// Goal: the whole cluster stops cleanly and restarts from its directory
/// with every confirmed booking; a planned failover moves leadership.
#[test]
fn restart_the_whole_cluster_from_its_directory() {
    let mut cluster = Cluster::start();
    let tokens: Vec<String> = ["A1", "A2", "A3", "A4"]
        .iter()
        .map(|cabin| booking_token(&cluster.book(cabin)))
        .collect();
    let failover = cluster.berth(&["failover", "--bucket", "1064"]); // group 2
    assert_eq!(failover.status.code(), Some(0), "{}", stdout(&failover));
    assert!(
        stdout(&failover).contains("leader replica 5 (paris-b)"),
        "{}",
        stdout(&failover)
    );
    cluster.stop();
    cluster.up();
    cluster.assert_confirmed(&tokens);
    let again = cluster.book("A1");
    assert_eq!(again.status.code(), Some(1), "{}", stdout(&again));
    let status = cluster.status();
    assert!(
        placement_line(&status, 1064).contains("leader 5 (paris-b)"),
        "the failover survived the restart: {status}"
    );
}

/// Goal: datagrams that are not berth's — garbage, or berth's format
/// under no key the cluster holds — are dropped and counted by reason
/// (`berth status`), with a warning in the member's log; the member keeps
/// serving.
#[test]
fn bad_datagrams_are_dropped() {
    let cluster = Cluster::start();
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let replica = ("127.0.0.1", cluster.base_port + 1);
    for garbage in [&b"hello"[..], &[0xff; 300][..], &[]] {
        socket.send_to(garbage, replica).unwrap();
    }
    // Berth's header (version 0xB1, the client key's kind) and a tag that
    // no key makes.
    let mut forged = vec![0xB1, 2];
    forged.extend_from_slice(&[0x5a; 120]);
    socket.send_to(&forged, replica).unwrap();
    let booked = cluster.book("G1");
    assert_eq!(booked.status.code(), Some(0), "{}", stdout(&booked));
    let status = cluster.wait_until(Duration::from_secs(10), "the drops counted", |status| {
        let dropped = drops(status, "replica 1");
        dropped.get("undecodable") >= Some(&3) && dropped.get("bad MAC") >= Some(&1)
    });
    assert!(
        status.contains("dropped datagrams (since each member started):"),
        "{status}"
    );
    let log = std::fs::read_to_string(cluster.dir.path().join("logs/replica-1.log")).unwrap();
    assert!(log.contains("its MAC does not verify"), "{log}");
    assert!(log.contains("not berth's format"), "{log}");
    cluster.assert_logs_clean();
}

/// Goal: a second `cluster up` on the same directory while the first runs
/// fails clearly (its ports are taken) and harms nothing.
#[test]
fn a_second_cluster_up_on_busy_ports_fails_clearly() {
    let cluster = Cluster::start();
    let token = booking_token(&cluster.book("P1"));
    let second = run_bounded(
        Command::new(binary("berth"))
            .args(["cluster", "up", "--dir"])
            .arg(cluster.dir.path()),
        Duration::from_secs(30),
    );
    assert_eq!(second.status.code(), Some(2));
    let error = String::from_utf8_lossy(&second.stderr);
    assert!(error.contains("is in use"), "{error}");
    let answer = cluster.berth(&["token", &token]);
    assert!(
        stdout(&answer).starts_with("confirmed:"),
        "{}",
        stdout(&answer)
    );
}

/// Goal: a damaged configuration is a clear error naming the file.
#[test]
fn a_bad_configuration_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cluster.toml");
    std::fs::write(&config, "buckets = 0\n").unwrap();
    let output = run_bounded(
        Command::new(binary("berth"))
            .args(["status", "--config"])
            .arg(&config),
        Duration::from_secs(30),
    );
    assert_eq!(output.status.code(), Some(2));
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(
        error.contains("not a valid cluster configuration"),
        "{error}"
    );
    // Past the largest bucket count whose messages all fit a datagram,
    // `cluster up` refuses before writing anything, naming the limit.
    let output = run_bounded(
        Command::new(binary("berth"))
            .args(["cluster", "up", "--buckets", "65537", "--dir"])
            .arg(dir.path().join("too-big")),
        Duration::from_secs(30),
    );
    assert_eq!(output.status.code(), Some(2));
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(error.contains("65537 is not in 1..=65536"), "{error}");
    assert!(!dir.path().join("too-big").exists());
}

/// Goal: a hold nobody confirms expires through the log: another customer
/// can then hold the cabin, and the late confirm is refused because the
/// hold expired.
#[test]
fn an_unconfirmed_hold_expires() {
    let cluster = Cluster::start_with_hold_ttl(2);
    let hold = |cabin: &str| cluster.berth(&["hold", "--trip", TRIP, "--cabin", cabin]);
    let first = hold("H1");
    assert_eq!(first.status.code(), Some(0), "{}", stdout(&first));
    let token = stdout(&first)
        .split("hold ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("hold prints its token")
        .to_owned();
    let blocked = hold("H1");
    assert_eq!(blocked.status.code(), Some(1), "{}", stdout(&blocked));
    assert!(stdout(&blocked).contains("held by another customer"));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let again = hold("H1");
        if again.status.code() == Some(0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the hold never expired: {}",
            stdout(&again)
        );
        // Polling: expiry happens on the leader's clock.
        std::thread::sleep(Duration::from_millis(200));
    }
    let late = cluster.berth(&["confirm", "--trip", TRIP, "--cabin", "H1", "--hold", &token]);
    assert_eq!(late.status.code(), Some(1), "{}", stdout(&late));
    assert!(stdout(&late).contains("hold expired"), "{}", stdout(&late));
}
