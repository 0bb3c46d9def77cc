//! The one error type of `netherite-azure`, referred to as `netherite_azure::Error`.
//!
//! Every variant says which part of the input is wrong. None carries the value of a secret
//! (the account key): an operator reading a log learns what to fix without the log becoming
//! a place the key leaks to.

/// Everything that can go wrong reading a connection string or building a client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting the connection string needs is not in it.
    #[error("storage connection string: {key} is missing")]
    Missing {
        /// The setting's name, as written in connection strings (`AccountName`).
        key: &'static str,
    },

    /// A setting's value is unusable. The reason never quotes a secret value.
    #[error("storage connection string: {key} is invalid: {reason}")]
    Invalid {
        /// The setting's name.
        key: &'static str,
        /// What is wrong with it.
        reason: String,
    },

    /// A part between two semicolons is not a `KEY=VALUE` pair. The part is not quoted: it
    /// may be a key that lost its name.
    #[error("storage connection string: part {index} (counted from 1) is not a KEY=VALUE pair")]
    NotAPair {
        /// The part's position, counted from 1.
        index: usize,
    },

    /// A setting is given twice, so which value was meant is unclear.
    #[error("storage connection string: {key} is given twice")]
    Duplicate {
        /// The setting's name.
        key: &'static str,
    },

    /// A container name breaks the service's naming rules.
    #[error("container name {name:?} is invalid: {reason}")]
    ContainerName {
        /// The name given.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },

    /// The SDK refused to build a client for a URL.
    #[error("cannot build a storage client for {url}: {reason}")]
    Client {
        /// The URL, without any SAS.
        url: String,
        /// What the SDK said.
        reason: String,
    },
}
