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
    /// Every state a checkpoint may ever have held.
    history: Vec<Map>,
    /// Whether recovery reads come back damaged now and then. Recovery may then pass over
    /// the newest checkpoint, so it may land on any earlier one, but never elsewhere.
    damaged_recovery_reads: bool,
    seed: u64,
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
        let mut harness = Harness {
            plan,
            store,
            model: Map::new(),
            candidates: vec![Map::new()],
            history: vec![Map::new()],
            damaged_recovery_reads: false,
            seed,
            crashes: 0,
        };
        harness.set_read_damage(0.0);
        harness
    }

    /// Torn writes and failed flushes always; damaged reads at `rate`.
    fn set_read_damage(&mut self, rate: f64) {
        self.seed = self.seed.wrapping_add(2);
        for (i, disk) in self.plan.disks.iter().enumerate() {
            disk.set_faults(DeviceFaults {
                seed: self.seed.wrapping_add(i as u64),
                torn_writes: true,
                flush_failure_rate: 0.05,
                read_corruption_rate: rate,
            });
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
            self.history.extend(self.candidates.iter().cloned());
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
        self.history.extend(self.candidates.iter().cloned());
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

    /// Opens the store after a crash, retrying when an injected flush failure stops recovery
    /// and, with damaged reads, when no checkpoint could be read intact (recovery erased
    /// nothing then, so a retry with whole reads finds them all again).
    async fn recovered_store(&mut self) -> Store {
        let rate = if self.damaged_recovery_reads {
            0.3
        } else {
            0.0
        };
        self.set_read_damage(rate);
        for _ in 0..20 {
            match Store::recover(devices(&self.plan), config()).await {
                Ok((store, _)) => {
                    self.set_read_damage(0.0);
                    return store;
                }
                Err(Error::Device(netherite_core::Error::Io { .. })) => {}
                Err(Error::NoIntactCheckpoint { .. }) if self.damaged_recovery_reads => {
                    self.set_read_damage(0.0);
                }
                Err(error) => panic!("recovery failed: {error}"),
            }
        }
        panic!("recovery kept failing on injected flush failures");
    }

    /// Recovers and checks the result.
    async fn recover(&mut self) {
        self.crashes += 1;
        self.plan.countdown.store(u64::MAX, Ordering::SeqCst);
        self.plan.disks.iter().for_each(MemoryDisk::crash);
        let store = self.recovered_store().await;
        let state = contents(&store).await.expect("iteration after recovery");
        for k in 0..40 {
            let read = store.read(&key(k)).await.expect("read after recovery");
            assert_eq!(
                read.as_ref(),
                state.get(&key(k)),
                "read and iteration agree on {k}"
            );
        }
        let allowed = match self.damaged_recovery_reads {
            false => &self.candidates,
            true => &self.history,
        };
        assert!(
            allowed.contains(&state),
            "recovered {} keys, not the state of any checkpoint ({} allowed)",
            state.len(),
            allowed.len()
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
    StoreDevices::new(open(&plan.disks[0]), open(&plan.disks[1]))
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
    /// its memory budget, and after each recovery holds exactly the last checkpointed state
    /// (or, when recovery's reads come back damaged, some earlier checkpointed state).
    #[test]
    fn store_matches_model_through_crashes(
        seed in any::<u64>(),
        alignment in prop_oneof![Just(512u64), Just(4096)],
        damaged_recovery_reads in prop::bool::weighted(0.25),
        ops in prop::collection::vec(op(), 1..150),
    ) {
        runtime().block_on(async {
            let mut harness = Harness::new(seed, alignment).await;
            harness.damaged_recovery_reads = damaged_recovery_reads;
            for op in &ops {
                harness.apply(op).await;
            }
            harness.apply(&Op::Iterate).await;
            harness.apply(&Op::Crash).await;
            assert!(harness.crashes >= 1);
        });
    }
}

/// Runs `ops` (crashes left out) on a log device whose reads come back damaged at `rate`.
async fn run_with_damaged_reads(seed: u64, rate: f64, ops: &[Op]) {
    let disk = || MemoryDisk::new(512).expect("512 is a power of two");
    let disks = [disk(), disk()];
    let devices = StoreDevices::new(Arc::new(disks[0].open()), Arc::new(disks[1].open()));
    let mut store = Store::create(devices, config()).await.expect("created");
    disks[0].set_faults(DeviceFaults {
        seed,
        read_corruption_rate: rate,
        ..DeviceFaults::none()
    });
    let mut model = Map::new();
    for op in ops {
        match op {
            Op::Upsert(k, v) => {
                store
                    .upsert(&key(*k), v)
                    .await
                    .expect("upserts read nothing");
                model.insert(key(*k), v.clone());
            }
            Op::Delete(k) => {
                store.delete(&key(*k)).await.expect("deletes read nothing");
                model.remove(&key(*k));
            }
            Op::Rmw(k, b) => {
                let update = |old: Option<&[u8]>| {
                    (*b != 0).then(|| [old.unwrap_or_default(), &[*b]].concat())
                };
                let expected = update(model.get(&key(*k)).map(Vec::as_slice));
                match store.rmw(&key(*k), update).await {
                    Ok(()) => sync(&mut model, key(*k), expected),
                    Err(Error::Corrupt { .. }) => {}
                    Err(error) => panic!("rmw: {error}"),
                }
            }
            Op::Read(k) => match store.read(&key(*k)).await {
                Ok(value) => assert_eq!(value.as_ref(), model.get(&key(*k)), "read of {k}"),
                Err(Error::Corrupt { .. }) => {}
                Err(error) => panic!("read: {error}"),
            },
            Op::Compact(bytes) => match store.compact(u64::from(*bytes)).await {
                Ok(_) | Err(Error::Corrupt { .. }) => {}
                Err(error) => panic!("compact: {error}"),
            },
            Op::Checkpoint => {
                store
                    .checkpoint(b"")
                    .await
                    .expect("checkpoints read nothing");
            }
            Op::Iterate | Op::Crash | Op::CrashAfter(_) => {}
        }
    }
    disks[0].set_faults(DeviceFaults::none());
    let contents = contents(&store).await.expect("reads are whole again");
    assert_eq!(contents, model, "contents once reads are whole again");
}

/// Sets or removes `key` in the model.
fn sync(model: &mut Map, key: Vec<u8>, value: Option<Vec<u8>>) {
    match value {
        Some(value) => model.insert(key, value),
        None => model.remove(&key),
    };
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Reads damaged on their way from the device never yield a wrong value: every read,
    /// read-modify-write and compaction either succeeds with the model's answer or reports
    /// the damage (after one reread) and changes nothing; once reads are whole again the
    /// store holds exactly the model.
    #[test]
    fn damaged_reads_never_yield_wrong_values(
        seed in any::<u64>(),
        rate in prop_oneof![Just(0.05), Just(0.3), Just(0.9)],
        ops in prop::collection::vec(op(), 1..150),
    ) {
        runtime().block_on(run_with_damaged_reads(seed, rate, &ops));
    }
}
