//! What the actors put in their log lines beyond the event itself: how
//! many buckets a step changed, and which (as ranges). Text for people,
//! not protocol decisions: a step that changes many buckets logs one line
//! with how many, not one per bucket, and nothing here decides what any
//! actor does. (Mutation testing leaves this file out, as it leaves out
//! `Display` impls: no scenario can be asked to notice a wrong count in a
//! log line.)

use crate::types::{Bucket, Epoch};
use stateright::actor::Id;
use std::collections::BTreeMap;

/// A count for one log line at the end of a step.
#[derive(Debug, Default)]
pub(crate) struct Tally(usize);

impl Tally {
    /// Counts one if `yes`.
    pub(crate) fn count_if(&mut self, yes: bool) {
        self.0 += usize::from(yes);
    }

    /// Logs the count with `line`, if anything was counted.
    pub(crate) fn log_if_any(self, line: impl FnOnce(usize)) {
        if self.0 > 0 {
            line(self.0);
        }
    }
}

/// One line per replica that a probe round found down and whose buckets
/// are now being failed over (`fencing`: those whose failover started).
pub(crate) fn failing_over(failing: &BTreeMap<Id, Vec<Bucket>>, fencing: impl Fn(&Bucket) -> bool) {
    for (leader, buckets) in failing {
        let fenced: Vec<Bucket> = buckets.iter().copied().filter(|b| fencing(b)).collect();
        if !fenced.is_empty() {
            tracing::info!(
                leader = usize::from(*leader),
                buckets = %Buckets(&fenced),
                "failing over {} bucket(s) of replica {}: fencing their commit quorums",
                fenced.len(),
                usize::from(*leader)
            );
        }
    }
}

/// A failover the controller decided for one bucket (`promote`): the
/// leader before and after (the same when it aborted).
#[derive(Debug)]
pub(crate) struct FailoverDecided {
    pub bucket: Bucket,
    pub epoch: Epoch,
    pub old_leader: Id,
    pub new_leader: Id,
}

/// One line per outcome of a fence report: the buckets failed over to
/// each new leader, and those whose failover aborted (the sync follower
/// lacked the prefix, so the old leader keeps them at the new epoch).
pub(crate) fn failed_over(decided: &[FailoverDecided]) {
    let mut outcomes: BTreeMap<(Epoch, Option<Id>), Vec<Bucket>> = BTreeMap::new();
    for decision in decided {
        let promoted = (decision.new_leader != decision.old_leader).then_some(decision.new_leader);
        tracing::debug!(
            bucket = %decision.bucket,
            epoch = %decision.epoch,
            leader = usize::from(decision.new_leader),
            promoted = promoted.is_some(),
            "failover decided"
        );
        outcomes
            .entry((decision.epoch, promoted))
            .or_default()
            .push(decision.bucket);
    }
    for ((epoch, leader), buckets) in outcomes {
        match leader {
            Some(leader) => tracing::info!(
                buckets = %Buckets(&buckets),
                %epoch,
                leader = usize::from(leader),
                "failed over {} bucket(s): promoted replica {} at {epoch}",
                buckets.len(),
                usize::from(leader)
            ),
            None => tracing::info!(
                buckets = %Buckets(&buckets),
                %epoch,
                "failover of {} bucket(s) aborted: the sync follower lacks the prefix",
                buckets.len()
            ),
        }
    }
}

/// Buckets for a log line: ranges, e.g. `b0-b1023,b1030`.
pub(crate) struct Buckets<'a>(pub &'a [Bucket]);

impl std::fmt::Display for Buckets<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut sorted: Vec<u32> = self.0.iter().map(|bucket| bucket.0).collect();
        sorted.sort_unstable();
        let mut first = true;
        let mut index = 0;
        while index < sorted.len() {
            let start = sorted[index];
            let mut end = start;
            while index + 1 < sorted.len() && sorted[index + 1] == end + 1 {
                index += 1;
                end = sorted[index];
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            if start == end {
                write!(f, "b{start}")?;
            } else {
                write!(f, "b{start}-b{end}")?;
            }
            index += 1;
        }
        Ok(())
    }
}
