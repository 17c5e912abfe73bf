//! The model `berth-check explore` serves: a scenario's actor model whose
//! states carry, and show first, the always-properties they violate.
//!
//! Stateright's Explorer marks a property violated only once its own
//! on-demand checker (a depth-first search, started by "Run to completion")
//! has found a counterexample, which in the larger scenarios takes longer
//! than anyone waits. Here every state the Explorer renders begins with the
//! properties it breaks and why, in the sentence `berth-check check`
//! prints, so the counterexample URL opens on a state that says what went
//! wrong. Actions read as the steps of `check`'s traces (actors by role
//! name); their indices, and so every path and URL, and the sequence
//! diagram are the wrapped model's own.

use crate::history::{BerthModel, BerthState};
use crate::properties::PropertySpec;
use crate::trace::describe_action;
use stateright::{Expectation, Model, Path, Property};
use std::fmt;
use std::hash::{Hash, Hasher};

/// A state of the served model: the actor model's state and the
/// always-properties it violates, each with its explanation.
#[derive(Clone)]
pub struct ExploredState {
    pub state: BerthState,
    pub violations: Vec<(&'static str, String)>,
}

impl PartialEq for ExploredState {
    fn eq(&self, other: &Self) -> bool {
        // The violations are a function of the state.
        self.state == other.state
    }
}

impl Hash for ExploredState {
    fn hash<H: Hasher>(&self, hasher: &mut H) {
        // The same fingerprint as the wrapped state, so a path means the
        // same in both models.
        self.state.hash(hasher)
    }
}

impl fmt::Debug for ExploredState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.violations.is_empty() {
            writeln!(f, "every always-property holds in this state")?;
        }
        for (name, explanation) in &self.violations {
            writeln!(f, "VIOLATED `{name}`: {explanation}")?;
        }
        writeln!(f)?;
        self.state.fmt(f)
    }
}

/// The scenario's model with violations attached to its states.
pub struct ExploredModel {
    pub inner: BerthModel,
    specs: Vec<PropertySpec>,
}

impl ExploredModel {
    /// Wraps `inner`, whose properties are `specs` (in the same order).
    pub fn new(inner: BerthModel, specs: Vec<PropertySpec>) -> Self {
        assert!(
            specs.len() <= CONDITIONS.len(),
            "the Explorer serves at most {} properties",
            CONDITIONS.len()
        );
        ExploredModel { inner, specs }
    }

    fn explore(&self, state: BerthState) -> ExploredState {
        let violations = self
            .specs
            .iter()
            .filter(|spec| spec.expectation == Expectation::Always)
            .filter(|spec| !(spec.condition)(&self.inner, &state))
            .filter_map(|spec| {
                let explanation = (spec.violation?)(&self.inner, &state)?;
                Some((spec.name, explanation))
            })
            .collect();
        ExploredState { state, violations }
    }
}

/// Property `I` of the wrapped model, evaluated on the wrapped state. A
/// Stateright property is a plain `fn`, so each index gets its own.
fn condition<const I: usize>(model: &ExploredModel, state: &ExploredState) -> bool {
    (model.specs[I].condition)(&model.inner, &state.state)
}

type Condition = fn(&ExploredModel, &ExploredState) -> bool;

const CONDITIONS: [Condition; 32] = [
    condition::<0>,
    condition::<1>,
    condition::<2>,
    condition::<3>,
    condition::<4>,
    condition::<5>,
    condition::<6>,
    condition::<7>,
    condition::<8>,
    condition::<9>,
    condition::<10>,
    condition::<11>,
    condition::<12>,
    condition::<13>,
    condition::<14>,
    condition::<15>,
    condition::<16>,
    condition::<17>,
    condition::<18>,
    condition::<19>,
    condition::<20>,
    condition::<21>,
    condition::<22>,
    condition::<23>,
    condition::<24>,
    condition::<25>,
    condition::<26>,
    condition::<27>,
    condition::<28>,
    condition::<29>,
    condition::<30>,
    condition::<31>,
];

impl Model for ExploredModel {
    type State = ExploredState;
    type Action = <BerthModel as Model>::Action;

    fn init_states(&self) -> Vec<Self::State> {
        self.inner
            .init_states()
            .into_iter()
            .map(|state| self.explore(state))
            .collect()
    }

    fn actions(&self, state: &Self::State, actions: &mut Vec<Self::Action>) {
        self.inner.actions(&state.state, actions)
    }

    fn next_state(&self, last_state: &Self::State, action: Self::Action) -> Option<Self::State> {
        self.inner
            .next_state(&last_state.state, action)
            .map(|state| self.explore(state))
    }

    /// Actions as `berth-check check` prints a trace's steps, actors named
    /// by role.
    fn format_action(&self, action: &Self::Action) -> String {
        describe_action(&self.inner, action)
    }

    /// What the Explorer shows for a step unless asked for the complete
    /// state: the violations of the state it leads to, then the wrapped
    /// model's outcome (the actor's new state and commands).
    fn format_step(&self, last_state: &Self::State, action: Self::Action) -> Option<String> {
        let next = self.next_state(last_state, action.clone());
        let outcome = self.inner.format_step(&last_state.state, action)?;
        let mut shown = String::new();
        for (name, explanation) in next.iter().flat_map(|next| &next.violations) {
            shown.push_str(&format!("VIOLATED `{name}`: {explanation}\n"));
        }
        if !shown.is_empty() {
            shown.push('\n');
        }
        shown.push_str(&outcome);
        Some(shown)
    }

    fn as_svg(&self, path: Path<Self::State, Self::Action>) -> Option<String> {
        let steps = path.into_vec();
        let init = steps.first()?.0.state.clone();
        let actions: Vec<_> = steps.into_iter().filter_map(|(_, action)| action).collect();
        self.inner
            .as_svg(Path::from_actions(&self.inner, init, actions.iter())?)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        self.specs
            .iter()
            .zip(CONDITIONS)
            .map(|(spec, condition)| Property {
                expectation: spec.expectation.clone(),
                name: spec.name,
                condition,
            })
            .collect()
    }

    fn within_boundary(&self, state: &Self::State) -> bool {
        Model::within_boundary(&self.inner, &state.state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::properties::NO_DOUBLE_SALE;
    use crate::run::{run, RunOptions, StopAt};
    use crate::scenario::ScenarioConfig;
    use berth_model::Variant;
    use std::collections::VecDeque;

    /// Follows action indices as the Explorer does.
    fn follow(model: &ExploredModel, path: &str) -> ExploredState {
        let mut indices: VecDeque<usize> = path
            .split('/')
            .map(|index| index.parse().unwrap())
            .collect();
        let mut state = model.init_states()[indices.pop_front().unwrap()].clone();
        for index in indices {
            let mut actions = Vec::new();
            model.actions(&state, &mut actions);
            if let Some(next) = model.next_state(&state, actions[index].clone()) {
                state = next;
            }
        }
        state
    }

    /// Goal: every scenario, with every option that adds properties, can
    /// be served (the Explorer has one `fn` per property index).
    #[test]
    fn every_scenario_fits_the_explorer() {
        use crate::scenario::Scenario;
        for scenario in [
            Scenario::Replication,
            Scenario::Failover,
            Scenario::Cutover,
            Scenario::All,
        ] {
            let config = ScenarioConfig {
                expiring_holds: true,
                stream: true,
                runtime_settings: true,
                query: true,
                ..ScenarioConfig::new(scenario)
            };
            let count = config.properties().len();
            assert!(
                count <= CONDITIONS.len(),
                "{scenario:?}: {count} properties"
            );
        }
    }

    /// Goal: the counterexample path `check` finds opens, in the served
    /// model, on a state that names the violated property and explains it;
    /// the states before it say that everything holds.
    #[test]
    fn the_counterexample_state_shows_its_violation() {
        let config = ScenarioConfig::exposing(Variant::MultiLeader);
        let report = run(
            &config,
            &RunOptions {
                stop_at: StopAt::AnyOf(vec![NO_DOUBLE_SALE]),
                ..RunOptions::default()
            },
            |_| {},
        );
        let property = report.property(NO_DOUBLE_SALE).unwrap();
        let path = property.path.as_ref().unwrap();
        let model = ExploredModel::new(config.build(), config.properties());
        let state = follow(&model, path);
        let shown = format!("{state:#?}");
        assert!(
            shown.lines().any(|line| line
                .starts_with("VIOLATED `no double sale`: BCN-JFK-2026-07-14/C14 was sold twice")),
            "{shown}"
        );
        // The step into the violating state shows it too (the Explorer
        // shows a step's outcome unless asked for the complete state).
        let (last, action) = path.rsplit_once('/').unwrap();
        let before = follow(&model, last);
        let mut actions = Vec::new();
        model.actions(&before, &mut actions);
        let action = actions[action.parse::<usize>().unwrap()].clone();
        let outcome = model.format_step(&before, action).unwrap();
        assert!(outcome.contains("VIOLATED `no double sale`"), "{outcome}");
        let start = format!("{:#?}", model.init_states()[0]);
        assert!(start.starts_with("every always-property holds"), "{start}");
        // The properties are the wrapped model's, in order, and evaluate
        // the same way.
        let names: Vec<_> = model.properties().iter().map(|p| p.name).collect();
        let inner: Vec<_> = model.inner.properties().iter().map(|p| p.name).collect();
        assert_eq!(names, inner);
        let double_sale = model.property(NO_DOUBLE_SALE);
        assert!(!(double_sale.condition)(&model, &state));
        assert!((double_sale.condition)(&model, &model.init_states()[0]));
    }
}
