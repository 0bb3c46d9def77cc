//! Checkpoints: the partition state written through the store, with the positions it covers.
//!
//! A checkpoint is the postcard encoding of the whole [`PartitionState`], cut into chunks of
//! [`CHUNK_BYTES`] stored under keys `state/<n>`, and a small [`CheckpointBlob`] in the store's
//! manifest that says how many chunks there are, their checksum, the commit position the
//! state covers and the input position to resume at. The store makes a checkpoint visible
//! only once all of it is durable (its manifest is written last), so a crash mid-way leaves the
//! previous one in force.
//!
//! The store keeps the two newest checkpoints and may recover to the older one, so the host
//! keeps the commit log and the input queue from the *older* checkpoint's positions on: it
//! truncates them only to the positions of the checkpoint before the newest.
//!
//! TODO: the whole state is one value cut into chunks; per-instance records would make a
//! checkpoint cost what changed rather than what exists. It matters once a partition holds
//! hundreds of thousands of instances and checkpoints take long.

use netherite_core::partition::{PartitionConfig, PartitionState};
use netherite_core::{CommitPosition, InputPosition, PartitionId};
use netherite_faster::store::{Recovered, Store, StoreConfig, StoreDevices};
use serde::{Deserialize, Serialize};

use super::storage::PartitionDevices;
use crate::Error;

/// The bytes of one chunk of the encoded state.
pub(crate) const CHUNK_BYTES: usize = 1 << 20;

/// The blob format this program writes and reads.
const BLOB_FORMAT: u32 = 1;

/// What a checkpoint's manifest holds besides the store's own fields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CheckpointBlob {
    /// [`BLOB_FORMAT`] when written.
    pub(crate) format: u32,
    /// The commit position of the last update the state holds (0 if none).
    pub(crate) commit: u64,
    /// The input position to resume reading at.
    pub(crate) input: u64,
    /// How many chunks the state takes.
    pub(crate) chunks: u32,
    /// The encoded state's length.
    pub(crate) state_bytes: u64,
    /// crc32c of the encoded state.
    pub(crate) state_crc: u32,
}

impl CheckpointBlob {
    /// The positions this checkpoint covers.
    pub(crate) fn positions(&self) -> (CommitPosition, InputPosition) {
        (CommitPosition(self.commit), InputPosition(self.input))
    }
}

/// The partition's store, used for checkpoints only.
#[derive(Debug)]
pub(crate) struct StateStore {
    partition: PartitionId,
    store: Store,
    /// How many chunks the store holds now, so stale ones can be deleted.
    chunks: u32,
}

/// What opening the store found.
#[derive(Debug)]
pub(crate) struct Loaded {
    /// The checkpointed state, or a new one when there was no checkpoint yet.
    pub(crate) state: PartitionState,
    /// The positions the checkpoint covers (zeros for a new state).
    pub(crate) blob: Option<CheckpointBlob>,
}

impl StateStore {
    /// Opens the store on `devices`: recovers it when it was ever written, creates it when
    /// both of its devices are empty.
    pub(crate) async fn open(
        partition: PartitionId,
        devices: &PartitionDevices,
        config: StoreConfig,
    ) -> Result<(StateStore, Option<CheckpointBlob>), Error> {
        let store_devices =
            StoreDevices::new(devices.store_log.clone(), devices.store_checkpoints.clone()).named(
                format!("partition {partition} store log"),
                format!("partition {partition} store checkpoints"),
            );
        let fresh = devices.store_log.size() == 0 && devices.store_checkpoints.size() == 0;
        let (store, blob) = if fresh {
            let store = Store::create(store_devices, config).await;
            (
                store.map_err(|e| storage(partition, "creating the store", e))?,
                None,
            )
        } else {
            let (store, recovered) = Store::recover(store_devices, config)
                .await
                .map_err(|e| storage(partition, "recovering the store", e))?;
            (store, read_blob(partition, &recovered)?)
        };
        let chunks = blob.as_ref().map_or(0, |b| b.chunks);
        let opened = StateStore {
            partition,
            store,
            chunks,
        };
        Ok((opened, blob))
    }

    /// The checkpointed state, or a new one for `config` when there is none.
    pub(crate) async fn load(
        &self,
        blob: Option<CheckpointBlob>,
        config: &PartitionConfig,
    ) -> Result<Loaded, Error> {
        let Some(blob) = blob else {
            let state = PartitionState::new(config.clone())
                .map_err(|e| storage(self.partition, "creating the partition state", e))?;
            return Ok(Loaded { state, blob: None });
        };
        let bytes = self.read_chunks(&blob).await?;
        let state: PartitionState = postcard::from_bytes(&bytes)
            .map_err(|e| self.corrupt(format!("the state does not decode: {e}")))?;
        self.check_shape(&state, config)?;
        Ok(Loaded {
            state,
            blob: Some(blob),
        })
    }

    /// Writes `state` (already encoded) as a checkpoint covering `commit` and `input`.
    pub(crate) async fn save(
        &mut self,
        encoded: &[u8],
        commit: CommitPosition,
        input: InputPosition,
    ) -> Result<CheckpointBlob, Error> {
        let chunks = encoded.len().div_ceil(CHUNK_BYTES);
        let chunks = u32::try_from(chunks).map_err(|_| self.corrupt("state too large".into()))?;
        for (n, chunk) in encoded.chunks(CHUNK_BYTES).enumerate() {
            let key = chunk_key(n as u32);
            let upserted = self.store.upsert(&key, chunk).await;
            upserted.map_err(|e| storage(self.partition, "writing a state chunk", e))?;
        }
        for stale in chunks..self.chunks {
            let deleted = self.store.delete(&chunk_key(stale)).await;
            deleted.map_err(|e| storage(self.partition, "deleting a stale state chunk", e))?;
        }
        self.chunks = chunks;

        let blob = CheckpointBlob {
            format: BLOB_FORMAT,
            commit: commit.0,
            input: input.0,
            chunks,
            state_bytes: encoded.len() as u64,
            state_crc: crc32c(encoded),
        };
        let bytes = postcard::to_stdvec(&blob).map_err(|e| self.corrupt(e.to_string()))?;
        let checkpointed = self.store.checkpoint(&bytes).await;
        checkpointed.map_err(|e| storage(self.partition, "checkpointing the store", e))?;
        self.compact(encoded.len() as u64).await;
        Ok(blob)
    }

    /// Reclaims the space of older state chunks, a bounded slice per checkpoint.
    async fn compact(&mut self, state_bytes: u64) {
        // Each checkpoint rewrites every chunk, so compacting about twice the state's size per
        // checkpoint keeps the store's log from growing without end.
        let budget = state_bytes.saturating_mul(2).max(1 << 20);
        if let Err(error) = self.store.compact(budget).await {
            tracing::warn!(partition = %self.partition, %error, "store compaction failed");
        }
    }

    async fn read_chunks(&self, blob: &CheckpointBlob) -> Result<Vec<u8>, Error> {
        let mut bytes = Vec::with_capacity(usize::try_from(blob.state_bytes).unwrap_or(0));
        for n in 0..blob.chunks {
            let read = self.store.read(&chunk_key(n)).await;
            let chunk = read.map_err(|e| storage(self.partition, "reading a state chunk", e))?;
            let chunk = chunk.ok_or_else(|| self.corrupt(format!("state chunk {n} is missing")))?;
            bytes.extend_from_slice(&chunk);
        }
        if bytes.len() as u64 != blob.state_bytes || crc32c(&bytes) != blob.state_crc {
            let reason = format!(
                "the state's {} bytes do not match the {} bytes and checksum recorded",
                bytes.len(),
                blob.state_bytes
            );
            return Err(self.corrupt(reason));
        }
        Ok(bytes)
    }

    fn check_shape(&self, state: &PartitionState, config: &PartitionConfig) -> Result<(), Error> {
        let stored = state.config();
        if stored.partition != config.partition || stored.partition_count != config.partition_count
        {
            return Err(Error::StateMismatch {
                partition: self.partition,
                found: format!(
                    "partition {} of {}",
                    stored.partition, stored.partition_count
                ),
                expected: format!(
                    "partition {} of {}",
                    config.partition, config.partition_count
                ),
            });
        }
        Ok(())
    }

    fn corrupt(&self, reason: String) -> Error {
        Error::CorruptRecord {
            partition: self.partition,
            what: "checkpoint",
            offset: 0,
            reason,
        }
    }
}

fn read_blob(
    partition: PartitionId,
    recovered: &Recovered,
) -> Result<Option<CheckpointBlob>, Error> {
    for skipped in &recovered.skipped {
        tracing::warn!(partition = %partition, error = %skipped, "store recovery passed over");
    }
    let bytes = &recovered.checkpoint.blob;
    if bytes.is_empty() {
        return Ok(None);
    }
    let blob: CheckpointBlob = postcard::from_bytes(bytes).map_err(|e| Error::CorruptRecord {
        partition,
        what: "checkpoint manifest",
        offset: 0,
        reason: e.to_string(),
    })?;
    if blob.format != BLOB_FORMAT {
        return Err(Error::CorruptRecord {
            partition,
            what: "checkpoint manifest",
            offset: 0,
            reason: format!("unknown format {}", blob.format),
        });
    }
    Ok(Some(blob))
}

fn chunk_key(n: u32) -> Vec<u8> {
    format!("state/{n:08}").into_bytes()
}

fn crc32c(bytes: &[u8]) -> u32 {
    crc32c::crc32c(bytes)
}

/// A storage error of `partition` while doing `what`.
pub(crate) fn storage(
    partition: PartitionId,
    what: &str,
    source: impl std::error::Error + Send + Sync + 'static,
) -> Error {
    Error::Storage {
        partition,
        what: what.to_string(),
        source: Box::new(source),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use netherite_core::device::MemoryDisk;
    use netherite_core::partition::Limits;

    use super::*;

    fn disks() -> [MemoryDisk; 2] {
        let disk = || MemoryDisk::new(512).expect("a disk");
        [disk(), disk()]
    }

    fn devices([log, checkpoints]: &[MemoryDisk; 2]) -> PartitionDevices {
        PartitionDevices {
            log: Arc::new(MemoryDisk::new(512).expect("unused").open()),
            store_log: Arc::new(log.open()),
            store_checkpoints: Arc::new(checkpoints.open()),
            fence: None,
        }
    }

    fn config() -> PartitionConfig {
        PartitionConfig {
            partition: PartitionId(1),
            partition_count: 3,
            limits: Limits::default(),
        }
    }

    fn small_store() -> StoreConfig {
        StoreConfig {
            memory_bytes_max: 8 << 20,
            index_buckets: 1 << 8,
            ..StoreConfig::default()
        }
    }

    /// A state far larger than the store's memory budget goes out in chunks and comes back
    /// whole after a crash, with the positions it covers.
    #[tokio::test]
    async fn state_larger_than_memory_round_trips() {
        let disks = disks();
        let (mut store, blob) = StateStore::open(PartitionId(1), &devices(&disks), small_store())
            .await
            .expect("a new store");
        assert!(blob.is_none());
        let encoded: Vec<u8> = (0..(20 << 20)).map(|i: u32| (i % 251) as u8).collect();

        store
            .save(&encoded, CommitPosition(4096), InputPosition(9))
            .await
            .expect("saved");
        disks.iter().for_each(MemoryDisk::crash);

        let (store, blob) = StateStore::open(PartitionId(1), &devices(&disks), small_store())
            .await
            .expect("recovered");
        let blob = blob.expect("a checkpoint");
        assert_eq!(blob.positions(), (CommitPosition(4096), InputPosition(9)));
        assert_eq!(blob.chunks, 20);
        assert_eq!(store.read_chunks(&blob).await.expect("read back"), encoded);
    }

    /// A checkpointed partition state loads back equal; a state of another task hub shape is
    /// refused by name.
    #[tokio::test]
    async fn state_loads_back_and_shape_is_checked() {
        let disks = disks();
        let state = PartitionState::new(config()).expect("a state");
        let encoded = postcard::to_stdvec(&state).expect("encodes");
        let (mut store, _) = StateStore::open(PartitionId(1), &devices(&disks), small_store())
            .await
            .expect("a new store");
        let blob = store
            .save(&encoded, CommitPosition(1), InputPosition(2))
            .await
            .expect("saved");

        let loaded = store
            .load(Some(blob.clone()), &config())
            .await
            .expect("loads");
        assert_eq!(loaded.state, state);
        let other = PartitionConfig {
            partition_count: 4,
            ..config()
        };
        let refused = store.load(Some(blob), &other).await.expect_err("refused");
        assert!(matches!(refused, Error::StateMismatch { .. }), "{refused}");
    }

    /// A state that shrank leaves no stale chunk behind, and the checksum catches a blob that
    /// does not match the chunks.
    #[tokio::test]
    async fn shrinking_state_and_mismatched_blob() {
        let disks = disks();
        let (mut store, _) = StateStore::open(PartitionId(1), &devices(&disks), small_store())
            .await
            .expect("a new store");
        let big = vec![7u8; 3 * CHUNK_BYTES];
        store
            .save(&big, CommitPosition(1), InputPosition(1))
            .await
            .expect("saved");
        let blob = store
            .save(b"tiny", CommitPosition(2), InputPosition(2))
            .await
            .expect("saved");

        assert_eq!(blob.chunks, 1);
        assert!(
            store
                .store
                .read(&chunk_key(2))
                .await
                .expect("read")
                .is_none()
        );
        let wrong = CheckpointBlob {
            state_crc: blob.state_crc ^ 1,
            ..blob
        };
        let error = store.read_chunks(&wrong).await.expect_err("refused");
        assert!(matches!(error, Error::CorruptRecord { .. }), "{error}");
    }
}
