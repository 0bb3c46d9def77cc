//! [`PageBlobDevice`]: the [`LogDevice`] over one prefix of page blobs in a container.
//!
//! Ownership is the lease (see `lease`) plus the epoch on the segments (see `segments`). Every
//! owner operation holds a read guard on a gate for its whole run, and release takes the write
//! guard: it waits for the operations in flight, and none starts after it, so no request of a
//! released handle reaches the service once the next owner can get in.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use azure_core::Bytes;
use futures::{StreamExt, TryStreamExt};
use netherite_azure::StorageAccount;
use netherite_core::device::{LogDevice, check_aligned, check_range};
use tokio::sync::{Mutex, RwLock};

use crate::layout::{Layout, Piece};
use crate::lease::Lease;
use crate::meta::{self, Meta, Stored};
use crate::open::{REQUESTS_IN_FLIGHT, open};
use crate::segments::Segments;
use crate::service::Service;
use crate::{ALIGNMENT, Error, PageBlobOptions};

/// A [`LogDevice`] over page blobs under one prefix of a container, owned by whoever opened it.
///
/// Writes are put-pages requests, each durable at the service when it returns;
/// [`flush`](LogDevice::flush) renews the lease, which proves at the service that this owner
/// still holds the device (see the crate's docs for why that is what a flush must promise).
/// While the handle is open, a second open of the same prefix waits for the lease (up to
/// [`PageBlobOptions::open_wait_max`]) and then fails as fenced.
///
/// ```no_run
/// use netherite_azure::StorageAccount;
/// use netherite_core::device::LogDevice;
/// use netherite_storage_pageblob::{PageBlobDevice, PageBlobOptions};
///
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// let account = StorageAccount::parse("UseDevelopmentStorage=true")?;
/// let options = PageBlobOptions::default();
/// let device = PageBlobDevice::open(&account, "myhub", "p03/log/", options).await?;
/// device.write(0, &[7; 512]).await?;
/// device.flush().await?;
/// assert_eq!(device.read(510, 2).await?, vec![7, 7]);
/// device.release().await?;
/// # Ok(())
/// # }
/// ```
pub struct PageBlobDevice {
    inner: Arc<Inner>,
}

struct Inner {
    service: Arc<Service>,
    layout: Layout,
    options: PageBlobOptions,
    lease: Arc<Lease>,
    segments: Segments,
    epoch: u64,
    /// Held shared by every owner operation, exclusively by release.
    gate: RwLock<()>,
    size: AtomicU64,
    /// The truncation point.
    start: AtomicU64,
    /// Segments below this number exist (or lie below the truncation point).
    created: AtomicU64,
    /// The metadata as last written, and its ETag; held for a whole metadata update, so that
    /// two cannot interleave.
    meta: Mutex<Stored>,
}

impl PageBlobDevice {
    /// Opens the device whose blobs are named `prefix...` in the container `container`, as its
    /// new owner; creates it if it does not exist. The container must exist.
    ///
    /// Fails with [`Error::LeaseHeld`] if another owner holds the device longer than
    /// `open_wait_max`, [`Error::ContainerNotFound`], [`Error::Denied`] for refused
    /// credentials, [`Error::LayoutMismatch`] for another segment size, and
    /// [`Error::Unavailable`] when the service cannot be reached. Must be called inside a
    /// Tokio runtime, as must every method of the handle.
    pub async fn open(
        account: &StorageAccount,
        container: &str,
        prefix: &str,
        options: PageBlobOptions,
    ) -> Result<PageBlobDevice, Error> {
        options.validate()?;
        let layout = Layout::new(prefix, options.segment_bytes)?;
        let service = Arc::new(Service::new(account, container, &options)?);
        let opened = open(&service, &layout, &options).await?;

        let meta = &opened.stored.meta;
        tracing::info!(
            container,
            prefix,
            epoch = meta.epoch,
            size = opened.size,
            start = meta.start,
            segments = meta.segments,
            "page blob device opened"
        );
        let inner = Inner {
            epoch: meta.epoch,
            start: AtomicU64::new(meta.start),
            created: AtomicU64::new(meta.segments),
            size: AtomicU64::new(opened.size),
            service,
            layout,
            options,
            lease: opened.lease,
            segments: opened.segments,
            gate: RwLock::new(()),
            meta: Mutex::new(opened.stored),
        };
        Ok(PageBlobDevice {
            inner: Arc::new(inner),
        })
    }

    /// The container holding the device.
    pub fn container(&self) -> &str {
        self.inner.service.container_name()
    }

    /// The prefix of the device's blob names.
    pub fn prefix(&self) -> &str {
        self.inner.layout.prefix()
    }

    /// This owner's epoch: one more than the owner before.
    pub fn epoch(&self) -> u64 {
        self.inner.epoch
    }

    /// The options the device was opened with.
    pub fn options(&self) -> &PageBlobOptions {
        &self.inner.options
    }

    /// The truncation point: reads and writes below it fail.
    pub fn start(&self) -> u64 {
        self.inner.start.load(Ordering::Acquire)
    }

    /// Resolves once this handle has lost the device: its lease was broken or taken, the
    /// metadata blob deleted, or a newer owner's mark met. The background renewal finds this
    /// out within a third of the lease duration even when no call is made. Never resolves while
    /// the lease is held, nor after a release.
    pub async fn lost(&self) {
        self.inner.lease.lost().await;
    }

    /// Writes the metadata blob again, unchanged, without telling this handle its new ETag: as
    /// a write of this owner that was reported failed (no answer in time) and landed later.
    #[cfg(feature = "testing")]
    pub async fn land_a_late_metadata_write(&self) -> Result<(), Error> {
        let inner = &self.inner;
        let stored = inner.meta.lock().await;
        let blob = inner.layout.meta_blob();
        let lease = inner.lease.id();
        meta::write(&inner.service, &blob, &stored.meta, &stored.etag, lease).await?;
        Ok(())
    }

    /// Stops the handle as a crash would: no release, no more renewals, every later call
    /// fenced; the lease runs out by itself.
    #[cfg(feature = "testing")]
    pub(crate) fn crash(&self) {
        self.inner.lease.abandon();
    }

    /// Runs `work` while this handle owns the device: refused once released or lost, holding
    /// the gate so that a release waits for it; a fence the service reports loses the lease.
    async fn owned<T>(
        &self,
        operation: &'static str,
        work: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        let _gate = self.inner.gate.read().await;
        self.inner.lease.check(operation)?;
        let result = work.await;
        if let Err(error) = &result
            && error.is_fenced()
        {
            self.inner.lease.lose(operation, error);
        }
        result
    }

    /// Refuses a write ending at `end` if the device would hold more than `device_bytes_max`
    /// bytes above its truncation point.
    fn check_capacity(&self, end: u64) -> Result<(), netherite_core::Error> {
        // A truncation running meanwhile may have moved the start past `end`.
        let held = end.saturating_sub(self.start());
        let max = self.inner.options.device_bytes_max;
        if held > max {
            return Err(netherite_core::Error::LimitExceeded {
                limit: "device_bytes_max",
                actual: held,
                max,
            });
        }
        Ok(())
    }
}

impl Inner {
    fn start(&self) -> u64 {
        self.start.load(Ordering::Acquire)
    }

    /// Writes `bytes` at `offset`, creating the segments it needs first.
    async fn write(&self, offset: u64, bytes: &[u8]) -> Result<(), Error> {
        let end = offset + bytes.len() as u64;
        self.ensure_segments(self.layout.segment_of(end - 1))
            .await?;
        let pieces = self.layout.pieces(offset, bytes.len() as u64);
        futures::stream::iter(pieces.into_iter().map(Ok))
            .try_for_each_concurrent(REQUESTS_IN_FLIGHT, |piece| async move {
                let range = piece.at as usize..(piece.at + piece.len) as usize;
                let chunk = Bytes::copy_from_slice(&bytes[range]);
                let result = self.segments.put(piece, chunk).await;
                result.map_err(|error| self.unless_truncated("write", piece, error))
            })
            .await
    }

    /// Reads `len` bytes at `offset`, the pieces side by side.
    async fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>, Error> {
        let mut out = vec![0; len];
        let pieces = self.layout.pieces(offset, len as u64);
        let mut parts = Vec::with_capacity(pieces.len());
        let mut rest = out.as_mut_slice();
        for piece in pieces {
            let (part, tail) = rest.split_at_mut(piece.len as usize);
            parts.push((piece, part));
            rest = tail;
        }
        futures::stream::iter(parts.into_iter().map(Ok))
            .try_for_each_concurrent(REQUESTS_IN_FLIGHT, |(piece, part)| async move {
                let result = self.segments.get(piece, part).await;
                result.map_err(|error| self.unless_truncated("read", piece, error))
            })
            .await?;
        Ok(out)
    }

    /// A segment deleted under a call because a truncation passed it meanwhile is the
    /// caller's range gone, not another owner's doing.
    fn unless_truncated(&self, operation: &'static str, piece: Piece, error: Error) -> Error {
        let first_live = self.layout.segment_of(self.start());
        if error.is_fenced() && piece.segment < first_live {
            let blob = self.layout.segment_blob(piece.segment);
            return Error::Truncated { operation, blob };
        }
        error
    }

    /// Makes sure segments up to `last` exist: raises the metadata's bound first (under the
    /// lease), then creates them with this owner's epoch.
    async fn ensure_segments(&self, last: u64) -> Result<(), Error> {
        if last < self.created.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut stored = self.meta.lock().await;
        let created = self.created.load(Ordering::Acquire);
        if last < created {
            return Ok(());
        }
        if stored.meta.segments <= last {
            let next = Meta {
                segments: last + 1,
                ..stored.meta.clone()
            };
            *stored = self.write_meta(next, &stored).await?;
        }
        futures::stream::iter((created..=last).map(Ok))
            .try_for_each_concurrent(REQUESTS_IN_FLIGHT, |index| self.segments.create(index))
            .await?;
        self.created.store(last + 1, Ordering::Release);
        tracing::debug!(
            prefix = self.layout.prefix(),
            segments = last + 1,
            "page blob segments created"
        );
        Ok(())
    }

    /// Writes `next` over the metadata `current`, under the lease.
    async fn write_meta(&self, next: Meta, current: &Stored) -> Result<Stored, Error> {
        let blob = self.layout.meta_blob();
        let etag = meta::write(&self.service, &blob, &next, &current.etag, self.lease.id()).await?;
        Ok(Stored { meta: next, etag })
    }

    /// Moves the truncation point to `offset`: in the metadata first, then deletes the
    /// segments wholly below it. A delete that fails is logged and left for the next open.
    async fn truncate(&self, offset: u64) -> Result<(), Error> {
        let mut stored = self.meta.lock().await;
        let before = self.start();
        if offset <= before {
            return Ok(());
        }
        let next = Meta {
            start: offset,
            ..stored.meta.clone()
        };
        *stored = self.write_meta(next, &stored).await?;
        self.start.store(offset, Ordering::Release);
        drop(stored);

        let doomed = self.layout.segment_of(before)..self.layout.segment_of(offset);
        let count = doomed.end - doomed.start;
        futures::stream::iter(doomed)
            .for_each_concurrent(REQUESTS_IN_FLIGHT, |index| async move {
                if let Err(error) = self.segments.delete(index).await {
                    tracing::warn!(segment = index, %error, "page blob segment not deleted");
                }
            })
            .await;
        tracing::debug!(
            prefix = self.layout.prefix(),
            start = offset,
            deleted = count,
            "page blob device truncated"
        );
        Ok(())
    }
}

impl fmt::Debug for PageBlobDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PageBlobDevice")
            .field("container", &self.container())
            .field("prefix", &self.prefix())
            .field("epoch", &self.inner.epoch)
            .field("size", &self.size())
            .field("start", &self.start())
            .finish()
    }
}

type CoreResult<T> = Result<T, netherite_core::Error>;

#[async_trait]
impl LogDevice for PageBlobDevice {
    fn alignment(&self) -> u64 {
        ALIGNMENT
    }

    fn size(&self) -> u64 {
        self.inner.size.load(Ordering::Acquire)
    }

    async fn write(&self, offset: u64, bytes: &[u8]) -> CoreResult<()> {
        let len = bytes.len() as u64;
        self.inner.lease.check("write")?;
        check_aligned("write", ALIGNMENT, offset, len)?;
        check_range("write", self.start(), u64::MAX, offset, len)?;
        self.check_capacity(offset + len)?;
        if bytes.is_empty() {
            return Ok(());
        }
        self.owned("write", self.inner.write(offset, bytes)).await?;
        self.inner.size.fetch_max(offset + len, Ordering::AcqRel);
        Ok(())
    }

    async fn read(&self, offset: u64, len: usize) -> CoreResult<Vec<u8>> {
        self.inner.lease.check("read")?;
        check_range("read", self.start(), self.size(), offset, len as u64)?;
        if len == 0 {
            return Ok(Vec::new());
        }
        Ok(self.owned("read", self.inner.read(offset, len)).await?)
    }

    async fn flush(&self) -> CoreResult<()> {
        self.inner.lease.check("flush")?;
        self.owned("flush", self.inner.lease.renew("flush")).await?;
        Ok(())
    }

    async fn truncate_before(&self, offset: u64) -> CoreResult<()> {
        self.inner.lease.check("truncate_before")?;
        // The point may reach the size but not pass it: an empty range ending there.
        check_range("truncate_before", 0, self.size(), offset, 0)?;
        if offset <= self.start() {
            return Ok(());
        }
        self.owned("truncate_before", self.inner.truncate(offset))
            .await?;
        Ok(())
    }

    async fn release(&self) -> CoreResult<()> {
        let _gate = self.inner.gate.write().await;
        self.inner.lease.release().await?;
        tracing::info!(
            container = self.container(),
            prefix = self.prefix(),
            "page blob device released"
        );
        Ok(())
    }
}
