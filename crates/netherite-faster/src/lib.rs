//! FASTER-style storage for a partition, over any `LogDevice` of `netherite-core`.
//!
//! Two pieces, each written for this project:
//!
//! - [`log`]: the partition's commit log: records with length, kind and checksum; group commit
//!   (one device flush per batch); scans; truncation; torn-tail detection on recovery.
//! - [`store`]: the hybrid-log key-value store: a hash index over a log whose tail is mutable
//!   in memory, whose middle is read-only in memory and whose head lives on the device;
//!   checkpoints with the manifest written last; compaction.

mod error;
pub mod log;
mod reader;
pub mod store;

pub use error::Error;
pub(crate) use error::{Place, reread_if_corrupt};
