//! A storage service that does not answer: the device retries as its options say, then reports
//! a retryable error. Needs no service, so it runs in every `cargo test`.

use std::time::{Duration, Instant};

use netherite_azure::StorageAccount;
use netherite_storage_pageblob::{Error, PageBlobDevice, PageBlobOptions};

/// A service that does not answer (nothing listens on the port) is tried as often as the
/// options say, with backoff, and then reported as a retryable I/O error.
#[tokio::test]
async fn an_unreachable_service_is_retried_then_retryable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .unwrap()
        .port();
    let text =
        format!("UseDevelopmentStorage=true;BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1");
    let account = StorageAccount::parse(&text).unwrap();
    let options = PageBlobOptions {
        attempts_max: 3,
        backoff_min: Duration::from_millis(50),
        ..PageBlobOptions::default()
    };

    let began = Instant::now();
    let error = PageBlobDevice::open(&account, "hub", "p0/", options)
        .await
        .unwrap_err();
    let Error::Unavailable { attempts, .. } = &error else {
        panic!("expected Unavailable, got {error:?}");
    };
    assert_eq!(*attempts, 3);
    // Two pauses, of 50 and 100 ms.
    assert!(began.elapsed() >= Duration::from_millis(150));
    // The HTTP layer quotes the URL; its signature is hidden.
    let message = error.to_string();
    assert!(message.contains("Connection refused"), "{message}");
    assert!(
        message
            .split("sig=")
            .skip(1)
            .all(|s| s.starts_with("<redacted>")),
        "{message}"
    );
    assert!(netherite_core::Error::from(error).is_retryable());
}
