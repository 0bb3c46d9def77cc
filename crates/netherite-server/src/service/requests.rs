//! The client calls of the protocol, each turned into the engine's requests and reads.
//!
//! Payloads arrive as raw JSON text and are passed on as they are; each is checked against
//! the engine's `payload_bytes_max` first (`RESOURCE_EXHAUSTED` past it). Waits are long
//! polls: they end when the instance changes, when the client cancels (the call's future is
//! dropped), or at the call's gRPC deadline; a call without a deadline waits as long as it
//! takes, since the JavaScript client sets none.

use std::time::Duration;

use futures::future::try_join_all;
use netherite::client::{Client, StartOptions};
use netherite_core::model::{OrchestrationStatus, Payload};
use netherite_core::partition::index::InstanceFilter;
use netherite_core::partition::{
    ClientRequest, ClientResponse, EntityPage, EntityQuery, InstanceView, ReadEvent, ReadResult,
    SignalEntity,
};
use netherite_core::{InstanceId, PartitionId};
use tonic::{Request, Status};

use super::instance_id;
use super::status::status_of;
use crate::convert::{self, status_from_wire, timestamp_from_wire};
use crate::pb;

/// The longest wait a call without a deadline makes before it is answered with
/// `DEADLINE_EXCEEDED` (clients then simply ask again).
const WAIT_WITHOUT_DEADLINE: Duration = Duration::from_secs(24 * 3600);
/// History events per `HistoryChunk`.
const HISTORY_CHUNK_EVENTS: usize = 256;
/// Entities per page when the request names no size.
const ENTITY_PAGE_DEFAULT: usize = 100;

/// What a wait waits for.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Until {
    Start,
    Completion,
}

fn bad(error: crate::Error) -> Status {
    Status::invalid_argument(error.to_string())
}

/// Refuses a payload over the engine's limit.
fn check(client: &Client, payload: &Payload, what: &str) -> Result<(), Status> {
    let size = payload.as_ref().map_or(0, |p| p.len() as u64);
    let max = client.payload_bytes_max();
    if size > max {
        return Err(Status::resource_exhausted(format!(
            "{what} is {size} bytes, over payload_bytes_max ({max})"
        )));
    }
    Ok(())
}

/// `StartInstance`: a scheduled start counts only if it is in the future (the JavaScript
/// client sends the epoch when it means "now"); an empty id gets a fresh one.
pub(crate) async fn start(
    client: &Client,
    request: pb::CreateInstanceRequest,
) -> Result<InstanceId, Status> {
    check(client, &request.input, "the input")?;
    let scheduled = request
        .scheduled_start_timestamp
        .map(|t| timestamp_from_wire(t, "CreateInstanceRequest.scheduledStartTimestamp"))
        .transpose()
        .map_err(bad)?
        .filter(|at| *at > now());
    let reuse = match request.orchestration_id_reuse_policy {
        Some(policy) => statuses(policy.replaceable_status, "replaceableStatus")?,
        None => Vec::new(),
    };
    let options = StartOptions {
        name: request.name,
        instance_id: Some(request.instance_id)
            .filter(|id| !id.is_empty())
            .map(InstanceId::new),
        input: request.input,
        version: request.version,
        tags: request.tags,
        scheduled_start: scheduled,
        reuse,
    };
    client.start(options).await.map_err(|e| status_of(&e))
}

/// The wall clock as a model timestamp.
fn now() -> netherite_core::Timestamp {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = i64::try_from(since.as_secs()).unwrap_or(i64::MAX);
    netherite_core::Timestamp::new(secs, since.subsec_nanos())
}

fn statuses(wire: Vec<i32>, field: &'static str) -> Result<Vec<OrchestrationStatus>, Status> {
    wire.into_iter()
        .map(|s| status_from_wire(s, field).map_err(bad))
        .collect()
}

/// `GetInstanceResponse` for a view, or `exists = false`.
pub(crate) fn instance_response(
    view: Option<InstanceView>,
) -> Result<pb::GetInstanceResponse, Status> {
    let Some(view) = view else {
        return Ok(pb::GetInstanceResponse::default());
    };
    let state =
        pb::OrchestrationState::try_from(view).map_err(|e| Status::internal(e.to_string()))?;
    Ok(pb::GetInstanceResponse {
        exists: true,
        orchestration_state: Some(state),
    })
}

/// `WaitForInstanceStart` / `WaitForInstanceCompletion`; an unknown instance is answered at
/// once with `exists = false`.
pub(crate) async fn wait(
    client: &Client,
    request: Request<pb::GetInstanceRequest>,
    until: Until,
) -> Result<pb::GetInstanceResponse, Status> {
    let deadline = grpc_timeout(request.metadata()).unwrap_or(WAIT_WITHOUT_DEADLINE);
    let request = request.into_inner();
    let id = instance_id(&request.instance_id)?;
    let waited = match until {
        Until::Start => client.wait_for_start(&id, deadline).await,
        Until::Completion => client.wait_for_completion(&id, deadline).await,
    };
    match waited {
        Ok(mut view) => {
            if !request.get_inputs_and_outputs {
                (view.input, view.output) = (None, None);
            }
            instance_response(Some(view))
        }
        Err(netherite::Error::NotFound { .. }) => Ok(pb::GetInstanceResponse::default()),
        Err(error) => Err(status_of(&error)),
    }
}

/// The call's deadline from its `grpc-timeout` header (`<digits><unit>`).
fn grpc_timeout(metadata: &tonic::metadata::MetadataMap) -> Option<Duration> {
    let text = metadata.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = text.split_at(text.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok()?;
    let duration = match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    };
    Some(duration)
}

/// Sends `request` for `instance` and expects `Accepted`.
async fn accepted(
    client: &Client,
    instance: &InstanceId,
    request: ClientRequest,
) -> Result<(), Status> {
    match client.send(instance, request).await {
        Ok(ClientResponse::Accepted) => Ok(()),
        Ok(other) => Err(Status::internal(format!("unexpected answer {other:?}"))),
        Err(error) => Err(status_of(&error)),
    }
}

pub(crate) async fn raise_event(client: &Client, r: pb::RaiseEventRequest) -> Result<(), Status> {
    let instance = instance_id(&r.instance_id)?;
    check(client, &r.input, "the event's data")?;
    let request = ClientRequest::RaiseEvent {
        instance: instance.clone(),
        name: r.name,
        input: r.input,
    };
    accepted(client, &instance, request).await
}

pub(crate) async fn terminate(client: &Client, r: pb::TerminateRequest) -> Result<(), Status> {
    let instance = instance_id(&r.instance_id)?;
    check(client, &r.output, "the termination's output")?;
    let request = ClientRequest::Terminate {
        instance: instance.clone(),
        reason: r.output,
        recurse: r.recursive,
    };
    accepted(client, &instance, request).await
}

/// `SuspendInstance` when `suspend`, else `ResumeInstance`.
pub(crate) async fn suspend(
    client: &Client,
    id: &str,
    reason: Payload,
    suspend: bool,
) -> Result<(), Status> {
    let instance = instance_id(id)?;
    check(client, &reason, "the reason")?;
    let request = if suspend {
        ClientRequest::Suspend {
            instance: instance.clone(),
            reason,
        }
    } else {
        ClientRequest::Resume {
            instance: instance.clone(),
            reason,
        }
    };
    accepted(client, &instance, request).await
}

pub(crate) async fn rewind(client: &Client, r: pb::RewindInstanceRequest) -> Result<(), Status> {
    let instance = instance_id(&r.instance_id)?;
    check(client, &r.reason, "the reason")?;
    let request = ClientRequest::Rewind {
        instance: instance.clone(),
        reason: r.reason,
    };
    accepted(client, &instance, request).await
}

/// `QueryInstances`: one page of the task hub's instances, in creation order.
pub(crate) async fn query(
    client: &Client,
    request: pb::QueryInstancesRequest,
) -> Result<pb::QueryInstancesResponse, Status> {
    let query = request.query.unwrap_or_default();
    let filter = InstanceFilter {
        statuses: statuses(query.runtime_status, "InstanceQuery.runtimeStatus")?,
        created_from: time(query.created_time_from, "InstanceQuery.createdTimeFrom")?,
        created_to: time(query.created_time_to, "InstanceQuery.createdTimeTo")?,
        id_prefix: query.instance_id_prefix,
        name: None,
    };
    let size = usize::try_from(query.max_instance_count).unwrap_or(0);
    let token = query.continuation_token.filter(|t| !t.is_empty());
    let page = client
        .query(&filter, token.as_deref(), size)
        .await
        .map_err(|e| status_of(&e))?;
    let mut states = Vec::with_capacity(page.instances.len());
    for mut view in page.instances {
        if !query.fetch_inputs_and_outputs {
            (view.input, view.output) = (None, None);
        }
        states.push(
            pb::OrchestrationState::try_from(view).map_err(|e| Status::internal(e.to_string()))?,
        );
    }
    Ok(pb::QueryInstancesResponse {
        orchestration_state: states,
        continuation_token: page.next,
    })
}

/// `ListInstanceIds`: finished instances (of the given statuses, else any terminal one)
/// completed in the given range, a page at a time; the key is the query's page token, so the
/// order is by creation time, not by completion time.
pub(crate) async fn list_ids(
    client: &Client,
    request: pb::ListInstanceIdsRequest,
) -> Result<pb::ListInstanceIdsResponse, Status> {
    let mut wanted = statuses(
        request.runtime_status,
        "ListInstanceIdsRequest.runtimeStatus",
    )?;
    if wanted.is_empty() {
        wanted = OrchestrationStatus::ALL
            .into_iter()
            .filter(|s| s.is_terminal())
            .collect();
    }
    let from = time(request.completed_time_from, "completedTimeFrom")?;
    let to = time(request.completed_time_to, "completedTimeTo")?;
    let filter = InstanceFilter {
        statuses: wanted,
        ..InstanceFilter::default()
    };
    let size = usize::try_from(request.page_size).unwrap_or(0);
    let token = request.last_instance_key.filter(|t| !t.is_empty());
    let page = client
        .query(&filter, token.as_deref(), size)
        .await
        .map_err(|e| status_of(&e))?;
    let in_range = |v: &InstanceView| {
        v.completed
            .is_some_and(|c| from.is_none_or(|f| c >= f) && to.is_none_or(|t| c < t))
    };
    let ids = page.instances.iter().filter(|v| in_range(v));
    Ok(pb::ListInstanceIdsResponse {
        instance_ids: ids.map(|v| v.instance_id.0.clone()).collect(),
        last_instance_key: page.next,
    })
}

fn time(
    t: Option<prost_types::Timestamp>,
    field: &'static str,
) -> Result<Option<netherite_core::Timestamp>, Status> {
    t.map(|t| timestamp_from_wire(t, field))
        .transpose()
        .map_err(bad)
}

/// `PurgeInstances` by id, by filter or by a batch of ids; only finished instances go.
pub(crate) async fn purge(
    client: &Client,
    request: pb::PurgeInstancesRequest,
) -> Result<pb::PurgeInstancesResponse, Status> {
    use pb::purge_instances_request::Request as By;
    let recursive = request.recursive;
    let deleted = match request.request {
        Some(By::InstanceId(id)) => {
            let id = instance_id(&id)?;
            client.purge(&id, recursive).await
        }
        Some(By::PurgeInstanceFilter(f)) => {
            let filter = InstanceFilter {
                statuses: statuses(f.runtime_status, "PurgeInstanceFilter.runtimeStatus")?,
                created_from: time(f.created_time_from, "createdTimeFrom")?,
                created_to: time(f.created_time_to, "createdTimeTo")?,
                ..InstanceFilter::default()
            };
            client.purge_by_filter(&filter, recursive).await
        }
        Some(By::InstanceBatch(batch)) => {
            let mut count = 0;
            for id in batch.instance_ids {
                count += client
                    .purge(&instance_id(&id)?, recursive)
                    .await
                    .map_err(|e| status_of(&e))?;
            }
            Ok(count)
        }
        None => {
            return Err(Status::invalid_argument(
                "PurgeInstancesRequest names nothing",
            ));
        }
    };
    let deleted = deleted.map_err(|e| status_of(&e))?;
    Ok(pb::PurgeInstancesResponse {
        deleted_instance_count: i32::try_from(deleted).unwrap_or(i32::MAX),
        is_complete: Some(true),
    })
}

/// The current execution's history, in chunks; `NOT_FOUND` for an unknown instance.
pub(crate) async fn history_chunks(
    client: &Client,
    id: &InstanceId,
) -> Result<Vec<pb::HistoryChunk>, Status> {
    let history = client.history(id).await.map_err(|e| status_of(&e))?;
    let events: Vec<pb::HistoryEvent> =
        convert::all("history", history).map_err(|e| Status::internal(e.to_string()))?;
    let chunks = events.chunks(HISTORY_CHUNK_EVENTS);
    let chunks = chunks.map(|events| pb::HistoryChunk {
        events: events.to_vec(),
    });
    Ok(chunks.collect())
}

/// An entity id must read `@name@key` with a non-empty name.
fn entity_id(id: &str) -> Result<InstanceId, Status> {
    let valid = id
        .strip_prefix('@')
        .and_then(|rest| rest.split_once('@'))
        .is_some_and(|(name, _)| !name.is_empty());
    if !valid {
        return Err(Status::invalid_argument(format!(
            "{id:?} is not an entity id (`@name@key`)"
        )));
    }
    Ok(InstanceId::new(id))
}

pub(crate) async fn signal_entity(
    client: &Client,
    r: pb::SignalEntityRequest,
) -> Result<(), Status> {
    let entity = entity_id(&r.instance_id)?;
    check(client, &r.input, "the operation's input")?;
    let signal = SignalEntity {
        entity: entity.clone(),
        operation: r.name,
        input: r.input,
        request_id: r.request_id,
        scheduled_time: time(r.scheduled_time, "SignalEntityRequest.scheduledTime")?,
    };
    accepted(client, &entity, ClientRequest::SignalEntity(signal)).await
}

pub(crate) async fn get_entity(
    client: &Client,
    r: pb::GetEntityRequest,
) -> Result<pb::GetEntityResponse, Status> {
    let entity = entity_id(&r.instance_id)?;
    let partition = netherite_core::partition_of(&entity, partitions(client));
    let read = ReadEvent::GetEntity {
        entity,
        include_state: r.include_state,
    };
    match client.read_partition(partition, read).await {
        Ok(ReadResult::Entity(Some(view))) => Ok(pb::GetEntityResponse {
            exists: true,
            entity: Some(view.into()),
        }),
        Ok(ReadResult::Entity(None)) => Ok(pb::GetEntityResponse::default()),
        Ok(other) => Err(Status::internal(format!("unexpected answer {other:?}"))),
        Err(error) => Err(status_of(&error)),
    }
}

fn partitions(client: &Client) -> u32 {
    client.partition_count()
}

/// `QueryEntities`: every partition's first page after the token, merged by id.
pub(crate) async fn query_entities(
    client: &Client,
    request: pb::QueryEntitiesRequest,
) -> Result<pb::QueryEntitiesResponse, Status> {
    let q = request.query.unwrap_or_default();
    let size = q
        .page_size
        .and_then(|n| usize::try_from(n).ok())
        .filter(|n| *n > 0)
        .unwrap_or(ENTITY_PAGE_DEFAULT);
    let query = EntityQuery {
        id_prefix: q.instance_id_starts_with,
        modified_from: time(q.last_modified_from, "EntityQuery.lastModifiedFrom")?,
        modified_to: time(q.last_modified_to, "EntityQuery.lastModifiedTo")?,
        include_state: q.include_state,
        include_transient: q.include_transient,
        after: q
            .continuation_token
            .filter(|t| !t.is_empty())
            .map(InstanceId::new),
        size,
    };
    let reads = (0..partitions(client)).map(|p| {
        let read = ReadEvent::QueryEntities(query.clone());
        client.read_partition(PartitionId(p), read)
    });
    let answers = try_join_all(reads).await.map_err(|e| status_of(&e))?;
    let mut pages = Vec::with_capacity(answers.len());
    for answer in answers {
        match answer {
            ReadResult::Entities(page) => pages.push(page),
            other => return Err(Status::internal(format!("unexpected answer {other:?}"))),
        }
    }
    Ok(merge_entities(pages, size))
}

fn merge_entities(pages: Vec<EntityPage>, size: usize) -> pb::QueryEntitiesResponse {
    let more = pages.iter().any(|p| p.next.is_some());
    let mut all: Vec<_> = pages.into_iter().flat_map(|p| p.entities).collect();
    all.sort_by(|a, b| a.entity.cmp(&b.entity));
    let cut = all.len() > size;
    all.truncate(size);
    let next = (cut || more)
        .then(|| all.last().map(|v| v.entity.0.clone()))
        .flatten();
    pb::QueryEntitiesResponse {
        entities: all.into_iter().map(Into::into).collect(),
        continuation_token: next,
    }
}
