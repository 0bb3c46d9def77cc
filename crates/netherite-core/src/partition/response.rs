//! Answers to client requests, and the typed reasons a request is turned down.
//!
//! A rejected request changed nothing. The reasons map one to one onto the status codes of the
//! gRPC front door (`NotFound`, `AlreadyExists`, `FailedPrecondition`, ...).

use serde::{Deserialize, Serialize};

use super::read::ReadResult;
use super::view::InstanceView;
use crate::ids::{ExecutionId, InstanceId, PartitionId};
use crate::model::OrchestrationStatus;

/// The answer to one client request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientResponse {
    /// The instance was created (or replaced).
    Created {
        /// The instance.
        instance: InstanceId,
        /// Its first execution.
        execution: ExecutionId,
    },
    /// The request was taken (an event raised, a termination or signal queued, ...).
    Accepted,
    /// Instances were purged.
    Purged {
        /// How many.
        count: u64,
        /// Whether nothing matching remains (always true for a single-instance purge).
        complete: bool,
    },
    /// A wait ended: the instance as it is now.
    Instance(Box<InstanceView>),
    /// The request was turned down and changed nothing.
    Rejected(Rejection),
    /// An entity lock was released (`true`), or was no longer held by the one named.
    LockReleased(bool),
    /// The answer to a [`Read`](super::event::ClientRequest::Read).
    Read(Box<ReadResult>),
}

/// Why a request was turned down.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rejection {
    /// No such instance on this partition.
    NotFound {
        /// The instance asked for.
        instance: InstanceId,
    },
    /// The instance exists and its status may not be replaced.
    AlreadyExists {
        /// The instance.
        instance: InstanceId,
        /// Its status.
        status: OrchestrationStatus,
    },
    /// The instance's status does not allow the request (purging a running instance,
    /// rewinding one that has not failed).
    FailedPrecondition {
        /// The instance.
        instance: InstanceId,
        /// Its status.
        status: OrchestrationStatus,
    },
    /// The instance lives on another partition; the client routed the request wrongly.
    WrongPartition {
        /// The instance.
        instance: InstanceId,
        /// The partition that owns it.
        owner: PartitionId,
    },
    /// The request is malformed.
    InvalidArgument {
        /// What is wrong.
        reason: String,
    },
    /// A wait reached its deadline first.
    DeadlineExceeded {
        /// The instance waited for.
        instance: InstanceId,
    },
    /// A bound of the partition was hit; retry later.
    LimitExceeded {
        /// The limit's name, as in [`super::Limits`].
        limit: String,
        /// The limit.
        max: u64,
    },
}
