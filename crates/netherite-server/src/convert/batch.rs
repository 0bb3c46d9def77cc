//! A worker's answer to an entity batch: `EntityBatchResult` into the model.
//!
//! Only the parts the engine commits are kept: one result per operation, the signals and
//! orchestration starts the operations asked for, and the state after the batch. Timing fields
//! and `operationInfos` (the engine knows where each call's answer goes) are dropped.

use netherite_core::InstanceId;
use netherite_core::entity::{EntityAction, EntityBatchResult, OperationResult};

use super::failure::required_failure;
use super::{all, optional_time};
use crate::{Error, pb};

impl TryFrom<pb::EntityBatchResult> for EntityBatchResult {
    type Error = Error;

    fn try_from(wire: pb::EntityBatchResult) -> Result<Self, Error> {
        Ok(EntityBatchResult {
            results: all("EntityBatchResult.results", wire.results)?,
            actions: all("EntityBatchResult.actions", wire.actions)?,
            entity_state: wire.entity_state,
        })
    }
}

impl TryFrom<pb::OperationResult> for OperationResult {
    type Error = Error;

    fn try_from(wire: pb::OperationResult) -> Result<Self, Error> {
        use pb::operation_result::ResultType;
        match wire.result_type {
            Some(ResultType::Success(s)) => Ok(OperationResult::Success(s.result)),
            Some(ResultType::Failure(f)) => {
                let failure =
                    required_failure(f.failure_details, "OperationResultFailure.failureDetails")?;
                Ok(OperationResult::Failure(failure))
            }
            None => Err(Error::Missing {
                field: "OperationResult.resultType",
            }),
        }
    }
}

impl TryFrom<pb::OperationAction> for EntityAction {
    type Error = Error;

    fn try_from(wire: pb::OperationAction) -> Result<Self, Error> {
        use pb::operation_action::OperationActionType as Kind;
        match wire.operation_action_type {
            Some(Kind::SendSignal(s)) => Ok(EntityAction::SendSignal {
                instance_id: InstanceId::new(s.instance_id),
                name: s.name,
                input: s.input,
                scheduled_time: optional_time(s.scheduled_time, "SendSignalAction.scheduledTime")?,
            }),
            Some(Kind::StartNewOrchestration(s)) => Ok(EntityAction::StartOrchestration {
                instance_id: Some(s.instance_id)
                    .filter(|id| !id.is_empty())
                    .map(InstanceId::new),
                name: s.name,
                version: s.version,
                input: s.input,
                scheduled_time: optional_time(
                    s.scheduled_time,
                    "StartNewOrchestrationAction.scheduledTime",
                )?,
            }),
            None => Err(Error::Missing {
                field: "OperationAction.operationActionType",
            }),
        }
    }
}
