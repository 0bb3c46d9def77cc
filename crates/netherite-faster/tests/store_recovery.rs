//! Recovery from damaged checkpoints, and bad input to the store: every problem is a typed
//! error that names where it is, and recovery falls back to an older intact checkpoint.

use std::sync::Arc;

use async_trait::async_trait;
use netherite_core::device::{DeviceFaults, LogDevice, MemoryDevice, MemoryDisk};
use netherite_faster::Error;
use netherite_faster::store::{KEY_BYTES_MAX, Store, StoreConfig, StoreDevices};

fn config() -> StoreConfig {
    StoreConfig {
        memory_bytes_max: 64 * 64 + 8 * 4096,
        page_bytes: 4096,
        index_buckets: 64,
        mutable_percent: 50,
    }
}

struct Disks {
    log: MemoryDisk,
    checkpoints: MemoryDisk,
}

impl Disks {
    fn new() -> Disks {
        Disks {
            log: MemoryDisk::new(512).expect("512 is a power of two"),
            checkpoints: MemoryDisk::new(512).expect("512 is a power of two"),
        }
    }

    fn devices(&self) -> StoreDevices {
        StoreDevices::new(Arc::new(self.log.open()), Arc::new(self.checkpoints.open()))
    }

    fn crash(&self) {
        self.log.crash();
        self.checkpoints.crash();
    }
}

/// A device cut short: it shows only its first `size` bytes, like a file truncated by hand.
#[derive(Debug)]
struct CutShort {
    inner: MemoryDevice,
    size: u64,
}

#[async_trait]
impl LogDevice for CutShort {
    fn alignment(&self) -> u64 {
        self.inner.alignment()
    }
    fn size(&self) -> u64 {
        self.size.min(self.inner.size())
    }
    async fn write(&self, offset: u64, bytes: &[u8]) -> Result<(), netherite_core::Error> {
        self.inner.write(offset, bytes).await
    }
    async fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>, netherite_core::Error> {
        if offset + len as u64 > self.size() {
            return Err(netherite_core::Error::InvalidArgument {
                operation: "read",
                reason: format!("{offset}+{len} is past the size {}", self.size()),
            });
        }
        self.inner.read(offset, len).await
    }
    async fn flush(&self) -> Result<(), netherite_core::Error> {
        self.inner.flush().await
    }
    async fn truncate_before(&self, offset: u64) -> Result<(), netherite_core::Error> {
        self.inner.truncate_before(offset).await
    }
    async fn release(&self) -> Result<(), netherite_core::Error> {
        self.inner.release().await
    }
}

/// Two checkpoints: version 2 holds `a`, version 3 (slot 1) holds `a` and `b`. Returns the
/// log device's size before checkpoint 3 and after it.
async fn two_checkpoints(disks: &Disks) -> (u64, u64) {
    let mut store = Store::create(disks.devices(), config())
        .await
        .expect("a perfect disk takes every write");
    store
        .upsert(b"a", b"1")
        .await
        .expect("a perfect disk takes every write");
    let two = store
        .checkpoint(b"two")
        .await
        .expect("a perfect disk takes every write");
    assert_eq!(two.version, 2);
    let before = disks.log.size();
    store
        .upsert(b"b", b"2")
        .await
        .expect("a perfect disk takes every write");
    store
        .checkpoint(b"three")
        .await
        .expect("a perfect disk takes every write");
    (before, disks.log.size())
}

/// Recovery with an empty checkpoint device names both missing manifests and their offsets.
#[tokio::test]
async fn missing_manifests_are_reported_with_their_offsets() {
    let disks = Disks::new();
    let error = Store::recover(disks.devices(), config()).await.unwrap_err();
    let Error::NoIntactCheckpoint { attempts } = &error else {
        panic!("expected NoIntactCheckpoint, got {error}");
    };
    assert_eq!(attempts.len(), 2, "{error}");
    assert!(attempts[0].contains("manifest slot 0") && attempts[0].contains("offset 0"));
    assert!(attempts[1].contains("manifest slot 1") && attempts[1].contains("offset 4096"));
    assert!(attempts.iter().all(|a| a.contains("missing")), "{error}");
}

/// The newest checkpoint's index snapshot is cut short on the log device: recovery reports it
/// with its offset and falls back to the checkpoint before, which does not hold `b`.
#[tokio::test]
async fn truncated_snapshot_falls_back_to_the_previous_checkpoint() {
    let disks = Disks::new();
    let (_, after) = two_checkpoints(&disks).await;
    disks.crash();

    let mut devices = disks
        .devices()
        .named("p03/store-log", "p03/store-checkpoints");
    devices.log = Arc::new(CutShort {
        inner: disks.log.open(),
        size: after - 512,
    });
    let (store, recovered) = Store::recover(devices, config()).await.unwrap();
    assert_eq!(recovered.checkpoint.version, 2);
    assert_eq!(recovered.checkpoint.blob, b"two");
    assert_eq!(store.read(b"a").await.unwrap(), Some(b"1".to_vec()));
    assert_eq!(store.read(b"b").await.unwrap(), None);

    let [
        Error::Truncated {
            source_name,
            offset,
            ..
        },
    ] = &recovered.skipped[..]
    else {
        panic!("expected one truncation, got {:?}", recovered.skipped);
    };
    assert!(
        source_name.contains("index snapshot of checkpoint 3"),
        "{source_name}"
    );
    assert!(
        *offset >= after - 4096 && *offset < after,
        "offset {offset}"
    );
}

/// After falling back past checkpoint 3, recovery erased its manifest: once the device is
/// whole again, a second recovery still lands on checkpoint 2, whose log it keeps writing.
#[tokio::test]
async fn a_manifest_recovery_could_not_use_is_erased() {
    let disks = Disks::new();
    let (_, after) = two_checkpoints(&disks).await;
    disks.crash();
    let mut devices = disks.devices();
    devices.log = Arc::new(CutShort {
        inner: disks.log.open(),
        size: after - 512,
    });
    let (mut store, _) = Store::recover(devices, config()).await.unwrap();
    store.upsert(b"c", b"3").await.unwrap();
    disks.crash();

    let (store, recovered) = Store::recover(disks.devices(), config()).await.unwrap();
    assert_eq!(recovered.checkpoint.version, 2);
    assert!(matches!(
        &recovered.skipped[..],
        [Error::Missing { offset: 4096, .. }]
    ));
    assert_eq!(store.read(b"b").await.unwrap(), None);
    assert_eq!(
        store.read(b"c").await.unwrap(),
        None,
        "written after checkpoint 2"
    );
}

/// A manifest cut short (its slot runs past the end of the device) is reported with its
/// offset and the sizes involved; the other slot's checkpoint is used.
#[tokio::test]
async fn truncated_manifest_falls_back_with_its_offset() {
    let disks = Disks::new();
    two_checkpoints(&disks).await;
    disks.crash();
    let mut devices = disks.devices();
    devices.checkpoints = Arc::new(CutShort {
        inner: disks.checkpoints.open(),
        size: 4096 + 40,
    });
    let (store, recovered) = Store::recover(devices, config()).await.unwrap();
    assert_eq!(recovered.checkpoint.version, 2);
    assert_eq!(store.read(b"b").await.unwrap(), None);
    let [
        Error::Truncated {
            offset, available, ..
        },
    ] = &recovered.skipped[..]
    else {
        panic!("expected one truncation, got {:?}", recovered.skipped);
    };
    assert_eq!((*offset, *available), (4096, 40));
    let message = recovered.skipped[0].to_string();
    assert!(
        message.contains("manifest slot 1") && message.contains("offset 4096"),
        "{message}"
    );
}

/// A flipped byte in the newest manifest is a checksum mismatch at its slot's offset; when
/// both manifests are damaged, recovery refuses and lists both.
#[tokio::test]
async fn damaged_manifests_are_reported_and_refused() {
    let disks = Disks::new();
    two_checkpoints(&disks).await;
    disks.crash();
    let flip = async |offset: u64| {
        let device = disks.checkpoints.open();
        let mut bytes = device.read(offset, 512).await.unwrap();
        bytes[40] ^= 0x20;
        device.write(offset, &bytes).await.unwrap();
        device.flush().await.unwrap();
    };

    flip(4096).await;
    let (_, recovered) = Store::recover(disks.devices(), config()).await.unwrap();
    assert_eq!(recovered.checkpoint.version, 2);
    let [
        Error::Corrupt {
            offset: 4096,
            reason,
            ..
        },
    ] = &recovered.skipped[..]
    else {
        panic!("expected one damaged manifest, got {:?}", recovered.skipped);
    };
    assert!(reason.contains("checksum"), "{reason}");

    flip(0).await;
    let error = Store::recover(disks.devices(), config()).await.unwrap_err();
    let Error::NoIntactCheckpoint { attempts } = &error else {
        panic!("expected NoIntactCheckpoint, got {error}");
    };
    assert!(
        attempts
            .iter()
            .any(|a| a.contains("offset 0") && a.contains("checksum"))
    );
    assert!(
        attempts.iter().any(|a| a.contains("offset 4096")),
        "{error}"
    );
}

/// Reads damaged on their way from the device are read again; a record that stays damaged is
/// an error naming its offset, never a wrong value.
#[tokio::test]
async fn damaged_reads_are_retried_or_reported_never_returned() {
    let disks = Disks::new();
    let mut store = Store::create(disks.devices(), config()).await.unwrap();
    for i in 0u32..2000 {
        store
            .upsert(&i.to_le_bytes(), &[i as u8; 200])
            .await
            .unwrap();
    }
    assert!(
        store.stats().regions.head.get() > 4096,
        "early records were evicted"
    );

    disks.log.set_faults(DeviceFaults {
        seed: 7,
        read_corruption_rate: 0.5,
        ..DeviceFaults::none()
    });
    let (mut good, mut reported) = (0, 0);
    for i in 0u32..200 {
        match store.read(&i.to_le_bytes()).await {
            Ok(value) => {
                assert_eq!(value, Some(vec![i as u8; 200]));
                good += 1;
            }
            Err(Error::Corrupt { offset, .. }) => {
                assert!(offset < store.stats().regions.head.get());
                reported += 1;
            }
            Err(error) => panic!("unexpected {error}"),
        }
    }
    assert!(
        good > 50 && reported > 0,
        "good {good}, reported {reported}"
    );
}

/// Oversized keys, records and blobs, and impossible settings, are refused with the limit or
/// rule they break, and change nothing.
#[tokio::test]
async fn bad_input_is_refused_with_the_limit_it_breaks() {
    let disks = Disks::new();
    let bad = StoreConfig {
        page_bytes: 1000,
        ..config()
    };
    let error = Store::create(disks.devices(), bad).await.unwrap_err();
    assert!(matches!(error, Error::InvalidConfig(ref r) if r.contains("page_bytes")));
    let huge_pages = StoreConfig {
        page_bytes: 1 << 62,
        memory_bytes_max: u64::MAX,
        ..config()
    };
    let error = Store::create(disks.devices(), huge_pages)
        .await
        .unwrap_err();
    assert!(matches!(error, Error::InvalidConfig(ref r) if r.contains("page_bytes")));

    let mut store = Store::create(disks.devices(), config()).await.unwrap();
    let long_key = vec![b'k'; KEY_BYTES_MAX + 1];
    let limit = |e: Error| match e {
        Error::LimitExceeded { limit, .. } => limit,
        other => panic!("expected a limit, got {other}"),
    };
    assert_eq!(
        limit(store.upsert(&long_key, b"v").await.unwrap_err()),
        "key_bytes_max"
    );
    assert_eq!(
        limit(store.delete(&long_key).await.unwrap_err()),
        "key_bytes_max"
    );
    let huge = vec![0u8; 20_000];
    assert_eq!(
        limit(store.upsert(b"k", &huge).await.unwrap_err()),
        "record_bytes_max"
    );
    let blob = vec![0u8; 5000];
    let error = store.checkpoint(&blob).await.unwrap_err();
    assert_eq!(limit(error), "checkpoint_blob_bytes_max");
    assert_eq!(store.read(b"k").await.unwrap(), None);

    let error = Store::create(disks.devices(), config()).await.unwrap_err();
    assert!(
        matches!(error, Error::StoreExists { version: 1 }),
        "{error}"
    );
}

/// A budget too small for the checkpoint's index stops recovery with the limit it breaks; it
/// is not damage, so no checkpoint is passed over or erased, and a larger budget recovers.
#[tokio::test]
async fn a_budget_too_small_stops_recovery_without_erasing() {
    let disks = Disks::new();
    two_checkpoints(&disks).await;
    disks.crash();
    let small = StoreConfig {
        memory_bytes_max: 64 * 64 + 3 * 4096,
        ..config()
    };
    let error = Store::recover(disks.devices(), small).await.unwrap_err();
    assert!(
        matches!(
            error,
            Error::LimitExceeded {
                limit: "memory_bytes_max",
                ..
            }
        ),
        "{error}"
    );

    let (store, recovered) = Store::recover(disks.devices(), config()).await.unwrap();
    assert_eq!(recovered.checkpoint.version, 3);
    assert_eq!(store.read(b"b").await.unwrap(), Some(b"2".to_vec()));
}

/// When another owner opens the devices, the old store's next device write fails with
/// `Fenced`, and what it wrote after losing ownership never reaches the new owner.
#[tokio::test]
async fn a_fenced_store_cannot_checkpoint_over_the_new_owner() {
    let disks = Disks::new();
    two_checkpoints(&disks).await;
    let (mut old, _) = Store::recover(disks.devices(), config()).await.unwrap();
    old.upsert(b"late", b"write").await.unwrap();

    let (new, recovered) = Store::recover(disks.devices(), config()).await.unwrap();
    let error = old.checkpoint(b"too late").await.unwrap_err();
    assert!(
        matches!(error, Error::Device(netherite_core::Error::Fenced(_))),
        "{error}"
    );
    assert_eq!(recovered.checkpoint.blob, b"three");
    assert_eq!(new.read(b"late").await.unwrap(), None);
    assert_eq!(new.read(b"b").await.unwrap(), Some(b"2".to_vec()));
}
