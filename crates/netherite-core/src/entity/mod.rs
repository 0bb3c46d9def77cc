//! Entities: small addressable objects with state, fed by a queue of operations.
//!
//! An entity processes operations in arrival order, in batches run by a worker. It can be
//! locked by an orchestration's critical section; while locked it runs only operations from the
//! lock holder and keeps the rest queued. Lock requests travel along the sorted lock set, so two
//! critical sections over overlapping sets cannot deadlock.
//!
//! All of this is pure: the partition state machine keeps an [`EntityRecord`] per entity and
//! calls these functions while applying logged events.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::ids::{IdGen, InstanceId};
use crate::model::{EntityLockRequested, FailureDetails, HistoryEvent, Payload, TaskMessage};
use crate::time::Timestamp;

/// Who holds an entity's lock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolder {
    /// The orchestration that holds it.
    pub instance_id: InstanceId,
    /// Its critical section.
    pub critical_section_id: String,
}

/// The durable state of one entity.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityRecord {
    /// The entity's serialized state; `None` means it does not exist (or was deleted).
    pub state: Payload,
    /// The lock holder, if locked.
    pub locked_by: Option<LockHolder>,
    /// Operations (`EntityOperationSignaled` / `EntityOperationCalled` events) waiting to run.
    pub queue: VecDeque<HistoryEvent>,
    /// Lock requests waiting for the lock, in arrival order.
    pub lock_waiters: VecDeque<EntityLockRequested>,
    /// When the state last changed.
    pub last_modified: Option<Timestamp>,
}

/// The outcome of one operation of a batch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OperationResult {
    /// The operation returned a value.
    Success(Payload),
    /// The operation failed; its state change was rolled back by the worker.
    Failure(FailureDetails),
}

/// Something an entity operation asked for besides its result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntityAction {
    /// Signal another entity.
    SendSignal {
        /// The target entity.
        instance_id: InstanceId,
        /// The operation.
        name: String,
        /// Its input.
        input: Payload,
        /// When to deliver it, if delayed.
        scheduled_time: Option<Timestamp>,
    },
    /// Start an orchestration.
    StartOrchestration {
        /// Its instance id; empty means "make one up".
        instance_id: Option<InstanceId>,
        /// Its name.
        name: String,
        /// Its version.
        version: Option<String>,
        /// Its input.
        input: Payload,
        /// When it should start, if scheduled.
        scheduled_time: Option<Timestamp>,
    },
}

/// A worker's answer to a batch of operations.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityBatchResult {
    /// One result per operation, in batch order.
    pub results: Vec<OperationResult>,
    /// Signals and orchestration starts requested by the operations.
    pub actions: Vec<EntityAction>,
    /// The state after the batch; `None` deletes the entity.
    pub entity_state: Payload,
}

/// Takes a message addressed to the entity `entity` into its record.
///
/// Operations are queued; a lock request locks the entity if it is free (then it is forwarded
/// to the next entity of the lock set, or granted to the orchestration if this was the last)
/// or waits; a release unlocks it and hands the lock to the first waiter. Returns the messages
/// to send.
pub fn receive(
    entity: &InstanceId,
    record: &mut EntityRecord,
    message: HistoryEvent,
    now: Timestamp,
) -> Vec<TaskMessage> {
    let _ = (entity, record, message, now);
    todo!("entity message handling is being written")
}

/// The operations the entity may run now, at most `max` of them, oldest first.
///
/// While locked, only operations from the lock holder may run; the others stay queued, in
/// order, until the lock is released.
pub fn next_batch(record: &EntityRecord, max: usize) -> Vec<HistoryEvent> {
    let _ = (record, max);
    todo!("entity batching is being written")
}

/// Commits a batch that was taken by [`next_batch`]: removes its operations (matched by request
/// id) from the queue,
/// stores the new state and returns the messages to send (call results to callers, signals,
/// orchestration starts).
pub fn apply_batch(
    entity: &InstanceId,
    record: &mut EntityRecord,
    batch: &[HistoryEvent],
    result: &EntityBatchResult,
    now: Timestamp,
    ids: &mut IdGen,
) -> Vec<TaskMessage> {
    let _ = (entity, record, batch, result, now, ids);
    todo!("entity batch commit is being written")
}
