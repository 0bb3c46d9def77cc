//! Orchestrator actions: what a worker asks the engine to do at the end of an episode.

use serde::{Deserialize, Serialize};

use super::{
    EntityLockRequested, EntityOperationCalled, EntityOperationSignaled, EntityUnlockSent,
    FailureDetails, HistoryEvent, OrchestrationStatus, Payload, Tags, TaskScheduled, TraceContext,
};
use crate::ids::{ExecutionId, InstanceId};
use crate::time::Timestamp;

/// One action, numbered by the worker: ids are 0, 1, 2, ... per execution, and the confirming
/// history event carries the same id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrchestratorAction {
    /// The action's sequence number within the execution.
    pub id: i32,
    /// What to do.
    pub kind: ActionKind,
}

impl OrchestratorAction {
    /// The action numbered `id` that asks for `kind`.
    pub fn new(id: i32, kind: ActionKind) -> OrchestratorAction {
        OrchestratorAction { id, kind }
    }
}

/// Schedule an activity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleTask {
    /// The activity's name.
    pub name: String,
    /// Its version.
    pub version: Option<String>,
    /// Its input.
    pub input: Payload,
    /// Tags passed to the activity.
    pub tags: Tags,
    /// Trace context of the scheduling span.
    pub parent_trace_context: Option<TraceContext>,
}

impl ScheduleTask {
    /// The activity `name`, with no version, input, tags or trace context.
    pub fn new(name: impl Into<String>) -> ScheduleTask {
        ScheduleTask {
            name: name.into(),
            version: None,
            input: None,
            tags: Tags::new(),
            parent_trace_context: None,
        }
    }
}

impl From<&ScheduleTask> for TaskScheduled {
    /// The confirmation of a `ScheduleTask` action: the same activity, recorded in history.
    fn from(task: &ScheduleTask) -> TaskScheduled {
        TaskScheduled {
            name: task.name.clone(),
            version: task.version.clone(),
            input: task.input.clone(),
            parent_trace_context: task.parent_trace_context.clone(),
            tags: task.tags.clone(),
        }
    }
}

/// Start a sub-orchestration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateSubOrchestration {
    /// The child's instance id (workers always fill it in).
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

impl CreateSubOrchestration {
    /// The child `instance_id` running orchestration `name`, with no version, input, tags or
    /// trace context.
    pub fn new(instance_id: InstanceId, name: impl Into<String>) -> CreateSubOrchestration {
        CreateSubOrchestration {
            instance_id,
            name: name.into(),
            version: None,
            input: None,
            parent_trace_context: None,
            tags: Tags::new(),
        }
    }
}

/// Send an event to another instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendEvent {
    /// The target instance.
    pub instance_id: InstanceId,
    /// The target execution, if the worker named one.
    pub execution_id: Option<ExecutionId>,
    /// The event's name.
    pub name: String,
    /// The event's payload.
    pub data: Payload,
}

/// Finish the execution, or continue it as new.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompleteOrchestration {
    /// Completed, Failed, Terminated or ContinuedAsNew.
    pub status: OrchestrationStatus,
    /// The output, or the new input when continuing as new.
    pub result: Payload,
    /// Free-form details.
    pub details: Payload,
    /// The version of the new execution when continuing as new.
    pub new_version: Option<String>,
    /// Events to hand to the new execution when continuing as new.
    pub carryover_events: Vec<HistoryEvent>,
    /// Why it failed, when it did.
    pub failure: Option<FailureDetails>,
    /// Tags for the new execution when continuing as new.
    pub tags: Tags,
}

impl CompleteOrchestration {
    /// An end (or a continue-as-new) with `status` and `result`, and nothing else: no details,
    /// failure, carried-over events, new version or tags.
    pub fn new(status: OrchestrationStatus, result: Payload) -> CompleteOrchestration {
        CompleteOrchestration {
            status,
            result,
            details: None,
            new_version: None,
            carryover_events: Vec::new(),
            failure: None,
            tags: Tags::new(),
        }
    }
}

/// Terminate another instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TerminateOrchestration {
    /// The instance to terminate.
    pub instance_id: InstanceId,
    /// Its reported output.
    pub reason: Payload,
    /// Whether its running children are terminated too.
    pub recurse: bool,
}

/// A message to an entity, sent from an orchestration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntityMessage {
    /// A one-way operation.
    Signal(EntityOperationSignaled),
    /// An operation whose result comes back.
    Call(EntityOperationCalled),
    /// A lock request for a critical section.
    LockRequest(EntityLockRequested),
    /// A lock release.
    Unlock(EntityUnlockSent),
}

/// What an action asks for; one variant per action of the protocol.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ActionKind {
    /// Run an activity.
    ScheduleTask(ScheduleTask),
    /// Start a child orchestration.
    CreateSubOrchestration(CreateSubOrchestration),
    /// Fire a timer at `fire_at`.
    CreateTimer {
        /// When the timer fires.
        fire_at: Timestamp,
    },
    /// Raise an event on another instance.
    SendEvent(SendEvent),
    /// Finish or continue as new.
    CompleteOrchestration(CompleteOrchestration),
    /// Terminate another instance.
    TerminateOrchestration(TerminateOrchestration),
    /// Talk to an entity.
    SendEntityMessage(EntityMessage),
    /// Replace the history of a rewound execution.
    RewindOrchestration {
        /// The history to keep.
        new_history: Vec<HistoryEvent>,
    },
}
