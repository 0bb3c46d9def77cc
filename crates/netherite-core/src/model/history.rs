//! History events: the durable record of everything that happened to one execution.
//!
//! Every kind of the Durable Task protocol is here, entity and rewind events included, with the
//! same fields. Confirmation events (`TaskScheduled`, `TimerCreated`, `SubOrchestrationCreated`,
//! `EventSent`, the entity sends) carry the id of the action that caused them in
//! [`HistoryEvent::event_id`]; every other event has `event_id == -1`.

use serde::{Deserialize, Serialize};

use super::{FailureDetails, OrchestrationStatus, Payload, Tags};
use crate::ids::{ExecutionId, InstanceId};
use crate::time::Timestamp;

/// One entry of an execution's history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEvent {
    /// The id of the action this event confirms, or -1.
    pub event_id: i32,
    /// When the engine recorded it.
    pub timestamp: Timestamp,
    /// What happened.
    pub kind: EventKind,
}

impl HistoryEvent {
    /// The `event_id` of events that confirm no action.
    pub const NO_ID: i32 = -1;

    /// An event that confirms no action.
    pub fn new(timestamp: Timestamp, kind: EventKind) -> HistoryEvent {
        HistoryEvent {
            event_id: Self::NO_ID,
            timestamp,
            kind,
        }
    }

    /// An event confirming the action with id `action_id`.
    pub fn confirming(action_id: i32, timestamp: Timestamp, kind: EventKind) -> HistoryEvent {
        HistoryEvent {
            event_id: action_id,
            timestamp,
            kind,
        }
    }
}

/// W3C trace context of the span that caused an event.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceContext {
    /// The `traceparent` header value.
    pub trace_parent: String,
    /// The deprecated span id field, echoed back as received.
    pub span_id: String,
    /// The `tracestate` header value.
    pub trace_state: Option<String>,
}

/// The parent of a sub-orchestration: where its result must go.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParentInstance {
    /// The id of the parent's `CreateSubOrchestration` action.
    pub task_scheduled_id: i32,
    /// The parent orchestration's name.
    pub name: Option<String>,
    /// The parent orchestration's version.
    pub version: Option<String>,
    /// The parent instance.
    pub instance_id: InstanceId,
    /// The parent's execution at the time it created the child.
    pub execution_id: Option<ExecutionId>,
}

/// The first event of every execution.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionStarted {
    /// The orchestration's registered name.
    pub name: String,
    /// Its version.
    pub version: Option<String>,
    /// Its input.
    pub input: Payload,
    /// The instance this execution belongs to.
    pub instance_id: InstanceId,
    /// This execution's id.
    pub execution_id: ExecutionId,
    /// Set for sub-orchestrations.
    pub parent: Option<ParentInstance>,
    /// When the first episode may run, if the start was scheduled.
    pub scheduled_start: Option<Timestamp>,
    /// The trace context of the request that started it.
    pub parent_trace_context: Option<TraceContext>,
    /// The span id the orchestration runs under.
    pub orchestration_span_id: Option<String>,
    /// Tags given at start.
    pub tags: Tags,
}

/// The last event of a finished execution.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionCompleted {
    /// The final status.
    pub status: OrchestrationStatus,
    /// The output.
    pub result: Payload,
    /// Why it failed, when it did.
    pub failure: Option<FailureDetails>,
}

/// A request to terminate, as it arrives at the instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionTerminated {
    /// The output the terminated instance reports.
    pub input: Payload,
    /// Whether running sub-orchestrations are terminated too.
    pub recurse: bool,
}

/// An activity was scheduled (confirms a `ScheduleTask` action).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskScheduled {
    /// The activity's name.
    pub name: String,
    /// Its version.
    pub version: Option<String>,
    /// Its input.
    pub input: Payload,
    /// Trace context of the scheduling span.
    pub parent_trace_context: Option<TraceContext>,
    /// Tags for the activity.
    pub tags: Tags,
}

/// An activity returned a result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskCompleted {
    /// The id of the `ScheduleTask` action.
    pub task_scheduled_id: i32,
    /// The result.
    pub result: Payload,
}

/// An activity failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskFailed {
    /// The id of the `ScheduleTask` action.
    pub task_scheduled_id: i32,
    /// Why.
    pub failure: FailureDetails,
}

/// A sub-orchestration was created (confirms a `CreateSubOrchestration` action).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubOrchestrationCreated {
    /// The child's instance id.
    pub instance_id: InstanceId,
    /// The child's orchestration name.
    pub name: String,
    /// The child's version.
    pub version: Option<String>,
    /// The child's input.
    pub input: Payload,
    /// Trace context of the creating span.
    pub parent_trace_context: Option<TraceContext>,
    /// Tags for the child.
    pub tags: Tags,
}

/// A sub-orchestration completed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubOrchestrationCompleted {
    /// The id of the parent's `CreateSubOrchestration` action.
    pub task_scheduled_id: i32,
    /// The child's output.
    pub result: Payload,
}

/// A sub-orchestration failed or was terminated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubOrchestrationFailed {
    /// The id of the parent's `CreateSubOrchestration` action.
    pub task_scheduled_id: i32,
    /// Why.
    pub failure: FailureDetails,
}

/// A durable timer was created (confirms a `CreateTimer` action).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimerCreated {
    /// When it fires.
    pub fire_at: Timestamp,
}

/// A durable timer fired.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimerFired {
    /// Identical to the created timer's `fire_at`.
    pub fire_at: Timestamp,
    /// The id of the `CreateTimer` action.
    pub timer_id: i32,
}

/// An event was sent to another instance (confirms a `SendEvent` action).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventSent {
    /// The target instance.
    pub instance_id: InstanceId,
    /// The event's name.
    pub name: String,
    /// The event's payload.
    pub input: Payload,
}

/// An external event arrived.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRaised {
    /// The event's name (workers match it case-insensitively).
    pub name: String,
    /// The event's payload.
    pub input: Payload,
}

/// A signal to an entity: an operation whose result nobody waits for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityOperationSignaled {
    /// Unique id of this request.
    pub request_id: String,
    /// The operation's name.
    pub operation: String,
    /// When it should run, if delayed.
    pub scheduled_time: Option<Timestamp>,
    /// The operation's input.
    pub input: Payload,
    /// The entity; set in the sender's history, absent in messages.
    pub target_instance_id: Option<InstanceId>,
}

/// A call to an entity: an operation whose result goes back to the caller.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityOperationCalled {
    /// Unique id of this request; the response carries it.
    pub request_id: String,
    /// The operation's name.
    pub operation: String,
    /// When it should run, if delayed.
    pub scheduled_time: Option<Timestamp>,
    /// The operation's input.
    pub input: Payload,
    /// The caller; set in messages, absent in histories.
    pub parent_instance_id: Option<InstanceId>,
    /// The caller's execution; set in messages, absent in histories.
    pub parent_execution_id: Option<ExecutionId>,
    /// The entity; set in the sender's history, absent in messages.
    pub target_instance_id: Option<InstanceId>,
}

/// An entity call returned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityOperationCompleted {
    /// The call's request id.
    pub request_id: String,
    /// The operation's result.
    pub output: Payload,
}

/// An entity call failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityOperationFailed {
    /// The call's request id.
    pub request_id: String,
    /// Why.
    pub failure: FailureDetails,
}

/// A request to lock a set of entities for a critical section.
///
/// The request travels along `lock_set` (sorted, deduplicated): each entity locks itself, bumps
/// `position` and forwards it; the last one grants the lock to the orchestration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityLockRequested {
    /// The critical section's id.
    pub critical_section_id: String,
    /// The entities to lock, sorted and deduplicated.
    pub lock_set: Vec<InstanceId>,
    /// The index in `lock_set` of the next entity to lock.
    pub position: i32,
    /// The orchestration that asks; set in messages, absent in histories.
    pub parent_instance_id: Option<InstanceId>,
}

/// All locks of a critical section are held.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityLockGranted {
    /// The critical section's id.
    pub critical_section_id: String,
}

/// A lock was released.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityUnlockSent {
    /// The critical section's id.
    pub critical_section_id: String,
    /// The orchestration that held it; set in messages, absent in histories.
    pub parent_instance_id: Option<InstanceId>,
    /// The entity released; set in histories, absent in messages.
    pub target_instance_id: Option<InstanceId>,
}

/// A failed execution was rewound.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionRewound {
    /// Why.
    pub reason: Payload,
    /// Set when a sub-orchestration is rewound with its parent.
    pub parent_execution_id: Option<ExecutionId>,
    /// Set when a sub-orchestration is rewound with its parent.
    pub instance_id: Option<InstanceId>,
    /// Set when a sub-orchestration is rewound with its parent.
    pub parent_trace_context: Option<TraceContext>,
    /// Kept for the protocol; the engine does not use it.
    pub name: Option<String>,
    /// Kept for the protocol; the engine does not use it.
    pub version: Option<String>,
    /// Kept for the protocol; the engine does not use it.
    pub input: Payload,
    /// Kept for the protocol; the engine does not use it.
    pub parent: Option<ParentInstance>,
    /// Kept for the protocol; the engine does not use it.
    pub tags: Tags,
}

/// What a history event records; one variant per kind of the protocol.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    /// Protocol kind 3.
    ExecutionStarted(ExecutionStarted),
    /// Protocol kind 4.
    ExecutionCompleted(ExecutionCompleted),
    /// Protocol kind 5.
    ExecutionTerminated(ExecutionTerminated),
    /// Protocol kind 6.
    TaskScheduled(TaskScheduled),
    /// Protocol kind 7.
    TaskCompleted(TaskCompleted),
    /// Protocol kind 8.
    TaskFailed(TaskFailed),
    /// Protocol kind 9.
    SubOrchestrationCreated(SubOrchestrationCreated),
    /// Protocol kind 10.
    SubOrchestrationCompleted(SubOrchestrationCompleted),
    /// Protocol kind 11.
    SubOrchestrationFailed(SubOrchestrationFailed),
    /// Protocol kind 12.
    TimerCreated(TimerCreated),
    /// Protocol kind 13.
    TimerFired(TimerFired),
    /// Protocol kind 14: the first event of every episode; its timestamp is the episode's "now".
    OrchestratorStarted,
    /// Protocol kind 15.
    OrchestratorCompleted,
    /// Protocol kind 16.
    EventSent(EventSent),
    /// Protocol kind 17.
    EventRaised(EventRaised),
    /// Protocol kind 18: informational, ignored by workers.
    GenericEvent {
        /// Free-form data.
        data: Payload,
    },
    /// Protocol kind 19: kept for the protocol, never produced by the engine.
    HistoryState,
    /// Protocol kind 20: kept for the protocol; workers send a continue-as-new action instead.
    ContinueAsNew {
        /// The new input.
        input: Payload,
    },
    /// Protocol kind 21.
    ExecutionSuspended {
        /// The reason given.
        input: Payload,
    },
    /// Protocol kind 22.
    ExecutionResumed {
        /// The reason given.
        input: Payload,
    },
    /// Protocol kind 23.
    EntityOperationSignaled(EntityOperationSignaled),
    /// Protocol kind 24.
    EntityOperationCalled(EntityOperationCalled),
    /// Protocol kind 25.
    EntityOperationCompleted(EntityOperationCompleted),
    /// Protocol kind 26.
    EntityOperationFailed(EntityOperationFailed),
    /// Protocol kind 27.
    EntityLockRequested(EntityLockRequested),
    /// Protocol kind 28.
    EntityLockGranted(EntityLockGranted),
    /// Protocol kind 29.
    EntityUnlockSent(EntityUnlockSent),
    /// Protocol kind 30.
    ExecutionRewound(ExecutionRewound),
}

impl EventKind {
    /// Whether this kind confirms an orchestrator action: such an event carries the action's
    /// id in [`HistoryEvent::event_id`], and replay matches it against the pending action.
    pub fn is_confirmation(&self) -> bool {
        matches!(
            self,
            EventKind::TaskScheduled(_)
                | EventKind::TimerCreated(_)
                | EventKind::SubOrchestrationCreated(_)
                | EventKind::EventSent(_)
                | EventKind::EntityOperationSignaled(_)
                | EventKind::EntityOperationCalled(_)
                | EventKind::EntityLockRequested(_)
                | EventKind::EntityUnlockSent(_)
        )
    }

    /// The id of the action this event answers: the activity or sub-orchestration whose
    /// result it carries, or the timer that fired.
    pub fn answered_action(&self) -> Option<i32> {
        match self {
            EventKind::TaskCompleted(e) => Some(e.task_scheduled_id),
            EventKind::TaskFailed(e) => Some(e.task_scheduled_id),
            EventKind::SubOrchestrationCompleted(e) => Some(e.task_scheduled_id),
            EventKind::SubOrchestrationFailed(e) => Some(e.task_scheduled_id),
            EventKind::TimerFired(e) => Some(e.timer_id),
            _ => None,
        }
    }

    /// The protocol's field number for this kind (3 to 30).
    pub fn protocol_number(&self) -> u32 {
        use EventKind::*;
        match self {
            ExecutionStarted(_) => 3,
            ExecutionCompleted(_) => 4,
            ExecutionTerminated(_) => 5,
            TaskScheduled(_) => 6,
            TaskCompleted(_) => 7,
            TaskFailed(_) => 8,
            SubOrchestrationCreated(_) => 9,
            SubOrchestrationCompleted(_) => 10,
            SubOrchestrationFailed(_) => 11,
            TimerCreated(_) => 12,
            TimerFired(_) => 13,
            OrchestratorStarted => 14,
            OrchestratorCompleted => 15,
            EventSent(_) => 16,
            EventRaised(_) => 17,
            GenericEvent { .. } => 18,
            HistoryState => 19,
            ContinueAsNew { .. } => 20,
            ExecutionSuspended { .. } => 21,
            ExecutionResumed { .. } => 22,
            EntityOperationSignaled(_) => 23,
            EntityOperationCalled(_) => 24,
            EntityOperationCompleted(_) => 25,
            EntityOperationFailed(_) => 26,
            EntityLockRequested(_) => 27,
            EntityLockGranted(_) => 28,
            EntityUnlockSent(_) => 29,
            ExecutionRewound(_) => 30,
        }
    }
}
