//! History events, all 28 kinds: `pb::HistoryEvent` and `model::HistoryEvent`.
//!
//! Every kind maps to the model variant of the same protocol number. What the wire must carry
//! for the model to hold an event: a kind, a `timestamp`, the instance and execution of an
//! `executionStarted`, the `fireAt` of timers, the failure of failed events, a known status,
//! and non-negative ids where an id names an action (`taskScheduledId`, `timerId`).
//!
//! One kind is not kept whole: `historyState` carries an `OrchestrationState` snapshot that
//! older hosts wrote and the model has no place for. The kind survives, the snapshot is
//! dropped; workers skip the event either way, and netherite never writes one.

use netherite_core::model::{
    EventKind, EventRaised, EventSent, ExecutionCompleted, ExecutionRewound, ExecutionStarted,
    ExecutionTerminated, HistoryEvent, SubOrchestrationCompleted, SubOrchestrationCreated,
    SubOrchestrationFailed, TaskCompleted, TaskFailed, TaskScheduled, TimerCreated, TimerFired,
};
use netherite_core::{ExecutionId, InstanceId};

use super::common::{instance_from_wire, instance_to_wire};
use super::failure::{optional_failure, optional_failure_to_wire, required_failure};
use super::timestamp_to_wire;
use super::{non_negative, optional_time, required_time, status_from_wire, status_to_wire};
use crate::pb::history_event::EventType;
use crate::{Error, pb};

impl TryFrom<pb::HistoryEvent> for HistoryEvent {
    type Error = Error;

    fn try_from(wire: pb::HistoryEvent) -> Result<Self, Error> {
        let timestamp = required_time(wire.timestamp, "HistoryEvent.timestamp")?;
        let kind = wire.event_type.ok_or(Error::Missing {
            field: "HistoryEvent.eventType",
        })?;
        Ok(HistoryEvent {
            event_id: wire.event_id,
            timestamp,
            kind: kind_from_wire(kind)?,
        })
    }
}

impl TryFrom<HistoryEvent> for pb::HistoryEvent {
    type Error = Error;

    fn try_from(event: HistoryEvent) -> Result<Self, Error> {
        Ok(pb::HistoryEvent {
            event_id: event.event_id,
            timestamp: Some(timestamp_to_wire(event.timestamp)),
            event_type: Some(kind_to_wire(event.kind)?),
        })
    }
}

/// The model's kind for a wire kind; one arm per protocol number, 3 to 30.
fn kind_from_wire(kind: EventType) -> Result<EventKind, Error> {
    use EventKind as K;
    use EventType as W;
    Ok(match kind {
        W::ExecutionStarted(e) => K::ExecutionStarted(e.try_into()?),
        W::ExecutionCompleted(e) => K::ExecutionCompleted(e.try_into()?),
        W::ExecutionTerminated(e) => K::ExecutionTerminated(e.into()),
        W::TaskScheduled(e) => K::TaskScheduled(e.into()),
        W::TaskCompleted(e) => K::TaskCompleted(e.try_into()?),
        W::TaskFailed(e) => K::TaskFailed(e.try_into()?),
        W::SubOrchestrationInstanceCreated(e) => K::SubOrchestrationCreated(e.into()),
        W::SubOrchestrationInstanceCompleted(e) => K::SubOrchestrationCompleted(e.try_into()?),
        W::SubOrchestrationInstanceFailed(e) => K::SubOrchestrationFailed(e.try_into()?),
        W::TimerCreated(e) => K::TimerCreated(e.try_into()?),
        W::TimerFired(e) => K::TimerFired(e.try_into()?),
        W::OrchestratorStarted(_) => K::OrchestratorStarted,
        W::OrchestratorCompleted(_) => K::OrchestratorCompleted,
        W::EventSent(e) => K::EventSent(e.into()),
        W::EventRaised(e) => K::EventRaised(e.into()),
        W::GenericEvent(e) => K::GenericEvent { data: e.data },
        W::HistoryState(e) => history_state(e),
        W::ContinueAsNew(e) => K::ContinueAsNew { input: e.input },
        W::ExecutionSuspended(e) => K::ExecutionSuspended { input: e.input },
        W::ExecutionResumed(e) => K::ExecutionResumed { input: e.input },
        W::EntityOperationSignaled(e) => K::EntityOperationSignaled(e.try_into()?),
        W::EntityOperationCalled(e) => K::EntityOperationCalled(e.try_into()?),
        W::EntityOperationCompleted(e) => K::EntityOperationCompleted(e.into()),
        W::EntityOperationFailed(e) => K::EntityOperationFailed(e.try_into()?),
        W::EntityLockRequested(e) => K::EntityLockRequested(e.try_into()?),
        W::EntityLockGranted(e) => K::EntityLockGranted(e.into()),
        W::EntityUnlockSent(e) => K::EntityUnlockSent(e.into()),
        W::ExecutionRewound(e) => K::ExecutionRewound(e.try_into()?),
    })
}

/// The wire's kind for a model kind; one arm per protocol number, 3 to 30.
fn kind_to_wire(kind: EventKind) -> Result<EventType, Error> {
    use EventKind as K;
    use EventType as W;
    Ok(match kind {
        K::ExecutionStarted(e) => W::ExecutionStarted(e.into()),
        K::ExecutionCompleted(e) => W::ExecutionCompleted(e.try_into()?),
        K::ExecutionTerminated(e) => W::ExecutionTerminated(e.into()),
        K::TaskScheduled(e) => W::TaskScheduled(e.into()),
        K::TaskCompleted(e) => W::TaskCompleted(e.into()),
        K::TaskFailed(e) => W::TaskFailed(e.try_into()?),
        K::SubOrchestrationCreated(e) => W::SubOrchestrationInstanceCreated(e.into()),
        K::SubOrchestrationCompleted(e) => W::SubOrchestrationInstanceCompleted(e.into()),
        K::SubOrchestrationFailed(e) => W::SubOrchestrationInstanceFailed(e.try_into()?),
        K::TimerCreated(e) => W::TimerCreated(e.into()),
        K::TimerFired(e) => W::TimerFired(e.into()),
        K::OrchestratorStarted => W::OrchestratorStarted(pb::OrchestratorStartedEvent {}),
        K::OrchestratorCompleted => W::OrchestratorCompleted(pb::OrchestratorCompletedEvent {}),
        K::EventSent(e) => W::EventSent(e.into()),
        K::EventRaised(e) => W::EventRaised(e.into()),
        K::GenericEvent { data } => W::GenericEvent(pb::GenericEvent { data }),
        K::HistoryState => W::HistoryState(pb::HistoryStateEvent::default()),
        K::ContinueAsNew { input } => W::ContinueAsNew(pb::ContinueAsNewEvent { input }),
        K::ExecutionSuspended { input } => {
            W::ExecutionSuspended(pb::ExecutionSuspendedEvent { input })
        }
        K::ExecutionResumed { input } => W::ExecutionResumed(pb::ExecutionResumedEvent { input }),
        K::EntityOperationSignaled(e) => W::EntityOperationSignaled(e.into()),
        K::EntityOperationCalled(e) => W::EntityOperationCalled(e.into()),
        K::EntityOperationCompleted(e) => W::EntityOperationCompleted(e.into()),
        K::EntityOperationFailed(e) => W::EntityOperationFailed(e.try_into()?),
        K::EntityLockRequested(e) => W::EntityLockRequested(e.into()),
        K::EntityLockGranted(e) => W::EntityLockGranted(e.into()),
        K::EntityUnlockSent(e) => W::EntityUnlockSent(e.into()),
        K::ExecutionRewound(e) => W::ExecutionRewound(e.into()),
    })
}

/// A `historyState` event keeps its kind; the snapshot inside has no place in the model.
fn history_state(wire: pb::HistoryStateEvent) -> EventKind {
    if wire.orchestration_state.is_some() {
        tracing::debug!("Dropped the instance snapshot of a historyState event");
    }
    EventKind::HistoryState
}

// --- Execution lifecycle ---

impl TryFrom<pb::ExecutionStartedEvent> for ExecutionStarted {
    type Error = Error;

    /// The instance and the execution must be named: every later event hangs off them.
    fn try_from(wire: pb::ExecutionStartedEvent) -> Result<Self, Error> {
        let instance = wire.orchestration_instance.ok_or(Error::Missing {
            field: "ExecutionStartedEvent.orchestrationInstance",
        })?;
        let (instance_id, execution_id) = instance_from_wire(instance);
        let execution_id = execution_id.ok_or(Error::Missing {
            field: "ExecutionStartedEvent.orchestrationInstance.executionId",
        })?;
        let field = "ExecutionStartedEvent.scheduledStartTimestamp";

        Ok(ExecutionStarted {
            name: wire.name,
            version: wire.version,
            input: wire.input,
            instance_id,
            execution_id,
            parent: wire.parent_instance.map(TryInto::try_into).transpose()?,
            scheduled_start: optional_time(wire.scheduled_start_timestamp, field)?,
            parent_trace_context: wire.parent_trace_context.map(Into::into),
            orchestration_span_id: wire.orchestration_span_id,
            tags: wire.tags,
        })
    }
}

impl From<ExecutionStarted> for pb::ExecutionStartedEvent {
    fn from(e: ExecutionStarted) -> Self {
        pb::ExecutionStartedEvent {
            name: e.name,
            version: e.version,
            input: e.input,
            orchestration_instance: Some(instance_to_wire(e.instance_id, Some(e.execution_id))),
            parent_instance: e.parent.map(Into::into),
            scheduled_start_timestamp: e.scheduled_start.map(timestamp_to_wire),
            parent_trace_context: e.parent_trace_context.map(Into::into),
            orchestration_span_id: e.orchestration_span_id,
            tags: e.tags,
        }
    }
}

impl TryFrom<pb::ExecutionCompletedEvent> for ExecutionCompleted {
    type Error = Error;

    fn try_from(wire: pb::ExecutionCompletedEvent) -> Result<Self, Error> {
        let field = "ExecutionCompletedEvent.orchestrationStatus";
        Ok(ExecutionCompleted {
            status: status_from_wire(wire.orchestration_status, field)?,
            result: wire.result,
            failure: optional_failure(wire.failure_details)?,
        })
    }
}

impl TryFrom<ExecutionCompleted> for pb::ExecutionCompletedEvent {
    type Error = Error;

    fn try_from(e: ExecutionCompleted) -> Result<Self, Error> {
        Ok(pb::ExecutionCompletedEvent {
            orchestration_status: status_to_wire(e.status),
            result: e.result,
            failure_details: optional_failure_to_wire(e.failure)?,
        })
    }
}

impl From<pb::ExecutionTerminatedEvent> for ExecutionTerminated {
    fn from(wire: pb::ExecutionTerminatedEvent) -> Self {
        ExecutionTerminated {
            input: wire.input,
            recurse: wire.recurse,
        }
    }
}

impl From<ExecutionTerminated> for pb::ExecutionTerminatedEvent {
    fn from(e: ExecutionTerminated) -> Self {
        pb::ExecutionTerminatedEvent {
            input: e.input,
            recurse: e.recurse,
        }
    }
}

impl TryFrom<pb::ExecutionRewoundEvent> for ExecutionRewound {
    type Error = Error;

    fn try_from(wire: pb::ExecutionRewoundEvent) -> Result<Self, Error> {
        Ok(ExecutionRewound {
            reason: wire.reason,
            parent_execution_id: wire.parent_execution_id.map(ExecutionId),
            instance_id: wire.instance_id.map(InstanceId),
            parent_trace_context: wire.parent_trace_context.map(Into::into),
            name: wire.name,
            version: wire.version,
            input: wire.input,
            parent: wire.parent_instance.map(TryInto::try_into).transpose()?,
            tags: wire.tags,
        })
    }
}

impl From<ExecutionRewound> for pb::ExecutionRewoundEvent {
    fn from(e: ExecutionRewound) -> Self {
        pb::ExecutionRewoundEvent {
            reason: e.reason,
            parent_execution_id: e.parent_execution_id.map(|id| id.0),
            instance_id: e.instance_id.map(|id| id.0),
            parent_trace_context: e.parent_trace_context.map(Into::into),
            name: e.name,
            version: e.version,
            input: e.input,
            parent_instance: e.parent.map(Into::into),
            tags: e.tags,
        }
    }
}

// --- Activities ---

impl From<pb::TaskScheduledEvent> for TaskScheduled {
    fn from(wire: pb::TaskScheduledEvent) -> Self {
        TaskScheduled {
            name: wire.name,
            version: wire.version,
            input: wire.input,
            parent_trace_context: wire.parent_trace_context.map(Into::into),
            tags: wire.tags,
        }
    }
}

impl From<TaskScheduled> for pb::TaskScheduledEvent {
    fn from(e: TaskScheduled) -> Self {
        pb::TaskScheduledEvent {
            name: e.name,
            version: e.version,
            input: e.input,
            parent_trace_context: e.parent_trace_context.map(Into::into),
            tags: e.tags,
        }
    }
}

impl TryFrom<pb::TaskCompletedEvent> for TaskCompleted {
    type Error = Error;

    fn try_from(wire: pb::TaskCompletedEvent) -> Result<Self, Error> {
        let field = "TaskCompletedEvent.taskScheduledId";
        Ok(TaskCompleted {
            task_scheduled_id: non_negative(wire.task_scheduled_id, field)?,
            result: wire.result,
        })
    }
}

impl From<TaskCompleted> for pb::TaskCompletedEvent {
    fn from(e: TaskCompleted) -> Self {
        pb::TaskCompletedEvent {
            task_scheduled_id: e.task_scheduled_id,
            result: e.result,
        }
    }
}

impl TryFrom<pb::TaskFailedEvent> for TaskFailed {
    type Error = Error;

    fn try_from(wire: pb::TaskFailedEvent) -> Result<Self, Error> {
        let field = "TaskFailedEvent.taskScheduledId";
        Ok(TaskFailed {
            task_scheduled_id: non_negative(wire.task_scheduled_id, field)?,
            failure: required_failure(wire.failure_details, "TaskFailedEvent.failureDetails")?,
        })
    }
}

impl TryFrom<TaskFailed> for pb::TaskFailedEvent {
    type Error = Error;

    fn try_from(e: TaskFailed) -> Result<Self, Error> {
        Ok(pb::TaskFailedEvent {
            task_scheduled_id: e.task_scheduled_id,
            failure_details: Some(e.failure.try_into()?),
        })
    }
}

// --- Sub-orchestrations ---

impl From<pb::SubOrchestrationInstanceCreatedEvent> for SubOrchestrationCreated {
    fn from(wire: pb::SubOrchestrationInstanceCreatedEvent) -> Self {
        SubOrchestrationCreated {
            instance_id: InstanceId(wire.instance_id),
            name: wire.name,
            version: wire.version,
            input: wire.input,
            parent_trace_context: wire.parent_trace_context.map(Into::into),
            tags: wire.tags,
        }
    }
}

impl From<SubOrchestrationCreated> for pb::SubOrchestrationInstanceCreatedEvent {
    fn from(e: SubOrchestrationCreated) -> Self {
        pb::SubOrchestrationInstanceCreatedEvent {
            instance_id: e.instance_id.0,
            name: e.name,
            version: e.version,
            input: e.input,
            parent_trace_context: e.parent_trace_context.map(Into::into),
            tags: e.tags,
        }
    }
}

impl TryFrom<pb::SubOrchestrationInstanceCompletedEvent> for SubOrchestrationCompleted {
    type Error = Error;

    fn try_from(wire: pb::SubOrchestrationInstanceCompletedEvent) -> Result<Self, Error> {
        let field = "SubOrchestrationInstanceCompletedEvent.taskScheduledId";
        Ok(SubOrchestrationCompleted {
            task_scheduled_id: non_negative(wire.task_scheduled_id, field)?,
            result: wire.result,
        })
    }
}

impl From<SubOrchestrationCompleted> for pb::SubOrchestrationInstanceCompletedEvent {
    fn from(e: SubOrchestrationCompleted) -> Self {
        pb::SubOrchestrationInstanceCompletedEvent {
            task_scheduled_id: e.task_scheduled_id,
            result: e.result,
        }
    }
}

impl TryFrom<pb::SubOrchestrationInstanceFailedEvent> for SubOrchestrationFailed {
    type Error = Error;

    fn try_from(wire: pb::SubOrchestrationInstanceFailedEvent) -> Result<Self, Error> {
        let id_field = "SubOrchestrationInstanceFailedEvent.taskScheduledId";
        let failure_field = "SubOrchestrationInstanceFailedEvent.failureDetails";
        Ok(SubOrchestrationFailed {
            task_scheduled_id: non_negative(wire.task_scheduled_id, id_field)?,
            failure: required_failure(wire.failure_details, failure_field)?,
        })
    }
}

impl TryFrom<SubOrchestrationFailed> for pb::SubOrchestrationInstanceFailedEvent {
    type Error = Error;

    fn try_from(e: SubOrchestrationFailed) -> Result<Self, Error> {
        Ok(pb::SubOrchestrationInstanceFailedEvent {
            task_scheduled_id: e.task_scheduled_id,
            failure_details: Some(e.failure.try_into()?),
        })
    }
}

// --- Timers ---

impl TryFrom<pb::TimerCreatedEvent> for TimerCreated {
    type Error = Error;

    fn try_from(wire: pb::TimerCreatedEvent) -> Result<Self, Error> {
        Ok(TimerCreated {
            fire_at: required_time(wire.fire_at, "TimerCreatedEvent.fireAt")?,
        })
    }
}

impl From<TimerCreated> for pb::TimerCreatedEvent {
    fn from(e: TimerCreated) -> Self {
        pb::TimerCreatedEvent {
            fire_at: Some(timestamp_to_wire(e.fire_at)),
        }
    }
}

impl TryFrom<pb::TimerFiredEvent> for TimerFired {
    type Error = Error;

    fn try_from(wire: pb::TimerFiredEvent) -> Result<Self, Error> {
        Ok(TimerFired {
            fire_at: required_time(wire.fire_at, "TimerFiredEvent.fireAt")?,
            timer_id: non_negative(wire.timer_id, "TimerFiredEvent.timerId")?,
        })
    }
}

impl From<TimerFired> for pb::TimerFiredEvent {
    fn from(e: TimerFired) -> Self {
        pb::TimerFiredEvent {
            fire_at: Some(timestamp_to_wire(e.fire_at)),
            timer_id: e.timer_id,
        }
    }
}

// --- Events between instances ---

impl From<pb::EventSentEvent> for EventSent {
    fn from(wire: pb::EventSentEvent) -> Self {
        EventSent {
            instance_id: InstanceId(wire.instance_id),
            name: wire.name,
            input: wire.input,
        }
    }
}

impl From<EventSent> for pb::EventSentEvent {
    fn from(e: EventSent) -> Self {
        pb::EventSentEvent {
            instance_id: e.instance_id.0,
            name: e.name,
            input: e.input,
        }
    }
}

impl From<pb::EventRaisedEvent> for EventRaised {
    fn from(wire: pb::EventRaisedEvent) -> Self {
        EventRaised {
            name: wire.name,
            input: wire.input,
        }
    }
}

impl From<EventRaised> for pb::EventRaisedEvent {
    fn from(e: EventRaised) -> Self {
        pb::EventRaisedEvent {
            name: e.name,
            input: e.input,
        }
    }
}
