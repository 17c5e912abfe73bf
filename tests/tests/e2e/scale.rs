//! The cluster at the size users run (2,048 buckets, the default) on a
//! busy machine: a second process keeps one core busy throughout. Kill a
//! group's leader, book on one of its buckets, restart the killed replica
//! and watch it catch up on buckets nobody writes to, restart the whole
//! cluster. Every bound is a hang detector (about 10× what a quiet
//! machine needs), never a performance test: `bench/failover.sh` measures.

use crate::cluster::{booking_token, cabins_in, placement_line, Cluster};
use crate::util::{binary, stdout};
use std::fs::File;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A process that keeps one core busy until dropped (and at most ten
/// minutes, should the test itself be killed).
struct CpuHog(Child);

impl CpuHog {
    fn start() -> CpuHog {
        CpuHog(
            Command::new("timeout")
                .args(["600", "sh", "-c", "while :; do :; done"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn a busy loop"),
        )
    }
}

impl Drop for CpuHog {
    /// SIGTERM, which `timeout` passes on to the loop (SIGKILL would kill
    /// `timeout` alone and leave the loop running).
    fn drop(&mut self) {
        // SAFETY: signalling our own child process.
        unsafe {
            libc::kill(self.0.id() as libc::pid_t, libc::SIGTERM);
        }
        self.0.wait().ok();
    }
}

/// Replica `id`'s row of `berth status --json`.
fn replica_row(cluster: &Cluster, id: u64) -> serde_json::Value {
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&cluster.berth(&["status", "--json"]))).expect("JSON status");
    json["replicas"]
        .as_array()
        .expect("replicas")
        .iter()
        .find(|row| row["id"].as_u64() == Some(id))
        .cloned()
        .expect("the replica's row")
}

/// Goal: the README's failover demo at the default size with a busy core:
/// `kill -9` of group 1's leader (1,024 buckets), and the next booking on
/// one of its buckets is confirmed; every confirmed booking is still
/// there; the bucket went through at most two epoch changes (promotion,
/// then the dead sync follower replaced). The killed replica, restarted
/// by hand, catches up on every bucket without any new write (its lag, as
/// its leaders measure it, reaches 0). Then the whole cluster restarts
/// from disk and every booking is still confirmed.
#[test]
fn default_size_failover_catch_up_and_restart_on_a_busy_machine() {
    let _hog = CpuHog::start();
    let mut cluster = Cluster::start();
    let bucket = 3; // group 1, led by replica 1
    let cabins = cabins_in(bucket, 4);
    let tokens: Vec<String> = cabins[..3]
        .iter()
        .map(|cabin| booking_token(&cluster.book(cabin)))
        .collect();
    let leader = cluster.pid("replica 1");
    let killed = Instant::now();
    // SAFETY: signalling a member of our own cluster.
    unsafe {
        libc::kill(leader as libc::pid_t, libc::SIGKILL);
    }
    let after = cluster.berth(&[
        "book",
        "--trip",
        crate::cluster::TRIP,
        "--cabin",
        &cabins[3],
        "--timeout",
        "60",
    ]);
    let failover = killed.elapsed();
    assert_eq!(after.status.code(), Some(0), "{}", stdout(&after));
    println!(
        "2,048 buckets, one core busy: kill -9 to the next confirmed booking took {failover:?}"
    );
    cluster.assert_confirmed(&tokens);
    let status = cluster.wait_until(Duration::from_secs(60), "replica 2 leads", |status| {
        placement_line(status, bucket).contains("leader 2 (madrid-b)")
    });
    let line = placement_line(&status, bucket);
    assert!(
        line.contains(" e2 ") || line.contains(" e3 "),
        "at most two epoch changes: {line}\n{status}"
    );

    // Restart replica 1 by hand: no write touches group 1's other
    // buckets, yet it must catch up on all of them.
    let log = File::create(
        cluster
            .dir
            .path()
            .join("logs")
            .join("replica-1-restarted.log"),
    )
    .unwrap();
    let mut restarted = Command::new(binary("berth"))
        .args(["node", "--config"])
        .arg(&cluster.config)
        .args(["--id", "1"])
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("restart replica 1");
    let restarted_at = Instant::now();
    let deadline = restarted_at + Duration::from_secs(60);
    loop {
        let row = replica_row(&cluster, 1);
        if row["up"].as_bool() == Some(true) && row["lag_entries"].as_u64() == Some(0) {
            println!("replica 1 caught up: {row}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "replica 1 did not catch up within 60 s: {row}\n{}",
            cluster.status()
        );
        // Polling: the cluster offers no change notification.
        std::thread::sleep(Duration::from_millis(200));
    }
    println!(
        "restarted replica caught up (lag 0) {:?} after it started",
        restarted_at.elapsed()
    );

    // The whole cluster, restarted from disk.
    restarted.kill().ok();
    restarted.wait().ok();
    cluster.stop();
    cluster.up();
    cluster.assert_confirmed(&tokens);
    let answer = cluster.berth(&["token", &booking_token(&after)]);
    assert!(
        stdout(&answer).starts_with("confirmed:"),
        "{}",
        stdout(&answer)
    );
}
