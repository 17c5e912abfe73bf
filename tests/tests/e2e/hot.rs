//! Hot buckets end to end: write rates measured by the members, `berth
//! status --hot`, and `berth rebalance` planning and carrying out moves.

use crate::cluster::{cabins_in, placement_line, Cluster};
use crate::util::stdout;
use std::time::{Duration, Instant};

/// The hot bucket (group 1 holds b0-b1023 on the test clusters).
const HOT: u32 = 5;
/// A warm bucket of the same group, with half the hot one's writes.
const WARM: u32 = 9;

/// One row of `berth status --hot`: bucket, group, writes/s, share (%).
#[derive(Debug)]
struct HotRow {
    bucket: u32,
    group: u32,
    writes_per_sec: f64,
    share: f64,
}

/// The rows of `berth status --hot`, hottest first.
fn hot_rows(text: &str) -> Vec<HotRow> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let bucket = fields.first()?.strip_prefix('b')?.parse().ok()?;
            Some(HotRow {
                bucket,
                group: fields.get(1)?.parse().ok()?,
                writes_per_sec: fields.get(fields.len().checked_sub(2)?)?.parse().ok()?,
                share: fields.last()?.strip_suffix('%')?.parse().ok()?,
            })
        })
        .collect()
}

/// Goal: issue 7 item 5: bookings that all hash to one bucket make it the
/// hottest in `berth status --hot`, with the largest share of its group;
/// `berth rebalance --dry-run` proposes moving it to the idle group and
/// moves nothing; `berth rebalance` moves it through the cutover, after
/// which the map places it in group 2 and it still takes bookings.
#[test]
fn a_hot_bucket_is_reported_and_rebalanced() {
    let cluster = Cluster::start();
    // Nothing written yet: nothing to move.
    let idle = cluster.berth(&["rebalance", "--dry-run"]);
    assert_eq!(idle.status.code(), Some(0), "{}", stdout(&idle));
    assert!(
        stdout(&idle).contains("nothing to move"),
        "{}",
        stdout(&idle)
    );

    // Two bookings (four committed writes) in the hot bucket for each one
    // in the warm bucket, interleaved so that both stay in the 10-second
    // window alike.
    let hot = cabins_in(HOT, 21);
    let warm = cabins_in(WARM, 5);
    let started = Instant::now();
    for round in 0..5 {
        for cabin in [&hot[2 * round], &hot[2 * round + 1], &warm[round]] {
            let booked = cluster.book(cabin);
            assert_eq!(booked.status.code(), Some(0), "{}", stdout(&booked));
        }
    }
    // A booking is two committed writes (hold, confirm): 20 in the hot
    // bucket and 10 in the warm one, 2.0 and 1.0 writes/s over the 10 s
    // window. The second under way is counted once it is over: poll until
    // every write shows.
    let counted = |rows: &[HotRow]| {
        let rate = |bucket| {
            rows.iter()
                .find(|row| row.bucket == bucket)
                .map(|row| row.writes_per_sec)
        };
        rate(HOT) == Some(2.0) && rate(WARM) == Some(1.0)
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    let (text, rows) = loop {
        let text = stdout(&cluster.berth(&["status", "--hot", "--top", "3"]));
        let rows = hot_rows(&text);
        if counted(&rows) {
            break (text, rows);
        }
        assert!(
            Instant::now() < deadline,
            "status --hot never counted every write:\n{text}"
        );
        // Polling: the members offer no change notification.
        std::thread::sleep(Duration::from_millis(100));
    };
    // Writes leave the window 10 s after they committed; what follows
    // expects them all still in it.
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(7),
        "booking and counting took {elapsed:?}: the window may lose writes"
    );
    assert_eq!(rows.len(), 2, "{text}");
    assert_eq!(rows[0].bucket, HOT, "{text}");
    assert_eq!(rows[0].group, 1, "{text}");
    assert_eq!(rows[1].bucket, WARM, "{text}");
    // Two thirds of group 1's writes, and one third.
    assert!((rows[0].share - 66.7).abs() < 0.05, "{text}");
    assert!((rows[1].share - 33.3).abs() < 0.05, "{text}");
    let group_line = |group: u32| {
        text.lines()
            .find(|line| line.trim_start().starts_with(&format!("group {group} ")))
            .unwrap_or_else(|| panic!("no group {group} in:\n{text}"))
            .to_owned()
    };
    assert!(group_line(1).contains(" 3.0 writes/s"), "{text}");
    assert!(group_line(2).contains(" 0.0 writes/s"), "{text}");
    // The plain status is unchanged by the option.
    assert!(!cluster.status().contains("writes/s"));

    // The plan: the hot bucket goes to the idle group (40/60 → 20/40 of
    // group 1's 30 writes per 10 s); a dry run moves nothing.
    let dry = cluster.berth(&["rebalance", "--dry-run"]);
    let plan = stdout(&dry);
    assert_eq!(dry.status.code(), Some(0), "{plan}");
    assert!(
        plan.contains(&format!("1. b{HOT}: group 1 → group 2, 2.0 writes/s")),
        "{plan}"
    );
    assert!(plan.contains("dry run: nothing moved"), "{plan}");
    assert!(
        placement_line(&cluster.status(), HOT).contains("group 1"),
        "{plan}"
    );

    let done = cluster.berth(&["rebalance"]);
    let report = stdout(&done);
    assert_eq!(done.status.code(), Some(0), "{report}");
    assert!(
        report.contains(&format!("move 1 of 1: b{HOT} to group 2")),
        "{report}"
    );
    assert!(report.contains("rebalanced: 1 move done"), "{report}");
    let status = cluster.status();
    assert!(
        placement_line(&status, HOT).contains("group 2"),
        "{report}\n{status}"
    );
    assert!(
        placement_line(&status, WARM).contains("group 1"),
        "{report}\n{status}"
    );
    let after = cluster.book(&hot[20]);
    assert_eq!(after.status.code(), Some(0), "{}", stdout(&after));
    assert!(stdout(&after).contains("confirmed:"), "{}", stdout(&after));
    // The moved bucket's writes count where it now is.
    let text = stdout(&cluster.berth(&["status", "--hot"]));
    let rows = hot_rows(&text);
    let moved = rows.iter().find(|row| row.bucket == HOT);
    assert_eq!(moved.map(|row| row.group), Some(2), "{text}");
}
