//! Durable tasks: the futures an orchestration awaits, and the combinators that race them.
//!
//! A durable task resolves only from history: its slot in the replay state is filled when the
//! executor meets the completion event, never by a clock or a thread. Tasks are ordinary
//! futures, so `futures::future::join_all` and friends compose them. A race needs more care
//! than `futures::future::select` gives: it picks whichever future it polls first among the
//! ready ones, which depends on the order of the arguments. [`OrchestrationContext::select2`]
//! and [`OrchestrationContext::when_any`] pick instead the task whose completion comes first
//! in the history, the answer every replay reproduces.
//!
//! [`OrchestrationContext::select2`]: super::OrchestrationContext::select2
//! [`OrchestrationContext::when_any`]: super::OrchestrationContext::when_any

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, ready};

use futures::future::Either;
use netherite_core::model::FailureDetails;
use serde::de::DeserializeOwned;

use super::payload::decode;
use super::state::ReplayState;

/// A task that failed: an activity or sub-orchestration that failed, or a result that did not
/// deserialize into the expected type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskError {
    /// What the task was, e.g. `activity 'SayHello' (action 3)`.
    pub task: String,
    /// Why it failed, as the history recorded it.
    pub failure: FailureDetails,
}

impl TaskError {
    /// The failure of `task`.
    pub fn new(task: impl Into<String>, failure: FailureDetails) -> Self {
        TaskError {
            task: task.into(),
            failure,
        }
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed: {}", self.task, self.failure.error_message)
    }
}

impl std::error::Error for TaskError {}

mod sealed {
    pub trait Sealed {}
}

/// A task whose completion the history records: a [`DurableTask`] or a [`Timer`].
///
/// Sealed: only the SDK's own tasks know where their completion sits in the history.
pub trait Durable: sealed::Sealed + Future + Unpin {
    /// The position among the episode's events (history first, then new events) of the event
    /// that completed this task, once it has completed.
    fn completed_at(&self) -> Option<u64>;
}

/// A handle on one slot of the replay state.
struct SlotHandle {
    state: Rc<RefCell<ReplayState>>,
    slot: usize,
}

impl Drop for SlotHandle {
    fn drop(&mut self) {
        // The executor never drops tasks while it holds the state; should the state be
        // borrowed anyway, the task is simply not forgotten, which only costs an event waiter.
        if let Ok(mut state) = self.state.try_borrow_mut() {
            state.abandon(self.slot);
        }
    }
}

/// The result of an activity, a sub-orchestration or an external event, as a future.
///
/// Resolves to the JSON result deserialized into `T`, or to a [`TaskError`]. Dropping it
/// before it resolves is allowed: an activity still runs, an event waiter stops waiting.
pub struct DurableTask<T> {
    handle: SlotHandle,
    output: PhantomData<fn() -> T>,
}

impl<T> DurableTask<T> {
    pub(crate) fn new(state: Rc<RefCell<ReplayState>>, slot: usize) -> Self {
        DurableTask {
            handle: SlotHandle { state, slot },
            output: PhantomData,
        }
    }
}

impl<T: DeserializeOwned> Future for DurableTask<T> {
    type Output = Result<T, TaskError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let handle = &self.get_mut().handle;
        let mut state = handle.state.borrow_mut();
        let outcome = ready!(state.poll_slot(handle.slot, cx.waker()));
        let label = state.label(handle.slot).to_string();
        drop(state);

        let result =
            outcome.and_then(|payload| decode(&payload, &format!("the result of {label}")));
        Poll::Ready(result.map_err(|failure| TaskError::new(label, failure)))
    }
}

impl<T> sealed::Sealed for DurableTask<T> {}

impl<T: DeserializeOwned> Durable for DurableTask<T> {
    fn completed_at(&self) -> Option<u64> {
        self.handle.state.borrow().completed_at(self.handle.slot)
    }
}

impl<T> fmt::Debug for DurableTask<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.handle.state.borrow();
        f.debug_tuple("DurableTask")
            .field(&state.label(self.handle.slot))
            .finish()
    }
}

/// A durable timer, as a future that resolves when the timer has fired.
pub struct Timer {
    handle: SlotHandle,
}

impl Timer {
    pub(crate) fn new(state: Rc<RefCell<ReplayState>>, slot: usize) -> Self {
        Timer {
            handle: SlotHandle { state, slot },
        }
    }
}

impl Future for Timer {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let handle = &self.get_mut().handle;
        let mut state = handle.state.borrow_mut();
        // A timer cannot fail: its slot is only ever filled by `TimerFired`.
        state.poll_slot(handle.slot, cx.waker()).map(|_| ())
    }
}

impl sealed::Sealed for Timer {}

impl Durable for Timer {
    fn completed_at(&self) -> Option<u64> {
        self.handle.state.borrow().completed_at(self.handle.slot)
    }
}

impl fmt::Debug for Timer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.handle.state.borrow();
        f.debug_tuple("Timer")
            .field(&state.label(self.handle.slot))
            .finish()
    }
}

/// The future of a continue-as-new: it never resolves, so the code after it never runs.
///
/// Its output type is whatever the orchestration returns, so `return
/// ctx.continue_as_new(next).await;` fits any orchestration.
pub struct ContinueAsNew<R> {
    output: PhantomData<fn() -> R>,
}

impl<R> ContinueAsNew<R> {
    pub(crate) fn new() -> Self {
        ContinueAsNew {
            output: PhantomData,
        }
    }
}

impl<R> Future for ContinueAsNew<R> {
    type Output = R;

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<R> {
        // The executor ends the execution as soon as the request is recorded; nobody wakes
        // this future, and that is the point.
        Poll::Pending
    }
}

impl<R> fmt::Debug for ContinueAsNew<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ContinueAsNew")
    }
}

/// A race of two durable tasks, won by the one whose completion the history holds first.
///
/// Resolves to the winner's output and the loser, which may still be awaited.
#[derive(Debug)]
pub struct Select2<A, B> {
    tasks: Option<(A, B)>,
}

impl<A, B> Select2<A, B> {
    pub(crate) fn new(a: A, b: B) -> Self {
        Select2 {
            tasks: Some((a, b)),
        }
    }
}

impl<A: Durable, B: Durable> Future for Select2<A, B> {
    type Output = Either<(A::Output, B), (B::Output, A)>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let Some((a, b)) = this.tasks.as_mut() else {
            return Poll::Pending;
        };
        let a_first = match (a.completed_at(), b.completed_at()) {
            (Some(a_at), Some(b_at)) => a_at <= b_at,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => {
                // Neither has completed: poll both so that either completion wakes us.
                let (a_poll, b_poll) = (Pin::new(a).poll(cx), Pin::new(b).poll(cx));
                debug_assert!(a_poll.is_pending() && b_poll.is_pending());
                return Poll::Pending;
            }
        };

        let Some((mut a, mut b)) = this.tasks.take() else {
            return Poll::Pending;
        };
        // The winner has completed, so its poll is ready; were it not, the race goes on.
        if a_first {
            if let Poll::Ready(output) = Pin::new(&mut a).poll(cx) {
                return Poll::Ready(Either::Left((output, b)));
            }
        } else if let Poll::Ready(output) = Pin::new(&mut b).poll(cx) {
            return Poll::Ready(Either::Right((output, a)));
        }
        this.tasks = Some((a, b));
        Poll::Pending
    }
}

/// A race of any number of durable tasks of one type, won by the one whose completion the
/// history holds first (the earliest in the list on a tie).
///
/// Resolves to the winner's output, its index, and the other tasks in their order. An empty
/// race never resolves.
#[derive(Debug)]
pub struct WhenAny<T> {
    tasks: Vec<T>,
}

impl<T> WhenAny<T> {
    pub(crate) fn new(tasks: Vec<T>) -> Self {
        WhenAny { tasks }
    }
}

impl<T: Durable> Future for WhenAny<T> {
    type Output = (T::Output, usize, Vec<T>);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let first = (this.tasks.iter().enumerate())
            .filter_map(|(index, task)| task.completed_at().map(|at| (at, index)))
            .min();
        let Some((_, index)) = first else {
            for task in &mut this.tasks {
                let _pending = Pin::new(task).poll(cx);
            }
            return Poll::Pending;
        };

        let Poll::Ready(output) = Pin::new(&mut this.tasks[index]).poll(cx) else {
            return Poll::Pending;
        };
        let mut rest = std::mem::take(&mut this.tasks);
        rest.remove(index);
        Poll::Ready((output, index, rest))
    }
}
