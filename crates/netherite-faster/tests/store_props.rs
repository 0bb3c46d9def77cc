//! The store against a `BTreeMap` model, through random operations, checkpoints, compaction
//! and crashes on in-memory devices that tear writes and fail flushes.
//!
//! The model keeps the current contents and the set of states the last durable checkpoint may
//! hold: one state after a checkpoint that returned `Ok`, more after attempts that failed (a
//! failed attempt may or may not have become durable). After a crash and recovery the store
//! must equal one of those states exactly: nothing more, nothing less.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use netherite_core::device::{DeviceFaults, LogDevice, MemoryDevice, MemoryDisk};
use netherite_faster::Error;
use netherite_faster::store::{Store, StoreConfig, StoreDevices};
use proptest::prelude::*;

type Map = BTreeMap<Vec<u8>, Vec<u8>>;

/// Small pages, a small index and a budget of about a dozen pages, so that eviction, reads
/// from the device, read-only copies, overflow buckets and records larger than a page all
/// happen within a few dozen operations.
fn config() -> StoreConfig {
    StoreConfig {
        memory_bytes_max: 16 * 64 + 12 * 4096,
        page_bytes: 4096,
        index_buckets: 16,
        mutable_percent: 50,
    }
}

#[derive(Clone, Debug)]
enum Op {
    Upsert(u8, Vec<u8>),
    Delete(u8),
    /// Appends the byte to the value (or creates it); byte 0 deletes the key instead.
    Rmw(u8, u8),
    Read(u8),
    Checkpoint,
    Compact(u16),
    Iterate,
    Crash,
    /// Crashes both disks just before the n-th device write, flush or truncation from now.
    CrashAfter(u8),
}

fn key(k: u8) -> Vec<u8> {
    // Lengths vary from 2 to 12 bytes so records of one key differ in size from the others.
    format!("k{k}{}", "x".repeat(usize::from(k % 11))).into_bytes()
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        12 => prop::collection::vec(any::<u8>(), 0..200),
        1 => prop::collection::vec(any::<u8>(), 4000..6000),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let k = 0u8..40;
    prop_oneof![
        30 => (k.clone(), value()).prop_map(|(k, v)| Op::Upsert(k, v)),
        6 => k.clone().prop_map(Op::Delete),
        10 => (k.clone(), any::<u8>()).prop_map(|(k, b)| Op::Rmw(k, b)),
        10 => k.prop_map(Op::Read),
        4 => Just(Op::Checkpoint),
        3 => (0u16..20_000).prop_map(Op::Compact),
        1 => Just(Op::Iterate),
        2 => Just(Op::Crash),
        2 => (1u8..12).prop_map(Op::CrashAfter),
    ]
}

/// Crashes both disks when a countdown of device operations runs out.
#[derive(Debug)]
struct CrashPlan {
    countdown: AtomicU64,
    disks: [MemoryDisk; 2],
    crashed: Mutex<bool>,
}

impl CrashPlan {
    fn tick(&self) {
        let left = self.countdown.load(Ordering::SeqCst);
        if left == u64::MAX {
            return;
        }
        self.countdown
            .store(left.saturating_sub(1), Ordering::SeqCst);
        if left <= 1 {
            self.disks.iter().for_each(MemoryDisk::crash);
            *self.crashed.lock().expect("no panic while locked") = true;
            self.countdown.store(u64::MAX, Ordering::SeqCst);
        }
    }

    fn take_crashed(&self) -> bool {
        std::mem::take(&mut *self.crashed.lock().expect("no panic while locked"))
    }
}

/// A memory device whose writes, flushes and truncations count down the crash plan.
#[derive(Debug)]
struct Crashing {
    inner: MemoryDevice,
    plan: Arc<CrashPlan>,
}

#[async_trait]
impl LogDevice for Crashing {
    fn alignment(&self) -> u64 {
        self.inner.alignment()
    }
    fn size(&self) -> u64 {
        self.inner.size()
    }
    async fn write(&self, offset: u64, bytes: &[u8]) -> Result<(), netherite_core::Error> {
        self.plan.tick();
        self.inner.write(offset, bytes).await
    }
    async fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>, netherite_core::Error> {
        self.inner.read(offset, len).await
    }
    async fn flush(&self) -> Result<(), netherite_core::Error> {
        self.plan.tick();
        self.inner.flush().await
    }
    async fn truncate_before(&self, offset: u64) -> Result<(), netherite_core::Error> {
        self.plan.tick();
        self.inner.truncate_before(offset).await
    }
    async fn release(&self) -> Result<(), netherite_core::Error> {
        self.inner.release().await
    }
}

struct Harness {
    plan: Arc<CrashPlan>,
    store: Store,
    model: Map,
    /// The states the last durable checkpoint may hold.
    candidates: Vec<Map>,
    crashes: usize,
}

impl Harness {
    async fn new(seed: u64, alignment: u64) -> Harness {
        let disks = [
            MemoryDisk::new(alignment).expect("power of two"),
            MemoryDisk::new(alignment).expect("power of two"),
        ];
        let plan = Arc::new(CrashPlan {
            countdown: AtomicU64::new(u64::MAX),
            disks,
            crashed: Mutex::new(false),
        });
        let store = Store::create(devices(&plan), config())
            .await
            .expect("a fresh store is created");
        for (i, disk) in plan.disks.iter().enumerate() {
            disk.set_faults(DeviceFaults {
                seed: seed.wrapping_add(i as u64),
                torn_writes: true,
                flush_failure_rate: 0.05,
                read_corruption_rate: 0.0,
            });
        }
        Harness {
            plan,
            store,
            model: Map::new(),
            candidates: vec![Map::new()],
            crashes: 0,
        }
    }

    async fn apply(&mut self, op: &Op) {
        let result = self.run(op).await;
        let memory = self.store.memory_bytes();
        assert!(
            memory <= config().memory_bytes_max,
            "{memory} bytes after {op:?}"
        );
        if self.plan.take_crashed() {
            match (op, result) {
                (Op::Checkpoint, Ok(())) => self.candidates = vec![self.model.clone()],
                (Op::Checkpoint, Err(_)) => self.candidates.push(self.model.clone()),
                _ => {}
            }
            self.recover().await;
            return;
        }
        match (op, result) {
            (Op::Checkpoint, Ok(())) => self.candidates = vec![self.model.clone()],
            (Op::Checkpoint, Err(Error::Device(netherite_core::Error::Io { .. }))) => {
                self.candidates.push(self.model.clone());
            }
            (_, result) => result.unwrap_or_else(|e| panic!("{op:?} failed: {e}")),
        }
    }

    async fn run(&mut self, op: &Op) -> Result<(), Error> {
        match op {
            Op::Upsert(k, v) => {
                self.store.upsert(&key(*k), v).await?;
                self.model.insert(key(*k), v.clone());
            }
            Op::Delete(k) => {
                self.store.delete(&key(*k)).await?;
                self.model.remove(&key(*k));
            }
            Op::Rmw(k, b) => self.rmw(*k, *b).await?,
            Op::Read(k) => {
                let read = self.store.read(&key(*k)).await?;
                assert_eq!(read.as_ref(), self.model.get(&key(*k)), "read of {k}");
            }
            Op::Checkpoint => {
                self.store.checkpoint(b"blob").await?;
            }
            Op::Compact(bytes) => {
                self.store.compact(u64::from(*bytes)).await?;
            }
            Op::Iterate => assert_eq!(contents(&self.store).await?, self.model),
            Op::Crash => self.plan.disks.iter().for_each(MemoryDisk::crash),
            Op::CrashAfter(n) => self.plan.countdown.store(u64::from(*n), Ordering::SeqCst),
        }
        if matches!(op, Op::Crash) {
            *self.plan.crashed.lock().expect("no panic while locked") = true;
        }
        Ok(())
    }

    async fn rmw(&mut self, k: u8, byte: u8) -> Result<(), Error> {
        let update =
            |old: Option<&[u8]>| (byte != 0).then(|| [old.unwrap_or_default(), &[byte]].concat());
        let expected = update(self.model.get(&key(k)).map(Vec::as_slice));
        self.store.rmw(&key(k), update).await?;
        match expected {
            Some(value) => self.model.insert(key(k), value),
            None => self.model.remove(&key(k)),
        };
        Ok(())
    }

    /// Recovers (retrying when an injected flush failure stops it) and checks the result.
    async fn recover(&mut self) {
        self.crashes += 1;
        self.plan.countdown.store(u64::MAX, Ordering::SeqCst);
        self.plan.disks.iter().for_each(MemoryDisk::crash);
        let mut attempts = 0;
        let store = loop {
            match Store::recover(devices(&self.plan), config()).await {
                Ok((store, _)) => break store,
                Err(Error::Device(netherite_core::Error::Io { .. })) if attempts < 20 => {
                    attempts += 1;
                }
                Err(error) => panic!("recovery failed: {error}"),
            }
        };
        let state = contents(&store).await.expect("iteration after recovery");
        for k in 0..40 {
            let read = store.read(&key(k)).await.expect("read after recovery");
            assert_eq!(
                read.as_ref(),
                state.get(&key(k)),
                "read and iteration agree on {k}"
            );
        }
        assert!(
            self.candidates.contains(&state),
            "recovered {} keys, not the state of any checkpoint ({} candidates)",
            state.len(),
            self.candidates.len()
        );
        self.store = store;
        self.model = state.clone();
        self.candidates = vec![state];
    }
}

fn devices(plan: &Arc<CrashPlan>) -> StoreDevices {
    let open = |disk: &MemoryDisk| -> Arc<dyn LogDevice> {
        Arc::new(Crashing {
            inner: disk.open(),
            plan: plan.clone(),
        })
    };
    StoreDevices {
        log: open(&plan.disks[0]),
        checkpoints: open(&plan.disks[1]),
    }
}

async fn contents(store: &Store) -> Result<Map, Error> {
    let mut live = store.live_records();
    let mut map = Map::new();
    while let Some((key, value)) = live.next(store).await? {
        assert!(map.insert(key, value).is_none(), "a key seen twice");
    }
    Ok(map)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random operations with checkpoints, compaction and crashes (torn writes, failed
    /// flushes, crashes in the middle of a checkpoint), on devices with 512-byte sectors or
    /// with sectors as large as a page: the store always reads like the model, stays within
    /// its memory budget, and after each recovery holds exactly a checkpointed state.
    #[test]
    fn store_matches_model_through_crashes(
        seed in any::<u64>(),
        alignment in prop_oneof![Just(512u64), Just(4096)],
        ops in prop::collection::vec(op(), 1..150),
    ) {
        runtime().block_on(async {
            let mut harness = Harness::new(seed, alignment).await;
            for op in &ops {
                harness.apply(op).await;
            }
            harness.apply(&Op::Iterate).await;
            harness.apply(&Op::Crash).await;
            assert!(harness.crashes >= 1);
        });
    }
}
