//! The engine with its partition inputs on Kafka (feature `kafka`), against the broker named
//! by `NETHERITE_TEST_KAFKA` (`.ci/kafka-tests` starts one): orchestrations that cross
//! partitions run through the topics, and a restart resumes every input exactly where the
//! checkpoints and logs say, so nothing runs twice. Outside CI, without a broker, the stories
//! say they are skipped; in CI (`CI=true`) that is a failure.

#![cfg(feature = "kafka")]

mod engine_support;

use std::path::Path;

use engine_support::*;
use netherite::Engine;
use netherite::kafka::KafkaOptions;
use netherite_core::model::{EventKind, OrchestrationStatus};

fn broker() -> Option<String> {
    kafka_broker("Kafka engine")
}

async fn engine_on(dir: &Path, options: &KafkaOptions) -> Engine {
    start_alone_on_kafka(settings(dir), options.clone()).await
}

/// Sub-orchestrations on other partitions and a hello sequence complete over Kafka; after a
/// graceful restart on the same directory and topics, the earlier instances are there with
/// one start and one end each, and new work runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orchestrations_run_over_kafka_and_survive_a_restart() {
    let Some(broker) = broker() else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let hub = format!("engine-{}", std::process::id());
    let options = KafkaOptions::new(broker, hub, PARTITIONS);

    // Phase 1: work that crosses partitions, through the input topic.
    let engine = engine_on(dir.path(), &options).await;
    let client = engine.client();
    let parent = run(&client, "Parent", "parent", &4u64).await;
    let hello = run(&client, "Hello", "hello", &"Kafka").await;
    for id in [&hello, &parent] {
        let done = finish(&client, id).await;
        assert_eq!(done.status, OrchestrationStatus::Completed);
    }
    engine.shutdown().await.expect("clean shutdown");

    // Phase 2: the same hub again; what ran is still there, once, and new work runs.
    let engine = engine_on(dir.path(), &options).await;
    let client = engine.client();
    for id in [&parent, &hello] {
        let history = client.history(id).await.expect("history");
        let starts = history
            .iter()
            .filter(|e| matches!(e.kind, EventKind::ExecutionStarted(_)))
            .count();
        let ends = history
            .iter()
            .filter(|e| matches!(e.kind, EventKind::ExecutionCompleted(_)))
            .count();
        assert_eq!((starts, ends), (1, 1), "{id}");
    }
    let again = run(&client, "Hello", "hello-again", &"Kafka").await;
    assert_eq!(
        finish(&client, &again).await.status,
        OrchestrationStatus::Completed
    );
    engine.shutdown().await.expect("clean shutdown");
}

/// Page blobs are not a Kafka node's storage: asking for them is refused before any broker is
/// tried, naming the setting, rather than ignored.
#[tokio::test]
async fn page_blob_storage_under_kafka_is_refused() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut settings = settings(dir.path());
    settings.storage = netherite::settings::StorageKind::PageBlob;
    settings.storage_connection = Some(netherite::settings::Secret::new(
        "UseDevelopmentStorage=true",
    ));
    let options = KafkaOptions::new("127.0.0.1:9", "refused", PARTITIONS);
    let started = netherite::Netherite::builder()
        .settings(settings)
        .start_on_kafka(options)
        .await;
    let error = started.expect_err("page blobs under Kafka are refused");
    assert!(
        matches!(
            &error,
            netherite::Error::InvalidSetting {
                setting: "storage",
                ..
            }
        ),
        "{error}"
    );
    assert!(
        !dir.path().join("taskhub.toml").exists(),
        "nothing was written"
    );
}
