//! The one error type of `netherite-faster`, referred to as `netherite_faster::Error`.

/// Everything that can go wrong in the commit log and the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The device under the log or the store failed.
    #[error(transparent)]
    Device(#[from] netherite_core::Error),
}
