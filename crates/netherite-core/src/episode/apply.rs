//! The worker's actions, applied one by one: each is checked, then recorded in history and
//! turned into the messages, activities and timers it asks for.
//!
//! Checking and applying are one pass. A problem stops the pass with a description; the caller
//! then throws the partly built episode away and fails the execution, so nothing of an invalid
//! answer ever leaks out.

use std::collections::BTreeSet;

use super::{ActivityRequest, EpisodeInput, EpisodeOutcome, TimerRequest};
use crate::ids::{ExecutionId, IdGen, InstanceId};
use crate::model::{
    ActionKind, CreateSubOrchestration, EntityId, EntityLockRequested, EntityMessage,
    EntityOperationCalled, EntityOperationSignaled, EntityUnlockSent, EventKind, EventRaised,
    EventSent, ExecutionCompleted, ExecutionStarted, ExecutionTerminated, HistoryEvent,
    OrchestrationStatus, OrchestratorAction, ParentInstance, ScheduleTask, SendEvent,
    SubOrchestrationCreated, TaskMessage, TaskScheduled, TerminateOrchestration, TimerCreated,
};
use crate::time::Timestamp;

/// What is wrong with a worker's answer, in words for the failure message.
pub(super) type Problem = String;

/// How the execution ends in this episode.
pub(super) struct End {
    /// The `event_id` of the `ExecutionCompleted` event: the completing action's id.
    pub(super) event_id: i32,
    /// The completion itself.
    pub(super) completed: ExecutionCompleted,
}

/// An episode being applied: the input, and the outcome built so far.
pub(super) struct Episode<'i, 'a> {
    pub(super) input: &'i EpisodeInput<'a>,
    /// The execution's `ExecutionStarted`, from the history or the new events.
    pub(super) started: Option<&'a ExecutionStarted>,
    /// Set by a completing action; recorded when the episode is finished.
    pub(super) end: Option<End>,
    pub(super) out: EpisodeOutcome,
    /// Action ids confirmed in history and not answered since, or taken by an earlier action
    /// of this episode.
    used_ids: BTreeSet<i32>,
}

impl<'i, 'a> Episode<'i, 'a> {
    /// An episode with the new events appended and no action applied yet.
    pub(super) fn new(input: &'i EpisodeInput<'a>) -> Self {
        let out = EpisodeOutcome {
            appended: input.new_events.to_vec(),
            next_execution: None,
            rewound_history: None,
            messages: Vec::new(),
            activities: Vec::new(),
            timers: Vec::new(),
            status: OrchestrationStatus::Pending,
            output: None,
            failure: None,
            custom_status: input.custom_status.clone(),
        };
        Episode {
            input,
            started: started_of(input),
            end: None,
            out,
            used_ids: confirmed_ids(input.history.iter().chain(input.new_events)),
        }
    }

    /// Applies every action that takes effect: all of them, or those up to and including the
    /// first continue-as-new.
    pub(super) fn apply_all(mut self, ids: &mut IdGen) -> Result<Self, Problem> {
        let actions = effective_actions(self.input.actions);
        for action in actions {
            self.admit(action, actions.len())
                .and_then(|()| self.apply(action, ids))
                .map_err(|problem| format!("action {}: {problem}", action.id))?;
        }
        Ok(self)
    }

    /// Checks the rules that concern an action's place among the others.
    fn admit(&mut self, action: &OrchestratorAction, count: usize) -> Result<(), Problem> {
        // Completions and rewinds confirm nothing, so their ids never meet a history event;
        // workers send -1 for the completion of a crashed orchestrator.
        let unconfirmed = matches!(
            action.kind,
            ActionKind::CompleteOrchestration(_) | ActionKind::RewindOrchestration { .. }
        );
        if action.id < 0 && !unconfirmed {
            return Err("a negative action id".into());
        }
        if !unconfirmed && !self.used_ids.insert(action.id) {
            return Err("its id is already taken by another action of this execution".into());
        }

        let completes = matches!(action.kind, ActionKind::CompleteOrchestration(_));
        if completes && self.end.is_some() {
            return Err("an earlier action already completed the execution".into());
        }
        let rewinds = matches!(action.kind, ActionKind::RewindOrchestration { .. });
        if rewinds && count != 1 {
            return Err("a rewind must be the only action of its episode".into());
        }
        Ok(())
    }

    /// Applies one admitted action.
    fn apply(&mut self, action: &OrchestratorAction, ids: &mut IdGen) -> Result<(), Problem> {
        let id = action.id;
        match &action.kind {
            ActionKind::ScheduleTask(task) => self.schedule_task(id, task),
            ActionKind::CreateTimer { fire_at } => {
                self.create_timer(id, *fire_at);
                Ok(())
            }
            ActionKind::CreateSubOrchestration(sub) => self.create_sub_orchestration(id, sub, ids),
            ActionKind::SendEvent(send) => self.send_event(id, send),
            ActionKind::TerminateOrchestration(terminate) => self.terminate(terminate),
            ActionKind::SendEntityMessage(message) => self.send_entity_message(id, message),
            ActionKind::CompleteOrchestration(complete) => self.complete(id, complete, ids),
            ActionKind::RewindOrchestration { new_history } => {
                self.out.rewound_history = Some(new_history.clone());
                Ok(())
            }
        }
    }

    fn schedule_task(&mut self, id: i32, task: &ScheduleTask) -> Result<(), Problem> {
        if task.name.is_empty() {
            return Err("ScheduleTask names no activity".into());
        }
        self.confirm(id, EventKind::TaskScheduled(TaskScheduled::from(task)));
        self.out.activities.push(ActivityRequest::new(id, task));
        Ok(())
    }

    fn create_timer(&mut self, id: i32, fire_at: Timestamp) {
        self.confirm(id, EventKind::TimerCreated(TimerCreated { fire_at }));
        self.out.timers.push(TimerRequest {
            timer_id: id,
            fire_at,
        });
    }

    fn create_sub_orchestration(
        &mut self,
        id: i32,
        sub: &CreateSubOrchestration,
        ids: &mut IdGen,
    ) -> Result<(), Problem> {
        if sub.name.is_empty() {
            return Err("CreateSubOrchestration names no orchestration".into());
        }
        let child = self.child_id(id, &sub.instance_id)?;
        self.confirm(
            id,
            EventKind::SubOrchestrationCreated(SubOrchestrationCreated {
                instance_id: child.clone(),
                name: sub.name.clone(),
                version: sub.version.clone(),
                input: sub.input.clone(),
                parent_trace_context: sub.parent_trace_context.clone(),
                tags: sub.tags.clone(),
            }),
        );

        let started = ExecutionStarted {
            name: sub.name.clone(),
            version: sub.version.clone(),
            input: sub.input.clone(),
            instance_id: child.clone(),
            execution_id: ids.next_execution_id(),
            parent: Some(self.as_parent(id)),
            scheduled_start: None,
            parent_trace_context: sub.parent_trace_context.clone(),
            orchestration_span_id: None,
            tags: sub.tags.clone(),
        };
        self.send(child, None, EventKind::ExecutionStarted(started));
        Ok(())
    }

    /// The child's instance id: the one asked for, or one derived from this instance's id and
    /// the action id when the worker left it empty.
    fn child_id(&self, id: i32, asked: &InstanceId) -> Result<InstanceId, Problem> {
        let child = if asked.as_str().is_empty() {
            InstanceId(format!("{}:{:04x}", self.input.instance_id, id))
        } else {
            asked.clone()
        };
        if &child == self.input.instance_id {
            return Err("a sub-orchestration cannot have its parent's instance id".into());
        }
        if child.is_entity() {
            return Err(format!("sub-orchestration id {child} is an entity id"));
        }
        Ok(child)
    }

    /// This execution, as the parent of the child created by action `id`.
    fn as_parent(&self, id: i32) -> ParentInstance {
        ParentInstance {
            task_scheduled_id: id,
            name: self.started.map(|started| started.name.clone()),
            version: self.started.and_then(|started| started.version.clone()),
            instance_id: self.input.instance_id.clone(),
            execution_id: Some(self.input.execution_id.clone()),
        }
    }

    fn send_event(&mut self, id: i32, send: &SendEvent) -> Result<(), Problem> {
        if send.instance_id.as_str().is_empty() {
            return Err("SendEvent names no target instance".into());
        }
        self.confirm(
            id,
            EventKind::EventSent(EventSent {
                instance_id: send.instance_id.clone(),
                name: send.name.clone(),
                input: send.data.clone(),
            }),
        );
        let raised = EventRaised {
            name: send.name.clone(),
            input: send.data.clone(),
        };
        self.send(
            send.instance_id.clone(),
            send.execution_id.clone(),
            EventKind::EventRaised(raised),
        );
        Ok(())
    }

    fn terminate(&mut self, terminate: &TerminateOrchestration) -> Result<(), Problem> {
        if terminate.instance_id.as_str().is_empty() {
            return Err("TerminateOrchestration names no target instance".into());
        }
        let terminated = ExecutionTerminated {
            input: terminate.reason.clone(),
            recurse: terminate.recurse,
        };
        self.send(
            terminate.instance_id.clone(),
            None,
            EventKind::ExecutionTerminated(terminated),
        );
        Ok(())
    }

    fn send_entity_message(&mut self, id: i32, message: &EntityMessage) -> Result<(), Problem> {
        let (target, sent) =
            entity_route(message, self.input.instance_id, self.input.execution_id)?;
        let recorded = match message {
            EntityMessage::Signal(signal) => EventKind::EntityOperationSignaled(signal.clone()),
            EntityMessage::Call(call) => EventKind::EntityOperationCalled(call.clone()),
            EntityMessage::LockRequest(request) => EventKind::EntityLockRequested(request.clone()),
            EntityMessage::Unlock(release) => EventKind::EntityUnlockSent(release.clone()),
        };
        self.confirm(id, recorded);
        self.send(target, None, sent);
        Ok(())
    }

    /// Appends the confirmation of action `id` to the history.
    pub(super) fn confirm(&mut self, id: i32, kind: EventKind) {
        let event = HistoryEvent::confirming(id, self.input.now, kind);
        self.out.appended.push(event);
    }

    /// Queues a message, stamped with the episode's time.
    pub(super) fn send(
        &mut self,
        target: InstanceId,
        execution: Option<ExecutionId>,
        kind: EventKind,
    ) {
        let message = TaskMessage {
            target,
            target_execution: execution,
            event: HistoryEvent::new(self.input.now, kind),
        };
        self.out.messages.push(message);
    }
}

/// The actions that take effect: everything up to and including the first continue-as-new.
fn effective_actions(actions: &[OrchestratorAction]) -> &[OrchestratorAction] {
    let continues = |action: &OrchestratorAction| match &action.kind {
        ActionKind::CompleteOrchestration(complete) => {
            complete.status == OrchestrationStatus::ContinuedAsNew
        }
        _ => false,
    };
    match actions.iter().position(continues) {
        Some(last) => &actions[..=last],
        None => actions,
    }
}

/// The execution's `ExecutionStarted`: in the history, or among the new events of its first
/// episode.
fn started_of<'a>(input: &EpisodeInput<'a>) -> Option<&'a ExecutionStarted> {
    let history: &'a [HistoryEvent] = input.history;
    let new_events: &'a [HistoryEvent] = input.new_events;
    history
        .iter()
        .chain(new_events)
        .find_map(|event| match &event.kind {
            EventKind::ExecutionStarted(started) => Some(started),
            _ => None,
        })
}

/// The ids of the actions whose confirmations are in `history`.
fn confirmed_ids<'e>(events: impl IntoIterator<Item = &'e HistoryEvent>) -> BTreeSet<i32> {
    let mut ids = BTreeSet::new();
    for event in events {
        if event.kind.is_confirmation() && event.event_id >= 0 {
            ids.insert(event.event_id);
        } else if let Some(answered) = event.kind.answered_action() {
            // The Python SDK schedules a retry of a failed activity or sub-orchestration
            // under the id of the first attempt, once that attempt has its answer.
            ids.remove(&answered);
        }
    }
    ids
}

/// Where an entity message goes and the event it arrives as.
///
/// In history an entity event names its target; in a message it names the sender instead, so
/// the entity knows whom to answer or who holds its lock. Targets are normalized to the
/// canonical `@name@key` form, so `@Counter@a` and `@counter@a` reach the same entity.
fn entity_route(
    message: &EntityMessage,
    instance: &InstanceId,
    execution: &ExecutionId,
) -> Result<(InstanceId, EventKind), Problem> {
    match message {
        EntityMessage::Signal(signal) => {
            let target = entity_target(signal.target_instance_id.as_ref(), "entity signal")?;
            let sent = EntityOperationSignaled {
                target_instance_id: None,
                ..signal.clone()
            };
            Ok((target, EventKind::EntityOperationSignaled(sent)))
        }
        EntityMessage::Call(call) => {
            let target = entity_target(call.target_instance_id.as_ref(), "entity call")?;
            let sent = EntityOperationCalled {
                parent_instance_id: Some(instance.clone()),
                parent_execution_id: Some(execution.clone()),
                target_instance_id: None,
                ..call.clone()
            };
            Ok((target, EventKind::EntityOperationCalled(sent)))
        }
        EntityMessage::LockRequest(request) => lock_route(request, instance),
        EntityMessage::Unlock(release) => {
            let target = entity_target(release.target_instance_id.as_ref(), "entity unlock")?;
            let sent = EntityUnlockSent {
                parent_instance_id: Some(instance.clone()),
                target_instance_id: None,
                ..release.clone()
            };
            Ok((target, EventKind::EntityUnlockSent(sent)))
        }
    }
}

/// A lock request goes to the entity at its position in the normalized lock set.
///
/// Every section must lock its entities in one global order, or two sections can deadlock.
/// Workers send the set sorted, but sorted by the names they wrote; after the names are
/// lowercased that order may no longer hold, so the set is sorted (and deduplicated) again.
fn lock_route(
    request: &EntityLockRequested,
    instance: &InstanceId,
) -> Result<(InstanceId, EventKind), Problem> {
    let mut lock_set = request
        .lock_set
        .iter()
        .map(|member| canonical_entity(member, "entity lock request"))
        .collect::<Result<Vec<_>, _>>()?;
    lock_set.sort();
    lock_set.dedup();
    let target = usize::try_from(request.position)
        .ok()
        .and_then(|position| lock_set.get(position))
        .cloned()
        .ok_or_else(|| {
            let (position, len) = (request.position, lock_set.len());
            format!("entity lock request position {position} is outside its lock set of {len}")
        })?;
    let sent = EntityLockRequested {
        lock_set,
        parent_instance_id: Some(instance.clone()),
        ..request.clone()
    };
    Ok((target, EventKind::EntityLockRequested(sent)))
}

fn entity_target(target: Option<&InstanceId>, what: &str) -> Result<InstanceId, Problem> {
    let target = target.ok_or_else(|| format!("{what} names no target entity"))?;
    canonical_entity(target, what)
}

fn canonical_entity(id: &InstanceId, what: &str) -> Result<InstanceId, Problem> {
    EntityId::parse(id.as_str())
        .map(|entity| entity.instance_id())
        .map_err(|error| format!("{what}: {error}"))
}
