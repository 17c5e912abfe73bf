//! A fuzzer for the receive path: a whole cluster in one process (the
//! controller, six replicas and the projector, each a real [`Runtime`] that
//! keeps what it sends instead of sending it), fed a mix of real sealed
//! datagrams routed between the members and hostile ones — random bytes,
//! truncations, bit flips, replays, and structure-aware mutations of real
//! payloads re-sealed with the right key so they get past the MAC into the
//! decoder and the protocol. Every input goes through `Runtime::handle`,
//! exactly as a received datagram does; a panic anywhere is caught and
//! reported with the input that caused it.
//!
//! `cargo test -p berth fuzz` runs 100,000 inputs; `berth fuzz --inputs
//! 10000000` runs longer.

use crate::auth::{self, Auth, Key, KeyKind, Keys, Sender};
use crate::config::{controller_id, ClusterConfig, Member};
use crate::guard::Drops;
use crate::runtime::Runtime;
use crate::wire::{self, Datagram};
use anyhow::{bail, Result};
use berth_model::placement::PlacementMap;
use berth_model::stream::SubscriberActor;
use berth_model::{
    BerthActor, Bucket, Command, Customer, Epoch, GroupId, InventoryUnit, Msg, Op, Position,
    PositionToken, Token,
};
use stateright::actor::Id;
use std::net::{SocketAddr, SocketAddrV4};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

/// What a run did.
#[derive(Clone, Debug, Default)]
pub struct FuzzReport {
    pub inputs: u64,
    /// Inputs every member dropped, by reason (summed over members).
    pub dropped: Drops,
    /// Real datagrams routed between members (the cluster at work).
    pub routed: u64,
    pub seconds: f64,
}

impl std::fmt::Display for FuzzReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} inputs in {:.1} s ({:.0}/s), no panic; dropped: {}; reached the protocol: {}; real datagrams routed between members: {}",
            self.inputs,
            self.seconds,
            self.inputs as f64 / self.seconds.max(1e-9),
            self.dropped,
            self.inputs.saturating_sub(self.dropped.total()),
            self.routed
        )
    }
}

/// One member under test.
struct Node {
    id: Id,
    addr: SocketAddrV4,
    runtime: Runtime,
}

/// The in-process cluster and the fuzzer's memory.
struct Harness {
    config: ClusterConfig,
    keys: Keys,
    nodes: Vec<Node>,
    /// Real datagrams seen on the way (recipient's address, bytes).
    corpus: Vec<(SocketAddrV4, Vec<u8>)>,
    /// Datagrams sent and not yet delivered.
    in_flight: Vec<(SocketAddrV4, Vec<u8>)>,
    /// The outsider the fuzzer plays (a client or operator at this address).
    outsider: SocketAddr,
    rng: fastrand::Rng,
    routed: u64,
}

/// Runs `inputs` inputs from `seed`, printing progress every `progress`
/// inputs if set. Fails with the offending input if anything panics.
pub fn run(inputs: u64, seed: u64, progress: Option<u64>) -> Result<FuzzReport> {
    let started = Instant::now();
    let mut harness = Harness::new(seed)?;
    for index in 0..inputs {
        harness.one()?;
        if let Some(every) = progress {
            if index > 0 && index % every == 0 {
                eprintln!(
                    "{index} inputs, {:.0}/s",
                    index as f64 / started.elapsed().as_secs_f64()
                );
            }
        }
    }
    let mut dropped = Drops::default();
    for node in &harness.nodes {
        let drops = node.runtime.drops();
        dropped.oversize += drops.oversize;
        dropped.undecodable += drops.undecodable;
        dropped.bad_mac += drops.bad_mac;
        dropped.replay += drops.replay;
        dropped.unexpected += drops.unexpected;
    }
    Ok(FuzzReport {
        inputs,
        dropped,
        routed: harness.routed,
        seconds: started.elapsed().as_secs_f64(),
    })
}

impl Harness {
    fn new(seed: u64) -> Result<Harness> {
        // Addresses nobody listens on: nothing is ever sent.
        let config = ClusterConfig::local(64, 2, 3, 1)?;
        let keys = KeyKind::ALL.iter().fold(Keys::default(), |keys, kind| {
            keys.with(*kind, Key::from_bytes([kind_byte(*kind) + 11; 32]))
        });
        let mut nodes = Vec::new();
        let mut members: Vec<(Id, BerthActor)> = Vec::new();
        let (id, actor, _) = crate::member::actor_of(&config, Member::Controller)?;
        members.push((id, actor));
        for replica in &config.replicas {
            let (id, actor, _) = crate::member::actor_of(&config, Member::Replica(replica.id))?;
            members.push((id, actor));
        }
        let projector = config
            .projector_id()
            .expect("a local cluster has a projector");
        members.push((
            projector,
            BerthActor::Subscriber(SubscriberActor {
                controller: controller_id(),
                initial_map: config.initial_map(),
                buckets: (0..config.buckets).map(Bucket).collect(),
                config: config.protocol(),
            }),
        ));
        for (id, actor) in members {
            let auth = Auth {
                sender: Sender::new(
                    KeyKind::Member,
                    usize::from(id) as u64,
                    keys.get(KeyKind::Member).expect("made above").clone(),
                ),
                keys: keys.clone(),
                replay: auth::ReplayGuard::starting_at(0),
            };
            let mut runtime = Runtime::captured(id, actor, config.clone(), auth)?;
            if id == projector {
                runtime.serve_projections(crate::projector::Projections::new(
                    config.buckets,
                    Duration::from_secs(2),
                    config.cabins.clone(),
                ));
            }
            let addr = config.addr_of(id).expect("a member");
            nodes.push(Node { id, addr, runtime });
        }
        let mut harness = Harness {
            config,
            keys,
            nodes,
            corpus: Vec::new(),
            in_flight: Vec::new(),
            outsider: "127.0.0.1:40000".parse().expect("an address"),
            rng: fastrand::Rng::with_seed(seed),
            routed: 0,
        };
        harness.collect();
        Ok(harness)
    }

    /// Takes what every member sent into the in-flight set and the corpus.
    fn collect(&mut self) {
        for node in &mut self.nodes {
            for (addr, bytes) in node.runtime.take_sent() {
                if self.corpus.len() < 4096 {
                    self.corpus.push((addr, bytes.clone()));
                } else {
                    let at = self.rng.usize(..self.corpus.len());
                    self.corpus[at] = (addr, bytes.clone());
                }
                if self.in_flight.len() < 4096 {
                    self.in_flight.push((addr, bytes));
                }
            }
        }
    }

    /// One input.
    fn one(&mut self) -> Result<()> {
        let choice = self.rng.u32(..100);
        let (target, bytes) = match choice {
            // The cluster at work: a real datagram delivered (or, now and
            // then, a round of timers: probes, resends, pulls).
            0..=29 => {
                if self.in_flight.is_empty() || self.rng.u32(..20) == 0 {
                    self.fire_timers()?;
                    return Ok(());
                }
                let at = self.rng.usize(..self.in_flight.len());
                let (addr, bytes) = self.in_flight.swap_remove(at);
                self.routed += 1;
                (self.node_at(addr), bytes)
            }
            30..=44 => {
                let length = self.rng.usize(..1500);
                let mut bytes: Vec<u8> = (0..length).map(|_| self.rng.u8(..)).collect();
                if bytes.len() >= 2 && self.rng.bool() {
                    bytes[0] = 0xB1;
                    bytes[1] = self.rng.u8(..3);
                }
                (self.any_node(), bytes)
            }
            45..=54 => {
                let (addr, mut bytes) = self.real();
                bytes.truncate(self.rng.usize(..=bytes.len()));
                (self.node_at(addr), bytes)
            }
            55..=64 => {
                let (addr, mut bytes) = self.real();
                for _ in 0..self.rng.usize(1..4) {
                    if !bytes.is_empty() {
                        let at = self.rng.usize(..bytes.len());
                        bytes[at] ^= 1 << self.rng.u8(..8);
                    }
                }
                (self.node_at(addr), bytes)
            }
            65..=84 => self.mutated(),
            85..=89 => {
                let (addr, bytes) = self.real();
                (self.node_at(addr), bytes)
            }
            _ => self.outsider_request(),
        };
        let node = &mut self.nodes[target];
        let from = self.outsider;
        let outcome = catch_unwind(AssertUnwindSafe(|| node.runtime.deliver(&bytes, from)));
        match outcome {
            Ok(result) => result?,
            Err(_) => bail!(
                "member {} panicked on a {}-byte input: {}",
                usize::from(node.id),
                bytes.len(),
                hex(&bytes)
            ),
        }
        self.collect();
        Ok(())
    }

    fn fire_timers(&mut self) -> Result<()> {
        for node in &mut self.nodes {
            node.runtime.fire_timers()?;
        }
        self.collect();
        Ok(())
    }

    /// A real datagram from the corpus (or an empty one to a random member).
    fn real(&mut self) -> (SocketAddrV4, Vec<u8>) {
        if self.corpus.is_empty() {
            return (self.nodes[0].addr, Vec::new());
        }
        self.corpus[self.rng.usize(..self.corpus.len())].clone()
    }

    fn node_at(&mut self, addr: SocketAddrV4) -> usize {
        self.nodes
            .iter()
            .position(|node| node.addr == addr)
            .unwrap_or_else(|| self.rng.usize(..self.nodes.len()))
    }

    fn any_node(&mut self) -> usize {
        self.rng.usize(..self.nodes.len())
    }

    /// A real datagram whose payload is mutated (bytes flipped, inserted,
    /// removed, varints enlarged), then re-sealed under the key its header
    /// names with a fresh counter: past the MAC, into the decoder and, when
    /// it still decodes, the protocol.
    fn mutated(&mut self) -> (usize, Vec<u8>) {
        let (addr, bytes) = self.real();
        let target = self.node_at(addr);
        let Ok((header, payload)) = auth::open(&self.keys, &bytes) else {
            return (target, bytes);
        };
        let mut payload = payload.to_vec();
        for _ in 0..self.rng.usize(1..4) {
            let length = payload.len();
            match self.rng.u8(..5) {
                0 if length > 0 => {
                    let at = self.rng.usize(..length);
                    payload[at] ^= 1 << self.rng.u8(..8);
                }
                1 if length > 0 => {
                    let at = self.rng.usize(..length);
                    payload[at] = [0, 0x7f, 0x80, 0xff][self.rng.usize(..4)];
                }
                2 => {
                    let at = self.rng.usize(..=length);
                    payload.insert(at, self.rng.u8(..));
                }
                3 if length > 0 => {
                    payload.remove(self.rng.usize(..length));
                }
                _ => {
                    // A huge varint (a length or count) at a random place.
                    let at = self.rng.usize(..=length);
                    payload.splice(at..at, [0xff, 0xff, 0xff, 0xff, 0x0f]);
                }
            }
        }
        let key = self.keys.get(header.kind).expect("opened with it").clone();
        let mut sender = Sender::new(header.kind, header.sender, key);
        (target, sender.seal(header.recipient, &payload))
    }

    /// What an outsider may send, sealed with the client or operator key —
    /// sometimes with nonsense in it (buckets outside the cluster, a map
    /// bomb, a pull naming one bucket thousands of times).
    fn outsider_request(&mut self) -> (usize, Vec<u8>) {
        let target = self.any_node();
        let buckets = self.config.buckets;
        let bucket = Bucket(if self.rng.u32(..10) == 0 {
            self.rng.u32(..)
        } else {
            self.rng.u32(..buckets)
        });
        let unit = InventoryUnit::new("BCN-JFK-2026-07-14", format!("C{}", self.rng.u8(..60)));
        let token = Token {
            client: self.rng.u64(..8),
            seq: self.rng.u32(..4),
        };
        let epoch = Epoch(self.rng.u64(..4));
        let msg = match self.rng.u8(..10) {
            0 => Msg::Request {
                bucket,
                epoch,
                command: Command {
                    token,
                    op: Op::Hold {
                        unit,
                        customer: Customer::new("fuzz"),
                    },
                },
            },
            1 => Msg::Request {
                bucket,
                epoch,
                command: Command {
                    token,
                    op: Op::Confirm {
                        unit,
                        hold: Token {
                            client: token.client,
                            seq: 0,
                        },
                    },
                },
            },
            2 => Msg::Query {
                bucket,
                epoch,
                token,
            },
            3 => Msg::Read {
                bucket,
                unit,
                after: Position(self.rng.u64(..4)),
            },
            4 => Msg::FetchMap,
            5 => Msg::Failover { bucket },
            6 => Msg::MoveBucket {
                bucket,
                group: GroupId(self.rng.u32(..4)),
            },
            7 => Msg::Pull {
                from: vec![(Bucket(0), Position(0)); 3000],
            },
            8 => Msg::Map(PlacementMap {
                version: 99,
                buckets: Vec::new().into(),
            }),
            _ => {
                let datagram = match self.rng.u8(..3) {
                    0 => Datagram::StatusRequest,
                    1 => Datagram::Search {
                        trip: "BCN-JFK-2026-07-14".into(),
                    },
                    _ => Datagram::Trips {
                        customer: "fuzz".into(),
                        after: vec![PositionToken {
                            bucket,
                            position: Position(self.rng.u64(..1 << 40)),
                        }],
                        wait_ms: self.rng.u64(..),
                    },
                };
                return (target, self.seal_outsider(target, &datagram));
            }
        };
        let datagram = Datagram::Protocol(vec![msg]);
        (target, self.seal_outsider(target, &datagram))
    }

    fn seal_outsider(&mut self, target: usize, datagram: &Datagram) -> Vec<u8> {
        let kind = if self.rng.bool() {
            KeyKind::Client
        } else {
            KeyKind::Operator
        };
        let payload = wire::encode(datagram).unwrap_or_default();
        let key = self.keys.get(kind).expect("made").clone();
        let mut sender = Sender::new(kind, 1 << 60, key);
        sender.seal(usize::from(self.nodes[target].id) as u64, &payload)
    }
}

fn kind_byte(kind: KeyKind) -> u8 {
    match kind {
        KeyKind::Member => 0,
        KeyKind::Operator => 1,
        KeyKind::Client => 2,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    /// Goal: 100,000 hostile and real inputs through every member's receive
    /// path: nothing panics, every kind of refusal occurs, and real traffic
    /// keeps flowing (the inputs exercise the protocol, not only the MAC).
    /// `BERTH_FUZZ_INPUTS` and `BERTH_FUZZ_SEED` change the run.
    #[test]
    fn fuzz_the_receive_path() {
        let inputs = std::env::var("BERTH_FUZZ_INPUTS")
            .ok()
            .and_then(|text| text.parse().ok())
            .unwrap_or(100_000);
        let seed = std::env::var("BERTH_FUZZ_SEED")
            .ok()
            .and_then(|text| text.parse().ok())
            .unwrap_or(7);
        let report = super::run(inputs, seed, None).unwrap();
        eprintln!("{report}");
        let dropped = &report.dropped;
        assert!(dropped.bad_mac > 0 && dropped.undecodable > 0, "{report}");
        assert!(dropped.unexpected > 0 && dropped.replay > 0, "{report}");
        assert!(report.routed > inputs / 10, "{report}");
        assert!(
            report.inputs - dropped.total() > inputs / 5,
            "most inputs should not all be refused: {report}"
        );
    }
}
