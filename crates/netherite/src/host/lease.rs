//! Claiming a partition's lease on a shared data directory, and keeping it.
//!
//! [`acquire_waiting`] claims the lease of a partition for this node, waiting while another
//! node's claim is live: it gives the partition up on a graceful stop (the claim is then free
//! at once) or stops renewing when it dies (free once the claim runs out). The
//! [`LeaseKeeper`] renews the claim every quarter of its length in the background, and is the
//! partition's [`PartitionFence`]: it reports a claim taken over by another node, so that the
//! partition stops at once instead of at its next write.
//!
//! The lease file itself, its epoch and the check every device call makes are
//! `netherite_storage_file::Lease`'s.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use netherite_core::PartitionId;
use netherite_storage_file::{Acquired, Lease};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use super::storage::PartitionFence;
use crate::Error;

/// The longest pause between two attempts to claim a lease another node holds: a claim given
/// up on a graceful stop is seen this soon.
const CLAIM_POLL_MAX: Duration = Duration::from_millis(200);

/// Claims the lease at `path` for `owner`, waiting while another node holds it.
pub(crate) async fn acquire_waiting(
    partition: PartitionId,
    path: PathBuf,
    owner: &str,
    ttl: Duration,
) -> Result<Arc<Lease>, Error> {
    let mut logged = false;
    loop {
        let attempt = try_acquire(partition, path.clone(), owner.to_string(), ttl).await?;
        match attempt.map_err(|source| lease_error(partition, "claiming", source))? {
            Acquired::Taken(lease) => {
                tracing::info!(partition = %partition, epoch = lease.epoch(), owner,
                    "partition lease claimed");
                return Ok(Arc::new(lease));
            }
            Acquired::Held {
                owner: holder,
                epoch,
                expires_in,
            } => {
                if !logged {
                    tracing::info!(partition = %partition, %holder, epoch, ?expires_in,
                        "partition lease held by another node; waiting");
                    logged = true;
                }
                tokio::time::sleep(expires_in.clamp(Duration::from_millis(10), CLAIM_POLL_MAX))
                    .await;
            }
        }
    }
}

/// One attempt to take the lease, on a blocking thread. Safe to cancel: a lease taken after
/// the caller stopped waiting (its partition's start was called off) is given back at once,
/// so that the next owner need not wait for it to run out.
async fn try_acquire(
    partition: PartitionId,
    path: PathBuf,
    owner: String,
    ttl: Duration,
) -> Result<Result<Acquired, netherite_storage_file::Error>, Error> {
    let (answer, answered) = oneshot::channel();
    tokio::task::spawn_blocking(move || {
        let attempt = Lease::acquire(&path, &owner, ttl);
        if let Err(Ok(Acquired::Taken(lease))) = answer.send(attempt) {
            give_up(partition, &lease);
        }
    });
    answered
        .await
        .map_err(|_| Error::Closed(format!("claiming the lease of {partition}: the task died")))
}

/// Renews a claimed lease in the background, and gives it up.
#[derive(Debug)]
pub(crate) struct LeaseKeeper {
    partition: PartitionId,
    lease: Arc<Lease>,
    lost: watch::Receiver<bool>,
    renewer: JoinHandle<()>,
    released: AtomicBool,
}

impl LeaseKeeper {
    /// Starts renewing `lease` every quarter of its length.
    pub(crate) fn start(partition: PartitionId, lease: Arc<Lease>) -> LeaseKeeper {
        let (lost_tx, lost) = watch::channel(false);
        let renewer = tokio::spawn(renew(partition, lease.clone(), lost_tx));
        LeaseKeeper {
            partition,
            lease,
            lost,
            renewer,
            released: AtomicBool::new(false),
        }
    }
}

/// The shortest pause between two renewals, whatever the lease's length.
const RENEW_PAUSE_MIN: Duration = Duration::from_millis(100);

/// Renews until the lease is lost; a renewal that fails otherwise is tried again next time
/// (the claim runs out if they keep failing, and the epoch check then fences this node).
async fn renew(partition: PartitionId, lease: Arc<Lease>, lost: watch::Sender<bool>) {
    let every = (lease.ttl() / 4).max(RENEW_PAUSE_MIN);
    loop {
        tokio::time::sleep(every).await;
        let renewing = lease.clone();
        let renewed = tokio::task::spawn_blocking(move || renewing.renew()).await;
        match renewed {
            Ok(Ok(())) => {}
            Ok(Err(error)) if claim_gone(&error) => {
                tracing::warn!(partition = %partition, epoch = lease.epoch(), %error,
                    "partition lease lost");
                let _ = lost.send(true);
                return;
            }
            Err(error) => {
                // A renewal that panicked cannot vouch for the claim: stop as if it were lost.
                tracing::error!(partition = %partition, %error, "partition lease renewal died");
                let _ = lost.send(true);
                return;
            }
            Ok(Err(error)) => {
                tracing::warn!(partition = %partition, %error, "partition lease renewal failed");
            }
        }
    }
}

/// Whether a renewal failed because the claim is gone for good: taken over, given up, or its
/// file deleted or replaced.
fn claim_gone(error: &netherite_storage_file::Error) -> bool {
    use netherite_storage_file::Error as E;
    matches!(
        error,
        E::LeaseLost { .. } | E::LeaseReleased { .. } | E::Gone { .. }
    )
}

#[async_trait]
impl PartitionFence for LeaseKeeper {
    async fn lost(&self) {
        let mut lost = self.lost.clone();
        let _ = lost.wait_for(|lost| *lost).await;
        if !*lost.borrow() {
            // The renewer ended without losing the lease: the claim was given up.
            std::future::pending::<()>().await;
        }
    }

    async fn release(&self) {
        self.renewer.abort();
        if self.released.swap(true, Ordering::AcqRel) {
            return;
        }
        let (partition, lease) = (self.partition, self.lease.clone());
        let _ = tokio::task::spawn_blocking(move || give_up(partition, &lease)).await;
    }
}

impl Drop for LeaseKeeper {
    /// A keeper dropped without a release (its partition's start was cancelled, or its host
    /// aborted) gives the claim up too, so that the next owner need not wait for it to run
    /// out. The devices' calls still in flight finish first: the release waits for them.
    fn drop(&mut self) {
        self.renewer.abort();
        if self.released.swap(true, Ordering::AcqRel) {
            return;
        }
        let (partition, lease) = (self.partition, self.lease.clone());
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(move || give_up(partition, &lease))),
            Err(_) => give_up(partition, &lease),
        }
    }
}

/// Releases `lease`, logging the outcome (a release that fails leaves the claim to run out).
fn give_up(partition: PartitionId, lease: &Lease) {
    match lease.release() {
        Ok(()) => tracing::info!(partition = %partition, epoch = lease.epoch(),
            "partition lease given up"),
        Err(error) => {
            tracing::warn!(partition = %partition, %error, "partition lease release failed");
        }
    }
}

fn lease_error(
    partition: PartitionId,
    doing: &str,
    source: netherite_storage_file::Error,
) -> Error {
    Error::Storage {
        partition,
        what: format!("{doing} the partition lease"),
        source: Box::new(source),
    }
}
