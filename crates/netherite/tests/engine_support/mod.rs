//! What the engine and client stories share: a registry of small orchestrations and activities
//! and an engine on a temporary data directory (the embedded default).

#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use netherite::client::{Client, StartOptions};
use netherite::sdk::{
    ActivityContext, ActivityError, Either, OrchestrationContext, Registry, RetryPolicy, TaskError,
};
use netherite::settings::Settings;
use netherite::{Engine, Netherite};
use netherite_core::InstanceId;
use netherite_core::model::{EventKind, HistoryEvent, OrchestrationStatus};
use netherite_core::partition::InstanceView;
use tempfile::TempDir;

/// How long a story waits for anything before it calls the engine stuck.
pub(crate) const PATIENCE: Duration = Duration::from_secs(20);

/// The partition count of the stories' task hubs: small, so engines start fast, but more than
/// one, so instances and their children live on different partitions.
pub(crate) const PARTITIONS: u32 = 4;

/// Settings for a task hub in `dir`.
pub(crate) fn settings(dir: &Path) -> Settings {
    Settings {
        partition_count: PARTITIONS,
        data_dir: dir.to_path_buf(),
        checkpoint_idle: Duration::from_millis(200),
        ..Settings::default()
    }
}

/// A started engine on a fresh temporary directory, with its directory.
pub(crate) async fn start() -> (Engine, TempDir) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let engine = start_in(dir.path()).await;
    (engine, dir)
}

/// A started engine on `dir`.
pub(crate) async fn start_in(dir: &Path) -> Engine {
    start_with(settings(dir)).await
}

/// A started engine with `settings`.
pub(crate) async fn start_with(settings: Settings) -> Engine {
    Netherite::builder()
        .settings(settings)
        .registry(registry())
        .start()
        .await
        .expect("the engine starts")
}

/// Starts `name` with `input` under `id`.
pub(crate) async fn run(
    client: &Client,
    name: &str,
    id: &str,
    input: &impl serde::Serialize,
) -> InstanceId {
    let options = StartOptions::new(name)
        .with_instance_id(id)
        .with_input(input)
        .expect("input serializes");
    client.start(options).await.expect("the instance starts")
}

/// Waits for `id` to finish.
pub(crate) async fn finish(client: &Client, id: &InstanceId) -> InstanceView {
    client
        .wait_for_completion(id, PATIENCE)
        .await
        .expect("the instance finishes in time")
}

/// Waits until `check` holds for the instance's state (read every 20 ms).
pub(crate) async fn until(
    client: &Client,
    id: &InstanceId,
    check: impl Fn(&InstanceView) -> bool,
) -> InstanceView {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let view = client.get_state(id, true).await.expect("a read");
        if let Some(view) = view.filter(&check) {
            return view;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "instance {id} never got there"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How many events of the history are of the kind `matches` picks.
pub(crate) fn count(history: &[HistoryEvent], matches: impl Fn(&EventKind) -> bool) -> usize {
    history.iter().filter(|e| matches(&e.kind)).count()
}

/// Whether the instance completed successfully.
pub(crate) fn completed(view: &InstanceView) -> bool {
    view.status == OrchestrationStatus::Completed
}

/// Attempts of the `Flaky` activity so far.
static FLAKY_ATTEMPTS: AtomicU32 = AtomicU32::new(0);

/// Runs of the `Touch` activity so far: a side effect a story can watch.
pub(crate) static TOUCHES: AtomicU32 = AtomicU32::new(0);

/// The stories' orchestrations and activities.
pub(crate) fn registry() -> Registry {
    let mut registry = Registry::new();
    basics(&mut registry);
    interactions(&mut registry);
    activities(&mut registry);
    registry
}

/// Sequences, fan-outs, sub-orchestrations, timers and continue-as-new.
fn basics(registry: &mut Registry) {
    registry
        .orchestration(
            "Hello",
            |ctx: OrchestrationContext, name: String| async move {
                let mut greetings = Vec::new();
                for city in ["Tokyo", "Seattle", &name] {
                    greetings.push(ctx.call_activity::<String>("SayHello", city).await?);
                }
                Ok::<_, TaskError>(greetings.join(" "))
            },
        )
        .expect("fresh")
        .orchestration("FanOut", |ctx: OrchestrationContext, n: u64| async move {
            let tasks = (1..=n).map(|i| ctx.call_activity::<u64>("Square", i));
            let squares = futures::future::join_all(tasks).await;
            squares.into_iter().sum::<Result<u64, TaskError>>()
        })
        .expect("fresh")
        .orchestration("Parent", |ctx: OrchestrationContext, n: u64| async move {
            let children = (0..n).map(|i| {
                let id = format!("{}-child-{i}", ctx.instance_id());
                ctx.call_sub_orchestration::<u64>("Child", Some(&id), i)
            });
            let results = futures::future::join_all(children).await;
            results.into_iter().sum::<Result<u64, TaskError>>()
        })
        .expect("fresh")
        .orchestration("Child", |ctx: OrchestrationContext, i: u64| async move {
            let doubled: u64 = ctx.call_activity("Double", i).await?;
            Ok::<_, TaskError>(doubled)
        })
        .expect("fresh")
        .orchestration(
            "Sleeper",
            |ctx: OrchestrationContext, millis: u64| async move {
                ctx.create_timer(Duration::from_millis(millis)).await;
                Ok::<_, TaskError>(ctx.current_utc_datetime().as_millis())
            },
        )
        .expect("fresh")
        .orchestration(
            "Approval",
            |ctx: OrchestrationContext, millis: u64| async move {
                let approval = ctx.wait_for_external_event::<String>("Approved");
                let timeout = ctx.create_timer(Duration::from_millis(millis));
                match ctx.select2(approval, timeout).await {
                    Either::Left((by, _)) => Ok::<_, TaskError>(format!("approved by {}", by?)),
                    Either::Right(((), _)) => Ok("timed out".to_string()),
                }
            },
        )
        .expect("fresh")
        .orchestration("Counter", |ctx: OrchestrationContext, n: u64| async move {
            if n >= 5 {
                return Ok::<_, TaskError>(n);
            }
            ctx.continue_as_new(n + 1).await
        })
        .expect("fresh");
}

/// Orchestrations that talk to the client: events, custom status, retries, failures.
fn interactions(registry: &mut Registry) {
    registry
        .orchestration("Status", |ctx: OrchestrationContext, (): ()| async move {
            ctx.set_custom_status("waiting for go")
                .expect("a string serializes");
            let go: String = ctx.wait_for_external_event("Go").await?;
            ctx.set_custom_status(format!("went {go}"))
                .expect("a string serializes");
            Ok::<_, TaskError>(go)
        })
        .expect("fresh")
        .orchestration(
            "Retrying",
            |ctx: OrchestrationContext, fails: u32| async move {
                let policy = RetryPolicy::new(5, Duration::from_millis(50));
                let attempts: u32 = ctx.call_activity_with_retry("Flaky", fails, policy).await?;
                Ok::<_, TaskError>(attempts)
            },
        )
        .expect("fresh")
        .orchestration("Waiter", |ctx: OrchestrationContext, (): ()| async move {
            let value: String = ctx.wait_for_external_event("Go").await?;
            Ok::<_, TaskError>(value)
        })
        .expect("fresh")
        .orchestration(
            "WaitingParent",
            |ctx: OrchestrationContext, (): ()| async move {
                let id = format!("{}-child", ctx.instance_id());
                let value: String = ctx.call_sub_orchestration("Waiter", Some(&id), ()).await?;
                Ok::<_, TaskError>(value)
            },
        )
        .expect("fresh")
        .orchestration(
            "Pinger",
            |ctx: OrchestrationContext, target: String| async move {
                ctx.send_event(&target, "Go", "ping")
                    .expect("a string serializes");
                Ok::<_, TaskError>(())
            },
        )
        .expect("fresh")
        .orchestration("Toolbox", |ctx: OrchestrationContext, (): ()| async move {
            ctx.set_custom_status("busy").expect("a string serializes");
            let guid = ctx.new_guid();
            let echoed: String = ctx.call_activity("Echo", &guid).await?;
            let squares = vec![
                ctx.call_activity::<u64>("Square", 3),
                ctx.call_activity("Square", 4),
            ];
            let (first, _index, rest) = ctx.when_any(squares).await;
            let mut sum = first?;
            for task in rest {
                sum += task.await?;
            }
            ctx.clear_custom_status();
            Ok::<_, TaskError>((guid == echoed, sum))
        })
        .expect("fresh")
        .orchestration("Toucher", |ctx: OrchestrationContext, (): ()| async move {
            let touches: u32 = ctx.call_activity("Touch", ()).await?;
            Ok::<_, TaskError>(touches)
        })
        .expect("fresh")
        .orchestration(
            "CallsMissing",
            |ctx: OrchestrationContext, (): ()| async move {
                let value: String = ctx.call_activity("NoSuchActivity", ()).await?;
                Ok::<_, TaskError>(value)
            },
        )
        .expect("fresh")
        .orchestration(
            "WantsNumber",
            |_ctx: OrchestrationContext, n: u64| async move { Ok::<_, TaskError>(n) },
        )
        .expect("fresh");
}

fn activities(registry: &mut Registry) {
    registry
        .activity(
            "SayHello",
            |_ctx: ActivityContext, city: String| async move {
                Ok::<_, ActivityError>(format!("Hello {city}!"))
            },
        )
        .expect("fresh")
        .activity("Square", |_ctx: ActivityContext, i: u64| async move {
            Ok::<_, ActivityError>(i * i)
        })
        .expect("fresh")
        .activity("Double", |_ctx: ActivityContext, i: u64| async move {
            Ok::<_, ActivityError>(2 * i)
        })
        .expect("fresh")
        .activity("Echo", |_ctx: ActivityContext, text: String| async move {
            Ok::<_, ActivityError>(text)
        })
        .expect("fresh")
        .activity("Touch", |_ctx: ActivityContext, (): ()| async move {
            Ok::<_, ActivityError>(TOUCHES.fetch_add(1, Ordering::SeqCst) + 1)
        })
        .expect("fresh")
        .activity("Flaky", |_ctx: ActivityContext, fails: u32| async move {
            let attempt = FLAKY_ATTEMPTS.fetch_add(1, Ordering::SeqCst) + 1;
            if attempt <= fails {
                return Err(ActivityError::new(format!("attempt {attempt} fails")));
            }
            Ok(attempt)
        })
        .expect("fresh");
}

/// The engine's client wrapped for sharing between a story's tasks.
pub(crate) fn shared(engine: &Engine) -> Arc<Client> {
    Arc::new(engine.client())
}

/// The broker named by `NETHERITE_TEST_KAFKA` for the Kafka stories of `what`; without one
/// they say they are skipped, except in CI (`CI=true`), where that is a failure.
#[cfg(feature = "kafka")]
pub(crate) fn kafka_broker(what: &str) -> Option<String> {
    let what = format!("the {what} stories");
    netherite_core::conformance::outside_service("NETHERITE_TEST_KAFKA", &what)
}

/// An engine with `settings` over Kafka as the only node of its hub, once it hosts every
/// partition.
#[cfg(feature = "kafka")]
pub(crate) async fn start_alone_on_kafka(
    settings: Settings,
    options: netherite::kafka::KafkaOptions,
) -> Engine {
    let all = settings.partition_count as usize;
    let engine = Netherite::builder()
        .settings(settings)
        .registry(registry())
        .start_on_kafka(options)
        .await
        .expect("the engine starts on kafka");
    engine
        .wait_for_partitions(all, Duration::from_secs(60))
        .await
        .expect("the only node hosts every partition");
    engine
}
