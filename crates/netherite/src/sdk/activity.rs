//! Activities: the context an activity runs with, the error type it may return, and
//! [`invoke_activity`], which the engine's activity runner calls.
//!
//! Whatever goes wrong in an activity (unknown name, bad input, an error, a panic) comes back
//! as [`FailureDetails`], never as a crash of the runner: the orchestration receives it as
//! `TaskFailed` and decides what to do.

use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures::FutureExt;
use netherite_core::model::{FailureDetails, Payload};
use netherite_core::{ExecutionId, InstanceId};

use super::Registry;
use super::payload::panic_failure;

/// The `error_type` of the failure for an activity name nobody registered.
pub const ACTIVITY_NOT_REGISTERED: &str = "ActivityNotRegistered";

/// What an activity knows about the call it serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActivityContext {
    instance_id: InstanceId,
    execution_id: Option<ExecutionId>,
    task_id: i32,
    name: String,
}

impl ActivityContext {
    /// The context of activity `name`, scheduled by `instance_id` as its action `task_id`.
    pub fn new(instance_id: InstanceId, task_id: i32, name: impl Into<String>) -> Self {
        ActivityContext {
            instance_id,
            execution_id: None,
            task_id,
            name: name.into(),
        }
    }

    /// The same context, naming the execution that scheduled the activity.
    pub fn with_execution(mut self, execution_id: ExecutionId) -> Self {
        self.execution_id = Some(execution_id);
        self
    }

    /// The orchestration instance that scheduled the activity.
    pub fn instance_id(&self) -> &InstanceId {
        &self.instance_id
    }

    /// The execution that scheduled the activity, when the engine said.
    pub fn execution_id(&self) -> Option<&ExecutionId> {
        self.execution_id.as_ref()
    }

    /// The id of the `ScheduleTask` action; the result refers back to it.
    pub fn task_id(&self) -> i32 {
        self.task_id
    }

    /// The activity's registered name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// An error an activity or orchestration returns when it wants to choose the failure's type
/// or mark it non-retriable.
///
/// Any `Display` error works as the error type of a registered function; this one is for when
/// the message alone is not enough. A retry policy gives up at once on a non-retriable failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActivityError {
    details: FailureDetails,
}

impl ActivityError {
    /// An error with a message and the type `"ActivityError"`.
    pub fn new(message: impl Into<String>) -> Self {
        Self::with_type("ActivityError", message)
    }

    /// An error with a type of the caller's choosing, e.g. `"InsufficientFunds"`.
    pub fn with_type(error_type: impl Into<String>, message: impl Into<String>) -> Self {
        ActivityError {
            details: FailureDetails::new(error_type, message),
        }
    }

    /// The same error, marked so that retry policies give up at once.
    pub fn non_retriable(mut self) -> Self {
        self.details.is_non_retriable = true;
        self
    }

    /// The failure this error becomes.
    pub fn details(&self) -> &FailureDetails {
        &self.details
    }
}

impl fmt::Display for ActivityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.details.error_message)
    }
}

impl std::error::Error for ActivityError {}

impl From<String> for ActivityError {
    fn from(message: String) -> Self {
        ActivityError::new(message)
    }
}

impl From<&str> for ActivityError {
    fn from(message: &str) -> Self {
        ActivityError::new(message)
    }
}

/// Runs the activity `context.name()` on `input` and returns its JSON result.
///
/// The returned future owns everything it needs, so a runner can spawn it. An unregistered
/// name, an input that does not deserialize, an error returned by the activity and a panic
/// inside it each become a [`FailureDetails`] whose message says which.
///
/// # Example
///
/// ```
/// use netherite::sdk::{invoke_activity, ActivityContext, ActivityError, Registry};
/// use netherite_core::InstanceId;
///
/// let mut registry = Registry::new();
/// registry
///     .activity("Double", |_ctx: ActivityContext, n: i64| async move {
///         Ok::<_, ActivityError>(n * 2)
///     })
///     .expect("a fresh name");
///
/// let context = ActivityContext::new(InstanceId::new("calc"), 0, "Double");
/// let running = invoke_activity(&registry, context, Some("21".into()));
/// let result = futures::executor::block_on(running);
/// assert_eq!(result, Ok(Some("42".to_string())));
/// ```
pub fn invoke_activity(
    registry: &Registry,
    context: ActivityContext,
    input: Payload,
) -> impl Future<Output = Result<Payload, FailureDetails>> + Send + 'static {
    let activity = registry.activity_fn(context.name());
    async move {
        let who = format!("activity '{}'", context.name());
        let Some(activity) = activity else {
            let message = format!("{who} is not registered");
            return Err(FailureDetails::new(ACTIVITY_NOT_REGISTERED, message));
        };

        // The function may panic before its first await (while building the future) or
        // while running; both are caught.
        let started = std::panic::catch_unwind(AssertUnwindSafe(|| activity(context, input)));
        let future = started.map_err(|panic| panic_failure(&who, &*panic))??;
        let finished = AssertUnwindSafe(future).catch_unwind().await;
        finished.map_err(|panic| panic_failure(&who, &*panic))?
    }
}

#[cfg(test)]
mod tests {
    use futures::executor::block_on;

    use super::*;
    use crate::sdk::payload::{DESERIALIZATION_ERROR, PANIC};

    fn registry() -> Registry {
        let mut registry = Registry::new();
        registry
            .activity(
                "Divide",
                |_ctx: ActivityContext, (a, b): (i64, i64)| async move {
                    a.checked_div(b)
                        .ok_or(ActivityError::new("division by zero"))
                },
            )
            .expect("a fresh name")
            .activity("Explode", |_ctx: ActivityContext, (): ()| async move {
                if true {
                    panic!("kaboom");
                }
                Ok::<(), ActivityError>(())
            })
            .expect("a fresh name")
            .activity("ExplodeEarly", |_ctx: ActivityContext, (): ()| {
                // Panics while the future is being built, before any await.
                let values: Vec<u32> = Vec::new();
                let first = *values.first().expect("nothing there");
                async move { Ok::<u32, ActivityError>(first) }
            })
            .expect("a fresh name")
            .activity("Echo", |ctx: ActivityContext, (): ()| async move {
                let who = format!("{}#{} {}", ctx.instance_id(), ctx.task_id(), ctx.name());
                Ok::<_, ActivityError>((who, ctx.execution_id().cloned()))
            })
            .expect("a fresh name");
        registry
    }

    fn invoke(name: &str, input: &str) -> Result<Payload, FailureDetails> {
        let context = ActivityContext::new(InstanceId::new("i"), 3, name);
        block_on(invoke_activity(
            &registry(),
            context,
            Some(input.to_string()),
        ))
    }

    /// A successful call returns the JSON result; the context describes the call.
    #[test]
    fn result_comes_back_as_json() {
        assert_eq!(invoke("Divide", "[7, 2]"), Ok(Some("3".to_string())));
        let context = ActivityContext::new(InstanceId::new("i"), 3, "Echo")
            .with_execution(ExecutionId::new("e"));
        let echoed = block_on(invoke_activity(&registry(), context, None));
        assert_eq!(echoed, Ok(Some(r#"["i#3 Echo","e"]"#.to_string())));
    }

    /// Unknown names, bad input, errors and panics are failures that say which.
    #[test]
    fn every_kind_of_trouble_is_a_clear_failure() {
        let unknown = invoke("Multiply", "[1, 2]").unwrap_err();
        assert_eq!(unknown.error_type, ACTIVITY_NOT_REGISTERED);
        assert_eq!(
            unknown.error_message,
            "activity 'Multiply' is not registered"
        );

        let bad_input = invoke("Divide", "\"seven\"").unwrap_err();
        assert_eq!(bad_input.error_type, DESERIALIZATION_ERROR);
        assert!(
            bad_input
                .error_message
                .starts_with("the input of activity 'Divide' does not")
        );

        let error = invoke("Divide", "[1, 0]").unwrap_err();
        assert_eq!(
            (error.error_type.as_str(), error.error_message.as_str()),
            ("ActivityError", "division by zero")
        );

        let panic = invoke("Explode", "null").unwrap_err();
        assert_eq!(panic.error_type, PANIC);
        assert_eq!(panic.error_message, "activity 'Explode' panicked: kaboom");
        let early = invoke("ExplodeEarly", "null").unwrap_err();
        assert_eq!(
            early.error_message,
            "activity 'ExplodeEarly' panicked: nothing there"
        );
    }
}
