//! The store's settings and the devices it runs on.

use std::sync::Arc;

use netherite_core::device::LogDevice;

use super::record::HEADER_LEN;
use crate::Error;

/// The longest key the store takes (limit `key_bytes_max`).
pub const KEY_BYTES_MAX: usize = 64 << 10;

/// The largest page a store may have, 1 GiB: far past any useful size, and low enough that
/// arithmetic on page counts cannot overflow.
pub(crate) const PAGE_BYTES_MAX: u64 = 1 << 30;

/// The two devices a store runs on.
///
/// The log device holds the records and, after each checkpoint's records, that checkpoint's
/// index snapshot. The checkpoint device holds only two small manifest slots, written in turn,
/// so the newest manifest never overwrites the one before it.
///
/// Each device has a name for error messages, e.g. its directory: a damaged checkpoint is
/// reported as "index snapshot of checkpoint 3 in /data/p03/store-log at offset 12288".
#[derive(Clone, Debug)]
pub struct StoreDevices {
    /// The device under the hybrid log.
    pub log: Arc<dyn LogDevice>,
    /// The device holding the checkpoint manifests.
    pub checkpoints: Arc<dyn LogDevice>,
    /// What error messages call the log device.
    pub log_name: String,
    /// What error messages call the checkpoint device.
    pub checkpoints_name: String,
}

impl StoreDevices {
    /// The two devices, named "store log device" and "store checkpoint device".
    pub fn new(log: Arc<dyn LogDevice>, checkpoints: Arc<dyn LogDevice>) -> StoreDevices {
        StoreDevices {
            log,
            checkpoints,
            log_name: "store log device".into(),
            checkpoints_name: "store checkpoint device".into(),
        }
    }

    /// These devices with the names error messages give them.
    pub fn named(self, log: impl Into<String>, checkpoints: impl Into<String>) -> StoreDevices {
        StoreDevices {
            log_name: log.into(),
            checkpoints_name: checkpoints.into(),
            ..self
        }
    }
}

/// How a store uses memory. The defaults (64 MiB, 256 KiB pages, 16,384 index buckets: about
/// 115,000 keys before overflow buckets) suit a partition of some hundred thousand instances;
/// size `index_buckets` to about a seventh of the keys expected.
///
/// Page size and bucket count are fixed when a store is created: recovery takes them from the
/// checkpoint, whatever this says.
#[derive(Clone, Debug, PartialEq)]
pub struct StoreConfig {
    /// The most bytes the store's pages and index may take (limit `memory_bytes_max`).
    pub memory_bytes_max: u64,
    /// The size of a log page: a power of two from 4096 to 1 GiB, and a multiple of the log
    /// device's alignment. Pages are the unit of device writes and of eviction.
    pub page_bytes: u64,
    /// Primary buckets of the hash index: a power of two. Seven keys fit per bucket before
    /// overflow buckets are needed; each bucket takes 64 bytes of the memory budget.
    pub index_buckets: u64,
    /// The share of the in-memory pages (percent, 1 to 100) kept mutable: updated in place
    /// rather than copied to the tail.
    pub mutable_percent: u8,
}

impl Default for StoreConfig {
    fn default() -> StoreConfig {
        StoreConfig {
            memory_bytes_max: 64 << 20,
            page_bytes: 256 << 10,
            index_buckets: 1 << 14,
            mutable_percent: 90,
        }
    }
}

impl StoreConfig {
    /// Checks the rules above against a log device of `alignment`.
    pub(crate) fn validate(&self, alignment: u64) -> Result<(), Error> {
        let fail = |reason: String| Err(Error::InvalidConfig(reason));
        if !self.page_bytes.is_power_of_two() || !(4096..=PAGE_BYTES_MAX).contains(&self.page_bytes)
        {
            return fail(format!(
                "page_bytes {} is not a power of two from 4096 to {PAGE_BYTES_MAX}",
                self.page_bytes
            ));
        }
        if !self.page_bytes.is_multiple_of(alignment) {
            return fail(format!(
                "page_bytes {} is not a multiple of the log device's alignment {alignment}",
                self.page_bytes
            ));
        }
        if !self.index_buckets.is_power_of_two() || self.index_buckets > 1 << 32 {
            return fail(format!(
                "index_buckets {} is not a power of two <= 2^32",
                self.index_buckets
            ));
        }
        if !(1..=100).contains(&self.mutable_percent) {
            return fail(format!(
                "mutable_percent {} is not in 1..=100",
                self.mutable_percent
            ));
        }
        let needed = self.index_buckets * 64 + 4 * self.page_bytes;
        if self.memory_bytes_max < needed {
            return fail(format!(
                "memory_bytes_max {} is below the index plus four pages ({needed})",
                self.memory_bytes_max
            ));
        }
        Ok(())
    }

    /// The largest record (header, key and value) the store takes: a quarter of the budget,
    /// so that one record never crowds out the rest (limit `record_bytes_max`).
    pub(crate) fn record_bytes_max(&self) -> u64 {
        (self.memory_bytes_max / 4).min(u64::from(u32::MAX) - HEADER_LEN as u64)
    }
}
