//! The hybrid-log key-value store: byte-string keys and values over any
//! [`LogDevice`](netherite_core::device::LogDevice), larger than memory, with consistent
//! checkpoints and bounded compaction.
//!
//! This is FASTER's design, written for this project. Three parts:
//!
//! - a **hash index** mapping a key's hash to the newest record of a chain (64-byte buckets
//!   of tagged slots); the records of one chain link to each other, newest first;
//! - a **hybrid log** of records: the newest pages in memory and mutable (updated in place),
//!   older pages in memory but read-only (an update copies the record to the tail), and the
//!   oldest only on the device (a read goes there). See [`Address`] for the regions.
//! - **checkpoints**: fold the log over (everything up to the tail becomes read-only and
//!   written), write the index next to it, then a manifest last. See [`Store::checkpoint`] and
//!   [`Store::recover`].
//!
//! The main decision is single-writer: updates take `&mut self`, the partition state machine
//! that uses the store is single-threaded anyway, and it makes the log and the index plain
//! data structures with no latches or epochs. Device I/O is async through the trait.
//!
//! Memory is bounded by [`StoreConfig::memory_bytes_max`]: the index and the in-memory pages
//! together, as [`Store::memory_bytes`] reports. A store opened at a checkpoint starts with
//! only the index in memory and pages come back as records are written.
//!
//! ```
//! use std::sync::Arc;
//!
//! use netherite_core::device::MemoryDisk;
//! use netherite_faster::store::{Store, StoreConfig, StoreDevices};
//!
//! # let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
//! # runtime.block_on(async {
//! let (log, checkpoints) = (MemoryDisk::new(512)?, MemoryDisk::new(512)?);
//! let devices = || StoreDevices::new(Arc::new(log.open()), Arc::new(checkpoints.open()));
//! let mut store = Store::create(devices(), StoreConfig::default()).await?;
//! store.upsert(b"instance-1", b"running").await?;
//! store.checkpoint(b"commit position 17").await?;
//! store.upsert(b"instance-1", b"completed").await?; // after the checkpoint: lost below
//!
//! log.crash();
//! checkpoints.crash();
//! let (store, recovered) = Store::recover(devices(), StoreConfig::default()).await?;
//! assert_eq!(recovered.checkpoint.blob, b"commit position 17");
//! assert_eq!(store.read(b"instance-1").await?, Some(b"running".to_vec()));
//! # Ok::<(), netherite_faster::Error>(())
//! # }).expect("example runs");
//! ```
//!
//! Known limits: a checkpoint holds the writer for its duration (flush plus index write);
//! the index does not grow (its bucket count is fixed at creation; overflow buckets absorb
//! more keys, slowly); values live inline in the log, so a record may take at most a quarter
//! of the memory budget. Scan buffers and device reads use memory outside the budget: one
//! page per scan, one record per read.
//! TODO: checkpoint in the background while updates go on; it matters once partitions hold
//! indexes large enough that writing one stalls the partition noticeably.

mod address;
mod checkpoint;
mod compaction;
mod config;
mod index;
mod kv;
mod log;
mod manifest;
mod record;
mod scan;

pub use address::{Address, Regions};
pub use checkpoint::{CheckpointInfo, Recovered};
pub use compaction::CompactionReport;
pub use config::{KEY_BYTES_MAX, StoreConfig, StoreDevices};
pub use kv::{Store, StoreStats};
pub use scan::LiveRecords;

#[cfg(test)]
mod tests;
