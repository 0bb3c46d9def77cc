//! The one error type of the `netherite` crate, referred to as `netherite::Error`.
//!
//! Failures of user code (an activity that returns an error, an orchestration that panics) are
//! not errors of this crate: they are values, [`FailureDetails`](netherite_core::model::
//! FailureDetails), recorded in the history like any other outcome. This type is for misuse of
//! the API itself, which the caller can fix.

use std::path::PathBuf;

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
    /// The data directory holds a task hub with another partition count than the settings ask
    /// for. The count is fixed when the task hub is created.
    #[error(
        "data directory {} was created with {stored} partitions; settings ask for {requested}",
        .dir.display()
    )]
    PartitionCountMismatch {
        /// The data directory.
        dir: PathBuf,
        /// The count in its `taskhub.toml`.
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
    /// The transport failed to open or to serve a call.
    #[error("{what}: {source}")]
    Transport {
        /// What was being done, e.g. `opening the input queue of partition 3`.
        what: String,
        /// The contract's error.
        source: netherite_core::Error,
    },
}
