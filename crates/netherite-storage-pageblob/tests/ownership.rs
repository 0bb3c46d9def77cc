//! The lease as the ownership fence: one owner at a time, a waiting owner gets in when the
//! holder lets go or dies, and an owner that lost the device is refused by the service.

#![cfg(feature = "azurite")]

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use netherite_azure::StorageAccount;
use netherite_core::device::LogDevice;
use netherite_storage_pageblob::{Error, PageBlobDevice, PageBlobOptions, testing};

fn options(owner: &str) -> PageBlobOptions {
    PageBlobOptions::default()
        .with_segment_bytes(64 << 10)
        .with_owner(owner)
}

async fn open(account: &StorageAccount, prefix: &str, options: PageBlobOptions) -> PageBlobDevice {
    PageBlobDevice::open(account, support::CONTAINER, prefix, options)
        .await
        .expect("the device opens")
}

fn is_fenced(error: &netherite_core::Error) -> bool {
    matches!(error, netherite_core::Error::Fenced(_))
}

/// While one owner holds the device, a second one waits as long as it is allowed to, then
/// fails as fenced, naming the holder, having written nothing; the holder carries on.
#[tokio::test]
async fn a_second_owner_waits_then_fails_and_writes_nothing() {
    let Some(account) = support::account().await else {
        return;
    };
    let prefix = testing::fresh_prefix("ownership");
    let first = open(&account, &prefix, options("node-a")).await;
    first.write(0, &[1; 1024]).await.unwrap();
    first.flush().await.unwrap();
    let before = testing::blob_etags(&account, support::CONTAINER, &prefix)
        .await
        .unwrap();

    // Phase 1: the second owner waits two seconds, then gives up as fenced.
    let wait = options("node-b").with_open_wait_max(Duration::from_secs(2));
    let error = PageBlobDevice::open(&account, support::CONTAINER, &prefix, wait)
        .await
        .unwrap_err();
    let Error::LeaseHeld { holder, waited, .. } = &error else {
        panic!("expected LeaseHeld, got {error:?}");
    };
    assert_eq!(holder, "node-a, epoch 1");
    assert!(*waited >= Duration::from_secs(2), "{waited:?}");
    assert!(is_fenced(&error.into()));

    // Phase 2: not one blob changed, and the holder still writes and flushes.
    let after = testing::blob_etags(&account, support::CONTAINER, &prefix)
        .await
        .unwrap();
    assert_eq!(before, after);
    first.write(1024, &[2; 512]).await.unwrap();
    first.flush().await.unwrap();
}

/// A waiting owner gets in as soon as the holder releases, and finds every flushed byte.
#[tokio::test]
async fn a_waiting_owner_gets_in_when_the_holder_releases() {
    let Some(account) = support::account().await else {
        return;
    };
    let prefix = testing::fresh_prefix("ownership");
    let first = open(&account, &prefix, options("node-a")).await;
    first.write(0, &[3; 2048]).await.unwrap();
    first.flush().await.unwrap();

    // Phase 1: the second owner starts waiting (for up to a minute).
    let wait = options("node-b").with_open_wait_max(Duration::from_secs(60));
    let waiting = {
        let (account, prefix) = (account.clone(), prefix.clone());
        tokio::spawn(async move {
            PageBlobDevice::open(&account, support::CONTAINER, &prefix, wait).await
        })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!waiting.is_finished());

    // Phase 2: the holder releases; the waiting owner is in, with the bytes.
    first.release().await.unwrap();
    let second = waiting.await.unwrap().expect("the waiting owner gets in");
    assert_eq!(second.epoch(), 2);
    assert_eq!(second.size(), 2048);
    assert_eq!(second.read(0, 2048).await.unwrap(), vec![3; 2048]);
    assert!(is_fenced(&first.write(2048, &[4; 512]).await.unwrap_err()));
}

/// An owner that dies without releasing (its handle dropped, its renewals stopped) is waited
/// out: its lease runs out within one duration, and the next owner finds every flushed byte.
#[tokio::test]
async fn a_dead_owner_is_waited_out() {
    let Some(account) = support::account().await else {
        return;
    };
    let prefix = testing::fresh_prefix("ownership");
    let short = |owner| options(owner).with_lease_duration(Duration::from_secs(15));
    let first = open(&account, &prefix, short("node-a")).await;
    first.write(0, &[5; 4096]).await.unwrap();
    first.flush().await.unwrap();
    drop(first);

    let wait = short("node-b").with_open_wait_max(Duration::from_secs(40));
    let second = open(&account, &prefix, wait).await;
    assert_eq!(second.read(0, 4096).await.unwrap(), vec![5; 4096]);
}

/// An owner whose lease is broken (as when it runs out while the owner is paused) learns it at
/// its next flush: every call after is fenced, the loss is logged once with the blob's name,
/// and the next owner finds every byte flushed before.
#[tokio::test]
async fn a_lost_lease_fences_every_later_call_and_is_logged_once() {
    let Some(account) = support::account().await else {
        return;
    };
    let log = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(log.clone())
        .with_ansi(false)
        .finish();
    let _logging = tracing::subscriber::set_default(subscriber);
    let prefix = testing::fresh_prefix("ownership");
    let device = open(&account, &prefix, options("node-a")).await;
    device.write(0, &[6; 512]).await.unwrap();
    device.flush().await.unwrap();

    // Phase 1: the lease goes; the flush is refused by the service, as fenced.
    testing::break_lease(&account, support::CONTAINER, &prefix)
        .await
        .unwrap();
    let flush = device.flush().await.unwrap_err();
    assert!(is_fenced(&flush), "{flush}");
    assert!(
        flush.to_string().contains(&format!("{prefix}meta")),
        "{flush}"
    );

    // Phase 2: every later call is fenced at once; the loss was logged once.
    assert!(is_fenced(&device.write(512, &[7; 512]).await.unwrap_err()));
    assert!(is_fenced(&device.read(0, 1).await.unwrap_err()));
    assert!(is_fenced(&device.truncate_before(512).await.unwrap_err()));
    assert!(is_fenced(&device.flush().await.unwrap_err()));
    assert_eq!(
        log.text().matches("page blob lease lost").count(),
        1,
        "{}",
        log.text()
    );
    assert!(log.text().contains(&format!("{prefix}meta")));

    // Phase 3: the next owner gets in at once and finds the flushed page.
    let next = open(
        &account,
        &prefix,
        options("node-b").with_open_wait_max(Duration::ZERO),
    )
    .await;
    assert_eq!(next.read(0, 512).await.unwrap(), vec![6; 512]);
}

/// An idle owner learns of a broken lease from its background renewal, without a call of its
/// own: [`PageBlobDevice::lost`] resolves. The renewal comes every third of the lease; the
/// story allows one whole lease, so a slow service does not fail it.
#[tokio::test]
async fn an_idle_owner_learns_of_a_lost_lease() {
    let Some(account) = support::account().await else {
        return;
    };
    let prefix = testing::fresh_prefix("ownership");
    let lease = Duration::from_secs(15);
    let device = open(
        &account,
        &prefix,
        options("node-a").with_lease_duration(lease),
    )
    .await;
    let quiet = tokio::time::timeout(Duration::from_secs(1), device.lost()).await;
    assert!(quiet.is_err(), "a held lease is not lost");

    testing::break_lease(&account, support::CONTAINER, &prefix)
        .await
        .unwrap();
    let noticed = tokio::time::timeout(lease, device.lost()).await;
    assert!(
        noticed.is_ok(),
        "the renewal did not notice within {lease:?}"
    );
    assert!(is_fenced(&device.read(0, 1).await.unwrap_err()));
}

/// A metadata write of this owner that landed after it was reported failed leaves the handle
/// with an old ETag. The next change of the metadata reads the blob back, finds this owner's
/// epoch there, and writes over it: no false fence, and the change is what the next owner
/// finds.
#[tokio::test]
async fn a_late_write_of_the_owner_is_not_taken_for_a_fence() {
    let Some(account) = support::account().await else {
        return;
    };
    let prefix = testing::fresh_prefix("ownership");
    let device = open(&account, &prefix, options("node-a")).await;
    device.write(0, &[3; 1024]).await.unwrap();
    device.flush().await.unwrap();

    device.land_a_late_metadata_write().await.unwrap();
    device.truncate_before(512).await.expect("not fenced");
    device
        .write(1024, &[4; 512])
        .await
        .expect("still the owner");
    device.flush().await.unwrap();
    device.release().await.unwrap();

    let next = open(&account, &prefix, options("node-b")).await;
    assert_eq!(next.start(), 512);
    assert_eq!(
        next.read(512, 1024).await.unwrap(),
        [[3; 512], [4; 512]].concat()
    );
}

/// An older owner that has not noticed a newer one took over is refused by the service on its
/// next write (the newer epoch is on every segment), and its truncation too; the newer owner's
/// bytes are untouched.
#[tokio::test]
async fn an_older_owner_is_refused_by_the_service() {
    let Some(account) = support::account().await else {
        return;
    };
    let prefix = testing::fresh_prefix("ownership");
    let old = open(&account, &prefix, options("node-a")).await;
    old.write(0, &[8; 128 << 10]).await.unwrap();

    // Phase 1: a newer owner takes over (the old lease broken, as if it ran out).
    testing::break_lease(&account, support::CONTAINER, &prefix)
        .await
        .unwrap();
    let new = open(&account, &prefix, options("node-b")).await;
    assert_eq!(new.epoch(), old.epoch() + 1);

    // Phase 2: the old owner's write reaches the service and is refused there.
    let error = old.write(64 << 10, &[9; 512]).await.unwrap_err();
    assert!(is_fenced(&error), "{error}");
    assert!(error.to_string().contains("newer owner"), "{error}");
    assert!(is_fenced(&old.truncate_before(512).await.unwrap_err()));

    // Phase 3: nothing of the old owner's late calls landed.
    assert_eq!(new.read(0, 128 << 10).await.unwrap(), vec![8; 128 << 10]);
    assert_eq!(new.start(), 0);
}

/// A log sink the stories read back.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        let bytes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let mut log = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        log.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}
