//! [`FileDevice`]: the [`LogDevice`] over one directory of segment files.
//!
//! Every file operation blocks, so each call runs on Tokio's blocking pool and the caller's
//! task only awaits it. A write copies its bytes once to hand them to that pool; next to a
//! system call and the page cache that copy is noise.
//!
//! Ownership is a fence (see `fence`) held by the handle from open until `release` or drop:
//! the directory lock, or a lease shared with the partition's other devices. Every owner
//! operation holds a read guard on it for its whole run, and release takes the write guard: it
//! waits for the operations in flight, and none starts after it, so no byte of a released
//! handle lands once the next owner can get in. Under a lease, each operation also runs under
//! the lease's guard, which refuses it once another owner took the lease over.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use async_trait::async_trait;
use netherite_core::device::{LogDevice, check_aligned, check_range};

use crate::fence::Fence;
use crate::meta::{self, Meta};
use crate::open::open_dir;
use crate::segments::Segments;
use crate::{Error, FileDeviceOptions, Lease};

/// A [`LogDevice`] over segment files in one directory, owned by whoever opened it.
///
/// Writes are positional writes into the page cache; [`flush`](LogDevice::flush) is
/// `fdatasync` of every segment written since the last flush, plus an fsync of the directory
/// when a segment file was created. Opened with [`open`](FileDevice::open), the directory is
/// locked while the handle is open: a second open, from this process or another, fails with
/// [`Error::Locked`] until this handle is released or dropped, or its process dies. Opened
/// with [`open_leased`](FileDevice::open_leased), a [`Lease`] fences it instead: see there.
///
/// ```
/// use netherite_core::device::LogDevice;
/// use netherite_storage_file::{FileDevice, FileDeviceOptions};
///
/// # let runtime = tokio::runtime::Builder::new_current_thread().build()?;
/// # runtime.block_on(async {
/// let dir = tempfile::tempdir()?;
/// let device = FileDevice::open(dir.path().join("p0"), FileDeviceOptions::default()).await?;
/// device.write(0, &[7; 4096]).await?;
/// device.flush().await?;
/// assert_eq!(device.read(4094, 2).await?, vec![7, 7]);
///
/// // The directory has one owner at a time.
/// assert!(FileDevice::open(device.dir(), FileDeviceOptions::default()).await.is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct FileDevice {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    options: FileDeviceOptions,
    /// The fence while this handle owns the directory, `None` once released.
    gate: RwLock<Option<Fence>>,
    /// Set at the start of a release, so that new calls are refused without waiting.
    released: AtomicBool,
    segments: Segments,
    size: AtomicU64,
    /// The truncation point.
    start: AtomicU64,
    /// Held for a whole truncation, so that two cannot interleave their metadata writes.
    truncating: Mutex<()>,
}

impl FileDevice {
    /// Opens the device in `dir`, creating the directory (and its parents) if needed, and
    /// locks it. Fails with [`Error::Locked`] if another handle holds it, with
    /// [`Error::Directory`] if it cannot be created, with [`Error::LayoutMismatch`] if it was
    /// created with other options, and with [`Error::Corrupt`] if a file in it is damaged.
    ///
    /// Must be called inside a Tokio runtime, as must every method of the handle.
    pub async fn open(
        dir: impl AsRef<Path>,
        options: FileDeviceOptions,
    ) -> Result<FileDevice, Error> {
        FileDevice::open_fenced(dir.as_ref(), options, None).await
    }

    /// Opens the device in `dir` as [`open`](FileDevice::open) does, but fenced by `lease`
    /// instead of the directory lock, so that the partition can move to another node sharing
    /// the directory once the lease is released or expired. The open itself and every later
    /// owner operation run under the lease's guard: once another owner took the lease over,
    /// they fail with [`Error::LeaseLost`], the contract's `Fenced`, and change nothing.
    ///
    /// [`release`](LogDevice::release) releases this handle, not the lease: the lease covers
    /// all the devices of a partition, so its holder releases it after all of them.
    pub async fn open_leased(
        dir: impl AsRef<Path>,
        options: FileDeviceOptions,
        lease: Arc<Lease>,
    ) -> Result<FileDevice, Error> {
        FileDevice::open_fenced(dir.as_ref(), options, Some(lease)).await
    }

    async fn open_fenced(
        dir: &Path,
        options: FileDeviceOptions,
        lease: Option<Arc<Lease>>,
    ) -> Result<FileDevice, Error> {
        let dir = dir.to_path_buf();
        let task_dir = dir.clone();
        let epoch = lease.as_ref().map(|lease| lease.epoch());
        let opened = tokio::task::spawn_blocking(move || open_dir(&task_dir, &options, lease))
            .await
            .map_err(|e| task_failed("open", &dir, e))??;

        tracing::info!(
            dir = %dir.display(),
            size = opened.size,
            start = opened.start,
            lease_epoch = epoch,
            "file device opened"
        );
        let inner = Inner {
            segments: Segments::new(dir.clone(), options.segment_bytes, opened.found),
            dir,
            options,
            gate: RwLock::new(Some(opened.fence)),
            released: AtomicBool::new(false),
            size: AtomicU64::new(opened.size),
            start: AtomicU64::new(opened.start),
            truncating: Mutex::new(()),
        };
        Ok(FileDevice {
            inner: Arc::new(inner),
        })
    }

    /// The device's directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The layout the device was opened with.
    pub fn options(&self) -> FileDeviceOptions {
        self.inner.options
    }

    /// The truncation point: reads and writes below it fail.
    pub fn start(&self) -> u64 {
        self.inner.start.load(Ordering::Acquire)
    }

    /// Runs `work` on the blocking pool while this handle owns the directory.
    async fn owned<T, W>(&self, operation: &'static str, work: W) -> Result<T, Error>
    where
        T: Send + 'static,
        W: FnOnce(&Inner) -> Result<T, Error> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        let task = tokio::task::spawn_blocking(move || {
            let gate = inner.gate.read().unwrap_or_else(PoisonError::into_inner);
            let Some(fence) = gate.as_ref() else {
                return Err(inner.released_error(operation));
            };
            fence.run(operation, || work(&inner))
        });
        task.await
            .map_err(|e| task_failed(operation, &self.inner.dir, e))?
    }

    /// A test seam: after `good` more syncs succeed, the next one fails.
    #[cfg(test)]
    pub(crate) fn fail_sync_after(&self, good: u64) {
        let countdown = &self.inner.segments.syncs_before_failure;
        countdown.store(good, Ordering::SeqCst);
    }
}

impl Inner {
    /// Refuses calls on a released handle, without waiting for the gate.
    fn check_owner(&self, operation: &'static str) -> Result<(), Error> {
        if self.released.load(Ordering::Acquire) {
            return Err(self.released_error(operation));
        }
        Ok(())
    }

    fn released_error(&self, operation: &'static str) -> Error {
        Error::Released {
            operation,
            dir: self.dir.clone(),
        }
    }

    /// Moves the start to `offset`: durably in the metadata first, then deletes the segments
    /// below it (a crash in between leaves segments that the next open deletes).
    fn truncate(&self, offset: u64) -> Result<(), Error> {
        let _one = self
            .truncating
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if offset <= self.start.load(Ordering::Acquire) {
            return Ok(());
        }
        let meta = Meta {
            alignment: self.options.alignment,
            segment_bytes: self.options.segment_bytes,
            start: offset,
        };
        meta::write(&self.dir, &meta)?;
        self.start.store(offset, Ordering::Release);

        let removed = self.segments.remove_below(offset)?;
        meta::reserve_spare(&self.dir);
        let dir = self.dir.display();
        tracing::debug!(dir = %dir, start = offset, removed, "file device truncated");
        Ok(())
    }

    /// Gives the fence up once no operation holds the gate: unlocks the directory, or drops
    /// this handle's share of the lease (which its holder releases).
    fn release(&self) {
        let mut gate = self.gate.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(fence) = gate.take() {
            tracing::info!(dir = %self.dir.display(), %fence, "file device released");
        }
    }
}

fn task_failed(operation: &'static str, dir: &Path, error: tokio::task::JoinError) -> Error {
    Error::Task {
        operation,
        dir: dir.to_path_buf(),
        reason: error.to_string(),
    }
}

type CoreResult<T> = Result<T, netherite_core::Error>;

#[async_trait]
impl LogDevice for FileDevice {
    fn alignment(&self) -> u64 {
        self.inner.options.alignment
    }

    fn size(&self) -> u64 {
        self.inner.size.load(Ordering::Acquire)
    }

    async fn write(&self, offset: u64, bytes: &[u8]) -> CoreResult<()> {
        let len = bytes.len() as u64;
        self.inner.check_owner("write")?;
        check_aligned("write", self.alignment(), offset, len)?;
        check_range("write", self.start(), u64::MAX, offset, len)?;
        if bytes.is_empty() {
            return Ok(());
        }

        let bytes = bytes.to_vec();
        self.owned("write", move |inner| {
            inner.segments.write(offset, &bytes)?;
            inner.size.fetch_max(offset + len, Ordering::AcqRel);
            Ok(())
        })
        .await?;
        Ok(())
    }

    async fn read(&self, offset: u64, len: usize) -> CoreResult<Vec<u8>> {
        self.inner.check_owner("read")?;
        check_range("read", self.start(), self.size(), offset, len as u64)?;
        if len == 0 {
            return Ok(Vec::new());
        }
        let bytes = self
            .owned("read", move |inner| inner.segments.read(offset, len))
            .await?;
        Ok(bytes)
    }

    async fn flush(&self) -> CoreResult<()> {
        self.inner.check_owner("flush")?;
        let synced = self.owned("flush", |inner| inner.segments.sync()).await?;
        tracing::trace!(dir = %self.inner.dir.display(), synced, "file device flushed");
        Ok(())
    }

    async fn truncate_before(&self, offset: u64) -> CoreResult<()> {
        self.inner.check_owner("truncate_before")?;
        let size = self.size();
        if offset > size {
            return Err(netherite_core::Error::InvalidArgument {
                operation: "truncate_before",
                reason: format!("offset {offset} is past the size {size}"),
            });
        }
        if offset <= self.start() {
            return Ok(());
        }
        self.owned("truncate_before", move |inner| inner.truncate(offset))
            .await?;
        Ok(())
    }

    async fn release(&self) -> CoreResult<()> {
        self.inner.released.store(true, Ordering::Release);
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || inner.release())
            .await
            .map_err(|e| task_failed("release", &self.inner.dir, e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// After a failed fdatasync, no later flush of the handle claims durability (the kernel
    /// may have dropped the failed pages); a reopen starts clean from what is on the disk.
    #[tokio::test]
    async fn a_failed_sync_poisons_the_handle() {
        let dir = tempfile::tempdir().unwrap();
        let options = FileDeviceOptions::default();
        let device = FileDevice::open(dir.path(), options).await.unwrap();
        device.write(0, &[1; 4096]).await.unwrap();

        // Phase 1: the sync fails, and so does every flush after it.
        device.fail_sync_after(0);
        let first = device.flush().await.unwrap_err();
        assert!(
            first.to_string().contains("segment-000000000000"),
            "{first}"
        );
        let later = device.flush().await.unwrap_err();
        assert!(later.to_string().contains("earlier fdatasync"), "{later}");

        // Phase 2: writes still read back, and a new owner can flush again.
        assert_eq!(device.read(0, 4).await.unwrap(), vec![1; 4]);
        device.release().await.unwrap();
        let reopened = FileDevice::open(dir.path(), options).await.unwrap();
        reopened.write(4096, &[2; 4096]).await.unwrap();
        reopened.flush().await.unwrap();
    }

    /// A sync that fails while the segments below a new one are filled fails that write and
    /// poisons the handle; the file it had already created does not block the write's retry.
    #[tokio::test]
    async fn a_failed_fill_leaves_the_write_retryable() {
        let dir = tempfile::tempdir().unwrap();
        let options = FileDeviceOptions::default().with_segment_bytes(4096);
        let device = FileDevice::open(dir.path(), options).await.unwrap();
        device.write(0, &[1; 4096]).await.unwrap();

        // Writing segment 2 syncs segment 0, creates and syncs segment 1: that sync fails.
        device.fail_sync_after(1);
        let error = device.write(2 * 4096, &[2; 4096]).await.unwrap_err();
        assert!(
            error.to_string().contains("segment-000000000001"),
            "{error}"
        );
        assert!(dir.path().join("segment-000000000001").exists());

        device.write(2 * 4096, &[2; 4096]).await.unwrap();
        assert_eq!(device.read(2 * 4096, 2).await.unwrap(), vec![2, 2]);
        let flush = device.flush().await.unwrap_err();
        assert!(flush.to_string().contains("earlier fdatasync"), "{flush}");
    }
}
