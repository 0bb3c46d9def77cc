//! [`MemoryOwnershipStore`]: ownership records in a map, for one process.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use netherite_core::transport::NodeId;
use netherite_core::{Error, PartitionId};

use super::{Claimed, ETag, OwnershipRecord, OwnershipStore};
use crate::clock::Clock;

/// Ownership records kept in memory and stamped by a clock; clones share the records.
///
/// It keeps the rules of [`OwnershipStore`], so several balancers in one process (tests, a
/// simulation) can share partitions through it as nodes do through blob storage.
#[derive(Clone, Debug)]
pub struct MemoryOwnershipStore {
    clock: Arc<dyn Clock>,
    records: Arc<Mutex<Records>>,
}

#[derive(Debug, Default)]
struct Records {
    by_partition: BTreeMap<PartitionId, OwnershipRecord>,
    writes: u64,
}

impl MemoryOwnershipStore {
    /// An empty store whose writes are stamped with `clock`'s time.
    pub fn new(clock: Arc<dyn Clock>) -> MemoryOwnershipStore {
        MemoryOwnershipStore {
            clock,
            records: Arc::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Records> {
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl OwnershipStore for MemoryOwnershipStore {
    async fn list(&self) -> Result<Vec<OwnershipRecord>, Error> {
        Ok(self.lock().by_partition.values().cloned().collect())
    }

    async fn claim(
        &self,
        partition: PartitionId,
        owner: Option<&NodeId>,
        expected: Option<&ETag>,
    ) -> Result<Claimed, Error> {
        let now = self.clock.now();
        let mut records = self.lock();
        let current = records.by_partition.get(&partition).map(|r| &r.etag);
        if current != expected {
            return Ok(Claimed::Conflict);
        }
        records.writes += 1;
        let record = OwnershipRecord {
            partition,
            owner: owner.cloned(),
            etag: ETag(format!("\"{}\"", records.writes)),
            last_modified: now,
        };
        records.by_partition.insert(partition, record.clone());
        Ok(Claimed::Won(record))
    }
}
