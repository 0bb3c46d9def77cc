//! The engine over the in-memory hub and disks: the same engine with no files, and crashes
//! that lose every write not yet flushed.

mod engine_support;

use std::time::Duration;

use engine_support::*;
use netherite::Engine;
use netherite::client::{Client, output};
use netherite::host::MemoryStorage;
use netherite::settings::Settings;
use netherite_core::InstanceId;
use netherite_core::model::EventKind;
use netherite_core::transport::MemoryHub;

fn memory_settings() -> Settings {
    Settings {
        partition_count: PARTITIONS,
        checkpoint_events_max: 50,
        ..Settings::default()
    }
}

async fn engine_on(hub: &MemoryHub, storage: &MemoryStorage) -> Engine {
    Engine::in_memory_on(hub, storage, registry(), &memory_settings())
        .await
        .expect("the engine starts")
}

/// A sequence of three activities runs to completion in memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequence_completes_in_memory() {
    let engine = Engine::in_memory(registry(), &memory_settings())
        .await
        .expect("engine starts");
    let client = engine.client();

    let id = run(&client, "Hello", "hello-1", &"London").await;
    let done = finish(&client, &id).await;

    let greeting: String = output(&done).expect("a string");
    assert_eq!(greeting, "Hello Tokyo! Hello Seattle! Hello London!");
    engine.shutdown().await.expect("clean shutdown");
}

/// A crash at an arbitrary moment (the engine aborted, then every write not yet flushed lost)
/// loses no acknowledged start and runs nothing twice: an engine started on the same hub and
/// disks sees every acknowledged instance complete, each with one start and one end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_mid_flight_loses_nothing_acknowledged() {
    for round in 0..4u64 {
        let hub = MemoryHub::new(PARTITIONS).expect("hub");
        let storage = MemoryStorage::new();

        // Phase 1: start work from several tasks, crash after a round-dependent pause.
        let engine = engine_on(&hub, &storage).await;
        let starters: Vec<_> = (0..4)
            .map(|s| tokio::spawn(start_batch(engine.client(), round, s)))
            .collect();
        tokio::time::sleep(Duration::from_millis(10 + 40 * round)).await;
        engine.abort();
        storage.crash();
        let mut acknowledged = Vec::new();
        for starter in starters {
            acknowledged.extend(starter.await.expect("the starter ends"));
        }

        // Phase 2: recover and see every acknowledged instance through, once.
        let engine = engine_on(&hub, &storage).await;
        let client = engine.client();
        for id in &acknowledged {
            let done = finish(&client, id).await;
            assert!(completed(&done), "round {round}: {done:?}");
            let history = client.history(id).await.expect("history");
            let starts = count(&history, |k| matches!(k, EventKind::ExecutionStarted(_)));
            let ends = count(&history, |k| matches!(k, EventKind::ExecutionCompleted(_)));
            assert_eq!((starts, ends), (1, 1), "round {round}: {id}");
        }
        engine.shutdown().await.expect("clean shutdown");
    }
}

/// Starts instances until the engine goes away; returns those whose start was acknowledged.
async fn start_batch(client: Client, round: u64, starter: u32) -> Vec<InstanceId> {
    let mut acknowledged = Vec::new();
    for i in 0..40u32 {
        let id = format!("r{round}-s{starter}-{i}");
        let options =
            netherite::client::StartOptions::new(if i % 2 == 0 { "Parent" } else { "FanOut" })
                .with_instance_id(id)
                .with_input(&3u64)
                .expect("input");
        let started = tokio::time::timeout(Duration::from_millis(500), client.start(options)).await;
        match started {
            Ok(Ok(id)) => acknowledged.push(id),
            _ => break,
        }
    }
    acknowledged
}

/// An engine restarted on the same hub and disks finds the finished instance again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_recovers_in_memory() {
    let hub = MemoryHub::new(PARTITIONS).expect("hub");
    let storage = MemoryStorage::new();
    let engine = engine_on(&hub, &storage).await;
    let id = run(&engine.client(), "Hello", "r-1", &"Oslo").await;
    finish(&engine.client(), &id).await;
    engine.shutdown().await.expect("clean shutdown");

    let engine = engine_on(&hub, &storage).await;
    let view = engine
        .client()
        .get_state(&id, true)
        .await
        .expect("read")
        .expect("still there");
    assert!(completed(&view), "{view:?}");
    engine.shutdown().await.expect("clean shutdown");
}
