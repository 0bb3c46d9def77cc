//! [`PageBlobFixture`]: page-blob devices under fresh prefixes of a container, for the core's
//! `LogDevice` conformance suite (feature `testing`), and helpers for tests against a real
//! service or Azurite.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use netherite_azure::StorageAccount;
//! use netherite_core::device::conformance;
//! use netherite_storage_pageblob::{PageBlobOptions, testing};
//!
//! let account = StorageAccount::parse("UseDevelopmentStorage=true")?;
//! testing::create_container(&account, "conformance").await?;
//! let options = PageBlobOptions::default();
//! conformance::run(|| testing::PageBlobFixture::new(&account, "conformance", options.clone()))
//!     .await;
//! # Ok(())
//! # }
//! ```

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use azure_core::http::ClientOptions;
use azure_storage_blob::models::BlobClientBreakLeaseOptions;
use netherite_azure::StorageAccount;
use netherite_core::device::LogDevice;
use netherite_core::device::conformance::DeviceFixture;

use crate::layout::Layout;
use crate::service::Service;
use crate::{Error, PageBlobDevice, PageBlobOptions};

/// One device under a fresh prefix of a container; each open is a new owner.
#[derive(Debug)]
pub struct PageBlobFixture {
    account: StorageAccount,
    container: String,
    prefix: String,
    options: PageBlobOptions,
    /// Every handle this fixture opened, so that it can crash them.
    handles: Mutex<Vec<Arc<PageBlobDevice>>>,
}

impl PageBlobFixture {
    /// A fixture for a device under a fresh prefix of `container` (which must exist),
    /// laid out as `options` say.
    pub fn new(account: &StorageAccount, container: &str, options: PageBlobOptions) -> Self {
        PageBlobFixture {
            account: account.clone(),
            container: container.to_string(),
            prefix: fresh_prefix("conformance"),
            options,
            handles: Mutex::default(),
        }
    }

    /// The device's prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn handles(&self) -> std::sync::MutexGuard<'_, Vec<Arc<PageBlobDevice>>> {
        self.handles.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl DeviceFixture for PageBlobFixture {
    /// Opens the device as a new owner. The handles opened before stay open and keep
    /// renewing: the fixture breaks their lease first, as its running out would (an older
    /// owner that is paused or cut off), so that the suite checks that the service itself
    /// fences them.
    async fn open(&self) -> Result<Arc<dyn LogDevice>, netherite_core::Error> {
        break_lease(&self.account, &self.container, &self.prefix).await?;
        let device = PageBlobDevice::open(
            &self.account,
            &self.container,
            &self.prefix,
            self.options.clone(),
        )
        .await?;
        let device = Arc::new(device);
        self.handles().push(Arc::clone(&device));
        Ok(device)
    }

    /// Crashes the handles opened so far: they stop renewing and are fenced, with no
    /// release. Nothing is lost, which the contract allows: every write that returned was
    /// stored by the service.
    async fn crash(&self) -> bool {
        for device in self.handles().drain(..) {
            device.crash();
        }
        true
    }
}

/// A prefix no other call in this process or run has used: `<label>/<millis>-<pid>-<n>/`.
pub fn fresh_prefix(label: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{label}/{run}-{}-{n}/", std::process::id())
}

/// Creates the container `name` unless it exists, with the default options.
pub async fn create_container(account: &StorageAccount, name: &str) -> Result<(), Error> {
    crate::create_container(account, name, &PageBlobOptions::default()).await
}

/// Breaks the lease of the device under `prefix` at once, as its running out would; a device
/// with no lease (or no metadata yet) is left as it is.
pub async fn break_lease(
    account: &StorageAccount,
    container: &str,
    prefix: &str,
) -> Result<(), Error> {
    let service = Service::new(account, container, &PageBlobOptions::default())?;
    let layout = Layout::new(prefix, PageBlobOptions::default().segment_bytes)?;
    break_now(&service, &layout.meta_blob()).await
}

/// Breaks the lease on `blob` at once, as its running out would; no lease is not an error.
async fn break_now(service: &Service, blob: &str) -> Result<(), Error> {
    let client = service.blob(blob);
    let result = service
        .call("break lease", blob, || {
            let options = BlobClientBreakLeaseOptions {
                break_period: Some(0),
                ..Default::default()
            };
            client.break_lease(Some(options))
        })
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(failure) if failure.is_lease_conflict() || failure.is(404, "BlobNotFound") => Ok(()),
        Err(failure) => Err(service.error("break lease", blob, failure)),
    }
}

/// The names of the blobs under `prefix` in `container`, in order, with their ETags: a
/// fingerprint that changes with any write, for stories that check nothing was written.
pub async fn blob_etags(
    account: &StorageAccount,
    container: &str,
    prefix: &str,
) -> Result<Vec<(String, String)>, Error> {
    use futures::TryStreamExt;

    let client = account.container_client(container, ClientOptions::default())?;
    let options = azure_storage_blob::models::BlobContainerClientListBlobsOptions {
        prefix: Some(prefix.to_string()),
        ..Default::default()
    };
    let listing = async {
        let mut items = client.list_blobs(Some(options))?;
        let mut found = Vec::new();
        while let Some(item) = items.try_next().await? {
            let etag = item.properties.and_then(|p| p.etag).map(|e| e.to_string());
            found.push((item.name.unwrap_or_default(), etag.unwrap_or_default()));
        }
        Ok::<_, azure_core::Error>(found)
    };
    listing.await.map_err(|e| Error::Unavailable {
        operation: "list blobs",
        blob: prefix.to_string(),
        attempts: 1,
        reason: netherite_azure::redact_sas(&e.to_string()),
    })
}
