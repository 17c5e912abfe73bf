//! A bucket with a long history on the default 2,048-bucket cluster: a
//! follower restarted after missing thousands of its entries catches up
//! without new writes, and the bucket moves (its snapshot travels in
//! chunks) and takes bookings at its new owner.

use crate::cluster::{placement_line, Cluster, TRIP};
use crate::util::{binary, run_bounded, stdout};
use berth_model::hashing::bucket_of;
use berth_model::InventoryUnit;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The default cluster's bucket count.
const BUCKETS: u32 = 2048;
/// The bucket booked into: group 1's (b0-b1023).
const BIG: u32 = 7;
/// Bookings in it: a hold and a confirm each, so twice as many entries,
/// and a committed state of thousands of units and outcomes (over twenty
/// snapshot chunks, several hundred kilobytes whole).
const BOOKINGS: &str = "1500";

/// A replica's line of `berth status`.
fn replica_line(status: &str, name: &str) -> String {
    status
        .lines()
        .find(|line| line.trim_start().starts_with(name))
        .unwrap_or_default()
        .to_owned()
}

/// Goal: the default 2,048-bucket cluster survives its own demo. With the
/// async follower of group 1 killed, one client books 1,500 cabins into
/// one bucket; the follower, restarted by hand, reaches lag 0 and the group
/// is failover-ready again without any new write; then `berth move` of the
/// bucket completes (the snapshot of its thousands of outcomes travels in
/// chunks that fit a datagram) and the moved bucket takes a booking.
#[test]
fn a_long_history_bucket_catches_up_and_moves() {
    let cluster = Cluster::start_sized(BUCKETS, 600, 5000);
    let remote = cluster.pid("replica 3");
    // SAFETY: signalling a process of the test's own cluster.
    unsafe {
        libc::kill(remote as libc::pid_t, libc::SIGKILL);
    }
    let bench = run_bounded(
        Command::new(binary("berth"))
            .args(["bench", "--bucket", &BIG.to_string()])
            .args(["--bookings", BOOKINGS, "--timeout", "900", "--config"])
            .arg(&cluster.config),
        Duration::from_secs(960),
    );
    assert_eq!(bench.status.code(), Some(0), "{}", stdout(&bench));
    println!("{}", stdout(&bench).trim());

    // Restarted by hand after missing every entry of the bucket.
    let mut node = Command::new(binary("berth"))
        .args(["node", "--id", "3", "--config"])
        .arg(&cluster.config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn berth node");
    let restarted = Instant::now();
    let status = cluster.wait_until(
        Duration::from_secs(60),
        "the restarted follower catches up without new writes",
        |status| {
            replica_line(status, "replica 3").contains(" up ")
                && replica_line(status, "replica 3").contains("max lag 0 entries")
                && status.contains("group 1    failover-ready")
        },
    );
    println!(
        "caught up {:.1} s after the restart: {}",
        restarted.elapsed().as_secs_f64(),
        replica_line(&status, "replica 3").trim()
    );

    let started = Instant::now();
    // The controller learns the follower's lag from its leader's answer to
    // the next probe (every 250-300 ms), so a move right after `status`
    // saw it caught up may still be refused as over the lag budget: retry
    // that refusal (and only that) for a while.
    let deadline = Instant::now() + Duration::from_secs(30);
    let moved = loop {
        let moved = run_bounded(
            Command::new(binary("berth"))
                .args(["move", "--bucket", &BIG.to_string(), "--to-group", "2"])
                .args(["--config"])
                .arg(&cluster.config),
            Duration::from_secs(180),
        );
        if moved.status.code() == Some(1)
            && stdout(&moved).contains("over its lag budget")
            && Instant::now() < deadline
        {
            // Polling: the controller's view of lag changes with each probe.
            std::thread::sleep(Duration::from_millis(300));
            continue;
        }
        break moved;
    };
    assert_eq!(moved.status.code(), Some(0), "{}", stdout(&moved));
    println!(
        "moved in {:.1} s: {}",
        started.elapsed().as_secs_f64(),
        stdout(&moved).trim()
    );
    let status = cluster.status();
    assert!(placement_line(&status, BIG).contains("group 2"), "{status}");
    let cabin = (0..)
        .map(|n| format!("Y{n}"))
        .find(|cabin| bucket_of(&InventoryUnit::new(TRIP, cabin.as_str()), BUCKETS).0 == BIG)
        .unwrap();
    let booked = cluster.book(&cabin);
    assert_eq!(booked.status.code(), Some(0), "{}", stdout(&booked));
    node.kill().ok();
    node.wait().ok();
}
