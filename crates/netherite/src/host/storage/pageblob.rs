//! `PageBlobStorage`: partition state in Azure page blobs (feature `pageblob`).
//!
//! One task hub per container. Each partition has the same three devices as on files, each a
//! `PageBlobDevice` under its own name prefix: `p03/log/` (the commit log), `p03/store/log/`
//! and `p03/store/checkpoints/` (the store). Every device is fenced by its own blob lease and
//! its owner's epoch (see `netherite_storage_pageblob`). The partition's [`PartitionFence`]
//! only listens: it reports the first of the three leases lost, so that a partition whose
//! lease another process took stops even while idle, not only at its next write.
//!
//! The container also holds the task hub's record, `taskhub.json` (its partition count), which
//! the first process to open the container writes and every later one checks, as the data
//! directory's `taskhub.toml` is checked: partitions made for another count would place
//! instances elsewhere. The local transport's input queues stay in the data directory, whose
//! task hub this storage keeps open (and locked) for as long as it lives.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use netherite_azure::StorageAccount;
use netherite_core::PartitionId;
use netherite_storage_pageblob::{PageBlobDevice, PageBlobOptions, create_container, write_once};

use super::{PartitionDevices, PartitionFence, PartitionStorage};
use crate::Error;
use crate::settings::Settings;
use crate::taskhub::TaskHub;

/// Partition state in the page blobs of one container.
pub struct PageBlobStorage {
    account: StorageAccount,
    container: String,
    options: PageBlobOptions,
    /// The local task hub (inputs, and the partition count's record), kept open.
    _local: Option<TaskHub>,
}

impl PageBlobStorage {
    /// Storage in the container `settings.storage_container` of the account that
    /// `settings.storage_connection` names, keeping `local` open alongside. Creates the
    /// container if it does not exist yet (logged), and checks the task hub's record in it,
    /// writing it if the container has none yet.
    ///
    /// Fails with [`Error::InvalidSetting`] for a missing or malformed connection string
    /// (never quoting it), [`Error::PartitionCountMismatch`] when the container holds a task
    /// hub of another partition count, and [`Error::HubStorage`] naming the service's answer
    /// when the container cannot be created or the record read (refused credentials, no
    /// answer).
    pub async fn open(
        settings: &Settings,
        local: Option<TaskHub>,
    ) -> Result<PageBlobStorage, Error> {
        let storage = PageBlobStorage::new(settings, local)?;
        storage.check_record(settings.partition_count).await?;
        Ok(storage)
    }

    fn new(settings: &Settings, local: Option<TaskHub>) -> Result<PageBlobStorage, Error> {
        let invalid = |reason: String| Error::InvalidSetting {
            setting: "storage_connection",
            origin: "settings".into(),
            reason,
        };
        let text = settings
            .storage_connection
            .as_ref()
            .ok_or_else(|| invalid("pageblob storage needs a connection string".into()))?;
        let account = StorageAccount::parse(text.expose()).map_err(|e| invalid(e.to_string()))?;
        Ok(PageBlobStorage {
            account,
            container: settings.storage_container.clone(),
            options: device_options(settings),
            _local: local,
        })
    }

    /// This storage with `options` for every device it opens.
    pub fn with_options(self, options: PageBlobOptions) -> PageBlobStorage {
        PageBlobStorage { options, ..self }
    }

    /// Creates the container unless it exists, writes the task hub's record unless the
    /// container has one, and checks its count.
    async fn check_record(&self, partition_count: u32) -> Result<(), Error> {
        let container = &self.container;
        let failed = |e: netherite_storage_pageblob::Error| Error::HubStorage {
            location: format!("container {container}"),
            reason: e.to_string(),
        };
        create_container(&self.account, container, &self.options)
            .await
            .map_err(failed)?;
        let ours = serde_json::json!({ "format_version": 1, "partition_count": partition_count });
        let bytes = ours.to_string().into_bytes();
        let held = write_once(&self.account, container, RECORD, &bytes, &self.options)
            .await
            .map_err(failed)?;
        let stored = stored_count(&held).ok_or_else(|| Error::TaskHubCorrupt {
            path: PathBuf::from(format!("{container}/{RECORD}")),
            reason: "not a task hub record with a partition count".into(),
        })?;
        if stored != partition_count {
            return Err(Error::PartitionCountMismatch {
                dir: PathBuf::from(format!("{container}/{RECORD}")),
                stored,
                requested: partition_count,
            });
        }
        Ok(())
    }

    async fn open_device(
        &self,
        partition: PartitionId,
        prefix: String,
    ) -> Result<PageBlobDevice, Error> {
        let options = self.options.clone();
        PageBlobDevice::open(&self.account, &self.container, &prefix, options)
            .await
            .map_err(|source| Error::Storage {
                partition,
                what: format!("opening the page blobs {}/{prefix}", self.container),
                source: Box::new(source),
            })
    }
}

/// The devices' options: the settings' lease, and an open that waits a little longer than one
/// lease for a dead owner's lease to run out.
fn device_options(settings: &Settings) -> PageBlobOptions {
    let lease = settings.storage_lease;
    PageBlobOptions::default()
        .with_lease_duration(lease)
        .with_open_wait_max(lease + std::time::Duration::from_secs(5))
}

/// The blob that records the task hub's partition count.
const RECORD: &str = "taskhub.json";

/// The partition count a task hub record holds, if it is one.
fn stored_count(record: &[u8]) -> Option<u32> {
    let value: serde_json::Value = serde_json::from_slice(record).ok()?;
    let count = value.get("partition_count")?.as_u64()?;
    u32::try_from(count).ok()
}

/// The name prefixes of a partition's commit log, store log and store checkpoints.
fn device_prefixes(partition: PartitionId) -> [String; 3] {
    let dir = format!("p{:02}", partition.0);
    [
        format!("{dir}/log/"),
        format!("{dir}/store/log/"),
        format!("{dir}/store/checkpoints/"),
    ]
}

#[async_trait]
impl PartitionStorage for PageBlobStorage {
    async fn open(&self, partition: PartitionId) -> Result<PartitionDevices, Error> {
        let [log, store_log, checkpoints] = device_prefixes(partition);
        let log = Arc::new(self.open_device(partition, log).await?);
        let store_log = Arc::new(self.open_device(partition, store_log).await?);
        let checkpoints = Arc::new(self.open_device(partition, checkpoints).await?);
        let fence = LeaseWatch([log.clone(), store_log.clone(), checkpoints.clone()]);
        Ok(PartitionDevices {
            log,
            store_log,
            store_checkpoints: checkpoints,
            fence: Some(Arc::new(fence)),
        })
    }
}

/// A partition's fence over page blobs: the leases of its three devices, watched.
#[derive(Debug)]
struct LeaseWatch([Arc<PageBlobDevice>; 3]);

#[async_trait]
impl PartitionFence for LeaseWatch {
    async fn lost(&self) {
        let [a, b, c] = &self.0;
        tokio::select! {
            () = a.lost() => {}
            () = b.lost() => {}
            () = c.lost() => {}
        }
    }

    /// Nothing of its own to give up: the devices release their leases themselves, first.
    async fn release(&self) {}
}

impl fmt::Debug for PageBlobStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PageBlobStorage")
            .field("account", &self.account.name())
            .field("container", &self.container)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record names its partition count; anything else is not a record.
    #[test]
    fn records_hold_a_count() {
        assert_eq!(
            stored_count(br#"{"format_version":1,"partition_count":12}"#),
            Some(12)
        );
        for bad in [&b"{}"[..], b"not json", br#"{"partition_count":-1}"#] {
            assert_eq!(stored_count(bad), None);
        }
    }

    /// A partition's devices are laid out as on files, under a two-digit partition folder.
    #[test]
    fn devices_have_the_file_layout() {
        assert_eq!(
            device_prefixes(PartitionId(3)),
            ["p03/log/", "p03/store/log/", "p03/store/checkpoints/"]
        );
    }
}
