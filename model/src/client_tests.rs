//! Engine tests of the client's retries (`client.rs`).

use crate::actor::{BerthActor, NodeState, Timer};
use crate::client::{ClientActor, Task};
use crate::config::ProtocolConfig;
use crate::messages::Msg;
use crate::placement::PlacementMap;
use crate::test_support::{fire, placement, start, Commands, CONTROLLER, LEADER};
use crate::types::{Customer, InventoryUnit};
use stateright::actor::{Command, Id};
use std::time::Duration;

fn client(retries: u8) -> BerthActor {
    BerthActor::Client(ClientActor {
        client: 7,
        controller: Id::from(CONTROLLER),
        customer: Customer::new("alice"),
        tasks: vec![Task::Book(InventoryUnit::new("T", "C1"))],
        observed: Default::default(),
        reader: None,
        initial_map: PlacementMap::uniform(4, placement(1, LEADER, 2, 3)),
        regional_replica: None,
        config: ProtocolConfig {
            client_retries: retries,
            ..ProtocolConfig::default()
        },
    })
}

/// Whether `commands` ask the controller for the map, and the retry
/// timer's range they set (if any).
fn retry(commands: &Commands) -> (bool, Option<std::ops::Range<Duration>>) {
    let fetched = commands.iter().any(|command| {
        matches!(command, Command::Send(to, Msg::FetchMap) if *to == Id::from(CONTROLLER))
    });
    let timer = commands.iter().find_map(|command| match command {
        Command::SetTimer(Timer::ClientRetry, range) => Some(range.clone()),
        _ => None,
    });
    (fetched, timer)
}

/// Goal: an unanswered request is resent with the interval doubling per
/// try up to 4 times the configured one, and the controller is asked for
/// the map only from the second retry on and on the last: one silence is
/// as likely a busy leader as a dead one (issue: overload collapse, where
/// every client's first retry buried the controller in map requests).
#[test]
fn retries_back_off_and_ask_for_the_map_from_the_second_on() {
    let actor = client(6);
    let mut state: NodeState = start(&actor, 4);
    let base = ProtocolConfig::default().timeouts.client_retry;
    let mut seen = Vec::new();
    for _ in 0..6 {
        let commands = fire(&actor, &mut state, 4, Timer::ClientRetry);
        let resent = commands.iter().any(|command| {
            matches!(command, Command::Send(to, Msg::Request { .. }) if *to == Id::from(LEADER))
        });
        assert!(resent, "every retry resends the request");
        seen.push(retry(&commands));
    }
    let fetched: Vec<bool> = seen.iter().map(|(fetched, _)| *fetched).collect();
    assert_eq!(fetched, [false, true, true, true, true, true]);
    let factors: Vec<u32> = seen
        .iter()
        .filter_map(|(_, timer)| timer.as_ref())
        .map(|range| (range.start.as_nanos() / base.start.as_nanos()) as u32)
        .collect();
    assert_eq!(factors, [2, 4, 4, 4, 4], "the last retry sets no timer");
    // With a single retry, that retry is the last: it asks for the map.
    let actor = client(1);
    let mut state = start(&actor, 4);
    let (fetched, timer) = retry(&fire(&actor, &mut state, 4, Timer::ClientRetry));
    assert!(fetched && timer.is_none());
}

/// Goal: a client is done only when every task is answered — the hold,
/// then the confirmation a booking needs — and a reply or a "not decided"
/// about another token does not finish it (the `berth` CLI exits when
/// `done` says so; no checker scenario has a client that could receive
/// either).
#[test]
fn a_client_is_done_only_when_its_booking_is_confirmed() {
    use crate::bucket::Outcome;
    use crate::messages::Reply;
    use crate::test_support::deliver;
    use crate::types::{Bucket, Epoch, Position, Token};
    let actor = client(0);
    let BerthActor::Client(client_actor) = &actor else {
        unreachable!()
    };
    let mut state: NodeState = start(&actor, 4);
    let done = |state: &NodeState| match state {
        NodeState::Client(client) => client.done(client_actor),
        _ => unreachable!(),
    };
    assert!(!done(&state));
    let reply = |seq, outcome| {
        Msg::Reply(Reply {
            bucket: Bucket(0),
            epoch: Epoch(1),
            position: Position(u64::from(seq) + 1),
            token: Token { client: 7, seq },
            unit: InventoryUnit::new("T", "C1"),
            outcome,
        })
    };
    let not_decided = |seq| Msg::NotDecided {
        bucket: Bucket(0),
        epoch: Epoch(1),
        token: Token { client: 7, seq },
    };
    deliver(&actor, &mut state, 4, LEADER, not_decided(5));
    assert!(
        !done(&state),
        "an answer about another token finishes nothing"
    );
    deliver(&actor, &mut state, 4, LEADER, reply(0, Outcome::Held));
    assert!(
        !done(&state),
        "the booking still waits for its confirmation"
    );
    deliver(&actor, &mut state, 4, LEADER, reply(0, Outcome::Held));
    assert!(
        !done(&state),
        "a duplicate of the hold's reply finishes nothing"
    );
    deliver(&actor, &mut state, 4, LEADER, reply(1, Outcome::Confirmed));
    assert!(done(&state));
}

/// Goal: a `Send` task sends its message as it is and goes straight on,
/// awaiting no answer: the next task starts in the same step, and a client
/// whose script is only `Send`s is done at once (the checker's outsider).
#[test]
fn a_send_task_sends_and_goes_on() {
    use stateright::actor::Actor;
    let unit = InventoryUnit::new("T", "C1");
    let forged = Msg::FetchPlacement {
        bucket: crate::types::Bucket(0),
    };
    let mut actor = client(0);
    if let BerthActor::Client(client) = &mut actor {
        client.tasks = vec![
            Task::Send {
                to: Id::from(2),
                msg: forged.clone(),
            },
            Task::Book(unit),
        ];
    }
    let mut out = stateright::actor::Out::new();
    let state = actor.on_start(Id::from(4), &None, &mut out);
    let commands: Commands = out.into_iter().collect();
    assert!(commands.iter().any(
        |command| matches!(command, Command::Send(to, msg) if *to == Id::from(2) && *msg == forged)
    ));
    assert!(commands.iter().any(
        |command| matches!(command, Command::Send(to, Msg::Request { .. }) if *to == Id::from(LEADER))
    ));
    let NodeState::Client(client_state) = &state else {
        unreachable!("a client runs a client state")
    };
    assert_eq!(client_state.task_index, 1);

    if let BerthActor::Client(client) = &mut actor {
        client.tasks.truncate(1);
        let state = client.on_start(
            Id::from(4),
            &mut stateright::actor::Out::<BerthActor>::new(),
        );
        assert!(state.done(client));
    }
}
