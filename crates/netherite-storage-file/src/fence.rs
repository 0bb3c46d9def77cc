//! The fence a device handle holds while it owns its directory, in one of two modes.
//!
//! - **Directory lock** ([`FileDevice::open`](crate::FileDevice::open), the default): an
//!   exclusive `flock` on the directory's lock file, held from open to release (see `lock`).
//!   Operations run without further checks; the kernel keeps every other owner out for as
//!   long as the holder lives, however long that is.
//! - **Lease** ([`FileDevice::open_leased`](crate::FileDevice::open_leased)): a [`Lease`]
//!   shared by the devices of a partition. Every operation runs under a lease guard that
//!   checks the lease's epoch first, so an owner paused past its lease is refused once another
//!   node took it over (see `lease`).

use std::fmt;
use std::sync::Arc;

use crate::lock::DirLock;
use crate::{Error, Lease};

/// What makes a device handle its directory's only writer.
#[derive(Debug)]
pub(crate) enum Fence {
    /// The directory lock, held until dropped.
    Dir(DirLock),
    /// The partition's lease, checked by every operation.
    Lease(Arc<Lease>),
}

impl Fence {
    /// Runs `work` as the owner: at once under a directory lock, under a guard with a lease.
    pub(crate) fn run<T>(
        &self,
        operation: &'static str,
        work: impl FnOnce() -> Result<T, Error>,
    ) -> Result<T, Error> {
        match self {
            Fence::Dir(_) => work(),
            Fence::Lease(lease) => lease.guard(operation, work),
        }
    }
}

/// Names the fence for logs: the lock file, or the lease file and epoch.
impl fmt::Display for Fence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fence::Dir(lock) => write!(f, "lock {}", lock.path().display()),
            Fence::Lease(lease) => {
                write!(
                    f,
                    "lease {} epoch {}",
                    lease.path().display(),
                    lease.epoch()
                )
            }
        }
    }
}
