//! What a device keeps across owners: its size, its truncation point and its bytes, with
//! writes split at segment boundaries and at the service's per-request limit.

#![cfg(feature = "azurite")]

mod support;

use std::time::Duration;

use azure_core::http::ClientOptions;
use netherite_azure::StorageAccount;
use netherite_core::device::LogDevice;
use netherite_storage_pageblob::{PageBlobDevice, PageBlobOptions, testing};

async fn open(account: &StorageAccount, prefix: &str, options: PageBlobOptions) -> PageBlobDevice {
    let options = options.with_open_wait_max(Duration::ZERO);
    PageBlobDevice::open(account, support::CONTAINER, prefix, options)
        .await
        .expect("the device opens")
}

/// Recognizable bytes: `len` of them, different for each `seed`.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) | 1)
        .collect()
}

/// The segments under `prefix`, by name.
async fn segments(account: &StorageAccount, prefix: &str) -> Vec<String> {
    let blobs = testing::blob_etags(account, support::CONTAINER, prefix)
        .await
        .expect("the test container can be listed");
    let names = blobs.into_iter().map(|(name, _)| name);
    names.filter(|name| name.contains("segment-")).collect()
}

/// A write of 10 MiB across a segment boundary goes out in pieces of at most 4 MiB and reads
/// back whole, by this owner and the next.
#[tokio::test]
async fn large_writes_are_split_and_read_back() {
    let Some(account) = support::account().await else {
        return;
    };
    let prefix = testing::fresh_prefix("persistence");
    let options = PageBlobOptions::default().with_segment_bytes(6 << 20);
    let device = open(&account, &prefix, options.clone()).await;
    let data = pattern(10 << 20, 1);
    device.write(1 << 20, &data).await.unwrap();
    device.flush().await.unwrap();
    assert_eq!(device.read(1 << 20, data.len()).await.unwrap(), data);
    device.release().await.unwrap();

    let next = open(&account, &prefix, options).await;
    assert_eq!(next.size(), 11 << 20);
    assert_eq!(next.read(0, 1 << 20).await.unwrap(), vec![0; 1 << 20]);
    assert_eq!(next.read(1 << 20, data.len()).await.unwrap(), data);
    assert_eq!(segments(&account, &prefix).await.len(), 2);
}

/// The size and the truncation point survive a change of owner; the segments wholly below the
/// point are deleted, and reads and writes there are refused.
#[tokio::test]
async fn size_and_truncation_survive_a_new_owner() {
    let Some(account) = support::account().await else {
        return;
    };
    let prefix = testing::fresh_prefix("persistence");
    let options = PageBlobOptions::default().with_segment_bytes(4096);
    let device = open(&account, &prefix, options.clone()).await;
    let data = pattern(5 * 4096, 2);
    device.write(0, &data).await.unwrap();
    device.truncate_before(2 * 4096 + 512).await.unwrap();
    device.release().await.unwrap();

    // Phase 1: the next owner sees the same size and point; two segments are gone.
    let next = open(&account, &prefix, options).await;
    assert_eq!(next.size(), 5 * 4096);
    assert_eq!(next.start(), 2 * 4096 + 512);
    assert_eq!(segments(&account, &prefix).await.len(), 3);

    // Phase 2: below the point is refused, above it reads as written.
    assert!(next.read(2 * 4096, 1).await.is_err());
    assert!(next.write(4096, &[0; 512]).await.is_err());
    let kept = next.read(2 * 4096 + 512, 3 * 4096 - 512).await.unwrap();
    assert_eq!(kept, data[2 * 4096 + 512..]);
}

/// Segments below the truncation point that a crash left behind (here: created by hand after
/// the truncation) are deleted by the next open.
#[tokio::test]
async fn leftover_segments_are_deleted_at_open() {
    let Some(account) = support::account().await else {
        return;
    };
    let prefix = testing::fresh_prefix("persistence");
    let options = PageBlobOptions::default().with_segment_bytes(4096);
    let device = open(&account, &prefix, options.clone()).await;
    device.write(0, &pattern(3 * 4096, 3)).await.unwrap();
    device.truncate_before(2 * 4096).await.unwrap();
    device.release().await.unwrap();
    assert_eq!(segments(&account, &prefix).await.len(), 1);

    let container = account.container_client(support::CONTAINER, ClientOptions::default());
    let leftover = format!("{prefix}segment-0000000000000000");
    let page_blob = container.unwrap().blob_client(&leftover).page_blob_client();
    page_blob.create(4096, None).await.unwrap();
    assert_eq!(segments(&account, &prefix).await.len(), 2);

    let next = open(&account, &prefix, options).await;
    assert_eq!(
        segments(&account, &prefix).await,
        vec![format!("{prefix}segment-0000000000000002")]
    );
    assert_eq!(
        next.read(2 * 4096, 4096).await.unwrap(),
        pattern(3 * 4096, 3)[2 * 4096..]
    );
}

/// A write far past the end is bounded by `device_bytes_max`, a typed limit, not a flood of
/// segment creations.
#[tokio::test]
async fn a_wild_offset_hits_the_device_limit() {
    let Some(account) = support::account().await else {
        return;
    };
    let prefix = testing::fresh_prefix("persistence");
    let options = PageBlobOptions {
        device_bytes_max: 1 << 20,
        ..PageBlobOptions::default().with_segment_bytes(4096)
    };
    let device = open(&account, &prefix, options).await;
    let error = device.write(1 << 40, &[1; 512]).await.unwrap_err();
    assert!(
        matches!(
            error,
            netherite_core::Error::LimitExceeded {
                limit: "device_bytes_max",
                ..
            }
        ),
        "{error}"
    );
    assert_eq!(device.size(), 0);
    assert!(segments(&account, &prefix).await.is_empty());
}
