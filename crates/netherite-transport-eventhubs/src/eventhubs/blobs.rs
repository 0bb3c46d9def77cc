//! Blob Storage for the transport: the container, blob batches ([`BlobAsideStore`]), and what
//! the service's failures mean for the contract.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use azure_core::http::StatusCode;
use azure_storage_blob::BlobContainerClient;
use azure_storage_blob::models::{BlobClientDownloadOptions, BlobContainerClientListBlobsOptions};
use futures::StreamExt;
use netherite_core::Error;

use crate::aside::{AsideStore, StoredBlob};

/// What a failed storage call means.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The blob or container does not exist (404).
    NotFound,
    /// A condition did not hold: the blob exists (409) or its ETag differs (412).
    Conflict,
    /// Anything else: unknown outcome, retry later.
    Other(String),
}

impl Failure {
    /// Classifies an SDK error.
    pub(crate) fn of(error: &azure_core::Error) -> Failure {
        match error.http_status() {
            Some(StatusCode::NotFound) => Failure::NotFound,
            Some(StatusCode::Conflict | StatusCode::PreconditionFailed) => Failure::Conflict,
            _ => Failure::Other(error.to_string()),
        }
    }

    /// The contract's error for this failure of `what`.
    pub(crate) fn into_error(self, what: &str) -> Error {
        let reason = match self {
            Failure::NotFound => format!("{what}: not found"),
            Failure::Conflict => format!("{what}: a condition failed"),
            Failure::Other(why) => format!("{what}: {why}"),
        };
        Error::Io {
            operation: "blob storage",
            reason,
        }
    }
}

/// Creates the container unless it exists.
pub(crate) async fn ensure_container(container: &BlobContainerClient) -> Result<(), Error> {
    match container.create(None).await {
        Ok(_) => Ok(()),
        Err(error) => match Failure::of(&error) {
            Failure::Conflict => Ok(()),
            failure => Err(failure.into_error("creating the container")),
        },
    }
}

/// The time of an SDK timestamp.
pub(crate) fn system_time(time: azure_core::time::OffsetDateTime) -> SystemTime {
    SystemTime::from(time)
}

/// Blob batches as block blobs of one container.
pub(crate) struct BlobAsideStore {
    container: Arc<BlobContainerClient>,
}

impl BlobAsideStore {
    /// Blob batches in `container`.
    pub(crate) fn new(container: Arc<BlobContainerClient>) -> BlobAsideStore {
        BlobAsideStore { container }
    }
}

impl fmt::Debug for BlobAsideStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlobAsideStore")
            .field("container", &self.container.url().as_str())
            .finish()
    }
}

#[async_trait]
impl AsideStore for BlobAsideStore {
    async fn put(&self, name: &str, bytes: Vec<u8>) -> Result<(), Error> {
        let content = azure_core::Bytes::from(bytes).into();
        let blob = self.container.blob_client(name);
        match blob.upload(content, None).await {
            Ok(_) => Ok(()),
            Err(e) => Err(Failure::of(&e).into_error(&format!("writing blob {name}"))),
        }
    }

    async fn get(&self, name: &str, offset: u64, length: u64) -> Result<Option<Vec<u8>>, Error> {
        if length == 0 {
            return Ok(Some(Vec::new()));
        }
        let options = BlobClientDownloadOptions {
            range: Some((offset..offset.saturating_add(length)).into()),
            ..Default::default()
        };
        let blob = self.container.blob_client(name);
        let failed = |e: azure_core::Error| Failure::of(&e).into_error(&format!("reading {name}"));
        let downloaded = match blob.download(Some(options)).await {
            Ok(downloaded) => downloaded,
            Err(e) if matches!(Failure::of(&e), Failure::NotFound) => return Ok(None),
            Err(e) => return Err(failed(e)),
        };
        let bytes = downloaded.body.collect().await.map_err(failed)?;
        Ok(Some(bytes.to_vec()))
    }

    async fn delete(&self, name: &str) -> Result<(), Error> {
        match self.container.blob_client(name).delete(None).await {
            Ok(_) => Ok(()),
            Err(e) => match Failure::of(&e) {
                Failure::NotFound => Ok(()),
                failure => Err(failure.into_error(&format!("deleting blob {name}"))),
            },
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<StoredBlob>, Error> {
        let options = BlobContainerClientListBlobsOptions {
            prefix: Some(prefix.to_string()),
            ..Default::default()
        };
        let what = || format!("listing blobs under {prefix}");
        let fail = |e: azure_core::Error| Failure::of(&e).into_error(&what());
        let mut pager = self.container.list_blobs(Some(options)).map_err(fail)?;
        let mut blobs = Vec::new();
        while let Some(item) = pager.next().await {
            let item = item.map_err(fail)?;
            let written = item.properties.and_then(|p| p.last_modified);
            if let (Some(name), Some(written)) = (item.name, written) {
                blobs.push(StoredBlob {
                    name,
                    last_modified: system_time(written),
                });
            }
        }
        Ok(blobs)
    }
}
