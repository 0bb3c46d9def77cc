//! Failures that an operator must see clearly, against a storage service (see
//! `support::account`): a wrong key, a missing container, a device opened with another
//! layout. Each is a typed error naming what is wrong, none quotes the key, and none loses a
//! byte.

#![cfg(feature = "azurite")]

mod support;

use std::time::Duration;

use netherite_azure::{AccountKey, StorageAccount};
use netherite_core::device::LogDevice;
use netherite_storage_pageblob::{Error, PageBlobDevice, PageBlobOptions, testing};

/// The same account and endpoint with another key.
fn with_wrong_key(account: &StorageAccount) -> (StorageAccount, &'static str) {
    let wrong = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXk=";
    let key = AccountKey::from_base64(wrong).expect("the wrong key is base64");
    let endpoint = account.blob_endpoint().clone();
    let account = StorageAccount::new(account.name().to_string(), key, endpoint);
    let account = account.expect("the name and endpoint were valid already");
    (account, wrong)
}

/// A wrong account key is refused by the service (403) and reported as such, naming the
/// account and container and never the key; the device's bytes are untouched.
#[tokio::test]
async fn a_wrong_key_is_denied() {
    let Some(account) = support::account().await else {
        return;
    };
    let prefix = testing::fresh_prefix("errors");
    let options = PageBlobOptions::default;
    let device = PageBlobDevice::open(&account, support::CONTAINER, &prefix, options())
        .await
        .unwrap();
    device.write(0, &[1; 512]).await.unwrap();
    device.release().await.unwrap();

    let (wrong, key) = with_wrong_key(&account);
    let error = PageBlobDevice::open(&wrong, support::CONTAINER, &prefix, options())
        .await
        .unwrap_err();
    let Error::Denied { status, .. } = &error else {
        panic!("expected Denied, got {error:?}");
    };
    assert_eq!(*status, 403);
    let message = error.to_string();
    assert!(message.contains(account.name()) && message.contains(support::CONTAINER));
    assert!(
        !message.contains(key) && !message.contains("sig="),
        "{message}"
    );

    let device = PageBlobDevice::open(&account, support::CONTAINER, &prefix, options())
        .await
        .unwrap();
    assert_eq!(device.read(0, 512).await.unwrap(), vec![1; 512]);
}

/// A container that does not exist is named in the error; the device never creates one.
#[tokio::test]
async fn a_missing_container_is_named() {
    let Some(account) = support::account().await else {
        return;
    };
    let options = PageBlobOptions::default();
    let error = PageBlobDevice::open(&account, "no-such-container", "p0/", options)
        .await
        .unwrap_err();
    let Error::ContainerNotFound { container, .. } = &error else {
        panic!("expected ContainerNotFound, got {error:?}");
    };
    assert_eq!(container, "no-such-container");
    let core = netherite_core::Error::from(error);
    assert!(
        matches!(core, netherite_core::Error::InvalidArgument { .. }),
        "{core}"
    );
}

/// A device reopened with another segment size is refused (its bytes would be looked for in
/// other blobs), and the refused open gives the lease back at once.
#[tokio::test]
async fn another_segment_size_is_refused() {
    let Some(account) = support::account().await else {
        return;
    };
    let prefix = testing::fresh_prefix("errors");
    let small = PageBlobOptions::default().with_segment_bytes(4096);
    let device = PageBlobDevice::open(&account, support::CONTAINER, &prefix, small.clone())
        .await
        .unwrap();
    device.write(0, &[2; 8192]).await.unwrap();
    device.release().await.unwrap();

    let large = PageBlobOptions::default().with_open_wait_max(Duration::ZERO);
    let error = PageBlobDevice::open(&account, support::CONTAINER, &prefix, large)
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::LayoutMismatch { stored: 4096, .. }),
        "{error:?}"
    );

    let again = small.with_open_wait_max(Duration::ZERO);
    let device = PageBlobDevice::open(&account, support::CONTAINER, &prefix, again)
        .await
        .unwrap();
    assert_eq!(device.read(4096, 4096).await.unwrap(), vec![2; 4096]);
}
