//! The one error type of the `netherite` crate, referred to as `netherite::Error`.
//!
//! Failures of user code (an activity that returns an error, an orchestration that panics) are
//! not errors of this crate: they are values, [`FailureDetails`](netherite_core::model::
//! FailureDetails), recorded in the history like any other outcome. This type is for misuse of
//! the API (which the caller can fix), requests a partition turned down (each [`Rejection`]
//! has its variant), and failures of the engine's storage and transport.
//!
//! [`Rejection`]: netherite_core::partition::Rejection

use std::path::PathBuf;

use netherite_core::model::OrchestrationStatus;
use netherite_core::{InstanceId, PartitionId};

/// Everything that can go wrong when using the engine and its SDK.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A name was registered twice in one [`Registry`](crate::sdk::Registry).
    #[error("{kind} '{name}' is already registered")]
    AlreadyRegistered {
        /// `"orchestration"` or `"activity"`.
        kind: &'static str,
        /// The name registered twice.
        name: String,
    },
    /// A value could not be turned into a JSON payload.
    #[error("cannot serialize {what}: {reason}")]
    Serialize {
        /// What was being serialized.
        what: String,
        /// What `serde_json` said.
        reason: String,
    },
    /// A setting has a value it cannot take; names the setting and where the value came from.
    #[error("setting {setting} (from {origin}): {reason}")]
    InvalidSetting {
        /// The setting's name, as in the settings file (`partition_count`).
        setting: &'static str,
        /// Where the value came from: `code`, `file <path>` or the environment variable.
        origin: String,
        /// What is wrong with the value, quoting it.
        reason: String,
    },
    /// A settings file cannot be read, or is not TOML, or names a setting that does not exist.
    #[error("settings file {}: {reason}", .path.display())]
    SettingsFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The data directory (or the page blobs' container) holds a task hub with another
    /// partition count than the settings ask for. The count is fixed when the task hub is
    /// created.
    #[error(
        "task hub {} was created with {stored} partitions; settings ask for {requested}",
        .dir.display()
    )]
    PartitionCountMismatch {
        /// The data directory, or the container's task hub record (`<container>/taskhub.json`).
        dir: PathBuf,
        /// The count the task hub recorded when it was created.
        stored: u32,
        /// The count the settings ask for.
        requested: u32,
    },
    /// The task hub file of a data directory is damaged or missing where it must be.
    #[error("task hub file {} is corrupt: {reason}", .path.display())]
    TaskHubCorrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Another task hub handle, in this process or another, holds the data directory.
    #[error("data directory {} is in use by another process or handle (lock file {})",
        .dir.display(), .lock.display())]
    TaskHubLocked {
        /// The data directory.
        dir: PathBuf,
        /// The lock file.
        lock: PathBuf,
    },
    /// A file operation on the data directory failed.
    #[error("{operation} {}: {source}", .path.display())]
    DataDir {
        /// What was attempted (`create`, `read`, `rename`...).
        operation: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// What the file system said.
        source: std::io::Error,
    },

    // The partition host (`host`).
    /// A partition's storage failed: a device could not be opened, the commit log or the
    /// store reported an error. Names the partition and what was being done.
    #[error("partition {partition}: {what}: {source}")]
    Storage {
        /// The partition.
        partition: PartitionId,
        /// What was being done, e.g. `appending to the commit log`.
        what: String,
        /// The storage layer's error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A record of a partition's commit log or checkpoint does not decode. Names where.
    #[error("partition {partition}: {what} at offset {offset} does not decode: {reason}")]
    CorruptRecord {
        /// The partition.
        partition: PartitionId,
        /// What was read, e.g. `commit log` or `checkpoint`.
        what: &'static str,
        /// Where the record starts (a byte offset of the commit log, or 0 for a checkpoint).
        offset: u64,
        /// What the decoder said.
        reason: String,
    },
    /// A partition's stored state belongs to another task hub shape.
    #[error("partition {partition}: stored state is for {found}, this task hub is {expected}")]
    StateMismatch {
        /// The partition.
        partition: PartitionId,
        /// What the stored state says (partition and count).
        found: String,
        /// What this engine runs.
        expected: String,
    },
    /// The partition's host stopped (after a fatal error, or because the engine shut down).
    #[error("partition {partition} is not running: {reason}")]
    PartitionStopped {
        /// The partition.
        partition: PartitionId,
        /// Why.
        reason: String,
    },
    /// The partition is not hosted by this node, so it cannot be read here.
    #[error("partition {partition} is not hosted by this node")]
    PartitionNotHosted {
        /// The partition.
        partition: PartitionId,
    },

    // The client (`client`).
    /// No instance with this id exists.
    #[error("instance '{instance}' not found")]
    NotFound {
        /// The instance asked for.
        instance: InstanceId,
    },
    /// An instance with this id exists and its status may not be replaced.
    #[error("instance '{instance}' already exists with status {status:?}")]
    AlreadyExists {
        /// The instance.
        instance: InstanceId,
        /// Its status.
        status: OrchestrationStatus,
    },
    /// The instance's status does not allow the request (purging a running instance,
    /// restarting one under the same id before it finished).
    #[error("instance '{instance}' has status {status:?}, which does not allow {operation}")]
    FailedPrecondition {
        /// The instance.
        instance: InstanceId,
        /// Its status.
        status: OrchestrationStatus,
        /// What was asked.
        operation: &'static str,
    },
    /// A wait ran out of time before the instance got there.
    #[error("timed out after {waited:?} waiting for instance '{instance}' to {until}")]
    Timeout {
        /// The instance waited for.
        instance: InstanceId,
        /// What was waited for: `start` or `complete`.
        until: &'static str,
        /// How long the client waited.
        waited: std::time::Duration,
    },
    /// A payload is larger than `payload_bytes_max` allows; nothing was sent.
    #[error("{what} is {actual} bytes, over the limit payload_bytes_max = {max}")]
    PayloadTooLarge {
        /// Which payload, e.g. `the input of orchestration 'Order'`.
        what: String,
        /// Its size in bytes.
        actual: u64,
        /// The limit.
        max: u64,
    },
    /// A partition refused the request because one of its limits was hit; retry later.
    #[error("partition limit {limit} ({max}) reached; retry later")]
    PartitionLimit {
        /// The limit's name.
        limit: String,
        /// The limit.
        max: u64,
    },
    /// The request is malformed.
    #[error("invalid request: {reason}")]
    InvalidRequest {
        /// What is wrong.
        reason: String,
    },
    /// A stored payload could not be read as the type asked for.
    #[error("cannot deserialize {what}: {reason}")]
    Deserialize {
        /// What was being deserialized.
        what: String,
        /// What `serde_json` said.
        reason: String,
    },
    /// The transport failed to open or to serve a call.
    #[error("{what}: {source}")]
    Transport {
        /// What was being done, e.g. `opening the input queue of partition 3`.
        what: String,
        /// The contract's error.
        source: netherite_core::Error,
    },
    /// The storage that holds the task hub (a container of page blobs) could not be opened or
    /// checked: refused credentials, no answer, a name the service rejects.
    #[error("task hub storage {location}: {reason}")]
    HubStorage {
        /// Where the task hub is, e.g. `container hub-1`.
        location: String,
        /// What the service answered, never quoting a secret.
        reason: String,
    },
    /// The engine shut down, or the request's answer can no longer come.
    #[error("engine closed: {0}")]
    Closed(String),
}
