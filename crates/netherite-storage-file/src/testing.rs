//! [`FileFixture`]: file devices in temporary directories for the core's `LogDevice`
//! conformance suite (feature `testing`).
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

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use netherite_core::device::LogDevice;
use netherite_core::device::conformance::DeviceFixture;

use crate::{Error, FileDevice, FileDeviceOptions};

/// One device directory in a temporary directory, deleted with the fixture.
#[derive(Debug)]
pub struct FileFixture {
    dir: tempfile::TempDir,
    options: FileDeviceOptions,
    /// Every handle this fixture opened, so that it can end their ownership.
    handles: Mutex<Vec<Arc<FileDevice>>>,
}

impl FileFixture {
    /// A fixture over a fresh temporary directory, laid out as `options` say.
    pub fn temporary(options: FileDeviceOptions) -> Result<FileFixture, Error> {
        let dir = tempfile::tempdir().map_err(|source| Error::Directory {
            path: std::env::temp_dir(),
            source,
        })?;
        Ok(FileFixture {
            dir,
            options,
            handles: Mutex::default(),
        })
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
}

#[async_trait]
impl DeviceFixture for FileFixture {
    /// Opens the directory as a new owner. A file lock cannot be taken from a living holder:
    /// on a real machine the old owner's process releases, exits or is killed before the next
    /// one gets in. The fixture stands in for that by releasing every handle it opened before;
    /// the suite then checks that those handles are fenced.
    async fn open(&self) -> Result<Arc<dyn LogDevice>, netherite_core::Error> {
        self.end_owners().await?;
        let device = Arc::new(FileDevice::open(self.dir.path(), self.options).await?);
        self.lock().push(Arc::clone(&device));
        Ok(device)
    }

    /// Simulates the crash of the owner's process: its handles die and the kernel drops its
    /// lock, while the page cache keeps every byte written (which the contract allows). A
    /// power cut is not simulated: what survives one is what `fdatasync` made durable, and no
    /// test on a live disk can observe that.
    async fn crash(&self) -> bool {
        self.end_owners().await.is_ok()
    }
}
