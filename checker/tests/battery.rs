//! The standard battery as tests, for the mutation run's oracle
//! (docs/verification.md, "Mutation testing"). Ignored by `cargo test`:
//! the whole battery takes minutes (`berth-check verify` runs it in CI);
//! run with `cargo test -p berth-checker --test battery -- --ignored`.

use berth_checker::verify::{battery, quick_battery, verify, Check};

/// `BERTH_BATTERY_ONLY=TEXT` keeps the runs whose flags or variant
/// contain TEXT (`berth-check verify --only`): a mutant of code only some
/// runs execute meets those first.
fn holds(checks: &[Check]) {
    let only = std::env::var("BERTH_BATTERY_ONLY").ok();
    let checks: Vec<Check> = checks
        .iter()
        .filter(|check| {
            only.as_deref().is_none_or(|text| {
                check.config.flags().contains(text)
                    || check.config.variant.to_string().contains(text)
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

/// Goal: every run of the battery shows what it must.
#[test]
#[ignore = "ten minutes; CI runs `berth-check verify`"]
fn whole_battery_holds() {
    holds(&battery());
}
