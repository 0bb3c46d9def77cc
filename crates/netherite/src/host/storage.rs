//! Where a partition keeps its commit log and its store: three devices per partition.
//!
//! [`PartitionStorage`] hands a starting host the devices of its partition. Opening them is
//! what fences an older owner (rule 8 of [`LogDevice`]), so a host opens its devices before it
//! reads anything and releases them when it stops. Two implementations:
//!
//! - [`MemoryStorage`]: `MemoryDisk`s kept by partition, so an engine restarted on the same
//!   `MemoryStorage` recovers what the previous one made durable, and [`MemoryStorage::crash`]
//!   drops what was not.
//! - `FileStorage` (feature `file`): `FileDevice`s under a task hub's data directory, in the
//!   layout `pNN/log/`, `pNN/store/log/` and `pNN/store/checkpoints/`. Alone on a directory
//!   it fences with directory locks; nodes sharing one ([`FileStorage::leased`]) fence with a
//!   lease per partition (`pNN/lease`) whose epoch every device operation checks.
//! - `PageBlobStorage` (feature `pageblob`): the same three devices per partition as page
//!   blobs in an Azure Storage container, each fenced by its own blob lease.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use netherite_core::PartitionId;
use netherite_core::device::{DeviceFaults, LogDevice, MemoryDisk};

use crate::Error;

/// The devices of one partition.
#[derive(Clone, Debug)]
pub struct PartitionDevices {
    /// Under the commit log of update events.
    pub log: Arc<dyn LogDevice>,
    /// Under the store's hybrid log (records and index snapshots).
    pub store_log: Arc<dyn LogDevice>,
    /// Under the store's checkpoint manifests.
    pub store_checkpoints: Arc<dyn LogDevice>,
    /// What tells the partition, even while it is idle, that another node took it over: a
    /// claim of the storage's own (a lease file) or a watch on the devices' own leases (page
    /// blobs); given up after the devices.
    pub fence: Option<Arc<dyn PartitionFence>>,
}

/// A node's claim on a partition that outlives single device calls (a lease, renewed in the
/// background), or a watch on the leases the devices renew themselves.
///
/// Rules: [`lost`](Self::lost) resolves once the claim is gone (taken over by another node)
/// or can no longer be vouched for (its renewal failed for good), and the partition must then
/// stop: the devices refuse every call once another node holds the claim.
/// [`release`](Self::release) gives the claim up so that the next owner may take it at once,
/// and is harmless to call twice.
#[async_trait]
pub trait PartitionFence: Send + Sync + fmt::Debug {
    /// Resolves when the claim is lost; never, while it holds.
    async fn lost(&self);
    /// Gives the claim up.
    async fn release(&self);
}

impl PartitionDevices {
    /// Gives up ownership of all three devices; failures are logged, not returned, since the
    /// partition is stopping anyway.
    pub(crate) async fn release(&self, partition: PartitionId) {
        for (name, device) in [
            ("log", &self.log),
            ("store log", &self.store_log),
            ("store checkpoints", &self.store_checkpoints),
        ] {
            if let Err(error) = device.release().await {
                tracing::warn!(partition = %partition, device = name, %error,
                    "device release failed");
            }
        }
        if let Some(fence) = &self.fence {
            fence.release().await;
        }
    }
}

/// A source of partition devices.
///
/// Rules: [`open`](Self::open) returns devices owned by the caller (any older handle on them is
/// fenced), and opening the same partition again later returns the same bytes: what was
/// durable before stays durable.
#[async_trait]
pub trait PartitionStorage: Send + Sync + fmt::Debug {
    /// Opens the devices of `partition`.
    async fn open(&self, partition: PartitionId) -> Result<PartitionDevices, Error>;
}

/// Partition devices in memory; clones share the disks.
///
/// ```
/// use netherite::host::{MemoryStorage, PartitionStorage};
/// use netherite_core::PartitionId;
///
/// # let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
/// # runtime.block_on(async {
/// let storage = MemoryStorage::new();
/// let devices = storage.open(PartitionId(0)).await?;
/// assert_eq!(devices.log.alignment(), 512);
/// # Ok::<(), netherite::Error>(())
/// # }).expect("example runs");
/// ```
#[derive(Clone, Debug, Default)]
pub struct MemoryStorage {
    disks: Arc<Mutex<HashMap<PartitionId, [MemoryDisk; 3]>>>,
    faults: DeviceFaults,
}

/// The alignment of the in-memory disks: a page blob's sector.
const MEMORY_ALIGNMENT: u64 = 512;

impl MemoryStorage {
    /// Storage with no partition yet.
    pub fn new() -> MemoryStorage {
        MemoryStorage::default()
    }

    /// Storage whose disks have `faults` switched on (each disk's generator seeded from
    /// `faults.seed`, its partition and its role).
    pub fn with_faults(faults: DeviceFaults) -> MemoryStorage {
        MemoryStorage {
            faults,
            ..MemoryStorage::default()
        }
    }

    /// Loses everything that was not flushed on every disk, as a power cut would; open
    /// handles keep working on what is left.
    pub fn crash(&self) {
        for disks in self.lock().values() {
            disks.iter().for_each(MemoryDisk::crash);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PartitionId, [MemoryDisk; 3]>> {
        self.disks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn disks(&self, partition: PartitionId) -> Result<[MemoryDisk; 3], Error> {
        let mut disks = self.lock();
        if let Some(found) = disks.get(&partition) {
            return Ok(found.clone());
        }
        let new = |role: u64| {
            let disk = MemoryDisk::new(MEMORY_ALIGNMENT).map_err(|e| device_error(partition, e))?;
            let seed = self.faults.seed ^ (u64::from(partition.0) << 8 | role);
            Ok::<_, Error>(disk.with_faults(DeviceFaults {
                seed,
                ..self.faults.clone()
            }))
        };
        let made = [new(0)?, new(1)?, new(2)?];
        disks.insert(partition, made.clone());
        Ok(made)
    }
}

#[async_trait]
impl PartitionStorage for MemoryStorage {
    async fn open(&self, partition: PartitionId) -> Result<PartitionDevices, Error> {
        let [log, store_log, store_checkpoints] = self.disks(partition)?;
        Ok(PartitionDevices {
            log: Arc::new(log.open()),
            store_log: Arc::new(store_log.open()),
            store_checkpoints: Arc::new(store_checkpoints.open()),
            fence: None,
        })
    }
}

fn device_error(partition: PartitionId, source: netherite_core::Error) -> Error {
    Error::Storage {
        partition,
        what: "opening a device".into(),
        source: source.into(),
    }
}

#[cfg(feature = "file")]
pub use self::file::FileStorage;
#[cfg(feature = "pageblob")]
pub use self::pageblob::PageBlobStorage;

#[cfg(feature = "pageblob")]
mod pageblob;

#[cfg(feature = "file")]
mod file {
    use std::path::Path;
    use std::time::Duration;

    use netherite_storage_file::{FileDevice, FileDeviceOptions, Lease};

    use super::*;
    use crate::host::lease::{LeaseKeeper, acquire_waiting};
    use crate::taskhub::TaskHub;

    /// How long opening waits for a device that a host of this same process is still letting
    /// go of (a host that was aborted releases its devices as its tasks wind down).
    const LOCK_WAIT: Duration = Duration::from_secs(5);
    /// The pause between two attempts to open a locked device.
    const LOCK_RETRY_PAUSE: Duration = Duration::from_millis(10);

    /// Partition devices in files under a task hub's data directory (feature `file`): the
    /// commit log in `pNN/log/`, the store in `pNN/store/log/` and `pNN/store/checkpoints/`.
    #[derive(Clone, Debug)]
    pub struct FileStorage {
        hub: TaskHub,
        options: FileDeviceOptions,
        lease: Option<LeaseTerms>,
    }

    /// Who claims partitions, and for how long, when nodes share the directory.
    #[derive(Clone, Debug)]
    struct LeaseTerms {
        owner: String,
        ttl: Duration,
    }

    impl FileStorage {
        /// Storage in the directory of `hub` (whose lock it holds while it lives), for one
        /// node: each device directory is locked while open.
        pub fn new(hub: TaskHub) -> FileStorage {
            FileStorage {
                hub,
                options: FileDeviceOptions::default(),
                lease: None,
            }
        }

        /// Storage in a directory that several nodes share: opening a partition claims its
        /// lease (`pNN/lease`) for `owner`, waiting while another node's claim is live, and
        /// renews it every quarter of `ttl`. Every device operation checks the lease's epoch,
        /// so a node that lost the claim (paused past it, say) cannot write any more.
        pub fn leased(hub: TaskHub, owner: impl Into<String>, ttl: Duration) -> FileStorage {
            let lease = LeaseTerms {
                owner: owner.into(),
                ttl,
            };
            FileStorage {
                lease: Some(lease),
                ..FileStorage::new(hub)
            }
        }

        async fn open_one(&self, dir: &Path, partition: PartitionId) -> Result<FileDevice, Error> {
            let deadline = tokio::time::Instant::now() + LOCK_WAIT;
            loop {
                match FileDevice::open(dir, self.options).await {
                    Ok(device) => return Ok(device),
                    Err(netherite_storage_file::Error::Locked { .. })
                        if tokio::time::Instant::now() < deadline =>
                    {
                        tokio::time::sleep(LOCK_RETRY_PAUSE).await;
                    }
                    Err(source) => return Err(open_failed(partition, dir, source)),
                }
            }
        }

        async fn open_leased(
            &self,
            partition: PartitionId,
            terms: &LeaseTerms,
        ) -> Result<PartitionDevices, Error> {
            let path = self.hub.partition_dir(partition).join("lease");
            let lease = acquire_waiting(partition, path, &terms.owner, terms.ttl).await?;
            let keeper = LeaseKeeper::start(partition, lease.clone());
            let opened = self.open_devices_leased(partition, &lease).await;
            let [log, store_log, store_checkpoints] = match opened {
                Ok(devices) => devices,
                Err(error) => {
                    keeper.release().await;
                    return Err(error);
                }
            };
            Ok(PartitionDevices {
                log: Arc::new(log),
                store_log: Arc::new(store_log),
                store_checkpoints: Arc::new(store_checkpoints),
                fence: Some(Arc::new(keeper)),
            })
        }

        async fn open_devices_leased(
            &self,
            partition: PartitionId,
            lease: &Arc<Lease>,
        ) -> Result<[FileDevice; 3], Error> {
            let open = |dir: std::path::PathBuf| async move {
                FileDevice::open_leased(&dir, self.options, lease.clone())
                    .await
                    .map_err(|source| open_failed(partition, &dir, source))
            };
            let [log, store_log, checkpoints] = self.device_dirs(partition);
            Ok([
                open(log).await?,
                open(store_log).await?,
                open(checkpoints).await?,
            ])
        }

        /// The directories of the commit log, the store's log and its checkpoints.
        fn device_dirs(&self, partition: PartitionId) -> [std::path::PathBuf; 3] {
            let store = self.hub.store_dir(partition);
            [
                self.hub.log_dir(partition),
                store.join("log"),
                store.join("checkpoints"),
            ]
        }
    }

    fn open_failed(
        partition: PartitionId,
        dir: &Path,
        source: netherite_storage_file::Error,
    ) -> Error {
        Error::Storage {
            partition,
            what: format!("opening the device in {}", dir.display()),
            source: Box::new(source),
        }
    }

    #[async_trait]
    impl PartitionStorage for FileStorage {
        async fn open(&self, partition: PartitionId) -> Result<PartitionDevices, Error> {
            if let Some(terms) = &self.lease {
                return self.open_leased(partition, terms).await;
            }
            let [log, store_log, checkpoints] = self.device_dirs(partition);
            Ok(PartitionDevices {
                log: Arc::new(self.open_one(&log, partition).await?),
                store_log: Arc::new(self.open_one(&store_log, partition).await?),
                store_checkpoints: Arc::new(self.open_one(&checkpoints, partition).await?),
                fence: None,
            })
        }
    }
}
