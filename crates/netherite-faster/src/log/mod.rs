//! The partition's commit log: records appended in order, made durable in batches, read back
//! after any crash exactly as far as they were durable, and never torn.
//!
//! # Shape
//!
//! A [`CommitLog`] sits on any [`LogDevice`](netherite_core::device::LogDevice). Appends copy
//! a record into the batch being filled and return at once with its [`LogPosition`] and a
//! [`Durable`] handle. One flusher task takes everything appended so far, writes it with one
//! device write and one device flush, then moves the durable point, which answers every
//! record of the batch at once. Many appenders thus share each flush (group commit), and the
//! slower the device, the larger the batches. A batch's flush runs while the next batch is
//! written, so the device is never idle while there is work.
//!
//! ```text
//!  start                  durable              appended
//!    |                       |                     |
//!    +-------+-------+-------+----------+----------+ - - - - - -
//!    | batch | batch | batch | in flight| filling  |  leftovers of
//!    |       |       |       | (written,| (memory) |  torn or abandoned
//!    |       |       |       |  flushing)          |  writes
//!    +-------+-------+-------+----------+----------+ - - - - - -
//!    '--- durable: survives any crash --'
//!            in flight + filling <= buffer_bytes_max (appends wait beyond it)
//! ```
//!
//! # On the device
//!
//! Everything is a checksummed frame ([`format`](mod@format)): a batch starts at an aligned
//! offset with a batch header, holds whole records, and is padded to the next aligned
//! offset. The next batch starts there, so no write ever rewrites a byte a flush made
//! durable: a torn write can only damage the batch being written. A record longer than
//! `page_bytes` is split into fragments that a reader puts back together; a record is
//! returned whole or not at all.
//!
//! # Recovery
//!
//! [`CommitLog::open`] walks the frames from the start position to the first one that fails.
//! That is the torn tail, unless a batch header further on states that the log was durable
//! past it: then it is damage inside the durable log, reported as [`Error::Corrupt`] with its
//! offset, never silently cut off. See [`recovery`] for the rules. After a clean
//! [`close`](CommitLog::close) every batch is vouched for. After a crash the last batches
//! are not (the last one, or two when a flush overlapped the next write: a batch header can
//! only vouch for what was durable when it was written), so damage confined to them reads
//! as a torn tail.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//!
//! use netherite_core::device::MemoryDisk;
//! use netherite_faster::log::{CommitLog, LogConfig, LogPosition, RecordKind};
//!
//! # let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! # runtime.block_on(async {
//! let disk = MemoryDisk::new(512)?;
//! let log = CommitLog::open(Arc::new(disk.open()), LogPosition::ZERO, LogConfig::default())
//!     .await?;
//! let kind = RecordKind::new(1)?;
//! let (position, durable) = log.append(kind, b"hello").await?;
//! durable.wait().await?;
//!
//! disk.crash();
//! let log = CommitLog::open(Arc::new(disk.open()), LogPosition::ZERO, LogConfig::default())
//!     .await?;
//! let records = log.scan(LogPosition::ZERO)?.collect().await?;
//! assert_eq!(records[0].position, position);
//! assert_eq!(records[0].body, b"hello");
//! # Ok::<(), netherite_faster::Error>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`Error::Corrupt`]: crate::Error::Corrupt

mod batch;
mod commit_log;
mod config;
mod durable;
mod flusher;
pub mod format;
mod position;
pub mod recovery;
mod scan;
mod shared;
#[cfg(test)]
mod tests;
mod walk;

pub use commit_log::CommitLog;
pub use config::LogConfig;
pub use durable::Durable;
pub use position::{LogPosition, RecordKind};
pub use recovery::Recovery;
pub use scan::LogScan;

/// A record read back from the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogRecord {
    /// Where the record starts.
    pub position: LogPosition,
    /// The kind it was appended with.
    pub kind: RecordKind,
    /// The bytes it was appended with.
    pub body: Vec<u8>,
    /// Where what follows the record starts: a position to scan or recover from.
    pub end: LogPosition,
}
