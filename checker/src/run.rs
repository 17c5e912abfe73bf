//! One model-checking run and its report.

use crate::history::{BerthAction, BerthModel, BerthState, RunControl};
use crate::properties;
use crate::recovery;
use crate::scenario::ScenarioConfig;
use crate::trace::format_trace;
use serde::Serialize;
use stateright::actor::ActorModelAction;
use stateright::{Checker, Chooser, Expectation, HasDiscoveries, Model, Path};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How the state space is explored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Breadth-first: exhaustive, and counterexamples are shortest.
    Bfs,
    /// Depth-first: exhaustive, less memory for deep spaces.
    Dfs,
    /// Random walks: never exhaustive; for spaces too large to exhaust.
    Simulation,
}

/// Options of one run.
#[derive(Clone, Debug, Serialize)]
pub struct RunOptions {
    pub strategy: Strategy,
    pub threads: usize,
    /// Stop after this long; the run is then not exhaustive.
    pub timeout: Option<Duration>,
    /// Do not explore deeper than this many steps.
    pub max_depth: Option<usize>,
    /// Seed of the simulation strategy.
    pub seed: u64,
    /// When to stop before the state space is exhausted.
    pub stop_at: StopAt,
    /// After a BFS violation, search step by step for the shortest
    /// counterexample (and, where a crash is involved, a witness without
    /// one). Off where only the verdict matters: a correct-design run of
    /// `verify` that fails, which is how a mutant is killed.
    pub shortest: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            strategy: Strategy::Bfs,
            threads: 1,
            timeout: None,
            max_depth: None,
            seed: 0,
            stop_at: StopAt::FirstViolation,
            shortest: true,
        }
    }
}

/// When a run stops early because of what it found.
///
/// Stateright's checkers keep the *last* path they found for a property, so
/// stopping soon after the first violation is also what keeps a BFS
/// counterexample (nearly) shortest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StopAt {
    /// Explore everything, even after violations.
    Never,
    /// Stop soon after any always-property is violated.
    FirstViolation,
    /// Stop soon after any of these properties has a discovery.
    AnyOf(Vec<&'static str>),
}

/// A simulation with no timeout given stops after this long.
pub const DEFAULT_SIMULATION_TIMEOUT: Duration = Duration::from_secs(30);

/// The status of one property at the end of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PropertyStatus {
    /// Always-property, exhaustive run, no counterexample.
    Holds,
    /// Always-property with a counterexample.
    Violated,
    /// Always-property without a counterexample, but the run was not
    /// exhaustive.
    NotRefuted,
    /// Sometimes-property with an example.
    Reached,
    /// Sometimes-property without an example.
    Unreached,
}

impl PropertyStatus {
    /// The status as `check` prints it.
    pub fn label(self) -> &'static str {
        match self {
            PropertyStatus::Holds => "holds",
            PropertyStatus::Violated => "violated",
            PropertyStatus::NotRefuted => "not refuted",
            PropertyStatus::Reached => "reached",
            PropertyStatus::Unreached => "unreached",
        }
    }

    /// Whether this status lets the run pass.
    pub fn is_good(self) -> bool {
        matches!(self, PropertyStatus::Holds | PropertyStatus::Reached)
    }
}

/// One property in a report.
#[derive(Clone, Debug, Serialize)]
pub struct PropertyReport {
    pub name: &'static str,
    pub expectation: &'static str,
    pub status: PropertyStatus,
    pub meaning: &'static str,
    /// For a violation: what breaks the property in the last state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explanation: Option<String>,
    /// The discovery's path, one line per step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<Vec<String>>,
    /// The discovery's path encoded for the Explorer's URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// When the shortest counterexample crashes nobody (a false suspicion
    /// is enough) but the scenario has crashes: the shortest one that ends
    /// with the leader really down.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crash_trace: Option<Vec<String>>,
}

/// Why the run stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StopReason {
    /// Every reachable state was visited.
    Exhausted,
    /// The timeout cut the run short.
    Timeout,
    /// The depth bound cut the state space.
    DepthBound,
    /// A property the caller asked to stop at was discovered.
    Discovery,
    /// Random walks ran until the timeout; simulation is never exhaustive.
    Simulation,
}

/// The outcome of one run.
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    pub scenario: ScenarioConfig,
    pub options: RunOptions,
    pub unique_states: usize,
    pub total_states: usize,
    pub max_depth: usize,
    pub seconds: f64,
    pub states_per_second: f64,
    pub exhaustive: bool,
    pub stop_reason: StopReason,
    pub properties: Vec<PropertyReport>,
    /// After the exploration (`seconds`): the search for the shortest
    /// counterexample of each violated property and for one with a crashed
    /// leader.
    pub search_seconds: f64,
    /// Whether the liveness-beyond-rest check (`recovery`) ran, and what it
    /// found (its time is in `search_seconds`).
    pub beyond_rest: BeyondRest,
}

/// The liveness-beyond-rest check of a run: from every reachable state,
/// the goals of the liveness properties stay reachable without faults.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BeyondRest {
    /// The scenario states no liveness property.
    NotStated,
    /// Not run: the exploration was cut short.
    NotExhaustive,
    /// Not run: a liveness property already failed at rest.
    FoundAtRest,
    /// Not run: more states than the check keeps a graph of.
    TooLarge,
    /// Every goal stays reachable from every reachable state.
    Holds,
    /// Some goal can no longer be met from some state (reported as a
    /// violation of its property).
    Stuck,
}

impl BeyondRest {
    pub fn describe(self) -> Option<String> {
        Some(match self {
            BeyondRest::NotStated => return None,
            BeyondRest::NotExhaustive => {
                "not checked (the exploration was not exhaustive)".to_owned()
            }
            BeyondRest::FoundAtRest => "not checked (a liveness property failed at rest)".to_owned(),
            BeyondRest::TooLarge => format!(
                "NOT checked: more than {RECOVERY_STATE_LIMIT} states (the graph it keeps is bounded)"
            ),
            BeyondRest::Holds => {
                "from every reachable state the liveness goals stay reachable".to_owned()
            }
            BeyondRest::Stuck => "a state from which a liveness goal is never met".to_owned(),
        })
    }
}

/// The verdict of a run, and the process exit code that goes with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Exhaustive; every always-property holds; every sometimes-property reached.
    Pass,
    /// An always-property was violated, or an exhaustive run never reached a
    /// sometimes-property.
    Fail,
    /// No violation found, but the run was cut short.
    Incomplete,
}

impl Verdict {
    pub fn exit_code(self) -> i32 {
        match self {
            Verdict::Pass => 0,
            Verdict::Fail => 1,
            Verdict::Incomplete => 3,
        }
    }
}

impl RunReport {
    pub fn verdict(&self) -> Verdict {
        let violated = self
            .properties
            .iter()
            .any(|p| p.status == PropertyStatus::Violated);
        if violated {
            return Verdict::Fail;
        }
        if !self.exhaustive {
            return Verdict::Incomplete;
        }
        if self.properties.iter().all(|p| p.status.is_good()) {
            Verdict::Pass
        } else {
            Verdict::Fail
        }
    }

    pub fn property(&self, name: &str) -> Option<&PropertyReport> {
        self.properties.iter().find(|p| p.name == name)
    }
}

/// Progress while a run goes on.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    pub unique_states: usize,
    pub total_states: usize,
    pub max_depth: usize,
    pub elapsed: Duration,
    /// After the exploration: the property whose shortest counterexample
    /// is being searched, and the depth reached of the most it may take.
    pub searching: Option<(&'static str, usize, usize)>,
}

/// The shortest path to a discovery of `property`, searching depths up to
/// `upper` steps.
fn shortest_discovery(
    scenario: &ScenarioConfig,
    property: &'static str,
    upper: usize,
    mut searched: impl FnMut(usize),
) -> Option<Path<BerthState, BerthAction>> {
    (1..=upper).find_map(|steps| {
        searched(steps);
        scenario
            .build()
            .checker()
            // Depth counts the initial state as 1, and states at the target
            // depth are not checked.
            .target_max_depth(steps + 2)
            .finish_when(HasDiscoveries::AnyOf(BTreeSet::from([property])))
            .spawn_bfs()
            .join()
            .discovery(property)
    })
}

/// The most states the liveness-beyond-rest check keeps a graph of.
const RECOVERY_STATE_LIMIT: usize = 5_000_000;

/// How many steps longer than the shortest counterexample the search for
/// one with a crashed leader may go.
const CRASH_WITNESS_EXTRA_STEPS: usize = 4;

/// The shortest path, of `lower` to `upper` steps, to a state that breaks
/// `violation` while a leader is crashed.
fn shortest_crash_witness(
    scenario: &ScenarioConfig,
    violation: properties::Violation,
    lower: usize,
    upper: usize,
) -> Option<Path<BerthState, BerthAction>> {
    (lower..=upper).find_map(|steps| {
        scenario
            .build_with(RunControl {
                witness: Some(violation),
                ..RunControl::default()
            })
            .checker()
            .target_max_depth(steps + 2)
            .finish_when(HasDiscoveries::AnyFailures)
            .spawn_bfs()
            .join()
            .discovery(properties::VIOLATED_WHILE_LEADER_DOWN)
    })
}

/// A uniform chooser for random walks that picks only actions with an
/// effect. Stateright's simulation records the index of an ignored action
/// (a message the actor ignores) as if it were a step, so a path through
/// one cannot be rebuilt; choosing only effective actions avoids that.
#[derive(Clone)]
struct EffectiveChooser {
    model: Arc<BerthModel>,
}

/// The chooser's random state: SplitMix64, reproducible for a seed.
struct ChooserState(u64);

impl ChooserState {
    fn below(&mut self, bound: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) % bound as u64) as usize
    }
}

impl Chooser<BerthModel> for EffectiveChooser {
    type State = ChooserState;

    fn new_state(&self, seed: u64) -> ChooserState {
        ChooserState(seed)
    }

    fn choose_initial_state(&self, state: &mut ChooserState, initial: &[BerthState]) -> usize {
        state.below(initial.len())
    }

    fn choose_action(
        &self,
        state: &mut ChooserState,
        current: &BerthState,
        actions: &[BerthAction],
    ) -> usize {
        let effective: Vec<usize> = (0..actions.len())
            .filter(|index| {
                self.model
                    .next_state(current, actions[*index].clone())
                    .is_some()
            })
            .collect();
        if effective.is_empty() {
            state.below(actions.len())
        } else {
            effective[state.below(effective.len())]
        }
    }
}

/// Runs `scenario` with `options`, calling `progress` about once a second.
pub fn run(
    scenario: &ScenarioConfig,
    options: &RunOptions,
    mut progress: impl FnMut(Progress),
) -> RunReport {
    let control = RunControl::default();
    let model = scenario.build_with(control.clone());
    let chooser = EffectiveChooser {
        model: Arc::new(model.clone()),
    };
    let specs = scenario.properties();
    let mut builder = model.checker().threads(options.threads.max(1));
    let timeout = match (options.strategy, options.timeout) {
        (Strategy::Simulation, None) => Some(DEFAULT_SIMULATION_TIMEOUT),
        (_, timeout) => timeout,
    };
    if let (Strategy::Simulation, Some(timeout)) = (options.strategy, timeout) {
        builder = builder.timeout(timeout);
    }
    if let Some(depth) = options.max_depth {
        builder = builder.target_max_depth(depth);
    }
    builder = builder.finish_when(match &options.stop_at {
        StopAt::Never => HasDiscoveries::All,
        StopAt::FirstViolation => HasDiscoveries::AnyFailures,
        StopAt::AnyOf(names) => {
            HasDiscoveries::AnyOf(names.iter().copied().collect::<BTreeSet<_>>())
        }
    });
    let started = Instant::now();
    let mut timed_out = false;
    macro_rules! drive {
        ($checker:expr) => {{
            let checker = $checker;
            while !checker.is_done() {
                progress(Progress {
                    unique_states: checker.unique_state_count(),
                    total_states: checker.state_count(),
                    max_depth: checker.max_depth(),
                    elapsed: started.elapsed(),
                    searching: None,
                });
                let tick = Instant::now();
                while !checker.is_done() && tick.elapsed() < Duration::from_secs(1) {
                    if timeout.is_some_and(|timeout| started.elapsed() >= timeout) {
                        timed_out = true;
                        control.stop.store(true, Ordering::Relaxed);
                    }
                    // Polling: Stateright's checkers offer no completion
                    // signal but `is_done`, so the wait is a short poll.
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            let checker = checker.join();
            let elapsed = started.elapsed();
            (
                checker.unique_state_count(),
                checker.state_count(),
                checker.max_depth(),
                elapsed,
                checker.discoveries(),
                checker.model().clone(),
            )
        }};
    }
    let (unique_states, total_states, max_depth, elapsed, discoveries, model) =
        match options.strategy {
            Strategy::Bfs => drive!(builder.spawn_bfs()),
            Strategy::Dfs => drive!(builder.spawn_dfs()),
            Strategy::Simulation => drive!(builder.spawn_simulation(options.seed, chooser)),
        };
    let model: BerthModel = model;
    let mut discoveries = discoveries;
    let search_started = Instant::now();
    if options.strategy == Strategy::Bfs && options.shortest {
        // Stateright keeps the last path it found, not the first: deepen
        // step by step to recover the shortest counterexample.
        for spec in &specs {
            if spec.expectation != Expectation::Always {
                continue;
            }
            if let Some(found) = discoveries.get(spec.name) {
                let upper = found.clone().into_actions().len();
                let searched = |steps| {
                    progress(Progress {
                        unique_states,
                        total_states,
                        max_depth,
                        elapsed: started.elapsed(),
                        searching: Some((spec.name, steps, upper)),
                    })
                };
                if let Some(shortest) = shortest_discovery(scenario, spec.name, upper, searched) {
                    discoveries.insert(spec.name, shortest);
                }
            }
        }
    }
    // Liveness beyond rest (`recovery`): only once the exploration itself
    // finished, and wherever the scenario states liveness at rest; the
    // graph it keeps is bounded, so a run with more states says so.
    let explored_all = !timed_out
        && options.strategy != Strategy::Simulation
        && options.max_depth.is_none_or(|depth| max_depth < depth);
    let liveness_found = specs
        .iter()
        .any(|spec| spec.at_rest && discoveries.contains_key(spec.name));
    let states_liveness = specs.iter().any(|spec| spec.at_rest);
    let beyond_rest = if !states_liveness {
        BeyondRest::NotStated
    } else if !explored_all {
        BeyondRest::NotExhaustive
    } else if liveness_found {
        BeyondRest::FoundAtRest
    } else if unique_states > RECOVERY_STATE_LIMIT {
        BeyondRest::TooLarge
    } else {
        let goals: Vec<recovery::Goal> = specs
            .iter()
            .filter(|spec| spec.at_rest)
            .filter_map(|spec| Some((spec.name, spec.violation?)))
            .collect();
        let rest = specs
            .iter()
            .find(|spec| spec.name == crate::liveness::COMES_TO_REST)
            .map(|spec| spec.name);
        match recovery::check(&model, &goals, rest, RECOVERY_STATE_LIMIT) {
            recovery::Recovery::Holds => BeyondRest::Holds,
            recovery::Recovery::TooLarge => BeyondRest::TooLarge,
            recovery::Recovery::Stuck(stuck) => {
                for found in stuck {
                    discoveries.insert(found.goal, found.path);
                }
                BeyondRest::Stuck
            }
        }
    };
    let mut crash_witnesses = BTreeMap::new();
    if options.strategy == Strategy::Bfs && options.shortest && scenario.crashes > 0 {
        for spec in &specs {
            let (Some(found), Some(violation)) = (discoveries.get(spec.name), spec.violation)
            else {
                continue;
            };
            if spec.at_rest {
                continue;
            }
            let actions = found.clone().into_actions();
            if actions
                .iter()
                .any(|action| matches!(action, ActorModelAction::Crash(_)))
            {
                continue;
            }
            let lower = actions.len() + 1;
            if let Some(witness) = shortest_crash_witness(
                scenario,
                violation,
                lower,
                lower + CRASH_WITNESS_EXTRA_STEPS,
            ) {
                crash_witnesses.insert(spec.name, format_trace(&model, &witness));
            }
        }
    }

    let stopped_at_discovery = match &options.stop_at {
        StopAt::Never => false,
        StopAt::FirstViolation => specs.iter().any(|spec| {
            spec.expectation == Expectation::Always && discoveries.contains_key(spec.name)
        }),
        StopAt::AnyOf(names) => names.iter().any(|name| discoveries.contains_key(name)),
    };
    let stop_reason = if options.strategy == Strategy::Simulation {
        StopReason::Simulation
    } else if stopped_at_discovery {
        StopReason::Discovery
    } else if timed_out {
        StopReason::Timeout
    } else if options.max_depth.is_some_and(|depth| max_depth >= depth) {
        StopReason::DepthBound
    } else {
        StopReason::Exhausted
    };
    let exhaustive = stop_reason == StopReason::Exhausted;

    let properties = specs
        .iter()
        .map(|spec| {
            let discovery = discoveries.get(spec.name);
            let status = match (&spec.expectation, discovery, exhaustive) {
                (Expectation::Always, Some(_), _) => PropertyStatus::Violated,
                (Expectation::Always, None, true) => PropertyStatus::Holds,
                (Expectation::Always, None, false) => PropertyStatus::NotRefuted,
                (_, Some(_), _) => PropertyStatus::Reached,
                (_, None, _) => PropertyStatus::Unreached,
            };
            let show_path = status == PropertyStatus::Violated;
            PropertyReport {
                name: spec.name,
                expectation: match spec.expectation {
                    Expectation::Always => "always",
                    Expectation::Sometimes => "sometimes",
                    Expectation::Eventually => "eventually",
                },
                status,
                meaning: spec.meaning,
                explanation: discovery.filter(|_| show_path).and_then(|path| {
                    spec.violation
                        .and_then(|explain| explain(&model, path.last_state()))
                }),
                trace: discovery
                    .filter(|_| show_path)
                    .map(|path| format_trace(&model, path)),
                path: discovery.map(|path| path.encode(&model)),
                crash_trace: crash_witnesses.remove(spec.name),
            }
        })
        .collect();
    let seconds = elapsed.as_secs_f64();
    let search_seconds = search_started.elapsed().as_secs_f64();
    RunReport {
        scenario: scenario.clone(),
        options: options.clone(),
        unique_states,
        total_states,
        max_depth,
        seconds,
        states_per_second: if seconds > 0.0 {
            total_states as f64 / seconds
        } else {
            0.0
        },
        exhaustive,
        stop_reason,
        properties,
        search_seconds,
        beyond_rest,
    }
}
