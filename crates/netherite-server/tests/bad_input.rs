//! Bad input over the protocol: each mistake gets its own gRPC status, and nothing else.
//!
//! Every story sends calls a client or a worker gets wrong (unknown or empty ids, a duplicate
//! start, entity ids that are not `@name@key`, payloads over the limit, a message over the
//! decode limit, timestamps out of range, an action without a kind, forged and stale
//! completion tokens), checks the status code of each, and then checks that the server still
//! serves: a fresh instance of a Rust orchestration starts, runs and reads back.

mod support;

use std::sync::atomic::{AtomicU32, Ordering};

use netherite::sdk::{OrchestrationContext, Registry, TaskError};
use netherite_server::pb;
use netherite_server::pb::OrchestrationStatus::{Completed, Failed, Running};
use netherite_server::pb::history_event::EventType;
use netherite_server::service::{
    INVALID_ANSWER, NAME_BYTES_MAX, STATUS_MESSAGE_BYTES_MAX, TAGS_BYTES_MAX, UNSENDABLE_WORK,
    decode_bytes_max,
};
use support::{
    Client, Server, answer, code, complete, finished, get_instance, history, next, open, output,
    schedule, send_answer, send_output, start, start_instance, start_with, status,
};
use tonic::{Code, Request};

/// The payload limit of the stories that test it.
const PAYLOAD_MAX: u64 = 1024;

/// `Echo` returns its input; `Waiter` runs until it gets event `Go` and returns its data.
fn registry() -> Registry {
    let mut registry = Registry::new();
    registry
        .orchestration("Echo", |_ctx: OrchestrationContext, s: String| async move {
            Ok::<_, TaskError>(s)
        })
        .expect("a fresh name")
        .orchestration("Waiter", |ctx: OrchestrationContext, (): ()| async move {
            ctx.wait_for_external_event::<String>("Go").await
        })
        .expect("a fresh name");
    registry
}

/// Numbers the probes of all stories, so that each probe is a new instance.
static PROBES: AtomicU32 = AtomicU32::new(0);

/// Shows that the server still serves: a new `Echo` starts, completes and reads back.
async fn still_serves(client: &Client) {
    let id = format!("probe-{}", PROBES.fetch_add(1, Ordering::Relaxed));
    start_instance(client, "Echo", &id, "\"ok\"").await;
    let state = finished(client, &id).await;
    assert_eq!(status(&state), Completed);
    assert_eq!(state.output.as_deref(), Some("\"ok\""));
    let read = get_instance(client, &id).await.expect("the probe exists");
    assert_eq!(read.instance_id, id);
}

/// A server with the stories' registry and default limits.
async fn server() -> Server {
    start(registry()).await
}

/// An unknown instance does not exist for `GetInstance` (an answer, not an error), and is
/// `NOT_FOUND` for every call that must act on it or read its history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_instances_are_not_found() {
    let server = server().await;
    let mut c = server.client.clone();
    let id = || "nobody".to_string();

    assert!(get_instance(&c, "nobody").await.is_none());
    let raise = pb::RaiseEventRequest {
        instance_id: id(),
        name: "Go".into(),
        input: None,
    };
    assert_eq!(code(c.raise_event(raise).await), Code::NotFound);
    let terminate = pb::TerminateRequest {
        instance_id: id(),
        ..pb::TerminateRequest::default()
    };
    assert_eq!(code(c.terminate_instance(terminate).await), Code::NotFound);
    let suspend = pb::SuspendRequest {
        instance_id: id(),
        reason: None,
    };
    assert_eq!(code(c.suspend_instance(suspend).await), Code::NotFound);
    let resume = pb::ResumeRequest {
        instance_id: id(),
        reason: None,
    };
    assert_eq!(code(c.resume_instance(resume).await), Code::NotFound);
    let rewind = pb::RewindInstanceRequest {
        instance_id: id(),
        reason: None,
    };
    assert_eq!(code(c.rewind_instance(rewind).await), Code::NotFound);
    let restart = pb::RestartInstanceRequest {
        instance_id: id(),
        restart_with_new_instance_id: false,
    };
    assert_eq!(code(c.restart_instance(restart).await), Code::NotFound);
    let history = pb::StreamInstanceHistoryRequest {
        instance_id: id(),
        ..pb::StreamInstanceHistoryRequest::default()
    };
    assert_eq!(
        code(c.stream_instance_history(history).await),
        Code::NotFound
    );

    still_serves(&c).await;
    server.stop().await;
}

/// An empty instance id is the client's mistake: `INVALID_ARGUMENT`, whatever the call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_instance_ids_are_invalid() {
    let server = server().await;
    let mut c = server.client.clone();
    let invalid = Code::InvalidArgument;

    let get = pb::GetInstanceRequest::default;
    assert_eq!(code(c.get_instance(get()).await), invalid);
    assert_eq!(code(c.wait_for_instance_completion(get()).await), invalid);
    let raise = pb::RaiseEventRequest::default();
    assert_eq!(code(c.raise_event(raise).await), invalid);
    let terminate = pb::TerminateRequest::default();
    assert_eq!(code(c.terminate_instance(terminate).await), invalid);
    let suspend = pb::SuspendRequest::default();
    assert_eq!(code(c.suspend_instance(suspend).await), invalid);
    let restart = pb::RestartInstanceRequest::default();
    assert_eq!(code(c.restart_instance(restart).await), invalid);
    let history = pb::StreamInstanceHistoryRequest::default();
    assert_eq!(code(c.stream_instance_history(history).await), invalid);

    still_serves(&c).await;
    server.stop().await;
}

/// A second start with the id of a running instance is `ALREADY_EXISTS`, and the running one
/// goes on as if nothing happened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starting_a_running_id_again_is_already_exists() {
    let server = server().await;
    let mut c = server.client.clone();
    start_instance(&c, "Waiter", "twice", "null").await;
    let mut wait = Request::new(pb::GetInstanceRequest {
        instance_id: "twice".into(),
        get_inputs_and_outputs: false,
    });
    wait.set_timeout(support::PATIENCE);
    let started = c.wait_for_instance_start(wait).await.expect("it starts");
    let started = started.into_inner().orchestration_state.expect("it exists");
    assert_eq!(status(&started), Running);

    let again = pb::CreateInstanceRequest {
        instance_id: "twice".into(),
        name: "Echo".into(),
        input: Some("\"other\"".into()),
        ..pb::CreateInstanceRequest::default()
    };
    assert_eq!(code(c.start_instance(again).await), Code::AlreadyExists);

    let go = pb::RaiseEventRequest {
        instance_id: "twice".into(),
        name: "Go".into(),
        input: Some("\"went\"".into()),
    };
    c.raise_event(go).await.expect("the event is accepted");
    let state = finished(&c, "twice").await;
    assert_eq!((state.name.as_str(), status(&state)), ("Waiter", Completed));
    assert_eq!(state.output.as_deref(), Some("\"went\""));
    server.stop().await;
}

/// Entity ids must read `@name@key` with a name: others are `INVALID_ARGUMENT` for both
/// `SignalEntity` and `GetEntity`, while a well-formed unknown one just does not exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_entity_ids_are_invalid() {
    let server = server().await;
    let mut c = server.client.clone();
    for id in ["nope", "@@key", ""] {
        let signal = pb::SignalEntityRequest {
            instance_id: id.into(),
            name: "add".into(),
            ..pb::SignalEntityRequest::default()
        };
        assert_eq!(
            code(c.signal_entity(signal).await),
            Code::InvalidArgument,
            "{id:?}"
        );
        let get = pb::GetEntityRequest {
            instance_id: id.into(),
            include_state: true,
        };
        assert_eq!(
            code(c.get_entity(get).await),
            Code::InvalidArgument,
            "{id:?}"
        );
    }

    // A well-formed id of an entity nobody used is simply not there.
    let get = pb::GetEntityRequest {
        instance_id: "@counter@nobody".into(),
        include_state: true,
    };
    let answer = c.get_entity(get).await.expect("GetEntity answers");
    assert!(!answer.into_inner().exists);
    still_serves(&c).await;
    server.stop().await;
}

/// A payload over `payload_bytes_max` is `RESOURCE_EXHAUSTED`, for a start's input, an
/// event's data and a signal's input; one at the limit is fine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payloads_over_the_limit_are_resource_exhausted() {
    let server = start_with(registry(), |s| netherite::settings::Settings {
        payload_bytes_max: PAYLOAD_MAX,
        ..s
    })
    .await;
    let mut c = server.client.clone();
    let limit = usize::try_from(PAYLOAD_MAX).expect("a small limit");
    let json = |len: usize| format!("\"{}\"", "x".repeat(len - 2));

    let big = pb::CreateInstanceRequest {
        instance_id: "big".into(),
        name: "Echo".into(),
        input: Some(json(limit + 1)),
        ..pb::CreateInstanceRequest::default()
    };
    assert_eq!(code(c.start_instance(big).await), Code::ResourceExhausted);
    assert!(get_instance(&c, "big").await.is_none());

    start_instance(&c, "Waiter", "waiting", "null").await;
    let event = pb::RaiseEventRequest {
        instance_id: "waiting".into(),
        name: "Go".into(),
        input: Some(json(limit + 1)),
    };
    assert_eq!(code(c.raise_event(event).await), Code::ResourceExhausted);
    let signal = pb::SignalEntityRequest {
        instance_id: "@counter@a".into(),
        name: "add".into(),
        input: Some(json(limit + 1)),
        ..pb::SignalEntityRequest::default()
    };
    assert_eq!(code(c.signal_entity(signal).await), Code::ResourceExhausted);

    // At the limit exactly, the same event goes through and ends the waiter.
    let event = pb::RaiseEventRequest {
        instance_id: "waiting".into(),
        name: "Go".into(),
        input: Some(json(limit)),
    };
    c.raise_event(event)
        .await
        .expect("a payload at the limit is accepted");
    assert_eq!(status(&finished(&c, "waiting").await), Completed);
    still_serves(&c).await;
    server.stop().await;
}

/// A worker's answers are held to the payload limit too, as the worker's failure rather than
/// the call's: an activity result over it arrives as a `taskFailed`, an orchestration output
/// over it ends the orchestration `FAILED`, both with error type `PayloadTooLarge`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workers_payloads_over_the_limit_fail_the_work() {
    let server = start_with(registry(), |s| netherite::settings::Settings {
        payload_bytes_max: PAYLOAD_MAX,
        ..s
    })
    .await;
    let c = server.client.clone();
    let over = format!(
        "\"{}\"",
        "x".repeat(usize::try_from(PAYLOAD_MAX).expect("small"))
    );
    let mut stream = open(&c).await;
    start_instance(&c, "Remote", "bulky", "null").await;
    let first = next(&mut stream).await;
    send_answer(&c, answer(&first, vec![schedule(0, "Work", "null")])).await;

    let task = next(&mut stream).await;
    send_output(&c, output(&task, &over)).await;
    let second = next(&mut stream).await;
    let failed = task_failure(&second).expect("the result came back as a failure");
    assert_eq!(failed.error_type, "PayloadTooLarge");

    send_answer(&c, answer(&second, vec![complete(1, Completed, &over)])).await;
    let state = finished(&c, "bulky").await;
    assert_eq!(status(&state), Failed);
    let failure = state.failure_details.expect("a failure is reported");
    assert_eq!(failure.error_type, "PayloadTooLarge");
    drop(stream);
    still_serves(&c).await;
    server.stop().await;
}

/// The failure of the first `taskFailed` among an episode's new events.
fn task_failure(item: &pb::WorkItem) -> Option<pb::TaskFailureDetails> {
    let events = &support::episode(item).new_events;
    events.iter().find_map(|e| match &e.event_type {
        Some(EventType::TaskFailed(failed)) => failed.failure_details.clone(),
        _ => None,
    })
}

/// A message larger than the server decodes is refused before any of it is used, and the
/// server goes on. The code is tonic's for a message over the decode limit: `OUT_OF_RANGE`
/// (gRPC's C core would say `RESOURCE_EXHAUSTED`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_the_decode_limit_is_refused() {
    let server = server().await;
    let mut c = server.client.clone();
    let settings = netherite::settings::Settings::default();
    let over = decode_bytes_max(settings.payload_bytes_max) + 1;

    let huge = pb::CreateInstanceRequest {
        instance_id: "huge".into(),
        name: "Echo".into(),
        input: Some("x".repeat(over)),
        ..pb::CreateInstanceRequest::default()
    };
    assert_eq!(code(c.start_instance(huge).await), Code::OutOfRange);
    assert!(get_instance(&c, "huge").await.is_none());
    still_serves(&c).await;
    server.stop().await;
}

/// A scheduled start whose nanoseconds are out of range (-1, 2e9) is `INVALID_ARGUMENT`, and
/// no instance is created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamps_out_of_range_are_invalid() {
    let server = server().await;
    let mut c = server.client.clone();
    for nanos in [-1, 2_000_000_000] {
        let request = pb::CreateInstanceRequest {
            instance_id: "scheduled".into(),
            name: "Echo".into(),
            input: Some("\"later\"".into()),
            scheduled_start_timestamp: Some(prost_types::Timestamp {
                seconds: 4_000_000_000,
                nanos,
            }),
            ..pb::CreateInstanceRequest::default()
        };
        assert_eq!(
            code(c.start_instance(request).await),
            Code::InvalidArgument,
            "{nanos}"
        );
    }
    assert!(get_instance(&c, "scheduled").await.is_none());
    still_serves(&c).await;
    server.stop().await;
}

/// An episode answer with an action of no kind is `INVALID_ARGUMENT` for the worker, and the
/// orchestration ends `FAILED` with the `INVALID_ANSWER` error type instead of running again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_without_a_kind_fails_the_orchestration() {
    let server = server().await;
    let mut c = server.client.clone();
    let mut stream = open(&c).await;
    start_instance(&c, "Remote", "kindless", "null").await;

    let item = next(&mut stream).await;
    let nothing = pb::OrchestratorAction {
        id: 0,
        orchestrator_action_type: None,
    };
    let refused = c
        .complete_orchestrator_task(answer(&item, vec![nothing]))
        .await;
    assert_eq!(code(refused), Code::InvalidArgument);

    let state = finished(&c, "kindless").await;
    assert_eq!(status(&state), Failed);
    let failure = state.failure_details.expect("a failure is reported");
    assert_eq!(failure.error_type, INVALID_ANSWER);
    drop(stream);
    still_serves(&c).await;
    server.stop().await;
}

/// A completion token this server never issued is `INVALID_ARGUMENT` on every call that takes
/// one (as is an empty one where there is no other way to name the item), and the genuine
/// items stay outstanding: they complete afterwards as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_tokens_are_invalid() {
    let server = server().await;
    let mut c = server.client.clone();
    let mut stream = open(&c).await;
    start_instance(&c, "Remote", "forged", "null").await;
    let first = next(&mut stream).await;
    send_answer(&c, answer(&first, vec![schedule(0, "Work", "null")])).await;
    let task = next(&mut stream).await;
    let invalid = Code::InvalidArgument;

    for token in ["garbage", "5.0000000000000000"] {
        let mut result = output(&task, "\"forged\"");
        result.completion_token = token.into();
        assert_eq!(
            code(c.complete_activity_task(result).await),
            invalid,
            "{token}"
        );
        let mut episode = answer(&first, vec![complete(1, Completed, "\"forged\"")]);
        episode.completion_token = token.into();
        assert_eq!(
            code(c.complete_orchestrator_task(episode).await),
            invalid,
            "{token}"
        );
        let completion_token = token.to_string();
        let abandon = pb::AbandonOrchestrationTaskRequest { completion_token };
        let refused = c.abandon_task_orchestrator_work_item(abandon).await;
        assert_eq!(code(refused), invalid, "{token}");
        let completion_token = token.to_string();
        let abandon = pb::AbandonActivityTaskRequest { completion_token };
        let refused = c.abandon_task_activity_work_item(abandon).await;
        assert_eq!(code(refused), invalid, "{token}");
        let completion_token = token.to_string();
        let abandon = pb::AbandonEntityTaskRequest { completion_token };
        let refused = c.abandon_task_entity_work_item(abandon).await;
        assert_eq!(code(refused), invalid, "{token}");
        let completion_token = token.to_string();
        let batch = pb::EntityBatchResult {
            completion_token,
            ..pb::EntityBatchResult::default()
        };
        assert_eq!(
            code(c.complete_entity_task(batch).await),
            invalid,
            "{token}"
        );
    }

    // Abandoning needs a token: there is no fallback to match by.
    let abandon = pb::AbandonActivityTaskRequest::default();
    assert_eq!(
        code(c.abandon_task_activity_work_item(abandon).await),
        invalid
    );

    // The activity was not touched by any of it.
    send_output(&c, output(&task, "\"genuine\"")).await;
    let second = next(&mut stream).await;
    send_answer(
        &c,
        answer(&second, vec![complete(1, Completed, "\"genuine\"")]),
    )
    .await;
    assert_eq!(
        finished(&c, "forged").await.output.as_deref(),
        Some("\"genuine\"")
    );
    drop(stream);
    server.stop().await;
}

/// A genuine token answered a second time is stale: the call is OK and changes nothing, so
/// the history holds the activity's result and the completion once each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_tokens_are_ignored() {
    let server = server().await;
    let c = server.client.clone();
    let mut stream = open(&c).await;
    start_instance(&c, "Remote", "stale", "null").await;
    let first = next(&mut stream).await;
    send_answer(&c, answer(&first, vec![schedule(0, "Work", "null")])).await;

    let task = next(&mut stream).await;
    send_output(&c, output(&task, "\"first\"")).await;
    send_output(&c, output(&task, "\"second\"")).await;

    let second = next(&mut stream).await;
    send_answer(
        &c,
        answer(&second, vec![complete(1, Completed, "\"done\"")]),
    )
    .await;
    send_answer(&c, answer(&second, vec![complete(1, Failed, "\"undone\"")])).await;

    let state = finished(&c, "stale").await;
    assert_eq!(
        (status(&state), state.output.as_deref()),
        (Completed, Some("\"done\""))
    );
    let events = history(&c, "stale").await;
    let results = support::count(&events, |e| matches!(e, EventType::TaskCompleted(_)));
    let ends = support::count(&events, |e| matches!(e, EventType::ExecutionCompleted(_)));
    assert_eq!((results, ends), (1, 1));
    let result = events.iter().find_map(|e| match &e.event_type {
        Some(EventType::TaskCompleted(done)) => done.result.clone(),
        _ => None,
    });
    assert_eq!(result.as_deref(), Some("\"first\""));
    drop(stream);
    server.stop().await;
}

/// A genuine token sent with an answer of the wrong kind (an episode's answer under an
/// activity's token) names an item that answer cannot complete: it is refused with
/// `INVALID_ARGUMENT` and leaves the activity outstanding, so that its real result still
/// counts and the orchestration goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_of_the_wrong_kind_leaves_the_item_alone() {
    let server = server().await;
    let mut c = server.client.clone();
    let mut stream = open(&c).await;
    start_instance(&c, "Remote", "mixed-up", "null").await;
    let first = next(&mut stream).await;
    send_answer(&c, answer(&first, vec![schedule(0, "Work", "null")])).await;
    let task = next(&mut stream).await;

    let mut wrong = answer(&first, vec![complete(1, Completed, "\"wrong\"")]);
    wrong.completion_token = task.completion_token.clone();
    let refused = c.complete_orchestrator_task(wrong).await;
    assert_eq!(code(refused), Code::InvalidArgument);

    send_output(&c, output(&task, "\"right\"")).await;
    let second = next(&mut stream).await;
    send_answer(
        &c,
        answer(&second, vec![complete(1, Completed, "\"right\"")]),
    )
    .await;
    assert_eq!(
        finished(&c, "mixed-up").await.output.as_deref(),
        Some("\"right\"")
    );
    drop(stream);
    server.stop().await;
}

/// An execution whose history grew past what a worker can receive is failed with
/// `UNSENDABLE_WORK` instead of being sent (a gRPC client drops its whole stream on such a
/// message, so it would block every other item); other work goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_episode_too_large_to_send_fails_its_orchestration() {
    let server = server().await;
    let client = &server.client;
    let mut stream = open(client).await;
    start_instance(client, "Hoarder", "hoarder", "null").await;

    // Each activity returns 900 KB: the fifth episode's history is past 4 MiB.
    let big = format!("\"{}\"", "x".repeat(900_000));
    let mut item = next(&mut stream).await;
    for task in 0..5 {
        send_answer(client, answer(&item, vec![schedule(task, "Fill", "null")])).await;
        let activity = next(&mut stream).await;
        send_output(client, output(&activity, &big)).await;
        if task < 4 {
            item = next(&mut stream).await;
        }
    }

    let state = finished(client, "hoarder").await;
    assert_eq!(status(&state), Failed);
    let failure = state.failure_details.expect("a failure is reported");
    assert_eq!(failure.error_type, UNSENDABLE_WORK);
    assert!(
        failure.error_message.contains("work_item_bytes_max"),
        "{failure:?}"
    );
    drop(stream);
    still_serves(client).await;
    server.stop().await;
}

/// Ids, names and tags have limits of their own, like payloads: over them a call is refused
/// with `INVALID_ARGUMENT` naming the limit, and a huge unknown id still gets `NOT_FOUND` with
/// a message of bounded size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_ids_names_and_tags_are_invalid() {
    let server = server().await;
    let mut c = server.client.clone();
    let long = "n".repeat(NAME_BYTES_MAX + 1);
    let start = |id: &str, name: &str| pb::CreateInstanceRequest {
        instance_id: id.to_string(),
        name: name.to_string(),
        ..pb::CreateInstanceRequest::default()
    };

    let refused = c.start_instance(start("fine", &long)).await;
    assert_eq!(code(refused), Code::InvalidArgument);
    let refused = c.start_instance(start(&long, "Echo")).await;
    assert_eq!(code(refused), Code::InvalidArgument);
    let mut tagged = start("tagged", "Echo");
    tagged.tags.insert("k".into(), "v".repeat(TAGS_BYTES_MAX));
    let refused = c.start_instance(tagged).await;
    assert_eq!(code(refused), Code::InvalidArgument);

    let huge = "h".repeat(NAME_BYTES_MAX);
    let terminate = pb::TerminateRequest {
        instance_id: huge,
        ..pb::TerminateRequest::default()
    };
    let status = c.terminate_instance(terminate).await.expect_err("unknown");
    assert_eq!(status.code(), Code::NotFound);
    assert!(status.message().len() <= STATUS_MESSAGE_BYTES_MAX + 4);
    still_serves(&server.client).await;
    server.stop().await;
}
