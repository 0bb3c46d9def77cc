//! A [`LogDevice`] over Azure page blobs: one device is the blobs under one name prefix of a
//! container (`hub/p03/log/`), fenced by a blob lease and by its owner's epoch.
//!
//! A device is fixed-size page blobs (segments, 1 GiB by default, created on first use) and a
//! small block blob of metadata: the segment size, the truncation point, how many segments may
//! exist, and the epoch and name of the last owner. The main decisions:
//!
//! - **Writes are put-pages requests**, split at segment boundaries and at the service's 4 MiB
//!   per-request limit, several in flight at once. The service persists a put-pages before it
//!   answers, so a write that returned is already durable; a read is a ranged download.
//! - **A flush proves ownership.** Rule 4 of the contract promises durability only after a
//!   flush, and that holds here trivially; what a flush adds is rule 8: a flush of a handle
//!   another owner has fenced must fail. So a flush renews the lease, one small request, and
//!   fails as fenced when the service refuses it. A flush that fails for any other reason is a
//!   retryable I/O error (rule 5); the writes before it stay readable, and were in fact stored.
//! - **The fence is a lease on the metadata blob plus an epoch on every segment.** The lease
//!   (30 s by default, renewed every 10 s in the background, released on `release`) keeps a
//!   second owner out while the first lives: an open waits for it up to `open_wait_max`, then
//!   fails as fenced. Every metadata write carries the lease id and the ETag last seen. The
//!   segments are not leased (renewing one lease per segment does not scale); instead each new
//!   owner takes the next epoch, marks every segment with it as the page blob's sequence
//!   number, and conditions each of its writes on `sequence number <= epoch`. An owner that
//!   lost its lease without noticing (paused, partitioned) is refused by the service at its
//!   next write, with no clock involved. See `segments` for the details and for deletes.
//! - **The size is recovered, not stored**: it is the end of the highest written page of the
//!   highest segment, read from the service's page ranges at open, after the new epoch is on
//!   every segment. Only truncation and the creation of a segment write the metadata.
//! - **Truncation** records the new point in the metadata (under the lease, If-Match), then
//!   deletes the segments wholly below it; deletes a crash cut short are redone at the next
//!   open.
//! - **Retries live inside the device**: every request is bounded by `request_timeout` and
//!   tried up to `attempts_max` times with doubling backoff when it timed out, was throttled
//!   (408, 429) or met a server error (500, 502, 503, 504) or a broken connection; after that
//!   the call fails with a retryable `Io`. The SDK's own retries are off. See [`Error`] for how
//!   every other answer maps to the contract's classes: a 409 or 412 on a lease or an epoch is
//!   `Fenced`, a missing container and refused credentials name what is wrong.
//!
//! Authentication is an account SAS signed from the connection string's key by
//! `netherite-azure`, re-signed as it ages. Feature `testing` adds `testing::PageBlobFixture`,
//! which runs the core's conformance suite against a real service or Azurite.
//!
//! # Limitations
//!
//! - A crashed owner's device can be opened again only once its lease ran out: up to
//!   `lease_duration` (30 s) after the crash. An owner that stops cleanly releases at once.
//! - A write far past the end creates every segment below it first (no holes), so the device
//!   bounds the bytes above its truncation point (`device_bytes_max`, 64 TiB).
//! - The size is recovered from the page ranges the service reports; a range of zeros that was
//!   written counts as written.
//! - Page blobs need a general-purpose (v2) or premium page-blob account; accounts with a
//!   hierarchical namespace (Data Lake) do not offer them.
//!
//! [`LogDevice`]: netherite_core::device::LogDevice

mod device;
mod error;
mod layout;
mod lease;
mod meta;
mod open;
mod options;
mod record;
mod segments;
mod service;
#[cfg(feature = "testing")]
pub mod testing;

pub use device::PageBlobDevice;
pub use error::Error;
pub use options::{
    ALIGNMENT, DEVICE_BYTES_MAX_DEFAULT, LEASE_DURATION_DEFAULT, OWNER_BYTES_MAX, PUT_BYTES_MAX,
    PageBlobOptions, SEGMENT_BYTES_DEFAULT, SEGMENT_BYTES_MAX,
};
pub use record::{create_container, write_once};
