//! The properties issue 17 added: the replica invariants in every state,
//! the promises to clients (answers match the history, "not decided" is
//! final), and liveness at rest under the runtime's own settings — each
//! shown to hold where it must and to catch what it names.

use berth_checker::agree;
use berth_checker::history::BerthState;
use berth_checker::liveness::{self, FOLLOWERS_CATCH_UP};
use berth_checker::promises::{self, NOT_DECIDED_IS_FINAL, TOKEN_QUERY_ANSWERED};
use berth_checker::properties::{self, REPLICA_INVARIANTS};
use berth_checker::rules;
use berth_checker::saved;
use berth_checker::{
    run, NetworkKind, PropertyStatus, RunOptions, Scenario, ScenarioConfig, StopAt, Verdict,
};
use berth_model::log::Entry;
use berth_model::{Bucket, NodeState, Outcome, Position, Refusal, Storage, Token, Variant};
use stateright::{Checker, Model};
use std::sync::Arc;

fn exhaustive(config: &ScenarioConfig) -> berth_checker::RunReport {
    run(
        config,
        &RunOptions {
            stop_at: StopAt::Never,
            ..RunOptions::default()
        },
        |_| {},
    )
}

fn runtime_settings() -> ScenarioConfig {
    ScenarioConfig {
        clients: 1,
        network: NetworkKind::OrderedLossy,
        runtime_settings: true,
        ..ScenarioConfig::new(Scenario::Replication)
    }
}

/// Goal: with a support client asking what became of the first client's
/// hold at any moment, every answer is final: a hold that arrives after
/// "not decided" is refused (the void closed its token).
#[test]
fn a_token_query_answer_is_final() {
    let config = ScenarioConfig {
        clients: 1,
        query: true,
        ..ScenarioConfig::new(Scenario::Replication)
    };
    let report = exhaustive(&config);
    assert_eq!(report.verdict(), Verdict::Pass, "{:#?}", report.properties);
    assert_eq!(
        report.property(TOKEN_QUERY_ANSWERED).map(|p| p.status),
        Some(PropertyStatus::Reached)
    );
    assert_eq!(
        report.property(NOT_DECIDED_IS_FINAL).map(|p| p.status),
        Some(PropertyStatus::Holds)
    );
}

/// Goal: the runtime's settings (resends, re-sent fences, announcements,
/// appends of one entry, batches of one bucket, catch-up) on a network
/// that loses messages hold every safety property, and every run that
/// comes to rest has its followers caught up and its clients finished.
#[test]
fn runtime_settings_keep_safety_and_liveness() {
    let report = exhaustive(&runtime_settings());
    assert!(report.exhaustive);
    assert_eq!(report.verdict(), Verdict::Pass, "{:#?}", report.properties);
    for name in [FOLLOWERS_CATCH_UP, liveness::CLIENTS_FINISH] {
        assert_eq!(
            report.property(name).map(|p| p.status),
            Some(PropertyStatus::Holds),
            "{name}"
        );
    }
}

/// Goal: a leader whose spent resends are never re-armed leaves a follower
/// that lost its appends behind for good, and liveness says so.
#[test]
fn resends_run_out_is_refuted_by_followers_catch_up() {
    let config = ScenarioConfig::exposing(Variant::ResendsRunOut);
    let report = run(&config, &RunOptions::default(), |_| {});
    let property = report.property(FOLLOWERS_CATCH_UP).unwrap();
    assert_eq!(property.status, PropertyStatus::Violated);
    let trace = property.trace.as_ref().unwrap();
    assert!(
        trace.iter().any(|step| step.contains("network drops")),
        "{trace:#?}"
    );
}

/// A state of the runtime-settings scenario in which the leader has
/// replied to its client.
fn state_after_a_reply() -> BerthState {
    let model = runtime_settings().build();
    let checker = model.checker().spawn_bfs().join();
    checker
        .discovery(properties::BOOKING_CONFIRMED)
        .expect("a booking is confirmed")
        .last_state()
        .clone()
}

/// Goal: each new always-property catches the violation it names, on a
/// reachable state with exactly the bad fact forged in.
#[test]
fn new_properties_catch_forged_violations() {
    let state = state_after_a_reply();
    assert_eq!(properties::broken_replica_invariant(&state), None);
    assert_eq!(promises::answer_against_history(&state), None);
    assert_eq!(promises::decided_after_not_decided(&state), None);
    let ack = state
        .history
        .acknowledgements
        .iter()
        .find(|ack| ack.outcome == Outcome::Confirmed)
        .cloned()
        .unwrap();

    // replica invariants: the leader's commit moved beyond its log.
    let mut forged = state.clone();
    let mut leader = forged.actor_states[1].as_ref().clone();
    if let NodeState::Replica(replica) = &mut leader {
        Arc::make_mut(&mut replica.buckets.get_mut(&Bucket(0)).unwrap().durable).commit_position =
            Position(99);
    }
    forged.actor_states[1] = Arc::new(leader);
    let broken = properties::broken_replica_invariant(&forged).unwrap();
    assert!(broken.contains("beyond the log"), "{broken}");
    assert!(REPLICA_INVARIANTS.contains("invariants"));

    // answers match the history: the client told another outcome.
    let mut forged = state.clone();
    forged.history.acknowledgements.remove(&ack);
    forged
        .history
        .acknowledgements
        .insert(berth_checker::history::Acknowledgement {
            outcome: Outcome::Refused(Refusal::UnitHeld),
            ..ack.clone()
        });
    assert!(promises::answer_against_history(&forged).is_some());

    // not decided is final: the confirmed token was also answered "not
    // decided".
    let mut forged = state.clone();
    forged.history.not_decided.insert((ack.token, ack.bucket));
    assert!(promises::decided_after_not_decided(&forged).is_some());
    // … and a token nobody decided may be answered so.
    let mut fine = state.clone();
    fine.history
        .not_decided
        .insert((Token { client: 9, seq: 0 }, Bucket(0)));
    assert_eq!(promises::decided_after_not_decided(&fine), None);
}

/// Goal: `committed state follows the booking rules` holds on a reachable
/// state and catches a committed state the rules do not make: a booked
/// unit forgotten, and a decided token recorded with another outcome.
#[test]
fn booking_rules_catch_a_forged_committed_state() {
    let state = state_after_a_reply();
    assert_eq!(rules::against_the_rules(&state), None);
    let forge = |change: &dyn Fn(&mut berth_model::bucket::BucketState)| {
        let mut forged = state.clone();
        let mut leader = forged.actor_states[1].as_ref().clone();
        if let NodeState::Replica(replica) = &mut leader {
            let copy = replica.buckets.get_mut(&Bucket(0)).unwrap();
            change(&mut Arc::make_mut(&mut copy.durable).applied);
        }
        forged.actor_states[1] = Arc::new(leader);
        rules::against_the_rules(&forged)
    };
    let forgotten = forge(&|applied| {
        let unit = applied.units.keys().next().unwrap().clone();
        applied.units.remove(&unit);
    })
    .expect("a forgotten unit breaks the rules");
    assert!(forgotten.contains("the rules make"), "{forgotten}");
    let rewritten = forge(&|applied| {
        let token = *applied.outcomes.keys().next().unwrap();
        let mut recorded = applied.recorded(&token).unwrap();
        recorded.outcome = Outcome::Refused(Refusal::UnitSold);
        applied.outcomes.insert(token, recorded);
    })
    .expect("a rewritten outcome breaks the rules");
    assert!(rewritten.contains("is recorded as"), "{rewritten}");
}

/// Goal: `saved state is durable state` holds on a reachable state, in
/// which the leader saved through the runtime's change records, and
/// catches a save that left a bucket behind.
#[test]
fn saved_state_is_durable_state_catches_a_stale_save() {
    let state = state_after_a_reply();
    assert_eq!(saved::unsaved_change(&state), None);
    assert!(
        matches!(state.actor_storages[1], Some(Storage::Replica(_))),
        "the leader saved"
    );
    let mut forged = state.clone();
    if let Some(Storage::Replica(saved)) = &mut forged.actor_storages[1] {
        let durable = saved.get_mut(&Bucket(0)).unwrap();
        let mut older = durable.as_ref().clone();
        older.commit_position = Position(0);
        *durable = Arc::new(older);
    }
    let stale = saved::unsaved_change(&forged).expect("a stale save is caught");
    assert!(stale.contains("replica 1 saved"), "{stale}");
}

/// Goal: "at rest" means no delivery and no timer can change anything:
/// the initial state, with the client's request in flight, is not.
#[test]
fn at_rest_is_judged_by_what_can_still_happen() {
    let model = runtime_settings().build();
    let initial = model.init_states().remove(0);
    assert!(!liveness::at_rest(&model, &initial));
}

/// Goal: `one answer per action` and `followers learn the commit` hold on
/// a reachable state and catch what they name: a client that kept a
/// second copy of an answer, and a follower holding its leader's whole
/// log without its commit.
#[test]
fn answer_twice_and_uninformed_follower_are_caught() {
    let state = state_after_a_reply();
    assert_eq!(promises::answer_taken_twice(&state), None);
    let client = state
        .actor_states
        .iter()
        .position(|node| matches!(&**node, NodeState::Client(c) if !c.answers.is_empty()))
        .expect("a client has an answer");
    let mut forged = state.clone();
    let mut node = forged.actor_states[client].as_ref().clone();
    if let NodeState::Client(c) = &mut node {
        let first = c.answers[0].clone();
        c.answers.push(first);
    }
    forged.actor_states[client] = Arc::new(node);
    let twice = promises::answer_taken_twice(&forged).expect("a duplicate answer kept");
    assert!(twice.contains("two answers"), "{twice}");

    // Every follower a copy of the leader's bucket: informed.
    let leader = match &*state.actor_states[1] {
        NodeState::Replica(replica) => replica.buckets.get(&Bucket(0)).unwrap().durable.clone(),
        _ => unreachable!("replica 1 leads"),
    };
    assert!(leader.commit_position > Position(0), "the reply committed");
    let mut informed = state.clone();
    for index in 2..informed.actor_states.len() {
        let mut node = informed.actor_states[index].as_ref().clone();
        if let NodeState::Replica(replica) = &mut node {
            if let Some(copy) = replica.buckets.get_mut(&Bucket(0)) {
                copy.durable = leader.clone();
            }
        }
        informed.actor_states[index] = Arc::new(node);
    }
    assert_eq!(liveness::uninformed_follower(&informed), None);
    let mut uninformed = informed.clone();
    let mut node = uninformed.actor_states[2].as_ref().clone();
    if let NodeState::Replica(replica) = &mut node {
        let copy = replica.buckets.get_mut(&Bucket(0)).unwrap();
        Arc::make_mut(&mut copy.durable).commit_position = Position(0);
    }
    uninformed.actor_states[2] = Arc::new(node);
    let missing =
        liveness::uninformed_follower(&uninformed).expect("a follower without the commit");
    assert!(missing.contains("committed only through"), "{missing}");
}

/// Goal: `committed logs agree` holds on a reachable state and catches a
/// follower that committed another entry where the leader committed the
/// booking (a divergent suffix kept instead of truncated).
#[test]
fn committed_logs_agree_catches_a_divergent_commit() {
    let state = state_after_a_reply();
    assert_eq!(agree::disagreement(&state), None);
    let leader = match &*state.actor_states[1] {
        NodeState::Replica(replica) => replica.buckets.get(&Bucket(0)).unwrap().durable.clone(),
        _ => unreachable!("replica 1 leads"),
    };
    let mut forged = state.clone();
    let mut node = forged.actor_states[2].as_ref().clone();
    if let NodeState::Replica(replica) = &mut node {
        let copy = replica.buckets.get_mut(&Bucket(0)).unwrap();
        copy.durable = leader.clone();
        let durable = Arc::make_mut(&mut copy.durable);
        let epoch = durable.log.last_epoch();
        durable.log.truncate_after(Position(0));
        for _ in 0..leader.log.last_position().0 {
            durable.log.push(Entry::noop(epoch));
        }
    }
    forged.actor_states[2] = Arc::new(node);
    let broken = agree::disagreement(&forged).expect("a divergent commit");
    assert!(broken.contains("different entries"), "{broken}");
}

/// Goal: `clients do as asked` holds for a client's own answers, and
/// names a client that kept an answer no task asks for, or an answer about
/// another cabin.
#[test]
fn a_step_nobody_asked_for_is_caught() {
    let model = runtime_settings().build();
    let state = state_after_a_reply();
    assert_eq!(promises::step_not_asked(&model, &state), None);
    let client = state
        .actor_states
        .iter()
        .position(|node| matches!(&**node, NodeState::Client(c) if !c.answers.is_empty()))
        .expect("a client has an answer");
    let forge = |change: &dyn Fn(&mut Vec<berth_model::Msg>)| {
        let mut forged = state.clone();
        let mut node = forged.actor_states[client].as_ref().clone();
        if let NodeState::Client(c) = &mut node {
            change(&mut c.answers);
        }
        forged.actor_states[client] = Arc::new(node);
        promises::step_not_asked(&model, &forged)
    };
    // A booking is at most two steps: a third answer is one nobody asked for.
    let extra = forge(&|answers| {
        while answers.len() < 3 {
            answers.push(answers[0].clone());
        }
    })
    .expect("an answer no task asks for");
    assert!(extra.contains("none of its 1 tasks asks for"), "{extra}");
    // An answer about another cabin.
    let other = forge(&|answers| {
        if let berth_model::Msg::Reply(reply) = &mut answers[0] {
            reply.unit = berth_model::InventoryUnit::new("BCN-JFK-2026-07-14", "A01");
        }
    })
    .expect("an answer about another cabin");
    assert!(
        other.contains("as the answer to its task to act on"),
        "{other}"
    );
    // The booking is confirmed: the client is through its script. A stop
    // test that says otherwise (the runtime's client would wait until its
    // deadline) is named.
    let mut forged = state.clone();
    let mut node = forged.actor_states[client].as_ref().clone();
    if let NodeState::Client(c) = &mut node {
        assert!(c.pending.is_none(), "nothing in flight once confirmed");
        c.task_index = 0;
    }
    forged.actor_states[client] = Arc::new(node);
    let stop = promises::step_not_asked(&model, &forged).expect("a stop test that disagrees");
    assert!(stop.contains("its stop test says it is not done"), "{stop}");
}
