//! How orchestrations and activities fail: every failure ends as a clear `FailureDetails` in
//! the history, never as a panic of the executor.

mod sdk_harness;

use std::time::Duration;

use netherite::sdk::{
    ActivityContext, ActivityError, DESERIALIZATION_ERROR, INVALID_HISTORY, NON_DETERMINISTIC,
    ORCHESTRATION_NOT_REGISTERED, OrchestrationContext, PANIC, POLL_LIMIT_EXCEEDED, Registry,
    TASK_FAILED, TaskError, execute,
};
use netherite_core::model::{
    EventKind, FailureDetails, HistoryEvent, OrchestrationStatus, TaskCompleted, TaskFailed,
};
use netherite_core::{ExecutionId, Timestamp};
use sdk_harness::{Hub, id, json, kinds};
use serde_json::json;

fn echo(registry: &mut Registry, name: &str) {
    registry
        .activity(name, |_ctx: ActivityContext, text: String| async move {
            Ok::<_, ActivityError>(text)
        })
        .expect("a fresh name");
}

/// Version 1: activity A, then activity B.
fn version_one() -> Registry {
    let mut registry = Registry::new();
    registry
        .orchestration("Flow", |ctx: OrchestrationContext, (): ()| async move {
            let a: String = ctx.call_activity("A", "a").await?;
            let b: String = ctx.call_activity("B", "b").await?;
            Ok::<_, TaskError>(a + &b)
        })
        .expect("a fresh name");
    for name in ["A", "B", "C"] {
        echo(&mut registry, name);
    }
    registry
}

/// The same orchestration name with different code.
fn version_two<F, Fut>(flow: F) -> Registry
where
    F: Fn(OrchestrationContext, ()) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<String, TaskError>> + 'static,
{
    let mut registry = Registry::new();
    registry.orchestration("Flow", flow).expect("a fresh name");
    for name in ["A", "B", "C"] {
        echo(&mut registry, name);
    }
    registry
}

/// Runs version one's first episode, deploys `next` and lets the instance go on.
fn redeploy_midway(next: Registry) -> FailureDetails {
    let mut hub = Hub::new(version_one());
    hub.start("f", "Flow", None);
    let first = hub.episode(&id("f"));
    assert_eq!(first.actions.len(), 1, "activity A asked for");

    hub.deploy(next);
    hub.run();
    let flow = hub.instance("f");
    assert_eq!(flow.status, OrchestrationStatus::Failed);
    flow.failure.clone().expect("failure details")
}

/// Code that asks for another activity than the history recorded fails, naming the action id,
/// what the history holds and what the code asked for.
#[test]
fn changed_activity_name_is_non_deterministic() {
    let failure = redeploy_midway(version_two(|ctx, ()| async move {
        ctx.call_activity::<String>("C", "c").await
    }));
    assert_eq!(failure.error_type, NON_DETERMINISTIC);
    assert!(failure.is_non_retriable);
    assert_eq!(
        failure.error_message,
        "non-deterministic orchestration: action 0 is TaskScheduled 'A' in the history, but the \
         orchestration asked for ScheduleTask 'C'"
    );
}

/// A timer where the history has an activity is just as wrong.
#[test]
fn changed_action_kind_is_non_deterministic() {
    let failure = redeploy_midway(version_two(|ctx, ()| async move {
        ctx.create_timer(Duration::from_secs(5)).await;
        Ok("slept".to_string())
    }));
    assert!(
        failure.error_message.starts_with(
            "non-deterministic orchestration: action 0 is TaskScheduled 'A' in the history, but \
             the orchestration asked for CreateTimer at "
        ),
        "{}",
        failure.error_message
    );
}

/// Code that no longer asks for what the history recorded fails too.
#[test]
fn missing_action_is_non_deterministic() {
    let failure = redeploy_midway(version_two(|ctx, ()| async move {
        let () = ctx.wait_for_external_event("never").await?;
        Ok(String::new())
    }));
    assert_eq!(
        failure.error_message,
        "non-deterministic orchestration: action 0 is TaskScheduled 'A' in the history, but the \
         orchestration did not ask for it"
    );
}

/// Code that asks, while replaying, for an action the history does not hold fails as well,
/// instead of quietly doing it now.
#[test]
fn extra_action_during_replay_is_non_deterministic() {
    let failure = redeploy_midway(version_two(|ctx, ()| async move {
        let a = ctx.call_activity::<String>("A", "a");
        let c = ctx.call_activity::<String>("C", "c");
        let (a, c) = futures::join!(a, c);
        Ok(a? + &c?)
    }));
    assert_eq!(
        failure.error_message,
        "non-deterministic orchestration: action 1 (ScheduleTask 'C') is not in the history, but \
         the orchestration asked for it while replaying"
    );
}

/// An activity's error and an activity's panic both reach the orchestration as task failures
/// carrying their messages; the orchestration can handle them and go on.
#[test]
fn activity_error_and_panic_become_task_failures() {
    let mut registry = Registry::new();
    registry
        .orchestration("Checkout", |ctx: OrchestrationContext, (): ()| async move {
            let declined = ctx
                .call_activity::<()>("Charge", 100)
                .await
                .expect_err("declined");
            let exploded = ctx
                .call_activity::<()>("Explode", ())
                .await
                .expect_err("panics");
            Ok::<_, TaskError>([declined.to_string(), exploded.to_string()])
        })
        .expect("a fresh name")
        .activity("Charge", |_ctx: ActivityContext, amount: u32| async move {
            let error = ActivityError::with_type("CardDeclined", format!("{amount} declined"));
            Err::<(), _>(error.non_retriable())
        })
        .expect("a fresh name")
        .activity("Explode", |_ctx: ActivityContext, (): ()| async move {
            if true {
                panic!("boom");
            }
            Ok::<(), ActivityError>(())
        })
        .expect("a fresh name");
    let mut hub = Hub::new(registry);
    hub.start("c", "Checkout", None);
    hub.run();

    let checkout = hub.instance("c");
    let expected = json!([
        "activity 'Charge' (action 0) failed: 100 declined",
        "activity 'Explode' (action 1) failed: activity 'Explode' panicked: boom"
    ]);
    assert_eq!(checkout.output, json(expected));
    let failures = kinds(&checkout.history, |event| match &event.kind {
        EventKind::TaskFailed(TaskFailed { failure, .. }) => Some(failure.clone()),
        _ => None,
    });
    assert_eq!(failures.len(), 2);
    assert_eq!(
        (
            failures[0].error_type.as_str(),
            failures[0].is_non_retriable
        ),
        ("CardDeclined", true)
    );
    assert_eq!(failures[1].error_type, PANIC);
}

/// A task failure the orchestration passes on with `?` fails it, caused by the task's failure.
#[test]
fn unhandled_task_failure_fails_the_orchestration() {
    let mut registry = Registry::new();
    registry
        .orchestration("Careless", |ctx: OrchestrationContext, (): ()| async move {
            ctx.call_activity::<()>("Missing", ()).await
        })
        .expect("a fresh name");
    let mut hub = Hub::new(registry);
    hub.start("c", "Careless", None);
    hub.run();

    let failure = hub.instance("c").failure.clone().expect("failure details");
    assert_eq!(failure.error_type, TASK_FAILED);
    assert_eq!(
        failure.error_message,
        "activity 'Missing' (action 0) failed: activity 'Missing' is not registered"
    );
    let cause = failure.inner_failure.expect("the activity's failure");
    assert_eq!(cause.error_type, netherite::sdk::ACTIVITY_NOT_REGISTERED);
}

fn failing_orchestrations() -> Registry {
    let mut registry = Registry::new();
    registry
        .orchestration("Typed", |_ctx: OrchestrationContext, n: u32| async move {
            Ok::<_, TaskError>(n + 1)
        })
        .expect("a fresh name")
        .orchestration("Refuses", |_ctx: OrchestrationContext, (): ()| async move {
            Err::<(), _>(format!("refused at {}", 3))
        })
        .expect("a fresh name")
        .orchestration("Panics", |_ctx: OrchestrationContext, (): ()| async move {
            let empty: Vec<u32> = Vec::new();
            Ok::<_, TaskError>(empty[0])
        })
        .expect("a fresh name");
    registry
}

/// Runs instance `instance` of `name` with `input` to its end and returns its failure.
fn failure_of(name: &str, input: Option<String>) -> FailureDetails {
    let mut hub = Hub::new(failing_orchestrations());
    hub.start("x", name, input);
    hub.run();
    let x = hub.instance("x");
    assert_eq!(x.status, OrchestrationStatus::Failed);
    x.failure.clone().expect("failure details")
}

/// An orchestration nobody registered fails at once, saying so.
#[test]
fn unregistered_orchestration_fails_clearly() {
    let failure = failure_of("Nobody", None);
    assert_eq!(failure.error_type, ORCHESTRATION_NOT_REGISTERED);
    assert_eq!(
        failure.error_message,
        "orchestration 'Nobody' is not registered"
    );
}

/// An input that does not deserialize fails the orchestration with serde's message.
#[test]
fn bad_input_fails_with_the_serde_message() {
    let failure = failure_of("Typed", json(json!("seven")));
    assert_eq!(failure.error_type, DESERIALIZATION_ERROR);
    assert_eq!(
        failure.error_message,
        "the input of orchestration 'Typed' does not deserialize: invalid type: string \
         \"seven\", expected u32 at line 1 column 7"
    );
}

/// An orchestration's own error and its panic both end it as Failed with their messages.
#[test]
fn orchestration_error_and_panic_fail_it() {
    let refused = failure_of("Refuses", None);
    assert_eq!(refused.error_message, "refused at 3");

    let panicked = failure_of("Panics", None);
    assert_eq!(panicked.error_type, PANIC);
    assert!(
        panicked
            .error_message
            .starts_with("orchestration 'Panics' panicked: index out of bounds"),
        "{}",
        panicked.error_message
    );
}

fn at(secs: i64) -> Timestamp {
    Timestamp::new(secs, 0)
}

/// A history that does not start the execution cannot be replayed; that is a failure, not a
/// panic.
#[test]
fn history_without_execution_started_fails() {
    let events = [HistoryEvent::new(at(1), EventKind::OrchestratorStarted)];
    let answer = execute(
        &Registry::new(),
        &id("x"),
        &ExecutionId::new("e"),
        &[],
        &events,
    );
    let complete = answer.completion().expect("a completion");
    assert_eq!(complete.status, OrchestrationStatus::Failed);
    let failure = complete.failure.as_ref().expect("failure details");
    assert_eq!(failure.error_type, INVALID_HISTORY);
}

fn nap() -> Registry {
    let mut registry = Registry::new();
    registry
        .orchestration("Nap", |ctx: OrchestrationContext, (): ()| async move {
            ctx.create_timer(Duration::from_secs(1)).await;
            Ok::<_, TaskError>(())
        })
        .expect("a fresh name");
    registry
}

/// A completion event whose id belongs to another kind of task (a task result for a timer)
/// means the history is inconsistent: the orchestration fails naming the action.
#[test]
fn completion_of_the_wrong_kind_fails() {
    let mut hub = Hub::new(nap());
    hub.start("n", "Nap", None);
    hub.run();

    let result = EventKind::TaskCompleted(TaskCompleted {
        task_scheduled_id: 0,
        result: None,
    });
    let napping = hub.instance("n");
    let new_events = [
        HistoryEvent::new(at(2), EventKind::OrchestratorStarted),
        HistoryEvent::new(at(2), result),
    ];
    let (execution, history) = (&napping.execution_id, &napping.history);
    let answer = execute(&nap(), &id("n"), execution, history, &new_events);
    let failure = answer
        .completion()
        .and_then(|c| c.failure.clone())
        .expect("a failure");
    assert_eq!(failure.error_type, INVALID_HISTORY);
    assert!(
        failure.error_message.contains("action 0"),
        "{}",
        failure.error_message
    );
}

/// An orchestration that keeps waking itself without waiting for anything durable cannot
/// hang the executor: it fails once it reaches the poll limit.
#[test]
fn self_waking_orchestration_hits_the_poll_limit() {
    let mut registry = Registry::new();
    registry
        .orchestration("Spin", |_ctx: OrchestrationContext, (): ()| async move {
            std::future::poll_fn(|cx| {
                cx.waker().wake_by_ref();
                std::task::Poll::<()>::Pending
            })
            .await;
            Ok::<_, TaskError>(())
        })
        .expect("a fresh name");
    let mut hub = Hub::new(registry);
    hub.start("s", "Spin", None);
    hub.run();

    let failure = hub.instance("s").failure.clone().expect("failure details");
    assert_eq!(failure.error_type, POLL_LIMIT_EXCEEDED);
}
