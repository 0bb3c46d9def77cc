//! Orchestrator actions, all 8 kinds: `pb::OrchestratorAction` and `model::OrchestratorAction`.
//!
//! An action must have a kind; a timer must say when it fires; an event must name its target;
//! a completion must carry a status the protocol defines. Action ids are taken as sent, with
//! one check: the id of a `scheduleTask`, `createSubOrchestration` or `createTimer` comes back
//! later as the `taskScheduledId` or `timerId` of its completion, so it may not be negative.
//! Other kinds may carry -1; workers send it on the failing completion of a crashed
//! orchestration.

use netherite_core::InstanceId;
use netherite_core::model::{
    ActionKind, CompleteOrchestration, CreateSubOrchestration, EntityMessage, OrchestratorAction,
    ScheduleTask, SendEvent, TerminateOrchestration,
};

use super::common::{instance_from_wire, instance_to_wire};
use super::failure::{optional_failure, optional_failure_to_wire};
use super::timestamp_to_wire;
use super::{all, non_negative, required_time, status_from_wire, status_to_wire};
use crate::pb::orchestrator_action::OrchestratorActionType as Wire;
use crate::pb::send_entity_message_action::EntityMessageType;
use crate::{Error, pb};

impl TryFrom<pb::OrchestratorAction> for OrchestratorAction {
    type Error = Error;

    fn try_from(wire: pb::OrchestratorAction) -> Result<Self, Error> {
        let kind = wire.orchestrator_action_type.ok_or(Error::Missing {
            field: "OrchestratorAction.orchestratorActionType",
        })?;
        if matches!(
            kind,
            Wire::ScheduleTask(_) | Wire::CreateSubOrchestration(_) | Wire::CreateTimer(_)
        ) {
            non_negative(wire.id, "OrchestratorAction.id")?;
        }
        Ok(OrchestratorAction {
            id: wire.id,
            kind: kind_from_wire(kind)?,
        })
    }
}

impl TryFrom<OrchestratorAction> for pb::OrchestratorAction {
    type Error = Error;

    fn try_from(action: OrchestratorAction) -> Result<Self, Error> {
        Ok(pb::OrchestratorAction {
            id: action.id,
            orchestrator_action_type: Some(kind_to_wire(action.kind)?),
        })
    }
}

fn kind_from_wire(kind: Wire) -> Result<ActionKind, Error> {
    Ok(match kind {
        Wire::ScheduleTask(a) => ActionKind::ScheduleTask(a.into()),
        Wire::CreateSubOrchestration(a) => ActionKind::CreateSubOrchestration(a.into()),
        Wire::CreateTimer(a) => ActionKind::CreateTimer {
            fire_at: required_time(a.fire_at, "CreateTimerAction.fireAt")?,
        },
        Wire::SendEvent(a) => ActionKind::SendEvent(a.try_into()?),
        Wire::CompleteOrchestration(a) => ActionKind::CompleteOrchestration(a.try_into()?),
        Wire::TerminateOrchestration(a) => ActionKind::TerminateOrchestration(a.into()),
        Wire::SendEntityMessage(a) => ActionKind::SendEntityMessage(a.try_into()?),
        Wire::RewindOrchestration(a) => ActionKind::RewindOrchestration {
            new_history: all("RewindOrchestrationAction.newHistory", a.new_history)?,
        },
    })
}

fn kind_to_wire(kind: ActionKind) -> Result<Wire, Error> {
    Ok(match kind {
        ActionKind::ScheduleTask(a) => Wire::ScheduleTask(a.into()),
        ActionKind::CreateSubOrchestration(a) => Wire::CreateSubOrchestration(a.into()),
        ActionKind::CreateTimer { fire_at } => Wire::CreateTimer(pb::CreateTimerAction {
            fire_at: Some(timestamp_to_wire(fire_at)),
        }),
        ActionKind::SendEvent(a) => Wire::SendEvent(a.into()),
        ActionKind::CompleteOrchestration(a) => Wire::CompleteOrchestration(a.try_into()?),
        ActionKind::TerminateOrchestration(a) => Wire::TerminateOrchestration(a.into()),
        ActionKind::SendEntityMessage(m) => Wire::SendEntityMessage(m.into()),
        ActionKind::RewindOrchestration { new_history } => {
            Wire::RewindOrchestration(pb::RewindOrchestrationAction {
                new_history: all("RewindOrchestration.new_history", new_history)?,
            })
        }
    })
}

impl From<pb::ScheduleTaskAction> for ScheduleTask {
    fn from(wire: pb::ScheduleTaskAction) -> Self {
        ScheduleTask {
            name: wire.name,
            version: wire.version,
            input: wire.input,
            tags: wire.tags,
            parent_trace_context: wire.parent_trace_context.map(Into::into),
        }
    }
}

impl From<ScheduleTask> for pb::ScheduleTaskAction {
    fn from(a: ScheduleTask) -> Self {
        pb::ScheduleTaskAction {
            name: a.name,
            version: a.version,
            input: a.input,
            tags: a.tags,
            parent_trace_context: a.parent_trace_context.map(Into::into),
        }
    }
}

impl From<pb::CreateSubOrchestrationAction> for CreateSubOrchestration {
    fn from(wire: pb::CreateSubOrchestrationAction) -> Self {
        CreateSubOrchestration {
            instance_id: InstanceId(wire.instance_id),
            name: wire.name,
            version: wire.version,
            input: wire.input,
            parent_trace_context: wire.parent_trace_context.map(Into::into),
            tags: wire.tags,
        }
    }
}

impl From<CreateSubOrchestration> for pb::CreateSubOrchestrationAction {
    fn from(a: CreateSubOrchestration) -> Self {
        pb::CreateSubOrchestrationAction {
            instance_id: a.instance_id.0,
            name: a.name,
            version: a.version,
            input: a.input,
            parent_trace_context: a.parent_trace_context.map(Into::into),
            tags: a.tags,
        }
    }
}

impl TryFrom<pb::SendEventAction> for SendEvent {
    type Error = Error;

    fn try_from(wire: pb::SendEventAction) -> Result<Self, Error> {
        let instance = wire.instance.ok_or(Error::Missing {
            field: "SendEventAction.instance",
        })?;
        let (instance_id, execution_id) = instance_from_wire(instance);
        Ok(SendEvent {
            instance_id,
            execution_id,
            name: wire.name,
            data: wire.data,
        })
    }
}

impl From<SendEvent> for pb::SendEventAction {
    fn from(a: SendEvent) -> Self {
        pb::SendEventAction {
            instance: Some(instance_to_wire(a.instance_id, a.execution_id)),
            name: a.name,
            data: a.data,
        }
    }
}

impl TryFrom<pb::CompleteOrchestrationAction> for CompleteOrchestration {
    type Error = Error;

    fn try_from(wire: pb::CompleteOrchestrationAction) -> Result<Self, Error> {
        let status_field = "CompleteOrchestrationAction.orchestrationStatus";
        let carryover_field = "CompleteOrchestrationAction.carryoverEvents";
        Ok(CompleteOrchestration {
            status: status_from_wire(wire.orchestration_status, status_field)?,
            result: wire.result,
            details: wire.details,
            new_version: wire.new_version,
            carryover_events: all(carryover_field, wire.carryover_events)?,
            failure: optional_failure(wire.failure_details)?,
            tags: wire.tags,
        })
    }
}

impl TryFrom<CompleteOrchestration> for pb::CompleteOrchestrationAction {
    type Error = Error;

    fn try_from(a: CompleteOrchestration) -> Result<Self, Error> {
        let carryover_field = "CompleteOrchestration.carryover_events";
        Ok(pb::CompleteOrchestrationAction {
            orchestration_status: status_to_wire(a.status),
            result: a.result,
            details: a.details,
            new_version: a.new_version,
            carryover_events: all(carryover_field, a.carryover_events)?,
            failure_details: optional_failure_to_wire(a.failure)?,
            tags: a.tags,
        })
    }
}

impl From<pb::TerminateOrchestrationAction> for TerminateOrchestration {
    fn from(wire: pb::TerminateOrchestrationAction) -> Self {
        TerminateOrchestration {
            instance_id: InstanceId(wire.instance_id),
            reason: wire.reason,
            recurse: wire.recurse,
        }
    }
}

impl From<TerminateOrchestration> for pb::TerminateOrchestrationAction {
    fn from(a: TerminateOrchestration) -> Self {
        pb::TerminateOrchestrationAction {
            instance_id: a.instance_id.0,
            reason: a.reason,
            recurse: a.recurse,
        }
    }
}

impl TryFrom<pb::SendEntityMessageAction> for EntityMessage {
    type Error = Error;

    fn try_from(wire: pb::SendEntityMessageAction) -> Result<Self, Error> {
        let message = wire.entity_message_type.ok_or(Error::Missing {
            field: "SendEntityMessageAction.EntityMessageType",
        })?;
        Ok(match message {
            EntityMessageType::EntityOperationSignaled(e) => EntityMessage::Signal(e.try_into()?),
            EntityMessageType::EntityOperationCalled(e) => EntityMessage::Call(e.try_into()?),
            EntityMessageType::EntityLockRequested(e) => EntityMessage::LockRequest(e.try_into()?),
            EntityMessageType::EntityUnlockSent(e) => EntityMessage::Unlock(e.into()),
        })
    }
}

impl From<EntityMessage> for pb::SendEntityMessageAction {
    fn from(message: EntityMessage) -> Self {
        let message = match message {
            EntityMessage::Signal(e) => EntityMessageType::EntityOperationSignaled(e.into()),
            EntityMessage::Call(e) => EntityMessageType::EntityOperationCalled(e.into()),
            EntityMessage::LockRequest(e) => EntityMessageType::EntityLockRequested(e.into()),
            EntityMessage::Unlock(e) => EntityMessageType::EntityUnlockSent(e.into()),
        };
        pb::SendEntityMessageAction {
            entity_message_type: Some(message),
        }
    }
}
