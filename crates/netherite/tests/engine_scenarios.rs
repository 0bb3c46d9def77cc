//! Stories of the SDK's features on the embedded default (local durable transport, file
//! devices in a temporary data directory): each starts an engine, runs one kind of
//! orchestration through the client and checks its outcome and history.

mod engine_support;

use std::time::Duration;

use engine_support::*;
use netherite::client::{custom_status, output};
use netherite_core::InstanceId;
use netherite_core::model::{EventKind, OrchestrationStatus};

/// A sequence of activities runs in order and returns their joined results.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequence_of_activities() {
    let (engine, _dir) = start().await;
    let client = engine.client();

    let id = run(&client, "Hello", "hello-1", &"London").await;
    let done = finish(&client, &id).await;

    assert!(completed(&done), "{done:?}");
    let greeting: String = output(&done).expect("a string");
    assert_eq!(greeting, "Hello Tokyo! Hello Seattle! Hello London!");
    let history = client.history(&id).await.expect("history");
    let scheduled = count(&history, |k| matches!(k, EventKind::TaskScheduled(_)));
    let results = count(&history, |k| matches!(k, EventKind::TaskCompleted(_)));
    assert_eq!((scheduled, results), (3, 3));
    engine.shutdown().await.expect("clean shutdown");
}

/// Twenty activities fan out in one episode and their results are summed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_fan_in() {
    let (engine, _dir) = start().await;
    let client = engine.client();

    let id = run(&client, "FanOut", "fan-1", &20u64).await;
    let done = finish(&client, &id).await;

    let sum: u64 = output(&done).expect("a number");
    assert_eq!(sum, (1..=20u64).map(|i| i * i).sum::<u64>());
    engine.shutdown().await.expect("clean shutdown");
}

/// A parent starts sub-orchestrations (on other partitions) and sums what they return.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sub_orchestrations() {
    let (engine, _dir) = start().await;
    let client = engine.client();

    let id = run(&client, "Parent", "parent-1", &6u64).await;
    let done = finish(&client, &id).await;

    let sum: u64 = output(&done).expect("a number");
    assert_eq!(sum, 2 * (0..6u64).sum::<u64>());
    let child = client
        .get_state(&InstanceId::new("parent-1-child-3"), false)
        .await
        .expect("read")
        .expect("the child exists");
    assert_eq!(
        child.parent_instance_id.as_ref().map(|p| p.as_str()),
        Some("parent-1")
    );
    assert_eq!(child.status, OrchestrationStatus::Completed);
    engine.shutdown().await.expect("clean shutdown");
}

/// A durable timer holds the orchestration until its time, then lets it go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_timer() {
    let (engine, _dir) = start().await;
    let client = engine.client();

    let started = std::time::Instant::now();
    let id = run(&client, "Sleeper", "sleep-1", &300u64).await;
    let done = finish(&client, &id).await;

    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(completed(&done), "{done:?}");
    let history = client.history(&id).await.expect("history");
    assert_eq!(
        count(&history, |k| matches!(k, EventKind::TimerFired(_))),
        1
    );
    engine.shutdown().await.expect("clean shutdown");
}

/// An external event races a timer: raised in time it wins; not raised, the timer wins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_event_races_a_timer() {
    let (engine, _dir) = start().await;
    let client = engine.client();

    // Phase 1: the event comes first.
    let quick = run(&client, "Approval", "approval-quick", &60_000u64).await;
    until(&client, &quick, |v| {
        v.status == OrchestrationStatus::Running
    })
    .await;
    client
        .raise_event(&quick, "Approved", &"ada")
        .await
        .expect("raised");
    let done = finish(&client, &quick).await;
    assert_eq!(
        output::<String>(&done).expect("a string"),
        "approved by ada"
    );

    // Phase 2: nobody approves; the timer fires.
    let slow = run(&client, "Approval", "approval-slow", &200u64).await;
    let done = finish(&client, &slow).await;
    assert_eq!(output::<String>(&done).expect("a string"), "timed out");
    engine.shutdown().await.expect("clean shutdown");
}

/// An orchestration continues as new until its counter reaches five; the last execution's
/// history starts over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continue_as_new() {
    let (engine, _dir) = start().await;
    let client = engine.client();

    let id = run(&client, "Counter", "counter-1", &0u64).await;
    let done = finish(&client, &id).await;

    assert_eq!(output::<u64>(&done).expect("a number"), 5);
    let history = client.history(&id).await.expect("history");
    assert_eq!(
        count(&history, |k| matches!(k, EventKind::ExecutionStarted(_))),
        1
    );
    engine.shutdown().await.expect("clean shutdown");
}

/// The custom status an orchestration sets is visible to the client, and changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_status_is_visible() {
    let (engine, _dir) = start().await;
    let client = engine.client();

    let id = run(&client, "Status", "status-1", &()).await;
    let waiting = until(&client, &id, |v| v.custom_status.is_some()).await;
    assert_eq!(
        custom_status::<String>(&waiting).expect("a string"),
        "waiting for go"
    );

    client.raise_event(&id, "Go", &"now").await.expect("raised");
    let done = finish(&client, &id).await;
    assert_eq!(
        custom_status::<String>(&done).expect("a string"),
        "went now"
    );
    engine.shutdown().await.expect("clean shutdown");
}

/// An activity that fails twice succeeds on its third attempt under a retry policy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activity_retries() {
    let (engine, _dir) = start().await;
    let client = engine.client();

    let id = run(&client, "Retrying", "retry-1", &2u32).await;
    let done = finish(&client, &id).await;

    assert_eq!(output::<u32>(&done).expect("a number"), 3, "{done:?}");
    let history = client.history(&id).await.expect("history");
    assert_eq!(
        count(&history, |k| matches!(k, EventKind::TaskFailed(_))),
        2
    );
    assert_eq!(
        count(&history, |k| matches!(k, EventKind::TaskCompleted(_))),
        1
    );
    engine.shutdown().await.expect("clean shutdown");
}

/// Unregistered names and bad input fail the instance with a failure that says which.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unregistered_names_and_bad_input_fail_clearly() {
    let (engine, _dir) = start().await;
    let client = engine.client();

    let missing = run(&client, "NoSuchOrchestration", "missing-1", &()).await;
    let calls = run(&client, "CallsMissing", "calls-missing-1", &()).await;
    let bad = run(&client, "WantsNumber", "bad-input-1", &"not a number").await;

    let failure = |id| {
        let client = client.clone();
        async move {
            let done = finish(&client, &id).await;
            assert_eq!(done.status, OrchestrationStatus::Failed, "{done:?}");
            done.failure.expect("failure details")
        }
    };
    let failed = failure(missing).await;
    assert_eq!(
        failed.error_type,
        netherite::sdk::ORCHESTRATION_NOT_REGISTERED
    );
    assert!(
        failed.error_message.contains("NoSuchOrchestration"),
        "{failed:?}"
    );
    let failed = failure(calls).await;
    assert!(
        failed.error_message.contains("NoSuchActivity"),
        "{failed:?}"
    );
    let failed = failure(bad).await;
    assert_eq!(
        failed.error_type,
        netherite::sdk::DESERIALIZATION_ERROR,
        "{failed:?}"
    );
    engine.shutdown().await.expect("clean shutdown");
}

/// A timer sixty days out is armed as it is: the instance waits, the partition's timer holds
/// that due time, and nothing is logged while it waits (no overflow, no spinning).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timer_sixty_days_out_neither_overflows_nor_spins() {
    let (engine, _dir) = start().await;
    let client = engine.client();
    let sixty_days = 60 * 24 * 3600 * 1000u64;

    let id = run(&client, "Sleeper", "far-1", &sixty_days).await;
    until(&client, &id, |v| v.status == OrchestrationStatus::Running).await;
    let history = client.history(&id).await.expect("history");
    assert_eq!(
        count(&history, |k| matches!(k, EventKind::TimerCreated(_))),
        1
    );

    let partition = netherite_core::partition_of(&id, PARTITIONS);
    let events = |stats: Vec<netherite::host::HostStats>| {
        let host = stats
            .into_iter()
            .find(|s| s.partition == partition)
            .expect("hosted");
        (host.state.events_applied, host.armed)
    };
    let (before, armed) = events(engine.stats().await.expect("stats"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (after, _) = events(engine.stats().await.expect("stats"));

    let due = armed.expect("the timer is armed");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("1970");
    let ahead = due.secs - now.as_secs() as i64;
    assert!(ahead > 59 * 24 * 3600, "armed at {due}, {ahead} s ahead");
    assert!(
        after <= before + 1,
        "{before} -> {after} updates while waiting"
    );
    engine.shutdown().await.expect("clean shutdown");
}

/// An orchestration raises an event on another instance, on another partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_sent_between_instances() {
    let (engine, _dir) = start().await;
    let client = engine.client();
    let (waiter, pinger) = ("pinged", "pinger");
    assert_ne!(
        netherite_core::partition_of(&InstanceId::new(waiter), PARTITIONS),
        netherite_core::partition_of(&InstanceId::new(pinger), PARTITIONS),
        "the story wants two partitions"
    );

    let waiter = run(&client, "Waiter", waiter, &()).await;
    until(&client, &waiter, |v| {
        v.status == OrchestrationStatus::Running
    })
    .await;
    let pinger = run(&client, "Pinger", pinger, &waiter.as_str()).await;

    assert!(completed(&finish(&client, &pinger).await));
    let done = finish(&client, &waiter).await;
    assert_eq!(output::<String>(&done).expect("a string"), "ping");
    engine.shutdown().await.expect("clean shutdown");
}

/// The rest of the context's toolbox: a GUID that replays to the same value, a race of
/// activities won by one (`when_any`) whose losers are still awaited, and a custom status that
/// is cleared at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guid_when_any_and_cleared_status() {
    let (engine, _dir) = start().await;
    let client = engine.client();

    let id = run(&client, "Toolbox", "toolbox-1", &()).await;
    let done = finish(&client, &id).await;

    let (same_guid, sum): (bool, u64) = output(&done).expect("a pair");
    assert!(same_guid, "new_guid replays to the value it had");
    assert_eq!(sum, 9 + 16);
    assert_eq!(done.custom_status, None);
    engine.shutdown().await.expect("clean shutdown");
}
