//! Completions: what workers send back (episodes, entity batches, activities).
//!
//! A completion counts only if it names the work in flight: the episode or batch number and,
//! for episodes, the execution. Anything else is stale (a late answer to work re-issued after
//! recovery or abandoned) and is ignored. Activity results always go to the instance's inbox
//! tagged with the execution that scheduled them, so a result for an execution that has since
//! continued as new is dropped at delivery.

use tracing::{debug, warn};

use super::PartitionState;
use super::effect::{Effect, StartActivity};
use super::event::{
    ActivityCompleted, ActivityId, EntityBatchAbandoned, EntityBatchCompleted, EpisodeAbandoned,
    EpisodeCompleted, EpisodeNumber,
};
use super::sessions::InFlight;
use super::step::Step;
use crate::entity;
use crate::episode::{self, ActivityRequest, EpisodeInput, EpisodeOutcome, NextExecution};
use crate::ids::{ExecutionId, InstanceId};
use crate::model::{
    EventKind, HistoryEvent, OrchestrationStatus, TaskCompleted, TaskFailed, TaskMessage,
    TimerFired,
};

impl PartitionState {
    /// Commits an episode, if it is the one in flight.
    pub(crate) fn episode_completed(&mut self, step: &mut Step, done: &EpisodeCompleted) {
        let id = &done.instance;
        let Some(flight) = self.take_flight(id, done.episode, Some(&done.execution)) else {
            debug!(instance = %id, episode = done.episode.0, "stale episode completion ignored");
            return;
        };
        let input = EpisodeInput {
            instance_id: id,
            execution_id: &flight.execution,
            history: self.instances.history(id),
            new_events: &flight.new_events,
            actions: &done.actions,
            custom_status: done.custom_status.clone(),
            now: step.now,
        };
        let outcome = episode::apply_episode(&input, &mut step.ids);
        debug!(instance = %id, episode = done.episode.0, status = ?outcome.status,
            "episode committed");
        self.commit_episode(step, id, &flight.execution, outcome);
        step.dirty_instances.insert(id.clone());
    }

    /// Puts an abandoned episode's events back in the inbox, to be dispatched again.
    pub(crate) fn episode_abandoned(&mut self, step: &mut Step, gone: &EpisodeAbandoned) {
        let id = &gone.instance;
        let Some(flight) = self.take_flight(id, gone.episode, None) else {
            debug!(instance = %id, episode = gone.episode.0, "stale abandon ignored");
            return;
        };
        let session = self.sessions.entry(id);
        session.in_flight = Some(flight);
        session.put_back(id);
        step.dirty_instances.insert(id.clone());
    }

    /// Routes an activity's result to its instance, if the activity is still pending.
    pub(crate) fn activity_completed(&mut self, step: &mut Step, done: &ActivityCompleted) {
        let Some(activity) = self.activities.complete(done.activity) else {
            debug!(
                activity = done.activity.0,
                "completion of an unknown activity ignored"
            );
            return;
        };
        let task_scheduled_id = activity.task_id;
        let kind = match &done.result {
            Ok(result) => EventKind::TaskCompleted(TaskCompleted {
                task_scheduled_id,
                result: result.clone(),
            }),
            Err(failure) => EventKind::TaskFailed(TaskFailed {
                task_scheduled_id,
                failure: failure.clone(),
            }),
        };
        let event = HistoryEvent::new(step.now, kind);
        let message = TaskMessage::to_execution(activity.instance, activity.execution, event);
        step.local.push_back(message);
    }

    /// Commits an entity batch, if it is the one in flight.
    pub(crate) fn entity_batch_completed(&mut self, step: &mut Step, done: &EntityBatchCompleted) {
        let id = &done.entity;
        let Some(flight) = self.take_batch(id, done.batch) else {
            debug!(entity = %id, batch = done.batch.0, "stale entity batch ignored");
            return;
        };
        let record = &mut self.entities.entry(id).record;
        let applied =
            entity::apply_batch(id, record, &flight, &done.result, step.now, &mut step.ids);
        // A result that does not fit its batch changed nothing; the batch runs again.
        match applied {
            Ok(out) => out
                .into_iter()
                .for_each(|message| self.route(step, message)),
            Err(error) => warn!(entity = %id, batch = done.batch.0, %error,
                "entity batch result refused; dispatching again"),
        }
        step.dirty_entities.insert(id.clone());
    }

    /// Makes an abandoned entity batch dispatchable again.
    pub(crate) fn entity_batch_abandoned(&mut self, step: &mut Step, gone: &EntityBatchAbandoned) {
        if self.take_batch(&gone.entity, gone.batch).is_none() {
            debug!(entity = %gone.entity, batch = gone.batch.0, "stale abandon ignored");
            return;
        }
        step.dirty_entities.insert(gone.entity.clone());
    }

    /// Takes the episode in flight for `id` if it has number `episode` (and `execution`).
    fn take_flight(
        &mut self,
        id: &InstanceId,
        episode: EpisodeNumber,
        execution: Option<&ExecutionId>,
    ) -> Option<InFlight> {
        let session = self.sessions.get(id)?;
        let flight = session.in_flight.as_ref()?;
        let matches = flight.episode == episode && execution.is_none_or(|e| *e == flight.execution);
        if !matches {
            return None;
        }
        self.sessions.entry(id).in_flight.take()
    }

    /// Takes the batch in flight for entity `id` if it has number `batch`.
    fn take_batch(&mut self, id: &InstanceId, batch: EpisodeNumber) -> Option<Vec<HistoryEvent>> {
        let slot = self.entities.get_mut(id)?;
        if slot.in_flight.as_ref()?.batch != batch {
            return None;
        }
        slot.in_flight.take().map(|f| f.operations)
    }

    /// Applies what an episode changed: history, status, messages, activities and timers.
    fn commit_episode(
        &mut self,
        step: &mut Step,
        id: &InstanceId,
        execution: &ExecutionId,
        outcome: EpisodeOutcome,
    ) {
        let status = self.commit_history(step, id, &outcome);
        let (terminal, now) = (status.is_terminal(), step.now);
        self.instances.update(id, |r| {
            r.custom_status = outcome.custom_status.clone();
            if terminal {
                r.output = outcome.output.clone();
                r.failure = outcome.failure.clone();
                r.completed = Some(now);
            }
        });
        if self.instances.set_status(id, status, now) {
            step.changed.insert(id.clone());
        }
        if terminal {
            self.sessions.entry(id).inbox.clear();
        }

        self.send_outcome(step, id, execution, outcome);
    }

    /// Sends what an episode asked for: messages, activities and timers.
    fn send_outcome(
        &mut self,
        step: &mut Step,
        id: &InstanceId,
        execution: &ExecutionId,
        outcome: EpisodeOutcome,
    ) {
        for message in outcome.messages {
            self.route(step, message);
        }
        for request in outcome.activities {
            self.start_activity(step, id, execution, request);
        }
        // A timer is a `TimerFired` to the instance itself, held until due by `deliver`.
        for timer in outcome.timers {
            let fired = TimerFired {
                fire_at: timer.fire_at,
                timer_id: timer.timer_id,
            };
            let event = HistoryEvent::new(timer.fire_at, EventKind::TimerFired(fired));
            let message = TaskMessage::to_execution(id.clone(), execution.clone(), event);
            self.route(step, message);
        }
    }

    /// Updates the history of `id` after an episode; returns the status to record.
    fn commit_history(
        &mut self,
        step: &mut Step,
        id: &InstanceId,
        outcome: &EpisodeOutcome,
    ) -> OrchestrationStatus {
        if let Some(next) = &outcome.next_execution {
            self.continue_as_new(step, id, next);
            return OrchestrationStatus::Running;
        }
        if let Some(history) = &outcome.rewound_history {
            self.instances.set_history(id, history.clone());
            self.sessions.entry(id).force = true;
        } else {
            self.instances.append_history(id, outcome.appended.clone());
        }
        outcome.status
    }

    /// Starts the next execution of `id`: a fresh history, and a first episode made of its
    /// `ExecutionStarted`, the carried-over events and whatever arrived for it meanwhile.
    fn continue_as_new(&mut self, step: &mut Step, id: &InstanceId, next: &NextExecution) {
        let old = self.instances.get(id).map(|r| r.execution_id.clone());
        self.instances.set_history(id, Vec::new());
        let now = step.now;
        self.instances.update(id, |r| {
            r.execution_id = next.execution_id.clone();
            if let EventKind::ExecutionStarted(started) = &next.started.kind {
                r.input = started.input.clone();
                r.version = started.version.clone();
                r.tags = started.tags.clone();
            }
            r.last_updated = now;
        });

        let session = self.sessions.entry(id);
        if let Some(old) = old {
            session.drop_other_executions(&next.execution_id);
            debug!(instance = %id, old = %old, new = %next.execution_id, "continued as new");
        }
        let first = std::iter::once(&next.started).chain(&next.carryover).rev();
        for event in first {
            let message =
                TaskMessage::to_execution(id.clone(), next.execution_id.clone(), event.clone());
            session.inbox.push_front(message);
        }
    }

    fn start_activity(
        &mut self,
        step: &mut Step,
        id: &InstanceId,
        execution: &ExecutionId,
        request: ActivityRequest,
    ) {
        let number = ActivityId(self.next_work());
        let activity = StartActivity::new(number, id.clone(), execution.clone(), request);
        self.activities.insert(activity.clone());
        step.effects.push(Effect::StartActivity(activity));
    }
}
