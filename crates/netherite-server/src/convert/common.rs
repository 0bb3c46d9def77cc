//! The small shapes many messages share: trace contexts, instance references and the parent of
//! a sub-orchestration.

use netherite_core::model::{ParentInstance, TraceContext};
use netherite_core::{ExecutionId, InstanceId};

use super::non_negative;
use crate::{Error, pb};

impl From<pb::TraceContext> for TraceContext {
    fn from(wire: pb::TraceContext) -> Self {
        TraceContext {
            trace_parent: wire.trace_parent,
            span_id: wire.span_id,
            trace_state: wire.trace_state,
        }
    }
}

impl From<TraceContext> for pb::TraceContext {
    fn from(trace: TraceContext) -> Self {
        pb::TraceContext {
            trace_parent: trace.trace_parent,
            span_id: trace.span_id,
            trace_state: trace.trace_state,
        }
    }
}

/// An instance reference on the wire: the instance, and the execution when one is named.
pub fn instance_to_wire(
    instance_id: InstanceId,
    execution_id: Option<ExecutionId>,
) -> pb::OrchestrationInstance {
    pb::OrchestrationInstance {
        instance_id: instance_id.0,
        execution_id: execution_id.map(|id| id.0),
    }
}

/// An instance reference from the wire: the instance, and the execution if one is named.
pub fn instance_from_wire(wire: pb::OrchestrationInstance) -> (InstanceId, Option<ExecutionId>) {
    (
        InstanceId(wire.instance_id),
        wire.execution_id.map(ExecutionId),
    )
}

impl TryFrom<pb::ParentInstanceInfo> for ParentInstance {
    type Error = Error;

    /// The parent must name its instance, and `taskScheduledId` (the parent's action id, where
    /// the child's result goes) must not be negative.
    fn try_from(wire: pb::ParentInstanceInfo) -> Result<Self, Error> {
        let task_scheduled_id =
            non_negative(wire.task_scheduled_id, "ParentInstanceInfo.taskScheduledId")?;
        let instance = wire.orchestration_instance.ok_or(Error::Missing {
            field: "ParentInstanceInfo.orchestrationInstance",
        })?;
        let (instance_id, execution_id) = instance_from_wire(instance);

        Ok(ParentInstance {
            task_scheduled_id,
            name: wire.name,
            version: wire.version,
            instance_id,
            execution_id,
        })
    }
}

impl From<ParentInstance> for pb::ParentInstanceInfo {
    fn from(parent: ParentInstance) -> Self {
        pb::ParentInstanceInfo {
            task_scheduled_id: parent.task_scheduled_id,
            name: parent.name,
            version: parent.version,
            orchestration_instance: Some(instance_to_wire(parent.instance_id, parent.execution_id)),
        }
    }
}
