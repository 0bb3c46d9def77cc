//! What clients read: the partition's views as the protocol's `OrchestrationState` and
//! `EntityMetadata`.
//!
//! These go one way only, out. Whether payloads are included was decided when the view was
//! taken (`getInputsAndOutputs`, `includeState`): a view without them has `None` there, and the
//! wire then leaves the fields unset. A successful instance has no failure, so
//! `failureDetails` stays unset rather than empty; SDKs test for its absence.

use netherite_core::partition::{EntityView, InstanceView};

use super::failure::optional_failure_to_wire;
use super::{status_to_wire, timestamp_to_wire};
use crate::{Error, pb};

impl TryFrom<InstanceView> for pb::OrchestrationState {
    type Error = Error;

    fn try_from(view: InstanceView) -> Result<Self, Error> {
        Ok(pb::OrchestrationState {
            instance_id: view.instance_id.0,
            name: view.name,
            version: view.version,
            orchestration_status: status_to_wire(view.status),
            scheduled_start_timestamp: view.scheduled_start.map(timestamp_to_wire),
            created_timestamp: Some(timestamp_to_wire(view.created)),
            last_updated_timestamp: Some(timestamp_to_wire(view.last_updated)),
            input: view.input,
            output: view.output,
            custom_status: view.custom_status,
            failure_details: optional_failure_to_wire(view.failure)?,
            execution_id: Some(view.execution_id.0),
            completed_timestamp: view.completed.map(timestamp_to_wire),
            parent_instance_id: view.parent_instance_id.map(|id| id.0),
            tags: view.tags,
        })
    }
}

impl From<EntityView> for pb::EntityMetadata {
    /// `lockedBy` names the orchestration holding the lock, as the Durable Task Framework
    /// reports it; a backlog too long for an `int32` reads as `i32::MAX`.
    fn from(view: EntityView) -> Self {
        pb::EntityMetadata {
            instance_id: view.entity.0,
            last_modified_time: view.last_modified.map(timestamp_to_wire),
            backlog_queue_size: i32::try_from(view.backlog).unwrap_or(i32::MAX),
            locked_by: view.locked_by.map(|holder| holder.instance_id.0),
            serialized_state: view.state,
        }
    }
}
