//! The one error type of `netherite-core`, referred to as `netherite_core::Error`.
//!
//! Errors are told apart by what the caller should do: a corrupt record means "stop this
//! partition and recover from an earlier point", a failed flush means "nothing after the last
//! good flush is durable", a fenced device means "another node owns this partition now".

/// Everything that can go wrong in the core and in the contracts it defines.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A record's checksum does not match its bytes.
    #[error("record at offset {offset} of {source_name}: checksum mismatch")]
    ChecksumMismatch {
        /// What was being read (a log, a file, a queue).
        source_name: String,
        /// Where the record starts.
        offset: u64,
    },
    /// A record names an event kind this version does not know.
    #[error("record at offset {offset} of {source_name}: unknown event kind {kind}")]
    UnknownEventKind {
        /// What was being read.
        source_name: String,
        /// Where the record starts.
        offset: u64,
        /// The kind tag found.
        kind: u32,
    },
    /// A record was written by a newer, unknown format version.
    #[error("record at offset {offset} of {source_name}: unsupported format version {version}")]
    UnsupportedVersion {
        /// What was being read.
        source_name: String,
        /// Where the record starts.
        offset: u64,
        /// The version found.
        version: u8,
    },
    /// A record's bytes passed the checksum but do not decode.
    #[error("record at offset {offset} of {source_name}: malformed body: {reason}")]
    Malformed {
        /// What was being read.
        source_name: String,
        /// Where the record starts.
        offset: u64,
        /// What the decoder said.
        reason: String,
    },
    /// A record is cut short: the buffer ends before the record does.
    ///
    /// This is what a torn or unfinished tail looks like, as opposed to corruption: the record's
    /// header is intact and says more bytes follow than there are.
    #[error("record at offset {offset} of {source_name}: truncated, {available} of {needed} bytes")]
    Truncated {
        /// What was being read.
        source_name: String,
        /// Where the record starts.
        offset: u64,
        /// How many bytes the record needs, counted from its start.
        needed: u64,
        /// How many bytes the buffer holds from the record's start.
        available: u64,
    },
    /// An event could not be encoded.
    #[error("cannot encode record: {0}")]
    Encode(String),
    /// A device or transport operation failed; retrying may help.
    #[error("{operation} failed: {reason}")]
    Io {
        /// What was attempted.
        operation: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// This node no longer owns the partition: another holder fenced it out.
    #[error("partition fenced: {0}")]
    Fenced(String),
    /// An argument broke a documented rule of a contract (misaligned offset, past the end, ...).
    #[error("invalid argument to {operation}: {reason}")]
    InvalidArgument {
        /// The operation called.
        operation: &'static str,
        /// Which rule was broken.
        reason: String,
    },
    /// A configured limit was hit.
    #[error("limit {limit} exceeded: {actual} > {max}")]
    LimitExceeded {
        /// The limit's name, as in the settings.
        limit: &'static str,
        /// The value that was asked for.
        actual: u64,
        /// The limit.
        max: u64,
    },
    /// The device or transport was closed.
    #[error("closed")]
    Closed,
}

impl Error {
    /// Whether the same call may succeed if retried later as it is: an I/O failure.
    ///
    /// A [`Error::LimitExceeded`] is not counted: whether waiting helps depends on the limit
    /// (a full queue drains, a record that is too large stays too large), which its name says.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Io { .. })
    }
}
