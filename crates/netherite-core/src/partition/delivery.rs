//! Delivery: how a message reaches an instance's inbox or an entity's queue.
//!
//! The rules, in order: a message due later (a timer, a scheduled start, a scheduled signal)
//! waits in the timers; an entity message goes to the entity; an `ExecutionStarted` creates its
//! instance (or starts a pending one it belongs to, else it is a duplicate and dropped); any
//! other message is dropped if its instance is missing or terminal, or if it names another
//! execution. Whatever is left goes to the inbox and the instance is marked for dispatch.
//!
//! A second `ExecutionStarted` for an id that is taken is dropped. When it came from a parent
//! orchestration, the parent is told with `SubOrchestrationFailed` rather than left waiting
//! (the Durable Task Framework drops it silently).

use tracing::{debug, trace, warn};

use super::PartitionState;
use super::event::PartitionMessages;
use super::instances::InstanceRecord;
use super::step::Step;
use crate::entity;
use crate::ids::{InstanceId, partition_of};
use crate::model::{
    EntityId, EventKind, ExecutionStarted, FailureDetails, HistoryEvent, OrchestrationStatus,
    SubOrchestrationFailed, TaskMessage,
};
use crate::time::Timestamp;

impl PartitionState {
    /// Takes a batch from another partition, unless its stamp shows it was taken already.
    pub(crate) fn receive_batch(&mut self, step: &mut Step, batch: &PartitionMessages) {
        let (origin, position) = (batch.origin, batch.origin_position);
        // A stamp from outside the task hub would only grow the dedup records.
        if origin.0 >= self.config.partition_count {
            warn!(partition = %self.config.partition, origin = %origin,
                "batch from a partition outside the task hub dropped");
            return;
        }
        if !self
            .dedup
            .accept_batch(origin, position, batch.sub_position)
        {
            let sub_position = batch.sub_position;
            debug!(partition = %self.config.partition, origin = %origin,
                origin_position = %position, sub_position, "duplicate batch dropped");
            return;
        }
        for message in &batch.messages {
            let owner = partition_of(&message.target, self.config.partition_count);
            if owner != self.config.partition {
                warn!(partition = %self.config.partition, target = %message.target,
                    owner = %owner, "misrouted message dropped");
                continue;
            }
            step.local.push_back(message.clone());
        }
    }

    /// Delivers a message whose target lives on this partition.
    pub(crate) fn deliver(&mut self, step: &mut Step, message: TaskMessage) {
        if let Some(due) = due_time(&message).filter(|due| *due > step.now) {
            trace!(target = %message.target, due = %due, "message held until due");
            self.timers.insert(due, message);
        } else if message.target.is_entity() {
            self.deliver_to_entity(step, message);
        } else {
            self.deliver_to_instance(step, message);
        }
    }

    fn deliver_to_instance(&mut self, step: &mut Step, message: TaskMessage) {
        let id = message.target.clone();
        let verdict = match &message.event.kind {
            EventKind::ExecutionStarted(started) => self.admit_start(step, &id, started),
            _ => self.admit(&message),
        };
        if let Err(reason) = verdict {
            debug!(target = %id, kind = message.event.kind.protocol_number(), reason,
                "message dropped");
            if let EventKind::ExecutionStarted(started) = &message.event.kind {
                self.refuse_child(step, started);
            }
            return;
        }
        self.sessions.entry(&id).inbox.push_back(message);
        step.dirty_instances.insert(id);
    }

    /// Tells the parent of a sub-orchestration whose id is taken that its child failed, so
    /// the parent's task ends instead of waiting for a result that never comes.
    fn refuse_child(&self, step: &mut Step, started: &ExecutionStarted) {
        let Some(parent) = &started.parent else {
            return;
        };
        let message = format!("an instance with id {} already exists", started.instance_id);
        let failed = SubOrchestrationFailed {
            task_scheduled_id: parent.task_scheduled_id,
            failure: FailureDetails::new("OrchestrationAlreadyExists", message),
        };
        let event = HistoryEvent::new(step.now, EventKind::SubOrchestrationFailed(failed));
        let to = parent.instance_id.clone();
        let message = match &parent.execution_id {
            Some(execution) => TaskMessage::to_execution(to, execution.clone(), event),
            None => TaskMessage::to_instance(to, event),
        };
        self.route(step, message);
    }

    /// Whether an ordinary message may enter its instance's inbox.
    fn admit(&self, message: &TaskMessage) -> Result<(), &'static str> {
        let record = self
            .instances
            .get(&message.target)
            .ok_or("no such instance")?;
        if record.status.is_terminal() {
            return Err("instance is terminal");
        }
        if message
            .target_execution
            .as_ref()
            .is_some_and(|e| *e != record.execution_id)
        {
            return Err("addressed to another execution");
        }
        Ok(())
    }

    /// Whether an `ExecutionStarted` may enter the inbox; creates the instance if it is new.
    ///
    /// An existing instance takes it only while it is pending on exactly this execution and
    /// has no start queued or running: that is a created instance whose (scheduled) start has
    /// come. Anything else is a second creation of a known id, which is dropped.
    fn admit_start(
        &mut self,
        step: &mut Step,
        id: &InstanceId,
        started: &ExecutionStarted,
    ) -> Result<(), &'static str> {
        let Some(record) = self.instances.get(id) else {
            let record = record_from_start(started, step.now);
            self.instances.insert(id.clone(), record);
            return Ok(());
        };
        let awaiting = record.status == OrchestrationStatus::Pending
            && record.execution_id == started.execution_id
            && self.start_is_delayed(id);
        awaiting.then_some(()).ok_or("instance exists")
    }

    /// Whether `id` is pending with its start nowhere but in the timers.
    pub(crate) fn start_is_delayed(&self, id: &InstanceId) -> bool {
        let queued = self.sessions.get(id).is_some_and(|s| {
            s.in_flight.is_some()
                || s.inbox
                    .iter()
                    .any(|m| matches!(m.event.kind, EventKind::ExecutionStarted(_)))
        });
        self.instances.history(id).is_empty() && !queued
    }

    fn deliver_to_entity(&mut self, step: &mut Step, message: TaskMessage) {
        let id = message.target.clone();
        if let Err(error) = EntityId::parse(id.as_str()) {
            debug!(target = %id, %error, "message for a malformed entity id dropped");
            return;
        }
        let slot = self.entities.entry(&id);
        let out = entity::receive(&id, &mut slot.record, message.event, step.now);
        for message in out {
            self.route(step, message);
        }
        step.dirty_entities.insert(id);
    }
}

/// When a message may be delivered, if it must wait.
fn due_time(message: &TaskMessage) -> Option<Timestamp> {
    match &message.event.kind {
        EventKind::TimerFired(fired) => Some(fired.fire_at),
        EventKind::ExecutionStarted(started) => started.scheduled_start,
        EventKind::EntityOperationSignaled(signal) => signal.scheduled_time,
        EventKind::EntityOperationCalled(call) => call.scheduled_time,
        _ => None,
    }
}

/// The record of an instance created by its `ExecutionStarted`, pending until its first
/// episode commits.
pub(crate) fn record_from_start(started: &ExecutionStarted, now: Timestamp) -> InstanceRecord {
    InstanceRecord {
        name: started.name.clone(),
        version: started.version.clone(),
        status: OrchestrationStatus::Pending,
        created: now,
        last_updated: now,
        completed: None,
        input: started.input.clone(),
        output: None,
        failure: None,
        custom_status: None,
        execution_id: started.execution_id.clone(),
        parent: started.parent.clone(),
        tags: started.tags.clone(),
        scheduled_start: started.scheduled_start,
    }
}
