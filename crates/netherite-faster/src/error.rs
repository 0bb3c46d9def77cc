//! The one error type of `netherite-faster`, referred to as `netherite_faster::Error`.
//!
//! Damage is always reported at a place: what was being read and the device offset where it
//! starts. [`Place`] builds those errors, and [`reread_if_corrupt`] gives a read that failed
//! a check its one second look, so that a read damaged on its way does not pass for damage on
//! the device.

use std::future::Future;
use std::sync::Arc;

/// Everything that can go wrong in the commit log and the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The device under the log or the store failed.
    #[error(transparent)]
    Device(#[from] netherite_core::Error),

    /// Bytes on the device are not what was written: a checksum fails, or a record is
    /// missing where the log proves one was durable. Recover from an earlier point or stop.
    #[error("corrupt {source_name} at offset {offset}: {reason}")]
    Corrupt {
        /// What was being read, e.g. `partition 3 commit log`.
        source_name: String,
        /// The device offset of the damaged record.
        offset: u64,
        /// What is wrong there.
        reason: String,
    },
    /// An argument broke a documented rule; nothing changed.
    #[error("invalid argument to {operation}: {reason}")]
    InvalidArgument {
        /// The operation called.
        operation: &'static str,
        /// Which rule was broken.
        reason: String,
    },
    /// A request is larger than a configured limit allows.
    #[error("limit {limit} exceeded: {actual} > {max}")]
    LimitExceeded {
        /// The limit's name, as in the settings.
        limit: &'static str,
        /// The size asked for.
        actual: u64,
        /// The limit.
        max: u64,
    },
    /// The commit log stopped after a device error it could not get past (a fence, a full
    /// device, a failure that outlasted its retries). Nothing more is appended or made
    /// durable; reopen the log to go on.
    #[error("commit log stopped: {0}")]
    Stopped(#[source] Arc<netherite_core::Error>),
    /// The commit log was closed or dropped.
    #[error("commit log closed")]
    Closed,

    // The key-value store (`store`).
    /// Stored bytes end before the thing that was being read does.
    #[error(
        "{source_name} at offset {offset} is truncated: needs {needed} bytes, {available} there"
    )]
    Truncated {
        /// What was being read, e.g. `manifest slot 1 of the store checkpoint device`.
        source_name: String,
        /// Where it starts on its device.
        offset: u64,
        /// How many bytes it needs from its start.
        needed: u64,
        /// How many bytes the device holds from its start.
        available: u64,
    },
    /// Something that must be there was never written, e.g. a checkpoint manifest.
    #[error("{source_name} at offset {offset} is missing")]
    Missing {
        /// What was expected.
        source_name: String,
        /// Where it should start on its device.
        offset: u64,
    },
    /// Stored bytes are intact (their checksum holds) but in a format newer than this program
    /// reads: a newer program wrote them. Nothing is passed over or erased; open the store
    /// with that program.
    #[error(
        "{source_name} at offset {offset} is in format {format}, written by a newer program; \
         this one reads format {supported}"
    )]
    NewerFormat {
        /// What was being read, e.g. `manifest slot 1 of /data/p03/store-checkpoints`.
        source_name: String,
        /// Where it starts on its device.
        offset: u64,
        /// The format found.
        format: u32,
        /// The format this program reads.
        supported: u32,
    },
    /// Recovery found no checkpoint it could load; every attempt is listed, newest first.
    #[error("no intact checkpoint: {}", .attempts.join("; "))]
    NoIntactCheckpoint {
        /// Why each candidate was refused.
        attempts: Vec<String>,
    },
    /// `Store::create` found a checkpoint already there; recover it instead.
    #[error("the checkpoint device already holds checkpoint {version}; recover it instead")]
    StoreExists {
        /// The version of the checkpoint found.
        version: u64,
    },
    /// A setting breaks a rule of the store.
    #[error("invalid store configuration: {0}")]
    InvalidConfig(String),
}

/// What was being read and where it starts on its device: the place every damage report
/// names.
#[derive(Clone, Debug)]
pub(crate) struct Place {
    source_name: String,
    offset: u64,
}

impl Place {
    /// `source_name` (e.g. `record in /data/p03/store-log`) at device offset `offset`.
    pub(crate) fn new(source_name: impl Into<String>, offset: u64) -> Place {
        Place {
            source_name: source_name.into(),
            offset,
        }
    }

    /// [`Error::Corrupt`] here.
    pub(crate) fn corrupt(&self, reason: impl Into<String>) -> Error {
        Error::Corrupt {
            source_name: self.source_name.clone(),
            offset: self.offset,
            reason: reason.into(),
        }
    }

    /// [`Error::Truncated`] here: `needed` bytes from here, `available` on the device.
    pub(crate) fn truncated(&self, needed: u64, available: u64) -> Error {
        Error::Truncated {
            source_name: self.source_name.clone(),
            offset: self.offset,
            needed,
            available,
        }
    }

    /// [`Error::Missing`] here.
    pub(crate) fn missing(&self) -> Error {
        Error::Missing {
            source_name: self.source_name.clone(),
            offset: self.offset,
        }
    }

    /// [`Error::NewerFormat`] here: `format` found, `supported` read.
    pub(crate) fn newer_format(&self, format: u32, supported: u32) -> Error {
        Error::NewerFormat {
            source_name: self.source_name.clone(),
            offset: self.offset,
            format,
            supported,
        }
    }
}

/// Runs `read`, and once more when it reports [`Error::Corrupt`]: a device may damage a read
/// on its way, and one bad read must not pass for damage on the device.
pub(crate) async fn reread_if_corrupt<T, F, Fut>(mut read: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    match read().await {
        Err(error @ Error::Corrupt { .. }) => {
            tracing::debug!(%error, "a read failed a check; reading it again");
            read().await
        }
        other => other,
    }
}
