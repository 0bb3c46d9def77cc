//! What the sidecar stories share: a real server on a temporary task hub, a tonic client to it,
//! and the few moves of a worker written by hand (open a stream, take the next item, answer).
//!
//! Each story starts its own server on `127.0.0.1:0`, so stories run in parallel without
//! sharing instances or work, and stops it at the end, which checks that the server shuts
//! down cleanly after whatever the story did to it.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use netherite::sdk::Registry;
use netherite::settings::Settings;
use netherite_server::pb;
use netherite_server::pb::history_event::EventType;
use netherite_server::pb::orchestrator_action::OrchestratorActionType;
use netherite_server::pb::task_hub_sidecar_service_client::TaskHubSidecarServiceClient;
use netherite_server::pb::work_item::Request as ItemKind;
use netherite_server::serve::{Backend, ServeError, serve};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tonic::transport::Channel;
use tonic::{Code, Request, Status, Streaming};

/// The generated client over a plain loopback channel.
pub(crate) type Client = TaskHubSidecarServiceClient<Channel>;

/// How long a story waits for anything before it calls the server stuck.
pub(crate) const PATIENCE: Duration = Duration::from_secs(5);
/// How long a story watches a stream to be sure that nothing comes.
pub(crate) const QUIET: Duration = Duration::from_millis(300);
/// Partitions of the stories' task hubs: few, so the server starts fast.
pub(crate) const PARTITIONS: u32 = 4;

/// A running server, its client and its data directory.
pub(crate) struct Server {
    /// A client connected to it.
    pub(crate) client: Client,
    /// The address it is bound to.
    pub(crate) address: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), ServeError>>,
    _dir: TempDir,
}

/// Settings for a task hub in `dir`.
pub(crate) fn settings(dir: &Path) -> Settings {
    Settings {
        partition_count: PARTITIONS,
        data_dir: dir.to_path_buf(),
        ..Settings::default()
    }
}

/// A server with `registry` and the stories' settings.
pub(crate) async fn start(registry: Registry) -> Server {
    start_with(registry, |settings| settings).await
}

/// A server with `registry` and the stories' settings as `tweak` changes them.
pub(crate) async fn start_with(
    registry: Registry,
    tweak: impl FnOnce(Settings) -> Settings,
) -> Server {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let settings = tweak(settings(dir.path()));
    let (ready, bound) = oneshot::channel();
    let (stop, stopped) = oneshot::channel::<()>();
    let address = "127.0.0.1:0".parse().expect("a loopback address");
    let task = tokio::spawn(serve(
        settings,
        registry,
        Backend::Local,
        address,
        move |address| {
            let _ = ready.send(address);
        },
        async move {
            let _ = stopped.await;
        },
    ));

    let Ok(address) = bound.await else {
        panic!("the server did not start: {:?}", task.await);
    };
    let client = Client::connect(format!("http://{address}"))
        .await
        .expect("the client connects");
    Server {
        client,
        address,
        stop,
        task,
        _dir: dir,
    }
}

impl Server {
    /// A second, independent connection to the server.
    pub(crate) async fn connect(&self) -> Client {
        Client::connect(format!("http://{}", self.address))
            .await
            .expect("the client connects")
    }

    /// Stops the server and checks that it shut down cleanly and in time.
    pub(crate) async fn stop(self) {
        drop(self.client);
        let _ = self.stop.send(());
        let served = tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("the server stops in time")
            .expect("the server task does not panic");
        served.expect("the server shuts down cleanly");
    }
}

/// The code of a call that must fail.
pub(crate) fn code<T: std::fmt::Debug>(result: Result<T, Status>) -> Code {
    match result {
        Ok(answer) => panic!("the call was expected to fail, but answered {answer:?}"),
        Err(status) => status.code(),
    }
}

/// Starts orchestration `name` as `id` with `input` (JSON text).
pub(crate) async fn start_instance(client: &Client, name: &str, id: &str, input: &str) -> String {
    let request = pb::CreateInstanceRequest {
        instance_id: id.to_string(),
        name: name.to_string(),
        input: Some(input.to_string()),
        ..pb::CreateInstanceRequest::default()
    };
    let answer = client.clone().start_instance(request).await;
    answer
        .expect("the instance starts")
        .into_inner()
        .instance_id
}

/// The instance's state with its payloads, or `None` if it does not exist.
pub(crate) async fn get_instance(client: &Client, id: &str) -> Option<pb::OrchestrationState> {
    let request = pb::GetInstanceRequest {
        instance_id: id.to_string(),
        get_inputs_and_outputs: true,
    };
    let answer = client.clone().get_instance(request).await;
    let answer = answer.expect("GetInstance answers").into_inner();
    assert_eq!(answer.exists, answer.orchestration_state.is_some());
    answer.orchestration_state
}

/// Waits (a long poll with a deadline) for the instance to finish, and returns its state.
pub(crate) async fn finished(client: &Client, id: &str) -> pb::OrchestrationState {
    let mut request = Request::new(pb::GetInstanceRequest {
        instance_id: id.to_string(),
        get_inputs_and_outputs: true,
    });
    request.set_timeout(PATIENCE);
    let answer = client.clone().wait_for_instance_completion(request).await;
    let answer = answer.expect("the instance finishes in time").into_inner();
    answer.orchestration_state.expect("the instance exists")
}

/// The status of a state, as the generated enum.
pub(crate) fn status(state: &pb::OrchestrationState) -> pb::OrchestrationStatus {
    pb::OrchestrationStatus::try_from(state.orchestration_status).expect("a known status")
}

/// The current execution's history, all chunks joined.
pub(crate) async fn history(client: &Client, id: &str) -> Vec<pb::HistoryEvent> {
    let request = pb::StreamInstanceHistoryRequest {
        instance_id: id.to_string(),
        ..pb::StreamInstanceHistoryRequest::default()
    };
    let answer = client.clone().stream_instance_history(request).await;
    let mut chunks = answer.expect("the history streams").into_inner();
    let mut events = Vec::new();
    while let Some(chunk) = chunks.message().await.expect("a history chunk") {
        events.extend(chunk.events);
    }
    events
}

/// How many of `events` `matches` picks.
pub(crate) fn count(events: &[pb::HistoryEvent], matches: impl Fn(&EventType) -> bool) -> usize {
    let kinds = events.iter().filter_map(|e| e.event_type.as_ref());
    kinds.filter(|kind| matches(kind)).count()
}

/// A work-item stream with the server's defaults: no caps asked for, no filters.
pub(crate) async fn open(client: &Client) -> Streaming<pb::WorkItem> {
    open_with(client, pb::GetWorkItemsRequest::default()).await
}

/// A work-item stream as `request` asks for it.
pub(crate) async fn open_with(
    client: &Client,
    request: pb::GetWorkItemsRequest,
) -> Streaming<pb::WorkItem> {
    let answer = client.clone().get_work_items(request).await;
    answer.expect("a work-item stream").into_inner()
}

/// The next work item on `stream`, health pings skipped; the story fails if none comes in time.
pub(crate) async fn next(stream: &mut Streaming<pb::WorkItem>) -> pb::WorkItem {
    within(stream, PATIENCE).await.expect("a work item in time")
}

/// The next work item on `stream` within `wait`, health pings skipped, or `None`.
pub(crate) async fn within(
    stream: &mut Streaming<pb::WorkItem>,
    wait: Duration,
) -> Option<pb::WorkItem> {
    let deadline = Instant::now() + wait;
    loop {
        let message = tokio::time::timeout_at(deadline, stream.message())
            .await
            .ok()?;
        let item = message.expect("the stream does not fail");
        let item = item.expect("the stream does not end");
        if !matches!(item.request, Some(ItemKind::HealthPing(_))) {
            return Some(item);
        }
    }
}

/// The episode a work item carries.
pub(crate) fn episode(item: &pb::WorkItem) -> &pb::OrchestratorRequest {
    match &item.request {
        Some(ItemKind::OrchestratorRequest(episode)) => episode,
        other => panic!("expected an orchestratorRequest, got {other:?}"),
    }
}

/// The activity a work item carries.
pub(crate) fn activity(item: &pb::WorkItem) -> &pb::ActivityRequest {
    match &item.request {
        Some(ItemKind::ActivityRequest(activity)) => activity,
        other => panic!("expected an activityRequest, got {other:?}"),
    }
}

/// The entity batch a work item carries.
pub(crate) fn entity_batch(item: &pb::WorkItem) -> &pb::EntityRequest {
    match &item.request {
        Some(ItemKind::EntityRequestV2(batch)) => batch,
        other => panic!("expected an entityRequestV2, got {other:?}"),
    }
}

/// An action `id` that runs activity `name` with `input` (JSON text).
pub(crate) fn schedule(id: i32, name: &str, input: &str) -> pb::OrchestratorAction {
    let task = pb::ScheduleTaskAction {
        name: name.to_string(),
        input: Some(input.to_string()),
        ..pb::ScheduleTaskAction::default()
    };
    pb::OrchestratorAction {
        id,
        orchestrator_action_type: Some(OrchestratorActionType::ScheduleTask(task)),
    }
}

/// An action `id` that ends the orchestration with `status` and `result` (JSON text).
pub(crate) fn complete(
    id: i32,
    status: pb::OrchestrationStatus,
    result: &str,
) -> pb::OrchestratorAction {
    let done = pb::CompleteOrchestrationAction {
        orchestration_status: status as i32,
        result: Some(result.to_string()),
        ..pb::CompleteOrchestrationAction::default()
    };
    pb::OrchestratorAction {
        id,
        orchestrator_action_type: Some(OrchestratorActionType::CompleteOrchestration(done)),
    }
}

/// The answer to an episode item: `actions`, under the item's token.
pub(crate) fn answer(
    item: &pb::WorkItem,
    actions: Vec<pb::OrchestratorAction>,
) -> pb::OrchestratorResponse {
    pb::OrchestratorResponse {
        instance_id: episode(item).instance_id.clone(),
        actions,
        completion_token: item.completion_token.clone(),
        ..pb::OrchestratorResponse::default()
    }
}

/// The answer to an activity item: `output` (JSON text), under the item's token.
pub(crate) fn output(item: &pb::WorkItem, output: &str) -> pb::ActivityResponse {
    let request = activity(item);
    let instance = request.orchestration_instance.as_ref();
    pb::ActivityResponse {
        instance_id: instance
            .expect("an activity names its orchestration")
            .instance_id
            .clone(),
        task_id: request.task_id,
        result: Some(output.to_string()),
        failure_details: None,
        completion_token: item.completion_token.clone(),
    }
}

/// Sends an episode's answer, which must be accepted.
pub(crate) async fn send_answer(client: &Client, answer: pb::OrchestratorResponse) {
    let sent = client.clone().complete_orchestrator_task(answer).await;
    sent.expect("the episode's answer is accepted");
}

/// Sends an activity's result, which must be accepted.
pub(crate) async fn send_output(client: &Client, output: pb::ActivityResponse) {
    let sent = client.clone().complete_activity_task(output).await;
    sent.expect("the activity's result is accepted");
}

/// Whether an episode's new events begin with `orchestratorStarted` and hold `kind`'s event.
pub(crate) fn opens_with(
    episode: &pb::OrchestratorRequest,
    kind: impl Fn(&EventType) -> bool,
) -> bool {
    let first = episode
        .new_events
        .first()
        .and_then(|e| e.event_type.as_ref());
    matches!(first, Some(EventType::OrchestratorStarted(_))) && count(&episode.new_events, kind) > 0
}
