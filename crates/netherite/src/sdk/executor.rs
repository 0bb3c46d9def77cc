//! The replay executor: runs one episode of an orchestration and returns its new actions.
//!
//! The rules an episode follows are documented on [`execute`]; this is how it is done.
//!
//! # Driving the future
//!
//! Durable tasks resolve only from history, so no runtime is involved: the executor polls the
//! orchestration's future itself, on this thread, with a waker that merely raises a flag.
//! After each event that fills a slot it polls again if the flag went up, and keeps polling
//! while the future wakes itself (a combinator passing a wake on), up to
//! [`POLLS_PER_EVENT_MAX`] times. The same events thus always lead to the same polls, which is
//! what makes a replay reproduce the first run.
//!
//! # Failures
//!
//! An episode always ends with an answer, never a panic: an unregistered orchestration, an
//! input that does not deserialize, an `Err` returned, a panic (caught), a non-deterministic
//! replay or an inconsistent history all complete the orchestration as `Failed`, with a
//! [`FailureDetails`] that says which. A failure the orchestration causes itself (its error,
//! its panic) keeps the actions it asked for before; one the executor detects drops them,
//! since they came from a run that went astray.

use std::cell::RefCell;
use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use netherite_core::model::{
    ActionKind, CompleteOrchestration, EventKind, ExecutionStarted, FailureDetails, HistoryEvent,
    OrchestrationStatus, OrchestratorAction, Payload, Tags,
};
use netherite_core::{ExecutionId, InstanceId};

use super::payload::panic_failure;
use super::registry::OrchestrationFuture;
use super::state::{INVALID_HISTORY, ReplayState, SlotKind, describe_action, non_deterministic};
use super::{OrchestrationContext, Registry};

/// The `error_type` of the failure of an orchestration whose name nobody registered.
pub const ORCHESTRATION_NOT_REGISTERED: &str = "OrchestrationNotRegistered";
/// The `error_type` of the failure of an orchestration that kept waking itself.
pub const POLL_LIMIT_EXCEEDED: &str = "PollLimitExceeded";

/// How many times in a row the executor polls an orchestration that keeps waking itself
/// without waiting on anything durable, before it fails the orchestration.
pub const POLLS_PER_EVENT_MAX: u32 = 10_000;

/// The answer of one episode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpisodeResult {
    /// The new actions, in id order; a `CompleteOrchestration` comes last if there is one.
    pub actions: Vec<OrchestratorAction>,
    /// The custom status the orchestration set (it replaces the previous one).
    pub custom_status: Payload,
}

impl EpisodeResult {
    /// The `CompleteOrchestration` among the actions, if the orchestration finished.
    pub fn completion(&self) -> Option<&CompleteOrchestration> {
        self.actions.iter().find_map(|action| match &action.kind {
            ActionKind::CompleteOrchestration(complete) => Some(complete),
            _ => None,
        })
    }
}

/// Runs one episode of the orchestration whose history is `past_events` and whose new events
/// are `new_events`, and returns its new actions.
///
/// The executor re-runs the orchestration function from the start over the committed history
/// (`past_events`, replaying) and then over the episode's `new_events`, one event at a time:
///
/// - `OrchestratorStarted` moves the orchestration's clock to its timestamp;
/// - `ExecutionStarted` calls the registered function with its input;
/// - a confirmation event (`TaskScheduled`, `TimerCreated`, ...) must match the pending
///   action of its id: same kind, same name, or the orchestration is not deterministic;
/// - a completion event (`TaskCompleted`, `TimerFired`, ...) or an `EventRaised` fills the
///   slot of a task, and the orchestration runs on until it waits again;
/// - `ExecutionSuspended` holds back every later completion and raised event until
///   `ExecutionResumed`, which releases them in order; `ExecutionTerminated` is never held
///   and ends the orchestration as terminated, its reason as output.
///
/// What is still pending at the end are the episode's new actions; if the orchestration
/// finished, a `CompleteOrchestration` follows them.
///
/// An episode always ends with an answer, never a panic. When something goes wrong the
/// answer completes the orchestration as `Failed`, and the failure's `error_type` says what:
/// [`ORCHESTRATION_NOT_REGISTERED`], [`NON_DETERMINISTIC`](super::NON_DETERMINISTIC),
/// [`INVALID_HISTORY`](super::INVALID_HISTORY), [`PANIC`](super::PANIC) and so on.
pub fn execute(
    registry: &Registry,
    instance_id: &InstanceId,
    execution_id: &ExecutionId,
    past_events: &[HistoryEvent],
    new_events: &[HistoryEvent],
) -> EpisodeResult {
    let mut replay = Replay::new(registry, instance_id, execution_id);
    replay.run(past_events, new_events);
    let result = replay.finish();
    tracing::debug!(
        instance = %instance_id,
        execution = %execution_id,
        past = past_events.len(),
        new = new_events.len(),
        actions = result.actions.len(),
        completed = result.completion().is_some(),
        "Episode executed"
    );
    result
}

/// How the orchestration ended in this episode.
enum Completion {
    /// Its code returned (or panicked).
    Returned(Result<Payload, FailureDetails>),
    /// Its code asked to continue as new with this input.
    ContinuedAsNew(Payload),
    /// A terminate request arrived, with this reason.
    Terminated(Payload),
    /// The executor stopped it: unregistered, non-deterministic, inconsistent history.
    Aborted(FailureDetails),
}

/// The waker of the orchestration's future: it only records that it was woken.
#[derive(Default)]
struct WakeFlag(AtomicBool);

impl Wake for WakeFlag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::Relaxed);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl WakeFlag {
    /// Whether the flag was raised since the last call; lowers it.
    fn take(&self) -> bool {
        self.0.swap(false, Ordering::Relaxed)
    }
}

/// One episode in progress.
struct Replay<'r> {
    registry: &'r Registry,
    state: Rc<RefCell<ReplayState>>,
    /// The running orchestration; `None` before `ExecutionStarted` and after the end.
    orchestration: Option<OrchestrationFuture>,
    /// "orchestration 'Name'", for messages.
    who: String,
    started: bool,
    completion: Option<Completion>,
    /// While suspended: the events held back, with their positions.
    suspended: Option<Vec<(u64, HistoryEvent)>>,
    woken: Arc<WakeFlag>,
}

impl<'r> Replay<'r> {
    fn new(registry: &'r Registry, instance_id: &InstanceId, execution_id: &ExecutionId) -> Self {
        let state = ReplayState::new(instance_id.clone(), execution_id.clone());
        Replay {
            registry,
            state: Rc::new(RefCell::new(state)),
            orchestration: None,
            who: "the orchestration".to_string(),
            started: false,
            completion: None,
            suspended: None,
            woken: Arc::default(),
        }
    }

    /// Processes the history (replaying), then the new events.
    fn run(&mut self, past: &[HistoryEvent], new: &[HistoryEvent]) {
        self.state.borrow_mut().is_replaying = true;
        for (order, event) in (0u64..).zip(past) {
            self.step(order, event);
        }
        // A rewound history lacks the confirmations of the actions it dropped on purpose:
        // asking for them again is the point of the rewind.
        let rewound = past
            .iter()
            .chain(new)
            .any(|event| matches!(event.kind, EventKind::ExecutionRewound(_)));
        if !rewound {
            self.check_replayed();
        }

        self.state.borrow_mut().is_replaying = false;
        for (order, event) in (0u64..).zip(past.iter().chain(new)).skip(past.len()) {
            self.step(order, event);
        }
        if !self.started && self.completion.is_none() {
            let message = "the episode's events hold no ExecutionStarted";
            self.abort(FailureDetails::new(INVALID_HISTORY, message));
        }
    }

    /// After the history: every action the replay asked for must have been confirmed by it,
    /// since the first run's actions were all recorded when its episode was committed.
    fn check_replayed(&mut self) {
        if matches!(self.completion, Some(Completion::Aborted(_))) {
            return;
        }
        let state = self.state.borrow();
        let Some(action) = state.first_pending() else {
            return;
        };
        let problem = format!(
            "action {} ({}) is not in the history, but the orchestration asked for it while \
             replaying",
            action.id,
            describe_action(&action.kind)
        );
        drop(state);
        self.abort(non_deterministic(problem));
    }

    /// Processes the event at position `order`.
    fn step(&mut self, order: u64, event: &HistoryEvent) {
        if matches!(self.completion, Some(Completion::Aborted(_))) {
            return;
        }
        self.state.borrow_mut().order = order;
        if self.completion.is_some() {
            return self.after_end(event);
        }
        if let Some(held) = &mut self.suspended
            && is_inbound(&event.kind)
        {
            held.push((order, event.clone()));
            return;
        }
        self.apply(event);
    }

    fn apply(&mut self, event: &HistoryEvent) {
        match &event.kind {
            EventKind::OrchestratorStarted => self.state.borrow_mut().now = event.timestamp,
            EventKind::ExecutionStarted(started) => self.start(started),
            EventKind::ExecutionTerminated(terminated) => {
                self.end(Completion::Terminated(terminated.input.clone()));
            }
            EventKind::ExecutionSuspended { .. } => {
                self.suspended.get_or_insert_with(Vec::new);
            }
            EventKind::ExecutionResumed { .. } => self.resume(),
            EventKind::EventRaised(_) => {
                let waker = self.state.borrow_mut().deliver(event);
                self.wake_and_poll(waker);
            }
            kind if kind.is_confirmation() => self.confirm(event),
            kind => {
                if let Some((id, slot, outcome)) = completion_of(kind) {
                    self.resolve(id, slot, outcome);
                }
            }
        }
    }

    /// Calls the registered function with the execution's input and runs it until it waits.
    fn start(&mut self, started: &ExecutionStarted) {
        if self.started {
            tracing::debug!("A second ExecutionStarted in one execution; ignored");
            return;
        }
        self.started = true;
        self.who = format!("orchestration '{}'", started.name);
        let Some(function) = self.registry.orchestration_fn(&started.name) else {
            let message = format!("{} is not registered", self.who);
            return self.abort(FailureDetails::new(ORCHESTRATION_NOT_REGISTERED, message));
        };

        let ctx = OrchestrationContext::new(self.state.clone());
        let input = started.input.clone();
        match std::panic::catch_unwind(AssertUnwindSafe(|| function(ctx, input))) {
            Err(panic) => {
                let failure = panic_failure(&self.who, &*panic);
                self.end(Completion::Returned(Err(failure)));
            }
            Ok(Err(bad_input)) => self.end(Completion::Returned(Err(bad_input))),
            Ok(Ok(future)) => {
                self.orchestration = Some(future);
                self.poll();
            }
        }
    }

    fn confirm(&mut self, event: &HistoryEvent) {
        let confirmed = self.state.borrow_mut().confirm(event);
        if let Err(failure) = confirmed {
            self.abort(failure);
        }
    }

    fn resolve(&mut self, id: i32, kind: SlotKind, outcome: Result<Payload, FailureDetails>) {
        let resolved = self.state.borrow_mut().resolve(id, kind, outcome);
        match resolved {
            Ok(waker) => self.wake_and_poll(waker),
            Err(failure) => self.abort(failure),
        }
    }

    /// Releases the events held back while suspended, in their order.
    fn resume(&mut self) {
        let Some(held) = self.suspended.take() else {
            return;
        };
        for (order, event) in held {
            self.step(order, &event);
        }
    }

    /// An event after the orchestration finished in this run. Confirmations must still match
    /// (the first run may have asked for things just before finishing); raised events are
    /// kept for a continue-as-new; the rest no longer matters.
    fn after_end(&mut self, event: &HistoryEvent) {
        match &event.kind {
            kind if kind.is_confirmation() => self.confirm(event),
            EventKind::EventRaised(_) => self.state.borrow_mut().keep_event(event),
            _ => {}
        }
    }

    /// Wakes the task whose slot was just filled (the state is no longer borrowed, so any
    /// waker may run), then polls the orchestration if the wake reached it.
    fn wake_and_poll(&mut self, waker: Option<Waker>) {
        if let Some(waker) = waker {
            waker.wake();
        }
        if self.woken.take() {
            self.poll();
        }
    }

    /// Polls the orchestration until it waits for something durable or ends.
    fn poll(&mut self) {
        let waker = Waker::from(self.woken.clone());
        let mut cx = Context::from_waker(&waker);
        for _ in 0..POLLS_PER_EVENT_MAX {
            let Some(future) = self.orchestration.as_mut() else {
                return;
            };
            self.woken.take();
            let polled =
                std::panic::catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(&mut cx)));
            if let Some(completion) = self.completion_after(polled) {
                return self.end(completion);
            }
            if !self.woken.take() {
                return;
            }
        }
        let message = format!(
            "{} woke itself {POLLS_PER_EVENT_MAX} times in a row without waiting for a durable \
             task",
            self.who
        );
        self.abort(FailureDetails::new(POLL_LIMIT_EXCEEDED, message));
    }

    /// How the orchestration ended in the poll that returned `polled`, if it did.
    fn completion_after(
        &mut self,
        polled: std::thread::Result<Poll<Result<Payload, FailureDetails>>>,
    ) -> Option<Completion> {
        let mut state = self.state.borrow_mut();
        if let Some(failure) = state.take_fatal() {
            return Some(Completion::Aborted(failure));
        }
        if let Some(input) = state.take_continue_as_new() {
            return Some(Completion::ContinuedAsNew(input));
        }
        drop(state);
        match polled {
            Err(panic) => Some(Completion::Returned(Err(panic_failure(&self.who, &*panic)))),
            Ok(Poll::Ready(output)) => Some(Completion::Returned(output)),
            Ok(Poll::Pending) => None,
        }
    }

    fn abort(&mut self, failure: FailureDetails) {
        tracing::warn!(
            who = %self.who,
            error_type = %failure.error_type,
            message = %failure.error_message,
            "Orchestration stopped by the executor"
        );
        self.end(Completion::Aborted(failure));
    }

    fn end(&mut self, completion: Completion) {
        // Dropped first, outside any borrow of the state: its tasks unregister as they go.
        self.orchestration = None;
        if matches!(
            completion,
            Completion::Aborted(_) | Completion::Terminated(_)
        ) {
            self.state.borrow_mut().take_pending();
        }
        self.completion = Some(completion);
    }

    /// The episode's answer: the pending actions, then the completion if any.
    fn finish(mut self) -> EpisodeResult {
        self.orchestration = None;
        let mut state = self.state.borrow_mut();
        let mut actions = state.take_pending();
        if let Some(completion) = self.completion.take() {
            let id = state.next_action_id();
            let complete = completion_action(completion, &mut state);
            actions.push(OrchestratorAction {
                id,
                kind: ActionKind::CompleteOrchestration(complete),
            });
        }
        EpisodeResult {
            actions,
            custom_status: state.custom_status.clone(),
        }
    }
}

fn completion_action(completion: Completion, state: &mut ReplayState) -> CompleteOrchestration {
    let (status, result, failure, carryover) = match completion {
        Completion::Returned(Ok(output)) => (OrchestrationStatus::Completed, output, None, vec![]),
        Completion::Returned(Err(failure)) | Completion::Aborted(failure) => {
            (OrchestrationStatus::Failed, None, Some(failure), vec![])
        }
        Completion::Terminated(reason) => (OrchestrationStatus::Terminated, reason, None, vec![]),
        Completion::ContinuedAsNew(input) => {
            let carryover = state.take_buffered_events();
            (OrchestrationStatus::ContinuedAsNew, input, None, carryover)
        }
    };
    CompleteOrchestration {
        status,
        result,
        details: None,
        new_version: None,
        carryover_events: carryover,
        failure,
        tags: Tags::new(),
    }
}

/// Whether the event brings something from outside (a result, a raised event): those are
/// held back while the orchestration is suspended. Confirmations are not: they record what
/// the orchestration itself did before it was suspended.
fn is_inbound(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::TaskCompleted(_)
            | EventKind::TaskFailed(_)
            | EventKind::SubOrchestrationCompleted(_)
            | EventKind::SubOrchestrationFailed(_)
            | EventKind::TimerFired(_)
            | EventKind::EventRaised(_)
            | EventKind::EntityOperationCompleted(_)
            | EventKind::EntityOperationFailed(_)
            | EventKind::EntityLockGranted(_)
    )
}

/// The action a completion event completes, the kind of slot it fills and with what.
fn completion_of(kind: &EventKind) -> Option<(i32, SlotKind, Result<Payload, FailureDetails>)> {
    match kind {
        EventKind::TaskCompleted(done) => Some((
            done.task_scheduled_id,
            SlotKind::Activity,
            Ok(done.result.clone()),
        )),
        EventKind::TaskFailed(failed) => Some((
            failed.task_scheduled_id,
            SlotKind::Activity,
            Err(failed.failure.clone()),
        )),
        EventKind::SubOrchestrationCompleted(done) => {
            let outcome = Ok(done.result.clone());
            Some((done.task_scheduled_id, SlotKind::SubOrchestration, outcome))
        }
        EventKind::SubOrchestrationFailed(failed) => {
            let outcome = Err(failed.failure.clone());
            Some((
                failed.task_scheduled_id,
                SlotKind::SubOrchestration,
                outcome,
            ))
        }
        EventKind::TimerFired(fired) => Some((fired.timer_id, SlotKind::Timer, Ok(None))),
        _ => None,
    }
}
