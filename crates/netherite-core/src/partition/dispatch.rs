//! Dispatch: turning inboxes and entity queues into work for workers, and answering waits.
//!
//! An instance gets a new episode when none is in flight and its inbox holds events its status
//! lets through: nothing before its `ExecutionStarted`, only resume, terminate and suspend
//! while suspended. The episode's new events are `OrchestratorStarted(now)` and then the inbox,
//! `ExecutionStarted` first. An entity gets a batch when none is in flight and its queue holds
//! operations it may run.

use tracing::debug;

use super::PartitionState;
use super::effect::{Effect, StartEntityBatch, StartEpisode};
use super::entities::BatchInFlight;
use super::event::EpisodeNumber;
use super::response::{ClientResponse, Rejection};
use super::sessions::{Gate, InFlight};
use super::step::Step;
use super::view::InstanceView;
use crate::entity;
use crate::ids::{ExecutionId, InstanceId};
use crate::model::{EventKind, HistoryEvent, OrchestrationStatus};

impl PartitionState {
    /// Starts the next episode of `id` if it has one to run.
    pub(crate) fn dispatch_episode(&mut self, step: &mut Step, id: &InstanceId) {
        let Some((gate, execution)) = self.gate(id) else {
            return;
        };
        let max = self.config.limits.episode_events_max;
        let session = self.sessions.entry(id);
        let events = session.take_batch(gate, max);
        if events.is_empty() && !session.force {
            self.sessions.prune(id);
            return;
        }
        session.force = false;

        let started = HistoryEvent::new(step.now, EventKind::OrchestratorStarted);
        let new_events: Vec<HistoryEvent> = std::iter::once(started).chain(events).collect();
        let episode = EpisodeNumber(self.next_work());
        let flight = InFlight {
            episode,
            execution: execution.clone(),
            new_events: new_events.clone(),
        };
        self.sessions.entry(id).in_flight = Some(flight);
        let events = new_events.len();
        debug!(instance = %id, episode = episode.0, events, "episode dispatched");

        let start = StartEpisode {
            instance: id.clone(),
            execution,
            episode,
            past_events: self.instances.history(id).to_vec(),
            new_events,
        };
        step.effects.push(Effect::StartEpisode(start));
    }

    /// What the next episode of `id` may take from its inbox, and its execution; `None` when
    /// no episode may start (one is in flight, or the instance is gone or finished, in which
    /// case its inbox is dropped).
    fn gate(&mut self, id: &InstanceId) -> Option<(Gate, ExecutionId)> {
        let Some(record) = self.instances.get(id) else {
            self.sessions.remove(id);
            return None;
        };
        if record.status.is_terminal() {
            self.sessions.entry(id).inbox.clear();
            self.sessions.prune(id);
            return None;
        }
        if self.sessions.get(id).is_some_and(|s| s.in_flight.is_some()) {
            return None;
        }
        let gate = match record.status {
            _ if self.instances.history(id).is_empty() => Gate::AwaitingStart,
            OrchestrationStatus::Suspended => Gate::Suspended,
            _ => Gate::Open,
        };
        Some((gate, record.execution_id.clone()))
    }

    /// Starts the next batch of entity `id` if it has operations it may run.
    pub(crate) fn dispatch_batch(&mut self, step: &mut Step, id: &InstanceId) {
        let Some(slot) = self.entities.get(id) else {
            return;
        };
        if slot.in_flight.is_some() {
            return;
        }
        let operations = entity::next_batch(&slot.record, self.config.limits.entity_batch_max);
        if operations.is_empty() {
            self.entities.prune(id);
            return;
        }

        let batch = EpisodeNumber(self.next_work());
        let slot = self.entities.entry(id);
        slot.in_flight = Some(BatchInFlight {
            batch,
            operations: operations.clone(),
        });
        debug!(entity = %id, batch = batch.0, operations = operations.len(),
            "entity batch dispatched");
        let start = StartEntityBatch {
            entity: id.clone(),
            batch,
            state: slot.record.state.clone(),
            operations,
        };
        step.effects.push(Effect::StartEntityBatch(start));
    }

    /// Answers the waits on `id` that its status now satisfies (all of them, with
    /// `NotFound`, if it is gone).
    pub(crate) fn answer_waits(&mut self, step: &mut Step, id: &InstanceId) {
        let answers: Vec<_> = match self.instances.get(id) {
            None => {
                let gone = || Rejection::NotFound {
                    instance: id.clone(),
                };
                let waiters = self.waits.take_all(id).into_iter();
                waiters
                    .map(|w| (w, ClientResponse::Rejected(gone())))
                    .collect()
            }
            Some(record) => {
                let waiters = self.waits.take_satisfied(id, record.status).into_iter();
                let view = |payloads| Box::new(InstanceView::of(id, record, payloads));
                waiters
                    .map(|w| (w.clone(), ClientResponse::Instance(view(w.payloads))))
                    .collect()
            }
        };
        for (waiter, response) in answers {
            self.respond(step, waiter.client, waiter.seq, response);
        }
    }
}
