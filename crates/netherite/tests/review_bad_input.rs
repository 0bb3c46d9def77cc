//! Stories of bad input on the embedded default: payloads over the limit produced by workers,
//! a fan-out too large for one transport message, every client call about an unknown
//! instance, and a damaged commit log under a stopped engine. Each ends in a clear typed error
//! (or a clear failure of the one instance), and the other instances carry on.

mod engine_support;

use std::path::Path;
use std::time::Duration;

use engine_support::{finish, run, settings};
use netherite::client::output;
use netherite::host::PAYLOAD_TOO_LARGE;
use netherite::sdk::{ActivityContext, ActivityError, OrchestrationContext, Registry, TaskError};
use netherite::settings::Settings;
use netherite::{Engine, Error, Netherite};
use netherite_core::model::OrchestrationStatus;
use netherite_core::partition::index::InstanceFilter;
use netherite_core::{InstanceId, PartitionId, partition_of};

/// The payload limit of these stories: small, so oversized answers are cheap to make.
const PAYLOAD_MAX: u64 = 64 << 10;

/// Orchestrations and activities that make payloads of a given size.
fn registry() -> Registry {
    let mut registry = Registry::new();
    registry
        .activity("Bytes", |_ctx: ActivityContext, n: usize| async move {
            Ok::<_, ActivityError>("x".repeat(n))
        })
        .expect("fresh")
        .orchestration("CallsBytes", |ctx: OrchestrationContext, n: usize| async move {
            let text: String = ctx.call_activity("Bytes", n).await?;
            Ok::<_, TaskError>(text.len())
        })
        .expect("fresh")
        .orchestration("Returns", |_ctx: OrchestrationContext, n: usize| async move {
            Ok::<_, TaskError>("y".repeat(n))
        })
        .expect("fresh")
        .orchestration("Length", |_ctx: OrchestrationContext, text: String| async move {
            Ok::<_, TaskError>(text.len())
        })
        .expect("fresh")
        .orchestration("FansOut", |ctx: OrchestrationContext, ids: Vec<String>| async move {
            let input = "z".repeat(800 << 10);
            let children = ids
                .iter()
                .map(|id| ctx.call_sub_orchestration::<usize>("Length", Some(id), &input));
            let lengths = futures::future::join_all(children).await;
            lengths.into_iter().sum::<Result<usize, TaskError>>()
        })
        .expect("fresh");
    registry
}

async fn start_engine(settings: Settings) -> Engine {
    Netherite::builder()
        .settings(settings)
        .registry(registry())
        .start()
        .await
        .expect("the engine starts")
}

/// An activity output and an orchestration result over `payload_bytes_max` fail their own
/// instance with `PayloadTooLarge`, naming the payload; an instance within the limit,
/// running at the same time, completes as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_worker_answers_fail_their_instance_only() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let engine = start_engine(Settings {
        payload_bytes_max: PAYLOAD_MAX,
        ..settings(dir.path())
    })
    .await;
    let client = engine.client();
    let over = PAYLOAD_MAX as usize + 1;

    let big_output = run(&client, "CallsBytes", "big-output", &over).await;
    let big_result = run(&client, "Returns", "big-result", &over).await;
    let fine = run(&client, "CallsBytes", "fine", &(PAYLOAD_MAX as usize - 2)).await;

    let failed = finish(&client, &big_output).await;
    assert_eq!(failed.status, OrchestrationStatus::Failed, "{failed:?}");
    let failure = failed.failure.expect("failure details");
    let cause = failure.inner_failure.as_deref().unwrap_or(&failure);
    assert!(
        cause.error_type == PAYLOAD_TOO_LARGE && cause.error_message.contains("output"),
        "{failure:?}"
    );

    let failed = finish(&client, &big_result).await;
    assert_eq!(failed.status, OrchestrationStatus::Failed, "{failed:?}");
    let failure = failed.failure.expect("failure details");
    assert_eq!(failure.error_type, PAYLOAD_TOO_LARGE, "{failure:?}");
    assert!(failure.error_message.contains("result"), "{failure:?}");

    let done = finish(&client, &fine).await;
    let length: usize = output(&done).expect("a number");
    assert_eq!(length, PAYLOAD_MAX as usize - 2);
    engine.shutdown().await.expect("clean shutdown");
}

/// Ids of `n` instances named `prefix-<i>` that all live on `partition`.
fn ids_on(prefix: &str, partition: PartitionId, count: u32, n: usize) -> Vec<String> {
    (0..)
        .map(|i| format!("{prefix}-{i}"))
        .filter(|id| partition_of(&InstanceId::new(id.as_str()), count) == partition)
        .take(n)
        .collect()
}

/// A parent starts eleven children of 800 KiB input each on one other partition: every
/// payload is within the limit, but the batch for that partition is over the transport's
/// 8 MiB message limit. The outbox splits it instead of dropping it, and the parent finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_out_larger_than_one_message_is_split() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let settings = settings(dir.path());
    let count = settings.partition_count;
    let engine = start_engine(settings).await;
    let client = engine.client();
    let parent = ids_on("parent", PartitionId(0), count, 1).remove(0);
    let children = ids_on("child", PartitionId(1), count, 11);

    let id = run(&client, "FansOut", &parent, &children).await;

    let done = finish(&client, &id).await;
    assert_eq!(done.status, OrchestrationStatus::Completed, "{done:?}");
    let total: usize = output(&done).expect("a number");
    assert_eq!(total, 11 * (800 << 10));
    engine.shutdown().await.expect("clean shutdown");
}

/// Every client call about an instance that does not exist is a typed error (or an empty
/// answer where the protocol has one), and an existing instance is untouched by them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_about_an_unknown_instance_is_typed() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let engine = start_engine(settings(dir.path())).await;
    let client = engine.client();
    let kept = run(&client, "Returns", "kept", &3usize).await;
    finish(&client, &kept).await;
    let nobody = InstanceId::new("nobody");
    let short = Duration::from_millis(300);

    let not_found = |result: Result<(), Error>| {
        assert!(matches!(result, Err(Error::NotFound { .. })), "{result:?}");
    };
    not_found(client.suspend(&nobody, "why").await);
    not_found(client.resume(&nobody, "why").await);
    not_found(client.raise_event(&nobody, "Go", &1).await);
    not_found(client.terminate(&nobody, &"why", true).await);
    not_found(client.history(&nobody).await.map(drop));
    not_found(client.restart(&nobody, false).await.map(drop));
    for waited in [
        client.wait_for_start(&nobody, short).await,
        client.wait_for_completion(&nobody, short).await,
    ] {
        assert!(
            matches!(waited, Err(Error::NotFound { .. } | Error::Timeout { .. })),
            "{waited:?}"
        );
    }
    assert_eq!(client.get_state(&nobody, true).await.expect("read"), None);
    assert_eq!(client.purge(&nobody, true).await.expect("nothing"), 0);
    let filter = InstanceFilter {
        id_prefix: Some("nobody".into()),
        ..InstanceFilter::default()
    };
    assert_eq!(
        client
            .purge_by_filter(&filter, true)
            .await
            .expect("nothing"),
        0
    );

    let view = finish(&client, &kept).await;
    assert_eq!(output::<String>(&view).expect("a string"), "yyy");
    engine.shutdown().await.expect("clean shutdown");
}

/// The commit-log segment of partition `p`.
fn log_segment(dir: &Path, p: u32) -> std::path::PathBuf {
    dir.join(format!("p{p:02}/log/segment-000000000000"))
}

/// A byte flipped inside the commit log of a stopped engine, past its last checkpoint: the
/// next start either fails with an error naming the partition and the offset, or recovers
/// with every acknowledged instance intact. It never panics and never loses work silently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_commit_log_is_refused_with_its_offset() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let quiet = Settings {
        checkpoint_idle: Duration::from_secs(3600),
        checkpoint_events_max: 1 << 30,
        checkpoint_log_bytes_max: 1 << 40,
        ..settings(dir.path())
    };
    let engine = start_engine(quiet.clone()).await;
    let client = engine.client();
    let ids = ids_on("logged", PartitionId(0), quiet.partition_count, 5);
    for id in &ids {
        let started = run(&client, "Returns", id, &10usize).await;
        finish(&client, &started).await;
    }
    drop(client);
    engine.abort();

    let segment = log_segment(dir.path(), 0);
    let mut bytes = std::fs::read(&segment).expect("the log segment");
    let written = bytes.iter().rposition(|&b| b != 0).expect("records") + 1;
    let flipped = written / 3;
    bytes[flipped] ^= 0xff;
    std::fs::write(&segment, &bytes).expect("damaged");

    match start_after_abort(quiet).await {
        Err(error) => {
            let text = error.to_string();
            assert!(
                matches!(&error, Error::CorruptRecord { partition, .. }
                    | Error::Storage { partition, .. } if partition.0 == 0),
                "{text}"
            );
            assert!(
                text.contains("offset") || text.contains("position"),
                "{text}"
            );
        }
        Ok(engine) => {
            let client = engine.client();
            for id in &ids {
                let view = client.get_state(&InstanceId::new(id.as_str()), true).await;
                let view = view.expect("read").expect("acknowledged work is kept");
                assert_eq!(view.status, OrchestrationStatus::Completed);
            }
            engine.shutdown().await.expect("clean shutdown");
        }
    }
}

/// Starts an engine on a task hub whose previous engine was just aborted. An aborted engine's
/// tasks let go of the hub's lock as the runtime cancels them, a moment later, the way a
/// killed process's lock goes when the kernel reaps it: wait for that (a few seconds at most),
/// and hand every other outcome to the caller.
async fn start_after_abort(settings: Settings) -> Result<netherite::Engine, Error> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let started = Netherite::builder()
            .settings(settings.clone())
            .registry(registry())
            .start()
            .await;
        match started {
            Err(Error::TaskHubLocked { .. }) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => return other,
        }
    }
}
