//! The largest cluster `--buckets` accepts (`MAX_BUCKETS`) must be one
//! whose messages fit a datagram: every member's start-up sends and first
//! timers, and the status reports, at their worst.

use crate::config::{ClusterConfig, Member};
use crate::lag::LagMeter;
use crate::member::actor_of;
use crate::report::{Report, RUNS};
use crate::wire::{self, Datagram, MAX_PAYLOAD};
use berth_model::placement::MAX_BUCKETS;
use berth_model::stream::SubscriberActor;
use berth_model::{BerthActor, Bucket, Epoch, Msg, NodeState, Position};
use stateright::actor::{Actor, Command, Id, Out};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Packs what `out` sends, per recipient, and asserts that nothing is
/// refused; returns the number of datagrams.
fn assert_sends_fit(out: Out<BerthActor>, what: &str) -> (usize, Vec<crate::wire::Datagram>) {
    let mut by: BTreeMap<Id, Vec<Msg>> = BTreeMap::new();
    for command in out {
        if let Command::Send(dst, msg) = command {
            by.entry(dst).or_default().push(msg);
        }
    }
    let mut count = 0;
    let mut decoded = Vec::new();
    for msgs in by.values() {
        let (datagrams, refused) = wire::pack(msgs);
        assert!(
            refused.is_empty(),
            "{what}: {:?}",
            refused.first().map(|r| &r.1)
        );
        for bytes in &datagrams {
            assert!(bytes.len() <= MAX_PAYLOAD, "{what}: {} bytes", bytes.len());
            decoded.push(wire::decode(bytes).unwrap());
        }
        count += datagrams.len();
    }
    (count, decoded)
}

/// Starts `actor` as `id` and fires each timer it set once: every send
/// must fit. Returns its state.
fn start(actor: &BerthActor, id: Id, what: &str) -> (NodeState, Vec<Datagram>) {
    let mut out = Out::new();
    let state = actor.on_start(id, &None, &mut out);
    let timers: Vec<_> = out
        .iter()
        .filter_map(|command| match command {
            Command::SetTimer(timer, _) => Some(timer.clone()),
            _ => None,
        })
        .collect();
    let (_, mut sent) = assert_sends_fit(out, what);
    let mut state = Cow::Owned(state);
    for timer in timers.iter().take(8) {
        let mut out = Out::new();
        actor.on_timeout(id, &mut state, timer, &mut out);
        sent.extend(assert_sends_fit(out, &format!("{what}, timer {timer}")).1);
    }
    (state.into_owned(), sent)
}

fn encoded_status(report: Report) -> usize {
    let bytes = wire::encode(&Datagram::Status(report)).expect("the report fits a datagram");
    bytes.len()
}

/// The worst reports of a cluster of `buckets` in one group (one leader
/// leads them all): every bucket written, every follower measured, and a
/// controller failing over every other bucket. Returns (controller,
/// replica) report sizes.
fn worst_reports(config: &ClusterConfig) -> (usize, usize) {
    let (id, actor, _) = actor_of(config, Member::Replica(1)).unwrap();
    let mut out = Out::new();
    let state = actor.on_start(id, &None, &mut out);
    let mut meter = LagMeter::default();
    meter.measure(id, &state, Instant::now(), Duration::from_millis(1));
    let writes: BTreeMap<Bucket, u32> = (0..config.buckets)
        .map(|bucket| (Bucket(bucket), u32::MAX - bucket))
        .collect();
    let followers = meter.summary(Duration::ZERO);
    let replica = Report::of(id, &state, 6, &writes, followers, &Default::default());
    let (id, actor, _) = actor_of(config, Member::Controller).unwrap();
    let mut state = actor.on_start(id, &None, &mut Out::new());
    if let NodeState::Controller(controller) = &mut state {
        controller.fencing = (0..config.buckets)
            .step_by(2)
            .map(|bucket| {
                (
                    Bucket(bucket),
                    Epoch(u64::from(u32::MAX) + u64::from(bucket)),
                )
            })
            .collect();
    }
    let controller = Report::of(
        id,
        &state,
        6,
        &BTreeMap::new(),
        Vec::new(),
        &Default::default(),
    );
    if let Report::Controller {
        fencing, left_out, ..
    } = &controller
    {
        assert_eq!(fencing.len(), RUNS.min(config.buckets.div_ceil(2) as usize));
        assert_eq!(
            *left_out as usize,
            config.buckets.div_ceil(2) as usize - fencing.len()
        );
    }
    let sizes = (encoded_status(controller), encoded_status(replica));
    println!(
        "{} buckets: controller report {} bytes, replica report {} bytes",
        config.buckets, sizes.0, sizes.1
    );
    sizes
}

/// Goal: at 16,384 buckets (one replica leading all of them, every bucket
/// written) the status reports are one datagram each, well inside it.
#[test]
fn status_reports_fit_a_datagram_at_16384_buckets() {
    let config = ClusterConfig::local(16_384, 1, 3, 7000).unwrap();
    let (controller, replica) = worst_reports(&config);
    assert!(controller <= MAX_PAYLOAD && replica <= MAX_PAYLOAD);
    assert!(replica < 40_000, "{replica} bytes");
    assert!(controller < 40_000, "{controller} bytes");
}

/// Goal: at `MAX_BUCKETS`, the most `--buckets` accepts, every message a
/// member sends at start-up (the controller's, a replica's, the
/// projector's first pull of every bucket from one leader) and every
/// status report fits a datagram.
#[test]
fn every_start_up_message_fits_at_the_largest_bucket_count() {
    let config = ClusterConfig::local(MAX_BUCKETS, 1, 3, 7000).unwrap();
    for member in [Member::Controller, Member::Replica(1), Member::Replica(3)] {
        let (id, actor, name) = actor_of(&config, member).unwrap();
        start(&actor, id, &name);
    }
    let projector = BerthActor::Subscriber(SubscriberActor {
        controller: crate::config::controller_id(),
        initial_map: config.initial_map(),
        buckets: (0..config.buckets).map(Bucket).collect(),
        config: config.protocol(),
    });
    let (_, sent) = start(
        &projector,
        Id::from(config.projector.as_ref().unwrap().addr),
        "projector",
    );
    let pulled: usize = sent
        .iter()
        .flat_map(|datagram| match datagram {
            Datagram::Protocol(msgs) => msgs.clone(),
            _ => Vec::new(),
        })
        .map(|msg| match msg {
            Msg::Pull { from } => from.len(),
            _ => 0,
        })
        .sum();
    assert!(
        pulled > 0 && pulled % MAX_BUCKETS as usize == 0,
        "each pull asks for every bucket: {pulled}"
    );
    // A pull at positions of the largest size still fits once split.
    let pull = Msg::Pull {
        from: (0..MAX_BUCKETS)
            .map(|b| (Bucket(b), Position(u64::MAX)))
            .collect(),
    };
    let (datagrams, refused) = wire::pack(&[pull]);
    assert!(refused.is_empty() && datagrams.iter().all(|d| d.len() <= MAX_PAYLOAD));
    let map = wire::encode(&Datagram::Protocol(vec![Msg::Map(config.initial_map())])).unwrap();
    assert!(map.len() < 1_000, "{} bytes", map.len());
    let (controller, replica) = worst_reports(&config);
    assert!(controller <= MAX_PAYLOAD && replica <= MAX_PAYLOAD);
}
