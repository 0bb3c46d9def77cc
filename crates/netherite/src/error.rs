//! The one error type of the `netherite` crate, referred to as `netherite::Error`.
//!
//! Failures of user code (an activity that returns an error, an orchestration that panics) are
//! not errors of this crate: they are values, [`FailureDetails`](netherite_core::model::
//! FailureDetails), recorded in the history like any other outcome. This type is for misuse of
//! the API itself, which the caller can fix.

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
}
