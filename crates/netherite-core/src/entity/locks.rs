//! Entity locks: taking, passing on, waiting for and releasing a critical section's lock.

use super::{EntityRecord, LockHolder};
use crate::ids::InstanceId;
use crate::model::{
    EntityLockGranted, EntityLockRequested, EntityUnlockSent, EventKind, HistoryEvent, TaskMessage,
};
use crate::time::Timestamp;

/// Handles a lock request that arrived at `entity`: lock and pass on, or wait.
pub(super) fn request(
    entity: &InstanceId,
    record: &mut EntityRecord,
    request: EntityLockRequested,
    now: Timestamp,
) -> Vec<TaskMessage> {
    let Some(owner) = request.parent_instance_id.clone() else {
        tracing::warn!(entity = %entity, "Lock request names no orchestration; dropped");
        return Vec::new();
    };
    if !addressed_to(entity, &request) {
        tracing::warn!(
            entity = %entity,
            position = request.position,
            "Lock request's position does not name this entity; dropped"
        );
        return Vec::new();
    }

    match &record.locked_by {
        None => {
            record.locked_by = Some(LockHolder {
                instance_id: owner.clone(),
                critical_section_id: request.critical_section_id.clone(),
            });
            vec![pass_on(request, owner, now)]
        }
        // A lock set that lists this entity twice: the section already holds it.
        Some(holder) if holder.critical_section_id == request.critical_section_id => {
            vec![pass_on(request, owner, now)]
        }
        Some(_) => {
            tracing::debug!(
                entity = %entity,
                critical_section = %request.critical_section_id,
                "Entity is locked; lock request waits"
            );
            record.lock_waiters.push_back(request);
            Vec::new()
        }
    }
}

/// Handles a release: if it comes from the holder, unlock and serve the first waiter.
pub(super) fn release(
    entity: &InstanceId,
    record: &mut EntityRecord,
    release: &EntityUnlockSent,
    now: Timestamp,
) -> Vec<TaskMessage> {
    let from_holder = record.locked_by.as_ref().is_some_and(|holder| {
        holder.critical_section_id == release.critical_section_id
            && release
                .parent_instance_id
                .as_ref()
                .is_none_or(|releaser| releaser == &holder.instance_id)
    });
    if !from_holder {
        tracing::debug!(
            entity = %entity,
            critical_section = %release.critical_section_id,
            "Release does not match the lock holder; ignored"
        );
        return Vec::new();
    }

    record.locked_by = None;
    match record.lock_waiters.pop_front() {
        Some(waiter) => request(entity, record, waiter, now),
        None => Vec::new(),
    }
}

/// Whether `request` is at the position of `entity` in its lock set.
fn addressed_to(entity: &InstanceId, request: &EntityLockRequested) -> bool {
    usize::try_from(request.position)
        .ok()
        .and_then(|position| request.lock_set.get(position))
        == Some(entity)
}

/// The message that follows a lock taken here: the request, on to the next entity of the set,
/// or the grant, back to the orchestration after the last one.
fn pass_on(request: EntityLockRequested, owner: InstanceId, now: Timestamp) -> TaskMessage {
    let next = request.position.saturating_add(1);
    let next_entity = usize::try_from(next)
        .ok()
        .and_then(|position| request.lock_set.get(position))
        .cloned();
    match next_entity {
        Some(target) => {
            let forwarded = EntityLockRequested {
                position: next,
                ..request
            };
            let event = HistoryEvent::new(now, EventKind::EntityLockRequested(forwarded));
            TaskMessage::to_instance(target, event)
        }
        None => {
            let granted = EntityLockGranted {
                critical_section_id: request.critical_section_id,
            };
            let event = HistoryEvent::new(now, EventKind::EntityLockGranted(granted));
            TaskMessage::to_instance(owner, event)
        }
    }
}
