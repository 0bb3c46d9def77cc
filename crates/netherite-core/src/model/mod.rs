//! The vocabulary of the engine: statuses, failures, history events, orchestrator actions and
//! the messages instances send each other.
//!
//! The shapes follow the Durable Task protocol field for field, so the gRPC front door maps to
//! them one to one and a history written by one front door replays in the other. Payloads are
//! `Option<String>` (JSON text) because presence matters: "no input" and `""` are different.

mod action;
mod entity;
mod failure;
mod history;
mod message;
mod status;

pub use action::{
    ActionKind, CompleteOrchestration, CreateSubOrchestration, EntityMessage, OrchestratorAction,
    ScheduleTask, SendEvent, TerminateOrchestration,
};
pub use entity::{EntityId, EntityIdError};
pub use failure::{FAILURE_DEPTH_MAX, FailureDetails};
pub use history::{
    EntityLockGranted, EntityLockRequested, EntityOperationCalled, EntityOperationCompleted,
    EntityOperationFailed, EntityOperationSignaled, EntityUnlockSent, EventKind, EventRaised,
    EventSent, ExecutionCompleted, ExecutionRewound, ExecutionStarted, ExecutionTerminated,
    HistoryEvent, ParentInstance, SubOrchestrationCompleted, SubOrchestrationCreated,
    SubOrchestrationFailed, TaskCompleted, TaskFailed, TaskScheduled, TimerCreated, TimerFired,
    TraceContext,
};
pub use message::TaskMessage;
pub use status::OrchestrationStatus;

/// A serialized payload (JSON text); `None` means "absent", which is not the same as `""`.
pub type Payload = Option<String>;

/// Free-form string tags on instances and tasks, kept in a stable order.
pub type Tags = std::collections::BTreeMap<String, String>;
