//! The engine over the in-memory hub and disks: the same engine with no files, and crashes
//! that lose every write not yet flushed.

mod engine_support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use engine_support::*;
use netherite::Engine;
use netherite::client::{Client, ClientOptions, output};
use netherite::host::{HostConfig, MemoryStorage, PartitionDevices, PartitionStorage};
use netherite::settings::Settings;
use netherite_core::device::{DeviceFaults, LogDevice};
use netherite_core::model::EventKind;
use netherite_core::transport::{MemoryHub, NodeId, TransportFaults};
use netherite_core::{InstanceId, PartitionId};

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

/// A crash at an arbitrary moment (the engine aborted, then the writes not yet flushed torn
/// or lost, on disks whose flushes sometimes fail and whose reads are sometimes damaged)
/// loses no acknowledged start and runs nothing twice: an engine started on the same hub and
/// disks sees every acknowledged instance complete, each with one start and one end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_mid_flight_loses_nothing_acknowledged() {
    for round in 0..4u64 {
        let hub = MemoryHub::new(PARTITIONS).expect("hub");
        let storage = MemoryStorage::with_faults(DeviceFaults {
            seed: round,
            torn_writes: true,
            flush_failure_rate: 0.02,
            read_corruption_rate: 0.01,
        });

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

/// Pipelined persistence, seen from outside: while the commit log cannot make anything
/// durable, the partition still runs the orchestration's first episode and its activity, but
/// the client's answer waits; it comes once the log's flushes go through again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_starts_before_durability_and_answers_wait_for_it() {
    let gate = Gate::default();
    let storage = GatedStorage {
        inner: MemoryStorage::new(),
        gate: gate.clone(),
    };
    let settings = memory_settings();
    let transport = local_hub_transport();
    let engine = Engine::start_with(
        transport,
        std::sync::Arc::new(storage),
        registry(),
        HostConfig::from_settings(&settings),
        ClientOptions::from_settings(&settings),
    )
    .await
    .expect("the engine starts");

    // Phase 1: flushes held; the start is sent, the activity runs, no answer comes.
    gate.close();
    let client = engine.client();
    let start = tokio::spawn(async move { run(&client, "Toucher", "gated", &()).await });
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while TOUCHES.load(Ordering::SeqCst) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the activity never ran"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !start.is_finished(),
        "the answer left before its update was durable"
    );

    // Phase 2: flushes go through; the answer arrives and the instance completes.
    gate.open();
    let id = start.await.expect("the start task");
    let done = finish(&engine.client(), &id).await;
    assert_eq!(output::<u32>(&done).expect("a number"), 1);
    engine.shutdown().await.expect("clean shutdown");
}

/// Holds every commit-log flush while closed.
#[derive(Clone, Debug, Default)]
struct Gate {
    closed: std::sync::Arc<AtomicBool>,
    opened: std::sync::Arc<tokio::sync::Notify>,
}

impl Gate {
    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    fn open(&self) {
        self.closed.store(false, Ordering::SeqCst);
        self.opened.notify_waiters();
    }

    async fn pass(&self) {
        loop {
            let opened = self.opened.notified();
            if !self.closed.load(Ordering::SeqCst) {
                return;
            }
            opened.await;
        }
    }
}

/// Memory storage whose commit-log devices flush only through the gate.
#[derive(Debug)]
struct GatedStorage {
    inner: MemoryStorage,
    gate: Gate,
}

#[async_trait]
impl PartitionStorage for GatedStorage {
    async fn open(&self, partition: PartitionId) -> Result<PartitionDevices, netherite::Error> {
        let mut devices = self.inner.open(partition).await?;
        devices.log = std::sync::Arc::new(GatedDevice {
            inner: devices.log,
            gate: self.gate.clone(),
        });
        Ok(devices)
    }
}

/// A device whose flushes wait for the gate.
#[derive(Debug)]
struct GatedDevice {
    inner: std::sync::Arc<dyn LogDevice>,
    gate: Gate,
}

#[async_trait]
impl LogDevice for GatedDevice {
    fn alignment(&self) -> u64 {
        self.inner.alignment()
    }

    fn size(&self) -> u64 {
        self.inner.size()
    }

    async fn write(&self, offset: u64, bytes: &[u8]) -> Result<(), netherite_core::Error> {
        self.inner.write(offset, bytes).await
    }

    async fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>, netherite_core::Error> {
        self.inner.read(offset, len).await
    }

    async fn flush(&self) -> Result<(), netherite_core::Error> {
        self.gate.pass().await;
        self.inner.flush().await
    }

    async fn truncate_before(&self, offset: u64) -> Result<(), netherite_core::Error> {
        self.inner.truncate_before(offset).await
    }

    async fn release(&self) -> Result<(), netherite_core::Error> {
        self.inner.release().await
    }
}

/// Over a transport that loses sends, duplicates payloads, redelivers, delays and leaves gaps
/// (all legal under its at-least-once contract), every instance still completes exactly once
/// with the right result: partitions and clients drop what they already have.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faulty_transport_still_runs_everything_once() {
    for seed in 1..=4 {
        let faults = TransportFaults {
            seed,
            drop_rate: 0.05,
            duplicate_rate: 0.1,
            redeliver_rate: 0.05,
            delay_rate: 0.05,
            delay_max: Duration::from_millis(5),
            gap_rate: 0.1,
        };
        let hub = MemoryHub::new(PARTITIONS).expect("hub").with_faults(faults);
        let engine = engine_on(&hub, &MemoryStorage::new()).await;
        let client = engine.client();

        let mut expected = Vec::new();
        for i in 0..24u64 {
            let (name, sum) = if i % 2 == 0 {
                ("Parent", 6)
            } else {
                ("FanOut", 14)
            };
            expected.push((run(&client, name, &format!("faulty-{i}"), &3u64).await, sum));
        }

        for (id, sum) in &expected {
            let done = finish(&client, id).await;
            assert_eq!(
                output::<u64>(&done).expect("a number"),
                *sum,
                "seed {seed}: {id}"
            );
            let history = client.history(id).await.expect("history");
            let starts = count(&history, |k| matches!(k, EventKind::ExecutionStarted(_)));
            let ends = count(&history, |k| matches!(k, EventKind::ExecutionCompleted(_)));
            assert_eq!((starts, ends), (1, 1), "seed {seed}: {id}");
        }
        engine.shutdown().await.expect("clean shutdown");
    }
}

/// Waits that gave up free their place: with room for 4 waits on a partition, four waits that
/// timed out do not keep a fifth from being taken, and the fifth is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_that_gave_up_free_their_place() {
    let settings = memory_settings();
    let transport = local_hub_transport();
    let mut config = HostConfig::from_settings(&settings);
    config.limits.waiters_max = 4;
    let engine = Engine::start_with(
        transport,
        std::sync::Arc::new(MemoryStorage::new()),
        registry(),
        config,
        ClientOptions::from_settings(&settings),
    )
    .await
    .expect("the engine starts");
    let client = engine.client();
    let id = run(&client, "Waiter", "patient!0", &()).await;

    // Phase 1: four waits fill the partition's room and give up.
    for _ in 0..4 {
        let waited = client
            .wait_for_completion(&id, Duration::from_millis(20))
            .await;
        assert!(
            matches!(waited, Err(netherite::Error::Timeout { .. })),
            "{waited:?}"
        );
    }

    // Phase 2: a fifth is taken, and answered when the instance finishes.
    let waiter = {
        let (client, id) = (client.clone(), id.clone());
        tokio::spawn(async move { client.wait_for_completion(&id, PATIENCE).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    client.raise_event(&id, "Go", &"now").await.expect("raised");
    let done = waiter.await.expect("joins").expect("taken and answered");
    assert_eq!(output::<String>(&done).expect("output"), "now");
    engine.shutdown().await.expect("clean shutdown");
}

/// A transport over a fresh memory hub whose partitions are all this node's.
fn local_hub_transport() -> std::sync::Arc<netherite_core::transport::MemoryTransport> {
    let hub = MemoryHub::new(PARTITIONS).expect("hub");
    let transport = std::sync::Arc::new(hub.connect(NodeId::new("local")));
    for p in 0..PARTITIONS {
        hub.assign(PartitionId(p), Some(NodeId::new("local")))
            .expect("assigned");
    }
    transport
}
