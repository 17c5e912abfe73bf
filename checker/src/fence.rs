//! `a fence closes the epoch`: once a sync follower has promised epoch
//! N+1 and reported its log, the leader of N commits nothing beyond what
//! that report showed. The controller promotes on the evidence of the
//! report; the promise is what makes the evidence final.
//!
//! Without the promise berth would still lose no confirmed booking: a
//! commit at N needs every sync follower of N, the controller promotes only
//! one of them, and a promotion keeps the whole log, so what the old leader
//! commits after the report is in the new leader's log anyway. The fence is
//! what the design states (the epoch fences the stale owner), and what a
//! promotion on a report alone (a regional failover, where the promoted
//! replica is not in the commit quorum) depends on: so the checker holds
//! the protocol to it directly.

use crate::history::{Acknowledgement, BerthModel, BerthState, History};
use crate::properties::PropertySpec;
use berth_model::messages::FenceReport;
use berth_model::{BerthActor, Epoch, Position};
use stateright::actor::Id;

pub const FENCE_CLOSES_EPOCH: &str = "a fence closes the epoch";

/// The property, stated wherever the controller fails over.
pub fn fence_property() -> PropertySpec {
    PropertySpec::always(
        FENCE_CLOSES_EPOCH,
        |model, state| committed_after_fence(model, state).is_none(),
        committed_after_fence,
        "once a sync follower promised epoch N+1 and reported its log holding N's first entry, no client is told of an entry of N beyond that report",
    )
}

/// A report that counts, from `reporter`: the follower holds the first entry of the epoch
/// the fence closes (`last_epoch` is N for a fence at N+1), so every entry
/// a client is told of at N is either N's own, which needed this follower's
/// acknowledgement before its promise, or older, and below N's first.
/// Returns the history with the report's position kept, the lowest per
/// bucket and fence, or `None` if nothing changes.
pub fn record_report(history: &History, reporter: Id, report: &FenceReport) -> Option<History> {
    if report.last_epoch.next() != report.epoch {
        return None;
    }
    let key = (report.bucket, report.epoch, reporter);
    if history
        .fence_reports
        .get(&key)
        .is_some_and(|known| *known <= report.last_position)
    {
        return None;
    }
    let mut next = history.clone();
    next.fence_reports.insert(key, report.last_position);
    Some(next)
}

/// The first acknowledgement of an entry beyond a replica's fence report
/// of its epoch, named in one sentence. Reports from anyone else (the
/// outsider forges one) are no promise of the protocol's.
pub fn committed_after_fence(model: &BerthModel, state: &BerthState) -> Option<String> {
    let replica = |id: Id| {
        matches!(
            model.actors.get(usize::from(id)),
            Some(BerthActor::Replica(_))
        )
    };
    beyond_report(&state.history, replica).map(|(ack, fence, reporter, reported)| {
        format!(
            "{ack}, after sync follower replica {} promised {fence} reporting its log through {reported}",
            usize::from(reporter)
        )
    })
}

fn beyond_report(
    history: &History,
    replica: impl Fn(Id) -> bool,
) -> Option<(&Acknowledgement, Epoch, Id, Position)> {
    history.acknowledgements.iter().find_map(|ack| {
        let fence = ack.epoch.next();
        history
            .fence_reports
            .range((ack.bucket, fence, Id::from(0))..=(ack.bucket, fence, Id::from(usize::MAX)))
            .find(|((_, _, reporter), reported)| replica(*reporter) && ack.position > **reported)
            .map(|((_, _, reporter), reported)| (ack, fence, *reporter, *reported))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_model::{Bucket, InventoryUnit, Outcome, Token};

    fn ack(epoch: Epoch, position: Position) -> Acknowledgement {
        Acknowledgement {
            client: Id::from(9),
            leader: Id::from(0),
            token: Token::default(),
            unit: InventoryUnit::new("trip", "cabin"),
            outcome: Outcome::Confirmed,
            bucket: Bucket(0),
            epoch,
            position,
        }
    }

    fn report(last_epoch: Epoch, last_position: Position) -> FenceReport {
        FenceReport {
            bucket: Bucket(0),
            epoch: Epoch::FIRST.next(),
            last_position,
            last_epoch,
        }
    }

    /// Goal: an entry of N told beyond a report at N+1 is named; one within
    /// it, one of another epoch, and a report without N's first entry
    /// (which the controller does not promote on) are not.
    #[test]
    fn an_entry_told_beyond_the_report_is_named() {
        let mut history = History::default();
        history
            .acknowledgements
            .insert(ack(Epoch::FIRST, Position(2)));
        let within =
            record_report(&history, Id::from(1), &report(Epoch::FIRST, Position(2))).unwrap();
        assert_eq!(beyond_report(&within, |_| true), None);
        let beyond =
            record_report(&within, Id::from(1), &report(Epoch::FIRST, Position(1))).unwrap();
        assert!(beyond_report(&beyond, |_| true).is_some());
        assert_eq!(beyond_report(&beyond, |_| false), None);
        assert_eq!(
            record_report(&beyond, Id::from(1), &report(Epoch::FIRST, Position(3))),
            None
        );
        assert_eq!(
            record_report(&history, Id::from(1), &report(Epoch(0), Position(1))),
            None
        );
        let mut later = beyond.clone();
        later.acknowledgements.clear();
        later
            .acknowledgements
            .insert(ack(Epoch::FIRST.next(), Position(5)));
        assert_eq!(beyond_report(&later, |_| true), None);
    }
}
