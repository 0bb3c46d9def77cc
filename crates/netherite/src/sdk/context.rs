//! The orchestration context: everything an orchestration may ask of the world.
//!
//! Orchestration code is re-run from the start in every episode, so it must be deterministic:
//! the same history must lead it to make the same calls in the same order. The context is the
//! one door to anything that varies (time, ids, results of work done elsewhere), and every
//! answer it gives comes from the history, so a replay sees exactly what the first run saw.
//! The context is cheap to clone; clones share one execution's state. It is not `Send`: an
//! execution runs on one thread, and its tasks must not escape to others.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use netherite_core::model::{ActionKind, CreateSubOrchestration, Payload, ScheduleTask};
use netherite_core::model::{SendEvent, Tags};
use netherite_core::{ExecutionId, InstanceId, Timestamp};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::guid::name_based_guid;
use super::payload::{encode, serialization_failure};
use super::state::{ReplayState, SlotKind};
use super::task::{ContinueAsNew, Durable, DurableTask, Select2, Timer, WhenAny};
use crate::Error;

/// When a durable timer fires: at a point in time, or after a delay from the orchestration's
/// current time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FireAt {
    /// At this time.
    At(Timestamp),
    /// This long after [`OrchestrationContext::current_utc_datetime`].
    After(Duration),
}

impl From<Timestamp> for FireAt {
    fn from(at: Timestamp) -> Self {
        FireAt::At(at)
    }
}

impl From<Duration> for FireAt {
    fn from(delay: Duration) -> Self {
        FireAt::After(delay)
    }
}

/// The handle an orchestration uses to schedule work, wait, and read the replayed clock.
#[derive(Clone)]
pub struct OrchestrationContext {
    state: Rc<RefCell<ReplayState>>,
}

impl OrchestrationContext {
    pub(crate) fn new(state: Rc<RefCell<ReplayState>>) -> Self {
        OrchestrationContext { state }
    }

    /// The instance this orchestration runs as.
    pub fn instance_id(&self) -> InstanceId {
        self.state.borrow().instance_id.clone()
    }

    /// The current execution of the instance (continue-as-new starts a new one).
    pub fn execution_id(&self) -> ExecutionId {
        self.state.borrow().execution_id.clone()
    }

    /// Whether the code is re-running over history it already processed.
    ///
    /// True while the executor replays the committed history, false once it processes the
    /// episode's new events. Use it to keep logs and metrics from repeating on every replay,
    /// never to change what the orchestration does.
    pub fn is_replaying(&self) -> bool {
        self.state.borrow().is_replaying
    }

    /// The orchestration's notion of now: the time at which the engine started the episode
    /// that delivered the event being processed (its `OrchestratorStarted` timestamp).
    ///
    /// It is the same on every replay, which a real clock would not be.
    pub fn current_utc_datetime(&self) -> Timestamp {
        self.state.borrow().now
    }

    /// Schedules activity `name` with `input`; the task resolves to its result.
    ///
    /// An input that does not serialize fails the task at once and schedules nothing.
    pub fn call_activity<O: DeserializeOwned>(
        &self,
        name: &str,
        input: impl Serialize,
    ) -> DurableTask<O> {
        match encode(&input, &format!("the input of activity '{name}'")) {
            Ok(payload) => self.schedule_activity(name, payload),
            Err(error) => self.failed(SlotKind::Activity, format!("activity '{name}'"), &error),
        }
    }

    /// Schedules activity `name` with an input that is already a payload.
    pub(crate) fn schedule_activity<O>(&self, name: &str, input: Payload) -> DurableTask<O> {
        let task = ScheduleTask {
            name: name.to_string(),
            version: None,
            input,
            tags: Tags::new(),
            parent_trace_context: None,
        };
        let slot = (self.state.borrow_mut())
            .schedule(SlotKind::Activity, |_| ActionKind::ScheduleTask(task));
        DurableTask::new(self.state.clone(), slot)
    }

    /// Starts orchestration `name` as a child with `input`; the task resolves to its output.
    ///
    /// Without an instance id the child gets `"<this instance id>:<action id as four hex
    /// digits>"`, which replay derives again identically.
    pub fn call_sub_orchestration<O: DeserializeOwned>(
        &self,
        name: &str,
        instance_id: Option<&str>,
        input: impl Serialize,
    ) -> DurableTask<O> {
        let what = format!("sub-orchestration '{name}'");
        let input = match encode(&input, &format!("the input of {what}")) {
            Ok(input) => input,
            Err(error) => return self.failed(SlotKind::SubOrchestration, what, &error),
        };
        let mut state = self.state.borrow_mut();
        let parent = state.instance_id.clone();
        let slot = state.schedule(SlotKind::SubOrchestration, |id| {
            let child = instance_id.map_or_else(|| format!("{parent}:{id:04x}"), str::to_string);
            ActionKind::CreateSubOrchestration(CreateSubOrchestration {
                instance_id: InstanceId::new(child),
                name: name.to_string(),
                version: None,
                input,
                parent_trace_context: None,
                tags: Tags::new(),
            })
        });
        drop(state);
        DurableTask::new(self.state.clone(), slot)
    }

    /// Creates a durable timer that fires at a time or after a delay (a [`Timestamp`] or a
    /// [`Duration`]); a delay counts from [`current_utc_datetime`](Self::current_utc_datetime).
    pub fn create_timer(&self, fire_at: impl Into<FireAt>) -> Timer {
        let mut state = self.state.borrow_mut();
        let fire_at = match fire_at.into() {
            FireAt::At(at) => at,
            FireAt::After(delay) => state.now.saturating_add(delay),
        };
        let slot = state.schedule(SlotKind::Timer, |_| ActionKind::CreateTimer { fire_at });
        drop(state);
        Timer::new(self.state.clone(), slot)
    }

    /// Waits for the next external event called `name` (matched case-insensitively) and
    /// resolves to its payload.
    ///
    /// Events that arrive while nobody waits for them are kept, in order, for the next waiter
    /// of their name; each event goes to exactly one waiter, the oldest. Waiting takes no
    /// action id: nothing is asked of the engine.
    pub fn wait_for_external_event<T: DeserializeOwned>(&self, name: &str) -> DurableTask<T> {
        let slot = self.state.borrow_mut().wait_event(name);
        DurableTask::new(self.state.clone(), slot)
    }

    /// Raises event `name` with `data` on another instance; nothing to wait for.
    ///
    /// Returns an error, and sends nothing, if `data` does not serialize.
    pub fn send_event(
        &self,
        instance_id: &str,
        name: &str,
        data: impl Serialize,
    ) -> Result<(), Error> {
        let data = encode(&data, &format!("the data of event '{name}'"))?;
        let send = SendEvent {
            instance_id: InstanceId::new(instance_id),
            execution_id: None,
            name: name.to_string(),
            data,
        };
        self.state
            .borrow_mut()
            .push_action(|_| ActionKind::SendEvent(send));
        Ok(())
    }

    /// Ends this execution and starts a new one of the same orchestration with `input`.
    ///
    /// External events that arrived and were never waited for are carried over to the new
    /// execution, in order, so no event is lost. Actions asked for before this call still take
    /// effect. The returned future never resolves: await it (`return
    /// ctx.continue_as_new(next).await;`) and the code after it does not run. An input that
    /// does not serialize fails the orchestration.
    pub fn continue_as_new<R>(&self, input: impl Serialize) -> ContinueAsNew<R> {
        let mut state = self.state.borrow_mut();
        match encode(&input, "the input of continue-as-new") {
            Ok(input) => state.request_continue_as_new(input),
            Err(error) => state.set_fatal(serialization_failure(&error)),
        }
        ContinueAsNew::new()
    }

    /// Sets the custom status clients see, as JSON; it replaces the previous one.
    pub fn set_custom_status(&self, status: impl Serialize) -> Result<(), Error> {
        let status = encode(&status, "the custom status")?;
        self.state.borrow_mut().custom_status = status;
        Ok(())
    }

    /// Removes the custom status.
    pub fn clear_custom_status(&self) {
        self.state.borrow_mut().custom_status = None;
    }

    /// A new GUID, the same on every replay.
    ///
    /// It is a name-based UUID (RFC 4122 version 5, SHA-1, in the RFC's URL namespace) of
    /// `"<instance id>_<current time as secs.nanos>_<n>"`, where `n` counts the GUIDs this
    /// execution drew before. Everything in the name is replayed exactly, so the GUID is too;
    /// two calls, two instances or two moments give different GUIDs.
    pub fn new_guid(&self) -> String {
        let mut state = self.state.borrow_mut();
        let counter = state.draw_guid();
        name_based_guid(&state.instance_id, state.now, counter)
    }

    /// Races two durable tasks; the one whose completion the history holds first wins.
    ///
    /// Resolves to `Left((output of a, b))` or `Right((output of b, a))`; the loser can still
    /// be awaited or dropped. Typical use: an external event against a timeout timer.
    pub fn select2<A: Durable, B: Durable>(&self, a: A, b: B) -> Select2<A, B> {
        Select2::new(a, b)
    }

    /// Races durable tasks of one type; the one whose completion the history holds first wins.
    ///
    /// Resolves to the winner's output, its index and the other tasks. An empty list never
    /// resolves.
    pub fn when_any<T: Durable>(&self, tasks: Vec<T>) -> WhenAny<T> {
        WhenAny::new(tasks)
    }

    /// A task that has already failed because its input did not serialize.
    pub(crate) fn failed<O>(&self, kind: SlotKind, label: String, error: &Error) -> DurableTask<O> {
        let failure = serialization_failure(error);
        let slot = self.state.borrow_mut().failed_slot(kind, label, failure);
        DurableTask::new(self.state.clone(), slot)
    }
}

impl std::fmt::Debug for OrchestrationContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.state.borrow();
        f.debug_struct("OrchestrationContext")
            .field("instance_id", &state.instance_id)
            .field("execution_id", &state.execution_id)
            .field("now", &state.now)
            .field("is_replaying", &state.is_replaying)
            .finish()
    }
}
