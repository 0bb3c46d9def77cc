//! The engine over the in-memory hub and disks: the host's behaviour without files.

use std::time::Duration;

use netherite::Engine;
use netherite::client::{StartOptions, output};
use netherite::host::MemoryStorage;
use netherite::sdk::{ActivityContext, ActivityError, OrchestrationContext, Registry, TaskError};
use netherite::settings::Settings;
use netherite_core::model::OrchestrationStatus;
use netherite_core::transport::MemoryHub;

fn registry() -> Registry {
    let mut registry = Registry::new();
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
        .expect("a fresh name")
        .activity(
            "SayHello",
            |_ctx: ActivityContext, city: String| async move {
                Ok::<_, ActivityError>(format!("Hello {city}!"))
            },
        )
        .expect("a fresh name");
    registry
}

fn settings() -> Settings {
    Settings {
        partition_count: 4,
        ..Settings::default()
    }
}

/// A sequence of three activities runs to completion, and its output reads back typed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequence_completes_in_memory() {
    let engine = Engine::in_memory(registry(), &settings())
        .await
        .expect("engine starts");
    let client = engine.client();

    let options = StartOptions::new("Hello")
        .with_instance_id("hello-1")
        .with_input(&"London")
        .expect("input");
    let id = client.start(options).await.expect("started");
    let done = client
        .wait_for_completion(&id, Duration::from_secs(10))
        .await
        .expect("completes");

    assert_eq!(done.status, OrchestrationStatus::Completed, "{done:?}");
    let greeting: String = output(&done).expect("a string");
    assert_eq!(greeting, "Hello Tokyo! Hello Seattle! Hello London!");
    engine.shutdown().await.expect("clean shutdown");
}

/// An engine restarted on the same hub and disks finds the finished instance again, and one
/// started before the restart finishes after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_recovers_in_memory() {
    let hub = MemoryHub::new(4).expect("hub");
    let storage = MemoryStorage::new();
    let engine = Engine::in_memory_on(&hub, &storage, registry(), &settings())
        .await
        .expect("engine starts");
    let client = engine.client();
    let id = client
        .start(
            StartOptions::new("Hello")
                .with_instance_id("r-1")
                .with_input(&"Oslo")
                .expect("input"),
        )
        .await
        .expect("started");
    client
        .wait_for_completion(&id, Duration::from_secs(10))
        .await
        .expect("completes");
    engine.shutdown().await.expect("clean shutdown");

    let engine = Engine::in_memory_on(&hub, &storage, registry(), &settings())
        .await
        .expect("engine restarts");
    let view = engine
        .client()
        .get_state(&id, true)
        .await
        .expect("read")
        .expect("still there");
    assert_eq!(view.status, OrchestrationStatus::Completed);
    engine.shutdown().await.expect("clean shutdown");
}
