//! The one error type of `netherite-storage-pageblob`, referred to as `storage_pageblob::Error`.
//!
//! Every variant names the container or blob it is about, so that one log line tells an
//! operator where to look; none quotes the account key or a SAS. At the [`LogDevice`]
//! boundary an error becomes the `netherite_core::Error` of the class the contract asks for
//! (its rule 10):
//!
//! - `Fenced`: [`Error::LeaseHeld`], [`Error::Fenced`], [`Error::Released`]; another owner
//!   holds or took the device (a 409 or 412 on the lease, a newer owner's mark on a segment).
//! - `Io`: [`Error::Unavailable`], timeouts, throttling and server errors that outlasted the
//!   device's own retries, which a later call may get past; and [`Error::Refused`], an answer
//!   of the service this crate has no class for. The contract has no class for "refused for
//!   good", so it travels as `Io` too, its message naming the status and the service's code.
//! - `Malformed`: [`Error::Corrupt`], a metadata blob that does not decode.
//! - `InvalidArgument`: [`Error::ContainerNotFound`], [`Error::Denied`] and bad options, which
//!   an operator must fix.
//!
//! [`LogDevice`]: netherite_core::device::LogDevice

use std::time::Duration;

/// Everything that can go wrong opening or using a [`PageBlobDevice`](crate::PageBlobDevice).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The options or the blob prefix break a rule.
    #[error("invalid page blob device options: {0}")]
    InvalidOptions(String),

    /// The connection string or container name is unusable.
    #[error(transparent)]
    Account(#[from] netherite_azure::Error),

    /// The device was created with another segment size than the options ask for.
    #[error(
        "device {blob} was created with segment_bytes {stored}, the options ask for {requested}"
    )]
    LayoutMismatch {
        /// The metadata blob.
        blob: String,
        /// What the metadata blob says.
        stored: u64,
        /// What the options say.
        requested: u64,
    },

    /// The container does not exist: the device never creates one, an operator (or the
    /// task hub's setup) does.
    #[error("container {container:?} does not exist in storage account {account:?}")]
    ContainerNotFound {
        /// The storage account.
        account: String,
        /// The container.
        container: String,
    },

    /// The service refused the credentials: a wrong account key, a clock far off (the SAS
    /// looks expired), or an account without access.
    #[error(
        "storage account {account:?} refused access to container {container:?} ({status} \
         {code}) on {operation}: check the account key and the clock"
    )]
    Denied {
        /// The storage account.
        account: String,
        /// The container.
        container: String,
        /// What was attempted.
        operation: &'static str,
        /// The HTTP status (401 or 403).
        status: u16,
        /// The service's error code.
        code: String,
    },

    /// Another owner holds the device's lease, and the open waited as long as it was allowed to.
    #[error("device {blob} is leased by another owner ({holder}); waited {waited:?}")]
    LeaseHeld {
        /// The metadata blob, which carries the lease.
        blob: String,
        /// Who holds it, as the metadata blob tells (`pid 1234, epoch 7`).
        holder: String,
        /// How long the open waited.
        waited: Duration,
    },

    /// This handle no longer owns the device: its lease was lost, broken or taken over, or a
    /// newer owner's epoch is on a segment. The partition must stop on this node.
    #[error("{operation} on {blob} refused: fenced, {reason}")]
    Fenced {
        /// What was attempted.
        operation: &'static str,
        /// The blob the service refused the call on.
        blob: String,
        /// How the fence showed.
        reason: String,
    },

    /// This handle gave up ownership ([`release`](netherite_core::device::LogDevice::release)).
    #[error("{operation} on the device of {blob}: this handle was released")]
    Released {
        /// What was attempted.
        operation: &'static str,
        /// The device's metadata blob, whose lease was released.
        blob: String,
    },

    /// A truncation passed the range of a read or write while it ran, and deleted its
    /// segment: the range is gone, as if the call had come after the truncation.
    #[error("{operation} of {blob}: truncated meanwhile")]
    Truncated {
        /// What was attempted.
        operation: &'static str,
        /// The segment that was deleted.
        blob: String,
    },

    /// A blob of the device does not hold what the layout requires.
    #[error("corrupt device blob {blob}: {reason}")]
    Corrupt {
        /// The blob.
        blob: String,
        /// What is wrong.
        reason: String,
    },

    /// The service answered with an error that retrying does not change.
    #[error("{operation} on {blob} failed: {status} {code}: {message}")]
    Refused {
        /// What was attempted.
        operation: &'static str,
        /// The blob (or container).
        blob: String,
        /// The HTTP status.
        status: u16,
        /// The service's error code.
        code: String,
        /// The SDK's message, any SAS redacted.
        message: String,
    },

    /// Every try failed with a timeout, throttling, a server error or a broken connection.
    #[error("{operation} on {blob} failed after {attempts} tries: {reason}")]
    Unavailable {
        /// What was attempted.
        operation: &'static str,
        /// The blob (or container).
        blob: String,
        /// How many tries were made.
        attempts: u32,
        /// The last failure, any SAS redacted.
        reason: String,
    },
}

impl Error {
    /// Whether this error means another owner has the device, so the handle must stop.
    pub fn is_fenced(&self) -> bool {
        matches!(
            self,
            Error::LeaseHeld { .. } | Error::Fenced { .. } | Error::Released { .. }
        )
    }

    pub(crate) fn fenced(operation: &'static str, blob: &str, reason: impl Into<String>) -> Error {
        Error::Fenced {
            operation,
            blob: blob.to_string(),
            reason: reason.into(),
        }
    }

    pub(crate) fn corrupt(blob: &str, reason: impl Into<String>) -> Error {
        Error::Corrupt {
            blob: blob.to_string(),
            reason: reason.into(),
        }
    }
}

impl From<Error> for netherite_core::Error {
    fn from(error: Error) -> netherite_core::Error {
        use netherite_core::Error as Core;

        let message = error.to_string();
        match error {
            Error::InvalidOptions(_)
            | Error::Account(_)
            | Error::LayoutMismatch { .. }
            | Error::ContainerNotFound { .. } => Core::InvalidArgument {
                operation: "open",
                reason: message,
            },
            Error::Denied { operation, .. } | Error::Truncated { operation, .. } => {
                Core::InvalidArgument {
                    operation,
                    reason: message,
                }
            }
            Error::Corrupt { blob, .. } => Core::Malformed {
                source_name: blob,
                offset: 0,
                reason: message,
            },
            Error::Refused { operation, .. } | Error::Unavailable { operation, .. } => Core::Io {
                operation,
                reason: message,
            },
            Error::LeaseHeld { .. } | Error::Fenced { .. } | Error::Released { .. } => {
                Core::Fenced(message)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each class of failure reaches the engine as the class the contract gives it, with the
    /// blob or container named in the message.
    #[test]
    fn errors_map_to_the_contract_classes() {
        use netherite_core::Error as Core;

        let fenced = Error::fenced("write", "p/segment-0", "a newer owner's epoch");
        assert!(matches!(Core::from(fenced), Core::Fenced(m) if m.contains("p/segment-0")));
        let held = Error::LeaseHeld {
            blob: "p/meta".into(),
            holder: "pid 7, epoch 2".into(),
            waited: Duration::from_secs(1),
        };
        assert!(matches!(Core::from(held), Core::Fenced(m) if m.contains("pid 7")));

        let busy = Error::Unavailable {
            operation: "write",
            blob: "p/segment-0".into(),
            attempts: 5,
            reason: "503 ServerBusy".into(),
        };
        let core = Core::from(busy);
        assert!(core.is_retryable(), "{core}");

        let missing = Error::ContainerNotFound {
            account: "acct".into(),
            container: "hub".into(),
        };
        assert!(
            matches!(Core::from(missing), Core::InvalidArgument { reason, .. }
            if reason.contains("\"hub\""))
        );
        let corrupt = Error::corrupt("p/meta", "bad checksum");
        assert!(matches!(Core::from(corrupt), Core::Malformed { .. }));
    }
}
