//! The Rust SDK: orchestrations and activities as async Rust functions, and the replay
//! executor that runs them.
//!
//! - [`Registry`]: orchestrations and activities by name, with serde-typed input and output
//!   carried as JSON payloads, the encoding of the Durable Task gRPC protocol, so instances
//!   are shared between this SDK and the gRPC front door.
//! - [`execute`]: one episode of an orchestration, by replay: the function re-runs from the
//!   start over the recorded history, then over the new events, and the executor collects the
//!   actions it asks for that the history does not hold yet.
//! - [`OrchestrationContext`]: what an orchestration may ask for (activities, with retries,
//!   sub-orchestrations, durable timers, external events, continue-as-new, custom status, the
//!   replayed clock, deterministic GUIDs) and the [`DurableTask`]s it awaits.
//! - [`invoke_activity`] and [`ActivityContext`]: how the engine's activity runner calls an
//!   activity.
//!
//! The SDK stands on the model of `netherite-core` alone: an episode's input is a history and
//! its output is a list of [`OrchestratorAction`](netherite_core::model::OrchestratorAction)s,
//! which [`apply_episode`](netherite_core::episode::apply_episode) then commits. The
//! executor needs no async runtime: durable tasks resolve only from history, so it polls the
//! orchestration's future itself.
//!
//! # Example
//!
//! An orchestration's first episode: it asks for an activity, then waits.
//!
//! ```
//! use netherite::sdk::{execute, OrchestrationContext, Registry, TaskError};
//! use netherite_core::model::{ActionKind, EventKind, ExecutionStarted, HistoryEvent};
//! use netherite_core::{ExecutionId, InstanceId, Timestamp};
//!
//! let mut registry = Registry::new();
//! registry
//!     .orchestration("Greet", |ctx: OrchestrationContext, name: String| async move {
//!         let greeting: String = ctx.call_activity("SayHello", name).await?;
//!         Ok::<_, TaskError>(greeting)
//!     })
//!     .expect("a fresh name");
//!
//! let (instance, execution) = (InstanceId::new("greet-1"), ExecutionId::new("e1"));
//! let now = Timestamp::new(1_700_000_000, 0);
//! let started = ExecutionStarted {
//!     name: "Greet".into(),
//!     version: None,
//!     input: Some("\"Tokyo\"".into()),
//!     instance_id: instance.clone(),
//!     execution_id: execution.clone(),
//!     parent: None,
//!     scheduled_start: None,
//!     parent_trace_context: None,
//!     orchestration_span_id: None,
//!     tags: Default::default(),
//! };
//! let new_events = [
//!     HistoryEvent::new(now, EventKind::OrchestratorStarted),
//!     HistoryEvent::new(now, EventKind::ExecutionStarted(started)),
//! ];
//!
//! let result = execute(&registry, &instance, &execution, &[], &new_events);
//! let [action] = &result.actions[..] else { panic!("one action") };
//! assert_eq!(action.id, 0);
//! let ActionKind::ScheduleTask(task) = &action.kind else { panic!("an activity") };
//! assert_eq!((task.name.as_str(), task.input.as_deref()), ("SayHello", Some("\"Tokyo\"")));
//! ```

mod activity;
mod context;
mod executor;
mod guid;
mod payload;
mod registry;
mod retry;
mod state;
mod task;

pub use activity::{ACTIVITY_NOT_REGISTERED, ActivityContext, ActivityError, invoke_activity};
pub use context::{FireAt, OrchestrationContext};
pub use executor::{
    EpisodeResult, ORCHESTRATION_NOT_REGISTERED, POLL_LIMIT_EXCEEDED, POLLS_PER_EVENT_MAX, execute,
};
pub use futures::future::Either;
pub use payload::{DESERIALIZATION_ERROR, PANIC, SERIALIZATION_ERROR, TASK_FAILED};
pub use registry::Registry;
pub use retry::RetryPolicy;
pub use state::{INVALID_HISTORY, NON_DETERMINISTIC};
pub use task::{ContinueAsNew, Durable, DurableTask, Select2, TaskError, Timer, WhenAny};
