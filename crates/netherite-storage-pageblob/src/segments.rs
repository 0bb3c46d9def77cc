//! [`Segments`]: the page blobs holding a device's bytes, fenced by the owner's epoch.
//!
//! The lease guards the metadata blob, but the bytes live in many segment blobs, and leasing
//! each would mean renewing each. Instead every owner has an epoch, one more than the last
//! (recorded in the metadata blob under the lease), and marks the segments with it: a page
//! blob's sequence number. On open, an owner raises the sequence number of every segment that
//! may exist (the metadata's `segments` bound them) to its epoch, creating the missing ones
//! with it; every later segment it creates carries it from the start. Every put-pages is
//! conditioned on `sequence number <= epoch`. So once a newer owner has opened, each segment
//! carries a number above any older owner's epoch, and an older owner's write fails at the
//! service (412), whether or not that owner has noticed it lost the lease. That is rule 8 of
//! the contract, held by the service rather than by anyone's clock.
//!
//! Deletes cannot carry a sequence-number condition. They are safe by order instead: an owner
//! deletes a segment only after it recorded, under its lease, a truncation point past it, so
//! a later owner never counts on a segment an older one may delete.

use std::sync::Arc;

use azure_core::Bytes;
use azure_core::http::Etag;
use azure_storage_blob::models::{
    BlobClientDownloadOptions, BlobClientGetPropertiesResultHeaders,
    BlobContainerClientListBlobsOptions, HttpRange, PageBlobClientCreateOptions,
    PageBlobClientSetSequenceNumberOptions, PageBlobClientSetSequenceNumberResultHeaders,
    PageBlobClientUploadPagesOptions, SequenceNumberActionType,
};
use futures::TryStreamExt;

use crate::Error;
use crate::layout::{Layout, Piece};
use crate::service::{Service, VANISHED_TRIES_MAX, vanished};

/// The segments of one device, as seen by the owner of one epoch.
#[derive(Debug)]
pub(crate) struct Segments {
    service: Arc<Service>,
    layout: Layout,
    /// This owner's epoch, as page-blob sequence numbers hold it.
    epoch: i64,
}

impl Segments {
    pub(crate) fn new(service: Arc<Service>, layout: Layout, epoch: i64) -> Segments {
        Segments {
            service,
            layout,
            epoch,
        }
    }

    /// Marks segment `index` with this owner's epoch, creating it if it does not exist.
    /// Afterwards no older owner can write to it.
    pub(crate) async fn mark(&self, index: u64) -> Result<(), Error> {
        let name = self.layout.segment_blob(index);
        let client = self.service.blob(&name).page_blob_client();
        for _ in 0..VANISHED_TRIES_MAX {
            let options = PageBlobClientSetSequenceNumberOptions {
                blob_sequence_number: Some(self.epoch),
                ..Default::default()
            };
            let result = self
                .service
                .call("mark segment", &name, || {
                    client.set_sequence_number(SequenceNumberActionType::Max, Some(options.clone()))
                })
                .await;
            match result {
                Ok(response) => {
                    let now = response.blob_sequence_number().ok().flatten();
                    return self.check_mark("mark segment", &name, now);
                }
                Err(failure) if failure.is(404, "BlobNotFound") => {
                    if self.create_blob(&name).await? {
                        return Ok(());
                    }
                    // Created meanwhile by an older owner: raise its number as for any other.
                }
                Err(failure) => return Err(self.service.error("mark segment", &name, failure)),
            }
        }
        Err(vanished("mark segment", &name))
    }

    /// Creates segment `index`, above every segment that existed when this owner opened. One
    /// that exists already with this owner's epoch was created by an earlier try of this
    /// call; with an older one it is debris this device never reserved, which it refuses to
    /// read as zeros.
    pub(crate) async fn create(&self, index: u64) -> Result<(), Error> {
        let name = self.layout.segment_blob(index);
        if self.create_blob(&name).await? {
            return Ok(());
        }
        let client = self.service.blob(&name);
        let properties = self
            .service
            .call("create segment", &name, || client.get_properties(None))
            .await
            .map_err(|failure| self.service.error("create segment", &name, failure))?;
        let number = properties.blob_sequence_number().ok().flatten();
        match number {
            Some(n) if n < self.epoch => Err(Error::corrupt(
                &name,
                format!("exists beyond the reserved segments, with the older epoch {n}"),
            )),
            _ => self.check_mark("create segment", &name, number),
        }
    }

    /// Whether a segment's sequence number after marking is this owner's epoch: a higher one
    /// is a newer owner's.
    fn check_mark(
        &self,
        operation: &'static str,
        name: &str,
        number: Option<i64>,
    ) -> Result<(), Error> {
        match number {
            Some(n) if n > self.epoch => Err(Error::fenced(
                operation,
                name,
                format!(
                    "a newer owner's epoch {n} is on it (this owner's is {})",
                    self.epoch
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Creates the page blob `name` with this owner's epoch unless it exists; whether it did.
    async fn create_blob(&self, name: &str) -> Result<bool, Error> {
        let client = self.service.blob(name).page_blob_client();
        let options = PageBlobClientCreateOptions {
            if_none_match: Some(Etag::from("*")),
            blob_sequence_number: Some(self.epoch),
            ..Default::default()
        };
        let size = self.layout.segment_bytes();
        let result = self
            .service
            .call("create segment", name, || {
                client.create(size, Some(options.clone()))
            })
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(failure) if failure.is(409, "BlobAlreadyExists") => Ok(false),
            Err(failure) => Err(self.service.error("create segment", name, failure)),
        }
    }

    /// Writes `bytes` as the piece `piece`, unless a newer owner has marked the segment.
    pub(crate) async fn put(&self, piece: Piece, bytes: Bytes) -> Result<(), Error> {
        let name = self.layout.segment_blob(piece.segment);
        let client = self.service.blob(&name).page_blob_client();
        // A page rewritten later (a log's last, partly filled page) must not be overwritten by
        // a late try of this write: the service gives it up past its timeout, which the call
        // waits out after a try without an answer.
        let options = PageBlobClientUploadPagesOptions {
            if_sequence_number_less_than_or_equal_to: Some(self.epoch),
            timeout: Some(self.service.server_timeout()),
            ..Default::default()
        };
        let result = self
            .service
            .call_timed("write", &name, || {
                let range = HttpRange::new(piece.offset, piece.len);
                let body = bytes.clone().into();
                client.upload_pages(body, piece.len, range, Some(options.clone()))
            })
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(failure) if failure.is(412, "SequenceNumberConditionNotMet") => Err(Error::fenced(
                "write",
                &name,
                format!(
                    "a newer owner's epoch is on the segment (this owner's is {})",
                    self.epoch
                ),
            )),
            Err(failure) if failure.is(404, "BlobNotFound") => Err(gone("write", &name)),
            Err(failure) => Err(self.service.error("write", &name, failure)),
        }
    }

    /// Reads the piece `piece` into `into`, which is exactly as long.
    pub(crate) async fn get(&self, piece: Piece, into: &mut [u8]) -> Result<(), Error> {
        let name = self.layout.segment_blob(piece.segment);
        let client = self.service.blob(&name);
        let result = self
            .service
            .call("read", &name, || async {
                let options = BlobClientDownloadOptions {
                    range: Some(HttpRange::new(piece.offset, piece.len)),
                    parallel: Some(std::num::NonZero::<usize>::MIN),
                    ..Default::default()
                };
                client.download(Some(options)).await?.body.collect().await
            })
            .await;
        let bytes = match result {
            Ok(bytes) => bytes,
            Err(failure) if failure.is(404, "BlobNotFound") => return Err(gone("read", &name)),
            Err(failure) => return Err(self.service.error("read", &name, failure)),
        };
        if bytes.len() != into.len() {
            let reason = format!(
                "asked for {} bytes, the service sent {}",
                into.len(),
                bytes.len()
            );
            return Err(Error::corrupt(&name, reason));
        }
        into.copy_from_slice(&bytes);
        Ok(())
    }

    /// The end of the highest page written in segment `index`, `None` if none is.
    pub(crate) async fn written_end(&self, index: u64) -> Result<Option<u64>, Error> {
        let name = self.layout.segment_blob(index);
        let client = self.service.blob(&name).page_blob_client();
        let result = self
            .service
            .call("recover size", &name, || async {
                let mut pages = client.list_page_ranges(None)?;
                let mut end = None;
                while let Some(page) = pages.try_next().await? {
                    for range in page.into_model()?.page_ranges {
                        let last = range.end.and_then(|e| u64::try_from(e).ok());
                        end = end.max(last.map(|e| e + 1));
                    }
                }
                Ok(end)
            })
            .await;
        match result {
            Ok(end) => Ok(end),
            Err(failure) if failure.is(404, "BlobNotFound") => Err(gone("recover size", &name)),
            Err(failure) => Err(self.service.error("recover size", &name, failure)),
        }
    }

    /// Deletes segment `index`; one that is gone already is no error.
    pub(crate) async fn delete(&self, index: u64) -> Result<(), Error> {
        let name = self.layout.segment_blob(index);
        let client = self.service.blob(&name);
        let result = self
            .service
            .call("delete segment", &name, || client.delete(None))
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(failure) if failure.is(404, "BlobNotFound") => Ok(()),
            Err(failure) => Err(self.service.error("delete segment", &name, failure)),
        }
    }

    /// The numbers of the segment blobs that exist, in order.
    pub(crate) async fn listed(&self) -> Result<Vec<u64>, Error> {
        let prefix = self.layout.segment_blob(0);
        let prefix = prefix.trim_end_matches('0').to_string();
        let container = self.service.container();
        let result = self
            .service
            .call("list segments", &prefix, || async {
                let options = BlobContainerClientListBlobsOptions {
                    prefix: Some(prefix.clone()),
                    ..Default::default()
                };
                let mut items = container.list_blobs(Some(options))?;
                let mut names = Vec::new();
                while let Some(item) = items.try_next().await? {
                    names.extend(item.name);
                }
                Ok(names)
            })
            .await;
        let names =
            result.map_err(|failure| self.service.error("list segments", &prefix, failure))?;
        let mut found: Vec<u64> = names
            .iter()
            .filter_map(|n| self.layout.segment_index(n))
            .collect();
        found.sort_unstable();
        Ok(found)
    }
}

/// A segment blob that should exist is gone: deleted from under this owner, which only a newer
/// owner's truncation (or an operator) does.
fn gone(operation: &'static str, name: &str) -> Error {
    Error::fenced(operation, name, "the segment blob was deleted")
}
