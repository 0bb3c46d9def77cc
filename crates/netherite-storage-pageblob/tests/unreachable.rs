//! A storage service that does not answer or is too busy: the device retries as its options
//! say, with backoff, then reports a retryable error naming why. Loopback stand-ins play the
//! service (a port nobody listens on; a server that answers 503 ServerBusy, as Azure Storage
//! throttles), so these run in every `cargo test`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use netherite_azure::StorageAccount;
use netherite_storage_pageblob::{Error, PageBlobDevice, PageBlobOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const BUSY: &[u8] = b"HTTP/1.1 503 The server is busy.\r\nx-ms-error-code: ServerBusy\r\n\
                      Content-Length: 0\r\n\r\n";

/// Azurite's account, at `port` on loopback.
fn account_on(port: u16) -> StorageAccount {
    let text =
        format!("UseDevelopmentStorage=true;BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1");
    StorageAccount::parse(&text).expect("a valid connection string")
}

/// Opens a device that cannot open, `attempts` tries `backoff` apart at first: the error, and
/// how long it took.
async fn open_in_vain(port: u16, attempts: u32, backoff: Duration) -> (Error, Duration) {
    let options = PageBlobOptions {
        attempts_max: attempts,
        backoff_min: backoff,
        ..PageBlobOptions::default()
    };
    let began = Instant::now();
    let opened = PageBlobDevice::open(&account_on(port), "hub", "p0/", options).await;
    (opened.expect_err("nothing to open"), began.elapsed())
}

/// A service that does not answer (nothing listens on the port) is tried as often as the
/// options say, with backoff, and then reported as a retryable I/O error.
#[tokio::test]
async fn an_unreachable_service_is_retried_then_retryable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .unwrap()
        .port();
    let (error, took) = open_in_vain(port, 3, Duration::from_millis(50)).await;
    let Error::Unavailable { attempts, .. } = &error else {
        panic!("expected Unavailable, got {error:?}");
    };
    assert_eq!(*attempts, 3);
    // Two pauses, of 50 and 100 ms.
    assert!(took >= Duration::from_millis(150));
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

/// Serves every request on `listener` with 503 ServerBusy, counting them.
async fn serve_busy(listener: TcpListener, requests: Arc<AtomicU32>) {
    while let Ok((stream, _)) = listener.accept().await {
        tokio::spawn(answer_busy(stream, requests.clone()));
    }
}

/// Answers each request of one connection once its head has arrived; the device's requests
/// that reach the service first carry no body.
async fn answer_busy(mut stream: TcpStream, requests: Arc<AtomicU32>) {
    let mut seen = Vec::new();
    let mut buffer = [0u8; 4096];
    while let Ok(n) = stream.read(&mut buffer).await {
        if n == 0 {
            return;
        }
        seen.extend_from_slice(&buffer[..n]);
        while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
            seen.drain(..end + 4);
            requests.fetch_add(1, Ordering::Relaxed);
            if stream.write_all(BUSY).await.is_err() {
                return;
            }
        }
    }
}

/// Throttling that does not let up is retried `attempts_max` times, one request each, and then
/// reported as a retryable `Unavailable` naming the status and the service's code.
#[tokio::test]
async fn throttling_is_retried_a_bounded_number_of_times() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let requests = Arc::new(AtomicU32::new(0));
    let server = tokio::spawn(serve_busy(listener, requests.clone()));

    let (error, took) = open_in_vain(port, 4, Duration::from_millis(20)).await;
    server.abort();
    // Three pauses between the four tries, of 20, 40 and 80 ms.
    assert!(took >= Duration::from_millis(140), "no backoff");
    let Error::Unavailable {
        attempts, reason, ..
    } = &error
    else {
        panic!("expected Unavailable, got {error:?}");
    };
    assert_eq!(*attempts, 4);
    assert_eq!(requests.load(Ordering::Relaxed), 4, "one request per try");
    assert!(reason.contains("503 ServerBusy"), "{reason}");
    assert!(netherite_core::Error::from(error).is_retryable());
}
