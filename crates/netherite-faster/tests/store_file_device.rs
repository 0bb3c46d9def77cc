//! The store over real files: `netherite-storage-file`'s `FileDevice` in a temporary directory.

use std::sync::Arc;

use netherite_faster::store::{Store, StoreConfig, StoreDevices};
use netherite_storage_file::{FileDevice, FileDeviceOptions};

async fn open(dir: &tempfile::TempDir) -> StoreDevices {
    let options = FileDeviceOptions::default().with_segment_bytes(1 << 20);
    let log = FileDevice::open(dir.path().join("log"), options);
    let checkpoints = FileDevice::open(dir.path().join("checkpoints"), options);
    let log = Arc::new(log.await.expect("the log directory opens"));
    let checkpoints = Arc::new(checkpoints.await.expect("the checkpoint directory opens"));
    let name = |sub: &str| dir.path().join(sub).display().to_string();
    StoreDevices::new(log, checkpoints).named(name("log"), name("checkpoints"))
}

/// A store larger than its budget on files: written, checkpointed, compacted and closed, then
/// reopened by a new owner, which recovers the checkpoint and reads every key from the files.
#[tokio::test]
async fn a_store_on_files_survives_closing_and_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        memory_bytes_max: 1 << 20,
        index_buckets: 1 << 10,
        page_bytes: 16 << 10,
        ..StoreConfig::default()
    };
    let key = |i: u32| format!("instance-{i}").into_bytes();

    // Phase 1: write twice as much as the budget, overwrite half, checkpoint, compact.
    let devices = open(&dir).await;
    let mut store = Store::create(devices.clone(), config.clone())
        .await
        .unwrap();
    for i in 0..20_000u32 {
        store
            .upsert(&key(i), &i.to_le_bytes().repeat(8))
            .await
            .unwrap();
    }
    for i in (0..20_000u32).step_by(2) {
        store.upsert(&key(i), b"overwritten").await.unwrap();
    }
    store.checkpoint(b"first").await.unwrap();
    for _ in 0..20 {
        store.compact(64 << 10).await.unwrap();
    }
    store.checkpoint(b"second").await.unwrap();
    store.release().await.unwrap();

    // Phase 2: a new owner recovers and reads everything back.
    let (store, recovered) = Store::recover(open(&dir).await, config).await.unwrap();
    assert_eq!(recovered.checkpoint.blob, b"second");
    assert!(recovered.skipped.is_empty(), "{:?}", recovered.skipped);
    for i in 0..20_000u32 {
        let expected = if i % 2 == 0 {
            b"overwritten".to_vec()
        } else {
            i.to_le_bytes().repeat(8)
        };
        assert_eq!(
            store.read(&key(i)).await.unwrap(),
            Some(expected),
            "key {i}"
        );
    }
}
