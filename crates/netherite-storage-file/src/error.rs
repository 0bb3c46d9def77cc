//! The one error type of `netherite-storage-file`, referred to as `storage_file::Error`.
//!
//! Every variant names the file it is about, and the offset where bytes are involved, so that
//! one log line tells an operator where to look. At the [`LogDevice`] boundary an error becomes
//! the `netherite_core::Error` of the class the contract asks for (its rule 10): a lock held by
//! another owner, or a lease another owner took over, is `Fenced`, a full disk is
//! `LimitExceeded`, a corrupt file (a lease file included) is `Malformed`,
//! bad options are `InvalidArgument`, and every other failure is a retryable `Io`. A directory
//! deleted or moved from under an open handle is `Fenced` too: whoever opens the path next
//! gets other files, so this handle no longer owns the partition's bytes.
//!
//! [`LogDevice`]: netherite_core::device::LogDevice

use std::io;
use std::path::{Path, PathBuf};

/// Everything that can go wrong opening or using a [`FileDevice`](crate::FileDevice).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The options break a rule (alignment not a power of two, segment size not a multiple of
    /// the alignment).
    #[error("invalid file device options: {0}")]
    InvalidOptions(String),

    /// The device directory cannot be created or opened: a path under a regular file, a
    /// read-only file system, missing permission.
    #[error("device directory {} cannot be created or opened: {source}", .path.display())]
    Directory {
        /// The directory.
        path: PathBuf,
        /// What the file system said.
        source: io::Error,
    },

    /// Another owner, in this process or another, holds the directory's lock.
    #[error(
        "device directory {} is locked by another owner ({holder}); lock file {}",
        .dir.display(),
        .lock.display()
    )]
    Locked {
        /// The directory.
        dir: PathBuf,
        /// The lock file.
        lock: PathBuf,
        /// Who holds the lock, as far as the lock file tells (`pid 1234`).
        holder: String,
    },

    /// Another owner took the lease over: the lease file holds a newer epoch than this owner's.
    /// The partition must stop on this node.
    #[error(
        "{operation} refused: lease {} was taken over; this owner holds epoch {epoch}, the \
         lease file says epoch {holder_epoch} held by {holder:?}",
        .path.display()
    )]
    LeaseLost {
        /// What was attempted.
        operation: &'static str,
        /// The lease file.
        path: PathBuf,
        /// This owner's epoch.
        epoch: u64,
        /// The epoch in the lease file.
        holder_epoch: u64,
        /// The owner the lease file names.
        holder: String,
    },

    /// This owner released its lease ([`Lease::release`](crate::Lease::release)); another
    /// owner may hold it now.
    #[error("{operation} refused: lease {} was released by this owner", .path.display())]
    LeaseReleased {
        /// What was attempted.
        operation: &'static str,
        /// The lease file.
        path: PathBuf,
    },

    /// This handle gave up ownership ([`release`](netherite_core::device::LogDevice::release));
    /// another owner may hold the directory now.
    #[error("{operation} on device directory {}: this handle was released", .dir.display())]
    Released {
        /// What was attempted.
        operation: &'static str,
        /// The directory.
        dir: PathBuf,
    },

    /// The file system has no room left (no space, or a quota is used up).
    #[error(
        "disk full: no space left writing {} at file offset {offset}: {source}",
        .path.display()
    )]
    DiskFull {
        /// The file being written.
        path: PathBuf,
        /// The offset in that file where the file system refused bytes.
        offset: u64,
        /// The offset on the device that file offset stands for.
        device_offset: u64,
        /// The end of the device range the write needed.
        device_end: u64,
        /// What the file system said.
        source: io::Error,
    },

    /// A file of the device does not hold what the layout requires.
    #[error("corrupt device file {} at offset {offset}: {reason}", .path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Where in the file the problem starts.
        offset: u64,
        /// What is wrong.
        reason: String,
    },

    /// The directory was created with another layout than the options ask for.
    #[error(
        "device directory {} was created with {field} {stored}, the options ask for {requested}",
        .dir.display()
    )]
    LayoutMismatch {
        /// The directory.
        dir: PathBuf,
        /// The option that differs (`alignment`, `segment_bytes`).
        field: &'static str,
        /// What the directory's metadata file says.
        stored: u64,
        /// What the options say.
        requested: u64,
    },

    /// An earlier `fdatasync` of this file failed, so writes that read back may not be on the
    /// disk; this handle refuses to report any later flush as good.
    #[error(
        "an earlier fdatasync of {} failed; unflushed writes may be lost, reopen the device",
        .path.display()
    )]
    Poisoned {
        /// The file whose sync failed.
        path: PathBuf,
    },

    /// A file of the device, or its directory, was deleted or moved while the device was
    /// open. Writes there still succeed, but a reopen would not find them, so this handle
    /// refuses every later flush; the partition must stop until an operator looks. A lease
    /// file deleted or replaced under its holder is reported so too: the new file's epochs
    /// say nothing about the old ones.
    #[error("device file {} was deleted or moved while open: {reason}", .path.display())]
    Gone {
        /// The file or directory.
        path: PathBuf,
        /// What was found instead.
        reason: String,
    },

    /// A file operation failed; retrying may help.
    #[error("{operation} of {} at offset {offset} failed: {source}", .path.display())]
    Io {
        /// What was attempted.
        operation: &'static str,
        /// The file.
        path: PathBuf,
        /// The offset in the file (0 for operations on the whole file).
        offset: u64,
        /// What the file system said.
        source: io::Error,
    },

    /// The blocking task running the file operation panicked or was cancelled.
    #[error("{operation} on device directory {}: blocking task failed: {reason}", .dir.display())]
    Task {
        /// What was attempted.
        operation: &'static str,
        /// The directory.
        dir: PathBuf,
        /// What the runtime said.
        reason: String,
    },
}

impl Error {
    /// A failed file operation at `offset` of `path`; a full disk becomes [`Error::DiskFull`]
    /// only through [`Error::write`], which knows the device range.
    pub(crate) fn io(
        operation: &'static str,
        path: &Path,
        offset: u64,
        source: io::Error,
    ) -> Error {
        Error::Io {
            operation,
            path: path.to_path_buf(),
            offset,
            source,
        }
    }

    /// A failed `operation` (a write, or making room for one) of `path` at file `offset`,
    /// standing for `device_offset`, during a device write that needed to reach `device_end`.
    pub(crate) fn write(
        operation: &'static str,
        path: &Path,
        offset: u64,
        (device_offset, device_end): (u64, u64),
        source: io::Error,
    ) -> Error {
        if !is_disk_full(&source) {
            return Error::io(operation, path, offset, source);
        }
        Error::DiskFull {
            path: path.to_path_buf(),
            offset,
            device_offset,
            device_end,
            source,
        }
    }
}

/// Whether the file system refused bytes for want of space.
fn is_disk_full(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    )
}

impl From<Error> for netherite_core::Error {
    fn from(error: Error) -> netherite_core::Error {
        use netherite_core::Error as Core;

        let message = error.to_string();
        match error {
            Error::InvalidOptions(_) | Error::LayoutMismatch { .. } => Core::InvalidArgument {
                operation: "open",
                reason: message,
            },
            Error::Locked { .. }
            | Error::LeaseLost { .. }
            | Error::LeaseReleased { .. }
            | Error::Released { .. }
            | Error::Gone { .. } => Core::Fenced(message),
            Error::DiskFull {
                path,
                offset,
                device_offset,
                device_end,
                ..
            } => disk_full(&path, offset, device_offset, device_end, message),
            Error::Corrupt { path, offset, .. } => Core::Malformed {
                source_name: path.display().to_string(),
                offset,
                reason: message,
            },
            Error::Directory { .. } => io_error("open", message),
            Error::Poisoned { .. } => io_error("flush", message),
            Error::Io { operation, .. } | Error::Task { operation, .. } => {
                io_error(operation, message)
            }
        }
    }
}

fn io_error(operation: &'static str, reason: String) -> netherite_core::Error {
    netherite_core::Error::Io { operation, reason }
}

/// The contract's class for a full device is `LimitExceeded` (rule 10), whose fields cannot
/// carry a path; the path and the file offset go to the log, where an operator needs them.
fn disk_full(
    path: &Path,
    offset: u64,
    device_offset: u64,
    device_end: u64,
    message: String,
) -> netherite_core::Error {
    tracing::error!(
        path = %path.display(),
        file_offset = offset,
        device_offset,
        error = message,
        "file device: disk full"
    );
    netherite_core::Error::LimitExceeded {
        limit: "disk_space",
        actual: device_end,
        max: device_offset,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A full disk, however the OS words it, is told apart from other write failures, names
    /// the file and offset, and reaches the engine as the contract's "device is full".
    #[test]
    fn a_full_disk_is_its_own_error() {
        let path = Path::new("/data/p3/segment-000000000001");
        for kind in [io::ErrorKind::StorageFull, io::ErrorKind::QuotaExceeded] {
            let error = Error::write("write", path, 8192, (8192 + 4096, 1 << 20), kind.into());
            let text = error.to_string();
            assert!(text.contains("disk full"), "{text}");
            assert!(
                text.contains("segment-000000000001 at file offset 8192"),
                "{text}"
            );

            let core = netherite_core::Error::from(error);
            assert!(matches!(
                core,
                netherite_core::Error::LimitExceeded {
                    limit: "disk_space",
                    actual: 1048576,
                    max: 12288
                }
            ));
        }
    }

    /// Other write failures stay retryable I/O errors that name the file and offset.
    #[test]
    fn other_write_failures_are_retryable_io() {
        let path = Path::new("/data/p3/segment-000000000001");
        let error = Error::write(
            "write",
            path,
            4096,
            (4096, 8192),
            io::ErrorKind::Other.into(),
        );
        let core = netherite_core::Error::from(error);
        assert!(core.is_retryable());
        let text = core.to_string();
        assert!(
            text.contains("segment-000000000001 at offset 4096"),
            "{text}"
        );
    }

    /// A lock held elsewhere is the contract's `Fenced`, naming the directory.
    #[test]
    fn a_held_lock_is_fenced() {
        let error = Error::Locked {
            dir: "/data/p3".into(),
            lock: "/data/p3/LOCK".into(),
            holder: "pid 42".into(),
        };
        let core = netherite_core::Error::from(error);
        let netherite_core::Error::Fenced(text) = core else {
            panic!("expected Fenced, got {core:?}");
        };
        assert!(
            text.contains("/data/p3 is locked") && text.contains("pid 42"),
            "{text}"
        );
    }

    /// A lease taken over is the contract's `Fenced`, naming the lease file, this owner's
    /// epoch and the holder's.
    #[test]
    fn a_lost_lease_is_fenced() {
        let error = Error::LeaseLost {
            operation: "write",
            path: "/v/p3/LEASE".into(),
            epoch: 4,
            holder_epoch: 5,
            holder: "node-b".into(),
        };
        let core = netherite_core::Error::from(error);
        let netherite_core::Error::Fenced(text) = core else {
            panic!("expected Fenced, got {core:?}");
        };
        for part in ["/v/p3/LEASE", "epoch 4", "epoch 5", "\"node-b\"", "write"] {
            assert!(text.contains(part), "{part}: {text}");
        }
    }

    /// A corrupt file keeps its path and offset through the conversion.
    #[test]
    fn corruption_keeps_file_and_offset() {
        let error = Error::Corrupt {
            path: "/data/p3/meta".into(),
            offset: 36,
            reason: "checksum mismatch".into(),
        };
        let core = netherite_core::Error::from(error);
        let netherite_core::Error::Malformed {
            source_name,
            offset,
            ..
        } = core
        else {
            panic!("expected Malformed, got {core:?}");
        };
        assert_eq!((source_name.as_str(), offset), ("/data/p3/meta", 36));
    }
}
