//! Payloads too large for one event, stored aside in blobs.
//!
//! A send whose payloads include some over `inline_bytes_max` writes those payloads, one after
//! the other, into a single new block blob (a *blob batch*), then sends its events in order:
//! small payloads inline, and for each large one a [`Reference`] naming the blob, the byte
//! range and which payload of the blob it is. The blob is written before any event that refers
//! to it, so a reference never points at bytes that are not durable. A reader that meets a
//! reference fetches the range and yields the payload at the reference's position, so positions,
//! order and exact resume are those of small payloads.
//!
//! Blob names are `<prefix>/p<partition>/<unix millis>-<random>`: one folder per partition, so
//! the sweep of one partition lists only its own blobs. When blobs are deleted is the
//! [`ledger`]'s business: once every event of the batch is processed, and by age for what
//! escapes that.

mod ledger;
#[cfg(test)]
mod memory;
mod reference;

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use netherite_core::{Error, InputPosition, PartitionId};

pub(crate) use self::ledger::{Ledger, Sweep};
#[cfg(test)]
pub(crate) use self::memory::MemoryAsideStore;
pub(crate) use self::reference::Reference;
use crate::clock::Clock;
use crate::wire::Body;

/// A blob as a listing shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StoredBlob {
    /// Its name in the container.
    pub(crate) name: String,
    /// When it was last written, by the store's clock.
    pub(crate) last_modified: SystemTime,
}

/// Where blob batches are kept: one container of block blobs.
///
/// Rules every implementation keeps: `put` returns once the blob is durable (it replaces any
/// blob of that name); `get` of a blob that does not exist is `Ok(None)`; `delete` of a blob
/// that does not exist succeeds; `list` returns the blobs whose name starts with the prefix.
/// An `Io` error may pass when retried.
#[async_trait]
pub(crate) trait AsideStore: Send + Sync + fmt::Debug {
    /// Writes `bytes` as the blob `name`.
    async fn put(&self, name: &str, bytes: Vec<u8>) -> Result<(), Error>;

    /// Reads `length` bytes of blob `name` from `offset`; `None` when there is no such blob.
    async fn get(&self, name: &str, offset: u64, length: u64) -> Result<Option<Vec<u8>>, Error>;

    /// Deletes the blob `name`.
    async fn delete(&self, name: &str) -> Result<(), Error>;

    /// The blobs whose names start with `prefix`.
    async fn list(&self, prefix: &str) -> Result<Vec<StoredBlob>, Error>;
}

/// The limits and timings of stored-aside payloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AsideLimits {
    /// Payloads larger than this go aside.
    pub(crate) inline_bytes_max: usize,
    /// The most bytes one send may put aside.
    pub(crate) blob_bytes_max: usize,
    /// How old a blob must be before the sweep deletes it.
    pub(crate) retention: Duration,
    /// How often each partition's blobs are swept.
    pub(crate) sweep_interval: Duration,
}

/// The bodies of one send's events, and the blob batch they refer to, if any.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Split {
    /// One body per payload, in send order.
    pub(crate) bodies: Vec<Body>,
    /// The blob to write before any event is sent: its name and bytes.
    pub(crate) blob: Option<(String, Vec<u8>)>,
}

/// Decides which payloads of a send go aside, into one blob named `blob_name`.
pub(crate) fn split(payloads: Vec<Vec<u8>>, inline_bytes_max: usize, blob_name: String) -> Split {
    let entries = payloads
        .iter()
        .filter(|p| p.len() > inline_bytes_max)
        .count();
    if entries == 0 {
        let bodies = payloads.into_iter().map(Body::Payload).collect();
        return Split { bodies, blob: None };
    }
    let (mut bodies, mut blob) = (Vec::with_capacity(payloads.len()), Vec::new());
    let mut entry = 0u32;
    for payload in payloads {
        if payload.len() <= inline_bytes_max {
            bodies.push(Body::Payload(payload));
            continue;
        }
        bodies.push(Body::Aside(Reference {
            blob: blob_name.clone(),
            entry,
            entries: u32::try_from(entries).unwrap_or(u32::MAX),
            offset: blob.len() as u64,
            length: payload.len() as u64,
        }));
        blob.extend_from_slice(&payload);
        entry = entry.saturating_add(1);
    }
    Split {
        bodies,
        blob: Some((blob_name, blob)),
    }
}

/// When the blob `name` was made, from the milliseconds its name starts with.
fn created_at(name: &str) -> Option<SystemTime> {
    let file = name.rsplit('/').next()?;
    let millis: u64 = file.split('-').next()?.parse().ok()?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_millis(millis))
}

/// Stored-aside payloads of one event hub: writing, reading back and deleting blob batches.
#[derive(Debug)]
pub(crate) struct Aside {
    store: Arc<dyn AsideStore>,
    prefix: String,
    limits: AsideLimits,
    clock: Arc<dyn Clock>,
    books: Mutex<(Ledger, Sweep)>,
}

impl Aside {
    /// Blob batches named under `prefix` in `store`.
    pub(crate) fn new(
        store: Arc<dyn AsideStore>,
        prefix: String,
        limits: AsideLimits,
        clock: Arc<dyn Clock>,
    ) -> Aside {
        let sweep = Sweep::new(limits.retention, limits.sweep_interval);
        Aside {
            store,
            prefix,
            limits,
            clock,
            books: Mutex::new((Ledger::default(), sweep)),
        }
    }

    /// The bodies for `payloads` sent to `partition`, with their blob batch already durable.
    pub(crate) async fn prepare(
        &self,
        partition: PartitionId,
        payloads: Vec<Vec<u8>>,
    ) -> Result<Vec<Body>, Error> {
        let split = split(payloads, self.limits.inline_bytes_max, self.name(partition));
        let Some((name, bytes)) = split.blob else {
            return Ok(split.bodies);
        };
        if bytes.len() > self.limits.blob_bytes_max {
            return Err(Error::LimitExceeded {
                limit: "aside_bytes_max",
                actual: bytes.len() as u64,
                max: self.limits.blob_bytes_max as u64,
            });
        }
        let size = bytes.len();
        self.store.put(&name, bytes).await?;
        tracing::debug!(partition = %partition, blob = name, bytes = size, "blob batch stored");
        Ok(split.bodies)
    }

    /// The payload `reference` names, met at `position` in `partition`'s queue, or `None` when
    /// the event must be skipped.
    ///
    /// Two kinds of reference are skipped, with a warning. One that names a blob outside the
    /// partition's folder is not this partition's to read (nor, later, to delete). One whose
    /// blob is gone while younger than the retention was deleted by the ledger, once a
    /// discard point passed its last reference: what meets it again is a second copy of an
    /// event already processed (a retried batch the service appended twice). A blob gone
    /// past the retention may have been swept before its events were processed, which loses
    /// them: that is an error naming the retention, never a silent skip.
    pub(crate) async fn fetch(
        &self,
        partition: PartitionId,
        reference: &Reference,
        position: InputPosition,
    ) -> Result<Option<Vec<u8>>, Error> {
        if !reference.blob.starts_with(&self.folder(partition)) {
            tracing::warn!(partition = %partition, position = %position, blob = reference.blob,
                "skipped a reference to a blob outside the partition's folder");
            return Ok(None);
        }
        let stored = self
            .store
            .get(&reference.blob, reference.offset, reference.length);
        let Some(payload) = stored.await? else {
            self.check_gone(&reference.blob)?;
            tracing::warn!(partition = %partition, position = %position, blob = reference.blob,
                "skipped a reference whose blob is gone: a copy of an event already processed");
            return Ok(None);
        };
        if payload.len() as u64 != reference.length {
            return Err(Error::Io {
                operation: "subscribe",
                reason: format!(
                    "blob {} gave {} of the {} bytes a reference names",
                    reference.blob,
                    payload.len(),
                    reference.length
                ),
            });
        }
        self.books().0.note(partition, reference, position);
        Ok(Some(payload))
    }

    /// Deletes the blob batches of `partition` that every event of lies below `before`, and
    /// sweeps the partition's old blobs when it is due.
    ///
    /// Failures are logged, not returned: a blob left behind costs storage, never correctness,
    /// and the next sweep finds it again.
    pub(crate) async fn discard_before(&self, partition: PartitionId, before: InputPosition) {
        let done = self.books().0.take_deletable(partition, before);
        for name in done {
            match self.store.delete(&name).await {
                Ok(()) => {
                    tracing::debug!(partition = %partition, blob = name, "blob batch deleted")
                }
                Err(error) => {
                    tracing::warn!(partition = %partition, blob = name, %error,
                        "blob batch not deleted; the sweep will");
                }
            }
        }
        let now = self.clock.now();
        if self.books().1.due(partition, now) {
            self.sweep(partition, now).await;
        }
    }

    /// Deletes `partition`'s blobs older than the retention.
    async fn sweep(&self, partition: PartitionId, now: SystemTime) {
        let blobs = match self.store.list(&self.folder(partition)).await {
            Ok(blobs) => blobs,
            Err(error) => {
                tracing::warn!(partition = %partition, %error, "blob sweep could not list");
                return;
            }
        };
        let expired = |blob: &&StoredBlob| self.books().1.expired(blob.last_modified, now);
        for blob in blobs.iter().filter(expired) {
            if let Err(error) = self.store.delete(&blob.name).await {
                tracing::warn!(partition = %partition, blob = blob.name, %error,
                    "old blob batch not deleted");
            } else {
                tracing::info!(partition = %partition, blob = blob.name, "old blob batch swept");
            }
        }
    }

    /// A fresh blob name in `partition`'s folder.
    fn name(&self, partition: PartitionId) -> String {
        let millis = self
            .clock
            .now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let folder = self.folder(partition);
        format!("{folder}{millis:013}-{:016x}", crate::random_u64())
    }

    /// Refuses to skip a reference to the gone blob `name` unless the blob would still be
    /// younger than the retention: only the ledger deletes such a blob.
    fn check_gone(&self, name: &str) -> Result<(), Error> {
        let written = created_at(name);
        let young = written.is_some_and(|at| !self.books().1.expired(at, self.clock.now()));
        if young {
            return Ok(());
        }
        Err(Error::InvalidArgument {
            operation: "subscribe",
            reason: format!(
                "the stored-aside blob {name} is gone and was older than aside_retention \
                 ({:?}): its events were past the event hub's retention, or the retention is \
                 shorter than the event hub's",
                self.limits.retention
            ),
        })
    }

    /// The folder of `partition`'s blobs, with its closing `/`.
    fn folder(&self, partition: PartitionId) -> String {
        format!("{}/p{:04}/", self.prefix, partition.0)
    }

    fn books(&self) -> std::sync::MutexGuard<'_, (Ledger, Sweep)> {
        self.books.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests;
