//! The replay state of one execution, shared by its context, its durable tasks and the
//! executor: the actions asked for, the tasks waiting for results, the events nobody has
//! waited for yet.
//!
//! # Action ids and confirmations
//!
//! Every call that asks the engine for something (an activity, a timer, a sub-orchestration,
//! an event to send) takes the next action id: 0, 1, 2, ... per execution, in the order the
//! orchestration code makes the calls. Replay re-runs the same code, so it makes the same calls
//! in the same order and draws the same ids. The history holds one confirmation event per
//! action done in an earlier episode, carrying the action's id; meeting it, the state takes the
//! action off the pending list after checking that it is the same kind of thing with the same
//! name. What is still pending when the episode's events run out is new: the episode's answer.
//!
//! # Results
//!
//! A task that waits for a result owns a *slot*. A completion event names its action id; the
//! slot of that action is filled and the waker of whoever polled it is woken. The slot keeps
//! the position of the completing event among the episode's events, so a race between tasks
//! can be decided by which completion the history holds first.
//!
//! External events have no action id: they are matched by name, case-insensitively, to the
//! oldest waiting slot of that name, or kept in arrival order until someone waits for them.

use std::collections::{BTreeMap, VecDeque};
use std::task::{Poll, Waker};

use netherite_core::model::{ActionKind, EventKind, FailureDetails, HistoryEvent};
use netherite_core::model::{OrchestratorAction, Payload};
use netherite_core::{ExecutionId, InstanceId, Timestamp};

/// The `error_type` of the failure of an orchestration that did not replay its history.
pub const NON_DETERMINISTIC: &str = "NonDeterministicOrchestration";
/// The `error_type` of the failure of an orchestration whose history is inconsistent.
pub const INVALID_HISTORY: &str = "InvalidHistory";

/// What a task resolves to: a JSON payload or a failure.
pub(crate) type Outcome = Result<Payload, FailureDetails>;

/// What a slot waits for; completion events must name an action of the matching kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SlotKind {
    Activity,
    SubOrchestration,
    Timer,
    Event,
}

enum SlotState {
    /// No result yet; the waker of the last poll, if any.
    Waiting(Option<Waker>),
    /// The result, and the position of the event that delivered it.
    Done { outcome: Outcome, order: u64 },
    /// An event waiter dropped before its event came.
    Abandoned,
}

struct Slot {
    kind: SlotKind,
    /// What the task is, for messages: "activity 'SayHello' (action 3)".
    label: String,
    state: SlotState,
}

/// The state of one execution while it replays.
pub(crate) struct ReplayState {
    pub(crate) instance_id: InstanceId,
    pub(crate) execution_id: ExecutionId,
    /// The timestamp of the `OrchestratorStarted` event of the batch being processed.
    pub(crate) now: Timestamp,
    /// True while the events being processed come from the committed history.
    pub(crate) is_replaying: bool,
    /// The position, among the episode's events (past then new), of the one being processed.
    pub(crate) order: u64,
    /// The custom status the orchestration last set.
    pub(crate) custom_status: Payload,
    next_action_id: i32,
    /// Actions asked for and not (yet) confirmed by a history event, by id.
    pending: BTreeMap<i32, OrchestratorAction>,
    slots: Vec<Slot>,
    /// The slot of each action whose result has not arrived yet.
    awaited: BTreeMap<i32, usize>,
    /// Event waiters by lowercased name, oldest first.
    waiters: BTreeMap<String, VecDeque<usize>>,
    /// `EventRaised` events nobody waited for, with their positions, in arrival order.
    buffered: Vec<(u64, HistoryEvent)>,
    guids_drawn: u64,
    continue_as_new: Option<Payload>,
    /// Set when the orchestration must fail whatever its code does next.
    fatal: Option<FailureDetails>,
}

impl ReplayState {
    /// The state of an execution before any event was processed.
    pub(crate) fn new(instance_id: InstanceId, execution_id: ExecutionId) -> Self {
        ReplayState {
            instance_id,
            execution_id,
            now: Timestamp::EPOCH,
            is_replaying: false,
            order: 0,
            custom_status: None,
            next_action_id: 0,
            pending: BTreeMap::new(),
            slots: Vec::new(),
            awaited: BTreeMap::new(),
            waiters: BTreeMap::new(),
            buffered: Vec::new(),
            guids_drawn: 0,
            continue_as_new: None,
            fatal: None,
        }
    }

    /// Records a new action built by `build` from its id and returns the id.
    pub(crate) fn push_action(&mut self, build: impl FnOnce(i32) -> ActionKind) -> i32 {
        let id = self.next_action_id;
        match id.checked_add(1) {
            Some(next) => self.next_action_id = next,
            None => self.set_fatal(FailureDetails::new(
                INVALID_HISTORY,
                "the orchestration asked for more actions than an execution can number",
            )),
        }
        let kind = build(id);
        self.pending.insert(id, OrchestratorAction { id, kind });
        id
    }

    /// Records a new action whose result will fill a slot; returns the slot.
    pub(crate) fn schedule(
        &mut self,
        kind: SlotKind,
        build: impl FnOnce(i32) -> ActionKind,
    ) -> usize {
        let id = self.push_action(build);
        let label = match self.pending.get(&id) {
            Some(action) => format!("{} (action {id})", describe_task(&action.kind)),
            None => format!("action {id}"),
        };
        let slot = self.add_slot(kind, label, SlotState::Waiting(None));
        self.awaited.insert(id, slot);
        slot
    }

    /// A slot that failed before anything was asked of the engine (e.g. unserializable input).
    pub(crate) fn failed_slot(
        &mut self,
        kind: SlotKind,
        label: String,
        failure: FailureDetails,
    ) -> usize {
        let done = SlotState::Done {
            outcome: Err(failure),
            order: self.order,
        };
        self.add_slot(kind, label, done)
    }

    /// A slot for the next external event called `name`: filled at once from the buffer if
    /// such an event already arrived, else when one does.
    pub(crate) fn wait_event(&mut self, name: &str) -> usize {
        let key = name.to_lowercase();
        let label = format!("external event '{name}'");
        let arrived = self
            .buffered
            .iter()
            .position(|(_, event)| raised_key(event).as_deref() == Some(key.as_str()));
        if let Some(index) = arrived {
            let (order, event) = self.buffered.remove(index);
            let outcome = Ok(raised_input(&event));
            return self.add_slot(SlotKind::Event, label, SlotState::Done { outcome, order });
        }
        let slot = self.add_slot(SlotKind::Event, label, SlotState::Waiting(None));
        self.waiters.entry(key).or_default().push_back(slot);
        slot
    }

    fn add_slot(&mut self, kind: SlotKind, label: String, state: SlotState) -> usize {
        self.slots.push(Slot { kind, label, state });
        self.slots.len() - 1
    }

    /// The slot's outcome if it has one; otherwise remembers `waker` for when it comes.
    pub(crate) fn poll_slot(&mut self, slot: usize, waker: &Waker) -> Poll<Outcome> {
        let Some(slot) = self.slots.get_mut(slot) else {
            return Poll::Pending;
        };
        match &mut slot.state {
            SlotState::Done { outcome, .. } => Poll::Ready(outcome.clone()),
            SlotState::Waiting(waiting) => {
                *waiting = Some(waker.clone());
                Poll::Pending
            }
            SlotState::Abandoned => Poll::Pending,
        }
    }

    /// The position of the event that filled the slot, once it is filled.
    pub(crate) fn completed_at(&self, slot: usize) -> Option<u64> {
        match self.slots.get(slot).map(|slot| &slot.state) {
            Some(SlotState::Done { order, .. }) => Some(*order),
            _ => None,
        }
    }

    /// What the slot's task is, for messages.
    pub(crate) fn label(&self, slot: usize) -> &str {
        self.slots
            .get(slot)
            .map_or("a task", |slot| slot.label.as_str())
    }

    /// Forgets the waiter of a dropped task, so that an event it never received goes to the
    /// next waiter instead of being lost.
    pub(crate) fn abandon(&mut self, slot: usize) {
        let Some(entry) = self.slots.get_mut(slot) else {
            return;
        };
        match (&entry.state, entry.kind) {
            (SlotState::Waiting(_), SlotKind::Event) => {
                entry.state = SlotState::Abandoned;
                for queue in self.waiters.values_mut() {
                    queue.retain(|&waiting| waiting != slot);
                }
            }
            (SlotState::Waiting(_), _) => entry.state = SlotState::Waiting(None),
            _ => {}
        }
    }

    /// Takes the action a confirmation event confirms off the pending list.
    ///
    /// A confirmation with no pending action of its id, or of another kind or name, means the
    /// code did not ask for what its earlier run asked for: the orchestration is not
    /// deterministic, and the failure says where.
    pub(crate) fn confirm(&mut self, event: &HistoryEvent) -> Result<(), FailureDetails> {
        let id = event.event_id;
        let recorded = describe_event(&event.kind);
        let Some(action) = self.pending.get(&id) else {
            return Err(non_deterministic(format!(
                "action {id} is {recorded} in the history, but the orchestration did not ask \
                 for it"
            )));
        };
        if !confirms(&event.kind, &action.kind) {
            let asked = describe_action(&action.kind);
            return Err(non_deterministic(format!(
                "action {id} is {recorded} in the history, but the orchestration asked for \
                 {asked}"
            )));
        }
        self.pending.remove(&id);
        Ok(())
    }

    /// Fills the slot of action `id` with the outcome of a completion event, and returns the
    /// waker to wake once the state is no longer borrowed.
    ///
    /// A completion for an action nobody waits for (a duplicate, or one for an action this
    /// execution never had) is ignored. A completion of the wrong kind (a `TaskCompleted` for
    /// a timer) means the history is inconsistent.
    pub(crate) fn resolve(
        &mut self,
        id: i32,
        kind: SlotKind,
        outcome: Outcome,
    ) -> Result<Option<Waker>, FailureDetails> {
        let Some(&slot) = self.awaited.get(&id) else {
            tracing::debug!(
                action = id,
                "Completion for an action nobody waits for; ignored"
            );
            return Ok(None);
        };
        let Some(entry) = self.slots.get(slot) else {
            return Ok(None);
        };
        if entry.kind != kind {
            let message = format!(
                "a {kind:?} completion refers to action {id}, which is {}",
                entry.label
            );
            return Err(FailureDetails::new(INVALID_HISTORY, message));
        }
        self.awaited.remove(&id);
        Ok(self.fill(slot, outcome))
    }

    /// Hands an `EventRaised` to the oldest waiter of its name, or keeps it for later; returns
    /// the waker to wake.
    pub(crate) fn deliver(&mut self, event: &HistoryEvent) -> Option<Waker> {
        let key = raised_key(event)?;
        let waiter = self.waiters.get_mut(&key).and_then(VecDeque::pop_front);
        match waiter {
            Some(slot) => self.fill(slot, Ok(raised_input(event))),
            None => {
                self.buffered.push((self.order, event.clone()));
                None
            }
        }
    }

    /// Fills a waiting slot, stamped with the current event's position; returns its waker.
    fn fill(&mut self, slot: usize, outcome: Outcome) -> Option<Waker> {
        let entry = self.slots.get_mut(slot)?;
        let SlotState::Waiting(waker) = &mut entry.state else {
            return None;
        };
        let waker = waker.take();
        entry.state = SlotState::Done {
            outcome,
            order: self.order,
        };
        waker
    }

    /// The pending actions in id order, leaving none.
    pub(crate) fn take_pending(&mut self) -> Vec<OrchestratorAction> {
        std::mem::take(&mut self.pending).into_values().collect()
    }

    /// The oldest pending action, if any.
    pub(crate) fn first_pending(&self) -> Option<&OrchestratorAction> {
        self.pending.values().next()
    }

    /// The id the next action would get; a completion takes it.
    pub(crate) fn next_action_id(&self) -> i32 {
        self.next_action_id
    }

    /// The events that arrived and were never waited for, in arrival order, leaving none.
    pub(crate) fn take_buffered_events(&mut self) -> Vec<HistoryEvent> {
        let buffered = std::mem::take(&mut self.buffered);
        buffered.into_iter().map(|(_, event)| event).collect()
    }

    /// Keeps an event that arrived after the orchestration finished, for a continue-as-new.
    pub(crate) fn keep_event(&mut self, event: &HistoryEvent) {
        self.buffered.push((self.order, event.clone()));
    }

    /// Asks to continue as new with `input`; the first request counts.
    pub(crate) fn request_continue_as_new(&mut self, input: Payload) {
        self.continue_as_new.get_or_insert(input);
    }

    /// The continue-as-new request, if one was made.
    pub(crate) fn take_continue_as_new(&mut self) -> Option<Payload> {
        self.continue_as_new.take()
    }

    /// Makes the orchestration fail with `failure`; the first one counts.
    pub(crate) fn set_fatal(&mut self, failure: FailureDetails) {
        self.fatal.get_or_insert(failure);
    }

    /// The fatal failure, if one was set.
    pub(crate) fn take_fatal(&mut self) -> Option<FailureDetails> {
        self.fatal.take()
    }

    /// How many GUIDs the execution drew before this one, counting up.
    pub(crate) fn draw_guid(&mut self) -> u64 {
        let drawn = self.guids_drawn;
        self.guids_drawn += 1;
        drawn
    }
}

/// A non-retriable failure saying the orchestration did not replay its history.
pub(crate) fn non_deterministic(problem: String) -> FailureDetails {
    let message = format!("non-deterministic orchestration: {problem}");
    let mut failure = FailureDetails::new(NON_DETERMINISTIC, message);
    failure.is_non_retriable = true;
    failure
}

/// Whether the history event `recorded` confirms the action `asked`.
///
/// The kind must match and so must the name, where there is one; an event sent must also go
/// to the same instance. Timer deadlines are not compared: they derive from the replayed clock.
fn confirms(recorded: &EventKind, asked: &ActionKind) -> bool {
    use netherite_core::model::EntityMessage as M;
    match (recorded, asked) {
        (EventKind::TaskScheduled(event), ActionKind::ScheduleTask(task)) => {
            event.name == task.name
        }
        (EventKind::TimerCreated(_), ActionKind::CreateTimer { .. }) => true,
        (EventKind::SubOrchestrationCreated(event), ActionKind::CreateSubOrchestration(sub)) => {
            event.name == sub.name
        }
        (EventKind::EventSent(event), ActionKind::SendEvent(send)) => {
            event.name == send.name && event.instance_id == send.instance_id
        }
        (EventKind::EntityOperationSignaled(_), ActionKind::SendEntityMessage(M::Signal(_)))
        | (EventKind::EntityOperationCalled(_), ActionKind::SendEntityMessage(M::Call(_)))
        | (EventKind::EntityLockRequested(_), ActionKind::SendEntityMessage(M::LockRequest(_)))
        | (EventKind::EntityUnlockSent(_), ActionKind::SendEntityMessage(M::Unlock(_))) => true,
        _ => false,
    }
}

/// An action in words, as in a non-determinism message: "ScheduleTask 'SayHello'".
pub(crate) fn describe_action(kind: &ActionKind) -> String {
    match kind {
        ActionKind::ScheduleTask(task) => format!("ScheduleTask '{}'", task.name),
        ActionKind::CreateSubOrchestration(sub) => {
            format!("CreateSubOrchestration '{}'", sub.name)
        }
        ActionKind::CreateTimer { fire_at } => format!("CreateTimer at {fire_at}"),
        ActionKind::SendEvent(send) => {
            format!("SendEvent '{}' to '{}'", send.name, send.instance_id)
        }
        ActionKind::CompleteOrchestration(complete) => {
            format!("CompleteOrchestration {:?}", complete.status)
        }
        ActionKind::TerminateOrchestration(terminate) => {
            format!("TerminateOrchestration '{}'", terminate.instance_id)
        }
        ActionKind::SendEntityMessage(_) => "SendEntityMessage".to_string(),
        ActionKind::RewindOrchestration { .. } => "RewindOrchestration".to_string(),
    }
}

/// A confirmation event in words: "TaskScheduled 'SayHello'".
fn describe_event(kind: &EventKind) -> String {
    match kind {
        EventKind::TaskScheduled(event) => format!("TaskScheduled '{}'", event.name),
        EventKind::TimerCreated(event) => format!("TimerCreated at {}", event.fire_at),
        EventKind::SubOrchestrationCreated(event) => {
            format!("SubOrchestrationCreated '{}'", event.name)
        }
        EventKind::EventSent(event) => {
            format!("EventSent '{}' to '{}'", event.name, event.instance_id)
        }
        EventKind::EntityOperationSignaled(_) => "EntityOperationSignaled".to_string(),
        EventKind::EntityOperationCalled(_) => "EntityOperationCalled".to_string(),
        EventKind::EntityLockRequested(_) => "EntityLockRequested".to_string(),
        EventKind::EntityUnlockSent(_) => "EntityUnlockSent".to_string(),
        other => format!("an event of protocol kind {}", other.protocol_number()),
    }
}

/// A task in words, for its label: "activity 'SayHello'".
fn describe_task(kind: &ActionKind) -> String {
    match kind {
        ActionKind::ScheduleTask(task) => format!("activity '{}'", task.name),
        ActionKind::CreateSubOrchestration(sub) => {
            format!("sub-orchestration '{}' ('{}')", sub.name, sub.instance_id)
        }
        ActionKind::CreateTimer { fire_at } => format!("timer at {fire_at}"),
        other => describe_action(other),
    }
}

/// The lowercased name of an `EventRaised`, the key waiters are matched by.
fn raised_key(event: &HistoryEvent) -> Option<String> {
    match &event.kind {
        EventKind::EventRaised(raised) => Some(raised.name.to_lowercase()),
        _ => None,
    }
}

fn raised_input(event: &HistoryEvent) -> Payload {
    match &event.kind {
        EventKind::EventRaised(raised) => raised.input.clone(),
        _ => None,
    }
}
