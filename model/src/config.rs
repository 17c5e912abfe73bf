//! The settings every actor of one system shares: the design followed,
//! retry bounds, the failure detector, and the timer durations.

use crate::variant::Variant;
use std::ops::Range;
use std::time::Duration;

/// Timer durations, used by the runtime; the checker ignores them.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Timeouts {
    pub client_retry: Range<Duration>,
    pub replicate: Range<Duration>,
    /// How long the controller waits before suspecting a bucket's leader or
    /// sync follower.
    pub suspect: Range<Duration>,
    /// How often the controller probes the replicas (`Detector::Probes`).
    pub probe: Range<Duration>,
    /// How often a subscriber pulls the change stream.
    pub pull: Range<Duration>,
    /// How long a leader waits after a commit before telling caught-up
    /// followers (`Timer::AnnounceCommit`).
    pub announce: Range<Duration>,
    /// How often a leader whose resends ran out still tells a lagging
    /// follower where its log ends (`catch_up`), so that a follower back
    /// from a pause or a lost datagram notices its gap and asks.
    pub heartbeat: Range<Duration>,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            client_retry: Duration::from_millis(300)..Duration::from_millis(600),
            replicate: Duration::from_millis(100)..Duration::from_millis(200),
            suspect: Duration::from_millis(1000)..Duration::from_millis(1500),
            probe: Duration::from_millis(250)..Duration::from_millis(300),
            pull: Duration::from_millis(100)..Duration::from_millis(150),
            announce: Duration::from_millis(20)..Duration::from_millis(30),
            heartbeat: Duration::from_millis(500)..Duration::from_millis(700),
        }
    }
}

/// How the controller decides that a replica has failed. Safety never
/// depends on it: a wrong suspicion costs an epoch, not a booking.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Detector {
    /// Per-bucket suspicion timers that may fire at any moment: the
    /// checker's stand-in for every detector, the wrong ones included.
    #[default]
    Anytime,
    /// The controller probes every replica on `Timer::Probe`; a replica
    /// that answered none of the last `misses` probes is down.
    Probes { misses: u8 },
}

/// Settings every actor of one system shares.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ProtocolConfig {
    pub variant: Variant,
    /// How many times a client resends one request. A resent request for an
    /// uncommitted entry also makes the leader resend its appends, so client
    /// retries alone recover from lost messages.
    pub client_retries: u8,
    /// How many times in a row a leader resends appends on its timer without
    /// progress (0: no timer; the model relies on client retries). Every
    /// retry loop has a bound; in the model it keeps the state space finite.
    pub leader_resends: u8,
    /// Whether the controller resends an unanswered fence each time its
    /// suspicion timer fires again, and a subscriber an unanswered pull on
    /// its pull timer. The runtime does, because UDP loses datagrams; the
    /// checker does not, because every resend is a new message in its
    /// network (and the fence is saved, so a restarted controller resumes
    /// it rather than sending another).
    pub resend_unanswered: bool,
    pub detector: Detector,
    /// Whether a leader tells its caught-up followers each new commit
    /// position at once (an empty `Append`), so that they can serve
    /// session reads of it. The runtime does; the checker does not (a
    /// follower learns the commit with the next append, which the checker
    /// explores already) to keep the state space small.
    pub announce_commits: bool,
    /// How many probe rounds the controller makes (`Detector::Probes`);
    /// `None`: no limit (the runtime). The checker bounds them, as it
    /// bounds every retry loop: each round is new messages in its network.
    pub max_probe_rounds: Option<u8>,
    /// How many pulls a subscriber makes; `None`: no limit (the runtime).
    /// The checker bounds them, as it bounds every retry loop, to keep its
    /// state space finite and small.
    pub max_pulls: Option<u8>,
    /// The most entries one `Append` (or `Snapshot`) carries; a follower
    /// further behind catches up over several. `None`: no limit (the
    /// checker). The runtime sets one so that a message fits a datagram.
    pub max_append_entries: Option<usize>,
    /// The most buckets one controller message (`Placements`, `Fence`,
    /// `Fenced`) names; a decision about more buckets sends several.
    /// `None`: no limit (the checker, whose scenarios have one bucket).
    /// The runtime sets one so that a message fits a datagram.
    pub max_batch: Option<usize>,
    /// How long a hold lasts before its leader expires it; `None`: holds
    /// never expire. A new leader restarts the clock of every hold it
    /// inherits.
    pub hold_ttl: Option<Range<Duration>>,
    pub timeouts: Timeouts,
    // --- Catch-up, compaction and chunked snapshots (docs/protocol.md,
    // "Catching up"). Each is off in the checker unless a flag turns it on.
    /// Whether a follower that is behind asks to be caught up, without
    /// waiting for new writes: a recovering replica tells each bucket's
    /// leader how far it has committed, a follower answers an append it
    /// cannot place the same way, and a leader re-arms its resends on any
    /// such sign (and, once its resends ran out, keeps telling lagging
    /// followers where its log ends on `Timeouts::heartbeat`).
    pub catch_up: bool,
    /// How many committed entries a replica keeps in its log before it
    /// folds the older ones into its committed state (the log then starts
    /// after them); `None`: the log keeps everything (the checker).
    pub retained_entries: Option<usize>,
    /// The most units plus outcomes one `Snapshot` message carries; a
    /// larger bucket state travels in several chunks that the receiver
    /// stages and installs once complete. `None`: one message.
    pub snapshot_chunk: Option<usize>,
}
