//! Stories of every client call on the embedded default: suspension, termination, restart,
//! purges, queries with page tokens, history, scheduled starts, the reuse policy, waits that
//! time out and payloads over the limit.

mod engine_support;

use std::collections::BTreeSet;
use std::time::Duration;

use engine_support::*;
use netherite::Error;
use netherite::client::{StartOptions, output};
use netherite_core::InstanceId;
use netherite_core::model::{EventKind, OrchestrationStatus};
use netherite_core::partition::index::InstanceFilter;

/// A suspended instance holds a raised event until it is resumed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspend_and_resume() {
    let (engine, _dir) = start().await;
    let client = engine.client();
    let id = run(&client, "Waiter", "waiter-1", &()).await;
    until(&client, &id, |v| v.status == OrchestrationStatus::Running).await;

    client.suspend(&id, "maintenance").await.expect("suspended");
    until(&client, &id, |v| v.status == OrchestrationStatus::Suspended).await;
    client
        .raise_event(&id, "Go", &"later")
        .await
        .expect("raised");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let held = client
        .get_state(&id, false)
        .await
        .expect("read")
        .expect("there");
    assert_eq!(
        held.status,
        OrchestrationStatus::Suspended,
        "the event waits"
    );

    client.resume(&id, "done").await.expect("resumed");
    let done = finish(&client, &id).await;
    assert_eq!(output::<String>(&done).expect("a string"), "later");
    engine.shutdown().await.expect("clean shutdown");
}

/// Terminating a parent recursively terminates its waiting child too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_recursive() {
    let (engine, _dir) = start().await;
    let client = engine.client();
    let parent = run(&client, "WaitingParent", "tparent", &()).await;
    let child = InstanceId::new("tparent-child");
    until(&client, &child, |v| {
        v.status == OrchestrationStatus::Running
    })
    .await;

    client
        .terminate(&parent, &"enough", true)
        .await
        .expect("terminated");

    let parent_done = finish(&client, &parent).await;
    let child_done = finish(&client, &child).await;
    assert_eq!(parent_done.status, OrchestrationStatus::Terminated);
    assert_eq!(child_done.status, OrchestrationStatus::Terminated);
    assert_eq!(
        output::<String>(&parent_done).expect("the reason"),
        "enough"
    );
    engine.shutdown().await.expect("clean shutdown");
}

/// A finished instance restarts under its own id (a new execution) or under a fresh one; a
/// running one cannot restart under its own id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_same_and_new_id() {
    let (engine, _dir) = start().await;
    let client = engine.client();
    let id = run(&client, "Hello", "restart-1", &"Rome").await;
    let first = finish(&client, &id).await;

    let again = client.restart(&id, false).await.expect("restarted");
    assert_eq!(again, id);
    let second = finish(&client, &id).await;
    assert_ne!(first.execution_id, second.execution_id);
    assert_eq!(
        output::<String>(&second).expect("a string"),
        output::<String>(&first).expect("same")
    );

    let copy = client
        .restart(&id, true)
        .await
        .expect("restarted under a new id");
    assert_ne!(copy, id);
    assert_eq!(finish(&client, &copy).await.name, "Hello");

    let waiting = run(&client, "Waiter", "restart-running", &()).await;
    let refused = client.restart(&waiting, false).await.unwrap_err();
    assert!(
        matches!(refused, Error::FailedPrecondition { .. }),
        "{refused}"
    );
    engine.shutdown().await.expect("clean shutdown");
}

/// Purge by id removes an instance (with its children when recursive); a running instance is
/// refused; purge by filter removes every finished match on every partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_by_id_and_by_filter() {
    let (engine, _dir) = start().await;
    let client = engine.client();

    // Phase 1: a parent and its three children, purged recursively.
    let parent = run(&client, "Parent", "purge-parent", &3u64).await;
    finish(&client, &parent).await;
    assert_eq!(client.purge(&parent, true).await.expect("purged"), 4);
    for id in [
        "purge-parent",
        "purge-parent-child-0",
        "purge-parent-child-2",
    ] {
        let gone = client
            .get_state(&InstanceId::new(id), false)
            .await
            .expect("read");
        assert!(gone.is_none(), "{id} is gone");
    }

    // Phase 2: a running instance is refused.
    let waiting = run(&client, "Waiter", "purge-running", &()).await;
    let refused = client.purge(&waiting, false).await.unwrap_err();
    assert!(
        matches!(refused, Error::FailedPrecondition { .. }),
        "{refused}"
    );

    // Phase 3: by filter, only finished instances with the prefix.
    for i in 0..8 {
        let id = run(&client, "Hello", &format!("batch-{i}"), &"x").await;
        finish(&client, &id).await;
    }
    let filter = InstanceFilter {
        id_prefix: Some("batch-".into()),
        ..InstanceFilter::default()
    };
    assert_eq!(
        client
            .purge_by_filter(&filter, false)
            .await
            .expect("purged"),
        8
    );
    let left = client.query(&filter, None, 100).await.expect("query");
    assert!(left.instances.is_empty());
    assert!(
        client
            .get_state(&waiting, false)
            .await
            .expect("read")
            .is_some()
    );
    engine.shutdown().await.expect("clean shutdown");
}

/// A query pages through every match across partitions, in creation order, without repeats.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_pages_across_partitions() {
    let (engine, _dir) = start().await;
    let client = engine.client();
    for i in 0..25 {
        run(&client, "Waiter", &format!("q-{i:02}"), &()).await;
    }
    run(&client, "Waiter", "other", &()).await;

    let filter = InstanceFilter {
        id_prefix: Some("q-".into()),
        ..InstanceFilter::default()
    };
    let (mut seen, mut token, mut pages) = (Vec::new(), None, 0);
    loop {
        let page = client
            .query(&filter, token.as_deref(), 10)
            .await
            .expect("query");
        pages += 1;
        seen.extend(
            page.instances
                .iter()
                .map(|v| (v.created, v.instance_id.clone())),
        );
        match page.next {
            Some(next) => token = Some(next),
            None => break,
        }
    }

    assert_eq!(pages, 3);
    let distinct: BTreeSet<_> = seen.iter().map(|(_, id)| id.clone()).collect();
    assert_eq!((seen.len(), distinct.len()), (25, 25));
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "creation order");
    let running = InstanceFilter {
        statuses: vec![OrchestrationStatus::Completed],
        ..filter
    };
    assert!(
        client
            .query(&running, None, 0)
            .await
            .expect("query")
            .instances
            .is_empty()
    );
    engine.shutdown().await.expect("clean shutdown");
}

/// The history of a finished instance starts with its start and ends with its completion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_of_an_instance() {
    let (engine, _dir) = start().await;
    let client = engine.client();
    let id = run(&client, "Hello", "history-1", &"Lima").await;
    finish(&client, &id).await;

    let history = client.history(&id).await.expect("history");

    assert!(matches!(
        history.first().map(|e| &e.kind),
        Some(EventKind::OrchestratorStarted)
    ));
    assert_eq!(
        count(&history, |k| matches!(k, EventKind::ExecutionStarted(_))),
        1
    );
    assert!(matches!(
        history.last().map(|e| &e.kind),
        Some(EventKind::ExecutionCompleted(_))
    ));
    let missing = client
        .history(&InstanceId::new("nobody"))
        .await
        .unwrap_err();
    assert!(matches!(missing, Error::NotFound { .. }), "{missing}");
    engine.shutdown().await.expect("clean shutdown");
}

/// A scheduled start keeps the instance pending until its time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_start() {
    let (engine, _dir) = start().await;
    let client = engine.client();
    let at = netherite_core::Timestamp::from_millis(now_millis() + 500);
    let options = StartOptions::new("Hello")
        .with_instance_id("scheduled-1")
        .with_input(&"Kyiv")
        .expect("input")
        .with_scheduled_start(at);

    let id = client.start(options).await.expect("started");
    let pending = client
        .get_state(&id, false)
        .await
        .expect("read")
        .expect("there");
    assert_eq!(pending.scheduled_start, Some(at));
    if now_millis() < at.as_millis() {
        assert_eq!(pending.status, OrchestrationStatus::Pending);
    }

    let started = client.wait_for_start(&id, PATIENCE).await.expect("starts");
    assert!(now_millis() >= at.as_millis(), "not before its time");
    assert_ne!(started.status, OrchestrationStatus::Pending);
    assert!(completed(&finish(&client, &id).await));
    engine.shutdown().await.expect("clean shutdown");
}

/// An existing id is refused unless its status is one the start may replace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reuse_policy() {
    let (engine, _dir) = start().await;
    let client = engine.client();
    let id = run(&client, "Hello", "reuse-1", &"Cairo").await;
    let first = finish(&client, &id).await;

    let options = || StartOptions::new("Hello").with_instance_id("reuse-1");
    let refused = client.start(options()).await.unwrap_err();
    assert!(
        matches!(
            refused,
            Error::AlreadyExists {
                status: OrchestrationStatus::Completed,
                ..
            }
        ),
        "{refused}"
    );
    let replaced = options().with_reuse(&[OrchestrationStatus::Completed]);
    client.start(replaced).await.expect("replaced");
    let second = finish(&client, &id).await;
    assert_ne!(first.execution_id, second.execution_id);
    engine.shutdown().await.expect("clean shutdown");
}

/// A wait that runs out of time is a typed timeout; get_state leaves payloads out unless asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_timeout_and_payloads() {
    let (engine, _dir) = start().await;
    let client = engine.client();
    let id = run(&client, "Waiter", "slowpoke", &()).await;

    let waited = client
        .wait_for_completion(&id, Duration::from_millis(300))
        .await;
    assert!(matches!(waited, Err(Error::Timeout { .. })), "{waited:?}");

    client.raise_event(&id, "Go", &"yes").await.expect("raised");
    finish(&client, &id).await;
    let bare = client
        .get_state(&id, false)
        .await
        .expect("read")
        .expect("there");
    let full = client
        .get_state(&id, true)
        .await
        .expect("read")
        .expect("there");
    assert_eq!(
        (bare.output, full.output.as_deref()),
        (None, Some("\"yes\""))
    );
    engine.shutdown().await.expect("clean shutdown");
}

/// A wait is a long poll kept by the partition host: it ends with `NotFound` at once for an
/// unknown instance, and with the instance as soon as it finishes; the engine's own client
/// hands its requests to the partitions directly, so no input queue moved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_end_on_the_change_and_requests_bypass_the_input() {
    let (engine, _dir) = start().await;
    let client = engine.client();

    let unknown = client
        .wait_for_start(&InstanceId::new("nobody"), PATIENCE)
        .await;
    assert!(
        matches!(unknown, Err(Error::NotFound { .. })),
        "{unknown:?}"
    );

    // Phase 1: a wait that is pending shows in the host's figures.
    let id = run(&client, "Waiter", "long-poll", &()).await;
    let waiter = {
        let (client, id) = (client.clone(), id.clone());
        tokio::spawn(async move { client.wait_for_completion(&id, PATIENCE).await })
    };
    let deadline = std::time::Instant::now() + PATIENCE;
    while waiting(&engine).await == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the wait never registered"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // Phase 2: the event finishes the instance, and the wait ends with it.
    client.raise_event(&id, "Go", &"now").await.expect("raised");
    let done = waiter.await.expect("joins").expect("answered");
    assert_eq!(done.status, OrchestrationStatus::Completed);
    assert_eq!(done.output.as_deref(), Some("\"now\""));
    assert_eq!(waiting(&engine).await, 0);

    let stats = engine.stats().await.expect("figures");
    let moved: Vec<_> = stats.iter().filter(|s| s.input_position.0 != 0).collect();
    assert!(moved.is_empty(), "input queues moved: {moved:?}");
    engine.shutdown().await.expect("clean shutdown");
}

async fn waiting(engine: &netherite::Engine) -> usize {
    let stats = engine.stats().await.expect("figures");
    stats.iter().map(|s| s.waiting).sum()
}

/// Payloads over `payload_bytes_max` are refused before anything is sent, naming the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_over_the_limit_is_refused() {
    let (engine, _dir) = start().await;
    let client = engine.client();
    let big = "x".repeat(1 << 20);

    let options = StartOptions::new("Hello")
        .with_input(&big)
        .expect("serializes");
    let refused = client.start(options).await.unwrap_err();
    assert!(
        matches!(refused, Error::PayloadTooLarge { max, .. } if max == 1 << 20),
        "{refused}"
    );
    assert!(
        refused.to_string().contains("payload_bytes_max"),
        "{refused}"
    );

    let id = run(&client, "Waiter", "big-event", &()).await;
    let refused = client.raise_event(&id, "Go", &big).await.unwrap_err();
    assert!(
        matches!(refused, Error::PayloadTooLarge { .. }),
        "{refused}"
    );
    engine.shutdown().await.expect("clean shutdown");
}

fn now_millis() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970");
    since.as_millis() as i64
}

/// Malformed requests and requests about unknown instances are typed errors that change
/// nothing (purging what is not there deletes nothing, as the protocol has it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_typed_errors() {
    let (engine, _dir) = start().await;
    let client = engine.client();
    let nobody = InstanceId::new("nobody");

    let unnamed = client.start(StartOptions::new("")).await.unwrap_err();
    assert!(matches!(unnamed, Error::InvalidRequest { .. }), "{unnamed}");
    let entity_id = StartOptions::new("Hello").with_instance_id("@counter@x");
    let refused = client.start(entity_id).await.unwrap_err();
    assert!(matches!(refused, Error::InvalidRequest { .. }), "{refused}");

    let raised = client.raise_event(&nobody, "Go", &1).await.unwrap_err();
    assert!(matches!(raised, Error::NotFound { .. }), "{raised}");
    let terminated = client.terminate(&nobody, &"why", false).await.unwrap_err();
    assert!(matches!(terminated, Error::NotFound { .. }), "{terminated}");
    assert_eq!(
        client
            .purge(&nobody, false)
            .await
            .expect("nothing to purge"),
        0
    );
    let restarted = client.restart(&nobody, true).await.unwrap_err();
    assert!(matches!(restarted, Error::NotFound { .. }), "{restarted}");
    assert!(
        client
            .get_state(&nobody, true)
            .await
            .expect("read")
            .is_none()
    );
    let token = client
        .query(&InstanceFilter::default(), Some("garbage"), 10)
        .await;
    assert!(
        matches!(token, Err(Error::InvalidRequest { .. })),
        "{token:?}"
    );
    engine.shutdown().await.expect("clean shutdown");
}

/// After the engine shut down, a client of it fails at once with `Closed`, on writes and reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_of_a_stopped_engine_fails_fast() {
    let (engine, _dir) = start().await;
    let client = engine.client();
    engine.shutdown().await.expect("clean shutdown");

    let started = std::time::Instant::now();
    let read = client.get_state(&InstanceId::new("x"), false).await;
    let write = client.start(StartOptions::new("Hello")).await;

    assert!(matches!(read, Err(Error::Closed(_))), "{read:?}");
    assert!(matches!(write, Err(Error::Closed(_))), "{write:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}
