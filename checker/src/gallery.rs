//! The gallery of broken designs: every variant run on the smallest
//! scenario that exposes it, breadth-first so that its counterexample is
//! shortest, then the correct design run exhaustively on the same
//! scenarios.

use crate::properties::expected_violations;
use crate::run::{run, PropertyStatus, RunOptions, StopAt, Strategy, Verdict};
use crate::scenario::ScenarioConfig;
use berth_model::Variant;
use serde::Serialize;
use std::collections::BTreeSet;
use std::time::Duration;

/// How long the gallery walks a state space too large to exhaust.
pub const SIMULATION_SECONDS: u64 = 20;

/// One broken design in the gallery.
#[derive(Clone, Debug, Serialize)]
pub struct VariantRow {
    pub variant: Variant,
    /// The design the variant stands for.
    pub design: &'static str,
    /// The flags of the scenario that exposes it.
    pub scenario: String,
    /// The property it must break (any one of them; docs/protocol.md, the gallery).
    pub expected: Vec<&'static str>,
    /// Whether the checker refuted it by an expected property.
    pub refuted: bool,
    /// Every property found violated.
    pub violated: Vec<&'static str>,
    /// Steps of the shortest counterexample of the expected property.
    pub trace_length: Option<usize>,
    pub unique_states: usize,
    pub seconds: f64,
}

/// The correct design on one of the gallery's scenarios.
#[derive(Clone, Debug, Serialize)]
pub struct CorrectRow {
    pub scenario: String,
    /// How it was checked: `bfs` (exhaustive) or `simulation` (random
    /// walks for `SIMULATION_SECONDS`, for a state space too large to
    /// exhaust on a small machine).
    pub strategy: Strategy,
    /// Exhaustive and passing; or, for a simulation, no violation found.
    pub passes: bool,
    pub unique_states: usize,
    pub seconds: f64,
}

/// The whole gallery.
#[derive(Clone, Debug, Serialize)]
pub struct GalleryReport {
    pub variants: Vec<VariantRow>,
    pub correct: Vec<CorrectRow>,
}

impl GalleryReport {
    /// Every variant refuted by its expected property, and the correct
    /// design passing every scenario.
    pub fn passes(&self) -> bool {
        self.variants.iter().all(|row| row.refuted) && self.correct.iter().all(|row| row.passes)
    }
}

/// Runs the gallery with `threads` worker threads, calling `progress` with
/// a line before each run.
pub fn gallery(threads: usize, mut progress: impl FnMut(&str)) -> GalleryReport {
    let mut variants = Vec::new();
    let mut scenarios: Vec<ScenarioConfig> = Vec::new();
    let mut seen = BTreeSet::new();
    for variant in Variant::ALL {
        if variant == Variant::Correct {
            continue;
        }
        let config = ScenarioConfig::exposing(variant);
        if seen.insert(config.flags()) {
            scenarios.push(ScenarioConfig {
                variant: Variant::Correct,
                ..config.clone()
            });
        }
        progress(&format!("{variant} on {}", config.flags()));
        let expected = expected_violations(variant).to_vec();
        let report = run(
            &config,
            &RunOptions {
                strategy: Strategy::Bfs,
                threads,
                stop_at: StopAt::AnyOf(expected.clone()),
                ..RunOptions::default()
            },
            |_| {},
        );
        let violated: Vec<&'static str> = report
            .properties
            .iter()
            .filter(|p| p.status == PropertyStatus::Violated)
            .map(|p| p.name)
            .collect();
        let refuting = expected.iter().find_map(|name| {
            report
                .property(name)
                .filter(|p| p.status == PropertyStatus::Violated)
        });
        variants.push(VariantRow {
            variant,
            design: variant.design(),
            scenario: config.flags(),
            expected,
            refuted: refuting.is_some(),
            violated,
            trace_length: refuting.and_then(|p| p.trace.as_ref()).map(Vec::len),
            unique_states: report.unique_states,
            seconds: report.seconds + report.search_seconds,
        });
    }
    let correct = scenarios
        .iter()
        .map(|config| {
            progress(&format!("correct on {}", config.flags()));
            // Two epoch changes in the failover scenario exceed the memory
            // of a breadth-first run here; random walks check them instead.
            let strategy = if config.failovers > 1 {
                Strategy::Simulation
            } else {
                Strategy::Bfs
            };
            let report = run(
                config,
                &RunOptions {
                    strategy,
                    threads,
                    timeout: (strategy == Strategy::Simulation)
                        .then(|| Duration::from_secs(SIMULATION_SECONDS)),
                    stop_at: StopAt::Never,
                    ..RunOptions::default()
                },
                |_| {},
            );
            let passes = match strategy {
                Strategy::Simulation => report.verdict() != Verdict::Fail,
                _ => report.verdict() == Verdict::Pass,
            };
            CorrectRow {
                scenario: config.flags(),
                strategy,
                passes,
                unique_states: report.unique_states,
                seconds: report.seconds + report.search_seconds,
            }
        })
        .collect();
    GalleryReport { variants, correct }
}
