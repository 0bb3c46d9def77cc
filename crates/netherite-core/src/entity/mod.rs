//! Entities: small addressable objects with state, fed by a queue of operations.
//!
//! An entity processes operations in arrival order, in batches run by a worker. It can be
//! locked by an orchestration's critical section; while locked it runs only operations from the
//! lock holder and keeps the rest queued. Lock requests travel along the sorted lock set, so two
//! critical sections over overlapping sets cannot deadlock.
//!
//! All of this is pure: the partition state machine keeps an [`EntityRecord`] per entity and
//! calls these functions while applying logged events.
//!
//! # The rules
//!
//! **Receiving** ([`receive`]). Signals and calls join the back of the queue. A lock request
//! that finds the entity free locks it for the requesting orchestration and critical section,
//! then travels on: to `lock_set[position + 1]` with the position bumped, or, from the last
//! entity of the set, back to the orchestration as `EntityLockGranted`. A request that finds
//! the entity locked waits in `lock_waiters`, in arrival order. A release from the holder (same
//! critical section) unlocks the entity and hands the lock to the first waiter, which travels
//! on the same way. A release that does not match the holder changes nothing.
//!
//! Every critical section locks its entities in the same (sorted) order. A section waiting at
//! an entity holds only entities before it; the holder it waits for waits, if at all, at an
//! entity after it. Along a chain of waiting sections the entities only grow, so the chain
//! never closes into a deadlock.
//!
//! **Batching** ([`next_batch`]). Unlocked, the entity runs its queue front to back. Locked, it
//! runs only calls whose caller is the lock holder; everything else keeps its place. Signals
//! carry no sender in the protocol, so a locked entity holds every signal until it is released
//! (workers refuse to signal an entity that their own critical section holds, so the holder
//! never waits on itself). Delayed operations are the partition's business: it delivers them
//! when they are due.
//!
//! **Committing** ([`apply_batch`]). The batch's operations leave the queue, the new state is
//! stored (`None` deletes the entity), every call's result goes back to its caller as
//! `EntityOperationCompleted` or `EntityOperationFailed`, signals get no answer, and the
//! operations' own signals and orchestration starts are sent with ids drawn from the given
//! [`IdGen`](crate::ids::IdGen). A result that does not fit its batch is refused with an
//! error before anything changes.

mod batch;
mod locks;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::ids::InstanceId;
use crate::model::{
    EntityLockRequested, EventKind, FailureDetails, HistoryEvent, Payload, TaskMessage,
};
use crate::time::Timestamp;

pub use batch::apply_batch;

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

impl EntityRecord {
    /// Whether the entity exists: it has state. A deleted entity has none.
    pub fn exists(&self) -> bool {
        self.state.is_some()
    }

    /// Whether a critical section holds the entity.
    pub fn is_locked(&self) -> bool {
        self.locked_by.is_some()
    }

    /// Whether the record holds nothing at all (no state, no lock, nothing queued or waiting),
    /// so the partition may forget it.
    pub fn is_empty(&self) -> bool {
        self.state.is_none()
            && self.locked_by.is_none()
            && self.queue.is_empty()
            && self.lock_waiters.is_empty()
    }

    /// Whether the queued operation `op` may run now, given the lock.
    fn may_run(&self, op: &HistoryEvent) -> bool {
        let Some(holder) = &self.locked_by else {
            return true;
        };
        match &op.kind {
            EventKind::EntityOperationCalled(call) => {
                call.parent_instance_id.as_ref() == Some(&holder.instance_id)
            }
            _ => false,
        }
    }
}

/// Takes a message addressed to the entity `entity` into its record.
///
/// Operations are queued; a lock request locks the entity if it is free (then it is forwarded
/// to the next entity of the lock set, or granted to the orchestration if this was the last)
/// or waits; a release unlocks it and hands the lock to the first waiter. Returns the messages
/// to send. Events an entity has no use for, and malformed lock requests, are dropped with a
/// warning.
pub fn receive(
    entity: &InstanceId,
    record: &mut EntityRecord,
    message: HistoryEvent,
    now: Timestamp,
) -> Vec<TaskMessage> {
    match message.kind {
        EventKind::EntityOperationSignaled(_) | EventKind::EntityOperationCalled(_) => {
            record.queue.push_back(message);
            Vec::new()
        }
        EventKind::EntityLockRequested(request) => locks::request(entity, record, request, now),
        EventKind::EntityUnlockSent(release) => locks::release(entity, record, &release, now),
        other => {
            tracing::warn!(
                entity = %entity,
                kind = other.protocol_number(),
                "Entity received an event it has no use for; dropped"
            );
            Vec::new()
        }
    }
}

/// The operations the entity may run now, at most `max` of them, oldest first.
///
/// While locked, only calls from the lock holder may run; the others stay queued, in order,
/// until the lock is released.
///
/// # Example
///
/// A locked entity runs its holder's call and keeps a stranger's call waiting:
///
/// ```
/// use netherite_core::entity::{next_batch, receive, EntityRecord};
/// use netherite_core::model::{
///     EntityLockRequested, EntityOperationCalled, EventKind, HistoryEvent,
/// };
/// use netherite_core::{InstanceId, Timestamp};
///
/// let entity = InstanceId::new("@account@alice");
/// let now = Timestamp::EPOCH;
/// let mut record = EntityRecord::default();
/// let lock = EntityLockRequested {
///     critical_section_id: "cs-1".into(),
///     lock_set: vec![entity.clone()],
///     position: 0,
///     parent_instance_id: Some(InstanceId::new("transfer")),
/// };
/// let request = HistoryEvent::new(now, EventKind::EntityLockRequested(lock));
/// let granted = receive(&entity, &mut record, request, now);
/// assert_eq!(granted[0].target, InstanceId::new("transfer"));
///
/// let call_from = |caller: &str, request: &str| {
///     let call = EntityOperationCalled {
///         request_id: request.into(),
///         operation: "balance".into(),
///         scheduled_time: None,
///         input: None,
///         parent_instance_id: Some(InstanceId::new(caller)),
///         parent_execution_id: None,
///         target_instance_id: None,
///     };
///     HistoryEvent::new(now, EventKind::EntityOperationCalled(call))
/// };
/// receive(&entity, &mut record, call_from("stranger", "r1"), now);
/// receive(&entity, &mut record, call_from("transfer", "r2"), now);
///
/// assert_eq!(next_batch(&record, 10), [call_from("transfer", "r2")]);
/// ```
pub fn next_batch(record: &EntityRecord, max: usize) -> Vec<HistoryEvent> {
    record
        .queue
        .iter()
        .filter(|op| record.may_run(op))
        .take(max)
        .cloned()
        .collect()
}
