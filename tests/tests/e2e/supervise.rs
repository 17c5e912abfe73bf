//! `berth cluster up` as a supervisor: a member that dies is reported with
//! its cause and its last log lines; SIGTERM stops every member promptly.

use crate::cluster::Cluster;
use std::time::Duration;

/// Whether a process `pid` exists (zombies of other parents included).
fn alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the pid exists.
    unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
}

/// Goal: a member killed by a signal is reported by `cluster up` with the
/// signal's name and the last lines of its log, and `cluster up` carries
/// on; SIGTERM to `cluster up` then stops every member and itself well
/// within a bound (10 s of grace per member is the supervisor's own limit;
/// a clean stop takes well under a second).
#[test]
fn cluster_up_reports_a_dead_member_and_stops_on_sigterm() {
    let mut cluster = Cluster::start();
    let victim = cluster.pid("replica 5");
    // SAFETY: a signal to a member of the cluster this test started.
    unsafe {
        libc::kill(victim as libc::pid_t, libc::SIGABRT);
    }
    let said = cluster.up_output_until(Duration::from_secs(20), |line| {
        line.contains("exited unexpectedly")
    });
    let report = said.last().unwrap();
    assert!(
        report.contains(&format!(
            "replica 5 (paris-b) (pid {victim}) exited unexpectedly: signal SIGABRT"
        )),
        "{said:?}"
    );
    assert!(report.contains("replica-5.log"), "{report}");
    // Then its last log lines (it logged "started" at least).
    let tail = cluster.up_output_until(Duration::from_secs(5), |line| line.contains("started"));
    assert!(tail.iter().all(|line| line.starts_with("    ")), "{tail:?}");
    let members: Vec<u32> = cluster.members().iter().map(|(_, pid)| *pid).collect();
    let took = cluster.signal_up(libc::SIGTERM, Duration::from_secs(60));
    println!(
        "cluster up stopped {} members in {took:?} after SIGTERM",
        members.len()
    );
    for pid in members {
        assert!(
            !alive(pid),
            "member pid {pid} survived cluster up's SIGTERM"
        );
    }
    assert!(took < Duration::from_secs(30), "{took:?}");
}
