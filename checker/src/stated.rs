//! Which properties each scenario states: the scenario's own, then those
//! its options add (liveness where nothing is lost, bounds where the
//! runtime sets them, the operator's where it moves), and without those
//! only a booking or a second client could reach.

use crate::properties::{self, PropertySpec};
use crate::scenario::{NetworkKind, Scenario, ScenarioConfig};

impl ScenarioConfig {
    /// The properties this scenario checks.
    pub fn properties(&self) -> Vec<PropertySpec> {
        let mut properties = match self.scenario {
            Scenario::Replication => properties::replication_properties(),
            Scenario::Failover => properties::failover_properties(),
            Scenario::Cutover => properties::cutover_properties(),
            Scenario::All => properties::all_properties(),
        };
        if self.scenario == Scenario::Failover && self.failovers >= 2 {
            properties.push(crate::reach::replacement_promoted_property());
        }
        if self.retained_entries.is_some() {
            properties.extend(crate::reach::log_folded_properties());
        }
        if self.reads() {
            properties.extend(properties::session_read_properties());
        }
        // Contention needs two clients; with one, the property could only
        // ever be reported unreached.
        // A follower learns a commit with the next write or, with
        // announcements, at once: in replication with one client and
        // neither, a follower never has a write of the client's to serve.
        // (In the other scenarios an epoch change brings the next write.)
        let follower_reads = self.scenario != Scenario::Replication
            || self.clients >= 2
            || self.announce_commits
            || self.runtime_settings;
        // With no client nobody books: what only a booking reaches is not
        // stated.
        let needs_a_booking = [
            properties::BOOKING_CONFIRMED,
            properties::BOOKING_CONFIRMED_AFTER_FAILOVER,
            properties::BOOKING_CONFIRMED_BY_NEW_OWNER,
            properties::STALE_ROUTER_REDIRECTED,
            properties::FOLLOWER_READ_SERVED,
        ];
        let mut properties: Vec<PropertySpec> = properties
            .into_iter()
            .filter(|property| self.clients > 0 || !needs_a_booking.contains(&property.name))
            .filter(|property| self.clients >= 2 || property.name != properties::CABIN_CONTENDED)
            .filter(|property| follower_reads || property.name != properties::FOLLOWER_READ_SERVED)
            // With no detector nobody suspects a sync follower.
            .filter(|property| {
                !self.planned_failover || property.name != properties::SYNC_FOLLOWER_REPLACED
            })
            .collect();
        if self.expiring_holds {
            properties.push(properties::hold_expired_property());
            properties.push(crate::liveness::hold_liveness_property());
        }
        if self.stream {
            properties.extend(properties::stream_properties());
        }
        if self.retries > 0 && !self.runtime_settings {
            properties.push(crate::liveness::clients_finish_property());
        }
        let loses_nothing = matches!(
            self.network,
            NetworkKind::Ordered | NetworkKind::Unordered | NetworkKind::UnorderedDuplicating
        );
        if self.runtime_settings {
            properties.extend(crate::liveness::liveness_properties());
            if loses_nothing {
                properties.push(crate::liveness::commit_liveness_property());
            }
        } else if self.catch_up && self.announce_commits && loses_nothing {
            // Without resends, what a crash loses is repaired only by
            // the catch-up a restart starts: a restarted follower asks,
            // a restarted leader announces its commit to every follower.
            // Neither repairs a message the network itself loses.
            properties.push(crate::liveness::followers_catch_up_property());
            properties.push(crate::liveness::commit_liveness_property());
        }
        // A lost fence is resent only with `resend_unanswered`; without
        // it only a network that loses nothing, with no crash, brings
        // every fence through.
        if matches!(self.scenario, Scenario::Failover)
            && (self.resend_unanswered
                || (self.network == NetworkKind::Ordered && self.crashes == 0))
        {
            properties.push(crate::liveness::failovers_complete_property());
        }
        // A move has no resends: only a network that loses nothing, with
        // no crash, brings every step of it through.
        if self.scenario == Scenario::Cutover
            && self.network == NetworkKind::Ordered
            && self.crashes == 0
        {
            properties.push(crate::liveness::moves_complete_property());
            if self.snapshot_chunk.is_some() {
                properties.push(crate::liveness::nothing_left_staged_property());
            }
        }
        if self.snapshot_chunk.is_some()
            || self.max_append_entries.is_some()
            || self.runtime_settings
        {
            properties.push(crate::bounds::bounds_property());
        }
        properties.push(crate::agree::agreement_property());
        properties.extend(crate::promises::promise_properties());
        properties.push(crate::rules::rules_property());
        properties.push(crate::saved::saved_property());
        if self.query {
            properties.push(crate::promises::query_property());
        }
        if self.outsider {
            properties.push(crate::outsider::outsider_property());
        }
        if self.scenario == Scenario::Cutover {
            properties.push(crate::operator::one_move_property());
            if self.move_back {
                properties.push(crate::operator::moved_back_property());
            }
        }
        properties
    }
}
