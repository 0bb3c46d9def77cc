//! Work items on the wire, and workers' answers back into the engine.
//!
//! Episodes go out as `orchestratorRequest` with their whole committed history in `pastEvents`
//! (no worker of the public SDKs but .NET streams history), activities as `activityRequest`,
//! entity batches as the newer `entityRequestV2`, whose operations are history events the
//! SDKs turn into a batch themselves.
//!
//! An answer that does not convert (an action with no kind, a bad timestamp) is the worker's
//! fault: the call fails with `INVALID_ARGUMENT`, and the episode is failed by the engine in
//! its place rather than dispatched again to the same broken worker.

use netherite::remote::{Assignment, WorkItem};
use netherite_core::entity::EntityBatchResult;
use netherite_core::model::{
    ActionKind, CompleteOrchestration, FailureDetails, HistoryEvent, OrchestrationStatus,
    OrchestratorAction,
};
use tonic::Status;

use crate::convert::{self, instance_to_wire};
use crate::{Error, pb};

/// The `errorType` of the failure that ends an episode whose answer the engine could not use.
pub const INVALID_ANSWER: &str = "InvalidWorkerAnswer";
/// The `errorType` of the failure that ends work the server cannot send to a worker.
pub const UNSENDABLE_WORK: &str = "UnsendableWorkItem";

/// `item` as the protocol's work item, under `token`.
pub(crate) fn to_wire(item: &WorkItem, token: String) -> Result<pb::WorkItem, Error> {
    use pb::work_item::Request;
    let request = match item {
        WorkItem::Episode(episode) => Request::OrchestratorRequest(pb::OrchestratorRequest {
            instance_id: episode.instance.0.clone(),
            execution_id: Some(episode.execution.0.clone()),
            past_events: events("OrchestratorRequest.pastEvents", &episode.past_events)?,
            new_events: events("OrchestratorRequest.newEvents", &episode.new_events)?,
            ..pb::OrchestratorRequest::default()
        }),
        WorkItem::Activity(activity) => Request::ActivityRequest(pb::ActivityRequest {
            name: activity.name.clone(),
            version: activity.version.clone(),
            input: activity.input.clone(),
            orchestration_instance: Some(instance_to_wire(
                activity.instance.clone(),
                Some(activity.execution.clone()),
            )),
            task_id: activity.task_id,
            parent_trace_context: activity.parent_trace_context.clone().map(Into::into),
            tags: activity.tags.clone(),
        }),
        WorkItem::EntityBatch(batch) => Request::EntityRequestV2(pb::EntityRequest {
            instance_id: batch.entity.0.clone(),
            execution_id: String::new(),
            entity_state: batch.state.clone(),
            operation_requests: events("EntityRequest.operationRequests", &batch.operations)?,
        }),
    };
    Ok(pb::WorkItem {
        request: Some(request),
        completion_token: token,
    })
}

fn events(list: &'static str, events: &[HistoryEvent]) -> Result<Vec<pb::HistoryEvent>, Error> {
    convert::all(list, events.to_vec())
}

/// Fails an item the server cannot send (it does not convert, or it is too large for a
/// worker), so that it is not dispatched forever.
pub(crate) async fn fail_unsendable(assignment: Assignment, reason: &str) {
    let failure = FailureDetails::new(UNSENDABLE_WORK, reason);
    match assignment.item() {
        WorkItem::Episode(_) => {
            assignment
                .complete_episode(vec![failed(failure)], None)
                .await
        }
        WorkItem::Activity(_) => assignment.complete_activity(Err(failure)).await,
        WorkItem::EntityBatch(batch) => {
            let result = EntityBatchResult {
                results: vec![
                    netherite_core::entity::OperationResult::Failure(failure);
                    batch.operations.len()
                ],
                actions: Vec::new(),
                entity_state: batch.state.clone(),
            };
            assignment.complete_entity_batch(result).await;
        }
    }
}

/// Commits a worker's answer to an episode; a malformed one fails the orchestration instead.
pub(crate) async fn complete_episode(
    assignment: Assignment,
    answer: pb::OrchestratorResponse,
) -> Result<(), Status> {
    match convert::all::<_, OrchestratorAction>("OrchestratorResponse.actions", answer.actions) {
        Ok(actions) => {
            assignment
                .complete_episode(actions, answer.custom_status)
                .await;
            Ok(())
        }
        Err(error) => {
            let failure = FailureDetails::new(INVALID_ANSWER, error.to_string());
            assignment
                .complete_episode(vec![failed(failure)], None)
                .await;
            Err(Status::invalid_argument(error.to_string()))
        }
    }
}

/// Commits an activity's result: a failure when `failureDetails` is present, else the output.
pub(crate) async fn complete_activity(
    assignment: Assignment,
    answer: pb::ActivityResponse,
) -> Result<(), Status> {
    let result = match answer.failure_details {
        Some(details) => match FailureDetails::try_from(details) {
            Ok(failure) => Err(failure),
            Err(error) => Err(FailureDetails::new(INVALID_ANSWER, error.to_string())),
        },
        None => Ok(answer.result),
    };
    assignment.complete_activity(result).await;
    Ok(())
}

/// Commits an entity batch. A batch the worker failed as a whole (`failureDetails`) is
/// abandoned and runs again later; a malformed one is refused and abandoned too.
pub(crate) async fn complete_entity_batch(
    assignment: Assignment,
    answer: pb::EntityBatchResult,
    queue: &netherite::remote::RemoteWork,
) -> Result<(), Status> {
    if answer.failure_details.is_some() {
        assignment.abandon(queue);
        return Ok(());
    }
    match EntityBatchResult::try_from(answer) {
        Ok(result) => {
            assignment.complete_entity_batch(result).await;
            Ok(())
        }
        Err(error) => {
            assignment.abandon(queue);
            Err(Status::invalid_argument(error.to_string()))
        }
    }
}

/// The action that ends an orchestration as failed with `failure`.
fn failed(failure: FailureDetails) -> OrchestratorAction {
    let complete = CompleteOrchestration {
        failure: Some(failure),
        ..CompleteOrchestration::new(OrchestrationStatus::Failed, None)
    };
    OrchestratorAction::new(-1, ActionKind::CompleteOrchestration(complete))
}
