//! The one error type of `netherite-faster`, referred to as `netherite_faster::Error`.

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
