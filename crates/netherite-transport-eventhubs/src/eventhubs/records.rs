//! [`BlobOwnershipStore`]: ownership records as blobs, in the Event Hubs processor's layout.
//!
//! One empty block blob per partition, named
//! `<namespace>/<event hub>/<consumer group>/ownership/<partition>` (lowercase), with the owner
//! in the metadata entry `ownerid` (empty after a release). The blob's ETag and last-modified
//! time are the record's. A claim is an upload with `If-Match: <etag>`, or with
//! `If-None-Match: *` for a partition without a record; the service refuses a changed record
//! with 412 and an existing one with 409, both a [`Claimed::Conflict`]. ETags are kept quoted, as
//! in HTTP headers.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use azure_core::http::Etag;
use azure_storage_blob::BlobContainerClient;
use azure_storage_blob::models::{
    BlobContainerClientListBlobsOptions, BlobItem, BlockBlobClientUploadOptions,
    ListBlobsIncludeItem,
};
use futures::StreamExt;
use netherite_core::transport::NodeId;
use netherite_core::{Error, PartitionId};

use super::blobs::{Failure, system_time};
use crate::ownership::{Claimed, ETag, OwnershipRecord, OwnershipStore};

/// The metadata entry naming a record's owner.
const OWNER_KEY: &str = "ownerid";

/// Ownership records as blobs of one container; cheap to clone.
#[derive(Clone)]
pub struct BlobOwnershipStore {
    container: Arc<BlobContainerClient>,
    prefix: String,
}

impl fmt::Debug for BlobOwnershipStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlobOwnershipStore")
            .field("container", &self.container.url().as_str())
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl BlobOwnershipStore {
    /// The records of `consumer_group` of event hub `hub` in namespace `namespace`, kept in
    /// `container`.
    pub fn new(
        container: Arc<BlobContainerClient>,
        namespace: &str,
        hub: &str,
        consumer_group: &str,
    ) -> BlobOwnershipStore {
        let prefix = format!("{namespace}/{hub}/{consumer_group}/ownership/").to_lowercase();
        BlobOwnershipStore { container, prefix }
    }

    /// The record a listed blob stands for, if it is one.
    fn record(&self, item: BlobItem) -> Option<OwnershipRecord> {
        let name = item.name?;
        let partition = name.strip_prefix(&self.prefix)?.parse().ok()?;
        let properties = item.properties?;
        let metadata = item.metadata.and_then(|m| m.values).unwrap_or_default();
        let owner = metadata
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(OWNER_KEY))
            .map(|(_, value)| value.as_str())
            .filter(|value| !value.is_empty());
        Some(OwnershipRecord {
            partition: PartitionId(partition),
            owner: owner.map(NodeId::new),
            etag: etag(&properties.etag?),
            last_modified: system_time(properties.last_modified?),
        })
    }
}

#[async_trait]
impl OwnershipStore for BlobOwnershipStore {
    async fn list(&self) -> Result<Vec<OwnershipRecord>, Error> {
        let options = BlobContainerClientListBlobsOptions {
            prefix: Some(self.prefix.clone()),
            include: Some(vec![ListBlobsIncludeItem::Metadata]),
            ..Default::default()
        };
        let fail = |e: azure_core::Error| Failure::of(&e).into_error("listing ownership records");
        let mut pager = self.container.list_blobs(Some(options)).map_err(fail)?;
        let mut records = Vec::new();
        while let Some(item) = pager.next().await {
            records.extend(self.record(item.map_err(fail)?));
        }
        Ok(records)
    }

    async fn claim(
        &self,
        partition: PartitionId,
        owner: Option<&NodeId>,
        expected: Option<&ETag>,
    ) -> Result<Claimed, Error> {
        let owner = owner.map_or("", |node| node.0.as_str());
        check_owner(owner)?;
        let blob = self
            .container
            .blob_client(&format!("{}{}", self.prefix, partition.0));
        let uploaded = blob.upload(
            azure_core::Bytes::new().into(),
            Some(conditions(owner, expected)),
        );
        let uploaded = match uploaded.await {
            Ok(uploaded) => uploaded,
            Err(error) => match Failure::of(&error) {
                Failure::Conflict => return Ok(Claimed::Conflict),
                failure => return Err(failure.into_error("claiming a partition")),
            },
        };
        let broken = || Failure::Other("the service sent no ETag or time".into());
        let (etag, written) = uploaded
            .etag
            .zip(uploaded.last_modified)
            .ok_or_else(|| broken().into_error("claiming a partition"))?;
        Ok(Claimed::Won(OwnershipRecord {
            partition,
            owner: Some(owner).filter(|o| !o.is_empty()).map(NodeId::new),
            etag: self::etag(&etag),
            last_modified: system_time(written),
        }))
    }
}

/// An upload that names `owner` and succeeds only if the record is as `expected`.
fn conditions(owner: &str, expected: Option<&ETag>) -> BlockBlobClientUploadOptions<'static> {
    let mut options = BlockBlobClientUploadOptions {
        metadata: Some(HashMap::from([(OWNER_KEY.to_string(), owner.to_string())])),
        ..Default::default()
    };
    match expected {
        Some(etag) => options.if_match = Some(Etag::from(etag.0.clone())),
        None => options.if_none_match = Some(Etag::from("*")),
    }
    options
}

/// The ETag in its quoted form, however the service wrote it: listings give it bare, upload
/// answers in quotes, and the records must compare equal either way.
fn etag(etag: &Etag) -> ETag {
    let bare = etag.to_string();
    ETag(format!("\"{}\"", bare.trim_matches('"')))
}

/// Whether `node` can own partitions through blob records: an empty name would read as "no
/// owner", and metadata values travel as HTTP headers.
pub(crate) fn check_node(node: &NodeId) -> Result<(), Error> {
    if node.0.is_empty() {
        return Err(Error::InvalidArgument {
            operation: "eventhubs connect",
            reason: "a node id must not be empty".into(),
        });
    }
    check_owner(&node.0)
}

/// Metadata values travel as HTTP headers: printable ASCII only, no leading or trailing space.
fn check_owner(owner: &str) -> Result<(), Error> {
    let printable = owner.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
    if printable && owner.trim() == owner && owner.len() <= 256 {
        return Ok(());
    }
    Err(Error::InvalidArgument {
        operation: "claim",
        reason: format!(
            "node id {owner:?} cannot be kept in blob metadata: use up to 256 printable ASCII \
             characters"
        ),
    })
}
