//! A store holding far more than its memory budget: 1,000,000 keys under 64 MiB.

use std::sync::Arc;

use netherite_core::device::MemoryDisk;
use netherite_faster::store::{Address, Store, StoreConfig, StoreDevices};

const KEYS: u64 = 1_000_000;
const BUDGET: u64 = 64 << 20;

fn key(i: u64) -> Vec<u8> {
    format!("instance-{i:08}").into_bytes()
}

/// 16 to 31 bytes, different for every key.
fn value(i: u64) -> Vec<u8> {
    let len = 16 + (i % 16) as usize;
    let seed = i.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_le_bytes();
    seed.iter().copied().cycle().take(len).collect()
}

/// A million keys (about 80 MB of records) go into a store with a 64 MiB budget. Memory stays
/// under the budget all along, old pages go to the device, and every key reads back, before
/// and after a checkpoint, a crash and a recovery (which starts with nothing but the index in
/// memory).
#[test]
fn million_keys_under_64_mib_stay_under_budget_and_read_back() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let (log, checkpoints) = (
            MemoryDisk::new(4096).unwrap(),
            MemoryDisk::new(4096).unwrap(),
        );
        let devices = || StoreDevices::new(Arc::new(log.open()), Arc::new(checkpoints.open()));
        let config = StoreConfig {
            memory_bytes_max: BUDGET,
            index_buckets: 1 << 17,
            ..StoreConfig::default()
        };

        // Phase 1: load, watching the budget.
        let mut store = Store::create(devices(), config.clone()).await.unwrap();
        let mut peak = 0;
        for i in 0..KEYS {
            store.upsert(&key(i), &value(i)).await.unwrap();
            peak = peak.max(store.memory_bytes());
        }
        assert!(peak <= BUDGET, "peak {peak} > budget {BUDGET}");
        let regions = store.stats().regions;
        assert!(
            regions.tail.get() > BUDGET,
            "the log outgrew memory: {regions:?}"
        );
        assert!(
            regions.head > Address::FIRST,
            "old pages were evicted: {regions:?}"
        );

        // Phase 2: every key reads back, most of them from the device.
        for i in 0..KEYS {
            assert_eq!(
                store.read(&key(i)).await.unwrap(),
                Some(value(i)),
                "key {i}"
            );
        }
        assert!(store.memory_bytes() <= BUDGET);

        // Phase 3: checkpoint, crash, recover; every key reads back from the device.
        store.checkpoint(b"after the load").await.unwrap();
        log.crash();
        checkpoints.crash();
        let (store, recovered) = Store::recover(devices(), config).await.unwrap();
        assert!(recovered.skipped.is_empty(), "{:?}", recovered.skipped);
        for i in (0..KEYS).step_by(7) {
            assert_eq!(
                store.read(&key(i)).await.unwrap(),
                Some(value(i)),
                "key {i}"
            );
        }
        assert!(store.memory_bytes() <= BUDGET);
    });
}
