//! Upkeep events from the engine itself: timers firing and recovery.
//!
//! Recovery happens after the engine loaded a checkpoint and replayed the log tail (whose
//! effects it discarded). The `Recovered` event then re-issues everything the crash may have
//! lost on the way out: episodes and entity batches in flight get new numbers (so answers to
//! the old ones are ignored), pending activities start again, the timer is re-armed and every
//! unconfirmed outbox batch is sent again (receivers drop what they already have).

use tracing::{debug, info};

use super::PartitionState;
use super::effect::Effect;
use super::response::{ClientResponse, Rejection};
use super::step::Step;

impl PartitionState {
    /// Delivers everything due by now and rejects waits past their deadline.
    pub(crate) fn timers_fired(&mut self, step: &mut Step) {
        let due = self.timers.take_due(step.now);
        debug!(partition = %self.config.partition, due = due.len(), "timers fired");
        step.local.extend(due);

        for (instance, waiter) in self.waits.take_expired(step.now) {
            let rejection = Rejection::DeadlineExceeded { instance };
            let response = ClientResponse::Rejected(rejection);
            self.respond(step, waiter.client, waiter.seq, response);
        }
    }

    /// Re-issues in-flight work, pending activities, the timer and the outbox.
    pub(crate) fn recovered(&mut self, step: &mut Step) {
        // The rebase must come before anything is dispatched: see `next_work`.
        self.next_work = step.seed as u64;
        for id in self.sessions.ids() {
            self.sessions.entry(&id).put_back(&id);
            step.dirty_instances.insert(id);
        }
        for id in self.entities.ids() {
            if let Some(slot) = self.entities.get_mut(&id) {
                slot.in_flight = None;
            }
            step.dirty_entities.insert(id);
        }

        let activities = self.activities.iter().cloned().map(Effect::StartActivity);
        step.effects.extend(activities);
        let resend = self.outbox.resend(self.config.partition);
        step.effects
            .extend(resend.into_iter().map(Effect::SendMessages));
        step.rearm = true;
        info!(partition = %self.config.partition, position = %step.at,
            activities = self.activities.len(), outbox = self.outbox.len(), "partition recovered");
    }
}
