//! Helpers shared by the model-checking tests.

#![allow(dead_code)] // each test binary uses some of them

use berth_checker::{
    run, PropertyReport, PropertyStatus, RunOptions, RunReport, ScenarioConfig, StopAt, Verdict,
};

/// Checks `config` exhaustively, asserts every property is as expected and
/// each of `reached` is reached, and returns the report (for pinning its
/// state count: a change of the state space must be explained in the commit
/// that makes it).
pub fn assert_holds_exhaustively(config: &ScenarioConfig, reached: &[&str]) -> RunReport {
    let report = run(
        config,
        &RunOptions {
            stop_at: StopAt::Never,
            ..RunOptions::default()
        },
        |_| {},
    );
    assert!(report.exhaustive, "{:?}", report.stop_reason);
    for property in &report.properties {
        assert!(
            property.status.is_good(),
            "{} is {:?}: {:?}",
            property.name,
            property.status,
            property.explanation
        );
    }
    for name in reached {
        assert_eq!(
            report.property(name).map(|p| p.status),
            Some(PropertyStatus::Reached),
            "{name}"
        );
    }
    assert_eq!(report.verdict(), Verdict::Pass);
    report
}

/// Runs `config` with `options` until `property` is violated and returns
/// that property's report.
pub fn violation_of(
    config: &ScenarioConfig,
    options: RunOptions,
    property: &'static str,
) -> PropertyReport {
    let report = run(
        config,
        &RunOptions {
            stop_at: StopAt::AnyOf(vec![property]),
            ..options
        },
        |_| {},
    );
    assert_eq!(report.verdict(), Verdict::Fail, "{:?}", config.variant);
    let found = report.property(property).unwrap().clone();
    assert_eq!(
        found.status,
        PropertyStatus::Violated,
        "{:?}",
        config.variant
    );
    found
}
