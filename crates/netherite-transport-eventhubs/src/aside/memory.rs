//! [`MemoryAsideStore`]: blobs in a map, for the logic's tests.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use async_trait::async_trait;
use netherite_core::Error;

use super::{AsideStore, StoredBlob};
use crate::clock::Clock;

/// Blobs kept in memory, stamped by a clock.
#[derive(Debug)]
pub(crate) struct MemoryAsideStore {
    clock: Arc<dyn Clock>,
    blobs: Mutex<BTreeMap<String, (Vec<u8>, SystemTime)>>,
}

impl MemoryAsideStore {
    /// An empty store whose blobs are stamped with `clock`'s time.
    pub(crate) fn new(clock: Arc<dyn Clock>) -> MemoryAsideStore {
        MemoryAsideStore {
            clock,
            blobs: Mutex::default(),
        }
    }

    /// The names of the blobs held now.
    pub(crate) fn names(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, (Vec<u8>, SystemTime)>> {
        self.blobs.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl AsideStore for MemoryAsideStore {
    async fn put(&self, name: &str, bytes: Vec<u8>) -> Result<(), Error> {
        let now = self.clock.now();
        self.lock().insert(name.to_string(), (bytes, now));
        Ok(())
    }

    async fn get(&self, name: &str, offset: u64, length: u64) -> Result<Option<Vec<u8>>, Error> {
        let blobs = self.lock();
        let Some((bytes, _)) = blobs.get(name) else {
            return Ok(None);
        };
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(bytes.len());
        let end = usize::try_from(offset.saturating_add(length))
            .unwrap_or(usize::MAX)
            .min(bytes.len());
        Ok(Some(bytes[start..end].to_vec()))
    }

    async fn delete(&self, name: &str) -> Result<(), Error> {
        self.lock().remove(name);
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<StoredBlob>, Error> {
        let blobs = self.lock();
        let listed = blobs
            .iter()
            .filter(|(name, _)| name.starts_with(prefix))
            .map(|(name, (_, written))| StoredBlob {
                name: name.clone(),
                last_modified: *written,
            });
        Ok(listed.collect())
    }
}
