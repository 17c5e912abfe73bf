//! What the runtime does besides running the protocol: status reports,
//! the projector's answers, and the measurements behind them (write rates,
//! followers' lag, the projection's clocks).
//!
//! None of it is protocol. The one way back into it is the lag measured at
//! a leader: the followers over their budget go into the replica's state,
//! which reports them to the controller, and the controller (model code)
//! decides what that refuses. Kept out of [`crate::runtime`] so that the
//! loop reads as the loop, and so that what is measured is seen in one
//! place.

use crate::lag;
use crate::projector::Projections;
use crate::rates;
use crate::runtime::Runtime;
use crate::wire::Report;
use berth_model::{Bucket, Msg, NodeState, Position, PositionToken};
use stateright::actor::Id;
use std::time::{Duration, Instant};

/// The longest a trips query may wait for its dependencies.
const MAX_TRIPS_WAIT_MS: u64 = 60_000;

/// What a protocol step is watched for, noted before the actor runs it:
/// the commit position of the bucket it may commit client commands in
/// (for the write rates), and the buckets a change-stream batch carries
/// (for the projection's clocks).
pub(crate) struct Watch {
    committed: Option<(Bucket, Position)>,
    streamed: Vec<Bucket>,
}

impl Runtime {
    /// Makes this runtime (running a `SubscriberActor`) the projector: it
    /// answers search and trips queries from the subscriber's state.
    pub fn serve_projections(&mut self, projections: Projections) {
        self.projections = Some(projections);
    }

    /// What to watch while the actor takes `msg`.
    pub(crate) fn watch(&self, msg: &Msg) -> Watch {
        Watch {
            committed: rates::watched_bucket(msg)
                .and_then(|bucket| Some((bucket, rates::commit_of(&self.state, bucket)?))),
            streamed: match msg {
                Msg::Changes(batch) => batch.iter().map(|c| c.bucket).collect(),
                _ => Vec::new(),
            },
        }
    }

    /// After the step: counts the client commands it committed (only if
    /// the state `changed`), and notes the buckets the projection heard of.
    pub(crate) fn observe(&mut self, watch: Watch, changed: bool) {
        if changed {
            if let Some((bucket, before)) = watch.committed {
                let count = rates::committed_commands(&self.state, self.id, bucket, before);
                if count > 0 {
                    self.rates.record(bucket, count, Instant::now());
                }
            }
        }
        if let Some(projections) = &mut self.projections {
            let now = Instant::now();
            for bucket in watch.streamed {
                projections.heard(&self.state, bucket, now);
            }
        }
    }

    /// The measurements and clocks of a turn's end: lag at a leader (each
    /// follower's worst bucket over budget per group goes to the replica's
    /// state, which reports it to the controller; a change in who lags is
    /// logged in one line), and trips queries whose wait is over.
    pub(crate) fn measure(&mut self, now: Instant) {
        if let NodeState::Replica(_) = &self.state {
            if self.lag.due(now) {
                let budget = Duration::from_millis(self.config.lag_budget_ms);
                let over = self.lag.measure(self.id, &self.state, now, budget);
                if let Some(line) = self.lag.note(&over) {
                    if over.is_empty() {
                        tracing::info!("{line}");
                    } else {
                        tracing::warn!("{line}");
                    }
                }
                let lagging = lag::worst_per_group(&over);
                if let NodeState::Replica(replica) = &mut self.state {
                    if replica.lagging != lagging {
                        replica.lagging = lagging;
                    }
                }
            }
        }
        if let Some(projections) = &mut self.projections {
            let ready = projections.ready(&self.state, now);
            self.replies.extend(ready);
        }
    }

    /// Answers a status request from `src` with the batch: this member's
    /// state, its recent write rates and drops, and (at a replica) its
    /// followers' lag.
    pub(crate) fn report_status(&mut self, src: Id) {
        let writes = self.rates.recent(Instant::now());
        let followers = match &self.state {
            NodeState::Replica(_) => self
                .lag
                .summary(Duration::from_millis(self.config.lag_budget_ms)),
            _ => Vec::new(),
        };
        let report = Report::of(
            self.id,
            &self.state,
            self.misses,
            &writes,
            followers,
            &self.drops.drops,
        );
        self.reports.push((src, report));
    }

    /// Answers a search of `trip` from `src` with the batch (the
    /// projector only).
    pub(crate) fn answer_search(&mut self, src: Id, trip: &str) {
        if let Some(projections) = &self.projections {
            let answer = projections.search(&self.state, trip, Instant::now());
            self.replies.push((src, answer));
        }
    }

    /// Takes a trips query from `src`, answered once the projection
    /// reflects `after` or its wait (at most a minute) is over (the
    /// projector only).
    pub(crate) fn hold_trips(
        &mut self,
        src: Id,
        customer: String,
        after: Vec<PositionToken>,
        wait_ms: u64,
    ) {
        if let Some(projections) = &mut self.projections {
            projections.ask_trips(
                src,
                customer,
                after,
                Duration::from_millis(wait_ms.min(MAX_TRIPS_WAIT_MS)),
                Instant::now(),
            );
        }
    }
}
