//! The heart of netherite, with no I/O in it: the model, episode application, the pure
//! partition state machine, and the contracts every backend implements.
//!
//! - [`ids`] and [`time`]: newtypes for ids and positions, instance placement, timestamps.
//! - [`model`]: statuses, failures, history events, orchestrator actions, task messages.
//! - [`episode`]: from a history, an episode's new events and a worker's actions, the new
//!   history, the outgoing messages and the status change.
//! - [`entity`]: an entity's queue and locks, and how a batch of operations is committed.
//! - [`partition`]: the partition state machine: update events in, state changed, effects out
//!   as values. Time and ids arrive inside events, so replaying the log reproduces the state.
//! - [`codec`]: the versioned, checksummed binary record format of logged events.
//! - [`device`] and [`transport`]: the `LogDevice` and `Transport` contracts, their in-memory
//!   implementations with fault knobs, and (feature `testing`) their conformance suites,
//!   which share the check runner in `conformance`.
//!
//! The state machine never reads a clock, a random source or a file. That is what makes it
//! property-testable and lets recovery replay it exactly.

pub mod codec;
#[cfg(feature = "testing")]
pub mod conformance;
pub mod device;
pub mod entity;
pub mod episode;
mod error;
pub mod ids;
pub mod model;
pub mod partition;
pub mod time;
pub mod transport;

pub use error::Error;
pub use ids::{
    ClientId, CommitPosition, ExecutionId, InputPosition, InstanceId, PartitionId, RequestSeq,
    partition_of,
};
pub use time::Timestamp;
