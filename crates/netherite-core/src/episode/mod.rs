//! Episode application: what one orchestration episode changes.
//!
//! An episode is one run of the orchestration code over its history plus a batch of new
//! events. The worker answers with actions; [`apply_episode`] turns (history, new events,
//! actions) into the new history events, the outgoing messages, the activities and timers to
//! start, and the status change. It is a pure function: the partition state machine calls it
//! while applying a logged event, so it must give the same answer on every replay. Time comes
//! from [`EpisodeInput::now`] and fresh ids from the [`IdGen`] the caller seeded.
//!
//! # The rules
//!
//! **History.** The episode's new events are appended first, untouched: same order, same ids,
//! same timestamps, because the worker replays them next time and checks them one by one. After
//! them comes one confirmation event per action, in action order, whose `event_id` is the
//! action's id and whose timestamp is `now`. A worker matches a confirmation to the action it
//! is waiting for by that id alone, so the id is never renumbered.
//!
//! - *schedule task*: `TaskScheduled`; an [`ActivityRequest`] with `task_id` = the action id.
//! - *create timer*: `TimerCreated{fire_at}`; a [`TimerRequest`] with the same `fire_at`.
//! - *create sub-orchestration*: `SubOrchestrationCreated`; `ExecutionStarted` to the child,
//!   with a fresh execution id and this execution as its parent.
//! - *send event*: `EventSent`; `EventRaised` to the target (to one execution if named).
//! - *terminate*: no history event; `ExecutionTerminated{reason, recurse}` to the target.
//! - *entity signal, call, lock request, unlock*: the event as the worker wrote it; the
//!   message to the entity (a lock request to `lock_set[position]`, its lock set normalized:
//!   names lowercased, sorted, deduplicated, so every section locks in one order). In the
//!   message the target is dropped and this instance is named as the caller, lock owner or
//!   releaser.
//! - *complete*: `ExecutionCompleted`, placed after every other confirmation.
//! - *continue as new*: `ExecutionCompleted(ContinuedAsNew)`, placed last; a [`NextExecution`].
//! - *rewind*: no history event; the history is replaced by the one the worker kept.
//!
//! A sub-orchestration action with an empty instance id gets `"<parent id>:<action id as four
//! hex digits>"`, the id the protocol's reference backend derives, so it is stable on replay.
//!
//! **Completion.** A completion with a terminal status ends the execution. If the execution
//! was started as a sub-orchestration, its parent (instance and execution) receives
//! `SubOrchestrationCompleted` when the status is `Completed`, and `SubOrchestrationFailed`
//! otherwise; a termination or a failure without details gets details made up here, because
//! the parent's event requires them.
//!
//! **Continue as new.** The execution is replaced by a new one with a fresh execution id. Its
//! `ExecutionStarted` keeps the name, the parent and the trace context, takes the result as its
//! input, the new version if one was given and the new tags if any were given. The carried-over
//! events go with it; they must be `EventRaised` (the external events the old execution never
//! consumed), anything else makes the answer invalid. Actions after the continue-as-new are
//! ignored: workers may leave stale ones behind, and the old execution has nothing left to do
//! with them. The status is `Running`; `ContinuedAsNew` is never reported as an end state.
//!
//! **Status.** `Pending` while no `ExecutionStarted` has been seen, `Suspended` after an
//! `ExecutionSuspended` not yet followed by an `ExecutionResumed`, the completion's status once
//! the execution has ended, and `Running` otherwise.
//!
//! **Recursive terminate.** When the new events carry `ExecutionTerminated{recurse: true}` and
//! the execution ends in this episode, every child it created that has not reported back yet
//! receives `ExecutionTerminated{recurse: true}` with the same reason.
//!
//! **Invalid answers.** A worker is outside our control, so its answer is checked and never
//! trusted to be well formed. Two completions, a completion whose status does not end an
//! execution, a reused or negative action id, a rewind mixed with other actions, an entity
//! message without a valid entity to go to, and the like all make the answer invalid. Then no
//! action takes effect at all (a half-applied answer would be worse than none), and the
//! execution fails with a non-retriable [`FailureDetails`] of type [`INVALID_ACTION`] whose
//! message names the action and the problem. Nothing here panics on bad input.
//!
//! An episode for an execution whose history already holds its end (and no rewind since)
//! changes nothing but the history: its actions are ignored. The partition should not run
//! such episodes; this keeps a stray one harmless.

mod apply;
mod end;
#[cfg(test)]
mod tests;

use crate::ids::{ExecutionId, IdGen, InstanceId};
use crate::model::{
    EventKind, ExecutionCompleted, FailureDetails, HistoryEvent, OrchestrationStatus,
    OrchestratorAction, Payload, ScheduleTask, Tags, TaskMessage, TraceContext,
};
use crate::time::Timestamp;

use apply::Episode;

/// The `error_type` of the failure an execution gets when its worker returns invalid actions.
pub const INVALID_ACTION: &str = "InvalidAction";

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

impl ActivityRequest {
    /// The request for the activity that the `ScheduleTask` action `task_id` asks for.
    pub fn new(task_id: i32, task: &ScheduleTask) -> ActivityRequest {
        ActivityRequest {
            task_id,
            name: task.name.clone(),
            version: task.version.clone(),
            input: task.input.clone(),
            tags: task.tags.clone(),
            parent_trace_context: task.parent_trace_context.clone(),
        }
    }
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
    /// confirmation events of the actions, then `ExecutionCompleted` if the execution ended
    /// (with status `ContinuedAsNew` when it continued as new).
    pub appended: Vec<HistoryEvent>,
    /// Set when the episode continued as new: the history is reset and this execution begins.
    pub next_execution: Option<NextExecution>,
    /// Set when the episode rewound the execution: the history is replaced by this one, which
    /// already holds whatever of `appended` the worker chose to keep. Apply it after (instead
    /// of) appending.
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
/// `ids` draws the execution ids of sub-orchestrations and of a continue-as-new. It advances
/// only when the worker's answer is valid.
///
/// # Example
///
/// The first episode of an orchestration that sets a timer:
///
/// ```
/// use netherite_core::episode::{apply_episode, EpisodeInput, TimerRequest};
/// use netherite_core::ids::IdGen;
/// use netherite_core::model::{
///     ActionKind, EventKind, ExecutionStarted, HistoryEvent, OrchestrationStatus,
///     OrchestratorAction,
/// };
/// use netherite_core::{ExecutionId, InstanceId, Timestamp};
///
/// let (instance, execution) = (InstanceId::new("nap"), ExecutionId::new("e1"));
/// let now = Timestamp::new(1_700_000_000, 0);
/// let started = ExecutionStarted {
///     name: "Nap".into(),
///     version: None,
///     input: None,
///     instance_id: instance.clone(),
///     execution_id: execution.clone(),
///     parent: None,
///     scheduled_start: None,
///     parent_trace_context: None,
///     orchestration_span_id: None,
///     tags: Default::default(),
/// };
/// let new_events = [
///     HistoryEvent::new(now, EventKind::OrchestratorStarted),
///     HistoryEvent::new(now, EventKind::ExecutionStarted(started)),
/// ];
/// let fire_at = Timestamp::new(1_700_000_060, 0);
/// let actions = [OrchestratorAction { id: 0, kind: ActionKind::CreateTimer { fire_at } }];
///
/// let input = EpisodeInput {
///     instance_id: &instance,
///     execution_id: &execution,
///     history: &[],
///     new_events: &new_events,
///     actions: &actions,
///     custom_status: None,
///     now,
/// };
/// let outcome = apply_episode(&input, &mut IdGen::new(7));
///
/// assert_eq!(outcome.appended[..2], new_events);
/// assert_eq!(outcome.appended[2].event_id, 0);
/// assert_eq!(outcome.timers, [TimerRequest { timer_id: 0, fire_at }]);
/// assert_eq!(outcome.status, OrchestrationStatus::Running);
/// ```
pub fn apply_episode(input: &EpisodeInput<'_>, ids: &mut IdGen) -> EpisodeOutcome {
    if let Some(ended) = end_of(input.history.iter().chain(input.new_events)) {
        tracing::debug!(
            instance = %input.instance_id,
            execution = %input.execution_id,
            "Episode for an execution that has already ended; its actions are ignored"
        );
        return Episode::new(input).already_ended(ended);
    }

    // Apply against a copy of the id generator, so a rejected answer draws no ids.
    let mut attempt_ids = ids.clone();
    match Episode::new(input).apply_all(&mut attempt_ids) {
        Ok(episode) => {
            *ids = attempt_ids;
            episode.finish()
        }
        Err(problem) => {
            tracing::debug!(
                instance = %input.instance_id,
                execution = %input.execution_id,
                %problem,
                "Worker returned invalid actions; failing the execution"
            );
            Episode::new(input).fail(problem).finish()
        }
    }
}

/// The runtime status an execution's events describe: `Pending` until `ExecutionStarted`,
/// then `Running`, `Suspended` between `ExecutionSuspended` and `ExecutionResumed`, and the
/// final status after a terminal `ExecutionCompleted` (unless an `ExecutionRewound` follows).
pub fn status_of<'e>(events: impl IntoIterator<Item = &'e HistoryEvent>) -> OrchestrationStatus {
    let (mut started, mut suspended, mut ended) = (false, false, None);
    for event in events {
        match &event.kind {
            EventKind::ExecutionStarted(_) => started = true,
            EventKind::ExecutionCompleted(done) if done.status.is_terminal() => {
                ended = Some(done.status)
            }
            EventKind::ExecutionRewound(_) => ended = None,
            EventKind::ExecutionSuspended { .. } => suspended = true,
            EventKind::ExecutionResumed { .. } => suspended = false,
            _ => {}
        }
    }
    match (ended, started, suspended) {
        (Some(status), _, _) => status,
        (None, false, _) => OrchestrationStatus::Pending,
        (None, true, true) => OrchestrationStatus::Suspended,
        (None, true, false) => OrchestrationStatus::Running,
    }
}

/// The terminal `ExecutionCompleted` among `events`, unless a rewind came after it.
fn end_of<'e>(
    events: impl IntoIterator<Item = &'e HistoryEvent>,
) -> Option<&'e ExecutionCompleted> {
    let mut end = None;
    for event in events {
        match &event.kind {
            EventKind::ExecutionCompleted(done) if done.status.is_terminal() => end = Some(done),
            EventKind::ExecutionRewound(_) => end = None,
            _ => {}
        }
    }
    end
}
