//! What a task hub needs of its container besides devices: [`create_container`], and
//! [`write_once`], a small block blob that the first writer creates and nobody replaces, such
//! as the record of a task hub's partition count.
//!
//! Several processes may start at once on an empty container: each tries to create the blob
//! with `If-None-Match: *`, exactly one succeeds, and every one then reads what the blob
//! holds, so all of them agree on the first writer's bytes.

use azure_core::http::Etag;
use azure_storage_blob::models::{BlobClientDownloadOptions, BlockBlobClientUploadOptions};
use netherite_azure::StorageAccount;

use crate::service::Service;
use crate::{Error, PageBlobOptions};

/// Creates the container `name` unless it exists. Errors are the devices' (refused
/// credentials, no answer); calls are bounded and retried as theirs are (`options`).
pub async fn create_container(
    account: &StorageAccount,
    name: &str,
    options: &PageBlobOptions,
) -> Result<(), Error> {
    let service = Service::new(account, name, options)?;
    let client = service.container();
    let result = service
        .call("create container", name, || client.create(None))
        .await;
    match result {
        Ok(_) => {
            tracing::info!(container = name, "container created");
            Ok(())
        }
        Err(failure) if failure.is(409, "ContainerAlreadyExists") => Ok(()),
        Err(failure) => Err(service.error("create container", name, failure)),
    }
}

/// Creates the block blob `name` in `container` holding `bytes` unless it exists, then returns
/// what it holds (the bytes of whoever created it). Calls are bounded and retried as the
/// devices' are (`options`); errors are the devices' ([`Error::ContainerNotFound`],
/// [`Error::Denied`], [`Error::Unavailable`]).
pub async fn write_once(
    account: &StorageAccount,
    container: &str,
    name: &str,
    bytes: &[u8],
    options: &PageBlobOptions,
) -> Result<Vec<u8>, Error> {
    let service = Service::new(account, container, options)?;
    create(&service, name, bytes).await?;
    read(&service, name).await
}

async fn create(service: &Service, name: &str, bytes: &[u8]) -> Result<(), Error> {
    let client = service.blob(name).block_blob_client();
    let body = azure_core::Bytes::copy_from_slice(bytes);
    let options = BlockBlobClientUploadOptions {
        if_none_match: Some(Etag::from("*")),
        ..Default::default()
    };
    let created = service
        .call("create a record", name, || {
            client.upload(body.clone().into(), Some(options.clone()))
        })
        .await;
    match created {
        Ok(_) => Ok(()),
        // Someone created it first (or an earlier try of this call did): read theirs.
        Err(failure) if failure.is(409, "BlobAlreadyExists") => Ok(()),
        Err(failure) => Err(service.error("create a record", name, failure)),
    }
}

async fn read(service: &Service, name: &str) -> Result<Vec<u8>, Error> {
    let client = service.blob(name);
    let read = service
        .call("read a record", name, || async {
            let options = BlobClientDownloadOptions {
                parallel: Some(std::num::NonZero::<usize>::MIN),
                ..Default::default()
            };
            let download = client.download(Some(options)).await?;
            download.body.collect().await
        })
        .await;
    match read {
        Ok(bytes) => Ok(bytes.to_vec()),
        Err(failure) => Err(service.error("read a record", name, failure)),
    }
}
