//! The work-item stream as a worker of the protocol sees it, with this test as the worker.
//!
//! The orchestrations here have names no Rust registry knows, so every episode and activity
//! goes to `GetWorkItems`; the test answers them by hand through the tonic client. The stories
//! show one orchestration from start to output, an item handed out again after its stream
//! ended unanswered, the per-stream cap on outstanding activities, name filters, and workers
//! that answer without completion tokens.

mod support;

use netherite::sdk::Registry;
use netherite_server::pb;
use netherite_server::pb::OrchestrationStatus::{Completed, Failed};
use netherite_server::pb::history_event::EventType;
use netherite_server::pb::work_item::Request as ItemKind;
use support::{
    QUIET, activity, answer, code, complete, episode, finished, next, open, open_with, opens_with,
    output, schedule, send_answer, send_output, start, start_instance, status, within,
};
use tonic::Code;

/// A worker runs a whole orchestration over the protocol: the first episode holds the start,
/// its `scheduleTask` comes back as an activity, the activity's result opens the second
/// episode, and that episode's `completeOrchestration` is what the client's wait sees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_worker_runs_an_orchestration_end_to_end() {
    let server = start(Registry::new()).await;
    let client = &server.client;
    let mut stream = open(client).await;
    start_instance(client, "Greeter", "greet-1", "\"Tokyo\"").await;

    // First episode: orchestratorStarted, then the start; the worker asks for an activity.
    let first = next(&mut stream).await;
    let request = episode(&first);
    assert_eq!(request.instance_id, "greet-1");
    assert!(request.past_events.is_empty());
    assert!(opens_with(request, |e| matches!(e,
        EventType::ExecutionStarted(s) if s.name == "Greeter")));
    send_answer(
        client,
        answer(&first, vec![schedule(0, "SayHello", "\"Tokyo\"")]),
    )
    .await;

    // The activity, numbered by the action that scheduled it.
    let item = next(&mut stream).await;
    assert_eq!(activity(&item).name, "SayHello");
    assert_eq!(activity(&item).task_id, 0);
    assert_eq!(activity(&item).input.as_deref(), Some("\"Tokyo\""));
    send_output(client, output(&item, "\"Hello Tokyo!\"")).await;

    // Second episode: the result is new, the first episode is history; the worker finishes.
    let second = next(&mut stream).await;
    let request = episode(&second);
    assert!(!request.past_events.is_empty());
    assert!(opens_with(request, |e| matches!(e,
        EventType::TaskCompleted(t) if t.task_scheduled_id == 0)));
    let done = complete(1, Completed, "\"Hello Tokyo!\"");
    send_answer(client, answer(&second, vec![done])).await;

    let state = finished(client, "greet-1").await;
    assert_eq!(status(&state), Completed);
    assert_eq!(state.output.as_deref(), Some("\"Hello Tokyo!\""));
    drop(stream);
    server.stop().await;
}

/// An episode taken by a stream that ends before answering goes back to the queue: the next
/// stream gets the same episode (same instance, same past and new events) under a new token,
/// and the late answer of the first taker is ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_item_comes_again_when_its_stream_ends() {
    let server = start(Registry::new()).await;
    let client = &server.client;
    let mut stream = open(client).await;
    start_instance(client, "Greeter", "again-1", "\"Oslo\"").await;

    // Get to a second episode, so that its past events are not empty.
    let first = next(&mut stream).await;
    send_answer(
        client,
        answer(&first, vec![schedule(0, "SayHello", "\"Oslo\"")]),
    )
    .await;
    let item = next(&mut stream).await;
    send_output(client, output(&item, "\"Hello Oslo!\"")).await;
    let taken = next(&mut stream).await;

    // The worker goes away without answering.
    drop(stream);
    let mut stream = open(client).await;
    let again = next(&mut stream).await;
    let (before, after) = (episode(&taken), episode(&again));
    assert_eq!(after.instance_id, "again-1");
    assert!(!after.past_events.is_empty());
    assert_eq!(after.past_events, before.past_events);
    assert_eq!(after.new_events, before.new_events);
    assert_ne!(again.completion_token, taken.completion_token);

    // A late answer under the first token is stale and ignored; the new token's answer counts.
    let late = complete(1, Failed, "\"late\"");
    send_answer(client, answer(&taken, vec![late])).await;
    let done = complete(1, Completed, "\"Hello Oslo!\"");
    send_answer(client, answer(&again, vec![done])).await;
    let state = finished(client, "again-1").await;
    assert_eq!(status(&state), Completed);
    assert_eq!(state.output.as_deref(), Some("\"Hello Oslo!\""));
    drop(stream);
    server.stop().await;
}

/// A worker that gives items back gets them again after the abandon delay, under new tokens:
/// first the episode, then the activity it scheduled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_items_come_again() {
    let server = start(Registry::new()).await;
    let mut client = server.client.clone();
    let mut stream = open(&client).await;
    start_instance(&client, "Greeter", "abandon-1", "\"Rome\"").await;

    let given_back = next(&mut stream).await;
    let completion_token = given_back.completion_token.clone();
    let abandon = pb::AbandonOrchestrationTaskRequest { completion_token };
    client
        .abandon_task_orchestrator_work_item(abandon)
        .await
        .expect("abandon is accepted");
    let first = next(&mut stream).await;
    assert_eq!(
        episode(&first).new_events.len(),
        episode(&given_back).new_events.len()
    );
    assert_ne!(first.completion_token, given_back.completion_token);
    send_answer(
        &client,
        answer(&first, vec![schedule(0, "SayHello", "\"Rome\"")]),
    )
    .await;

    let given_back = next(&mut stream).await;
    let completion_token = given_back.completion_token.clone();
    let abandon = pb::AbandonActivityTaskRequest { completion_token };
    client
        .abandon_task_activity_work_item(abandon)
        .await
        .expect("abandon is accepted");
    let item = next(&mut stream).await;
    assert_eq!(activity(&item), activity(&given_back));
    assert_ne!(item.completion_token, given_back.completion_token);
    drop(stream);
    server.stop().await;
}

/// A stream that asked for at most one activity at a time gets the second activity of a
/// fan-out only once it has answered the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_gets_no_more_activities_than_it_asked_for() {
    let server = start(Registry::new()).await;
    let client = &server.client;
    let request = pb::GetWorkItemsRequest {
        max_concurrent_activity_work_items: 1,
        ..pb::GetWorkItemsRequest::default()
    };
    let mut stream = open_with(client, request).await;
    start_instance(client, "FanOut", "fan-1", "2").await;

    let first = next(&mut stream).await;
    let both = vec![schedule(0, "Square", "1"), schedule(1, "Square", "2")];
    send_answer(client, answer(&first, both)).await;

    // One activity now, and nothing more while it is outstanding.
    let one = next(&mut stream).await;
    assert_eq!(activity(&one).name, "Square");
    assert!(within(&mut stream, QUIET).await.is_none());

    // Answering it frees the slot for the other one.
    send_output(client, output(&one, "1")).await;
    let other = next(&mut stream).await;
    assert_eq!(activity(&other).name, "Square");
    assert_ne!(activity(&other).task_id, activity(&one).task_id);
    drop(stream);
    server.stop().await;
}

/// A stream whose filters name orchestration "A" never gets an episode of "B", which waits
/// for a worker without filters; an episode of "A" it does get.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_keep_other_orchestrations_away() {
    let server = start(Registry::new()).await;
    let client = &server.client;
    let only_a = pb::WorkItemFilters {
        orchestrations: vec![pb::OrchestrationFilter {
            name: "A".to_string(),
            versions: Vec::new(),
        }],
        ..pb::WorkItemFilters::default()
    };
    let request = pb::GetWorkItemsRequest {
        work_item_filters: Some(only_a),
        ..pb::GetWorkItemsRequest::default()
    };
    let mut filtered = open_with(client, request).await;

    start_instance(client, "B", "b-1", "null").await;
    assert!(within(&mut filtered, QUIET).await.is_none());

    start_instance(client, "A", "a-1", "null").await;
    assert_eq!(episode(&next(&mut filtered).await).instance_id, "a-1");

    let mut any = open(client).await;
    assert_eq!(episode(&next(&mut any).await).instance_id, "b-1");
    drop((filtered, any));
    server.stop().await;
}

/// A worker that sends no completion tokens (the Go SDK's) is still understood: episodes are
/// matched by instance id, activities by instance id and task id, and the orchestration ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_less_answers_complete_the_work() {
    let server = start(Registry::new()).await;
    let client = &server.client;
    let mut stream = open(client).await;
    start_instance(client, "Greeter", "tokenless-1", "\"Lima\"").await;

    let first = next(&mut stream).await;
    let mut answered = answer(&first, vec![schedule(0, "SayHello", "\"Lima\"")]);
    answered.completion_token.clear();
    send_answer(client, answered).await;

    let item = next(&mut stream).await;
    let mut result = output(&item, "\"Hello Lima!\"");
    result.completion_token.clear();
    send_output(client, result).await;

    let second = next(&mut stream).await;
    let mut answered = answer(&second, vec![complete(1, Completed, "\"Hello Lima!\"")]);
    answered.completion_token.clear();
    send_answer(client, answered).await;

    let state = finished(client, "tokenless-1").await;
    assert_eq!(status(&state), Completed);
    assert_eq!(state.output.as_deref(), Some("\"Hello Lima!\""));
    drop(stream);
    server.stop().await;
}

/// A graceful stop does not wait for connected workers or for waits without a deadline: the
/// work-item stream and the wait end with `UNAVAILABLE`, and the server stops in time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_ends_streams_and_waits() {
    let server = start(Registry::new()).await;
    let client = server.client.clone();
    let mut stream = open(&client).await;
    start_instance(&client, "Endless", "endless-1", "null").await;
    let _outstanding = next(&mut stream).await;
    let mut waiter = client.clone();
    let wait = tokio::spawn(async move {
        let request = pb::GetInstanceRequest {
            instance_id: "endless-1".into(),
            get_inputs_and_outputs: false,
        };
        waiter.wait_for_instance_completion(request).await
    });
    tokio::time::sleep(QUIET).await;

    server.stop().await;
    let waited = wait.await.expect("the wait's task joins");
    assert_eq!(code(waited), Code::Unavailable);
    // Health pings sent before the stop may still be in the stream's buffer.
    let ended = loop {
        match stream.message().await {
            Ok(Some(item)) if matches!(item.request, Some(ItemKind::HealthPing(_))) => continue,
            other => break other,
        }
    };
    assert!(
        matches!(&ended, Err(status) if status.code() == Code::Unavailable),
        "{ended:?}"
    );
}
