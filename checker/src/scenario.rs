//! Scenarios: which actors, which network, which faults. A scenario turns a
//! `ScenarioConfig` into the `ActorModel` the checker explores.

use crate::history::{self, BerthModel, BerthState, RunControl};
use crate::properties;
use berth_model::actor::{Detector, ProtocolConfig};
use berth_model::controller::FailoverPolicy;
use berth_model::placement::PlacementMap;
use berth_model::stream::SubscriberActor;
use berth_model::{
    BerthActor, Bucket, ClientActor, ControllerActor, Customer, InventoryUnit, ReplicaActor, Task,
    Variant,
};
use berth_model::{Epoch, Msg, Token};
use serde::Serialize;
use stateright::actor::{ActorModel, Id, LossyNetwork, Network};
use std::fmt;

/// The scenarios `berth-check` knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// One bucket, one replica group (leader, sync follower, async follower),
    /// a static placement map, and clients racing to book one cabin.
    Replication,
    /// Replication plus crashes (replicas and the controller) and a
    /// controller that fails the bucket over: suspicion at any moment, fence
    /// at epoch N+1, promote only the durable prefix, publish; or replace a
    /// suspected sync follower through a new epoch.
    Failover,
    /// Two replica groups (leader and sync follower each); the operator
    /// asks the controller to move the bucket (`MoveBucket`, as `berth
    /// move` does) and it moves live from the first group to the second
    /// (snapshot, delta, barrier, epoch N+1) while a client books.
    Cutover,
    /// Replication, failover and cutover together: the first group has an
    /// async follower too, the controller may fail over, the operator asks
    /// for the move, and servers crash.
    All,
}

/// How the simulated network treats messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkKind {
    /// Messages arrive in any order, each at most once.
    Unordered,
    /// Messages arrive in any order and may arrive more than once.
    UnorderedDuplicating,
    /// Messages between two actors arrive in the order they were sent.
    Ordered,
    /// Messages arrive in any order, at most once, or are lost.
    Lossy,
    /// Messages between two actors arrive in the order they were sent, or
    /// are lost (UDP on one path: what the runtime's resends are for).
    OrderedLossy,
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scenario::Replication => "replication",
            Scenario::Failover => "failover",
            Scenario::Cutover => "cutover",
            Scenario::All => "all",
        })
    }
}

impl fmt::Display for NetworkKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NetworkKind::Unordered => "unordered",
            NetworkKind::UnorderedDuplicating => "unordered-duplicating",
            NetworkKind::Ordered => "ordered",
            NetworkKind::Lossy => "lossy",
            NetworkKind::OrderedLossy => "ordered-lossy",
        })
    }
}

/// Everything that decides the model's state space.
#[derive(Clone, Debug, Serialize)]
pub struct ScenarioConfig {
    pub scenario: Scenario,
    pub variant: Variant,
    pub clients: usize,
    pub network: NetworkKind,
    /// How many actors may be crashed at once (replicas; in `failover` the
    /// controller too). A crashed actor may recover from its saved state.
    pub crashes: usize,
    /// How many times the controller may change the bucket's placement
    /// (failover, abort or reconfiguration), each advancing the epoch.
    pub failovers: u8,
    /// How many times a client resends one request on its retry timer.
    /// The duplicating network already delivers a request twice, which is
    /// what a retry looks like to the leader, at a fraction of the cost:
    /// timer-driven retries multiply the state space (about 150x for one
    /// retry with two clients), so they are opt-in.
    pub retries: u8,
    /// Whether holds expire: the leader's expiry timer of each hold may
    /// fire at any moment, ending the hold with a log entry.
    pub expiring_holds: bool,
    /// Whether a change-stream subscriber follows the bucket (the last
    /// actor): its pull timer fires at any moment.
    pub stream: bool,
    /// `ProtocolConfig::catch_up`: followers that are behind ask, and
    /// leaders resend on any sign of it (a recovering replica's report).
    pub catch_up: bool,
    /// `ProtocolConfig::retained_entries`: logs fold committed entries
    /// beyond this many into the committed state.
    pub retained_entries: Option<usize>,
    /// `ProtocolConfig::snapshot_chunk`: snapshots travel in chunks of at
    /// most this many units plus outcomes.
    pub snapshot_chunk: Option<usize>,
    /// The protocol settings the runtime runs with (`berth`'s
    /// `ProtocolConfig`), each at its smallest value that still exercises
    /// it: leader resends (one), re-sent fences and pulls, commit
    /// announcements, appends of one entry, controller batches of one
    /// bucket, catch-up, and in the scenarios that fail over the probe
    /// detector (one miss, `PROBE_ROUNDS` rounds) instead of suspicion at
    /// any moment. With it the scenario also checks liveness.
    pub runtime_settings: bool,
    /// The second client holds the contended cabin, then confirms that
    /// hold without waiting to learn whether it was granted: a client the
    /// service cannot trust to follow the protocol. A confirm of a hold
    /// that was refused must be refused as one that never matched, not as
    /// one that expired.
    pub blind_confirm: bool,
    /// In a move, the operator sends its `MoveBucket` twice (`berth move`
    /// resends it until the map shows the move): the copy that arrives
    /// during the move or after it must start nothing.
    pub resent_move: bool,
    /// In a move, the operator then asks for the bucket back on its first
    /// group: the second move's destination holds the sealed copy it
    /// moved out, at an older epoch, which the snapshot must replace.
    pub move_back: bool,
    /// In a failover, the operator asks for the bucket's failover (the
    /// `Failover` request `berth failover` sends) while its leader serves,
    /// and the probe detector makes no round: the failover the operator
    /// plans, not one a suspicion starts.
    pub planned_failover: bool,
    /// An outsider (the last actor) sends, in its own name, what only the
    /// controller or the bucket's leader may send (`outsider.rs`): a
    /// fence, a placement, a move order, an append, an acknowledgement.
    /// Checks `outsiders are ignored`.
    pub outsider: bool,
    /// A support client (the last) asks what became of the first client's
    /// hold, once, at any moment: before the hold arrives, while it is
    /// pending, after it committed, across a failover.
    pub query: bool,
    /// `ProtocolConfig::leader_resends` (implied by `runtime_settings`).
    pub leader_resends: u8,
    /// `ProtocolConfig::resend_unanswered` (implied by `runtime_settings`).
    pub resend_unanswered: bool,
    /// `ProtocolConfig::announce_commits` (implied by `runtime_settings`).
    pub announce_commits: bool,
    /// `ProtocolConfig::max_append_entries` (1 with `runtime_settings`).
    pub max_append_entries: Option<usize>,
    /// `ProtocolConfig::max_batch` (1 with `runtime_settings`).
    pub max_batch: Option<usize>,
    /// The probe detector instead of suspicion at any moment, in the
    /// scenarios that fail over (implied by `runtime_settings`).
    pub probes: bool,
    /// Sync followers in the first group (replication and failover): with
    /// two, a commit waits for both, a failover fences both and promotes
    /// either, and either may be the one replaced.
    pub sync_followers: usize,
}

/// How many probe rounds the controller makes with `runtime_settings`.
pub const PROBE_ROUNDS: u8 = 2;

/// The operator's customer name (it books nothing; it names the actor in
/// traces).
pub const OPERATOR: &str = "operator";

/// With resends, a message may be sent again before the first copy
/// arrives. The checker keeps at most this many copies of one message in
/// flight at once (a state with more is outside the boundary): a third
/// identical copy adds nothing a second does not, and without a bound the
/// copies a crash-and-recover loop leaves behind make the state space
/// infinite.
pub const MAX_COPIES_IN_FLIGHT: usize = 1;

impl Default for ScenarioConfig {
    fn default() -> Self {
        ScenarioConfig::new(Scenario::Replication)
    }
}

impl Scenario {
    /// The number of clients the scenario runs unless told otherwise.
    pub fn default_clients(self) -> usize {
        match self {
            Scenario::Replication => 2,
            Scenario::Failover | Scenario::Cutover | Scenario::All => 1,
        }
    }

    /// The number of simultaneous crashes the scenario explores unless told
    /// otherwise.
    pub fn default_crashes(self) -> usize {
        match self {
            Scenario::Replication | Scenario::Cutover => 0,
            Scenario::Failover | Scenario::All => 1,
        }
    }
}

/// The trip and cabin every client of the replication scenario wants.
pub fn contended_unit() -> InventoryUnit {
    InventoryUnit::new("BCN-JFK-2026-07-14", "C14")
}

/// The actors of each scenario: the controller is actor 0, then the
/// replicas, then the clients.
pub mod layout {
    use super::Scenario;
    use berth_model::placement::GroupLayout;
    use berth_model::GroupId;
    use stateright::actor::Id;

    pub const CONTROLLER: usize = 0;

    /// Who runs where in one scenario.
    pub struct Layout {
        /// The region of replica `i + 1`.
        pub regions: Vec<&'static str>,
        /// The replica groups; the bucket starts on the first.
        pub groups: Vec<GroupLayout>,
        pub first_client: usize,
    }

    impl Layout {
        /// `sync_followers` (1 or 2) counts only in replication and
        /// failover; the other scenarios have one per group.
        pub fn of(scenario: Scenario, sync_followers: usize) -> Layout {
            let group = |id, leader, sync: &[usize], remote: &[usize]| GroupLayout {
                group: GroupId(id),
                leader: Id::from(leader),
                sync_followers: sync.iter().copied().map(Id::from).collect(),
                async_followers: remote.iter().copied().map(Id::from).collect(),
            };
            match scenario {
                // Leader, two sync followers (same region), async follower.
                Scenario::Replication | Scenario::Failover if sync_followers == 2 => Layout {
                    regions: vec!["madrid-a", "madrid-b", "madrid-c", "newyork-a"],
                    groups: vec![group(1, 1, &[2, 3], &[4])],
                    first_client: 5,
                },
                // Leader, sync follower (same region), async follower (remote).
                Scenario::Replication | Scenario::Failover => Layout {
                    regions: vec!["madrid-a", "madrid-b", "newyork-a"],
                    groups: vec![group(1, 1, &[2], &[3])],
                    first_client: 4,
                },
                // Two groups of leader and sync follower; the async
                // followers are left out to keep the state space small.
                Scenario::Cutover => Layout {
                    regions: vec!["madrid-a", "madrid-b", "paris-a", "paris-b"],
                    groups: vec![group(1, 1, &[2], &[]), group(2, 3, &[4], &[])],
                    first_client: 5,
                },
                Scenario::All => Layout {
                    regions: vec!["madrid-a", "madrid-b", "newyork-a", "paris-a", "paris-b"],
                    groups: vec![group(1, 1, &[2], &[3]), group(2, 4, &[5], &[])],
                    first_client: 6,
                },
            }
        }

        /// The replica in the region of client `offset` (counted from the
        /// first client), which takes its writes under multi-leader: the
        /// clients alternate between the first group's leader's region and
        /// its remote follower's, if it has one.
        pub fn regional_replica(&self, offset: usize) -> Option<Id> {
            let group = &self.groups[0];
            match group.async_followers.first() {
                Some(remote) if offset % 2 == 1 => Some(*remote),
                _ => Some(group.leader),
            }
        }
    }

    pub fn id(index: usize) -> Id {
        Id::from(index)
    }
}

impl ScenarioConfig {
    /// The smallest scenario in which `variant` breaks the property
    /// docs/protocol.md's gallery says it must break (with the correct design: the default).
    pub fn exposing(variant: Variant) -> ScenarioConfig {
        let (scenario, network) = match variant {
            Variant::Correct => (Scenario::Replication, NetworkKind::Unordered),
            Variant::AsyncAck | Variant::PromoteLagging => {
                (Scenario::Failover, NetworkKind::Unordered)
            }
            Variant::EarlySwitch | Variant::UncheckedEpoch => {
                (Scenario::Cutover, NetworkKind::Unordered)
            }
            // A duplicated request is what a retry looks like to the leader.
            Variant::NoIdempotency => (Scenario::Replication, NetworkKind::UnorderedDuplicating),
            // One client in each region.
            Variant::MultiLeader => (Scenario::Replication, NetworkKind::Unordered),
            // The first client reads back its booking at the remote follower.
            Variant::IgnoreReadToken => (Scenario::Replication, NetworkKind::Unordered),
            // An uncommitted entry the stream served must be truncated by a
            // failover.
            Variant::StreamUncommitted => (Scenario::Failover, NetworkKind::Unordered),
            // A follower that lost its appends on an idle bucket: the
            // runtime's settings, where liveness is checked.
            Variant::ResendsRunOut => (Scenario::Replication, NetworkKind::OrderedLossy),
            // Unfenced promotion goes wrong once the promoted follower is
            // one that joined the quorum and has not caught up: a second
            // epoch change.
            Variant::NoFencing => (Scenario::Failover, NetworkKind::Unordered),
        };
        let stream = variant == Variant::StreamUncommitted;
        let runtime_settings = variant == Variant::ResendsRunOut;
        ScenarioConfig {
            variant,
            network,
            stream,
            // A false suspicion already truncates what the stream served;
            // with crashes too, the subscriber's pulls multiply the space
            // past what one machine explores (over 4 M states unfinished).
            crashes: if stream {
                0
            } else {
                scenario.default_crashes()
            },
            failovers: if variant == Variant::NoFencing { 2 } else { 1 },
            runtime_settings,
            clients: if runtime_settings {
                1
            } else {
                scenario.default_clients()
            },
            ..ScenarioConfig::new(scenario)
        }
    }

    /// The `berth-check check` flags that select this configuration's
    /// scenario and faults (those that differ from the defaults).
    pub fn flags(&self) -> String {
        let defaults = ScenarioConfig::new(self.scenario);
        let mut flags = vec![format!("--scenario {}", self.scenario)];
        if self.network != defaults.network {
            flags.push(format!("--network {}", self.network));
        }
        if self.clients != defaults.clients {
            flags.push(format!("--clients {}", self.clients));
        }
        if self.crashes != defaults.crashes {
            flags.push(format!("--crashes {}", self.crashes));
        }
        if self.retries != defaults.retries {
            flags.push(format!("--retries {}", self.retries));
        }
        if self.failovers != defaults.failovers {
            flags.push(format!("--failovers {}", self.failovers));
        }
        if self.expiring_holds {
            flags.push("--expiring-holds".to_owned());
        }
        if self.stream {
            flags.push("--stream".to_owned());
        }
        if self.catch_up {
            flags.push("--catch-up".to_owned());
        }
        if let Some(entries) = self.retained_entries {
            flags.push(format!("--retained-entries {entries}"));
        }
        if let Some(items) = self.snapshot_chunk {
            flags.push(format!("--snapshot-chunk {items}"));
        }
        if self.runtime_settings {
            flags.push("--runtime-settings".to_owned());
        }
        if self.blind_confirm {
            flags.push("--blind-confirm".to_owned());
        }
        if self.resent_move {
            flags.push("--resent-move".to_owned());
        }
        if self.move_back {
            flags.push("--move-back".to_owned());
        }
        if self.planned_failover {
            flags.push("--planned-failover".to_owned());
        }
        if self.outsider {
            flags.push("--outsider".to_owned());
        }
        if self.query {
            flags.push("--query".to_owned());
        }
        if self.leader_resends > 0 {
            flags.push(format!("--leader-resends {}", self.leader_resends));
        }
        if self.resend_unanswered {
            flags.push("--resend-unanswered".to_owned());
        }
        if self.announce_commits {
            flags.push("--announce-commits".to_owned());
        }
        if let Some(entries) = self.max_append_entries {
            flags.push(format!("--max-append-entries {entries}"));
        }
        if let Some(buckets) = self.max_batch {
            flags.push(format!("--max-batch {buckets}"));
        }
        if self.probes {
            flags.push("--probes".to_owned());
        }
        if self.sync_followers != defaults.sync_followers {
            flags.push(format!("--sync-followers {}", self.sync_followers));
        }
        flags.join(" ")
    }

    /// `scenario` with its defaults: the correct design, an unordered
    /// network, no client retries.
    pub fn new(scenario: Scenario) -> Self {
        ScenarioConfig {
            scenario,
            variant: Variant::Correct,
            clients: scenario.default_clients(),
            network: NetworkKind::Unordered,
            crashes: scenario.default_crashes(),
            failovers: 1,
            retries: 0,
            expiring_holds: false,
            stream: false,
            catch_up: false,
            retained_entries: None,
            snapshot_chunk: None,
            runtime_settings: false,
            blind_confirm: false,
            resent_move: false,
            move_back: false,
            planned_failover: false,
            outsider: false,
            query: false,
            leader_resends: 0,
            resend_unanswered: false,
            announce_commits: false,
            max_append_entries: None,
            max_batch: None,
            probes: false,
            sync_followers: 1,
        }
    }

    /// Whether the scenario's first client reads its cabin back after
    /// booking it (a session read at the remote follower): in the scenarios
    /// whose group has a remote async follower to read from, replication
    /// and failover — except on the duplicating network, which is there for
    /// retried writes: duplicated reads and read replies multiply its state
    /// space 17-fold (146,583 → 2.4 M states, 6 minutes) with no new way to
    /// serve a stale read (a duplicate of a reply is as fresh as the reply);
    /// and with a subscriber, whose pulls multiply the space as much; and
    /// where actors resend on their own (the runtime's settings), which
    /// multiply it as much again: those scenarios check writes and
    /// liveness, the standard ones reads.
    pub fn reads(&self) -> bool {
        matches!(self.scenario, Scenario::Replication | Scenario::Failover)
            && self.clients > 0
            && self.network != NetworkKind::UnorderedDuplicating
            && !self.stream
            && !self.resends_messages()
    }

    /// What client `offset` (counted from the first client), whose tokens
    /// carry `client`, does.
    pub fn tasks(&self, offset: usize, client: u64) -> Vec<Task> {
        if self.blind_confirm && offset == 1 {
            // Its hold's token is its first.
            let hold = Token { client, seq: 0 };
            return vec![
                Task::Hold(contended_unit()),
                Task::Confirm {
                    unit: contended_unit(),
                    hold,
                },
            ];
        }
        let mut tasks = vec![Task::Book(contended_unit())];
        if offset == 0 && self.reads() {
            tasks.push(Task::Read(contended_unit()));
        }
        tasks
    }

    /// Builds the model to check.
    pub fn build(&self) -> BerthModel {
        self.build_with(RunControl::default())
    }

    /// Builds the model to check, stoppable through `control`.
    pub fn build_with(&self, control: RunControl) -> BerthModel {
        let fails_over = matches!(self.scenario, Scenario::Failover | Scenario::All);
        let runtime = self.runtime_settings;
        let protocol = ProtocolConfig {
            variant: self.variant,
            client_retries: self.retries,
            leader_resends: if runtime {
                self.leader_resends.max(1)
            } else {
                self.leader_resends
            },
            resend_unanswered: runtime || self.resend_unanswered,
            announce_commits: runtime || self.announce_commits,
            // Two pulls: one may see an entry before a failover or a move,
            // the other what follows it.
            max_pulls: Some(2),
            detector: if (runtime || self.probes || self.planned_failover) && fails_over {
                Detector::Probes { misses: 1 }
            } else {
                Detector::Anytime
            },
            max_probe_rounds: Some(if self.planned_failover {
                0
            } else {
                PROBE_ROUNDS
            }),
            max_append_entries: self.max_append_entries.or(runtime.then_some(1)),
            max_batch: self.max_batch.or(runtime.then_some(1)),
            // The checker ignores durations: the timer may fire at any moment.
            hold_ttl: self
                .expiring_holds
                .then(|| std::time::Duration::ZERO..std::time::Duration::from_secs(1)),
            timeouts: Default::default(),
            // A move back right after a move needs it (docs/liveness.md).
            catch_up: self.catch_up || runtime || self.move_back,
            retained_entries: self.retained_entries,
            snapshot_chunk: self.snapshot_chunk,
        };
        let layout = layout::Layout::of(self.scenario, self.sync_followers);
        let map = PlacementMap::uniform(1, layout.groups[0].placement_at(Epoch::FIRST));
        let moves = matches!(self.scenario, Scenario::Cutover | Scenario::All);
        let planned_failover = self.planned_failover && fails_over;

        let model = ActorModel::new(control, Default::default())
            .actor(BerthActor::Controller(ControllerActor {
                initial_map: map.clone(),
                config: protocol.clone(),
                failover: fails_over.then(|| FailoverPolicy {
                    epoch_limit: Some(Epoch(Epoch::FIRST.0 + u64::from(self.failovers))),
                }),
                groups: layout.groups.clone(),
            }))
            .actors(layout.regions.iter().map(|region| {
                BerthActor::Replica(ReplicaActor {
                    initial_map: map.clone(),
                    region: (*region).to_owned(),
                    controller: layout::id(layout::CONTROLLER),
                    config: protocol.clone(),
                })
            }))
            .actors((0..self.clients).map(|offset| {
                BerthActor::Client(ClientActor {
                    client: (layout.first_client + offset) as u64,
                    controller: layout::id(layout::CONTROLLER),
                    customer: Customer::new(format!("customer {}", layout.first_client + offset)),
                    tasks: self.tasks(offset, (layout.first_client + offset) as u64),
                    observed: Default::default(),
                    reader: None,
                    initial_map: map.clone(),
                    regional_replica: layout.regional_replica(offset),
                    config: protocol.clone(),
                })
            }))
            .actors(self.query.then(|| {
                let support = layout.first_client + self.clients;
                BerthActor::Client(ClientActor {
                    client: support as u64,
                    controller: layout::id(layout::CONTROLLER),
                    customer: Customer::new("support"),
                    tasks: vec![Task::Query {
                        bucket: Bucket(0),
                        token: Token {
                            client: layout.first_client as u64,
                            seq: 0,
                        },
                    }],
                    observed: Default::default(),
                    reader: None,
                    initial_map: map.clone(),
                    regional_replica: None,
                    config: protocol.clone(),
                })
            }))
            .actors(self.outsider.then(|| {
                let outsider = layout.first_client + self.clients + usize::from(self.query);
                BerthActor::Client(ClientActor {
                    client: outsider as u64,
                    controller: layout::id(layout::CONTROLLER),
                    customer: Customer::new(crate::outsider::OUTSIDER),
                    tasks: crate::outsider::tasks(
                        &layout.groups,
                        outsider as u64,
                        fails_over.then(|| layout::id(layout::CONTROLLER)),
                    ),
                    observed: Default::default(),
                    reader: None,
                    initial_map: map.clone(),
                    regional_replica: None,
                    config: protocol.clone(),
                })
            }))
            .actors(self.stream.then(|| {
                BerthActor::Subscriber(SubscriberActor {
                    controller: layout::id(layout::CONTROLLER),
                    initial_map: map.clone(),
                    buckets: vec![Bucket(0)],
                    config: protocol.clone(),
                })
            }))
            // The operator: `berth move` of the bucket to the second group,
            // the `MoveBucket` request the runtime's command sends (and
            // with `resent_move` once more, as the command resends it; with
            // `move_back` then back to the first group); in
            // a planned failover, `berth failover` of the bucket.
            .actors((moves || planned_failover).then(|| {
                let operator = layout.first_client
                    + self.clients
                    + usize::from(self.query)
                    + usize::from(self.outsider)
                    + usize::from(self.stream);
                BerthActor::Client(ClientActor {
                    client: operator as u64,
                    controller: layout::id(layout::CONTROLLER),
                    customer: Customer::new(OPERATOR),
                    tasks: if moves {
                        let move_to = |group: usize| Task::Send {
                            to: layout::id(layout::CONTROLLER),
                            msg: Msg::MoveBucket {
                                bucket: Bucket(0),
                                group: layout.groups[group].group,
                            },
                        };
                        let mut tasks = vec![move_to(1); 1 + usize::from(self.resent_move)];
                        if self.move_back {
                            tasks.push(move_to(0));
                        }
                        tasks
                    } else {
                        vec![Task::Send {
                            to: layout::id(layout::CONTROLLER),
                            msg: Msg::Failover { bucket: Bucket(0) },
                        }]
                    },
                    observed: Default::default(),
                    reader: None,
                    initial_map: map.clone(),
                    regional_replica: None,
                    config: protocol.clone(),
                })
            }))
            .init_network(match self.network {
                NetworkKind::Unordered | NetworkKind::Lossy => {
                    Network::new_unordered_nonduplicating([])
                }
                NetworkKind::UnorderedDuplicating => Network::new_unordered_duplicating([]),
                NetworkKind::Ordered | NetworkKind::OrderedLossy => Network::new_ordered([]),
            })
            .lossy_network(
                if matches!(self.network, NetworkKind::Lossy | NetworkKind::OrderedLossy) {
                    LossyNetwork::Yes
                } else {
                    LossyNetwork::No
                },
            )
            .max_crashes(self.crashes)
            .record_msg_in(history::record_msg_in)
            .record_msg_out(history::record_msg_out)
            .within_boundary(match (self.scenario, self.resends_messages()) {
                (Scenario::Replication, false) => replica_crashes_only,
                (Scenario::Replication, true) => |control: &RunControl, state: &BerthState| {
                    replica_crashes_only(control, state) && copies_within_bound(state)
                },
                (_, false) => servers_crash_only,
                (_, true) => |control: &RunControl, state: &BerthState| {
                    servers_crash_only(control, state) && copies_within_bound(state)
                },
            });
        let mut model = BerthModel::new(model);
        let properties = if model.cfg.witness.is_some() {
            vec![properties::violated_while_leader_down_property()]
        } else {
            self.properties()
        };
        for property in properties {
            model = model.with_property(property.expectation, property.name, property.condition);
        }
        model
    }
}

impl ScenarioConfig {
    /// Whether actors resend on their own (catch-up, the runtime's
    /// settings), so that copies of one message pile up without a bound.
    pub fn resends_messages(&self) -> bool {
        self.catch_up || self.runtime_settings || self.leader_resends > 0 || self.resend_unanswered
    }
}

/// At most `MAX_COPIES_IN_FLIGHT` copies of any one message in flight.
fn copies_within_bound(state: &BerthState) -> bool {
    match &state.network {
        Network::UnorderedNonDuplicating(envelopes) => envelopes
            .values()
            .all(|copies| *copies <= MAX_COPIES_IN_FLIGHT),
        Network::Ordered(channels) => channels.values().all(|queue| {
            queue.iter().enumerate().all(|(index, msg)| {
                queue
                    .iter()
                    .skip(index + 1)
                    .filter(|later| *later == msg)
                    .count()
                    < MAX_COPIES_IN_FLIGHT
            })
        }),
        Network::UnorderedDuplicating(..) => true,
    }
}

/// In `replication` only replicas crash: a crash is about what a replica
/// keeps on disk. A stopped run has no boundary left.
fn replica_crashes_only(control: &RunControl, state: &BerthState) -> bool {
    !control.is_stopped()
        && state
            .crashed
            .iter()
            .zip(&state.actor_states)
            .all(|(crashed, node)| !crashed || node.as_replica().is_some())
}

/// In `failover` replicas and the controller crash; clients do not (a
/// client's crash only forgets a pending action, which nobody can observe).
fn servers_crash_only(control: &RunControl, state: &BerthState) -> bool {
    !control.is_stopped()
        && state
            .crashed
            .iter()
            .zip(&state.actor_states)
            .all(|(crashed, node)| {
                !crashed || node.as_replica().is_some() || node.as_controller().is_some()
            })
}

/// A human name for actor `id` in `model`: its role and index, and a
/// replica's region.
pub fn actor_name(model: &BerthModel, id: Id) -> String {
    let index = usize::from(id);
    match model.actors.get(index) {
        Some(BerthActor::Controller(_)) => format!("controller {index}"),
        Some(BerthActor::Replica(replica)) => format!("replica {index} ({})", replica.region),
        Some(BerthActor::Client(client)) if client.customer == Customer::new(OPERATOR) => {
            format!("operator {index}")
        }
        Some(BerthActor::Client(_)) => format!("client {index}"),
        Some(BerthActor::Subscriber(_)) => format!("subscriber {index}"),
        None => format!("actor {index}"),
    }
}
