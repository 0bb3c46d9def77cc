//! The engine on page blobs (feature `pageblob`) against the storage service that
//! `NETHERITE_TEST_AZURITE` names (`.ci/azure-tests` starts Azurite): what a user with a wrong
//! account key sees. Without the variable the story says it is skipped; in CI (`CI=true`) that
//! is a failure.

#![cfg(feature = "pageblob")]

use std::time::Duration;

use netherite::settings::{Secret, Settings, StorageKind};
use netherite::{Error, Netherite};

/// A well-formed key that is not the account's: 32 bytes of 0x01, in base64.
const WRONG_KEY: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";

/// The blob endpoint of the test service, from its connection string.
fn blob_endpoint() -> Option<String> {
    let what = "the page blob engine story";
    let connection = netherite_core::conformance::outside_service("NETHERITE_TEST_AZURITE", what)?;
    let endpoint = connection
        .split(';')
        .find_map(|part| part.trim().strip_prefix("BlobEndpoint="));
    Some(
        endpoint
            .expect("the test connection string names its BlobEndpoint")
            .to_string(),
    )
}

/// A key the service refuses stops the start within a minute, with an error that names the
/// container and the service's answer and never quotes the key or a signature.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_is_refused_by_name_without_quoting_it() {
    let Some(endpoint) = blob_endpoint() else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let connection =
        format!("AccountName=devstoreaccount1;AccountKey={WRONG_KEY};BlobEndpoint={endpoint}");
    let settings = Settings {
        partition_count: 2,
        data_dir: dir.path().to_path_buf(),
        storage: StorageKind::PageBlob,
        storage_connection: Some(Secret::new(connection)),
        storage_container: "wrong-key".into(),
        ..Settings::default()
    };
    let started = Netherite::builder().settings(settings).start();
    let started = tokio::time::timeout(Duration::from_secs(60), started)
        .await
        .expect("a refused key ends the start within a minute");
    let error = started.expect_err("a wrong key is refused");
    let message = error.to_string();
    println!("{message}");
    assert!(matches!(error, Error::HubStorage { .. }), "{error:?}");
    assert!(message.contains("wrong-key"), "{message}");
    assert!(!message.contains(WRONG_KEY), "the key is quoted: {message}");
    // Shared-key requests carry no signature today; this guards the day they do.
    let signatures = message.matches("sig=").count();
    let redacted = message.matches("sig=<redacted>").count();
    assert_eq!(signatures, redacted, "a signature is quoted: {message}");
}
