//! The Durable Task sidecar service (`TaskHubSidecarService`) over a netherite engine.
//!
//! [`Sidecar`] holds the engine's [`Client`] for the calls that start, inspect and steer
//! instances, and a dispatcher over the engine's [`RemoteWork`] for the work-item streams.
//! Each call turns its request into the model's terms (see `crate::convert` and `requests`),
//! asks the engine, and maps the answer back; every engine error has one gRPC status (see
//! `status`). Nothing here keeps state that must survive a crash: instances live in the
//! engine's partitions, and work handed to a worker that vanishes goes back to the queue.

mod dispatch;
mod requests;
mod status;
mod work;

use std::pin::Pin;
use std::sync::Arc;

use netherite::client::Client;
use netherite::remote::RemoteWork;
use netherite_core::InstanceId;
use tokio::sync::watch;
use tonic::codegen::tokio_stream::Stream;
use tonic::codegen::tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use self::dispatch::{Claim, Dispatcher, Kind, StreamSpec};
pub use self::dispatch::{
    HEALTH_PING_EVERY, OUTSTANDING_DEFAULT, OUTSTANDING_MAX, WORK_ITEM_BYTES_MAX,
};
pub use self::status::{STATUS_MESSAGE_BYTES_MAX, status_of};
pub use self::work::{INVALID_ANSWER, UNSENDABLE_WORK};
use crate::pb;
use crate::pb::task_hub_sidecar_service_server::TaskHubSidecarService;

/// The largest message the service decodes: payloads up to the engine's limit, with room for
/// the rest of an episode's answer. The gRPC layer refuses a larger one with `OUT_OF_RANGE`
/// before reading it.
pub fn decode_bytes_max(payload_bytes_max: u64) -> usize {
    let max = payload_bytes_max.saturating_mul(4).max(16 << 20);
    usize::try_from(max).unwrap_or(usize::MAX)
}

/// The service: one engine client and the work-item dispatcher.
#[derive(Debug, Clone)]
pub struct Sidecar {
    client: Client,
    dispatcher: Arc<Dispatcher>,
    stop: Arc<watch::Sender<bool>>,
}

/// A boxed stream of one kind of message, for the two server-streaming calls.
type ItemStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

impl Sidecar {
    /// A service over `client`'s engine, whose outside work goes to `work`.
    pub fn new(client: Client, work: RemoteWork) -> Sidecar {
        let (stop, stopping) = watch::channel(false);
        Sidecar {
            client,
            dispatcher: Arc::new(Dispatcher::new(work, stopping)),
            stop: Arc::new(stop),
        }
    }

    /// Ends every work-item stream and long poll with `UNAVAILABLE` (workers and clients
    /// reconnect elsewhere or later), so that a graceful stop does not wait for them.
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    fn stopping(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }

    /// Work items handed to workers and not answered yet.
    pub fn outstanding(&self) -> usize {
        self.dispatcher.outstanding()
    }

    fn claim(&self, token: &str, fallback: impl FnOnce() -> Claim) -> Claim {
        if token.is_empty() {
            fallback()
        } else {
            Claim::Token(token.to_string())
        }
    }
}

/// The longest instance id, orchestration or activity name, event name or version accepted.
pub const NAME_BYTES_MAX: usize = 4096;
/// The most bytes an instance's tags may take, keys and values together.
pub const TAGS_BYTES_MAX: usize = 64 << 10;

/// An empty or oversized id is a client's mistake, refused before anything is asked.
fn instance_id(id: &str) -> Result<InstanceId, Status> {
    if id.is_empty() {
        return Err(Status::invalid_argument("instanceId must not be empty"));
    }
    check_name("instanceId", id)?;
    Ok(InstanceId::new(id))
}

/// Refuses a name or id over [`NAME_BYTES_MAX`] with `INVALID_ARGUMENT`.
fn check_name(field: &str, value: &str) -> Result<(), Status> {
    if value.len() > NAME_BYTES_MAX {
        return Err(Status::invalid_argument(format!(
            "{field} is {} bytes, over the {NAME_BYTES_MAX} allowed (name_bytes_max)",
            value.len()
        )));
    }
    Ok(())
}

#[tonic::async_trait]
impl TaskHubSidecarService for Sidecar {
    async fn hello(&self, _: Request<()>) -> Result<Response<()>, Status> {
        Ok(Response::new(()))
    }

    async fn start_instance(
        &self,
        request: Request<pb::CreateInstanceRequest>,
    ) -> Result<Response<pb::CreateInstanceResponse>, Status> {
        let id = requests::start(&self.client, request.into_inner()).await?;
        Ok(Response::new(pb::CreateInstanceResponse {
            instance_id: id.0,
        }))
    }

    async fn get_instance(
        &self,
        request: Request<pb::GetInstanceRequest>,
    ) -> Result<Response<pb::GetInstanceResponse>, Status> {
        let request = request.into_inner();
        let id = instance_id(&request.instance_id)?;
        let view = self
            .client
            .get_state(&id, request.get_inputs_and_outputs)
            .await
            .map_err(|e| status_of(&e))?;
        Ok(Response::new(requests::instance_response(view)?))
    }

    async fn wait_for_instance_start(
        &self,
        request: Request<pb::GetInstanceRequest>,
    ) -> Result<Response<pb::GetInstanceResponse>, Status> {
        let until = requests::Until::Start;
        let answer = requests::wait(&self.client, request, until, self.stopping()).await?;
        Ok(Response::new(answer))
    }

    async fn wait_for_instance_completion(
        &self,
        request: Request<pb::GetInstanceRequest>,
    ) -> Result<Response<pb::GetInstanceResponse>, Status> {
        let until = requests::Until::Completion;
        let answer = requests::wait(&self.client, request, until, self.stopping()).await?;
        Ok(Response::new(answer))
    }

    async fn raise_event(
        &self,
        request: Request<pb::RaiseEventRequest>,
    ) -> Result<Response<pb::RaiseEventResponse>, Status> {
        requests::raise_event(&self.client, request.into_inner()).await?;
        Ok(Response::new(pb::RaiseEventResponse {}))
    }

    async fn terminate_instance(
        &self,
        request: Request<pb::TerminateRequest>,
    ) -> Result<Response<pb::TerminateResponse>, Status> {
        requests::terminate(&self.client, request.into_inner()).await?;
        Ok(Response::new(pb::TerminateResponse {}))
    }

    async fn suspend_instance(
        &self,
        request: Request<pb::SuspendRequest>,
    ) -> Result<Response<pb::SuspendResponse>, Status> {
        let request = request.into_inner();
        requests::suspend(&self.client, &request.instance_id, request.reason, true).await?;
        Ok(Response::new(pb::SuspendResponse {}))
    }

    async fn resume_instance(
        &self,
        request: Request<pb::ResumeRequest>,
    ) -> Result<Response<pb::ResumeResponse>, Status> {
        let request = request.into_inner();
        requests::suspend(&self.client, &request.instance_id, request.reason, false).await?;
        Ok(Response::new(pb::ResumeResponse {}))
    }

    async fn rewind_instance(
        &self,
        request: Request<pb::RewindInstanceRequest>,
    ) -> Result<Response<pb::RewindInstanceResponse>, Status> {
        requests::rewind(&self.client, request.into_inner()).await?;
        Ok(Response::new(pb::RewindInstanceResponse {}))
    }

    async fn restart_instance(
        &self,
        request: Request<pb::RestartInstanceRequest>,
    ) -> Result<Response<pb::RestartInstanceResponse>, Status> {
        let request = request.into_inner();
        let id = instance_id(&request.instance_id)?;
        let new_id = self
            .client
            .restart(&id, request.restart_with_new_instance_id)
            .await
            .map_err(|e| status_of(&e))?;
        Ok(Response::new(pb::RestartInstanceResponse {
            instance_id: new_id.0,
        }))
    }

    async fn query_instances(
        &self,
        request: Request<pb::QueryInstancesRequest>,
    ) -> Result<Response<pb::QueryInstancesResponse>, Status> {
        let answer = requests::query(&self.client, request.into_inner()).await?;
        Ok(Response::new(answer))
    }

    async fn list_instance_ids(
        &self,
        request: Request<pb::ListInstanceIdsRequest>,
    ) -> Result<Response<pb::ListInstanceIdsResponse>, Status> {
        let answer = requests::list_ids(&self.client, request.into_inner()).await?;
        Ok(Response::new(answer))
    }

    async fn purge_instances(
        &self,
        request: Request<pb::PurgeInstancesRequest>,
    ) -> Result<Response<pb::PurgeInstancesResponse>, Status> {
        let answer = requests::purge(&self.client, request.into_inner()).await?;
        Ok(Response::new(answer))
    }

    type StreamInstanceHistoryStream = ItemStream<pb::HistoryChunk>;

    async fn stream_instance_history(
        &self,
        request: Request<pb::StreamInstanceHistoryRequest>,
    ) -> Result<Response<Self::StreamInstanceHistoryStream>, Status> {
        let request = request.into_inner();
        let id = instance_id(&request.instance_id)?;
        let chunks = requests::history_chunks(&self.client, &id).await?;
        let stream = tonic::codegen::tokio_stream::iter(chunks.into_iter().map(Ok));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn skip_graceful_orchestration_terminations(
        &self,
        _: Request<pb::SkipGracefulOrchestrationTerminationsRequest>,
    ) -> Result<Response<pb::SkipGracefulOrchestrationTerminationsResponse>, Status> {
        Err(Status::unimplemented(
            "SkipGracefulOrchestrationTerminations is a Durable Task Scheduler call",
        ))
    }

    async fn signal_entity(
        &self,
        request: Request<pb::SignalEntityRequest>,
    ) -> Result<Response<pb::SignalEntityResponse>, Status> {
        requests::signal_entity(&self.client, request.into_inner()).await?;
        Ok(Response::new(pb::SignalEntityResponse {}))
    }

    async fn get_entity(
        &self,
        request: Request<pb::GetEntityRequest>,
    ) -> Result<Response<pb::GetEntityResponse>, Status> {
        let answer = requests::get_entity(&self.client, request.into_inner()).await?;
        Ok(Response::new(answer))
    }

    async fn query_entities(
        &self,
        request: Request<pb::QueryEntitiesRequest>,
    ) -> Result<Response<pb::QueryEntitiesResponse>, Status> {
        let answer = requests::query_entities(&self.client, request.into_inner()).await?;
        Ok(Response::new(answer))
    }

    async fn clean_entity_storage(
        &self,
        request: Request<pb::CleanEntityStorageRequest>,
    ) -> Result<Response<pb::CleanEntityStorageResponse>, Status> {
        let answer = requests::clean_entity_storage(&self.client, request.into_inner()).await?;
        Ok(Response::new(answer))
    }

    type GetWorkItemsStream = ItemStream<pb::WorkItem>;

    async fn get_work_items(
        &self,
        request: Request<pb::GetWorkItemsRequest>,
    ) -> Result<Response<Self::GetWorkItemsStream>, Status> {
        let spec = StreamSpec::from_request(request.get_ref());
        let items = self.dispatcher.open(spec);
        Ok(Response::new(Box::pin(ReceiverStream::new(items))))
    }

    async fn complete_orchestrator_task(
        &self,
        request: Request<pb::OrchestratorResponse>,
    ) -> Result<Response<pb::CompleteTaskResponse>, Status> {
        let answer = request.into_inner();
        let instance = answer.instance_id.clone();
        let claim = self.claim(&answer.completion_token, || Claim::Instance(instance));
        if let Some(assignment) = self.dispatcher.claim(&claim, Kind::Episode)? {
            work::complete_episode(assignment, answer).await?;
        } else {
            tracing::debug!(instance = %answer.instance_id, "stale episode answer ignored");
        }
        Ok(Response::new(pb::CompleteTaskResponse {}))
    }

    async fn complete_activity_task(
        &self,
        request: Request<pb::ActivityResponse>,
    ) -> Result<Response<pb::CompleteTaskResponse>, Status> {
        let answer = request.into_inner();
        let (instance, task) = (answer.instance_id.clone(), answer.task_id);
        let claim = self.claim(&answer.completion_token, || Claim::Task(instance, task));
        if let Some(assignment) = self.dispatcher.claim(&claim, Kind::Activity)? {
            work::complete_activity(assignment, answer).await?;
        } else {
            tracing::debug!(instance = %answer.instance_id, task = answer.task_id,
                "stale activity answer ignored");
        }
        Ok(Response::new(pb::CompleteTaskResponse {}))
    }

    async fn complete_entity_task(
        &self,
        request: Request<pb::EntityBatchResult>,
    ) -> Result<Response<pb::CompleteTaskResponse>, Status> {
        let answer = request.into_inner();
        if answer.completion_token.is_empty() {
            // The result names no entity, so only its token can say which batch it answers.
            return Err(Status::invalid_argument(
                "an entity batch result needs the completionToken of its work item",
            ));
        }
        let claim = Claim::Token(answer.completion_token.clone());
        if let Some(assignment) = self.dispatcher.claim(&claim, Kind::Entity)? {
            work::complete_entity_batch(assignment, answer, self.dispatcher.work()).await?;
        }
        Ok(Response::new(pb::CompleteTaskResponse {}))
    }

    async fn abandon_task_orchestrator_work_item(
        &self,
        request: Request<pb::AbandonOrchestrationTaskRequest>,
    ) -> Result<Response<pb::AbandonOrchestrationTaskResponse>, Status> {
        self.abandon(&request.get_ref().completion_token, Kind::Episode)?;
        Ok(Response::new(pb::AbandonOrchestrationTaskResponse {}))
    }

    async fn abandon_task_activity_work_item(
        &self,
        request: Request<pb::AbandonActivityTaskRequest>,
    ) -> Result<Response<pb::AbandonActivityTaskResponse>, Status> {
        self.abandon(&request.get_ref().completion_token, Kind::Activity)?;
        Ok(Response::new(pb::AbandonActivityTaskResponse {}))
    }

    async fn abandon_task_entity_work_item(
        &self,
        request: Request<pb::AbandonEntityTaskRequest>,
    ) -> Result<Response<pb::AbandonEntityTaskResponse>, Status> {
        self.abandon(&request.get_ref().completion_token, Kind::Entity)?;
        Ok(Response::new(pb::AbandonEntityTaskResponse {}))
    }

    async fn create_task_hub(
        &self,
        _: Request<pb::CreateTaskHubRequest>,
    ) -> Result<Response<pb::CreateTaskHubResponse>, Status> {
        Err(Status::unimplemented(
            "the task hub is created by `netherite serve` on first start",
        ))
    }

    async fn delete_task_hub(
        &self,
        _: Request<pb::DeleteTaskHubRequest>,
    ) -> Result<Response<pb::DeleteTaskHubResponse>, Status> {
        Err(Status::unimplemented(
            "delete the task hub's data directory while the server is stopped",
        ))
    }
}

impl Sidecar {
    /// Gives an outstanding item back; a stale token is a no-op, an unknown one is refused.
    fn abandon(&self, token: &str, kind: Kind) -> Result<(), Status> {
        if token.is_empty() {
            return Err(Status::invalid_argument(
                "completionToken must not be empty",
            ));
        }
        let claim = Claim::Token(token.to_string());
        if let Some(assignment) = self.dispatcher.claim(&claim, kind)? {
            assignment.abandon(self.dispatcher.work());
        }
        Ok(())
    }
}
