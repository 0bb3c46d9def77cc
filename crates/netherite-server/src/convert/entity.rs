//! The entity events (protocol kinds 23 to 29), shared by histories and by the entity messages
//! an orchestration sends.
//!
//! Several of their fields live in only one of two places, the sender's history or the message
//! in flight; the other leaves them unset. The model keeps them as options, so whichever place
//! an event comes from, it converts back unchanged.

use netherite_core::model::{
    EntityLockGranted, EntityLockRequested, EntityOperationCalled, EntityOperationCompleted,
    EntityOperationFailed, EntityOperationSignaled, EntityUnlockSent,
};
use netherite_core::{ExecutionId, InstanceId};

use super::failure::required_failure;
use super::{non_negative, optional_time, timestamp_to_wire};
use crate::{Error, pb};

impl TryFrom<pb::EntityOperationSignaledEvent> for EntityOperationSignaled {
    type Error = Error;

    fn try_from(wire: pb::EntityOperationSignaledEvent) -> Result<Self, Error> {
        let field = "EntityOperationSignaledEvent.scheduledTime";
        Ok(EntityOperationSignaled {
            request_id: wire.request_id,
            operation: wire.operation,
            scheduled_time: optional_time(wire.scheduled_time, field)?,
            input: wire.input,
            target_instance_id: wire.target_instance_id.map(InstanceId),
        })
    }
}

impl From<EntityOperationSignaled> for pb::EntityOperationSignaledEvent {
    fn from(e: EntityOperationSignaled) -> Self {
        pb::EntityOperationSignaledEvent {
            request_id: e.request_id,
            operation: e.operation,
            scheduled_time: e.scheduled_time.map(timestamp_to_wire),
            input: e.input,
            target_instance_id: e.target_instance_id.map(|id| id.0),
        }
    }
}

impl TryFrom<pb::EntityOperationCalledEvent> for EntityOperationCalled {
    type Error = Error;

    fn try_from(wire: pb::EntityOperationCalledEvent) -> Result<Self, Error> {
        let field = "EntityOperationCalledEvent.scheduledTime";
        Ok(EntityOperationCalled {
            request_id: wire.request_id,
            operation: wire.operation,
            scheduled_time: optional_time(wire.scheduled_time, field)?,
            input: wire.input,
            parent_instance_id: wire.parent_instance_id.map(InstanceId),
            parent_execution_id: wire.parent_execution_id.map(ExecutionId),
            target_instance_id: wire.target_instance_id.map(InstanceId),
        })
    }
}

impl From<EntityOperationCalled> for pb::EntityOperationCalledEvent {
    fn from(e: EntityOperationCalled) -> Self {
        pb::EntityOperationCalledEvent {
            request_id: e.request_id,
            operation: e.operation,
            scheduled_time: e.scheduled_time.map(timestamp_to_wire),
            input: e.input,
            parent_instance_id: e.parent_instance_id.map(|id| id.0),
            parent_execution_id: e.parent_execution_id.map(|id| id.0),
            target_instance_id: e.target_instance_id.map(|id| id.0),
        }
    }
}

impl From<pb::EntityOperationCompletedEvent> for EntityOperationCompleted {
    fn from(wire: pb::EntityOperationCompletedEvent) -> Self {
        EntityOperationCompleted {
            request_id: wire.request_id,
            output: wire.output,
        }
    }
}

impl From<EntityOperationCompleted> for pb::EntityOperationCompletedEvent {
    fn from(e: EntityOperationCompleted) -> Self {
        pb::EntityOperationCompletedEvent {
            request_id: e.request_id,
            output: e.output,
        }
    }
}

impl TryFrom<pb::EntityOperationFailedEvent> for EntityOperationFailed {
    type Error = Error;

    fn try_from(wire: pb::EntityOperationFailedEvent) -> Result<Self, Error> {
        let field = "EntityOperationFailedEvent.failureDetails";
        Ok(EntityOperationFailed {
            request_id: wire.request_id,
            failure: required_failure(wire.failure_details, field)?,
        })
    }
}

impl TryFrom<EntityOperationFailed> for pb::EntityOperationFailedEvent {
    type Error = Error;

    fn try_from(e: EntityOperationFailed) -> Result<Self, Error> {
        Ok(pb::EntityOperationFailedEvent {
            request_id: e.request_id,
            failure_details: Some(e.failure.try_into()?),
        })
    }
}

impl TryFrom<pb::EntityLockRequestedEvent> for EntityLockRequested {
    type Error = Error;

    /// `position` indexes the lock set, so it may not be negative.
    fn try_from(wire: pb::EntityLockRequestedEvent) -> Result<Self, Error> {
        let field = "EntityLockRequestedEvent.position";
        Ok(EntityLockRequested {
            critical_section_id: wire.critical_section_id,
            lock_set: wire.lock_set.into_iter().map(InstanceId).collect(),
            position: non_negative(wire.position, field)?,
            parent_instance_id: wire.parent_instance_id.map(InstanceId),
        })
    }
}

impl From<EntityLockRequested> for pb::EntityLockRequestedEvent {
    fn from(e: EntityLockRequested) -> Self {
        pb::EntityLockRequestedEvent {
            critical_section_id: e.critical_section_id,
            lock_set: e.lock_set.into_iter().map(|id| id.0).collect(),
            position: e.position,
            parent_instance_id: e.parent_instance_id.map(|id| id.0),
        }
    }
}

impl From<pb::EntityLockGrantedEvent> for EntityLockGranted {
    fn from(wire: pb::EntityLockGrantedEvent) -> Self {
        EntityLockGranted {
            critical_section_id: wire.critical_section_id,
        }
    }
}

impl From<EntityLockGranted> for pb::EntityLockGrantedEvent {
    fn from(e: EntityLockGranted) -> Self {
        pb::EntityLockGrantedEvent {
            critical_section_id: e.critical_section_id,
        }
    }
}

impl From<pb::EntityUnlockSentEvent> for EntityUnlockSent {
    fn from(wire: pb::EntityUnlockSentEvent) -> Self {
        EntityUnlockSent {
            critical_section_id: wire.critical_section_id,
            parent_instance_id: wire.parent_instance_id.map(InstanceId),
            target_instance_id: wire.target_instance_id.map(InstanceId),
        }
    }
}

impl From<EntityUnlockSent> for pb::EntityUnlockSentEvent {
    fn from(e: EntityUnlockSent) -> Self {
        pb::EntityUnlockSentEvent {
            critical_section_id: e.critical_section_id,
            parent_instance_id: e.parent_instance_id.map(|id| id.0),
            target_instance_id: e.target_instance_id.map(|id| id.0),
        }
    }
}
