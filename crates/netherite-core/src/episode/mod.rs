//! Episode application: what one orchestration episode changes.
//!
//! An episode is one run of the orchestration code over its history plus a batch of new
//! events. The worker answers with actions; [`apply_episode`] turns (history, new events,
//! actions) into the new history events, the outgoing messages, the activities and timers to
//! start, and the status change. It is a pure function: the partition state machine calls it
//! while applying a logged event, so it must give the same answer on every replay.

use crate::ids::{ExecutionId, IdGen, InstanceId};
use crate::model::{
    FailureDetails, HistoryEvent, OrchestrationStatus, OrchestratorAction, Payload, Tags,
    TaskMessage, TraceContext,
};
use crate::time::Timestamp;

/// Everything [`apply_episode`] needs to know about one episode.
#[derive(Clone, Debug)]
pub struct EpisodeInput<'a> {
    /// The orchestration instance.
    pub instance_id: &'a InstanceId,
    /// The execution the episode ran in.
    pub execution_id: &'a ExecutionId,
    /// The committed history of that execution before this episode.
    pub history: &'a [HistoryEvent],
    /// The events of this episode, as sent to the worker; the first is `OrchestratorStarted`.
    pub new_events: &'a [HistoryEvent],
    /// The worker's actions, in the order it returned them.
    pub actions: &'a [OrchestratorAction],
    /// The custom status the worker reported (replaces the previous one).
    pub custom_status: Payload,
    /// The time the episode is committed; used for timestamps of confirmation events.
    pub now: Timestamp,
}

/// An activity to run for the orchestration.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ActivityRequest {
    /// The id of the `ScheduleTask` action; the result refers to it.
    pub task_id: i32,
    /// The activity's name.
    pub name: String,
    /// Its version.
    pub version: Option<String>,
    /// Its input.
    pub input: Payload,
    /// Tags for the activity.
    pub tags: Tags,
    /// Trace context of the scheduling span.
    pub parent_trace_context: Option<TraceContext>,
}

/// A durable timer to arm; when due, `TimerFired{timer_id, fire_at}` goes to the instance.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TimerRequest {
    /// The id of the `CreateTimer` action.
    pub timer_id: i32,
    /// When it fires.
    pub fire_at: Timestamp,
}

/// The execution that replaces the current one after continue-as-new.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NextExecution {
    /// The new execution's id.
    pub execution_id: ExecutionId,
    /// The new execution's `ExecutionStarted` event.
    pub started: HistoryEvent,
    /// Events carried over; they are delivered to the new execution's first episode, after
    /// `started` and before anything else that arrived meanwhile.
    pub carryover: Vec<HistoryEvent>,
}

/// What one episode changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpisodeOutcome {
    /// Events appended to the execution's history: the new events exactly as sent, then the
    /// confirmation events of the actions, then `ExecutionCompleted` if the execution ended.
    pub appended: Vec<HistoryEvent>,
    /// Set when the episode continued as new: the history is reset and this execution begins.
    pub next_execution: Option<NextExecution>,
    /// Set when the episode rewound the execution: the history is replaced by this one.
    pub rewound_history: Option<Vec<HistoryEvent>>,
    /// Messages to other instances (sub-orchestration starts, events, terminations, parent
    /// notifications, entity operations, lock requests and releases).
    pub messages: Vec<TaskMessage>,
    /// Activities to start.
    pub activities: Vec<ActivityRequest>,
    /// Timers to arm.
    pub timers: Vec<TimerRequest>,
    /// The runtime status after the episode.
    pub status: OrchestrationStatus,
    /// The output, when the execution ended.
    pub output: Payload,
    /// Why it failed, when it did.
    pub failure: Option<FailureDetails>,
    /// The custom status after the episode.
    pub custom_status: Payload,
}

/// Applies one episode. See the module documentation for the rules.
///
/// `ids` draws the execution id of a continue-as-new.
pub fn apply_episode(input: &EpisodeInput<'_>, ids: &mut IdGen) -> EpisodeOutcome {
    let _ = (input, ids);
    todo!("episode application is being written")
}
