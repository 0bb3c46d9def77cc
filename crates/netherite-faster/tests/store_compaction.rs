//! Compaction rounds: bounded work, progress every round, contents unchanged, space reclaimed
//! on the device only below the checkpoints recovery may still need.

use std::collections::BTreeMap;
use std::sync::Arc;

use netherite_core::device::{LogDevice, MemoryDevice, MemoryDisk};
use netherite_faster::store::{Store, StoreConfig, StoreDevices};

fn config() -> StoreConfig {
    StoreConfig {
        memory_bytes_max: 64 * 64 + 8 * 4096,
        page_bytes: 4096,
        index_buckets: 64,
        mutable_percent: 50,
    }
}

async fn contents(store: &Store) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut live = store.live_records();
    let mut map = BTreeMap::new();
    while let Some((key, value)) = live.next(store).await.expect("a perfect disk reads back") {
        map.insert(key, value);
    }
    map
}

/// A store with 50 keys, each overwritten 20 times with a longer value (so each update is a
/// new record and most of the log is garbage), and a few deleted; checkpointed, so the whole
/// log is read-only. Also returns the store's handle on its log device.
async fn churned_store() -> (Store, BTreeMap<Vec<u8>, Vec<u8>>, MemoryDevice) {
    let log = MemoryDisk::new(512).expect("512 is a power of two").open();
    let devices = StoreDevices::new(
        Arc::new(log.clone()),
        Arc::new(MemoryDisk::new(512).expect("512 is a power of two").open()),
    );
    let mut store = Store::create(devices, config())
        .await
        .expect("a perfect disk takes every write");
    let mut model = BTreeMap::new();
    for round in 0u8..20 {
        for k in 0u8..50 {
            let value = vec![round; 40 + usize::from(k) + 8 * usize::from(round)];
            store
                .upsert(&[k], &value)
                .await
                .expect("a perfect disk takes every write");
            model.insert(vec![k], value);
        }
    }
    for k in (0u8..50).step_by(7) {
        store
            .delete(&[k])
            .await
            .expect("a perfect disk takes every write");
        model.remove(&vec![k]);
    }
    store
        .checkpoint(b"churned")
        .await
        .expect("a perfect disk takes every write");
    (store, model, log)
}

/// Rounds of 4 KiB each move `begin` forward by at most 4 KiB (steps are smaller than that
/// here), every round moves it, and the live contents never change. Once `begin` reaches the
/// copies, the log holds about one record per live key.
#[tokio::test]
async fn rounds_are_bounded_make_progress_and_keep_contents() {
    let (mut store, model, _) = churned_store().await;
    let garbage_end = store.stats().regions.read_only;

    let mut rounds = 0;
    while store.stats().regions.begin < garbage_end {
        let before = store.stats().regions.begin;
        let report = store.compact(4096).await.unwrap();
        assert!(report.scanned_bytes <= 4096, "{report:?}");
        assert!(
            report.begin > before,
            "round {rounds} made no progress: {report:?}"
        );
        assert_eq!(report.begin, store.stats().regions.begin);
        assert!(store.memory_bytes() <= config().memory_bytes_max);
        rounds += 1;
    }
    assert!(rounds > 5, "the garbage took several rounds: {rounds}");
    assert_eq!(contents(&store).await, model);
    for (key, value) in &model {
        assert_eq!(store.read(key).await.unwrap().as_ref(), Some(value));
    }
    assert_eq!(
        store.read(&[0]).await.unwrap(),
        None,
        "deleted keys stay deleted"
    );
}

/// A bound smaller than any record still moves `begin` by exactly one step.
#[tokio::test]
async fn a_zero_bound_still_takes_one_step() {
    let (mut store, model, _) = churned_store().await;
    for _ in 0..10 {
        let report = store.compact(0).await.unwrap();
        assert!(
            report.scanned_bytes > 0 && report.scanned_bytes <= 4096,
            "{report:?}"
        );
    }
    assert_eq!(contents(&store).await, model);
}

/// The device reclaims space only below the `begin` of the older of the two newest
/// checkpoints: after two more checkpoints, the compacted prefix is gone from the device.
#[tokio::test]
async fn the_device_is_truncated_only_below_retained_checkpoints() {
    let (mut store, model, device) = churned_store().await;
    for _ in 0..40 {
        store.compact(8192).await.unwrap();
    }
    let begin = store.stats().regions.begin.get();
    assert!(begin > 16384, "compaction moved begin to {begin}");
    assert!(
        device.read(64, 64).await.is_ok(),
        "checkpoint 2 still needs the start"
    );

    store.checkpoint(b"after compaction").await.unwrap();
    store.checkpoint(b"and again").await.unwrap();
    assert!(
        device.read(64, 64).await.is_err(),
        "reclaimed below {begin}"
    );
    assert!(device.read(begin, 64).await.is_ok());
    assert_eq!(contents(&store).await.len(), model.len());
}
