//! [`Lease`]: the blob lease on a device's metadata blob, the mark of its one owner.
//!
//! An open acquires the lease with a fixed duration (`lease_duration`, 30 s by default) and a
//! lease id of its own, waiting (polling once a second, up to `open_wait_max`) while another
//! owner holds it. A background task renews it every third of the duration. The lease ends in
//! one of two ways, each final for the handle:
//!
//! - **released**: the owner let go ([`Lease::release`]), so the next owner gets in at once;
//! - **lost**: the service refused it (a renewal or a leased write answered 409 or 412, the
//!   lease broken or taken by another id), or a newer owner's mark showed on a segment. It is
//!   logged once, with the blob's name; every later call of the handle is fenced, and
//!   [`Lease::lost`] wakes whoever waits for it, so that an idle owner stops too.
//!
//! A transient failure to renew loses nothing by itself: the next renewal decides, and the
//! service renews a lease that ran out as long as nobody else took it.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use azure_storage_blob::models::BlobClientAcquireLeaseOptions;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::meta::{self, Meta};
use crate::service::{Service, VANISHED_TRIES_MAX, vanished};
use crate::{Error, PageBlobOptions};

/// How often an open that waits for another owner's lease tries again.
const ACQUIRE_POLL: Duration = Duration::from_secs(1);

const HELD: u8 = 0;
const LOST: u8 = 1;
const RELEASED: u8 = 2;

/// A lease this process holds (or held) on one blob.
#[derive(Debug)]
pub(crate) struct Lease {
    service: Arc<Service>,
    blob: String,
    id: String,
    state: AtomicU8,
    /// Turns true when the lease is lost, for whoever waits on [`Lease::lost`].
    lost: watch::Sender<bool>,
    renewer: Mutex<Option<JoinHandle<()>>>,
}

impl Lease {
    /// Acquires the lease on the metadata blob `blob`, creating the blob (holding `fresh`) if
    /// it does not exist yet. While another owner holds the lease, tries again every second
    /// for up to `open_wait_max`, then fails with [`Error::LeaseHeld`]. Writes nothing while
    /// another owner holds the lease: the blob exists then, and is only created if absent.
    pub(crate) async fn acquire(
        service: &Arc<Service>,
        blob: &str,
        options: &PageBlobOptions,
        fresh: &Meta,
    ) -> Result<Arc<Lease>, Error> {
        let id = lease_id();
        let began = Instant::now();
        let (mut waiting, mut creations) = (false, 0);
        loop {
            let failure = match try_acquire(service, blob, &id, options.lease_duration).await {
                Ok(()) => return Ok(Lease::taken(service, blob, id, options.renew_every())),
                Err(failure) => failure,
            };
            if failure.is(404, "BlobNotFound") {
                if creations == VANISHED_TRIES_MAX {
                    return Err(vanished("acquire lease", blob));
                }
                creations += 1;
                meta::create(service, blob, fresh).await?;
                continue;
            }
            if !failure.is(409, "LeaseAlreadyPresent") {
                return Err(service.error("acquire lease", blob, failure));
            }
            let waited = began.elapsed();
            if waited >= options.open_wait_max {
                return Err(held(service, blob, waited).await);
            }
            if !waiting {
                waiting = true;
                let wait_max = options.open_wait_max;
                tracing::info!(
                    blob,
                    ?wait_max,
                    "page blob lease held by another owner, waiting"
                );
            }
            tokio::time::sleep(ACQUIRE_POLL.min(options.open_wait_max - waited)).await;
        }
    }

    /// A lease just acquired, with its renewer running.
    fn taken(service: &Arc<Service>, blob: &str, id: String, every: Duration) -> Arc<Lease> {
        let lease = Arc::new(Lease {
            service: Arc::clone(service),
            blob: blob.to_string(),
            id,
            state: AtomicU8::new(HELD),
            lost: watch::Sender::new(false),
            renewer: Mutex::new(None),
        });
        let task = tokio::spawn(renew_in_background(Arc::downgrade(&lease), every));
        *lease.renewer() = Some(task);
        tracing::debug!(blob, "page blob lease acquired");
        lease
    }

    fn renewer(&self) -> std::sync::MutexGuard<'_, Option<JoinHandle<()>>> {
        self.renewer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The lease id, which leased calls carry.
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// Refuses `operation` unless the lease is still held.
    pub(crate) fn check(&self, operation: &'static str) -> Result<(), Error> {
        match self.state.load(Ordering::Acquire) {
            HELD => Ok(()),
            RELEASED => Err(Error::Released {
                operation,
                blob: self.blob.clone(),
            }),
            _ => Err(Error::fenced(
                operation,
                &self.blob,
                "the lease was lost earlier",
            )),
        }
    }

    /// Marks the lease lost because `operation` failed with `error`; logged the first time.
    pub(crate) fn lose(&self, operation: &'static str, error: &Error) {
        let lost = self
            .state
            .compare_exchange(HELD, LOST, Ordering::AcqRel, Ordering::Acquire);
        if lost.is_ok() {
            self.stop_renewing();
            self.lost.send_replace(true);
            tracing::warn!(blob = %self.blob, operation, %error, "page blob lease lost: fenced");
        }
    }

    /// Resolves once the lease is lost, whether a call or the background renewal found out;
    /// never while it is held, nor after a release.
    pub(crate) async fn lost(&self) {
        let mut lost = self.lost.subscribe();
        // The sender lives in `self`, which outlives this borrow, so the wait ends only when
        // the value turns true.
        let _ = lost.wait_for(|lost| *lost).await;
    }

    /// Renews the lease now: the proof, at the service, that this owner still holds it.
    pub(crate) async fn renew(&self, operation: &'static str) -> Result<(), Error> {
        self.check(operation)?;
        let client = self.service.blob(&self.blob);
        let result = self
            .service
            .call(operation, &self.blob, || {
                client.renew_lease(self.id.clone(), None)
            })
            .await;
        let Err(failure) = result else {
            return Ok(());
        };
        // A metadata blob deleted under its lease took the lease with it.
        let error = if failure.is(404, "BlobNotFound") {
            Error::fenced(operation, &self.blob, "the metadata blob was deleted")
        } else {
            self.service.error(operation, &self.blob, failure)
        };
        if error.is_fenced() {
            self.lose(operation, &error);
        }
        Err(error)
    }

    /// Gives the lease up, so that the next owner need not wait for it to run out. The handle
    /// is fenced from the first moment on, whatever the service answers; a failure to reach
    /// it is returned (and the lease then runs out by itself).
    pub(crate) async fn release(&self) -> Result<(), Error> {
        let was = self.state.swap(RELEASED, Ordering::AcqRel);
        self.stop_renewing();
        if was != HELD {
            return Ok(());
        }
        let client = self.service.blob(&self.blob);
        let result = self
            .service
            .call("release lease", &self.blob, || {
                client.release_lease(self.id.clone(), None)
            })
            .await;
        match result {
            Ok(_) => {}
            // Not ours any more: broken, taken, or released by an earlier try of this call.
            Err(failure) if failure.is_lease_conflict() => {}
            Err(failure) => return Err(self.service.error("release lease", &self.blob, failure)),
        }
        tracing::debug!(blob = %self.blob, "page blob lease released");
        Ok(())
    }

    /// Stops renewing without releasing, as a crash would: the lease runs out by itself.
    #[cfg(feature = "testing")]
    pub(crate) fn abandon(&self) {
        self.state.store(LOST, Ordering::Release);
        self.stop_renewing();
    }

    fn stop_renewing(&self) {
        if let Some(task) = self.renewer().take() {
            task.abort();
        }
    }
}

impl Drop for Lease {
    /// A handle dropped without a release stops renewing; its lease runs out within one
    /// duration. Releasing needs a request, which a drop cannot wait for: an owner that stops
    /// cleanly calls `release`.
    fn drop(&mut self) {
        self.stop_renewing();
    }
}

/// Renews the lease every `every` while it is held and its handle lives.
async fn renew_in_background(lease: std::sync::Weak<Lease>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let Some(lease) = lease.upgrade() else {
            return;
        };
        match lease.renew("renew lease").await {
            Ok(()) => {}
            Err(error) if error.is_fenced() => return,
            Err(error) => {
                tracing::warn!(blob = %lease.blob, %error, "page blob lease renewal failed");
            }
        }
    }
}

async fn try_acquire(
    service: &Service,
    blob: &str,
    id: &str,
    duration: Duration,
) -> Result<(), crate::service::Failure> {
    let client = service.blob(blob);
    let seconds = duration.as_secs() as i32;
    service
        .call("acquire lease", blob, || {
            let options = BlobClientAcquireLeaseOptions {
                proposed_lease_id: Some(id.to_string()),
                ..Default::default()
            };
            client.acquire_lease(seconds, Some(options))
        })
        .await
        .map(drop)
}

/// The error of an open that waited `waited` for the lease on `blob` in vain, naming the
/// holder as the metadata blob tells it.
async fn held(service: &Service, blob: &str, waited: Duration) -> Error {
    let holder = match meta::read(service, blob).await {
        Ok(Some(stored)) => stored.meta.holder(),
        _ => "an owner the metadata blob does not name".to_string(),
    };
    Error::LeaseHeld {
        blob: blob.to_string(),
        holder,
        waited,
    }
}

/// A fresh lease id: the service wants a GUID; 122 random bits in its textual form.
fn lease_id() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // No random source: the clock and the process id still make ids unique per open.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        bytes = (nanos ^ (u128::from(std::process::id()) << 96)).to_le_bytes();
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lease ids have the GUID form the service requires, and differ between opens.
    #[test]
    fn lease_ids_are_guids() {
        let (a, b) = (lease_id(), lease_id());
        assert_ne!(a, b);
        let groups: Vec<usize> = a.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12]);
        assert!(a.chars().all(|c| c == '-' || c.is_ascii_hexdigit()), "{a}");
    }
}
