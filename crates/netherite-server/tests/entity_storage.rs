//! `CleanEntityStorage` releasing a lock that its orchestration will never release.
//!
//! The test is the worker for everything: the entity's one operation (which gives it state,
//! since `GetEntity` shows only entities with state) and the orchestration that locks it. The
//! orchestration asks for the lock, gets it, and is then terminated; its worker ends it without
//! the unlock the SDKs would send, so the entity stays locked by an instance that is gone.

mod support;

use netherite::sdk::Registry;
use netherite_server::pb;
use netherite_server::pb::OrchestrationStatus::Terminated;
use netherite_server::pb::history_event::EventType;
use netherite_server::pb::operation_result::ResultType;
use netherite_server::pb::orchestrator_action::OrchestratorActionType;
use netherite_server::pb::send_entity_message_action::EntityMessageType;
use support::{
    Client, PATIENCE, answer, complete, entity_batch, finished, next, open, opens_with,
    send_answer, start, start_instance, status,
};
use tonic::Streaming;

const ENTITY: &str = "@counter@a";
const HOLDER: &str = "locker-1";

/// The entity's metadata, once `ready` holds for it (read every 20 ms until `PATIENCE`).
async fn entity_until(
    client: &Client,
    ready: impl Fn(&pb::EntityMetadata) -> bool,
) -> pb::EntityMetadata {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let request = pb::GetEntityRequest {
            instance_id: ENTITY.to_string(),
            include_state: true,
        };
        let answer = client.clone().get_entity(request).await;
        let answer = answer.expect("GetEntity answers").into_inner();
        if let Some(entity) = answer.entity.filter(|e| answer.exists && ready(e)) {
            return entity;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the entity never got there"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Signals the entity once and answers its batch with state `1`.
async fn give_state(client: &Client, stream: &mut Streaming<pb::WorkItem>) {
    let signal = pb::SignalEntityRequest {
        instance_id: ENTITY.to_string(),
        name: "set".to_string(),
        input: Some("1".to_string()),
        request_id: "set-1".to_string(),
        ..pb::SignalEntityRequest::default()
    };
    client
        .clone()
        .signal_entity(signal)
        .await
        .expect("the signal is accepted");
    let item = next(stream).await;
    let batch = entity_batch(&item);
    assert_eq!(batch.operation_requests.len(), 1);
    let success = ResultType::Success(pb::OperationResultSuccess::default());
    let result = pb::EntityBatchResult {
        results: vec![pb::OperationResult {
            result_type: Some(success),
        }],
        entity_state: Some("1".to_string()),
        completion_token: item.completion_token.clone(),
        ..pb::EntityBatchResult::default()
    };
    client
        .clone()
        .complete_entity_task(result)
        .await
        .expect("the batch is accepted");
    entity_until(client, |e| e.serialized_state.as_deref() == Some("1")).await;
}

/// The action that asks for the lock on the entity for critical section `section`.
fn lock(section: &str) -> pb::OrchestratorAction {
    let request = pb::EntityLockRequestedEvent {
        critical_section_id: section.to_string(),
        lock_set: vec![ENTITY.to_string()],
        position: 0,
        parent_instance_id: Some(HOLDER.to_string()),
    };
    let message = pb::SendEntityMessageAction {
        entity_message_type: Some(EntityMessageType::EntityLockRequested(request)),
    };
    pb::OrchestratorAction {
        id: 0,
        orchestrator_action_type: Some(OrchestratorActionType::SendEntityMessage(message)),
    }
}

/// How many locks a `CleanEntityStorage` that releases orphaned locks released.
async fn clean(client: &Client) -> i32 {
    let request = pb::CleanEntityStorageRequest {
        release_orphaned_locks: true,
        ..pb::CleanEntityStorageRequest::default()
    };
    let answer = client.clone().clean_entity_storage(request).await;
    answer
        .expect("CleanEntityStorage answers")
        .into_inner()
        .orphaned_locks_released
}

/// A lock whose holder was terminated without unlocking stays; `CleanEntityStorage` leaves
/// it alone while the holder runs, releases it (counting 1) once the holder has ended, and
/// finds nothing more to release after that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_entity_storage_releases_an_orphaned_lock() {
    let server = start(Registry::new()).await;
    let client = &server.client;
    let mut stream = open(client).await;
    give_state(client, &mut stream).await;

    // The holder locks the entity and is told so.
    start_instance(client, "Locker", HOLDER, "null").await;
    let first = next(&mut stream).await;
    send_answer(client, answer(&first, vec![lock("section-1")])).await;
    let granted = next(&mut stream).await;
    assert!(opens_with(support::episode(&granted), |e| matches!(e,
        EventType::EntityLockGranted(g) if g.critical_section_id == "section-1")));
    send_answer(client, answer(&granted, Vec::new())).await;
    let locked = entity_until(client, |e| e.locked_by.is_some()).await;
    assert_eq!(locked.locked_by.as_deref(), Some(HOLDER));
    assert_eq!(clean(client).await, 0, "the holder still runs");

    // Terminated, its worker ends it without sending the unlock.
    let terminate = pb::TerminateRequest {
        instance_id: HOLDER.to_string(),
        output: Some("\"stop\"".to_string()),
        recursive: false,
    };
    client
        .clone()
        .terminate_instance(terminate)
        .await
        .expect("terminate is accepted");
    let last = next(&mut stream).await;
    assert!(opens_with(support::episode(&last), |e| matches!(
        e,
        EventType::ExecutionTerminated(_)
    )));
    send_answer(
        client,
        answer(&last, vec![complete(1, Terminated, "\"stop\"")]),
    )
    .await;
    assert_eq!(status(&finished(client, HOLDER).await), Terminated);
    let orphaned = entity_until(client, |_| true).await;
    assert_eq!(orphaned.locked_by.as_deref(), Some(HOLDER));

    // The clean-up releases it, once.
    assert_eq!(clean(client).await, 1);
    let free = entity_until(client, |e| e.locked_by.is_none()).await;
    assert_eq!(free.serialized_state.as_deref(), Some("1"));
    assert_eq!(clean(client).await, 0);
    drop(stream);
    server.stop().await;
}
