//! Store throughput: upserts and reads per second, in memory and larger than memory, on the
//! in-memory device, with `std::collections::HashMap` on the same keys as a peer (the cost of
//! a random lookup in memory on this machine, with no log, device or checksum). Run with
//! `cargo bench -p netherite-faster --bench store`; criterion prints each figure as elements
//! (operations) per second.
//!
//! - `in_memory`: 100,000 keys in a 64 MiB budget, so every record stays in memory; upserts
//!   keep value sizes, so most of them update in place. Keys are picked at random, so most
//!   operations miss the CPU caches: the figure is bound by memory latency.
//! - `in_memory_10k`: the same with 10,000 keys and an index sized for them (2,048 buckets),
//!   so records and index fit the caches: the figure is bound by the store's own work.
//! - `larger_than_memory`: 400,000 keys under an 8 MiB budget (about a quarter of the records
//!   fit), so most reads go to the device and upserts evict pages as they go.
//! - `larger_than_memory_files`: the same on `netherite-storage-file`'s `FileDevice` in a
//!   temporary directory (the page cache serves most reads; no flush is measured).

// `criterion_group!` generates a public function that cannot carry a doc comment.
#![allow(missing_docs)]

use std::collections::HashMap;
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use netherite_core::device::MemoryDisk;
use netherite_faster::store::{Store, StoreConfig, StoreDevices};
use netherite_storage_file::{FileDevice, FileDeviceOptions};
use tokio::runtime::Runtime;

/// Operations per measured iteration.
const BATCH: u64 = 10_000;

#[derive(Clone)]
struct Workload {
    name: &'static str,
    keys: u64,
    config: StoreConfig,
    on_files: bool,
}

/// The length of every key: `instance-` and 8 digits.
const KEY_LEN: usize = 17;

/// All keys back to back, so that fetching a key costs the benchmark one cache miss at most.
struct KeySpace {
    bytes: Vec<u8>,
}

impl KeySpace {
    fn new(keys: u64) -> KeySpace {
        let bytes = (0..keys).flat_map(|i| format!("instance-{i:08}").into_bytes());
        KeySpace {
            bytes: bytes.collect(),
        }
    }

    fn key(&self, i: u64) -> &[u8] {
        &self.bytes[i as usize * KEY_LEN..(i as usize + 1) * KEY_LEN]
    }
}

fn value(i: u64) -> [u8; 24] {
    let mut value = [0u8; 24];
    value[..8].copy_from_slice(&i.to_le_bytes());
    value
}

/// A fixed pseudo-random walk over the key space (xorshift), the same in every run.
struct Keys {
    state: u64,
    keys: u64,
}

impl Iterator for Keys {
    type Item = u64;
    fn next(&mut self) -> Option<u64> {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        Some(self.state % self.keys)
    }
}

/// The store's devices: in memory, or files under `dir`.
async fn devices(on_files: bool, dir: &Path) -> StoreDevices {
    if !on_files {
        return StoreDevices::new(
            Arc::new(MemoryDisk::new(4096).expect("power of two").open()),
            Arc::new(MemoryDisk::new(4096).expect("power of two").open()),
        );
    }
    let open = async |name: &str| {
        let device = FileDevice::open(dir.join(name), FileDeviceOptions::default());
        Arc::new(device.await.expect("a temporary directory opens"))
    };
    StoreDevices::new(open("log").await, open("checkpoints").await)
}

async fn loaded_store(workload: &Workload, keys: &KeySpace, dir: &Path) -> Store {
    let devices = devices(workload.on_files, dir).await;
    let mut store = Store::create(devices, workload.config.clone())
        .await
        .expect("store created");
    for i in 0..workload.keys {
        store.upsert(keys.key(i), &value(i)).await.expect("loaded");
    }
    store
}

fn bench_workload(c: &mut Criterion, runtime: &Runtime, workload: &Workload) {
    let keys = KeySpace::new(workload.keys);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut store = runtime.block_on(loaded_store(workload, &keys, dir.path()));
    let mut walk = Keys {
        state: 0x2545_f491_4f6c_dd1d,
        keys: workload.keys,
    };
    let mut group = c.benchmark_group(format!("store/{}", workload.name));
    group.throughput(Throughput::Elements(BATCH));

    group.bench_function("read", |b| {
        b.iter(|| {
            runtime.block_on(async {
                for i in walk.by_ref().take(BATCH as usize) {
                    let read = store.read(keys.key(i)).await.expect("read");
                    black_box(read);
                }
            })
        })
    });
    group.bench_function("upsert", |b| {
        b.iter(|| {
            runtime.block_on(async {
                for i in walk.by_ref().take(BATCH as usize) {
                    let bytes = value(i ^ 1);
                    store.upsert(keys.key(i), &bytes).await.expect("upsert");
                }
            })
        })
    });
    if workload.name.starts_with("in_memory") {
        bench_peer(&mut group, &keys, &mut walk);
    }
    group.finish();
    println!(
        "store/{}: {} keys, memory {} of {} bytes, regions {:?}",
        workload.name,
        workload.keys,
        store.memory_bytes(),
        workload.config.memory_bytes_max,
        store.stats().regions,
    );
}

/// The same reads and upserts on a `HashMap` holding the same keys and values.
fn bench_peer(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    keys: &KeySpace,
    walk: &mut Keys,
) {
    let mut map: HashMap<Vec<u8>, Vec<u8>> = (0..walk.keys)
        .map(|i| (keys.key(i).to_vec(), value(i).to_vec()))
        .collect();
    group.bench_function("peer_hashmap_read", |b| {
        b.iter(|| {
            for i in walk.by_ref().take(BATCH as usize) {
                black_box(map.get(keys.key(i)).cloned());
            }
        })
    });
    group.bench_function("peer_hashmap_upsert", |b| {
        b.iter(|| {
            for i in walk.by_ref().take(BATCH as usize) {
                let slot = map.get_mut(keys.key(i)).expect("loaded");
                slot.copy_from_slice(&value(i ^ 1));
            }
        })
    });
}

fn store_benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let in_memory = Workload {
        name: "in_memory",
        keys: 100_000,
        config: StoreConfig {
            memory_bytes_max: 64 << 20,
            index_buckets: 1 << 15,
            ..StoreConfig::default()
        },
        on_files: false,
    };
    let hot = Workload {
        name: "in_memory_10k",
        keys: 10_000,
        config: StoreConfig {
            index_buckets: 1 << 11,
            ..in_memory.config.clone()
        },
        ..in_memory.clone()
    };
    let larger = Workload {
        name: "larger_than_memory",
        keys: 400_000,
        config: StoreConfig {
            memory_bytes_max: 8 << 20,
            index_buckets: 1 << 16,
            page_bytes: 64 << 10,
            ..StoreConfig::default()
        },
        on_files: false,
    };
    let on_files = Workload {
        name: "larger_than_memory_files",
        on_files: true,
        ..larger.clone()
    };
    for workload in [in_memory, hot, larger, on_files] {
        bench_workload(c, &runtime, &workload);
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = store_benches
}
criterion_main!(benches);
