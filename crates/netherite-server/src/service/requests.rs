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
use netherite_core::model::{EntityId, OrchestrationStatus, Payload};
use netherite_core::partition::index::InstanceFilter;
use netherite_core::partition::{
    ClientRequest, ClientResponse, EntityPage, EntityQuery, InstanceView, ReadEvent, ReadResult,
    SignalEntity,
};
use netherite_core::{InstanceId, PartitionId};
use tokio::sync::watch;
use tonic::{Request, Status};

use super::dispatch::stopped;
use super::status::status_of;
use super::{TAGS_BYTES_MAX, check_name, instance_id};
use crate::convert::{self, status_from_wire, timestamp_from_wire};
use crate::pb;

/// A call without a deadline waits in slices of this length, as long as it takes.
const WAIT_SLICE: Duration = Duration::from_secs(3600);
/// History events per `HistoryChunk`.
const HISTORY_CHUNK_EVENTS: usize = 256;
/// Ids per `ListInstanceIds` page when the request names no size.
const LIST_PAGE_DEFAULT: usize = 100;
/// The most query pages one `ListInstanceIds` call reads while it looks for matches.
const LIST_SCAN_PAGES_MAX: usize = 16;
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

/// Refuses a payload over the engine's limit (`RESOURCE_EXHAUSTED`), as the client does.
fn check(client: &Client, payload: &Payload, what: &str) -> Result<(), Status> {
    client
        .check_payload(payload, || what.to_string())
        .map_err(|e| status_of(&e))
}

/// `StartInstance`: an empty id gets a fresh one. A scheduled start counts only if it is in
/// the future (the JavaScript client sends the epoch when it means "now"); the partition
/// decides that, by the time of the update that creates the instance.
pub(crate) async fn start(
    client: &Client,
    request: pb::CreateInstanceRequest,
) -> Result<InstanceId, Status> {
    check(client, &request.input, "the input")?;
    check_name("name", &request.name)?;
    check_name("instanceId", &request.instance_id)?;
    check_name("version", request.version.as_deref().unwrap_or_default())?;
    let tags: usize = request.tags.iter().map(|(k, v)| k.len() + v.len()).sum();
    if tags > TAGS_BYTES_MAX {
        return Err(Status::invalid_argument(format!(
            "the tags take {tags} bytes, over the {TAGS_BYTES_MAX} allowed (tags_bytes_max)"
        )));
    }
    let scheduled = request
        .scheduled_start_timestamp
        .map(|t| timestamp_from_wire(t, "CreateInstanceRequest.scheduledStartTimestamp"))
        .transpose()
        .map_err(bad)?;
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
    mut stopping: watch::Receiver<bool>,
) -> Result<pb::GetInstanceResponse, Status> {
    let deadline = grpc_timeout(request.metadata()).map(ahead_of_deadline);
    let request = request.into_inner();
    let id = instance_id(&request.instance_id)?;
    let waiting = async {
        loop {
            let slice = deadline.unwrap_or(WAIT_SLICE);
            let waited = match until {
                Until::Start => client.wait_for_start(&id, slice).await,
                Until::Completion => client.wait_for_completion(&id, slice).await,
            };
            match waited {
                Err(netherite::Error::Timeout { .. }) if deadline.is_none() => continue,
                waited => break waited,
            }
        }
    };
    let waited = tokio::select! {
        waited = waiting => waited,
        () = stopped(&mut stopping) => {
            return Err(Status::unavailable("the server is shutting down"));
        }
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

/// How long a wait with `deadline` waits: a little less, so that it answers
/// `DEADLINE_EXCEEDED` itself before the gRPC layer's own timer cancels the call.
fn ahead_of_deadline(deadline: Duration) -> Duration {
    let margin = (deadline / 10).min(Duration::from_millis(100));
    deadline.saturating_sub(margin)
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
    check_name("name", &r.name)?;
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
/// completed in the given window, a page at a time. The key is the query's page token, so the
/// order is creation order, not completion order. One call reads query pages until it has
/// `pageSize` ids, the instances run out, or it has looked at [`LIST_SCAN_PAGES_MAX`] pages;
/// only in that last case can a page come back short (even empty) with a key to go on from.
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
    // An instance that completed before `to` was created before it.
    let filter = InstanceFilter {
        statuses: wanted,
        created_to: to,
        ..InstanceFilter::default()
    };
    let in_window = |v: &InstanceView| {
        v.completed
            .is_some_and(|c| from.is_none_or(|f| c >= f) && to.is_none_or(|t| c < t))
    };
    let size = match usize::try_from(request.page_size) {
        Ok(0) | Err(_) => LIST_PAGE_DEFAULT,
        Ok(n) => n,
    };
    let mut token = request.last_instance_key.filter(|t| !t.is_empty());
    let mut ids = Vec::new();
    for _ in 0..LIST_SCAN_PAGES_MAX {
        let page = client
            .query(&filter, token.as_deref(), size - ids.len())
            .await
            .map_err(|e| status_of(&e))?;
        let found = page.instances.iter().filter(|v| in_window(v));
        ids.extend(found.map(|v| v.instance_id.0.clone()));
        token = page.next;
        if token.is_none() || ids.len() >= size {
            break;
        }
    }
    Ok(pb::ListInstanceIdsResponse {
        instance_ids: ids,
        last_instance_key: token,
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
        Some(By::InstanceId(id)) => purge_one(client, &instance_id(&id)?, recursive).await,
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
                count += purge_one(client, &instance_id(&id)?, recursive)
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

/// Purges one instance; one that has not finished is left alone and counts as none deleted,
/// as the SDKs expect (the engine's own client reports it as `FailedPrecondition`).
async fn purge_one(
    client: &Client,
    id: &InstanceId,
    recursive: bool,
) -> Result<u64, netherite::Error> {
    match client.purge(id, recursive).await {
        Err(netherite::Error::FailedPrecondition { .. }) => Ok(0),
        done => done,
    }
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

/// An entity id must read `@name@key` with a non-empty name; the name is case-insensitive,
/// so the id is given in its canonical form (name lowercased), which places the entity.
fn entity_id(id: &str) -> Result<InstanceId, Status> {
    check_name("instanceId", id)?;
    match EntityId::parse(id) {
        Ok(entity) => Ok(entity.instance_id()),
        Err(error) => Err(Status::invalid_argument(format!(
            "{id:?} is not an entity id (`@name@key`): {error}"
        ))),
    }
}

pub(crate) async fn signal_entity(
    client: &Client,
    r: pb::SignalEntityRequest,
) -> Result<(), Status> {
    let entity = entity_id(&r.instance_id)?;
    check_name("name", &r.name)?;
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
    let partition = netherite_core::partition_of(&entity, client.partition_count());
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

/// `QueryEntities`: every partition's first page after the token, merged by id.
pub(crate) async fn query_entities(
    client: &Client,
    request: pb::QueryEntitiesRequest,
) -> Result<pb::QueryEntitiesResponse, Status> {
    let page = query_entity_views(client, request.query.unwrap_or_default()).await?;
    Ok(pb::QueryEntitiesResponse {
        entities: page.entities.into_iter().map(Into::into).collect(),
        continuation_token: page.next.map(|id| id.0),
    })
}

/// One page of entities across partitions, merged in id order.
async fn query_entity_views(client: &Client, q: pb::EntityQuery) -> Result<EntityPage, Status> {
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
    let reads = (0..client.partition_count()).map(|p| {
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

/// Merges the partitions' pages in id order. A partition whose page was cut (it has more)
/// may hold ids just past its last one, so nothing beyond the smallest such cut is returned:
/// the next page starts there, and no entity is skipped whatever the page sizes.
fn merge_entities(pages: Vec<EntityPage>, size: usize) -> EntityPage {
    let cut = pages.iter().filter_map(|p| p.next.clone()).min();
    let mut all: Vec<_> = pages.into_iter().flat_map(|p| p.entities).collect();
    all.sort_by(|a, b| a.entity.cmp(&b.entity));
    if let Some(cut) = &cut {
        all.retain(|v| &v.entity <= cut);
    }
    let more = cut.is_some() || all.len() > size;
    all.truncate(size);
    let next = more.then(|| all.last().map(|v| v.entity.clone())).flatten();
    EntityPage {
        entities: all,
        next,
    }
}

/// `CleanEntityStorage`, one page of entities per call: with `releaseOrphanedLocks`, each lock
/// whose holder is gone or finished is released (the entity's next waiter then gets it). Empty
/// entities need no removal: a partition forgets an entity as soon as nothing is left of it.
pub(crate) async fn clean_entity_storage(
    client: &Client,
    request: pb::CleanEntityStorageRequest,
) -> Result<pb::CleanEntityStorageResponse, Status> {
    let query = pb::EntityQuery {
        include_transient: true,
        continuation_token: request.continuation_token,
        ..pb::EntityQuery::default()
    };
    let page = query_entity_views(client, query).await?;
    let mut released = 0;
    if request.release_orphaned_locks {
        for view in &page.entities {
            let Some(holder) = &view.locked_by else {
                continue;
            };
            if holder_is_active(client, &holder.instance_id).await? {
                continue;
            }
            let release = ClientRequest::ReleaseEntityLock {
                entity: view.entity.clone(),
                holder: holder.clone(),
            };
            match client.send(&view.entity, release).await {
                Ok(ClientResponse::LockReleased(true)) => released += 1,
                Ok(_) => {}
                Err(error) => return Err(status_of(&error)),
            }
        }
    }
    Ok(pb::CleanEntityStorageResponse {
        continuation_token: page.next.map(|id| id.0),
        empty_entities_removed: 0,
        orphaned_locks_released: released,
    })
}

/// Whether the orchestration holding a lock still runs (or may run: pending or suspended).
async fn holder_is_active(client: &Client, holder: &InstanceId) -> Result<bool, Status> {
    let view = client
        .get_state(holder, false)
        .await
        .map_err(|e| status_of(&e))?;
    Ok(view.is_some_and(|v| !v.status.is_terminal()))
}

#[cfg(test)]
mod tests {
    use netherite_core::InstanceId;
    use netherite_core::partition::{EntityPage, EntityView};

    use super::merge_entities;

    fn page(ids: &[&str], more: bool) -> EntityPage {
        let entities: Vec<EntityView> = ids
            .iter()
            .map(|id| EntityView {
                entity: InstanceId::new(*id),
                state: None,
                locked_by: None,
                backlog: 0,
                last_modified: None,
            })
            .collect();
        let next = more
            .then(|| entities.last().map(|v| v.entity.clone()))
            .flatten();
        EntityPage { entities, next }
    }

    fn ids(page: &EntityPage) -> Vec<&str> {
        page.entities.iter().map(|v| v.entity.as_str()).collect()
    }

    /// A page asked for more than one partition serves stops at the first partition's cut,
    /// so the entities that partition still holds past it come on the next page.
    #[test]
    fn a_merged_page_stops_at_the_first_cut() {
        let cut = page(&["@e@a", "@e@c"], true);
        let whole = page(&["@e@b", "@e@d", "@e@f"], false);
        let merged = merge_entities(vec![cut, whole], 5000);
        assert_eq!(ids(&merged), ["@e@a", "@e@b", "@e@c"]);
        assert_eq!(merged.next.as_ref().map(InstanceId::as_str), Some("@e@c"));
    }

    /// Pages that hold everything give everything, without a token.
    #[test]
    fn uncut_pages_end_the_query() {
        let merged = merge_entities(vec![page(&["@e@b"], false), page(&["@e@a"], false)], 10);
        assert_eq!(ids(&merged), ["@e@a", "@e@b"]);
        assert!(merged.next.is_none());
    }
}
