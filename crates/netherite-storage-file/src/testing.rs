//! [`FileFixture`]: file devices in temporary directories for the core's `LogDevice`
//! conformance suite (feature `testing`), fenced by the directory lock or by a lease.
//!
//! ```
//! # let runtime = tokio::runtime::Builder::new_current_thread()
//! #     .enable_all().build().expect("runtime");
//! # runtime.block_on(async {
//! use netherite_core::device::conformance;
//! use netherite_storage_file::{FileDeviceOptions, testing::FileFixture};
//!
//! conformance::run(|| FileFixture::temporary(FileDeviceOptions::default()).expect("temp dir"))
//!     .await;
//! # });
//! ```

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use netherite_core::device::LogDevice;
use netherite_core::device::conformance::DeviceFixture;

use crate::{Acquired, Error, FileDevice, FileDeviceOptions, Lease};

/// The lease file of a leased fixture, next to the device's files (which it leaves alone).
const LEASE_FILE: &str = "LEASE";

/// One device directory in a temporary directory, deleted with the fixture.
#[derive(Debug)]
pub struct FileFixture {
    dir: tempfile::TempDir,
    options: FileDeviceOptions,
    /// The lease file when devices are fenced by a lease, `None` for the directory lock.
    lease: Option<PathBuf>,
    /// How many owners took the lease so far, to name the next one.
    owners: AtomicU64,
    /// Every handle this fixture opened, so that it can end their ownership.
    handles: Mutex<Vec<Arc<FileDevice>>>,
}

impl FileFixture {
    /// A fixture over a fresh temporary directory, laid out as `options` say, whose devices
    /// are fenced by the directory lock.
    pub fn temporary(options: FileDeviceOptions) -> Result<FileFixture, Error> {
        let dir = tempfile::tempdir().map_err(|source| Error::Directory {
            path: std::env::temp_dir(),
            source,
        })?;
        Ok(FileFixture {
            dir,
            options,
            lease: None,
            owners: AtomicU64::new(0),
            handles: Mutex::default(),
        })
    }

    /// A fixture like [`temporary`](FileFixture::temporary) whose devices are fenced by a
    /// lease instead: each open is a new owner that takes the lease over, under the next
    /// epoch, while the handles opened before stay open (and must find themselves fenced).
    pub fn leased(options: FileDeviceOptions) -> Result<FileFixture, Error> {
        let mut fixture = FileFixture::temporary(options)?;
        fixture.lease = Some(fixture.dir.path().join(LEASE_FILE));
        Ok(fixture)
    }

    /// The device directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Ends the ownership of every handle opened so far, as their process's exit would.
    async fn end_owners(&self) -> Result<(), netherite_core::Error> {
        let handles = std::mem::take(&mut *self.lock());
        for handle in handles {
            handle.release().await?;
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<FileDevice>>> {
        self.handles.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Opens the directory as a new owner, by the fixture's fence.
    async fn open_device(&self) -> Result<FileDevice, netherite_core::Error> {
        let Some(path) = self.lease.clone() else {
            self.end_owners().await?;
            return Ok(FileDevice::open(self.dir.path(), self.options).await?);
        };
        let owner = format!("owner-{}", self.owners.fetch_add(1, Ordering::Relaxed));
        let lease = tokio::task::spawn_blocking(move || take_over(&path, &owner))
            .await
            .map_err(|e| netherite_core::Error::Io {
                operation: "open",
                reason: format!("the lease task failed: {e}"),
            })??;
        let device = FileDevice::open_leased(self.dir.path(), self.options, Arc::new(lease));
        Ok(device.await?)
    }
}

/// Takes the lease at `path` for `owner`. Every lease this fixture hands out has a ttl of zero,
/// so it has run out by the time the next owner comes, as if its holder had stopped.
fn take_over(path: &Path, owner: &str) -> Result<Lease, netherite_core::Error> {
    match Lease::acquire(path, owner, Duration::ZERO)? {
        Acquired::Taken(lease) => Ok(lease),
        Acquired::Held { owner, epoch, .. } => Err(netherite_core::Error::Fenced(format!(
            "lease {} is held by {owner} under epoch {epoch}",
            path.display()
        ))),
    }
}

#[async_trait]
impl DeviceFixture for FileFixture {
    /// Opens the directory as a new owner. A file lock cannot be taken from a living holder:
    /// on a real machine the old owner's process releases, exits or is killed before the next
    /// one gets in. The fixture stands in for that by releasing every handle it opened before;
    /// the suite then checks that those handles are fenced. A lease is taken over from a
    /// living holder instead, whose handles stay open: the lease's epoch fences them.
    async fn open(&self) -> Result<Arc<dyn LogDevice>, netherite_core::Error> {
        let device = Arc::new(self.open_device().await?);
        self.lock().push(Arc::clone(&device));
        Ok(device)
    }

    /// Simulates the crash of the owner's process: its handles die and the kernel drops its
    /// lock (a lease is left to run out), while the page cache keeps every byte written (which
    /// the contract allows). A power cut is not simulated: what survives one is what
    /// `fdatasync` made durable, and no test on a live disk can observe that.
    async fn crash(&self) -> bool {
        self.end_owners().await.is_ok()
    }
}
