//! A [`Transport`] over Azure Event Hubs.
//!
//! A task hub with `P` partitions uses, in one Event Hubs namespace and one blob container:
//!
//! ```text
//!  event hub "partitions"   P partitions   netherite partition p's input is partition p
//!  event hub "clients"      R partitions   client c's responses go to partition c mod R
//!                                          (folded); a client's reader skips the others'
//!  container, <hub>/aside/p<p>/...         blob batches: payloads too large for an event
//!  container, <namespace>/<hub>/<group>/ownership/<p>
//!                                          ownership records, one blob per partition
//! ```
//!
//! - **Positions are sequence numbers** (module `position`): the engine keeps them in its
//!   checkpoints and resumes exactly there; the SDK's checkpoint store is not used.
//! - **Sends** are batched to the partition, as few Event Hubs batches as the size limit
//!   allows, in order (module `batching`); the durability point is the acknowledgement of the
//!   last batch. Event Hubs does not say which sequence numbers it gave, so a node sends to a
//!   partition one call at a time and reads the partition's last sequence number before and
//!   after; when others sent in between it reads its events back by their tags (module
//!   `resolve`).
//! - **Large payloads** go aside into one blob per send, with a reference in the queue at each
//!   payload's place (module `aside`). An event is *processed* once the engine called
//!   `discard_before` with a position above it (it does so after a checkpoint covers the
//!   event, and never reads below that point again). A blob is deleted once every event that
//!   refers to it is processed, as far as the reader of this node saw those events; blobs that
//!   escape that (a crash, a send that failed halfway) are swept once older than
//!   `aside_retention`. A reference whose blob is gone (a copy of a batch the service appended
//!   twice, met after the first copy's blob was deleted) is skipped, as is one naming a blob
//!   outside its partition's folder.
//! - **Ownership** comes from ownership records in the same container, in the Event Hubs
//!   processor's scheme: conditional writes on ETags, expiry, and a balancing round per node
//!   ([`ownership`]).
//! - **Client responses** go to their own event hub, so a client's reader does not wade through
//!   partition inputs; responses are not stored aside (a larger one is a `LimitExceeded`).
//! - **Credentials**: the Event Hubs client is given a token credential that signs shared
//!   access signatures from the connection string's key ([`EventHubsConnection`]); blob
//!   access signs account SAS tokens from the storage connection string (`netherite-azure`).
//!   Neither secret is ever logged.
//!
//! Errors are the contract's ([`netherite_core::Error`]): every failure of this crate crosses
//! the [`Transport`] trait or a store trait, whose callers tell retryable I/O from broken rules
//! and limits by those variants, so the crate has no error type of its own.
//!
//! The Event Hubs and Blob Storage clients are the Azure SDK for Rust, a build of minutes: the
//! transport is behind this crate's feature `eventhubs` (off by default). Without it the crate
//! holds what needs no SDK (positions, frames, batching, blob batches and ownership balancing
//! over the in-memory stores) with its tests.
//!
//! [`Transport`]: netherite_core::transport::Transport

// Without the feature, the pieces the transport is made of are built and tested, not used.
#![cfg_attr(not(feature = "eventhubs"), allow(dead_code, unused_imports))]

mod aside;
mod batching;
mod clock;
mod connection;
#[cfg(feature = "eventhubs")]
mod eventhubs;
pub mod ownership;
mod position;
mod resolve;
mod wire;

pub use clock::{Clock, ManualClock, SystemClock};
pub use connection::EventHubsConnection;
#[cfg(feature = "eventhubs")]
pub use eventhubs::{BlobOwnershipStore, EventHubsOptions, EventHubsTransport};

/// A random number for tags and blob names: a keyed hash (random keys per call) of a
/// process-wide counter and the clock, unique enough among the sends of a task hub.
pub(crate) fn random_u64() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    RandomState::new().hash_one((n, std::time::SystemTime::now()))
}
