//! Ownership proposals from ownership records, the way the Event Hubs processor keeps them.
//!
//! Each partition has at most one record in an [`OwnershipStore`]: who owns it (or nobody,
//! after a release), when the record was last written, and an ETag that changes with every
//! write. Nodes never overwrite blindly: a claim names the ETag it read (or "no record yet"),
//! and fails if the record changed since, so two nodes racing for a partition cannot both win
//! one round. Owners rewrite their records every round; a record not rewritten for the expiry
//! is free for anyone to claim. The records live in blob storage, one blob per partition, with
//! the owner in its metadata and the blob's ETag and last-modified time (see the blob-backed
//! store of the `eventhubs` feature).
//!
//! Every node runs the same loop (module `task`): list the records, decide what to claim
//! (module `balancer`), claim it, and turn what it won and lost into [`Ownership`] proposals.
//!
//! ```text
//!   one round of node n, every `interval`:
//!     list ──> plan: renew what n owns; claim free partitions up to n's fair share;
//!              steal one partition from the most loaded owner if n is below its share
//!          ──> claim each, conditionally on the ETag listed
//!          ──> won: n holds it (Acquired if new); conflict: someone else was first (Lost if n
//!              held it); error: n keeps it only until its record could have expired
//! ```
//!
//! This is a proposal only (rule 7 of the transport contract): a node that stalls past the
//! expiry may still believe it owns a partition another node claimed. The storage fence
//! decides who writes.
//!
//! [`Ownership`]: netherite_core::transport::Ownership

mod balancer;
#[cfg(feature = "testing")]
pub mod conformance;
mod memory;
mod task;

use std::fmt;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use netherite_core::transport::NodeId;
use netherite_core::{Error, PartitionId};

pub(crate) use self::balancer::Balancer;
pub use self::memory::MemoryOwnershipStore;
pub(crate) use self::task::OwnershipTask;

/// A record's version: any write changes it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ETag(pub String);

impl fmt::Display for ETag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One partition's ownership record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnershipRecord {
    /// The partition.
    pub partition: PartitionId,
    /// Who claimed it last; `None` once its owner released it.
    pub owner: Option<NodeId>,
    /// The record's version.
    pub etag: ETag,
    /// When the record was last written, by the store's clock.
    pub last_modified: SystemTime,
}

/// What a conditional claim came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claimed {
    /// The record was written; here it is as it is now.
    Won(OwnershipRecord),
    /// The record was not as expected (another node wrote it first); nothing changed.
    Conflict,
}

/// Where ownership records are kept.
///
/// Rules every implementation keeps:
///
/// 1. **One record per partition**, created by the first claim of it and never deleted.
/// 2. **Conditional writes.** [`claim`](Self::claim) writes only if the record's ETag is
///    `expected`, or, with `expected` `None`, only if the partition has no record yet. The
///    check and the write are one atomic step: of two claims expecting the same ETag, at most
///    one wins. A write that wins gives the record a new ETag and stamps `last_modified`
///    with the store's time, which never goes back.
/// 3. **Listing** returns every record as of one moment, at most one per partition.
/// 4. **Errors.** [`Error::Io`]: the outcome of a claim is unknown (it may have been
///    written); retry later. A lost race is not an error but [`Claimed::Conflict`].
#[async_trait]
pub trait OwnershipStore: Send + Sync + fmt::Debug {
    /// Every record there is.
    async fn list(&self) -> Result<Vec<OwnershipRecord>, Error>;

    /// Makes `owner` (or nobody) the owner of `partition` if its record is as `expected`.
    async fn claim(
        &self,
        partition: PartitionId,
        owner: Option<&NodeId>,
        expected: Option<&ETag>,
    ) -> Result<Claimed, Error>;
}

/// How often a node runs its round, and how long a record lives without being rewritten.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OwnershipTimings {
    /// The time between two rounds of a node. Default 10 s.
    pub interval: Duration,
    /// How long after its last write a record is free to claim. It must exceed the interval
    /// by more than a round takes and the clocks of nodes and storage differ. Default 30 s.
    pub expiry: Duration,
}

impl Default for OwnershipTimings {
    fn default() -> Self {
        OwnershipTimings {
            interval: Duration::from_secs(10),
            expiry: Duration::from_secs(30),
        }
    }
}

impl OwnershipTimings {
    /// Refuses timings under which owners could not keep their records alive.
    pub(crate) fn check(&self) -> Result<(), Error> {
        if self.interval.is_zero() || self.expiry <= self.interval {
            return Err(Error::InvalidArgument {
                operation: "eventhubs connect",
                reason: format!(
                    "the ownership expiry ({:?}) must exceed the interval ({:?}), which must not \
                     be zero",
                    self.expiry, self.interval
                ),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
