//! The standard battery as tests, for the mutation run's oracle
//! (docs/mutation-testing.md). Ignored by `cargo test`:
//! the whole battery takes minutes (`berth-check verify` runs it in CI);
//! run with `cargo test -p berth-checker --test battery -- --ignored`.

use berth_checker::verify::{battery, quick_battery, verify, Check, Expect};

/// `BERTH_BATTERY_ONLY=TEXT[,TEXT…]` keeps the runs whose flags or
/// variant contain one of the texts (`berth-check verify --only`): a mutant
/// of code only some runs execute meets those first. `=FLAGS` keeps the
/// run whose flags are exactly these.
fn holds(checks: &[Check]) {
    let only = std::env::var("BERTH_BATTERY_ONLY").ok();
    let checks: Vec<Check> = checks
        .iter()
        .filter(|check| {
            only.as_deref().is_none_or(|texts| {
                texts.split(',').any(|text| match text.strip_prefix('=') {
                    Some(exact) => check.config.flags() == exact,
                    None => {
                        check.config.flags().contains(text)
                            || check.config.variant.to_string().contains(text)
                    }
                })
            })
        })
        .cloned()
        .collect();
    let report = verify(
        &checks,
        1,
        true,
        |_, check| eprintln!("{} on {}", check.config.variant, check.config.flags()),
        |row| eprintln!("  {} {:?}", row.passes, row.failed),
    );
    let failed: Vec<_> = report.rows.iter().filter(|row| !row.passes).collect();
    assert!(report.passes, "{failed:#?}");
}

/// Goal: the quick runs of the battery show what they must.
#[test]
#[ignore = "minutes; the mutation run's first oracle"]
fn quick_battery_holds() {
    holds(&quick_battery());
}

/// The battery's correct-design runs, cheapest first (as measured on a
/// quiet 2-core machine, 0.1 s to 60 s each): a mutant is usually killed by
/// one of the first, and one that survives them all meets the rest of the
/// battery (`whole_battery_holds`). The broken designs are left out here:
/// their runs search for shortest counterexamples (minutes in all) and a
/// mutant that disables what they need is also caught by the liveness and
/// `sometimes` properties of the correct runs.
const CHEAP_FIRST: &[&str] = &[
    "--scenario replication --network ordered",
    "--scenario replication --network ordered --clients 1 --outsider",
    "--scenario replication --network ordered --blind-confirm",
    "--scenario replication",
    "--scenario replication --network lossy",
    "--scenario replication --network unordered-duplicating --clients 1 --query",
    "--scenario replication --sync-followers 2",
    "--scenario cutover --network ordered --retained-entries 1 --snapshot-chunk 1",
    "--scenario cutover --network ordered --retained-entries 1 --snapshot-chunk 2",
    "--scenario replication --retained-entries 1",
    "--scenario replication --network ordered-lossy --clients 1 --runtime-settings",
    "--scenario replication --network ordered-lossy --clients 1 --retained-entries 1 --snapshot-chunk 1 --runtime-settings",
    "--scenario replication --network ordered --clients 1 --runtime-settings",
    "--scenario cutover --network ordered --query",
    "--scenario cutover --network ordered --outsider",
    "--scenario failover --network ordered --crashes 0 --outsider",
    "--scenario failover --network ordered --crashes 0 --planned-failover",
    "--scenario cutover --network ordered --clients 0 --move-back",
    "--scenario cutover --network ordered --resent-move",
    "--scenario cutover --network ordered --crashes 1",
    "--scenario replication --network unordered-duplicating",
    "--scenario replication --crashes 1",
    "--scenario replication --clients 1 --crashes 1 --retries 1",
    "--scenario replication --network ordered --expiring-holds",
    "--scenario replication --network ordered --clients 1 --crashes 1 --catch-up --announce-commits",
    "--scenario failover",
    "--scenario failover --resend-unanswered",
    "--scenario cutover --network ordered --announce-commits --max-append-entries 1 --max-batch 1",
    "--scenario failover --crashes 0 --query",
    "--scenario failover --crashes 0 --stream",
    "--scenario cutover",
    "--scenario cutover --network ordered --stream",
    "--scenario failover --network ordered --crashes 0 --expiring-holds",
    "--scenario failover --network ordered --crashes 0 --catch-up --announce-commits",
    "--scenario failover --network ordered --crashes 0 --probes",
    "--scenario failover --network ordered --crashes 0 --sync-followers 2",
    "--scenario failover --network ordered --crashes 0 --failovers 2",
];

/// Goal: the correct design holds on every scenario of the battery, the
/// cheapest first (the mutation run's oracle). `BERTH_BATTERY_FIRST=N`
/// keeps the first N (a first pass over many mutants; its survivors then
/// meet the rest) and `BERTH_BATTERY_FROM=M` drops the first M (the runs a
/// survivor already passed); `BERTH_BATTERY_PREFER` puts some first.
#[test]
#[ignore = "minutes; the mutation run's oracle"]
fn correct_runs_hold() {
    let checks = battery();
    let ordered: Vec<Check> = CHEAP_FIRST
        .iter()
        .map(|flags| {
            checks
                .iter()
                .find(|check| {
                    matches!(check.expect, Expect::Pass) && check.config.flags() == *flags
                })
                .unwrap_or_else(|| panic!("no correct run of the battery has the flags {flags}"))
                .clone()
        })
        .collect();
    let correct = checks
        .iter()
        .filter(|check| matches!(check.expect, Expect::Pass))
        .count();
    assert_eq!(
        ordered.len(),
        correct,
        "CHEAP_FIRST lists every correct run"
    );
    let number = |name| std::env::var(name).ok().and_then(|n| n.parse().ok());
    let first = number("BERTH_BATTERY_FIRST")
        .unwrap_or(ordered.len())
        .min(ordered.len());
    let from = number("BERTH_BATTERY_FROM").unwrap_or(0).min(first);
    let mut runs = ordered[from..first].to_vec();
    // `BERTH_BATTERY_PREFER=TEXT[,TEXT…]`: the runs whose flags contain one
    // of the texts go first (a stable sort keeps the rest cheapest first),
    // so a mutant of the controller meets the failover runs at once.
    if let Ok(texts) = std::env::var("BERTH_BATTERY_PREFER") {
        runs.sort_by_key(|check| {
            !texts
                .split(',')
                .any(|text| check.config.flags().contains(text))
        });
    }
    holds(&runs);
}

/// Goal: every run of the battery shows what it must.
#[test]
#[ignore = "minutes; CI runs `berth-check verify`"]
fn whole_battery_holds() {
    holds(&battery());
}
