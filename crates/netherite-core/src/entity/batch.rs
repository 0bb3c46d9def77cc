//! Committing a batch of entity operations: the queue, the state and the messages it causes.

use std::collections::{BTreeSet, HashMap, VecDeque};

use super::{EntityAction, EntityBatchResult, EntityRecord, OperationResult};
use crate::Error;
use crate::ids::{IdGen, InstanceId};
use crate::model::{
    EntityId, EntityOperationCompleted, EntityOperationFailed, EntityOperationSignaled, EventKind,
    ExecutionStarted, HistoryEvent, TaskMessage,
};
use crate::time::Timestamp;

/// Commits a batch that was taken by [`next_batch`](super::next_batch): removes its operations
/// (matched by request id) from the queue, stores the new state and returns the messages to
/// send (call results to callers, signals, orchestration starts).
///
/// # Errors
///
/// [`Error::InvalidArgument`] when the result does not fit the batch: a different number of
/// results than operations, an event in the batch that is not an operation, or an operation
/// that is not queued (a batch committed twice). The record is then left as it was.
///
/// An action the entity cannot carry out (a signal to something that is not an entity, an
/// orchestration start with an entity's id) is dropped with a warning rather than refusing
/// the whole batch, which a retry could never fix.
pub fn apply_batch(
    entity: &InstanceId,
    record: &mut EntityRecord,
    batch: &[HistoryEvent],
    result: &EntityBatchResult,
    now: Timestamp,
    ids: &mut IdGen,
) -> Result<Vec<TaskMessage>, Error> {
    let taken = queued_positions(entity, &record.queue, batch, result)?;
    let queue = std::mem::take(&mut record.queue);
    record.queue = queue
        .into_iter()
        .enumerate()
        .filter(|(position, _)| !taken.contains(position))
        .map(|(_, op)| op)
        .collect();
    record.state = result.entity_state.clone();
    record.last_modified = Some(now);

    let mut messages: Vec<TaskMessage> = batch
        .iter()
        .zip(&result.results)
        .filter_map(|(op, outcome)| response(entity, op, outcome, now))
        .collect();
    for action in &result.actions {
        messages.extend(action_message(entity, action, now, ids));
    }
    Ok(messages)
}

/// The queue positions of the batch's operations, each matched once by request id.
fn queued_positions(
    entity: &InstanceId,
    queue: &VecDeque<HistoryEvent>,
    batch: &[HistoryEvent],
    result: &EntityBatchResult,
) -> Result<BTreeSet<usize>, Error> {
    if batch.len() != result.results.len() {
        let (ops, results) = (batch.len(), result.results.len());
        return Err(invalid(
            entity,
            format!("{results} results for {ops} operations"),
        ));
    }

    let mut by_request: HashMap<&str, VecDeque<usize>> = HashMap::new();
    for (position, op) in queue.iter().enumerate() {
        if let Some(request_id) = request_id(op) {
            by_request
                .entry(request_id)
                .or_default()
                .push_back(position);
        }
    }
    let mut taken = BTreeSet::new();
    for op in batch {
        let request_id = request_id(op).ok_or_else(|| {
            let kind = op.kind.protocol_number();
            invalid(
                entity,
                format!("the batch holds an event of kind {kind}, not an operation"),
            )
        })?;
        let position = by_request
            .get_mut(request_id)
            .and_then(VecDeque::pop_front)
            .ok_or_else(|| invalid(entity, format!("operation {request_id} is not queued")))?;
        taken.insert(position);
    }
    Ok(taken)
}

fn invalid(entity: &InstanceId, reason: String) -> Error {
    Error::InvalidArgument {
        operation: "entity::apply_batch",
        reason: format!("entity {entity}: {reason}"),
    }
}

/// The request id of a queued operation; `None` for anything else.
fn request_id(op: &HistoryEvent) -> Option<&str> {
    match &op.kind {
        EventKind::EntityOperationSignaled(signal) => Some(&signal.request_id),
        EventKind::EntityOperationCalled(call) => Some(&call.request_id),
        _ => None,
    }
}

/// The answer to a call, addressed to its caller; signals get none.
fn response(
    entity: &InstanceId,
    op: &HistoryEvent,
    outcome: &OperationResult,
    now: Timestamp,
) -> Option<TaskMessage> {
    let EventKind::EntityOperationCalled(call) = &op.kind else {
        return None;
    };
    let Some(caller) = call.parent_instance_id.clone() else {
        tracing::debug!(
            entity = %entity,
            request = %call.request_id,
            "Call names no caller; its result goes nowhere"
        );
        return None;
    };

    let request_id = call.request_id.clone();
    let kind = match outcome {
        OperationResult::Success(output) => {
            EventKind::EntityOperationCompleted(EntityOperationCompleted {
                request_id,
                output: output.clone(),
            })
        }
        OperationResult::Failure(failure) => {
            EventKind::EntityOperationFailed(EntityOperationFailed {
                request_id,
                failure: failure.clone(),
            })
        }
    };
    Some(TaskMessage {
        target: caller,
        target_execution: call.parent_execution_id.clone(),
        event: HistoryEvent::new(now, kind),
    })
}

/// The message that carries out an operation's action, or `None` if it cannot be carried out.
fn action_message(
    entity: &InstanceId,
    action: &EntityAction,
    now: Timestamp,
    ids: &mut IdGen,
) -> Option<TaskMessage> {
    match action {
        EntityAction::SendSignal {
            instance_id,
            name,
            input,
            scheduled_time,
        } => {
            let Ok(target) = EntityId::parse(instance_id.as_str()) else {
                tracing::warn!(entity = %entity, target = %instance_id,
                    "Entity signaled something that is not an entity; dropped");
                return None;
            };
            let signal = EntityOperationSignaled {
                request_id: ids.next_hex(),
                operation: name.clone(),
                scheduled_time: *scheduled_time,
                input: input.clone(),
                target_instance_id: None,
            };
            let event = HistoryEvent::new(now, EventKind::EntityOperationSignaled(signal));
            Some(TaskMessage::to_instance(target.instance_id(), event))
        }
        EntityAction::StartOrchestration { .. } => start_message(entity, action, now, ids),
    }
}

/// The `ExecutionStarted` message of an orchestration an entity operation starts.
fn start_message(
    entity: &InstanceId,
    action: &EntityAction,
    now: Timestamp,
    ids: &mut IdGen,
) -> Option<TaskMessage> {
    let EntityAction::StartOrchestration {
        instance_id,
        name,
        version,
        input,
        scheduled_time,
    } = action
    else {
        return None;
    };
    let instance_id = match instance_id {
        Some(id) if !id.as_str().is_empty() => id.clone(),
        _ => InstanceId(ids.next_hex()),
    };
    if instance_id.is_entity() {
        tracing::warn!(entity = %entity, target = %instance_id,
            "Entity tried to start an orchestration with an entity id; dropped");
        return None;
    }

    let started = ExecutionStarted {
        name: name.clone(),
        version: version.clone(),
        input: input.clone(),
        instance_id: instance_id.clone(),
        execution_id: ids.next_execution_id(),
        parent: None,
        scheduled_start: *scheduled_time,
        parent_trace_context: None,
        orchestration_span_id: None,
        tags: Default::default(),
    };
    let event = HistoryEvent::new(now, EventKind::ExecutionStarted(started));
    Some(TaskMessage::to_instance(instance_id, event))
}
