//! Liveness beyond rest: from every reachable state, once the faults stop,
//! some run still reaches the goal.
//!
//! "At rest" (`liveness`) cannot see a livelock: a leader whose heartbeat
//! keeps firing at a follower that keeps answering, with nobody ever
//! sending what the follower lacks, never rests. This check builds the
//! scenario's whole state graph, keeps the steps that are not faults
//! (deliveries and timers; not crashes, recoveries or losses), and walks
//! it backwards from the states that meet the goal: a reachable state that
//! walk never meets is **stuck** — whatever happens from there without new
//! faults, the goal is never met. Its shortest path is the counterexample.
//!
//! This is `AG EF goal` over the fault-free steps: weaker than "every fair
//! run meets the goal" (a run may still circle away from a goal it could
//! reach), but it needs no fairness assumption, and it catches every
//! livelock in which no schedule helps. A step that would put a second
//! copy of a message in flight (outside the scenario's boundary) loses the
//! copy instead (`drop_extra_copies`), so that the bound never strands a
//! state.

use crate::history::{BerthAction, BerthModel, BerthState};
use crate::scenario::MAX_COPIES_IN_FLIGHT;
use berth_model::Msg;
use stateright::actor::{ActorModelAction, Network};
use stateright::{Model, Path};
use std::collections::hash_map::{DefaultHasher, Entry};
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};

/// A goal: names what is missing in a state, or `None` where it is met.
pub type Goal = (&'static str, crate::properties::Violation);

/// A state from which a goal can no longer be met.
pub struct Stuck {
    pub goal: &'static str,
    pub path: Path<BerthState, BerthAction>,
}

/// What the check found.
pub enum Recovery {
    /// Every goal stays reachable from every reachable state.
    Holds,
    /// For each goal that is not: the shortest path to a stuck state.
    Stuck(Vec<Stuck>),
    /// The state graph has more than the limit's states: not checked.
    TooLarge,
}

fn fingerprint(state: &BerthState) -> u64 {
    let mut hasher = DefaultHasher::new();
    state.hash(&mut hasher);
    hasher.finish()
}

fn is_fault(action: &BerthAction) -> bool {
    matches!(
        action,
        ActorModelAction::Crash(_) | ActorModelAction::Recover(_) | ActorModelAction::Drop(_)
    )
}

/// A step that would put a second copy of a message in flight (outside the
/// scenario's boundary) loses the copy instead: on the lossy networks the
/// liveness scenarios run, that is a step the network may take anyway, and
/// cutting the step off would strand states whose way to the goal passes
/// through it.
fn drop_extra_copies(state: &mut BerthState) {
    match &mut state.network {
        Network::Ordered(channels) => {
            for queue in channels.values_mut() {
                let mut seen: Vec<Msg> = Vec::new();
                queue.retain(|msg| {
                    let first = !seen.contains(msg);
                    if first {
                        seen.push(msg.clone());
                    }
                    first
                });
            }
        }
        Network::UnorderedNonDuplicating(envelopes) => {
            for copies in envelopes.values_mut() {
                *copies = (*copies).min(MAX_COPIES_IN_FLIGHT);
            }
        }
        Network::UnorderedDuplicating(..) => {}
    }
}

/// The parent of an initial state.
const NO_PARENT: u32 = u32::MAX;

/// The steps from `start` through the states numbered `ids` (in `index`):
/// at each state, the first step whose successor is the next one.
fn steps_along(
    model: &BerthModel,
    index: &HashMap<u64, u32>,
    start: BerthState,
    ids: &[u32],
) -> Vec<BerthAction> {
    let mut steps = Vec::new();
    let mut state = start;
    let mut actions = Vec::new();
    for id in ids {
        actions.clear();
        model.actions(&state, &mut actions);
        let found = actions.drain(..).find_map(|action| {
            let mut next = model.next_state(&state, action.clone())?;
            drop_extra_copies(&mut next);
            (index.get(&fingerprint(&next)) == Some(id)).then_some((action, next))
        });
        let Some((action, next)) = found else {
            break;
        };
        steps.push(action);
        state = next;
    }
    steps
}

/// Checks that every goal stays reachable without new faults from every
/// state reachable in `model`, exploring at most `limit` states. With
/// `rest` (a property's name), coming to rest is one more goal: a state
/// where no delivery and no timer changes anything, or where a replica is
/// down (whose leader rightly keeps calling it).
pub fn check(
    model: &BerthModel,
    goals: &[Goal],
    rest: Option<&'static str>,
    limit: usize,
) -> Recovery {
    // Coming to rest is known once a state's steps are: its bit is set
    // when the state is expanded, after every state-based goal's.
    let rest_bit = 1u64 << goals.len();
    let mut index: HashMap<u64, u32> = HashMap::new();
    // How each state was first reached: its parent (`NO_PARENT` for an
    // initial state). The step taken is found again for the one path
    // reported, so the graph keeps no actions.
    let mut parent: Vec<u32> = Vec::new();
    let mut init: Vec<BerthState> = Vec::new();
    let mut init_of: Vec<u32> = Vec::new();
    // The fault-free steps into each state (the graph walked backwards).
    let mut into: Vec<Vec<u32>> = Vec::new();
    let mut met: Vec<u64> = Vec::new();
    let mut queue: VecDeque<(BerthState, u32)> = VecDeque::new();
    let goal_bits = |state: &BerthState| -> u64 {
        let down = rest.is_some() && state.crashed.iter().any(|crashed| *crashed);
        goals
            .iter()
            .enumerate()
            .filter(|(_, (_, missing))| missing(model, state).is_none())
            .fold(if down { rest_bit } else { 0 }, |bits, (bit, _)| {
                bits | (1 << bit)
            })
    };
    for state in model.init_states() {
        if let Entry::Vacant(slot) = index.entry(fingerprint(&state)) {
            let id = parent.len() as u32;
            slot.insert(id);
            parent.push(NO_PARENT);
            into.push(Vec::new());
            met.push(goal_bits(&state));
            init_of.push(init.len() as u32);
            init.push(state.clone());
            queue.push_back((state, id));
        }
    }
    let mut actions = Vec::new();
    while let Some((state, id)) = queue.pop_front() {
        actions.clear();
        model.actions(&state, &mut actions);
        let mut at_rest = true;
        for action in actions.drain(..) {
            let fault = is_fault(&action);
            let Some(mut next) = model.next_state(&state, action) else {
                continue;
            };
            at_rest &= fault;
            drop_extra_copies(&mut next);
            if !model.within_boundary(&next) {
                continue;
            }
            let next_id = match index.entry(fingerprint(&next)) {
                Entry::Occupied(slot) => *slot.get(),
                Entry::Vacant(slot) => {
                    if parent.len() >= limit {
                        return Recovery::TooLarge;
                    }
                    let next_id = parent.len() as u32;
                    slot.insert(next_id);
                    parent.push(id);
                    into.push(Vec::new());
                    met.push(goal_bits(&next));
                    init_of.push(init_of[id as usize]);
                    queue.push_back((next, next_id));
                    next_id
                }
            };
            if !fault {
                into[next_id as usize].push(id);
            }
        }
        if at_rest && rest.is_some() {
            met[id as usize] |= rest_bit;
        }
    }
    let names = goals.iter().map(|(name, _)| *name).chain(rest);
    let mut stuck = Vec::new();
    for (bit, name) in names.enumerate() {
        let mut reaches = vec![false; parent.len()];
        let mut walk: VecDeque<u32> = VecDeque::new();
        for (id, bits) in met.iter().enumerate() {
            if bits & (1 << bit) != 0 {
                reaches[id] = true;
                walk.push_back(id as u32);
            }
        }
        while let Some(id) = walk.pop_front() {
            for from in &into[id as usize] {
                if !reaches[*from as usize] {
                    reaches[*from as usize] = true;
                    walk.push_back(*from);
                }
            }
        }
        // States are numbered in breadth-first order: the first stuck one
        // has a shortest path.
        if let Some(first) = reaches.iter().position(|reached| !reached) {
            let mut ids = vec![first as u32];
            while parent[*ids.last().unwrap() as usize] != NO_PARENT {
                ids.push(parent[*ids.last().unwrap() as usize]);
            }
            ids.reverse();
            let start = init[init_of[first] as usize].clone();
            let steps = steps_along(model, &index, start.clone(), &ids[1..]);
            if let Some(path) = Path::from_actions(model, start, steps.iter()) {
                stuck.push(Stuck { goal: name, path });
            }
        }
    }
    if stuck.is_empty() {
        Recovery::Holds
    } else {
        Recovery::Stuck(stuck)
    }
}
