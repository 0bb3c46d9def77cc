//! Opening a device: take the lease, take the next epoch, mark the segments, recover the size.
//!
//! 1. Acquire the lease on the metadata blob (creating the blob if the device is new),
//!    waiting for another owner's lease as the options allow.
//! 2. Read the metadata and write it back with the next epoch and this owner's name, under the
//!    lease and conditioned on the ETag just read.
//! 3. Mark every segment that may exist (from the one holding the truncation point up to the
//!    metadata's bound) with the new epoch: from here on no older owner can write.
//! 4. Delete segments wholly below the truncation point that a crash left behind.
//! 5. Recover the size: the end of the highest written page of the highest segment that has
//!    one (or the truncation point if none has). Step 3 came first, so no older owner's write
//!    can land above that end later.
//!
//! Any failure after step 1 releases the lease again, so that a retry need not wait for it.

use std::ops::Range;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};

use crate::layout::Layout;
use crate::lease::Lease;
use crate::meta::{self, Meta, Stored};
use crate::segments::Segments;
use crate::service::Service;
use crate::{Error, PageBlobOptions};

/// How many requests one device call keeps in flight at most.
pub(crate) const REQUESTS_IN_FLIGHT: usize = 8;

/// What an open found and took.
pub(crate) struct Opened {
    pub(crate) lease: Arc<Lease>,
    pub(crate) stored: Stored,
    pub(crate) segments: Segments,
    pub(crate) size: u64,
}

/// Opens the device laid out as `layout` in `service`'s container as its new owner.
pub(crate) async fn open(
    service: &Arc<Service>,
    layout: &Layout,
    options: &PageBlobOptions,
) -> Result<Opened, Error> {
    let blob = layout.meta_blob();
    let fresh = Meta::fresh(options.segment_bytes);
    let lease = Lease::acquire(service, &blob, options, &fresh).await?;
    match take_over(service, layout, options, Arc::clone(&lease)).await {
        Ok(opened) => Ok(opened),
        Err(error) => {
            if let Err(release) = lease.release().await {
                tracing::debug!(%blob, %release, "page blob lease kept after a failed open");
            }
            Err(error)
        }
    }
}

/// Steps 2 to 5, under the lease.
async fn take_over(
    service: &Arc<Service>,
    layout: &Layout,
    options: &PageBlobOptions,
    lease: Arc<Lease>,
) -> Result<Opened, Error> {
    let stored = take_epoch(service, layout, options, &lease).await?;
    let meta = &stored.meta;
    // `take_epoch` checked that the epoch fits a sequence number.
    let number = i64::try_from(meta.epoch).unwrap_or(i64::MAX);
    let segments = Segments::new(Arc::clone(service), layout.clone(), number);

    let first = layout.segment_of(meta.start);
    let live = first..meta.segments.max(first);
    mark(&segments, live.clone()).await?;
    delete_leftovers(&segments, &live).await?;
    let size = recover_size(&segments, live, meta.start, layout.segment_bytes()).await?;
    Ok(Opened {
        lease,
        stored,
        segments,
        size,
    })
}

/// Step 2: reads the metadata, checks the layout, and writes it back with the next epoch and
/// this owner's name.
async fn take_epoch(
    service: &Service,
    layout: &Layout,
    options: &PageBlobOptions,
    lease: &Lease,
) -> Result<Stored, Error> {
    let blob = layout.meta_blob();
    let found = meta::read(service, &blob).await?;
    let found = found.ok_or_else(|| Error::corrupt(&blob, "deleted while its lease was taken"))?;
    if found.meta.segment_bytes != options.segment_bytes {
        return Err(Error::LayoutMismatch {
            blob,
            stored: found.meta.segment_bytes,
            requested: options.segment_bytes,
        });
    }
    // Epochs live on as page-blob sequence numbers, which are signed 64-bit.
    let Some(epoch) = found
        .meta
        .epoch
        .checked_add(1)
        .filter(|e| i64::try_from(*e).is_ok())
    else {
        let reason = format!("epoch {} has no successor", found.meta.epoch);
        return Err(Error::corrupt(&blob, reason));
    };
    let meta = Meta {
        epoch,
        owner: options.owner.clone(),
        ..found.meta
    };
    let etag = meta::write(service, &blob, &meta, &found.etag, lease.id()).await?;
    Ok(Stored { meta, etag })
}

/// Marks every segment in `live` with this owner's epoch.
async fn mark(segments: &Segments, live: Range<u64>) -> Result<(), Error> {
    futures::stream::iter(live.map(Ok))
        .try_for_each_concurrent(REQUESTS_IN_FLIGHT, |index| segments.mark(index))
        .await
}

/// Deletes the segments below `live` that a crash between a truncation's metadata write and
/// its deletes left behind. Segments above `live` were never reserved: they are reported, not
/// touched, and a write that needs one of them is refused.
async fn delete_leftovers(segments: &Segments, live: &Range<u64>) -> Result<(), Error> {
    let listed = segments.listed().await?;
    let below: Vec<u64> = listed.iter().copied().filter(|i| *i < live.start).collect();
    if let Some(stray) = listed.iter().find(|i| **i >= live.end) {
        tracing::warn!(
            segment = stray,
            reserved = live.end,
            "page blob segment beyond the reserved ones"
        );
    }
    futures::stream::iter(below)
        .map(|index| segments.delete(index))
        .buffer_unordered(REQUESTS_IN_FLIGHT)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// The end of the highest page written in `live`, or `start` if nothing above it is.
async fn recover_size(
    segments: &Segments,
    live: Range<u64>,
    start: u64,
    segment_bytes: u64,
) -> Result<u64, Error> {
    for index in live.rev() {
        if let Some(end) = segments.written_end(index).await? {
            // The metadata's bounds were checked to fit (see `meta`), and `end` is inside the
            // segment.
            let size = index.saturating_mul(segment_bytes).saturating_add(end);
            return Ok(size.max(start));
        }
    }
    Ok(start)
}
