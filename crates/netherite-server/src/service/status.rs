//! One gRPC status for every engine error.
//!
//! The codes follow what the SDKs test for: `NOT_FOUND` for an unknown instance,
//! `ALREADY_EXISTS` for a start whose id is taken, `FAILED_PRECONDITION` for a call the
//! instance's status forbids, `DEADLINE_EXCEEDED` for a wait that ran out of time (the Python
//! client turns it into `TimeoutError`), `INVALID_ARGUMENT` for a malformed request,
//! `RESOURCE_EXHAUSTED` for a payload or a partition limit, `UNAVAILABLE` while the engine or a
//! partition is not serving (workers and clients retry), and `INTERNAL` for the rest, which
//! needs a look at the server's log.

use netherite::Error;
use tonic::Status;

/// The longest message a status carries: messages quote ids, and a huge id must not turn a
/// `NOT_FOUND` into a refused header (gRPC limits the status message with the headers).
pub const STATUS_MESSAGE_BYTES_MAX: usize = 1024;

/// `message` cut to [`STATUS_MESSAGE_BYTES_MAX`] bytes at a character boundary, marked `…`.
pub(crate) fn bounded(mut message: String) -> String {
    if message.len() > STATUS_MESSAGE_BYTES_MAX {
        let mut end = STATUS_MESSAGE_BYTES_MAX;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push('…');
    }
    message
}

/// The status a client gets for `error`.
pub fn status_of(error: &Error) -> Status {
    let message = bounded(error.to_string());
    match error {
        Error::NotFound { .. } => Status::not_found(message),
        Error::AlreadyExists { .. } => Status::already_exists(message),
        Error::FailedPrecondition { .. } => Status::failed_precondition(message),
        Error::Timeout { .. } => Status::deadline_exceeded(message),
        Error::InvalidRequest { .. } | Error::Serialize { .. } | Error::Deserialize { .. } => {
            Status::invalid_argument(message)
        }
        Error::PayloadTooLarge { .. } | Error::PartitionLimit { .. } => {
            Status::resource_exhausted(message)
        }
        Error::Closed(_) | Error::PartitionStopped { .. } | Error::PartitionNotHosted { .. } => {
            Status::unavailable(message)
        }
        _ => {
            tracing::error!(%error, "request failed inside the engine");
            Status::internal(message)
        }
    }
}
